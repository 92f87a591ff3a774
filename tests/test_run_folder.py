"""RunFolder: the lock of a run folder, what neurospec may replace, overwrite, resume and the manifest.

The run here is a toy of the protocol collect and attribute follow (no model): it adds numbers one at a time into
a float64 tensor (sum, sum of squares, count), checkpoints every few numbers into the free slot, and writes its
manifest last. Its result is checked against the same sums computed in plain Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import neurospec.measure.run_folder as run_folder_module
from neurospec.measure.run_folder import RunFolder, RunKind, check_replaceable, clear_folder, writing
from neurospec.util.errors import FileFormatError, NeurospecError

ROOT = Path(__file__).resolve().parents[1]
KIND = RunKind("sums.json", "neurospec.test.sums", version=1, tensor_file="sums.safetensors",
               writer="neurospec toy-sum", what="sums", made="summed", same="the same numbers")
MODEL = {"model_type": "llama", "num_layers": 2, "width": 8, "config_fingerprint": "c1", "weights_fingerprint": "w1"}


class _Interrupt(Exception):
    pass


def toy_sum(folder: Path, numbers: list[float], *, every: int = 2, resume: bool = False, overwrite: bool = False,
            stop_before: int | None = None, model: dict = MODEL) -> torch.Tensor:
    """(sum, sum of squares, count) of ``numbers``, run in ``folder`` with RunFolder; raises _Interrupt before
    adding number ``stop_before``."""
    run = RunFolder(folder, KIND)
    previous = run.start({"numbers": numbers, "every": every}, resume=resume, overwrite=overwrite, model=model)
    if previous is not None and previous.complete:
        return run.read_tensors(previous.manifest)["total"]
    files = dict(previous.manifest["files"]) if previous is not None else {}
    total = (run.read_tensors(previous.manifest, allow_incomplete=True)["total"] if previous is not None
             else torch.zeros(3, dtype=torch.float64))
    done = previous.progress["done"] if previous is not None else 0
    for i in range(done, len(numbers)):
        if i == stop_before:
            raise _Interrupt
        total += torch.tensor([numbers[i], numbers[i] * numbers[i], 1.0], dtype=torch.float64)
        complete = i + 1 == len(numbers)
        if complete or (i + 1) % every == 0:
            name = KIND.tensor_file if complete else run.free_slot("sums", files)
            written = {name: run.write_tensors(name, {"total": total})}
            document = {"format": KIND.format, "version": 1, "numbers": numbers, "every": every, "model": model,
                        "complete": complete, "files": written, "tensor_file": name}
            files = run.commit(document, written, files, None if complete else {"done": i + 1})
    return total


def by_hand(numbers: list[float]) -> torch.Tensor:
    """The same sums, added in the same order in plain Python (IEEE doubles, as float64 tensors)."""
    total, squares = 0.0, 0.0
    for x in numbers:
        total += x
        squares += x * x
    return torch.tensor([total, squares, float(len(numbers))], dtype=torch.float64)


NUMBERS = [0.1 * k + 1 / (k + 3) for k in range(11)]


def names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# Resume


def test_an_uninterrupted_run_gives_the_sums_by_hand(tmp_path):
    assert torch.equal(toy_sum(tmp_path / "run", NUMBERS), by_hand(NUMBERS))
    manifest = json.loads((tmp_path / "run" / "sums.json").read_text())
    assert manifest["complete"] and "progress" not in manifest
    assert names(tmp_path / "run") == ["sums.json", "sums.safetensors"]  # no checkpoint slot left behind


@pytest.mark.parametrize("stop_before", [3, 4, 5, 10])
def test_a_run_stopped_between_checkpoints_resumes_to_the_same_sums(tmp_path, stop_before):
    with pytest.raises(_Interrupt):
        toy_sum(tmp_path / "run", NUMBERS, every=2, stop_before=stop_before)
    manifest = json.loads((tmp_path / "run" / "sums.json").read_text())
    assert manifest["complete"] is False and manifest["progress"] == {"done": stop_before // 2 * 2}
    with pytest.raises(NeurospecError, match="holds unfinished sums \\(a checkpoint\\); finish it with "
                                             "`neurospec toy-sum ... --resume`"):
        RunFolder(tmp_path / "run", KIND).read_tensors(manifest)
    resumed = toy_sum(tmp_path / "run", NUMBERS, every=2, resume=True)
    assert torch.equal(resumed, by_hand(NUMBERS))
    assert names(tmp_path / "run") == ["sums.json", "sums.safetensors"]


@pytest.mark.parametrize("crash_at", [2, 3, 6])
def test_a_run_killed_while_writing_its_manifest_resumes_to_the_same_sums(tmp_path, monkeypatch, crash_at):
    """The tensors of a checkpoint are written, its manifest is not (and a temporary file is left): the folder
    resumes from the previous manifest, whose slot the crashed checkpoint did not touch."""
    real, calls = run_folder_module.atomic_write_json, []

    def crashing(path, document, **kwargs):
        calls.append(path)
        if len(calls) == crash_at:
            (Path(path).parent / ".sums.json.x1y2z3.tmp").write_text("{\"half")  # what a kill mid-write leaves
            raise _Interrupt
        return real(path, document, **kwargs)

    monkeypatch.setattr(run_folder_module, "atomic_write_json", crashing)
    with pytest.raises(_Interrupt):
        toy_sum(tmp_path / "run", NUMBERS, every=2)
    monkeypatch.setattr(run_folder_module, "atomic_write_json", real)
    manifest = json.loads((tmp_path / "run" / "sums.json").read_text())
    assert manifest["progress"] == {"done": 2 * (crash_at - 1)}
    resumed = toy_sum(tmp_path / "run", NUMBERS, every=2, resume=True)
    assert torch.equal(resumed, by_hand(NUMBERS))
    assert names(tmp_path / "run") == ["sums.json", "sums.safetensors"]  # the temporary file is gone too
    assert torch.equal(toy_sum(tmp_path / "run", NUMBERS, every=2, resume=True), by_hand(NUMBERS))  # complete: reused


def test_resume_with_nothing_to_resume_starts_afresh(tmp_path):
    assert RunFolder(tmp_path / "absent", KIND).start({}, resume=True) is None
    (tmp_path / "empty").mkdir()
    assert RunFolder(tmp_path / "empty", KIND).start({}, resume=True) is None
    assert torch.equal(toy_sum(tmp_path / "fresh", NUMBERS, resume=True), by_hand(NUMBERS))


def _stopped(tmp_path: Path) -> Path:
    with pytest.raises(_Interrupt):
        toy_sum(tmp_path / "run", NUMBERS, every=2, stop_before=5)
    return tmp_path / "run"


def test_resume_with_other_options_is_refused(tmp_path):
    run = _stopped(tmp_path)
    before = {name: (run / name).read_bytes() for name in names(run)}
    with pytest.raises(NeurospecError, match=r"cannot resume .*run: its numbers differ from this run's \(\[0\.3.*\]\); "
                                             r"run with the same numbers, or choose another --out$"):
        toy_sum(run, NUMBERS[:-1], resume=True)
    with pytest.raises(NeurospecError, match=r"its every differs from this run's \(2 vs 3\)"):
        toy_sum(run, NUMBERS, every=3, resume=True)
    assert {name: (run / name).read_bytes() for name in names(run)} == before  # refused: nothing changed


def test_resume_on_another_model_is_refused(tmp_path):
    run = _stopped(tmp_path)
    with pytest.raises(NeurospecError, match=r"cannot resume .*run: it was summed on another model \(num_layers 2, "
                                             r"this model 3\); load the same model or choose another --out"):
        toy_sum(run, NUMBERS, resume=True, model={**MODEL, "num_layers": 3})
    with pytest.raises(NeurospecError, match=r"weights_fingerprint 'w1', this model 'w2'"):
        toy_sum(run, NUMBERS, resume=True, model={**MODEL, "weights_fingerprint": "w2"})
    assert torch.equal(toy_sum(run, NUMBERS, resume=True, model={**MODEL, "model_id": "elsewhere"}), by_hand(NUMBERS))


def test_a_run_recorded_without_weights_fingerprint_resumes_on_any_weights(tmp_path):
    old = {**MODEL, "weights_fingerprint": None}  # folders from before neurospec recorded it
    with pytest.raises(_Interrupt):
        toy_sum(tmp_path / "run", NUMBERS, stop_before=5, model=old)
    assert torch.equal(toy_sum(tmp_path / "run", NUMBERS, resume=True), by_hand(NUMBERS))


def test_normalise_reads_an_old_manifest_as_a_new_one(tmp_path):
    run = _stopped(tmp_path)
    folder = RunFolder(run, KIND)
    with pytest.raises(NeurospecError, match="its every differs"):
        folder.start({"every": 4}, resume=True)
    resumed = folder.start({"every": 4}, resume=True, normalise=lambda key, value: value * 2 if key == "every" else value)
    assert resumed is not None and not resumed.complete and resumed.progress == {"done": 4}


# --------------------------------------------------------------------------------------------
# Overwrite: replace only what neurospec wrote


def test_an_existing_run_needs_resume_or_overwrite(tmp_path):
    run = tmp_path / "run"
    toy_sum(run, NUMBERS)
    with pytest.raises(NeurospecError, match=r"^output folder .*run holds sums already: add --resume to continue "
                                             r"them, or pass --overwrite to replace them$"):
        toy_sum(run, NUMBERS[:3])
    assert torch.equal(toy_sum(run, NUMBERS[:3], overwrite=True), by_hand(NUMBERS[:3]))
    assert json.loads((run / "sums.json").read_text())["numbers"] == NUMBERS[:3]
    no_overwrite = RunFolder(run, RunKind("sums.json", KIND.format, writer="neurospec toy-sum", what="sums",
                                          overwrite=False))
    with pytest.raises(NeurospecError, match=r"holds sums already: add --resume to continue them, or choose another "
                                             r"output folder$"):
        no_overwrite.start({}, resume=False)


def user_folder(path: Path) -> Path:
    (path / "data").mkdir(parents=True)
    (path / "notes.txt").write_text("my notes\n", encoding="utf-8")
    (path / "data" / "table.csv").write_text("a,b\n", encoding="utf-8")
    return path


def test_overwrite_never_touches_a_folder_neurospec_did_not_write(tmp_path):
    user = user_folder(tmp_path / "user")
    before = names(user)
    with pytest.raises(NeurospecError, match=r"user is not empty and holds no sums \(no sums\.json\): choose a new "
                                             r"or empty folder$"):
        toy_sum(user, NUMBERS)
    with pytest.raises(NeurospecError, match=r"user was not written by neurospec toy-sum \(it holds no sums\.json of "
                                             r"neurospec toy-sum's\); neurospec replaces only folders it wrote: "
                                             r"choose a new or empty folder for --out$"):
        toy_sum(user, NUMBERS, overwrite=True)
    (user / "sums.json").write_text(json.dumps({"format": "someone.else"}), encoding="utf-8")
    with pytest.raises(NeurospecError, match="was not written by neurospec toy-sum"):
        toy_sum(user, NUMBERS, overwrite=True)
    assert names(user) == sorted([*before, "sums.json"])


def test_overwrite_never_deletes_the_current_folder_an_input_or_a_folder_holding_one(tmp_path, monkeypatch):
    run = tmp_path / "run"
    toy_sum(run, NUMBERS)
    (run / "input.txt").write_text("an input\n", encoding="utf-8")
    monkeypatch.chdir(run)
    with pytest.raises(NeurospecError, match=r"^\. is the current folder; neurospec never deletes it"):
        RunFolder(".", KIND).start({}, resume=False, overwrite=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NeurospecError, match=r"run holds .*input\.txt, which is an input of this command; neurospec "
                                             r"never deletes its inputs"):
        RunFolder(run, KIND, inputs=[None, run / "input.txt"]).start({}, resume=False, overwrite=True)
    with pytest.raises(NeurospecError, match=r"run is an input of this command"):
        RunFolder(run, KIND, inputs=[run]).start({}, resume=False, overwrite=True)
    assert "input.txt" in names(run)
    assert RunFolder(run, KIND, inputs=[tmp_path / "elsewhere"]).start({}, resume=False, overwrite=True) is None
    assert names(run) == []


def test_a_kind_that_shares_its_folder_writes_beside_the_users_files(tmp_path):
    user = user_folder(tmp_path / "user")
    sharing = RunFolder(user, RunKind("sums.json", KIND.format, writer="neurospec toy-sum", own_folder=False))
    assert sharing.start({}, resume=False) is None and sharing.start({}, resume=True) is None
    assert names(user) == ["data/table.csv", "notes.txt"]


def test_overwrite_keeps_the_lock_of_the_running_command(tmp_path):
    run = tmp_path / "run"
    toy_sum(run, NUMBERS)
    folder = RunFolder(run, KIND)
    with folder.locked():
        assert folder.start({}, resume=False, overwrite=True) is None
        assert sorted(os.listdir(run)) == [".lock"]
    assert not run.exists() or os.listdir(run) == []


def test_the_thin_functions_say_what_the_class_says(tmp_path):
    user = user_folder(tmp_path / "user")
    with pytest.raises(NeurospecError, match=r"user was not written by neurospec collect \(it holds no stats\.json of "
                                             r"neurospec collect's\); neurospec replaces only folders it wrote: "
                                             r"choose a new or empty folder$"):
        check_replaceable(user, marker="stats.json", tag="neurospec.stats", writer="neurospec collect")
    (user / "training.json").write_text(json.dumps({"recipe_fingerprint": "x"}), encoding="utf-8")
    check_replaceable(user, marker="training.json", tag=lambda document: "recipe_fingerprint" in document)
    file = tmp_path / "file.txt"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(NeurospecError, match=r"file\.txt is a file, not a folder: pick one$"):
        check_replaceable(file, marker="stats.json", fix="pick one")
    with writing(user, "neurospec test"):
        clear_folder(user)
        assert os.listdir(user) == [".lock"]
    assert os.listdir(user) == []


# --------------------------------------------------------------------------------------------
# The manifest


def test_the_manifest_is_checked_before_anything_is_read(tmp_path):
    run = tmp_path / "run"
    toy_sum(run, NUMBERS)
    folder = RunFolder(run, KIND)
    assert folder.read_manifest()["numbers"] == NUMBERS
    with pytest.raises(NeurospecError, match=r"sums folder .*absent does not exist; make it with `neurospec toy-sum`"):
        RunFolder(tmp_path / "absent", KIND).read_manifest()
    tensors = run / "sums.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-4])
    with pytest.raises(FileFormatError, match=r"sums\.safetensors does not match the fingerprint recorded in "
                                              r".*run/sums\.json \(changed or truncated\); run it again"):
        folder.read_tensors(folder.read_manifest())
    manifest = run / "sums.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": 9}), encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"sums\.json has version 9; this neurospec reads version 1"):
        folder.read_manifest()
    manifest.write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"sums\.json is not a neurospec sums file"):
        folder.read_manifest()
    manifest.write_text("{not json", encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"is not valid JSON .*the folder is corrupt: run it again"):
        folder.read_manifest()
    with pytest.raises(NeurospecError, match=r"holds sums already"):  # even a corrupt manifest is no folder to reuse
        folder.start({}, resume=False)


def test_checkpoints_alternate_between_two_slots():
    assert RunFolder.free_slot("sums", {}) == "sums.checkpoint-a.safetensors"
    assert RunFolder.free_slot("sums", {"sums.checkpoint-a.safetensors": "sha256:x"}) == "sums.checkpoint-b.safetensors"
    assert RunFolder.free_slot("sums", {"sums.checkpoint-b.safetensors": "sha256:x"}) == "sums.checkpoint-a.safetensors"


# --------------------------------------------------------------------------------------------
# The lock


HOLDER = """
import sys, time
from pathlib import Path
from neurospec.measure.run_folder import RunFolder
path, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
with RunFolder(path).locked("the other writer", beside=sys.argv[4] == "file"):
    ready.touch()
    while not go.exists():
        time.sleep(0.02)
