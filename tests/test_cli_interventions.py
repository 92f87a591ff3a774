"""`neurospec ppl / steer / lss / sweep / eval` as a user runs them: files equal the Python API's results."""

from __future__ import annotations

import json
import re

import pytest
from interventions_common import TEXTS, neuron_set, saved_study
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.core.models import load_model
from neurospec.data.lss_items import items_from_parallel, parallel_sentences
from neurospec.evaluate.lss import lss_matrix
from neurospec.evaluate.perplexity import perplexity_matrix
from neurospec.measure.stats import ActivationStats
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A saved tiny Llama, its neuron set (eng/fra/deu) and sentence-mode statistics."""
    return saved_study(tmp_path_factory.mktemp("study"), lambda model: {"neurons.json": neuron_set(model)})


def loaded(study):
    return load_model(study / "model", device="cpu")


def common(study):
    return ["--model", study / "model", "--neurons", study / "neurons.json", "--quiet"]


def test_ppl_writes_the_api_matrix(study, tmp_path):
    corpora = [a for lang in TEXTS for a in ("--corpus", f"{lang}={study / f'{lang}.txt'}")]
    result = run("ppl", *common(study), *corpora, "--random-seeds", "0", "--out", tmp_path / "ppl")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "ppl" / "ppl.json").read_text())
    lm = loaded(study)
    api = perplexity_matrix(lm.model, lm.tokenizer, TEXTS, NeuronSet.load(study / "neurons.json"), random_seeds=(0,))
    for row, cols in api.ppl.items():
        for lang, value in cols.items():
            assert saved["cells"][row][lang]["ppl"] == pytest.approx(value, rel=1e-6)
    assert (tmp_path / "ppl" / "ppl_change.csv").exists()


def test_lss_and_sweep_on_ntrex(study, tmp_path):
    args = ["--stats", study / "stats", "--parallel", "ntrex", "--languages", "en,fr,de", "--limit", "6",
            "--bootstrap", "100"]
    result = run("lss", *common(study), *args, "--recipe", "set:p_max*4", "--out", tmp_path / "lss")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "lss" / "lss.json").read_text())
    lm = loaded(study)
    items = items_from_parallel(parallel_sentences("ntrex", ["en", "fr", "de"]), limit=6)
    api = lss_matrix(lm.model, lm.tokenizer, items, NeuronSet.load(study / "neurons.json"), recipe="set:p_max*4",
                     stats=ActivationStats.load(study / "stats"), bootstrap=100)
    assert saved["lss"] == api.lss
    assert {"random", "other"} <= set(saved["cells"][0]["controls"])
    result = run("sweep", *common(study), *args, "--values", "p_max", "--factors", "1,4", "--out", tmp_path / "sweep")
    assert result.exit_code == 0, result.output
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [c["recipe"] for c in sweep["curve"]] == ["set:p_max", "set:p_max*4"]
    assert sweep["curve"][1]["mean_lss"] == pytest.approx(api.mean_offdiagonal)
    best = max(sweep["curve"], key=lambda c: c["mean_lss"])
    assert sweep["best"]["name"] == best["recipe"]


def test_steer_from_prompt_files(study, tmp_path):
    prompts = tmp_path / "en.txt"
    prompts.write_text("The cat sat on\nShe went to\n", encoding="utf-8")
    result = run("steer", *common(study), "--stats", study / "stats", "--prompts", f"en={prompts}", "--targets", "fr",
                 "--max-new-tokens", "4", "--langid-languages", "study", "--out", tmp_path / "steer")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "steer" / "steer.json").read_text())
    assert [r["name"] for r in saved["rows"]] == ["none", "fra_Latn", "random0:fra_Latn"]
    assert saved["settings"]["candidates"] == ["eng_Latn", "fra_Latn"]


def test_eval_self_cross(study, tmp_path):
    result = run("eval", "xcopa", *common(study), "--stats", study / "stats", "--languages", "et,it", "--targets", "fr",
                 "--limit", "4", "--out", tmp_path / "xcopa")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "xcopa" / "xcopa.json").read_text())
    assert saved["rows"] == ["none", "fra_Latn"] and saved["languages"] == ["est_Latn", "ita_Latn"]
    assert saved["cells"]["none"]["est_Latn"]["n"] == 4


def test_bad_input_is_one_clear_line_and_no_file(study, tmp_path):
    wrong = tmp_path / "wrong.json"
    NeuronSet({"fra_Latn": {"act": {5: [1]}}}, NeuronSetMeta(num_layers=8, widths={"act": 999})).save(wrong)
    out = tmp_path / "out"
    spanish = tmp_path / "spanish.json"
    NeuronSet.load(study / "neurons.json").rename({"deu_Latn": "spa_Latn"}).save(spanish)
    cases = [
        (["lss", "--model", study / "model", "--neurons", wrong, "--parallel", "ntrex", "--languages", "en,fr"], "layer|width"),
        (["lss", *common(study), "--stats", study / "stats", "--parallel", "ntrex", "--languages", "en,ja",
          "--targets", "ja", "--limit", "3"], "no group 'jpn_Jpan'.*it has: eng_Latn"),
        (["lss", *common(study)[:2], "--neurons", spanish, "--stats", study / "stats", "--parallel", "ntrex",
          "--languages", "en,es", "--limit", "3"], "'spa_Latn' is not in these statistics"),
        (["steer", *common(study), "--prompts", f"en={tmp_path / 'none.txt'}"], "none.txt"),
        (["lss", *common(study), "--parallel", "ntrex", "--languages", "en,fr", "--limit", "3"], "pass --stats"),
        (["eval", "xcopa-nope", *common(study), "--languages", "et"], "unknown task|xcopa-nope"),
        (["sweep", *common(study), "--stats", study / "stats", "--parallel", "ntrex", "--languages", "en,fr",
          "--factors", "1,x"], "--factors"),
    ]
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    cases.append((["steer", *common(study), "--prompts", f"en={tmp_path / 'empty.txt'}"], "is empty"))
    for args, match in cases:
        result = run(*args, "--out", out)
        assert result.exit_code == 2, (args, result.output)
        assert re.search(match, result.output), (match, result.output)
        assert not out.exists()
