"""A group without neurons is a result, not an error: every verb that intervenes on groups skips it with one
warning line, records it in its output JSON, and gives the other groups exactly what a set without it gives.

Naming only empty groups is still a one-line error that writes nothing.
"""

from __future__ import annotations

import json

import pytest
from interventions_common import TEXTS, neuron_set, saved_study, tiny_llama, tok
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.cli.measure import write_selection
from neurospec.data.items import MCItem
from neurospec.evaluate.masking import mask_eval, masking_conditions
from neurospec.evaluate.perplexity import perplexity_matrix
from neurospec.interventions.targets import empty_reason, summary_reason, target_groups
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.util.errors import EmptyGroupWarning, NeurospecError

runner = CliRunner()
EMPTY = "deu_Latn"
KEPT = ["eng_Latn", "fra_Latn"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def with_empty_group(model) -> NeuronSet:
    """The shared eng/fra/deu neuron set with German's neurons taken away (as a selection that kept none)."""
    full = neuron_set(model)
    data = {group: {site: {layer: full.indices(group, site, layer) for layer in full.layers(group, site)}
                    for site in full.sites(group)} if group != EMPTY else {} for group in full.groups}
    meta = NeuronSetMeta(num_layers=full.num_layers, widths=dict(full.meta.widths), method="lape",
                         params={"top_rate": 0.01})
    return NeuronSet(data, meta)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return saved_study(tmp_path_factory.mktemp("empty"), lambda model: {
        "neurons.json": with_empty_group(model), "kept.json": with_empty_group(model).select(*KEPT)})


def warning_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning:")]


def check_skipped(result, document: dict) -> None:
    """Exit 0, exactly one warning line naming the empty group, and the group recorded with its reason."""
    assert result.exit_code == 0, result.output
    lines = warning_lines(result.output)
    assert len(lines) == 1 and f"skipping {EMPTY}: no neurons selected" in lines[0], result.output
    assert list(document["empty_groups"]) == [EMPTY]
    assert document["empty_groups"][EMPTY] == "no neurons selected by lape (top_rate 0.01)"


def verb_args(study, verb: str) -> list:
    lss = ["--stats", study / "stats", "--parallel", "ntrex", "--languages", "en,fr,de", "--sources", "en,fr,de",
           "--limit", "4", "--bootstrap", "20"]
    return {
        "ppl": [*(a for lang in TEXTS for a in ("--corpus", f"{lang}={study / f'{lang}.txt'}")), "--random-seeds", "0"],
        "lss": [*lss, "--controls", "random,other"],
        "sweep": [*lss, "--values", "p_max", "--factors", "1,4"],
        "steer": ["--stats", study / "stats", "--prompts", f"en={study / 'eng_Latn.txt'}", "--max-new-tokens", "3",
                  "--langid-languages", "en,fr,de"],
        "eval": ["--stats", study / "stats", "--languages", "et,it", "--limit", "3"],  # XCOPA has none of en/fr/de
    }[verb]


OUTPUTS = {"ppl": "ppl.json", "lss": "lss.json", "sweep": "sweep.json", "steer": "steer.json", "eval": "xcopa.json"}


def invoke(study, verb: str, neurons: str, out, *extra):
    head = ["eval", "xcopa"] if verb == "eval" else [verb]
    return run(*head, "--model", study / "model", "--neurons", study / neurons, "--quiet", *verb_args(study, verb),
               *extra, "--out", out)


def without_provenance(document):
    """The document less what differs between two runs of the same computation (times, paths, the skip record,
    the record of the inputs and options: ``provenance``)."""
    if isinstance(document, dict):
        return {k: without_provenance(v) for k, v in document.items()
                if k not in ("empty_groups", "created", "path", "provenance")}
    if isinstance(document, list):
        return [without_provenance(v) for v in document]
    return document


@pytest.mark.parametrize("verb", list(OUTPUTS))
def test_every_verb_skips_an_empty_group_and_records_it(study, tmp_path, verb):
    # eval's default targets are the evaluated languages' groups: name them (one empty among them)
    targets = (["--groups", "fr,de"], ["--groups", "fr"]) if verb == "eval" else ([], [])
    result = invoke(study, verb, "neurons.json", tmp_path / "with", *targets[0])
    document = json.loads((tmp_path / "with" / OUTPUTS[verb]).read_text())
    check_skipped(result, document)
    # the other groups' results are those of the same set without the empty group
    alone = invoke(study, verb, "kept.json", tmp_path / "alone", *targets[1])
    assert alone.exit_code == 0 and not warning_lines(alone.output), alone.output
    expected = json.loads((tmp_path / "alone" / OUTPUTS[verb]).read_text())
    assert expected["empty_groups"] == {}
    assert without_provenance(document) == without_provenance(expected)


@pytest.mark.parametrize("verb", list(OUTPUTS))
def test_asking_for_only_empty_groups_is_an_error_that_writes_nothing(study, tmp_path, verb):
    target = ["--groups", "de"]
    result = invoke(study, verb, "neurons.json", tmp_path / "out", *target)
    assert result.exit_code == 2, result.output
    assert "every group asked for has no neurons" in result.output and EMPTY in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1
    assert not (tmp_path / "out").exists()


def test_mask_eval_and_finetune(study, tmp_path):
    common = ["--model", study / "model", "--neurons", study / "neurons.json", "--quiet"]
    result = run("mask-eval", *common, "--benchmarks", "qnli", "--limit", 3, "--out", tmp_path / "mask")
    document = json.loads((tmp_path / "mask" / "mask_eval.json").read_text())
    check_skipped(result, document)
    assert document["conditions"] == ["none", *KEPT]
    refused = run("mask-eval", *common, "--groups", EMPTY, "--benchmarks", "qnli", "--limit", 3, "--out",
                  tmp_path / "refused")
    assert refused.exit_code == 2 and "every group asked for has no neurons" in refused.output
    assert not (tmp_path / "refused").exists()
    # finetune ranks layers by one group's neurons: an empty group ranks nothing
    refused = run("finetune", *common, "--groups", EMPTY, "--layers", "richest:1", "--data", "qnli", "--samples", 2,
                  "--evaluate", "qnli", "--eval-limit", 2, "--out", tmp_path / "ft")
    assert refused.exit_code == 2 and EMPTY in refused.output and not (tmp_path / "ft").exists()


def test_the_python_api_warns_once_and_keeps_the_reason(study):
    model = tiny_llama()
    neurons = with_empty_group(model)
    with pytest.warns(EmptyGroupWarning) as caught:
        matrix = perplexity_matrix(model, tok(), {k: v[:2] for k, v in TEXTS.items()}, neurons)
    assert len(caught) == 1 and matrix.empty_groups == {EMPTY: "no neurons selected by lape (top_rate 0.01)"}
    assert [row.name for row in matrix.rows] == ["none", *KEPT]
    with pytest.warns(EmptyGroupWarning):
        conditions = masking_conditions(neurons)
    items = [MCItem("Is it warm?", ("yes", "no"), gold=0, group="x")]
    result = mask_eval(model, tok(), {"q": items}, conditions, scoring="loglik", quiet=True)
    assert result.empty_groups == {EMPTY: "no neurons selected by lape (top_rate 0.01)"}
    with pytest.raises(NeurospecError, match="every group asked for has no neurons"):
        target_groups(neurons, ["de"], verb="ppl")
    with pytest.warns(EmptyGroupWarning):
        assert target_groups(neurons, ["de", "fr"], verb="ppl").groups == ["fra_Latn"]


def test_a_selection_warns_about_groups_it_left_empty(tmp_path):
    with pytest.warns(EmptyGroupWarning, match=f"{EMPTY}: no neurons selected by lape"):
        write_selection(with_empty_group(tiny_llama()), tmp_path / "set.json")
    assert NeuronSet.load(tmp_path / "set.json").is_empty(EMPTY)


def test_the_reason_quotes_the_selections_own_counts_for_the_group_even_inside_a_union():
    specific = NeuronSet({"China": {}, "Iran": {"gate_pre": {0: [1]}}},
                         NeuronSetMeta(num_layers=2, widths={"gate_pre": 8}, method="culture-specific",
                                       params={"rate": 0.003, "sites": ["gate_pre"],
                                               "counts": {"China": {"top": 4, "below_z": 4, "kept": 0}}}))
    general = NeuronSet({"culture-general": {"gate_pre": {1: [2]}}},
                        NeuronSetMeta(num_layers=2, widths={"gate_pre": 8}, method="culture-general"))
    expected = "no neurons selected by culture-specific (rate 0.003, top 4, below_z 4, kept 0)"
    assert empty_reason(specific, "China") == expected
    assert empty_reason(general.union(specific), "China") == expected
    assert empty_reason(NeuronSet({"x": {}}, num_layers=1), "x") == "no neurons selected"


def test_several_groups_with_different_counts_share_one_line_that_says_where_each_reason_is():
    reasons = {"China": "no neurons selected by culture-specific (top 4, kept 0)",
               "Spain": "no neurons selected by culture-specific (top 6, kept 0)"}
    assert summary_reason(reasons) == ("no neurons selected by culture-specific (each group's counts under "
                                       "empty_groups in the output)")
    assert summary_reason({"China": reasons["China"]}) == reasons["China"]
