"""`attribute --top-items K`: every neuron's K top-scoring examples per country, equal to a brute-force sort of each
example's own score (computed one example at a time), ties to the earlier example, kept across --resume, off by
default; `explain --attribution` and the report's table equal the kept tensors read directly."""

from __future__ import annotations

import json

import pytest
import torch
from interventions_common import tiny_llama, tok
from safetensors.torch import load_file
from test_attribution import ITEMS, explicit_scores
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.data.items import MCItem
from neurospec.measure.attribution import (
    AttributionScores,
    Example,
    attribute,
    empty_top_items,
    merge_top_items,
    prepare_examples,
)
from neurospec.measure.top_items import TopItems
from neurospec.util.errors import NeurospecError

runner = CliRunner()
SITES = ("gate_pre", "q")
#: ITEMS twice (the copies score exactly alike: ties), and two control items (clamped at >= 0)
CONTROLS = [MCItem(item.question, item.options, item.gold, item.group, f"c{n}", {"control": True})
            for n, item in enumerate(ITEMS[:2])]
TIED = ITEMS + [MCItem(i.question, i.options, i.gold, i.group, f"{i.id}-again") for i in ITEMS] + CONTROLS


def brute_force(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``scores`` (N, L, W) of one group's examples in index order, ``index`` (N,) -> the top k per (L, W) by
    (-float32 score, example index), padded with -inf / -1: one Python sort per neuron."""
    values = scores.to(torch.float32)
    n, layers, width = values.shape
    top_values = torch.full((layers, width, k), float("-inf"))
    top_index = torch.full((layers, width, k), -1, dtype=torch.int64)
    for layer in range(layers):
        for neuron in range(width):
            column = values[:, layer, neuron].tolist()
            ranked = sorted(range(n), key=lambda row: (-column[row], row))[:k]
            top_values[layer, neuron, :len(ranked)] = torch.tensor([column[r] for r in ranked])
            top_index[layer, neuron, :len(ranked)] = torch.tensor(ranked)
    return top_values, top_index


def one_by_one(model, examples: list[Example]) -> list[dict[str, torch.Tensor]]:
    """Each example's own score_i(n) per site, (layers, width): the engine run on that example alone."""
    alone = []
    for example in examples:
        run = attribute(model, tok(), [example], sites=SITES, batch_size=1, quiet=True)
        alone.append({site: run.scores[site][0] for site in SITES})
    return alone


def test_kept_items_equal_a_brute_force_sort_with_ties_to_the_earlier_example(tmp_path):
    model, tokenizer = tiny_llama(), tok()
    k = 3
    run = attribute(model, tokenizer, TIED, sites=SITES, batch_size=1, quiet=True, out=tmp_path / "run", top_items=k)
    examples = prepare_examples(tokenizer, TIED)
    alone = one_by_one(model, examples)
    top = TopItems.load(tmp_path / "run")
    assert top.k == k and top.groups == ["France", "Spain", "UK"]
    ties = 0
    for group in run.groups:
        rows = [i for i, e in enumerate(examples) if e.group == group]
        for site in SITES:
            values, local = brute_force(torch.stack([alone[i][site] for i in rows]), k)
            index = torch.where(local >= 0, torch.tensor(rows)[local.clamp(min=0)], -1)
            assert torch.equal(run.top_items[group][f"values.{site}"], values)
            assert torch.equal(run.top_items[group][f"indices.{site}"], index)
            assert torch.equal(top.tensors[group][f"indices.{site}"], index)
            ties += int((values[..., :-1] == values[..., 1:]).sum())
    assert ties > 100  # the copies tie with their originals; the earlier example (the original) comes first
    assert (run.top_items["UK"]["indices.q"][..., 2] == -1).all()  # UK has 2 examples: one empty slot
    first = top.neuron("France", 1, 5, "q")
    assert [(i.item_id, i.question) for i in first] == [(examples[i].item_id, examples[i].question)
                                                       for i in run.top_items["France"]["indices.q"][1, 5].tolist()]
    assert [i.score for i in first] == run.top_items["France"]["values.q"][1, 5].tolist()


def test_padded_batches_keep_the_top_items_of_explicit_autograd(tmp_path):
    """Batches of 3 (padded, length-sorted): the kept items are a top K of each example's explicit score."""
    model, tokenizer = tiny_llama(), tok()
    k = 2
    run = attribute(model, tokenizer, ITEMS * 2, sites=SITES, batch_size=3, quiet=True, top_items=k)
    examples = prepare_examples(tokenizer, ITEMS * 2)
    explicit = [explicit_scores(model, list(e.input_ids), list(e.targets), SITES)[0] for e in examples]
    for group in run.groups:
        rows = [i for i, e in enumerate(examples) if e.group == group]
        for site in SITES:
            every = torch.stack([explicit[i][site] for i in rows])               # (N, L, W)
            best = every.sort(dim=0, descending=True).values[:k].permute(1, 2, 0)  # (L, W, k)
            kept_index = run.top_items[group][f"indices.{site}"]
            kept = torch.stack([explicit[i][site] for i in range(len(examples))])  # (all, L, W)
            chosen = kept.permute(1, 2, 0).gather(2, kept_index)                  # their explicit scores
            torch.testing.assert_close(chosen, best, rtol=2e-4, atol=1e-9)
            torch.testing.assert_close(run.top_items[group][f"values.{site}"].double(), chosen, rtol=2e-4, atol=1e-9)
            assert set(kept_index.unique().tolist()) <= set(rows)


def test_merge_breaks_ties_by_example_index_not_batch_order():
    values, indices = empty_top_items(1, 2, 3)
    # batch 1 holds examples 7, 5; batch 2 holds examples 2, 9, 4: every score ties in neuron 0
    merge_top_items(values, indices, torch.tensor([[1.0, 3.0], [1.0, 2.0]]), torch.tensor([0, 0]), torch.tensor([7, 5]))
    merge_top_items(values, indices, torch.tensor([[1.0, 2.0], [1.0, 3.0], [1.0, 0.5]]), torch.tensor([0, 0, 0]),
                    torch.tensor([2, 9, 4]))
    assert indices[0, 0].tolist() == [2, 4, 5] and values[0, 0].tolist() == [1.0, 1.0, 1.0]
    assert indices[0, 1].tolist() == [7, 9, 2] and values[0, 1].tolist() == [3.0, 3.0, 2.0]


def test_off_by_default_leaves_the_folder_as_it_was(tmp_path):
    model, tokenizer = tiny_llama(), tok()
    attribute(model, tokenizer, ITEMS, sites=SITES, batch_size=2, quiet=True, out=tmp_path / "off")
    attribute(model, tokenizer, ITEMS, sites=SITES, batch_size=2, quiet=True, out=tmp_path / "on", top_items=2)
    assert sorted(p.name for p in (tmp_path / "off").iterdir()) == ["attribution.json", "scores.safetensors"]
    off = json.loads((tmp_path / "off" / "attribution.json").read_text())
    on = json.loads((tmp_path / "on" / "attribution.json").read_text())
    assert on["top_items"] == 2 and set(on["top_item_files"]) == {"France", "Spain", "UK"}
    for key in ("top_items", "top_item_files", "item_file"):
        on.pop(key)
    on["files"] = {name: digest for name, digest in on["files"].items() if not name.startswith("top_items/")}
    on.pop("neurospec_version"), off.pop("neurospec_version")
    assert on == off  # the same document, scores file and fingerprint included, but for the top items' entries
    with pytest.raises(NeurospecError, match="--top-items K"):
        TopItems.load(tmp_path / "off")


def test_resume_after_a_crash_keeps_the_same_top_items(tmp_path, monkeypatch):
    model, tokenizer = tiny_llama(), tok()
    items = ITEMS * 3
    kwargs = dict(sites=SITES, batch_size=2, quiet=True, top_items=3)
    whole = attribute(model, tokenizer, items, out=tmp_path / "a", **kwargs)

    import neurospec.measure.attribution as engine

    real, calls = engine._run_batch, {"n": 0}

    def crashing(*args, **more):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*args, **more)

    monkeypatch.setattr(engine, "_run_batch", crashing)
    with pytest.raises(KeyboardInterrupt):
        attribute(model, tokenizer, items, out=tmp_path / "b", checkpoint_every=2, **kwargs)
    monkeypatch.setattr(engine, "_run_batch", real)
    with pytest.raises(NeurospecError, match="top_items"):
        attribute(model, tokenizer, items, out=tmp_path / "b", resume=True, **{**kwargs, "top_items": 2})
    resumed = attribute(model, tokenizer, items, out=tmp_path / "b", resume=True, checkpoint_every=2, **kwargs)
    for group in whole.groups:
        for name, tensor in whole.top_items[group].items():
            assert torch.equal(resumed.top_items[group][name], tensor)
            assert torch.equal(TopItems.load(tmp_path / "b").tensors[group][name], tensor)
    assert sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*") if p.is_file()) == [
        "attribution.json", "scores.safetensors", "top_items/France.safetensors", "top_items/Spain.safetensors",
        "top_items/UK.safetensors", "top_items/items.json"]


