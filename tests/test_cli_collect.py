"""`neurospec collect`, `select` and `stats show` as a user runs them, including a real kill and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from families import family
from tiny_tokenizer import tiny_tokenizer
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.measure.stats import ActivationStats
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.select import select_lape

runner = CliRunner()
SENTENCES = {
    "en": "The river rose after three days of rain, and the bridge was closed to traffic.",
    "fr": "La rivière a monté après trois jours de pluie et le pont a été fermé.",
    "de": "Der Fluss stieg nach drei Tagen Regen, und die Brücke wurde gesperrt.",
}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    tok = tiny_tokenizer()
    family("llama").build(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def corpus_dir(tmp_path):
    folder = tmp_path / "corpora"
    folder.mkdir()
    for lang, sentence in SENTENCES.items():
        words = sentence.split()
        lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))]  # varied, same language
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_collect_select_and_show(model_dir, corpus_dir, tmp_path):
    stats_dir = tmp_path / "stats"
    result = run("collect", "--model", model_dir, "--corpus-dir", corpus_dir, "--out", stats_dir, "--seq-len", 16,
                 "--batch-size", 2, "--quiet")
    assert result.exit_code == 0, result.output
    stats = ActivationStats.load(stats_dir)
    assert stats.languages == ["deu_Latn", "eng_Latn", "fra_Latn"] and (stats.tokens > 0).all()

    shown = run("stats", "show", stats_dir)
    assert shown.exit_code == 0 and "eng_Latn" in shown.output and "mean P(>0)" in shown.output
    as_json = json.loads(run("stats", "show", stats_dir, "--json").output)
    assert as_json["tokens"]["eng_Latn"] == int(stats.tokens[1]) and as_json["options"]["seq_len"] == 16

    out = tmp_path / "lape.json"
    result = run("select", "lape", "--stats", stats_dir, "--out", out, "--top-rate", 0.05)
    assert result.exit_code == 0, result.output
    assert NeuronSet.load(out) == select_lape(stats, top_rate=0.05)
    assert NeuronSet.load(out).meta.params["top_rate"] == 0.05

    random_out = tmp_path / "random.json"
    assert run("select", "random", "--like", out, "--out", random_out, "--seed", 3).exit_code == 0
    chosen, control = NeuronSet.load(out), NeuronSet.load(random_out)
    for group in chosen.groups:
        assert torch.equal(chosen.per_layer_counts(group, "act"), control.per_layer_counts(group, "act"))


def test_sentence_mode_and_baselines(model_dir, corpus_dir, tmp_path):
    stats_dir = tmp_path / "stats"
    result = run("collect", "--model", model_dir, "--corpus", f"en={corpus_dir / 'en.txt'}", "--corpus",
                 f"fr={corpus_dir / 'fr.txt'}", "--out", stats_dir, "--mode", "sentence", "--sample-sentences", 5,
                 "--quiet")
    assert result.exit_code == 0, result.output
    stats = ActivationStats.load(stats_dir)
    assert stats.sentence_means("en").shape[0] == 5
    for verb, extra in (("all-active", []), ("top-mean", ["--k", 7]), ("lape", ["--top-k", 4])):
        out = tmp_path / f"{verb}.json"
        result = run("select", verb, "--stats", stats_dir, "--out", out, *extra)
        assert result.exit_code == 0, result.output
        assert set(NeuronSet.load(out).groups) == {"eng_Latn", "fra_Latn"}
    assert NeuronSet.load(tmp_path / "top-mean.json").count("eng_Latn") == 7


def test_no_bos_is_recorded_and_resume_checks_it(model_dir, corpus_dir, tmp_path):
    common = ["--model", model_dir, "--corpus", f"en={corpus_dir / 'en.txt'}", "--mode", "sentence",
              "--sample-sentences", 3, "--quiet"]
    assert run("collect", *common, "--out", tmp_path / "bos").exit_code == 0
    result = run("collect", *common, "--no-bos", "--out", tmp_path / "plain")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "plain" / "stats.json").read_text())["options"]["bos"] is False
    assert json.loads((tmp_path / "bos" / "stats.json").read_text())["options"]["bos"] is True
    plain, with_bos = ActivationStats.load(tmp_path / "plain"), ActivationStats.load(tmp_path / "bos")
    assert torch.equal(plain.tokens, with_bos.tokens) and not torch.allclose(plain.sum, with_bos.sum)
    result = run("collect", *common, "--out", tmp_path / "plain", "--resume")  # --no-bos left out
    assert result.exit_code == 2 and "options differ" in result.output


def test_user_errors_are_one_line_and_write_nothing(model_dir, corpus_dir, tmp_path):
    out = tmp_path / "stats"
    cases = [
        (["--corpus", "en"], "LANGUAGE=PATH"),
        (["--corpus", f"en={tmp_path / 'missing.txt'}"], "does not exist"),
        (["--corpus", f"xx-unknown={corpus_dir / 'en.txt'}"], "language"),
        ([], "no corpus"),
        (["--corpus", f"en={corpus_dir / 'en.txt'}", "--site", "mlp"], "unknown site"),
    ]
    for extra, message in cases:
        result = run("collect", "--model", model_dir, "--out", out, "--quiet", *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output, (extra, result.output)
        assert not out.exists()
    result = run("select", "lape", "--stats", tmp_path / "nothing", "--out", tmp_path / "x.json")
    assert result.exit_code == 2 and "does not exist" in result.output and not (tmp_path / "x.json").exists()


def test_a_killed_collect_resumes_to_the_files_of_an_uninterrupted_run(model_dir, corpus_dir, tmp_path):
    big = tmp_path / "big.txt"
    lines = (corpus_dir / "en.txt").read_text(encoding="utf-8").splitlines()
    big.write_text("\n".join(lines * 40) + "\n", encoding="utf-8")
    base = [sys.executable, "-m", "neurospec.cli.main", "collect", "--model", str(model_dir), "--corpus", f"en={big}",
            "--corpus", f"fr={corpus_dir / 'fr.txt'}", "--seq-len", "16", "--batch-size", "1",
            "--checkpoint-every", "64", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    subprocess.run(base + ["--out", str(whole)], check=True, env=env, timeout=300)

    killed = tmp_path / "killed"
    process = subprocess.Popen(base + ["--out", str(killed)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        meta = killed / "stats.json"
        if meta.exists() and json.loads(meta.read_text()).get("progress", {}).get("batch", 0) >= 8:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed; give it more text"
    assert json.loads((killed / "stats.json").read_text())["complete"] is False
    subprocess.run(base + ["--out", str(killed), "--resume"], check=True, env=env, timeout=300)
    a, b = ActivationStats.load(whole), ActivationStats.load(killed)
    for name in ("tokens", "active", "sum", "sum_sq", "max"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not [p for p in killed.rglob("*") if p.name.startswith(".")], "temporary files left behind"
