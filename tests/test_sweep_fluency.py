"""A sweep that generates: per setting the target-language share and fluency, and the choice within a fluency bound.

Each setting's numbers are checked against steer_generation run alone with that setting's recipe (greedy, so the
same continuations) and pooled here by hand; the fluent choice against a selection over the recorded numbers,
with bounds that keep every, some and no setting; the report's figure and table; older sweep.json files.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from interventions_common import TEXTS, neuron_set, saved_study, sentence_stats, tiny_llama, tok
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.data.lss_items import items_from_parallel
from neurospec.evaluate.fluency import distinct_n, repeated_token_share
from neurospec.evaluate.fluent_sweep import SteeringPlan, choose_fluent, fluency_bound
from neurospec.evaluate.intervals import newcombe_paired, wilson
from neurospec.evaluate.steering import steer_generation
from neurospec.evaluate.sweep import sweep
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.report.discover import Artifact
from neurospec.report.sections.lss import sweep_section
from neurospec.results.steering import FluencyComparison, Measure, Share
from neurospec.results.sweep import SettingSteering, SweepRecord
from neurospec.util.errors import NeurospecError

RECIPES = ["set:p_max", "set:p_max*3", "set:p_max*10"]
CANDIDATES = ["eng_Latn", "fra_Latn", "deu_Latn"]
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A generating sweep of three factors on a tiny Llama, its inputs, and the saved sweep.json."""
    folder = tmp_path_factory.mktemp("fluent")
    model = tiny_llama()
    neurons, stats = neuron_set(model, per_group=20), sentence_stats(model, folder)
    n = min(len(t) for t in TEXTS.values())
    items = items_from_parallel({lang: list(enumerate(lines))[:n] for lang, lines in TEXTS.items()})
    prompts = {lang: lines[:3] for lang, lines in TEXTS.items()}
    plan = SteeringPlan(prompts, NEW_TOKENS, fluency_bound("distinct_2"), CANDIDATES)
    result = sweep(model, tok(), items, neurons, RECIPES, stats=stats, bootstrap=100, steering=plan)
    path = result.save(folder / "sweep")
    return dict(model=model, neurons=neurons, stats=stats, prompts=prompts, items=items, result=result, path=path,
                document=json.loads(path.read_text()))


def test_each_setting_equals_steer_run_alone_with_its_recipe(swept):
    for recipe, point in zip(RECIPES, swept["document"]["curve"]):
        alone = steer_generation(swept["model"], tok(), swept["prompts"], swept["neurons"], recipe=recipe,
                                 stats=swept["stats"], max_new_tokens=NEW_TOKENS, candidates=CANDIDATES)
        outputs = alone.outputs
        lines = [(row.name, source, row.target) for row in alone.rows if row.kind == "group"
                 for source in alone.sources if source != row.target]
        assert len(lines) == 3 * 2   # each group's target from the two other languages' prompts
        steered = [o for row, source, _ in lines for o in outputs[row][source]]
        unmodified = [o for _, source, _ in lines for o in outputs["none"][source]]
        hits = [o["language"] == target for row, source, target in lines for o in outputs[row][source]]
        base_hits = [o["language"] == target for _, source, target in lines for o in outputs["none"][source]]
        got = point["steering"]
        assert (got["k"], got["n"], got["ci95"]) == (sum(hits), len(hits), list(wilson(sum(hits), len(hits))))
        assert (got["baseline"]["k"], got["baseline"]["n"]) == (sum(base_hits), len(base_hits))
        assert got["change_ci95"] == list(newcombe_paired(hits, base_hits))
        fluency = got["fluency"]
        for name, measured in (("perplexity", steered), ("perplexity", unmodified)):
            value = math.exp(sum(o["nll"] for o in measured) / sum(len(o["token_ids"]) for o in measured))
            recorded = fluency[name]["value"] if measured is steered else fluency[name]["baseline"]["value"]
            assert recorded == pytest.approx(value, rel=1e-12)
        for name, rule in (("distinct_2", lambda ids: distinct_n(ids, 2)), ("distinct_1", lambda ids: distinct_n(ids, 1)),
                           ("repeated_token_share", repeated_token_share)):
            for measured, recorded in ((steered, fluency[name]["value"]), (unmodified, fluency[name]["baseline"]["value"])):
                values = [rule(o["token_ids"]) for o in measured]
                assert recorded == pytest.approx(sum(values) / len(values), rel=1e-12), name
        assert got["degradation"] == pytest.approx(fluency["distinct_2"]["baseline"]["value"]
                                                   - fluency["distinct_2"]["value"], abs=1e-12)
        saved = [json.loads(line) for line in
                 (swept["path"].parent / point["folder"] / "generations.jsonl").read_text().splitlines()]
        assert [(g["row"], g["source"], g["text"], g["token_ids"]) for g in saved] == [
            (row, source, o["text"], o["token_ids"]) for row, per in outputs.items() for source, outs in per.items()
            for o in outs]
    assert swept["document"]["best"]["name"] == max(swept["document"]["curve"], key=lambda p: p["mean_lss"])["recipe"]


