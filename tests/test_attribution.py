"""Activation x gradient attribution against explicit autograd, one example at a time, on several families."""

from __future__ import annotations

import pytest
import torch
from families import FAMILIES, VOCAB
from interventions_common import tiny_llama, tok

from neurospec.core.sites import site_map
from neurospec.data.items import MCItem
from neurospec.evaluate.scoring import bare_question
from neurospec.measure.attribution import AttributionScores, Example, attribute, prepare_examples
from neurospec.util.errors import NeurospecError

ITEMS = [
    MCItem("Which city is the capital of France?", ("Paris", "Rome", "Berlin", "Madrid"), 0, "France", "q1"),
    MCItem("The cat sat on the mat because", ("it was warm", "it was cold"), 1, "France", "q2"),
    MCItem("She went to the market and bought", ("bread", "a car", "trains"), 2, "Spain", "q3"),
    MCItem("Trains leave", ("every hour", "never", "at noon", "soon"), 3, "Spain", "q4"),
    MCItem("The man broke his toe.", ("yes", "no"), 0, "UK", "q5"),
]


def explicit_scores(model, input_ids, targets, sites, objective="prob"):
    """Per site: (layers, width) = w * max_t(a * dy/da) for ONE unpadded example, by plain autograd."""
    smap = site_map(model)
    kept, handles = {}, []
    for site in sites:
        for layer in range(smap.num_layers):
            loc = smap.locate(site, layer)

            def hook(module, args, output=None, loc=loc):
                tensor = output if loc.hook == "output" else args[0]
                tensor.retain_grad()
                kept[(loc.site, loc.layer)] = tensor

            if loc.hook == "output":
                handles.append(loc.module.register_forward_hook(hook))
            else:
                handles.append(loc.module.register_forward_pre_hook(lambda m, a, loc=loc, hook=hook: hook(m, a)))
    try:
        model.zero_grad(set_to_none=True)
        ids = torch.tensor([input_ids])
        logits = model(input_ids=ids).logits[0].float()
        m = len(targets)
        logprob = sum(torch.log_softmax(logits[len(input_ids) - m + j], -1)[t] for j, t in enumerate(targets))
        p = torch.exp(logprob)
        y = p if objective == "prob" else logprob
        y.backward()
        weight = float(p.detach()) if objective == "prob" else 1.0
        out = {}
        for site in sites:
            rows = []
            for layer in range(smap.num_layers):
                loc = smap.locate(site, layer)
                tensor = kept[(site, layer)]
                a, g = tensor.detach(), tensor.grad
                if a.dim() == 2:  # OPT's MLP runs on (batch * tokens, width)
                    a, g = a[None], g[None]
                a, g = a[0], g[0]
                a, g = a[..., loc.columns], g[..., loc.columns]
                rows.append(weight * (a.double() * g.double()).max(dim=0).values)
            out[site] = torch.stack(rows)
        return out, float(p.detach())
    finally:
        for h in handles:
            h.remove()


def per_example_groups(examples):
    return [Example(e.input_ids, e.targets, f"ex{i:02d}", e.clamp, e.options, e.gold, e.item_id, e.template)
            for i, e in enumerate(examples)]


def test_letter_scores_equal_explicit_autograd_with_padding():
    model, tokenizer = tiny_llama(), tok()
    sites = ("gate_pre", "up_pre", "q", "k", "v", "act", "down_in")
    examples = per_example_groups(prepare_examples(tokenizer, ITEMS))
    lengths = {len(e.input_ids) for e in examples}
    assert len(lengths) > 1, "the examples must differ in length so that batches are padded"
    scores = attribute(model, tokenizer, examples, sites=sites, batch_size=3, quiet=True)
    for i, example in enumerate(examples):
        expected, p = explicit_scores(model, list(example.input_ids), list(example.targets), sites)
        g = scores.group_index(f"ex{i:02d}")
        assert scores.prob_sums[g].item() == pytest.approx(p, rel=1e-5)
        for site in sites:
            got = scores.scores[site][g]
            torch.testing.assert_close(got, expected[site], rtol=2e-4, atol=1e-9)
    assert scores.counts.sum().item() == len(examples)