@pytest.fixture(scope="module")
def culture(tmp_path_factory):
    """A saved tiny Llama, its BLEnD run with --top-items 3 (by the command), the control and CountryRC runs, and
    the culture-specific neurons selected from them."""
    from neurospec.select.culture import select_culture_specific

    root = tmp_path_factory.mktemp("culture")
    tiny_llama().save_pretrained(root / "model")
    tok().save_pretrained(root / "model")
    common = ["--model", root / "model", "--countries", "China,Iran", "--limit", 3, "--quiet", "--batch-size", 4,
              "--sites", "gate_pre,q,k,v", "--templates", "blend,terse"]
    for data, extra in (("blend", ["--top-items", 3]), ("blend-control", []), ("countryrc", [])):
        done = runner.invoke(app, [str(a) for a in ["attribute", *common, "--data", data, "--out", root / data, *extra]])
        assert done.exit_code == 0, done.output
    runs = [AttributionScores.load(root / name) for name in ("blend", "blend-control", "countryrc")]
    select_culture_specific(*runs, countries=["China", "Iran"], rate=0.02).save(root / "culture.json")
    return root


def test_explain_attribution_equals_the_kept_tensors(culture):
    from neurospec.neurons.neuron_set import NeuronSet

    done = runner.invoke(app, ["explain", str(culture / "culture.json"), "--attribution", str(culture / "blend"),
                               "--limit", "4", "--items", "2", "--json"])
    assert done.exit_code == 0, done.output
    explained = json.loads(done.output)
    meta = json.loads((culture / "blend" / "attribution.json").read_text())
    scores = load_file(culture / "blend" / "scores.safetensors")
    items = json.loads((culture / "blend" / "top_items" / "items.json").read_text())
    kept = {c: load_file(culture / "blend" / name) for c, name in meta["top_item_files"].items()}
    neuron_set = NeuronSet.load(culture / "culture.json")
    assert explained["countries"] == ["China", "Iran"] and explained["has_top_items"] and explained["neurons"]
    for group in ("China", "Iran"):
        expected = sorted((layer, site, int(i)) for _, site, layer, idx in neuron_set.entries([group]) for i in idx)[:4]
        assert [(n["layer"], n["site"], n["neuron"]) for n in explained["neurons"] if n["group"] == group] == expected
    for neuron in explained["neurons"]:
        site, layer, index = neuron["site"], neuron["layer"], neuron["neuron"]
        for c, country in enumerate(explained["countries"]):
            assert neuron["score"][country] == float(scores[f"scores.{site}"][c, layer, index]) / meta["counts"][country]
            values = kept[country][f"values.{site}"][layer, index, :2].tolist()
            rows = kept[country][f"indices.{site}"][layer, index, :2].tolist()
            assert [(i["score"], i["item_id"], i["question"], i["template"]) for i in neuron["items"][country]] == [
                (v, items["item_ids"][r], items["questions"][items["question_index"][r]], items["templates"][r])
                for v, r in zip(values, rows)]
            assert all(items["groups"][r] == country for r in rows)
    shown = runner.invoke(app, ["explain", str(culture / "culture.json"), "--attribution", str(culture / "blend"),
                                "--limit", "1"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "score per example" in shown.output and "top items" in shown.output


def test_explain_needs_exactly_one_source_and_says_how_to_get_items(culture):
    for extra in ([], ["--stats", str(culture / "model"), "--attribution", str(culture / "blend")]):
        done = runner.invoke(app, ["explain", str(culture / "culture.json"), *extra])
        assert done.exit_code == 2 and "give --stats S (language neurons) or --attribution RUN" in done.output
        assert len(done.output.strip().splitlines()) == 1
    plain = runner.invoke(app, ["explain", str(culture / "culture.json"), "--attribution",
                                str(culture / "blend-control"), "--limit", "1"], env={"COLUMNS": "200"})
    assert plain.exit_code == 0 and "attribute with --top-items K" in plain.output


def test_report_table_shows_each_countrys_top_neurons_and_their_items(culture):
    from neurospec.report.discover import discover
    from neurospec.report.sections.attribution import TOP_ITEMS, TOP_NEURONS, attribution_section

    found = discover(culture / "blend")
    assert not found.skipped  # items.json is no artifact
    section = attribution_section(found.artifacts[0])
    table = next(t for t in section.tables if t.id == "top-items")
    run = AttributionScores.load(culture / "blend", top_items=True)
    expected = []
    for c, country in enumerate(run.groups):
        per_example = {site: run.scores[site][c] / run.counts[c].item() for site in run.sites}
        ranked = sorted(((float(v), s, layer, n) for s, t in per_example.items()
                         for layer, row in enumerate(t.tolist()) for n, v in enumerate(row)),
                        key=lambda r: (-r[0], run.sites.index(r[1]), r[2], r[3]))[:TOP_NEURONS]
        for mean, site, layer, n in ranked:
            values = run.top_items[country][f"values.{site}"][layer, n, :TOP_ITEMS].tolist()
            rows = run.top_items[country][f"indices.{site}"][layer, n, :TOP_ITEMS].tolist()
            expected += [[country, site, layer, n, mean, rank + 1, v, run.item_list["item_ids"][r]]
                         for rank, (v, r) in enumerate(zip(values, rows))]
    got = [[row[0].text, row[1].text, *[cell.value for cell in row[2:7]], row[7].text] for row in table.rows]
    assert len(got) == len(run.groups) * TOP_NEURONS * TOP_ITEMS
    assert [r[:4] + r[5:] for r in got] == [r[:4] + r[5:] for r in expected]
    assert [r[4] for r in got] == pytest.approx([r[4] for r in expected], rel=1e-12)