def degradation_by_hand(fluency: dict, measure: str) -> float | None:
    value, base = fluency[measure]["value"], fluency[measure]["baseline"]["value"]
    if value is None or base is None:
        return None
    return {"perplexity": value / base if base else None, "repeated_token_share": value - base}.get(
        measure, base - value)


def selection_by_hand(curve: list[dict], measure: str, bound: float) -> str | None:
    """The recorded setting with the highest share whose measure keeps to the bound; the first on ties."""
    best = None
    for point in curve:
        loss = degradation_by_hand(point["steering"]["fluency"], measure)
        if loss is not None and loss <= bound and (best is None or point["steering"]["share"] > best["steering"]["share"]):
            best = point
    return best["recipe"] if best else None


@pytest.mark.parametrize("measure", ["distinct_2", "perplexity", "repeated_token_share"])
def test_the_fluent_choice_is_the_best_share_within_the_bound(swept, measure):
    result = swept["result"]
    losses = sorted({degradation_by_hand(p["steering"]["fluency"], measure) for p in
                     dataclasses.replace(result, bound=fluency_bound(measure)).to_json()["curve"]})
    bounds = [max(0.0, losses[0] - 0.5), *[max(0.0, loss) for loss in losses], losses[-1] + 1]
    seen = set()
    for bound in bounds:
        document = dataclasses.replace(result, bound=fluency_bound(measure, bound)).to_json()
        expected = selection_by_hand(document["curve"], measure, bound)
        seen.add(expected)
        assert (document["best_fluent"] or {}).get("name") == expected, (measure, bound)
        assert document["fluency_bound"] == {"measure": measure, "bound": bound,
                                             "rule": fluency_bound(measure, bound).rule}
        within = [p["steering"]["within_bound"] for p in document["curve"]]
        assert within == [degradation_by_hand(p["steering"]["fluency"], measure) <= bound for p in document["curve"]]
        if expected is None:
            assert document["best_fluent_reason"].startswith("no setting of 3 keeps to the bound")
        else:
            assert "highest share" in document["best_fluent_reason"]
    assert None in seen or losses[0] <= 0   # a bound keeping no setting was tried unless one never worsens


def comparison(value: float, baseline: float) -> FluencyComparison:
    return FluencyComparison(Measure(value, (value, value), 4), Measure(baseline, (baseline, baseline), 4), (0.0, 0.0))


def summary(k: int, distinct_2: float, bound) -> SettingSteering:
    fluency = {"distinct_2": comparison(distinct_2, 0.9)}
    loss = bound.degradation(fluency["distinct_2"])
    return SettingSteering(Share(k, 10, wilson(k, 10)), Share(0, 10, wilson(0, 10)), (0.0, 0.1), fluency, loss,
                           loss <= bound.bound)


def test_choose_fluent_skips_the_degenerate_best_share_and_takes_the_first_of_ties():
    bound = fluency_bound("distinct_2", 0.2)
    settings = [summary(9, 0.3, bound), summary(4, 0.8, bound), summary(4, 0.85, bound), summary(2, 0.9, bound)]
    index, reason = choose_fluent(settings, bound, ["x10", "x3a", "x3b", "x1"])
    assert index == 1 and "3 of 4 settings" in reason
    index, reason = choose_fluent(settings[:1], bound, ["x10"])
    assert index is None and "the closest is x10 at 0.6" in reason
    with pytest.raises(NeurospecError, match="--fluency-measure"):
        fluency_bound("fluency")
    with pytest.raises(NeurospecError, match="--fluency-bound"):
        fluency_bound("perplexity", -1)