def test_padded_rows_keep_negative_maxima():
    """Short rows in a batch with a long one: neurons whose every real product is negative stay negative."""
    model, tokenizer = tiny_llama(), tok()
    gen = torch.Generator().manual_seed(3)
    vocab = len(tokenizer)
    examples = [Example(tuple(torch.randint(5, vocab, (n,), generator=gen).tolist()), (int(t),), f"ex{i}")
                for i, (n, t) in enumerate([(24, 40), (2, 41), (3, 42)])]
    scores = attribute(model, tokenizer, examples, sites=("gate_pre", "q"), batch_size=3, quiet=True)
    negative = 0
    for i, e in enumerate(examples):
        expected, _ = explicit_scores(model, list(e.input_ids), list(e.targets), ("gate_pre", "q"))
        for site in ("gate_pre", "q"):
            torch.testing.assert_close(scores.scores[site][i], expected[site], rtol=2e-4, atol=1e-12)
            if i > 0:
                negative += int((expected[site] < 0).sum())
    # a 0-filled padding (the reference's) would have clipped every one of these to 0
    assert negative > 20


def test_group_sums_and_prob_objective_vs_logprob():
    model, tokenizer = tiny_llama(), tok()
    examples = prepare_examples(tokenizer, ITEMS)
    scores = attribute(model, tokenizer, ITEMS, sites=("gate_pre",), batch_size=2, quiet=True)
    assert scores.groups == ["France", "Spain", "UK"]
    assert scores.counts.tolist() == [2, 2, 1]
    total = torch.zeros_like(scores.sum("gate_pre"))
    by_group = {g: torch.zeros_like(total) for g in scores.groups}
    logprob_total = torch.zeros_like(total)
    for e in examples:
        expected, _ = explicit_scores(model, list(e.input_ids), list(e.targets), ("gate_pre",))
        by_group[e.group] += expected["gate_pre"]
        total += expected["gate_pre"]
        logprob_total += explicit_scores(model, list(e.input_ids), list(e.targets), ("gate_pre",), "logprob")[0]["gate_pre"]
    for g in scores.groups:
        torch.testing.assert_close(scores.sum("gate_pre", g), by_group[g], rtol=2e-4, atol=1e-9)
    torch.testing.assert_close(scores.sum("gate_pre"), total, rtol=2e-4, atol=1e-9)
    logp = attribute(model, tokenizer, ITEMS, sites=("gate_pre",), objective="logprob", batch_size=2, quiet=True)
    torch.testing.assert_close(logp.sum("gate_pre"), logprob_total, rtol=2e-4, atol=1e-8)
    assert not torch.allclose(logp.sum("gate_pre"), scores.sum("gate_pre"))


def test_answer_target_scores_the_gold_text():
    model, tokenizer = tiny_llama(), tok()
    examples = per_example_groups(prepare_examples(tokenizer, ITEMS, target="answer"))
    assert any(len(e.targets) > 1 for e in examples)
    scores = attribute(model, tokenizer, examples, sites=("gate_pre", "v"), batch_size=5, quiet=True)
    for i, e in enumerate(examples):
        full = tokenizer(ITEMS[i].question + " " + ITEMS[i].options[ITEMS[i].gold])["input_ids"]
        assert list(e.input_ids) + [e.targets[-1]] == full
        expected, _ = explicit_scores(model, list(e.input_ids), list(e.targets), ("gate_pre", "v"))
        for site in ("gate_pre", "v"):
            torch.testing.assert_close(scores.scores[site][i], expected[site], rtol=2e-4, atol=1e-12)


def test_control_examples_are_clamped_at_zero():
    """Clamped (control) and plain examples in one batch: only the clamped ones are cut at 0, after weighting."""
    model, tokenizer = tiny_llama(), tok()
    gen = torch.Generator().manual_seed(5)
    vocab = len(tokenizer)
    shapes = [(3, 40, True), (2, 41, False), (4, 42, True), (3, 43, False)]
    examples = [Example(tuple(torch.randint(5, vocab, (n,), generator=gen).tolist()), (t,), f"g{i % 2}", clamp)
                for i, (n, t, clamp) in enumerate(shapes)]
    assert [e.group for e in examples] == ["g0", "g1", "g0", "g1"]
    scores = attribute(model, tokenizer, examples, sites=("gate_pre",), batch_size=4, quiet=True)
    expected = torch.zeros_like(scores.scores["gate_pre"])
    negative = 0
    for e in examples:
        s, _ = explicit_scores(model, list(e.input_ids), list(e.targets), ("gate_pre",))
        negative += int((s["gate_pre"] < 0).sum())
        expected[int(e.group[1])] += s["gate_pre"].clamp(min=0) if e.clamp else s["gate_pre"]
    assert negative > 10  # otherwise clamping would not be tested
    torch.testing.assert_close(scores.scores["gate_pre"], expected, rtol=2e-4, atol=1e-12)
    items = [MCItem(i.question, i.options, i.gold, i.group, i.id, {"control": True}) for i in ITEMS]
    assert all(e.clamp for e in prepare_examples(tokenizer, items))
    assert not any(e.clamp for e in prepare_examples(tokenizer, ITEMS))


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_every_family_matches_explicit_autograd(fam):
    if fam.unavailable:
        pytest.skip(fam.unavailable)
    model = fam.build()
    smap = site_map(model)
    sites = tuple(s for s in ("gate_pre", "up_pre", "q", "k", "v", "act") if s in smap.sites)
    gen = torch.Generator().manual_seed(0)
    examples = [Example(tuple(torch.randint(3, VOCAB, (n,), generator=gen).tolist()), (int(t),), f"g{i}")
                for i, (n, t) in enumerate([(7, 5), (4, 9), (6, 11)])]
    class Tok:
        pad_token_id = 0

    scores = attribute(model, Tok(), examples, sites=sites, batch_size=3, quiet=True)
    for i, e in enumerate(examples):
        expected, _ = explicit_scores(model, list(e.input_ids), list(e.targets), sites)
        for site in sites:
            torch.testing.assert_close(scores.scores[site][i], expected[site], rtol=5e-4, atol=1e-10,
                                       msg=f"{fam.name} {site}")