"""


def _holder(tmp_path: Path, path: Path, how: str) -> tuple[subprocess.Popen, Path]:
    """Another process holding the lock of ``path`` until the returned go file exists."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("RANK", None)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(ready), str(go), how], env=env)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert holder.poll() is None and time.monotonic() < deadline, "the other process never took the lock"
        time.sleep(0.02)
    return holder, go


@pytest.mark.parametrize("how", ["folder", "file"])
def test_a_lock_held_by_another_process_is_refused(tmp_path, monkeypatch, how):
    monkeypatch.delenv("RANK", raising=False)
    out = tmp_path / ("out" if how == "folder" else "out.json")
    holder, go = _holder(tmp_path, out, how)
    try:
        lock = out / ".lock" if how == "folder" else tmp_path / "out.json.lock"
        assert lock.read_text() == f"pid {holder.pid}"
        with pytest.raises(NeurospecError, match=rf"out(\.json)? is in use by pid {holder.pid} \(neurospec toy-sum\); "
                                                 rf"wait for it to end, or choose another"):
            with RunFolder(out, KIND).locked(beside=how == "file"):
                pytest.fail("took a lock another process holds")
    finally:
        go.touch()
        holder.wait(timeout=60)
    with RunFolder(out, KIND).locked(beside=how == "file"):  # free again
        pass
    assert sorted(os.listdir(tmp_path)) == ["go", "ready"]  # no lock file, no folder the lock created


def test_a_waiting_writer_gets_the_lock_when_the_other_releases_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    out = tmp_path / "out"
    holder, go = _holder(tmp_path, out, "folder")
    taken: list[str] = []

    def waiter() -> None:
        with RunFolder(out, KIND).locked(wait=True):
            taken.append((out / ".lock").read_text())

    thread = threading.Thread(target=waiter)
    try:
        thread.start()
        time.sleep(0.5)
        assert taken == [] and holder.poll() is None  # still waiting while the other holds it
    finally:
        go.touch()
        holder.wait(timeout=60)
        thread.join(timeout=60)
    assert taken == [f"pid {os.getpid()}"]


def test_only_rank_0_locks_under_torchrun(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("RANK", "1")
    with RunFolder(out, KIND).locked(), writing(out, "neurospec collect"):
        assert not out.exists()
    monkeypatch.setenv("RANK", "0")
    with writing([out, None, out], "neurospec collect"):  # None skipped, one lock per path
        assert os.listdir(out) == [".lock"]