def test_degenerate_settings_leave_no_fluent_choice(tmp_path):
    """A neuron that writes only " A": set high, every continuation is " A A A ...", far outside the bound."""
    model = tiny_llama()
    a = tok()(" A", add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        model.lm_head.weight[a] = 0
        model.lm_head.weight[a, 0] = 5.0
        model.model.layers[-1].mlp.down_proj.weight[:, 0] = 0
        model.model.layers[-1].mlp.down_proj.weight[0, 0] = 1.0
    neurons = NeuronSet({"fra_Latn": {"down_in": {1: [0]}}},
                        NeuronSetMeta(num_layers=2, widths={"down_in": model.config.intermediate_size}))
    n = min(len(t) for t in TEXTS.values())
    items = items_from_parallel({lang: list(enumerate(lines))[:n] for lang, lines in TEXTS.items()})
    plan = SteeringPlan({"eng_Latn": TEXTS["eng_Latn"][:3]}, 6, fluency_bound("distinct_2", 0.2))
    result = sweep(model, tok(), items, neurons, ["set:500", "set:1000"], bootstrap=100, steering=plan)
    document = result.to_json()
    for point in document["curve"]:
        assert point["steering"]["fluency"]["distinct_2"]["value"] == pytest.approx(1 / 5)  # only (A, A): 1 of 5 bigrams
        assert not point["steering"]["within_bound"]
    assert document["best_fluent"] is None and document["best"]["name"] in ("set:500", "set:1000")
    assert document["best_fluent_reason"].startswith("no setting of 2 keeps to the bound: distinct-2 falls at most 0.2")
    record = SweepRecord.from_json(document, "sweep.json")
    assert record.best_fluent is None and record.to_json() == document
    with pytest.raises(NeurospecError, match="another language"):   # prompts only in the target's own language
        sweep(model, tok(), items, neurons, ["set:500"], bootstrap=100,
              steering=SteeringPlan({"fra_Latn": TEXTS["fra_Latn"][:2]}, 2))


def section_of(document: dict, tmp_path):
    return sweep_section(Artifact("sweep", "sweep/sweep.json", tmp_path / "sweep.json", document), {})


def test_the_report_plots_share_against_fluency_per_factor(swept, tmp_path):
    document = swept["document"]
    section = section_of(document, tmp_path)
    assert "fluency" in [f.name for f in section.figures]
    table = next(t for t in section.tables if t.id == "fluent")
    for point, cells in zip(document["curve"], table.rows):
        values = dict(zip(table.columns, cells))
        steering = point["steering"]
        assert (values["share"].value, values["CI low"].value, values["factor"].value) == (
            steering["share"], steering["ci95"][0], point["factor"])
        assert values["distinct-2"].value == steering["fluency"]["distinct_2"]["value"]
        assert values["within bound"].text == ("yes" if steering["within_bound"] else "no")
        assert values["chosen"].text == ("chosen" if point["recipe"] == (document["best_fluent"] or {}).get("name")
                                         else "")
    facts = dict(fact[:2] for fact in section.facts)
    assert facts["best within the fluency bound"] == (document["best_fluent"] or {}).get("name", "none")


def test_a_sweep_without_generations_reads_and_draws_as_before(swept, tmp_path):
    old = swept["document"] | {"curve": [{k: v for k, v in p.items() if k != "steering"}
                                         for p in swept["document"]["curve"]]}
    for key in ("fluency_bound", "best_fluent", "best_fluent_reason"):
        del old[key]
    del old["settings"]["generation"]
    record = SweepRecord.from_json(old, "old/sweep.json")
    assert record.fluency_bound is None and record.best_fluent is None and record.to_json() == old
    plain = dataclasses.replace(swept["result"], steering=None, bound=None).to_json()
    assert set(plain) == {"format", "version", "best", "recipes", "curve", "empty_groups", "settings"}
    section = section_of(old, tmp_path)
    assert "fluency" not in [f.name for f in section.figures] and all(t.id != "fluent" for t in section.tables)


def test_the_cli_generates_and_refuses_generation_options_alone(tmp_path):
    study = saved_study(tmp_path, lambda model: {"neurons.json": neuron_set(model, per_group=20)})
    for lang in ("eng_Latn", "fra_Latn"):
        (tmp_path / f"prompts_{lang}.txt").write_text("\n".join(TEXTS[lang][:2]) + "\n")
    common = ["sweep", "--model", study / "model", "--neurons", study / "neurons.json", "--stats", study / "stats",
              "--parallel", "ntrex", "--languages", "en,fr", "--limit", "3", "--bootstrap", "100", "--values", "p_max",
              "--factors", "1,3", "--quiet"]
    runner = CliRunner()
    result = runner.invoke(app, [str(a) for a in [*common, "--generate", "--prompts",
                                                  f"en={tmp_path / 'prompts_eng_Latn.txt'}", "--prompts",
                                                  f"fr={tmp_path / 'prompts_fra_Latn.txt'}", "--max-new-tokens", "4",
                                                  "--fluency-measure", "perplexity", "--langid-languages", "study",
                                                  "--out", tmp_path / "sweep"]])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert document["fluency_bound"]["measure"] == "perplexity" and document["fluency_bound"]["bound"] == 2.0
    assert document["settings"]["generation"]["prompts"] == {"eng_Latn": 2, "fra_Latn": 2}
    assert selection_by_hand(document["curve"], "perplexity", 2.0) == (document["best_fluent"] or {}).get("name")
    assert (tmp_path / "sweep" / "sweep.tidy.csv").read_text().count("steering.fluency.perplexity.change") == 2
    refused = runner.invoke(app, [str(a) for a in [*common, "--fluency-bound", "0.1", "--out", tmp_path / "no"]])
    assert refused.exit_code != 0 and "--fluency-bound only act with --generate" in refused.output
