"""`neurospec explain`: each selected neuron's activation probability per language, its groups and its top
contexts, equal to the statistics and the kept contexts read independently."""

from __future__ import annotations

import json

from interventions_common import TEXTS, neuron_set, tiny_llama, tok
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.data.corpora import open_corpus
from neurospec.measure.collect import CollectOptions, collect
from neurospec.measure.contexts import TopContexts
from neurospec.measure.stats import ActivationStats

runner = CliRunner()


def test_explain_shows_probabilities_groups_and_marked_contexts(tmp_path):
    model = tiny_llama()
    corpora = []
    for lang, lines in TEXTS.items():
        (tmp_path / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        corpora.append(open_corpus(lang, tmp_path / f"{lang}.txt"))
    collect(model, tok(), corpora, tmp_path / "stats", CollectOptions(top_contexts=3, batch_size=4), quiet=True)
    lape = neuron_set(model)
    lape = lape.union(lape.rename({"fra_Latn": "both"}).select("both"))    # a neuron in two groups
    lape.save(tmp_path / "lape.json")
    done = runner.invoke(app, ["explain", str(tmp_path / "lape.json"), "--stats", str(tmp_path / "stats"),
                               "--groups", "fr", "--limit", "4", "--contexts", "2", "--json"])
    assert done.exit_code == 0, done.output
    explained = json.loads(done.output)
    stats = ActivationStats.load(tmp_path / "stats")
    contexts = TopContexts.load(tmp_path / "stats", tokenizer=tok())
    probabilities = stats.probabilities()
    expected = sorted((layer, int(i)) for _, _, layer, idx in lape.entries(["fra_Latn"]) for i in idx.tolist())[:4]
    assert [(n["layer"], n["neuron"]) for n in explained["neurons"]] == expected
    for neuron in explained["neurons"]:
        assert neuron["group"] == "fra_Latn" and neuron["groups"] == ["fra_Latn", "both"]
        for g, lang in enumerate(stats.languages):
            assert neuron["probability"][lang] == float(probabilities[g, neuron["layer"], neuron["neuron"]])
            kept = contexts.neuron(lang, neuron["layer"], neuron["neuron"])[:2]
            assert [c["value"] for c in neuron["contexts"][lang]] == [c.value for c in kept]
    plain = runner.invoke(app, ["explain", str(tmp_path / "lape.json"), "--stats", str(tmp_path / "stats"),
                                "--limit", "1"], env={"COLUMNS": "200"})
    assert plain.exit_code == 0 and "P(>0)" in plain.output and "layer" in plain.output


def test_explain_without_contexts_says_how_to_get_them(tmp_path):
    from interventions_common import sentence_stats

    model = tiny_llama()
    sentence_stats(model, tmp_path)
    neuron_set(model).save(tmp_path / "lape.json")
    done = runner.invoke(app, ["explain", str(tmp_path / "lape.json"), "--stats", str(tmp_path / "stats"),
                               "--limit", "1"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "collect with --top-contexts K" in done.output
    bad = runner.invoke(app, ["explain", str(tmp_path / "lape.json"), "--stats", str(tmp_path / "stats"),
                              "--groups", "es"])
    assert bad.exit_code == 2 and "unknown group 'es'" in bad.output
