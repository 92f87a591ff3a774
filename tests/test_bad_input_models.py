"""Bad input around models, results' provenance and the command line itself (issue 21: items 6, 7, 10, 11).

Each refusal is one ``error:`` line, exit code 2 (130 for Ctrl-C), no traceback and no input touched
(:func:`bad_input_common.refuses`); the provenance tests use the Python API.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from bad_input_common import ROOT, refuses, run_cli
from families import family
from interventions_common import TEXTS, neuron_set, tiny_llama, tok
from safetensors.torch import load_file, save_file

from neurospec.core.models import load_model
from neurospec.core.provenance import describe_input, input_sha256, model_fingerprint, provenance, weights_fingerprint
from neurospec.core.sites import site_map
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.util.errors import NeurospecError, NeurospecWarning, OtherWeightsWarning


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Fingerprint and hash memos (neurospec.core.provenance) in a folder of the test run, not the user's cache."""
    monkeypatch.setenv("NEUROSPEC_CACHE", str(tmp_path_factory.getbasetemp() / "neurospec-cache"))


def _save(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    tok().save_pretrained(folder)
    return folder


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_weights(folder: Path, edit) -> None:
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A saved tiny Llama (``model``), TEXTS as ``<language>.txt``, a neuron file, and broken copies of the model."""
    root = tmp_path_factory.mktemp("bad_models")
    model = tiny_llama()
    _save(model, root / "model")
    for language, lines in TEXTS.items():
        (root / f"{language}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    neuron_set(model).save(root / "neurons.json")

    def variant(name: str) -> Path:
        return Path(shutil.copytree(root / "model", root / name))

    data = (variant("truncated") / "model.safetensors").read_bytes()
    (root / "truncated" / "model.safetensors").write_bytes(data[: len(data) // 2])
    _edit_config(variant("four"), num_hidden_layers="four")
    _edit_config(variant("wide"), intermediate_size=128)
    _edit_weights(variant("missing"), lambda t: t.pop("model.layers.1.mlp.down_proj.weight"))
    _edit_weights(variant("extra"), lambda t: t.update({"model.extra.weight": torch.zeros(3)}))
    custom = variant("custom")
    _edit_config(custom, model_type="neurospec_custom", architectures=["CustomForCausalLM"],
                 auto_map={"AutoConfig": "configuration_custom.CustomConfig",
                           "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"})
    ran = root / "remote-code-ran"
    for module in ("configuration_custom", "modeling_custom"):
        (custom / f"{module}.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    torch.save([[torch.tensor([1, 2])] * 2], root / "lape.pth")
    document = json.loads((root / "neurons.json").read_text())
    group = next(iter(document["groups"].values()))
    layer = next(iter(group["act"]))
    group["act"][layer] = group["act"][layer] + [2 ** 70]
    (root / "huge-index.json").write_text(json.dumps(document))
    return root


def _inputs(ws: Path) -> list[Path]:
    return [p for p in ws.iterdir() if p.name not in ("out", "remote-code-ran")]


def _ppl(model: str) -> list[str]:
    return ["ppl", "--model", model, "--corpus", "eng_Latn=eng_Latn.txt", "--limit", "2", "--out", "out", "--quiet"]


# --------------------------------------------------------------------------------------------
# Items 6 and 10: a model that cannot be loaded as it is says so in one line


MODEL_CASES = [
    ("truncated weights", _ppl("truncated"), r"truncated/model\.safetensors cannot be read.*damaged or truncated"),
    ("layer count not a number", _ppl("four"), r"four/config\.json.*num_hidden_layers.*'four'"),
    ("layer count, config only", ["sites", "four"], r"four/config\.json.*num_hidden_layers"),
    ("config sizes not the weights'", _ppl("wide"),
     r"do not match its config\.json: model\.layers\.0\.mlp\.down_proj\.weight is \(64, 96\).*\(64, 128\)"),
    ("missing weight", _ppl("missing"),
     r"missing from the checkpoint.*model\.layers\.1\.mlp\.down_proj\.weight \(1 in all\)"),
    ("unexpected weight", _ppl("extra"), r"in the checkpoint but not in the model: model\.extra\.weight"),
    ("custom code, sites", ["sites", "custom"], r"auto_map.*pass --trust-remote-code$"),
    ("custom code, neurons import", ["neurons", "import", "lape.pth", "--groups", "a", "--model", "custom",
                                     "--out", "out/x.json"], r"auto_map.*pass --trust-remote-code$"),
    ("custom code, ppl", _ppl("custom"), r"auto_map.*pass --trust-remote-code$"),
    ("folder that does not exist", _ppl("./no-such-model"), r"model folder './no-such-model' does not exist"),
    ("folder that does not exist, sites", ["sites", "runs/a/no-such-model"],
     r"model folder 'runs/a/no-such-model' does not exist"),
    ("neuron index of 2**70", ["neurons", "show", "huge-index.json"],
     r"index 1180591620717411303424 does not fit in 64 bits"),
    ("neuron index of 2**70, ppl", [*_ppl("model"), "--neurons", "huge-index.json"], r"does not fit in 64 bits"),
]


@pytest.mark.parametrize("args, match", [case[1:] for case in MODEL_CASES], ids=[case[0] for case in MODEL_CASES])
def test_model_refusals(ws, args, match):
    refuses(args, match=match, watch=_inputs(ws), cwd=ws)
    assert not (ws / "out" / "ppl.json").exists() and not (ws / "out" / "x.json").exists()
    assert not (ws / "remote-code-ran").exists()   # the repository's code never ran


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(ws):
    refuses([*_ppl("model"), "--device", "cuda"], match=r"--device 'cuda': .*use --device 'cpu'", watch=_inputs(ws),
            cwd=ws)


def test_tied_embeddings_load_and_a_missing_output_layer_does_not(tmp_path):
    t = tok()
    tied = family("llama").build(0, vocab_size=len(t), pad_token_id=t.pad_token_id, bos_token_id=t.bos_token_id,
                                 eos_token_id=t.eos_token_id, tie_word_embeddings=True)
    _save(tied, tmp_path / "tied")
    assert "lm_head.weight" not in load_file(tmp_path / "tied" / "model.safetensors")  # tied: not stored
    with warnings.catch_warnings():
        warnings.simplefilter("error", NeurospecWarning)
        loaded = load_model(tmp_path / "tied", device="cpu")
    assert loaded.model.lm_head.weight is loaded.model.model.embed_tokens.weight
    assert torch.equal(loaded.model.model.embed_tokens.weight, tied.model.embed_tokens.weight)
    load_model(_save(tiny_llama(), tmp_path / "untied"), device="cpu")  # a complete untied model loads too

    _edit_weights(tmp_path / "untied", lambda t: t.pop("lm_head.weight"))  # untied: the output layer is missing
    with pytest.raises(NeurospecError, match=r"missing from the checkpoint.*lm_head\.weight \(1 in all\)"):
        load_model(tmp_path / "untied", device="cpu")
    with pytest.warns(NeurospecWarning, match=r"lm_head\.weight.*loaded anyway"):
        allowed = load_model(tmp_path / "untied", device="cpu", allow_missing_weights=True)
    assert allowed.model.neurospec_loaded_from["complete"] is False


def test_many_missing_weights_are_counted(tmp_path):
    folder = _save(tiny_llama(), tmp_path / "m")
    _edit_weights(folder, lambda t: [t.pop(k) for k in [k for k in t if ".mlp." in k]])
    with pytest.raises(NeurospecError, match=r"model\.layers\.0\.mlp\.down_proj\.weight, .* and 1 more \(6 in all\)"):
        load_model(folder, device="cpu")


# --------------------------------------------------------------------------------------------
# Item 10: a full disk during collect keeps the checkpoint and says how to go on


@pytest.mark.parametrize("fault", ["safetensors", "fsync"])
def test_disk_full_during_collect_keeps_the_checkpoint(ws, tmp_path, fault):
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(f'''
import errno, os
counts = {{"n": 0}}
def _full(name):
    counts["n"] += 1
    return counts["n"] >= 2   # the first language's checkpoint is written, the second's is not
if {fault!r} == "safetensors":
    import safetensors.torch as st
    real = st.save_file
    def save_file(tensors, filename, metadata=None):
        if os.path.basename(str(filename)).startswith(".stats") and _full(filename):
            try:
                from safetensors import SafetensorError
            except ImportError:
                from safetensors._safetensors_rust import SafetensorError
            raise SafetensorError('Error while serializing: IoError(Os {{ code: 28, kind: StorageFull, '
                                  'message: "No space left on device" }})')
        return real(tensors, filename, metadata=metadata)
    st.save_file = save_file
else:
    import neurospec.util.io as io
    real = io._fsync_file
    def fsync(path):
        if os.path.basename(str(path)).startswith(".stats.json.") and _full(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path)
    io._fsync_file = fsync
''')
    out = tmp_path / "stats"
    args = ["collect", "--model", ws / "model", "--corpus", f"eng_Latn={ws / 'eng_Latn.txt'}",
            "--corpus", f"fra_Latn={ws / 'fra_Latn.txt'}", "--out", out, "--quiet"]
    env = {"PYTHONPATH": f"{inject}{os.pathsep}{ROOT}"}
    refuses(args, match=r"disk is full.*last checkpoint is kept.*--resume", watch=_inputs(ws), env=env)
    meta = json.loads((out / "stats.json").read_text())
    assert meta["complete"] is False and meta["progress"]["language"] == 1
    assert not list(out.rglob("*.tmp"))                      # nothing half-written
    done = run_cli([*args, "--resume"])
    assert done.returncode == 0, done.stderr
    finished = json.loads((out / "stats.json").read_text())
    assert finished["complete"] is True and all(finished["tokens"].values())


# --------------------------------------------------------------------------------------------
# Item 11: the command line's own messages


CLI_CASES = [
    ("sweep --factors ,", ["sweep", "--model", "model", "--neurons", "neurons.json", "--parallel", "ntrex",
                           "--languages", "en,fr", "--factors", ",", "--out", "out"], r"^error: --factors ',' has an empty"),
    ("ppl --random-seeds ,", [*_ppl("model"), "--neurons", "neurons.json", "--random-seeds", ","],
     r"^error: --random-seeds ',' has an empty"),
    ("ppl --groups a,,b", [*_ppl("model"), "--neurons", "neurons.json", "--groups", "a,,b"],
     r"^error: --groups 'a,,b' has an empty"),
    ("select lape --top-rate 7", ["select", "lape", "--stats", "nowhere", "--out", "out/l.json", "--top-rate", "7"],
     r"--top-rate 7\.0 is not a rate in \(0, 1\]"),
    ("select lape --bar-rate nan", ["select", "lape", "--stats", "nowhere", "--out", "out/l.json", "--bar-rate",
                                    "nan"], r"--bar-rate nan is not a rate"),
    ("eval --data-dir", ["eval", "xcopa", "--model", "model", "--languages", "et", "--data-dir", "no-such-dir",
                         "--out", "out"], r"pass --data-dir \("),
]


@pytest.mark.parametrize("args, match", [case[1:] for case in CLI_CASES], ids=[case[0] for case in CLI_CASES])
def test_cli_messages_name_the_flag(ws, args, match):
    line = refuses(args, match=match, watch=_inputs(ws), cwd=ws)
    assert ("--groups" not in line or "--groups" in args) and "_rate=" not in line and "data_dir=" not in line


def test_empty_random_seeds_means_none(ws, tmp_path):
    done = run_cli([*_ppl("model"), "--neurons", "neurons.json", "--random-seeds", "", "--out", tmp_path / "p"], cwd=ws)
    assert done.returncode == 0, done.stderr
    rows = [row["name"] for row in json.loads((tmp_path / "p" / "ppl.json").read_text())["rows"]]
    assert rows and not any(name.startswith("random") for name in rows)


STUDY = """model: model
{defaults}steps:
  collect:
    corpus: [eng_Latn=eng_Latn.txt, fra_Latn=fra_Latn.txt]
    mode: sentence
  lape:
    verb: select lape
    stats: $collect
    top_rate: {top_rate}
"""

STUDY_CASES = [
    ("top_rate 7", STUDY.format(defaults="", top_rate=7), r"study\.yaml:9: step 'lape': --top-rate 7 is not in \(0, 1\]"),
    ("unknown language", STUDY.format(defaults="defaults:\n  languages: [en, xx]\n", top_rate=0.1),
     r"study\.yaml:3: step 'collect': --languages: Unknown language 'xx'"),
    ("unknown corpus language", STUDY.format(defaults="", top_rate=0.1).replace("fra_Latn=", "qqq="),
     r"study\.yaml:4: step 'collect': --corpus qqq=\.\.\.: Unknown language 'qqq'"),
]


@pytest.mark.parametrize("text, match", [case[1:] for case in STUDY_CASES], ids=[case[0] for case in STUDY_CASES])
def test_dry_run_checks_values(ws, tmp_path, text, match):
    for name in ("eng_Latn.txt", "fra_Latn.txt"):
        shutil.copy(ws / name, tmp_path / name)
    (tmp_path / "model").symlink_to(ws / "model")
    (tmp_path / "study.yaml").write_text(text)
    refuses(["run", "study.yaml", "--dry-run"], match=match, watch=[tmp_path], cwd=tmp_path)


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    anchors = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    anchors += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]  # a8: 9**9 values
    lines = ["model: toy:small", f"title: [{', '.join(anchors)}]", "steps:", "  collect:", "    corpus_dir: *a8"]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    assert (tmp_path / "bomb.yaml").stat().st_size < 1500
    started = time.perf_counter()
    refuses(["run", "bomb.yaml", "--dry-run"], match=r"bomb\.yaml:1: this YAML expands to more than 100,000 values",
            watch=[tmp_path], cwd=tmp_path)
    assert time.perf_counter() - started < 30


def test_control_characters_in_group_names_never_reach_the_terminal(ws, tmp_path):
    document = json.loads((ws / "neurons.json").read_text())
    groups = document["groups"]
    first = next(iter(groups))
    groups["\x1b[31mred\x1b]0;title\x07"] = groups.pop(first)
    (tmp_path / "ansi.json").write_text(json.dumps(document))
    done = run_cli(["neurons", "show", tmp_path / "ansi.json"])
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "\\x1b[31mred" in done.stdout
    done = run_cli([*_ppl("model"), "--neurons", tmp_path / "ansi.json", "--out", tmp_path / "p"], cwd=ws)
    assert done.returncode == 0 and "\x1b" not in done.stdout + done.stderr


def test_ctrl_c_says_what_is_kept(ws, tmp_path):
    corpus = tmp_path / "long.txt"
    corpus.write_text("The cat sat on the mat because it was warm, and the dog slept by the door.\n" * 4000)
    out = tmp_path / "stats"
    args = ["collect", "--model", ws / "model", "--corpus", f"eng_Latn={corpus}", "--out", out, "--batch-size", "1",
            "--seq-len", "16", "--checkpoint-every", "400", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    # SIGINT as a terminal's Ctrl-C delivers it, even where the test run itself was started in the background
    # (a non-interactive shell's background job inherits SIGINT ignored, and so would collect)
    process = subprocess.Popen([sys.executable, "-m", "neurospec.cli.main", *map(str, args)], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not (out / "stats.json").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "collect finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: interrupted; the last checkpoint in"), stderr
    assert "--resume" in errors[0]
    assert not list(out.rglob("*.tmp"))
    meta = json.loads((out / "stats.json").read_text())
    assert meta["complete"] is False


# --------------------------------------------------------------------------------------------
# Item 7: results say what produced them


def test_weights_fingerprint_follows_the_weights(tmp_path):
    model = tiny_llama()
    folder = _save(model, tmp_path / "a")
    loaded = load_model(folder, device="cpu").model
    assert weights_fingerprint(loaded) == weights_fingerprint(model)        # built in Python or read from files
    assert model_fingerprint(loaded) == model_fingerprint(model)
    as_bf16 = load_model(folder, device="cpu", dtype="bfloat16").model    # the same checkpoint in another dtype
    assert weights_fingerprint(as_bf16) == weights_fingerprint(model)

    changed = Path(shutil.copytree(folder, tmp_path / "b"))
    _edit_weights(changed, lambda t: t["model.layers.1.mlp.down_proj.weight"][3, 5].add_(0.5))
    other = load_model(changed, device="cpu").model
    assert weights_fingerprint(other) != weights_fingerprint(model)
    assert model_fingerprint(other) != model_fingerprint(model)
    assert weights_fingerprint(tiny_llama(seed=1)) != weights_fingerprint(model)
    again = load_model(changed, device="cpu").model                        # remembered per file: same answer
    assert weights_fingerprint(again) == weights_fingerprint(other)


def test_input_sha256_is_the_files(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("some text\n", encoding="utf-8")
    assert input_sha256(path) == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    record = provenance(tiny_llama(), {"corpus": path}, {"limit": 3}, command="neurospec test")
    assert record["inputs"]["corpus"] == {"path": str(path), "sha256": input_sha256(path)}
    assert record["model"]["weights_fingerprint"] == weights_fingerprint(tiny_llama())
    assert record["options"] == {"limit": 3} and record["command"] == "neurospec test"
    path.write_text("other text\n", encoding="utf-8")
    assert describe_input(path)["sha256"] == "sha256:" + hashlib.sha256(b"other text\n").hexdigest()


def test_a_neuron_file_made_on_other_weights_is_warned_about(tmp_path):
    made_on, same_shape = tiny_llama(), tiny_llama(seed=1)
    neurons = neuron_set(made_on)
    neurons.meta.source = {"provenance": provenance(made_on)}
    neurons.save(tmp_path / "n.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error", OtherWeightsWarning)
        NeuronSet.load(tmp_path / "n.json", shape=site_map(made_on))      # its own model: no warning
    with pytest.warns(OtherWeightsWarning, match=r"neuron file '.*n\.json'.*made on other weights"):
        NeuronSet.load(tmp_path / "n.json", shape=site_map(same_shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error", OtherWeightsWarning)
        neuron_set(made_on).validate_for(site_map(same_shape))               # no provenance: nothing to compare


def test_cli_results_record_provenance_and_warn(ws, tmp_path):
    stats, lape = tmp_path / "stats", tmp_path / "lape.json"
    corpora = [arg for language in TEXTS for arg in ("--corpus", f"{language}={ws / f'{language}.txt'}")]
    done = run_cli(["collect", "--model", ws / "model", *corpora, "--mode", "sentence", "--out", stats, "--quiet"])
    assert done.returncode == 0, done.stderr
    done = run_cli(["select", "lape", "--stats", stats, "--out", lape, "--top-rate", "0.1"])
    assert done.returncode == 0, done.stderr
    fingerprint = weights_fingerprint(load_model(ws / "model", device="cpu").model)
    stats_json = json.loads((stats / "stats.json").read_text())
    assert stats_json["model"]["weights_fingerprint"] == fingerprint
    assert stats_json["provenance"]["model"]["weights_fingerprint"] == fingerprint
    record = json.loads(lape.read_text())["meta"]["source"]["provenance"]
    assert record["model"]["weights_fingerprint"] == fingerprint and record["inputs"]["stats"]["made_on"] == fingerprint
    assert record["command"] == "neurospec select lape" and record["options"]["top_rate"] == 0.1

    other = _save(tiny_llama(seed=1), tmp_path / "other")
    for model, warned in ((ws / "model", False), (other, True)):
        out = tmp_path / f"ppl-{model.name}"
        done = run_cli(["ppl", "--model", model, "--neurons", lape, "--stats", stats, "--recipe", "set:p_max",
                        "--corpus", f"eng_Latn={ws / 'eng_Latn.txt'}", "--limit", "2", "--out", out, "--quiet"])
        assert done.returncode == 0, done.stderr
        warnings_shown = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings_shown) == (2 if warned else 0), done.stderr   # the neuron file and the statistics
        assert all("made on other weights" in line for line in warnings_shown)
        ppl = json.loads((out / "ppl.json").read_text())["provenance"]
        assert ppl["model"]["weights_fingerprint"] == weights_fingerprint(load_model(model, device="cpu").model)
        assert ppl["inputs"]["neurons"]["sha256"] == "sha256:" + hashlib.sha256(lape.read_bytes()).hexdigest()
        assert ppl["inputs"]["neurons"]["made_on"] == fingerprint
        assert ppl["inputs"]["corpus:eng_Latn"]["sha256"] == input_sha256(ws / "eng_Latn.txt")
        assert ppl["options"]["recipe"] == "set:p_max"


def test_collect_refuses_to_resume_on_other_weights(ws, tmp_path):
    from neurospec.data.corpora import open_corpus
    from neurospec.measure.collect import CollectOptions, collect

    corpora = [open_corpus(language, ws / f"{language}.txt") for language in TEXTS]
    out = tmp_path / "stats"
    stop = RuntimeError("stop")

    def interrupt(language, batch):
        if language == "fra_Latn":
            raise stop

    with pytest.raises(RuntimeError):
        collect(tiny_llama(), tok(), corpora, out, CollectOptions(batch_size=1), quiet=True, after_batch=interrupt)
    with pytest.raises(NeurospecError, match="collected on another model \\(weights_fingerprint"):
        collect(tiny_llama(seed=1), tok(), corpora, out, CollectOptions(batch_size=1), resume=True, quiet=True)
    collect(tiny_llama(), tok(), corpora, out, CollectOptions(batch_size=1), resume=True, quiet=True)