def test_parameters_stay_as_they_were_and_get_no_gradient():
    model, tokenizer = tiny_llama(), tok()
    model.train()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    attribute(model, tokenizer, ITEMS, sites=("q",), batch_size=5, quiet=True)
    assert model.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


def test_save_load_and_resume_after_a_crash(tmp_path, monkeypatch):
    model, tokenizer = tiny_llama(), tok()
    items = ITEMS * 3
    whole = attribute(model, tokenizer, items, sites=("gate_pre", "k"), batch_size=2, quiet=True, out=tmp_path / "a")
    loaded = AttributionScores.load(tmp_path / "a")
    for site in ("gate_pre", "k"):
        assert torch.equal(loaded.scores[site], whole.scores[site])
    assert loaded.counts.tolist() == whole.counts.tolist() and loaded.meta["objective"] == "prob"

    import neurospec.measure.attribution as engine

    real, calls = engine._run_batch, {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_run_batch", crashing)
    with pytest.raises(KeyboardInterrupt):
        attribute(model, tokenizer, items, sites=("gate_pre", "k"), batch_size=2, quiet=True, out=tmp_path / "b",
                  checkpoint_every=2)
    with pytest.raises(NeurospecError, match="unfinished"):
        AttributionScores.load(tmp_path / "b")
    assert AttributionScores.read_meta(tmp_path / "b")["progress"]["batches_done"] == 4
    monkeypatch.setattr(engine, "_run_batch", real)
    with pytest.raises(NeurospecError, match="resume"):
        attribute(model, tokenizer, items, sites=("gate_pre", "k"), batch_size=2, quiet=True, out=tmp_path / "b")
    with pytest.raises(NeurospecError, match="batch_size"):
        attribute(model, tokenizer, items, sites=("gate_pre", "k"), batch_size=3, quiet=True, out=tmp_path / "b",
                  resume=True)
    resumed = attribute(model, tokenizer, items, sites=("gate_pre", "k"), batch_size=2, quiet=True,
                        out=tmp_path / "b", resume=True, checkpoint_every=2)
    for site in ("gate_pre", "k"):
        assert torch.equal(resumed.scores[site], whole.scores[site])
    assert torch.equal(resumed.counts, whole.counts) and torch.equal(resumed.prob_sums, whole.prob_sums)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["attribution.json", "scores.safetensors"]


def test_bad_input():
    model, tokenizer = tiny_llama(), tok()
    with pytest.raises(NeurospecError, match="empty"):
        attribute(model, tokenizer, [], quiet=True)
    with pytest.raises(NeurospecError, match="no group"):
        attribute(model, tokenizer, [MCItem("Q?", ("a", "b"), 0)], quiet=True)
    with pytest.raises(NeurospecError, match="objective"):
        attribute(model, tokenizer, ITEMS, objective="loss", quiet=True)
    with pytest.raises(NeurospecError):
        attribute(model, tokenizer, ITEMS, sites=("nonsense",), quiet=True)
    with pytest.raises(NeurospecError, match="shows no options, so there is no letter to score"):
        attribute(model, tokenizer, ITEMS, templates=[bare_question], target="letter", quiet=True)
    attribute(model, tokenizer, ITEMS, templates=[bare_question], target="answer", sites=("q",), quiet=True)


def test_resume_removes_what_a_kill_mid_write_left(tmp_path):
    model, tokenizer = tiny_llama(), tok()
    run = tmp_path / "run"
    attribute(model, tokenizer, ITEMS, sites=("q",), batch_size=2, quiet=True, out=run)
    stale = run / ".scores.safetensors.x1y2z3.tmp"
    stale.write_bytes(b"half a file")
    attribute(model, tokenizer, ITEMS, sites=("q",), batch_size=2, quiet=True, out=run, resume=True)
    assert not stale.exists()


# --------------------------------------------------------------------------------------------
# CountryRC under the default protocol: the reference's 4 prompts, no prefill, 25 x 8 x 4 examples

# What CULNIG's dataset.py builds for (USA, passage "15") with each of prompt.py's COUNTRYRC_PROMPTS, in
# order, written out here (the options and the {country_dummy} fill come from its md5-seeded draw per prompt).
_PASSAGE_15 = ("passage: Last year, Emma planned to visit both USA and {dummy}, but due to a scheduling conflict, "
               "she only made it to USA. She spent her time exploring rural areas and writing about her journey in "
               "a travel journal.\nquestion: Which country did Emma visit?\n")
REFERENCE_COUNTRYRC_US_15 = [
    ("Read the passage carefully and choose a single option from A, B, C, D to answer the question. Do not output "
     "any other text.\n\n" + _PASSAGE_15.format(dummy="China") + "A. USA\nB. Mexico\nC. UK\nD. China\n", "A"),
    ("Read the following passage and question. Then, pick the most suitable answer from the four options. Only "
     "return the letter of your choice (A, B, C, or D).\n\n" + _PASSAGE_15.format(dummy="South Korea")
     + "A. South Korea\nB. Nigeria\nC. Spain\nD. USA\n", "D"),
    ("From the information provided in the passage, choose the best answer to the question. You must select a "
     "single choice: 1, 2, 3, or 4, and do not include any other text.\n\n" + _PASSAGE_15.format(dummy="Iran")
     + "1. USA\n2. Spain\n3. Iran\n4. Ethiopia\n", "1"),
    ("Determine the correct answer to the question based on the content of the passage. Respond with one of the "
     "following: 1, 2, 3, or 4. No additional text is needed.\n\n" + _PASSAGE_15.format(dummy="UK")
     + "1. UK\n2. West Java\n3. USA\n4. Ethiopia\n", "3"),
]


def test_countryrc_default_is_the_reference_protocol():
    """`neurospec attribute --data countryrc` with no option (and countryrc_prompts()): each of the 4 prompts of
    one item is the reference's text, in the chat template with nothing after it; 800 examples on the find split."""
    from collections import Counter

    from neurospec.data.blend import BLEND_PREFILL
    from neurospec.data.countryrc import countryrc_data_path, countryrc_prompts
    from neurospec.data.mc_sets import load_mc_set
    from neurospec.data.prompts import encode
    from neurospec.verbs.culture import attribute_format as _attribute_format
    from neurospec.verbs.culture import attribute_templates as _attribute_templates

    if not countryrc_data_path().is_file():
        pytest.skip(f"CountryRC not staged at {countryrc_data_path()}")
    t = tok()
    items = load_mc_set("countryrc", split="find")             # what the CLI loads (--split find, no --countries)
    templates = _attribute_templates("auto", "countryrc")      # the CLI's default --templates
    fmt = _attribute_format("auto", t, templates)              # the CLI's default --format (a chat tokenizer)
    api_templates, api_fmt = countryrc_prompts()
    assert templates == api_templates and fmt == api_fmt and fmt.kind == "chat" and fmt.prefill == ""

    def chat(text: str) -> str:
        return t.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True,
                                     enable_thinking=False)

    item = next(i for i in items if i.id == "countryrc-15-US")
    examples = prepare_examples(t, items, fmt=fmt, templates=templates)
    assert len(templates) == 4 and len(examples) == 25 * 8 * 4 == 800
    assert Counter(e.group for e in examples) == {c: 25 * 4 for c in
                                                  ("China", "Indonesia", "Iran", "Mexico", "South_Korea", "Spain",
                                                   "UK", "US")}
    assert Counter(e.template for e in examples) == {tp.name: 200 for tp in templates}
    for template, (reference, label) in zip(templates, REFERENCE_COUNTRYRC_US_15):
        assert template.render(item) == reference
        encoded = encode(t, template(template.view(item)), fmt)
        assert encoded.text == chat(reference) and not encoded.text.endswith(BLEND_PREFILL)
        example = next(e for e in examples if e.item_id == item.id and e.template == template.name)
        assert list(example.input_ids) == t(chat(reference), add_special_tokens=False)["input_ids"]
        assert example.targets == (t.convert_tokens_to_ids(label),)  # the reference's label token, bare
    ending = chat("")[chat("").rindex("<|assistant|>"):]
    assert all(t.decode(e.input_ids).endswith(ending) for e in examples)  # no prefill after any prompt
