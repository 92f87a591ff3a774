"""The measuring verbs as Python functions (neurospec.verbs.measure): collect, select *, neurons import.

    python -m pytest -q tests/test_verbs_measure.py

Each verb called from Python writes what the command writes, records its own options as provenance, and
returns the result an independent call of the engine computes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from families import family
from tiny_tokenizer import tiny_tokenizer
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.cli.measure import write_selection
from neurospec.core.models import load_model
from neurospec.data.corpora import open_corpus
from neurospec.measure import collect as collection
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.select import select_lape as lape_engine
from neurospec.select import select_random as random_engine
from neurospec.select import select_top_mean as top_mean_engine
from neurospec.util.errors import EmptyGroupWarning, NeurospecError
from neurospec.verbs import base, measure
from neurospec.verbs.measure import (
    CollectOptions,
    Mode,
    NeuronsImportOptions,
    SelectLapeOptions,
    SelectRandomOptions,
    SelectTopMeanOptions,
)

SENTENCES = {
    "en": "The river rose after three days of rain, and the bridge was closed to traffic.",
    "fr": "La rivière a monté après trois jours de pluie et le pont a été fermé.",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    tok = tiny_tokenizer()
    family("llama").build(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpora")
    for language, sentence in SENTENCES.items():
        words = sentence.split()
        lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
        (folder / f"{language}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def stats_dir(model_dir, corpus_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "stats"
    measure.collect(CollectOptions(model=str(model_dir), corpus_dir=corpus_dir, out=out, mode=Mode.sentence,
                                   seq_len=32, device="cpu", quiet=True))
    return out


def provenance_of(path: Path) -> dict:
    document = json.loads(path.read_text(encoding="utf-8"))
    return document.get("provenance") or document["meta"]["source"]["provenance"]


def test_collect_with_a_shared_model_equals_the_engine_and_records_its_options(model_dir, corpus_dir, tmp_path):
    lm = load_model(model_dir, device="cpu")
    options = CollectOptions.from_values({"model": str(model_dir), "corpus": [f"en={corpus_dir / 'en.txt'}"],
                                          "out": str(tmp_path / "verb"), "seq_len": "16", "quiet": "true"})
    stats = measure.collect(options, lm=lm)
    engine = collection.collect(lm.model, lm.tokenizer, [open_corpus("en", corpus_dir / "en.txt")], tmp_path / "engine",
                                collection.CollectOptions(seq_len=16), quiet=True)
    assert torch.equal(stats.active, engine.active) and torch.equal(stats.tokens, engine.tokens)
    record = provenance_of(tmp_path / "verb" / "stats.json")
    assert record["command"] == "neurospec collect" and record["options"]["seq_len"] == 16
    assert record["options"]["mode"] == "packed" and "out" not in record["options"]


def test_collect_checks_its_options_before_loading_a_model(tmp_path):
    options = CollectOptions(model="no/such-model", corpus=["en=missing.txt"], out=tmp_path / "s")
    with pytest.raises(NeurospecError, match="missing.txt"):
        measure.collect(options)
    assert not (tmp_path / "s").exists()


def test_rank_device_gives_each_torchrun_process_its_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert base.rank_device(None) == "cuda:1"
    assert base.rank_device("cpu") == "cpu"          # a device given wins
    monkeypatch.delenv("LOCAL_RANK")
    assert base.rank_device(None) is None
    monkeypatch.setenv("RANK", "2")
    assert not measure.is_main_rank()
    monkeypatch.setenv("RANK", "0")
    assert measure.is_main_rank()


def test_select_lape_equals_the_engine_and_names_its_verb(stats_dir, tmp_path):
    from neurospec.measure.stats import ActivationStats

    out = tmp_path / "lape.json"
    chosen = measure.select_lape(SelectLapeOptions(stats=stats_dir, out=out, top_rate=0.1, languages="fr,en"))
    expected = lape_engine(ActivationStats.load(stats_dir), top_rate=0.1, languages=["fr", "en"])
    saved = NeuronSet.load(out)
    assert saved.groups == expected.groups == chosen.groups
    assert all(saved.indices(g, "act", layer).tolist() == expected.indices(g, "act", layer).tolist()
               for g in expected.groups for layer in range(expected.num_layers))
    record = provenance_of(out)
    assert record["command"] == "neurospec select lape" and record["options"]["languages"] == "fr,en"
    assert record["inputs"]["stats"]["path"].endswith("stats")


def test_select_lape_refuses_a_bad_rate_before_reading_and_writes_nothing(tmp_path):
    with pytest.raises(NeurospecError, match=r"--bar-rate 1.5 is not a rate in \(0, 1\]"):
        measure.select_lape(SelectLapeOptions(stats=tmp_path / "none", out=tmp_path / "x.json", bar_rate=1.5))
    assert not (tmp_path / "x.json").exists()


def test_top_mean_and_random_equal_the_engine(stats_dir, tmp_path):
    from neurospec.measure.stats import ActivationStats

    top = measure.select_top_mean(SelectTopMeanOptions(stats=stats_dir, out=tmp_path / "top.json", k=3))
    expected = top_mean_engine(ActivationStats.load(stats_dir), 3)
    assert top.to_dict()["groups"] == expected.to_dict()["groups"]
    drawn = measure.select_random(SelectRandomOptions(like=tmp_path / "top.json", out=tmp_path / "r.json", seed=4))
    assert drawn.to_dict()["groups"] == random_engine(NeuronSet.load(tmp_path / "top.json"), seed=4).to_dict()["groups"]
    with pytest.raises(NeurospecError, match="--out .* is the --like file"):
        measure.select_random(SelectRandomOptions(like=tmp_path / "top.json", out=tmp_path / "top.json"))


def test_neurons_import_round_trips_a_lape_file(tmp_path):
    lists = [[torch.tensor([1, 3]), torch.tensor([], dtype=torch.long)], [torch.tensor([0]), torch.tensor([2, 5])]]
    torch.save(lists, tmp_path / "ref.pth")
    imported = measure.neurons_import(NeuronsImportOptions(file=tmp_path / "ref.pth", groups="en, fr",
                                                           out=tmp_path / "ref.json"))
    assert list(imported.groups) == ["en", "fr"]
    assert [t.tolist() for t in NeuronSet.load(tmp_path / "ref.json").to_lape()[1]] == [[0], [2, 5]]
    assert provenance_of(tmp_path / "ref.json")["command"] == "neurospec neurons import"
    with pytest.raises(NeurospecError, match=r"--groups 'en,,fr' has an empty item"):
        measure.neurons_import(NeuronsImportOptions(file=tmp_path / "ref.pth", groups="en,,fr", out=tmp_path / "b.json"))


def test_write_selection_prints_a_saved_set_without_saving_it_again(tmp_path):
    neurons = NeuronSet({"en": {"act": {0: [1]}}, "fr": {}},
                        NeuronSetMeta(num_layers=2, widths={"act": 4}, method="lape", params={"top_rate": 0.01}))
    neurons.meta.source = {"provenance": {"command": "neurospec select lape"}}
    neurons.save(tmp_path / "set.json")
    before = (tmp_path / "set.json").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the verb that saved it warned already
        write_selection(neurons, tmp_path / "set.json")
    assert (tmp_path / "set.json").read_bytes() == before


def test_saving_a_selection_warns_about_its_empty_groups(tmp_path):
    neurons = NeuronSet({"en": {"act": {0: [1]}}, "fr": {}},
                        NeuronSetMeta(num_layers=2, widths={"act": 4}, method="lape", params={"top_rate": 0.01}))
    with pytest.warns(EmptyGroupWarning, match="fr: no neurons selected by lape"):
        measure.save_selection(neurons, tmp_path / "set.json", "select lape", SelectLapeOptions(stats=tmp_path,
                                                                                               out=tmp_path / "set.json"))
    assert NeuronSet.load(tmp_path / "set.json") == neurons


def test_the_command_and_the_function_write_the_same_selection(stats_dir, tmp_path):
    result = CliRunner().invoke(app, ["select", "top-mean", "--stats", str(stats_dir), "--out",
                                      str(tmp_path / "cli.json"), "--k", "2"])
    assert result.exit_code == 0, result.output
    measure.select_top_mean(SelectTopMeanOptions(stats=stats_dir, out=tmp_path / "py.json", k=2))
    cli, py = (json.loads((tmp_path / name).read_text()) for name in ("cli.json", "py.json"))
    for document in (cli, py):
        document["meta"]["source"]["provenance"].pop("created")
    assert cli == py
