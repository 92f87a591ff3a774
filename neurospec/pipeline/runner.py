"""Run a study: every step in order, skipping those whose inputs did not change, resuming after a crash.

    from neurospec.pipeline import run_study
    run_dir = run_study("examples/toy-study.yaml")                  # -> runs/toy-study
    run_study("examples/toy-study.yaml", force=["ppl"])            # run ppl, and the steps reading it, again
    run_study("examples/toy-study.yaml", dry_run=True)              # print the plan, run nothing

The run folder holds ``config.yaml`` (the config as given), ``study.json`` (per step: verb, command line,
fingerprint, status, times and the versions it ran with) and one output per step: ``RUN_DIR/NAME`` or
``RUN_DIR/NAME.json``. ``study.json`` is rewritten atomically at every change of a step's status, so
after a crash or Ctrl-C the next run knows what finished: finished steps are skipped, the step that
was running is resumed where its verb can (collect, attribute) and run again otherwise. A step runs
again when its fingerprint changes (an option, an input file's content, the model, an earlier step it
reads was run again, or the neurospec version).
"""

from __future__ import annotations

import contextlib
import gc
import platform
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from neurospec.pipeline.config import Step, Study, data_environment, datasets_read, load_study
from neurospec.pipeline.fingerprints import step_fingerprint
from neurospec.pipeline.paths import output_path, outputs, step_values
from neurospec.util.errors import NeurospecError
from neurospec.util.hashing import ContentHashes
from neurospec.util.io import atomic_write_json, atomic_write_text
from neurospec.util.locks import LOCK_NAME, exclusive
from neurospec.version import __version__

STUDY_FILE = "study.json"
CONFIG_FILE = "config.yaml"
FORMAT = "neurospec-study"
VERSION = 1
UNFINISHED = ("running", "interrupted", "failed")


class StepFailed(NeurospecError):
    """A step's verb exited with an error; the steps before it are kept."""


@dataclass
class Decision:
    """What the run does with one step, and why."""

    step: Step
    action: str          # "skip", "run", "resume"
    reason: str
    fingerprint: str


def versions() -> dict[str, str]:
    """The versions a step ran with: Python, platform, neurospec and the libraries that shape results."""
    from importlib import metadata

    found = {"python": platform.python_version(), "platform": platform.platform(), "neurospec": __version__}
    for package in ("torch", "transformers", "tokenizers", "accelerate", "safetensors", "numpy", "sacrebleu",
                    "lm_eval"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            found["cuda_devices"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return found


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_study_record(run_dir: Path) -> dict:
    """``RUN_DIR/study.json`` as an earlier ``neurospec run`` wrote it; a damaged or foreign one is refused in one
    line naming the file and the fix."""
    from neurospec.measure.run_folder import read_run_document

    return read_run_document(run_dir, STUDY_FILE, FORMAT, VERSION, what="study run", command="neurospec run STUDY.yaml",
                             redo=f"remove {run_dir} to start the study afresh")


class RunState:
    """``study.json`` of a run folder: the record of every step, saved at each change."""

    def __init__(self, run_dir: Path, study: Study):
        self.path = run_dir / STUDY_FILE
        self.previous: dict[str, dict] = {}
        created = _now()
        if self.path.exists():
            document = read_study_record(run_dir)
            self.previous = {record["name"]: record for record in document.get("steps", [])}
            created = document.get("created", created)
        self.document = {"format": FORMAT, "version": VERSION, "title": study.title, "config": CONFIG_FILE,
                         "config_source": str(study.path.resolve()),
                         "model": study.model.label if study.model else None, "created": created,
                         "versions": versions(), "steps": []}
        self.records: dict[str, dict] = {}
        for step in study.steps:
            record = dict(self.previous.get(step.name, {}))
            record.update(name=step.name, verb=step.verb.name, out=output_path(Path("."), step).as_posix())
            record.setdefault("status", "pending")
            record["this_run"] = None  # skipped / ran / resumed by the latest `neurospec run`; None: not reached
            self.records[step.name] = record

    def save(self) -> None:
        self.document["updated"] = _now()
        self.document["steps"] = list(self.records.values())
        atomic_write_json(self.path, self.document)

    def update(self, name: str, **fields) -> None:
        self.records[name].update(fields)
        self.save()


def _data_fingerprint(step: Step, hashes: ContentHashes) -> str | None:
    """The content of every registered data set ``step`` reads by name (not by a path option, which its
    own fingerprint covers); None when it reads none. Call it inside the study's data environment."""
    from neurospec.data.locate import where

    parts = []
    for name in sorted(datasets_read(step)):
        found = where(name)
        parts.append(f"{name}={hashes.of(found[1]) if found else 'absent'}")
    return ";".join(parts) or None


def _forced(study: Study, force: Iterable[str]) -> set[str]:
    """The named steps and every step reading them, directly or not."""
    names = {step.name for step in study.steps}
    chosen = set()
    for name in force:
        if name not in names:
            raise NeurospecError(f"--force {name}: the study has no such step; its steps: {', '.join(sorted(names))}")
        chosen.add(name)
    for step in study.steps:
        if chosen & set(step.upstream):
            chosen.add(step.name)
    return chosen


def plan_step(step: Step, record: dict, fingerprint: str, run_dir: Path, forced: bool) -> Decision:
    """Skip, resume or run the step, given its last record and its inputs' fingerprint now."""
    present = output_path(run_dir, step).exists()
    same = record.get("fingerprint") == fingerprint
    if forced:
        return Decision(step, "run", "forced", fingerprint)
    if same and record.get("status") == "complete" and present:
        return Decision(step, "skip", "up to date", fingerprint)
    if same and record.get("status") in UNFINISHED and present and step.verb.kind.resumable:
        return Decision(step, "resume", f"{record['status']} before", fingerprint)
    if same and record.get("status") in UNFINISHED:
        return Decision(step, "run", f"{record['status']} before", fingerprint)
    if same and record.get("status") == "complete":
        return Decision(step, "run", "output missing", fingerprint)
    if record.get("fingerprint"):
        return Decision(step, "run", "inputs changed", fingerprint)
    return Decision(step, "run", "new", fingerprint)


def _check_in_the_way(run_dir: Path, step: Step, *, written: bool) -> None:
    """Refuse an output path of ``step`` that exists although this run folder never ran the step."""
    for path in outputs(run_dir, step):
        if not written and (path.exists() or path.is_symlink()):
            raise NeurospecError(f"{path} is in the way of step {step.name!r}, and {run_dir / STUDY_FILE} records no "
                                 "earlier run of it (neurospec deletes only what it wrote); move it away")


def _remove_outputs(run_dir: Path, step: Step, *, written: bool) -> None:
    """Delete the step's outputs before it runs again; only those this run folder's record says it wrote."""
    _check_in_the_way(run_dir, step, written=written)
    for path in outputs(run_dir, step):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _toy_folders(study: Study, *, train: bool, echo: Callable[[str], None]) -> dict[str, Path]:
    """The folder of every toy model the study loads; with ``train``, trained first where missing."""
    from neurospec.toy import ensure_toy, toy_folder

    folders = {}
    for name in study.toy_models():
        folders[name] = toy_folder(name)
        if train:
            if not (folders[name] / "training.json").exists():
                echo(f"training the toy model {name!r} (once; cached in {folders[name].parent})")
            folders[name] = ensure_toy(name, quiet=False)
    return folders


def run_study(config: str | Path | Study, run_dir: str | Path | None = None, *, force: Iterable[str] = (),
              dry_run: bool = False, echo: Callable[[str], None] = print) -> Path:
    """Run the study ``config`` into ``run_dir`` (default ``runs/<config name>``); the run folder.

    Raises :class:`StepFailed` when a step's verb fails; the steps before it stay complete, and running
    the study again continues from that step.
    """
    study = config if isinstance(config, Study) else load_study(config)
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / study.path.stem
    if study.per_model:
        return _run_models(study, run_dir, force=force, dry_run=dry_run, echo=echo)
    forced = _forced(study, force)
    if dry_run:
        _print_plan(study, run_dir, forced, echo)
        return run_dir
    _check_run_folder(run_dir, several_models=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(run_dir, "neurospec run"):
        state = RunState(run_dir, study)
        for step in study.steps:  # before anything is written
            _check_in_the_way(run_dir, step, written=bool(state.previous.get(step.name, {}).get("started")))
        if not (run_dir / CONFIG_FILE).exists() or (run_dir / CONFIG_FILE).read_text(encoding="utf-8") != study.text:
            atomic_write_text(run_dir / CONFIG_FILE, study.text)
        state.save()
        toy_folders = _toy_folders(study, train=True, echo=echo)
        hashes = ContentHashes(run_dir / ".fingerprints.json")
        models = SharedModels()
        state.document["status"] = "running"
        try:
            with data_environment(study.data):
                for number, step in enumerate(study.steps, 1):
                    record = state.records[step.name]
                    upstream = {name: state.records[name].get("output_id") for name in step.upstream}
                    fingerprint = step_fingerprint(step, hashes=hashes, upstream=upstream,
                                                   data=_data_fingerprint(step, hashes))
                    hashes.save()
                    decision = plan_step(step, record, fingerprint, run_dir, step.name in forced)
                    prefix = f"[{number}/{len(study.steps)}] {step.name}"
                    if decision.action == "skip":
                        state.update(step.name, this_run="skipped")
                        echo(f"{prefix}: up to date, skipped")
                        continue
                    _run_step(study, decision, state, run_dir, toy_folders, prefix, echo, models)
        except BaseException as error:
            state.document["status"] = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            state.save()
            raise
        state.document["status"] = "complete"
        state.save()
    echo(f"study complete: {run_dir}   (next: neurospec report {run_dir})")
    return run_dir


def _check_run_folder(run_dir: Path, *, several_models: bool) -> dict | None:
    """Refuse a folder neurospec run did not make, or one that holds a run of the other shape (one model vs
    several), before anything is written into it; the folder's study.json when it has one."""
    record = run_dir / STUDY_FILE
    if run_dir.is_dir() and not record.exists() and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
        raise NeurospecError(f"run folder {run_dir} is not empty and holds no {STUDY_FILE} of neurospec run (a run "
                             "replaces its steps' outputs in it); choose a new or empty folder with --run-dir")
    if not record.exists():
        return None
    document = read_study_record(run_dir)
    models = document.get("models")
    if bool(models) != several_models:
        held = "several models" if models else "one model"
        raise NeurospecError(f"run folder {run_dir} holds a study of {held}, this config names "
                             f"{'several models' if several_models else 'one'}; choose another --run-dir")
    return document


def _run_models(study: Study, run_dir: Path, *, force: Iterable[str], dry_run: bool,
                echo: Callable[[str], None]) -> Path:
    """A study of several models: each model's study into ``RUN_DIR/<name>`` in the config's order, each an
    ordinary run folder (skipped, resumed and reported like one); ``RUN_DIR/study.json`` lists the models."""
    if dry_run:
        for name, single in study.per_model.items():
            echo(f"model {name} ({single.model.label}) -> {run_dir / name}")
            _print_plan(single, run_dir / name, _forced(single, force), lambda line: echo(f"  {line}"))
        return run_dir
    for single in study.per_model.values():
        _forced(single, force)  # an unknown --force name, before anything runs
    earlier = _check_run_folder(run_dir, several_models=True) or {}
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(run_dir, "neurospec run"):
        record = run_dir / STUDY_FILE
        created = earlier.get("created", _now())
        document = {"format": FORMAT, "version": VERSION, "title": study.title, "config": CONFIG_FILE,
                    "config_source": str(study.path.resolve()), "created": created, "versions": versions(),
                    "models": [{"name": name, "model": single.model.label, "out": name}
                               for name, single in study.per_model.items()],
                    "steps": [], "status": "running"}

        def save(status: str) -> None:
            atomic_write_json(record, {**document, "status": status, "updated": _now()})

        if not (run_dir / CONFIG_FILE).exists() or (run_dir / CONFIG_FILE).read_text(encoding="utf-8") != study.text:
            atomic_write_text(run_dir / CONFIG_FILE, study.text)
        save("running")
        try:
            for number, (name, single) in enumerate(study.per_model.items(), 1):
                echo(f"model {number}/{len(study.per_model)}: {name} ({single.model.label})")
                run_study(single, run_dir / name, force=force, echo=lambda line, name=name: echo(f"{name} {line}"))
        except BaseException as error:
            save("interrupted" if isinstance(error, KeyboardInterrupt) else "failed")
            raise
        save("complete")
    echo(f"study of {len(study.per_model)} models complete: {run_dir}   (next: neurospec report {run_dir})")
    return run_dir


class SharedModels:
    """The models a study has loaded, by what identifies them: each distinct model is loaded once per run and
    passed to every step whose verb leaves it unchanged (a trained model is never shared)."""

    def __init__(self) -> None:
        self.loaded: dict[tuple, Any] = {}

    def for_step(self, verb: Any, options: Any) -> Any:
        """The loaded model for a step with ``options``, or None when its verb loads its own."""
        from neurospec.verbs.base import ModelOptions, load_for

        if not verb.spec.shares_model or not isinstance(options, ModelOptions):
            return None
        key = options.model_key()
        if key not in self.loaded:
            self.loaded[key] = load_for(options)
        return self.loaded[key]


def _run_step(study: Study, decision: Decision, state: RunState, run_dir: Path, toy_folders: dict[str, Path],
              prefix: str, echo: Callable[[str], None], models: SharedModels) -> None:
    step = decision.step
    values = step_values(study, step, run_dir, toy_folders=toy_folders)
    out = output_path(run_dir, step)
    if decision.action == "resume":
        values["resume"] = True
    else:
        _remove_outputs(run_dir, step, written=bool(state.previous.get(step.name, {}).get("started")))
    command = step.verb.shell(values, out)
    echo(f"{prefix}: {'resuming' if decision.action == 'resume' else 'running'} ({decision.reason}): {command}")
    started = time.perf_counter()
    state.update(step.name, status="running", fingerprint=decision.fingerprint, command=command,
                 started=_now(), finished=None, seconds=None, versions=versions(), output_id=None,
                 this_run="resumed" if decision.action == "resume" else "ran")
    try:
        options = step.verb.check(values, out)
        step.verb.run(options, lm=models.for_step(step.verb, options))
    except KeyboardInterrupt:
        state.update(step.name, status="interrupted")
        raise
    except NeurospecError as error:
        state.update(step.name, status="failed", seconds=round(time.perf_counter() - started, 2))
        raise StepFailed(f"step {step.name!r} ({step.verb.name}) failed: {error} -- fix it in {study.path} and run "
                         f"the study again: the finished steps are kept") from None
    except BaseException:
        state.update(step.name, status="failed")
        raise
    finally:
        gc.collect()
    seconds = round(time.perf_counter() - started, 2)
    state.update(step.name, status="complete", finished=_now(), seconds=seconds, output_id=uuid.uuid4().hex[:16])
    echo(f"{prefix}: done in {seconds:.1f} s")


def _print_plan(study: Study, run_dir: Path, forced: set[str], echo: Callable[[str], None]) -> None:
    """What a run would do now; a step after one that runs is shown as running too (its input will change)."""
    previous = {}
    if (run_dir / STUDY_FILE).exists():
        previous = RunState(run_dir, study).previous
    hashes = ContentHashes(run_dir / ".fingerprints.json" if run_dir.exists() else None)
    toy_folders = _toy_folders(study, train=False, echo=echo)
    running: set[str] = set()
    for number, step in enumerate(study.steps, 1):
        record = previous.get(step.name, {})
        upstream = {name: previous.get(name, {}).get("output_id") for name in step.upstream}
        with data_environment(study.data):
            data_id = _data_fingerprint(step, hashes)
        fingerprint = step_fingerprint(step, hashes=hashes, upstream=upstream, data=data_id)
        decision = plan_step(step, record, fingerprint, run_dir, step.name in forced)
        if decision.action == "skip" and running & set(step.upstream):
            decision = Decision(step, "run", "an earlier step it reads runs", fingerprint)
        if decision.action != "skip":
            running.add(step.name)
        values = step_values(study, step, run_dir, toy_folders=toy_folders)
        echo(f"[{number}/{len(study.steps)}] {step.name}: {decision.action} ({decision.reason}): "
             f"{step.verb.shell(values, output_path(run_dir, step))}")
