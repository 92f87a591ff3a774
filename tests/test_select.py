"""Selection layer: LAPE against an independent transcription of METHODS.md section 1, baselines, random sets.

The expected sets are computed here with plain Python loops over numpy float32 probabilities, never
with neurospec's helpers. Hand-made counts cover: a neuron never active, an exact entropy tie across
layers at the selection boundary, a neuron of several languages, a selected neuron of no language,
and fewer finite-entropy neurons than requested.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neurospec.measure.stats import ActivationStats
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.select import (
    lape_entropy,
    select_active_in_all_sentences,
    select_lape,
    select_lape_top_k,
    select_random,
    select_top_mean,
)
from neurospec.util.errors import NeurospecError

LANGS = ["en", "fr", "de"]
# counts (en, fr, de) per neuron, layer by layer; every language saw 100 tokens
HAND = [
    [(90, 0, 0), (0, 0, 0), (60, 60, 0), (30, 0, 0)],      # (0,1) never active; (0,3) p=0.3 = bar: no language
    [(10, 10, 10), (50, 40, 45), (5, 80, 5), (20, 20, 20)],
    [(90, 0, 0), (0, 0, 70), (60, 60, 0), (1, 2, 3)],      # (2,0)/(2,2) tie (0,0)/(0,2); (2,3) below tau
]


def hand_counts() -> torch.Tensor:
    """(G, L, W) int64 counts of HAND."""
    return torch.tensor(HAND, dtype=torch.int64).permute(2, 0, 1).contiguous()


def make_stats(counts: torch.Tensor, tokens: list[int], languages: list[str] = LANGS) -> ActivationStats:
    _g, layers, w = counts.shape
    stats = ActivationStats.empty("act", languages, layers, w, model={"model_id": "toy/model"})
    stats.active[:] = counts
    stats.tokens[:] = torch.tensor(tokens, dtype=torch.int64)
    return stats


# --------------------------------------------------------------------------------------------
# Independent transcription of METHODS.md section 1


def ref_probs(counts: np.ndarray, tokens: list[int]) -> np.ndarray:
    g, layers, w = counts.shape
    p = np.zeros((g, layers, w), dtype=np.float32)
    for k in range(g):
        for i in range(layers):
            for j in range(w):
                p[k, i, j] = np.float32(counts[k, i, j]) / np.float32(tokens[k])
    return p


def ref_kth(p: np.ndarray, rate: float) -> float:
    values = sorted(float(v) for v in p.flatten())
    position = round(len(values) * rate)  # 1-indexed, Python round (half to even)
    return values[position - 1]


def ref_entropy(p: np.ndarray, tau: float) -> dict[tuple[int, int], float]:
    g, layers, w = p.shape
    out = {}
    for i in range(layers):
        for j in range(w):
            column = [float(p[k, i, j]) for k in range(g)]
            total = sum(column)
            q = [v / total if total > 0 else 0.0 for v in column]
            h = -sum(x * math.log(x) for x in q if x > 0)
            if not any(v > tau for v in column):
                h = math.inf
            out[(i, j)] = h
    return out


def ref_lape(counts, tokens, top_rate, filter_rate, bar_ratio):
    p = ref_probs(np.asarray(counts), tokens)
    g, layers, w = p.shape
    tau, bar = ref_kth(p, filter_rate), ref_kth(p, bar_ratio)
    entropy = ref_entropy(p, tau)
    finite = sorted((h, i, j) for (i, j), h in entropy.items() if h != math.inf)
    requested = round(layers * w * top_rate)
    chosen = [(i, j) for _, i, j in finite[:requested]]
    groups = [{(i, j) for i, j in chosen if float(p[k, i, j]) > bar} for k in range(g)]
    return groups, chosen, tau, bar, requested


def ref_top_k(counts, tokens, k, filter_rate, bar_ratio):
    p = ref_probs(np.asarray(counts), tokens)
    tau, bar = ref_kth(p, filter_rate), ref_kth(p, bar_ratio)
    entropy = ref_entropy(p, tau)
    out = []
    for g in range(p.shape[0]):
        candidates = sorted((h, i, j) for (i, j), h in entropy.items() if h != math.inf and float(p[g, i, j]) > bar)
        out.append({(i, j) for _, i, j in candidates[:k]})
    return out


def as_pairs(neurons: NeuronSet, group: str, site: str = "act") -> set[tuple[int, int]]:
    return {(layer, int(j)) for layer in neurons.layers(group, site) for j in neurons.indices(group, site, layer)}


# --------------------------------------------------------------------------------------------
# LAPE


def test_hand_case_matches_transcription_and_its_edge_cases():
    stats = make_stats(hand_counts(), [100, 100, 100])
    options = {"top_rate": 0.5, "filter_rate": 0.5, "activation_bar_ratio": 0.7}
    neurons = select_lape(stats, **options)
    groups, chosen, tau, bar, requested = ref_lape(hand_counts().numpy(), [100] * 3, 0.5, 0.5, 0.7)
    assert [as_pairs(neurons, lang) for lang in LANGS] == groups
    # the cases the data was built for
    assert (0, 1) not in chosen and (2, 3) not in chosen                  # never active / below tau: +inf
    assert (0, 2) in chosen and (2, 2) not in chosen                      # tie at the cut: lower layer wins
    assert (0, 2) in groups[0] and (0, 2) in groups[1]                    # several languages
    assert (0, 3) in chosen and all((0, 3) not in g for g in groups)      # selected, no language
    assert groups == [{(0, 0), (0, 2), (2, 0)}, {(0, 2), (1, 2)}, {(2, 1)}]
    params = neurons.meta.params
    assert params["tau"] == pytest.approx(0.05) and params["tau"] == tau
    assert params["bar"] == bar and params["bar_rank"] == 25 and params["filter_rank"] == 18
    assert params["requested"] == requested == 6 and params["selected"] == 6 and params["finite"] == 10
    assert params["unassigned"] == 1 and params["per_language"] == {"en": 3, "fr": 2, "de": 1}
    assert {"top_rate", "filter_rate", "activation_bar_ratio", "languages", "tie_break"} <= set(params)
    meta = neurons.meta
    assert (meta.method, meta.num_layers, meta.widths, meta.model_id) == ("lape", 3, {"act": 4}, "toy/model")
    assert neurons.groups == tuple(LANGS)


def test_infinite_entropy_never_selected_even_when_too_few_finite():
    # bar below tau: the +inf neuron (2,3) has p > bar and the reference's topk would pick and assign it
    stats = make_stats(hand_counts(), [100, 100, 100])
    neurons = select_lape(stats, top_rate=1.0, filter_rate=0.5, activation_bar_ratio=0.4)
    groups, chosen, tau, bar, _requested = ref_lape(hand_counts().numpy(), [100] * 3, 1.0, 0.5, 0.4)
    assert bar < tau and [as_pairs(neurons, lang) for lang in LANGS] == groups
    assert all((2, 3) not in as_pairs(neurons, lang) for lang in LANGS)
    assert neurons.meta.params["requested"] == 12 and neurons.meta.params["selected"] == len(chosen) == 10


def test_random_counts_with_unequal_tokens_match_transcription():
    gen = np.random.default_rng(7)
    counts = gen.integers(0, 300, size=(4, 5, 16))
    counts[:, 2, :4] = 0  # some neurons never active
    tokens = [997, 1500, 313, 1200]
    counts = np.minimum(counts, np.array(tokens)[:, None, None])
    names = ["en", "fr", "de", "ja"]
    stats = make_stats(torch.from_numpy(counts), tokens, names)
    for top_rate, filter_rate, bar_ratio in [(0.05, 0.95, 0.95), (0.2, 0.8, 0.9), (0.5, 0.6, 0.3)]:
        neurons = select_lape(stats, top_rate=top_rate, filter_rate=filter_rate, activation_bar_ratio=bar_ratio)
        groups = ref_lape(counts, tokens, top_rate, filter_rate, bar_ratio)[0]
        assert [as_pairs(neurons, lang) for lang in names] == groups
        top = select_lape_top_k(stats, 7, filter_rate=filter_rate, activation_bar_ratio=bar_ratio)
        assert [as_pairs(top, lang) for lang in names] == ref_top_k(counts, tokens, 7, filter_rate, bar_ratio)


def test_default_options_are_the_references():
    stats = make_stats(hand_counts(), [100, 100, 100])
    params = select_lape(stats, top_rate=0.2).meta.params
    assert (params["filter_rate"], params["activation_bar_ratio"]) == (0.95, 0.95)
    assert params["filter_rank"] == round(36 * 0.95) == 34


def test_tensor_input_and_language_subset():
    stats = make_stats(hand_counts(), [100, 100, 100])
    from_tensor = select_lape(stats.probabilities(), languages=LANGS, top_rate=0.5, filter_rate=0.5,
                              activation_bar_ratio=0.7)
    assert from_tensor == select_lape(stats, top_rate=0.5, filter_rate=0.5, activation_bar_ratio=0.7)
    assert from_tensor.meta.widths == {"act": 4} and from_tensor.meta.model_id is None
    subset = select_lape(stats, languages=["de", "en"], top_rate=0.5, filter_rate=0.5, activation_bar_ratio=0.7)
    counts = hand_counts()[[2, 0]].numpy()
    assert [as_pairs(subset, lang) for lang in ["de", "en"]] == ref_lape(counts, [100] * 2, 0.5, 0.5, 0.7)[0]
    with pytest.raises(NeurospecError, match="languages"):
        select_lape(stats.probabilities())


@pytest.mark.parametrize(
    "shape, rate, position",
    [((2, 1, 5), 0.25, 2), ((2, 1, 5), 0.75, 8), ((2, 1, 3), 0.25, 2), ((2, 1, 3), 0.75, 4), ((1, 1, 7), 0.5, 4)],
)
def test_tau_rank_rounds_half_to_even(shape, rate, position):
    # rate * M is 2.5, 7.5, 1.5, 4.5, 3.5: half to even gives 2, 8, 2, 4, 4 (half up would give 3, 8, 2, 5, 4)
    total = shape[0] * shape[1] * shape[2]
    assert total * rate % 1 == 0.5 and round(total * rate) == position
    values = torch.randperm(total, generator=torch.Generator().manual_seed(1)).to(torch.float32) / 100 + 0.01
    _, tau = lape_entropy(values.reshape(shape), filter_rate=rate)
    assert tau == sorted(values.tolist())[position - 1]


def test_lape_entropy_values():
    probs = torch.tensor([[[0.5, 0.0, 0.2]], [[0.5, 0.0, 0.0]]])  # (G=2, L=1, W=3), M=6
    entropy, tau = lape_entropy(probs, filter_rate=0.5)  # rank 3 -> tau = 0
    assert tau == 0.0
    assert entropy[0, 0].item() == pytest.approx(math.log(2)) and entropy[0, 2].item() == 0.0
    assert entropy[0, 1].item() == math.inf and entropy.dtype == torch.float32


def test_zero_token_language_is_refused_by_name():
    stats = make_stats(hand_counts(), [100, 0, 100])
    with pytest.raises(NeurospecError, match="'fr' has zero tokens"):
        select_lape(stats)
    assert select_lape(stats, languages=["en", "de"], top_rate=0.5).groups == ("en", "de")
    with pytest.raises(NeurospecError, match="'fr'.*NaN"):
        select_lape(stats.probabilities(), languages=LANGS)


@pytest.mark.parametrize("option", ["top_rate", "filter_rate", "activation_bar_ratio"])
@pytest.mark.parametrize("value", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.5"])
def test_invalid_rates_are_refused(option, value):
    stats = make_stats(hand_counts(), [100, 100, 100])
    with pytest.raises(NeurospecError, match=option):
        select_lape(stats, **{option: value})


@pytest.mark.parametrize("option", ["top_rate", "filter_rate", "activation_bar_ratio"])
def test_rank_zero_is_refused(option):
    stats = make_stats(hand_counts(), [100, 100, 100])  # 12 neurons, M = 36: round(0.01 x 12 or 36) = 0
    options = {"top_rate": 0.5, "filter_rate": 0.5, "activation_bar_ratio": 0.5, option: 0.01}
    with pytest.raises(NeurospecError, match=f"{option}=0.01"):
        select_lape(stats, **options)


def test_top_k_hand_case():
    stats = make_stats(hand_counts(), [100, 100, 100])
    top = select_lape_top_k(stats, 2, filter_rate=0.5, activation_bar_ratio=0.7)
    expected = [{(0, 0), (2, 0)}, {(1, 2), (0, 2)}, {(2, 1), (1, 1)}]
    assert [as_pairs(top, lang) for lang in LANGS] == expected
    assert expected == ref_top_k(hand_counts().numpy(), [100] * 3, 2, 0.5, 0.7)
    assert top.meta.method == "lape-top-k" and top.meta.params["k"] == 2
    assert top.meta.params["per_language"] == {"en": 2, "fr": 2, "de": 2}
    many = select_lape_top_k(stats, 12, filter_rate=0.5, activation_bar_ratio=0.7)
    assert many.meta.params["per_language"] == {"en": 5, "fr": 4, "de": 2}  # fewer candidates than k
    for bad in (0, -1, 13, 2.0, True):
        with pytest.raises(NeurospecError, match="k="):
            select_lape_top_k(stats, bad)


def test_round_trip_through_saved_stats(tmp_path):
    gen = np.random.default_rng(3)
    counts = torch.from_numpy(gen.integers(0, 50, size=(3, 4, 8)))
    stats = make_stats(counts, [50, 60, 70])
    stats.save(tmp_path / "stats")
    loaded = ActivationStats.load(tmp_path / "stats")
    before = select_lape(stats, top_rate=0.25, filter_rate=0.6, activation_bar_ratio=0.8)
    after = select_lape(loaded, top_rate=0.25, filter_rate=0.6, activation_bar_ratio=0.8)
    assert before == after and after.count() > 0
    assert after.meta.data_fingerprint == loaded.files["stats.safetensors"]
    assert after.meta.data_fingerprint.startswith("sha256:")
    again = NeuronSet.load(after.save(tmp_path / "lape.json"))
    assert again == after and again.meta.params == after.meta.params


# --------------------------------------------------------------------------------------------
# Raw-activation baselines


def sample_stats() -> ActivationStats:
    stats = ActivationStats.empty("act", ["en", "fr"], 2, 3, model={"model_id": "toy/model"})
    en = torch.tensor([  # (K=3, L=2, W=3)
        [[0.5, 0.1, 0.0], [1.0, 2.0, 0.3]],
        [[0.4, -0.2, 0.1], [1.0, 2.0, 0.3]],
        [[0.6, 0.3, 0.2], [1.0, -1.0, 0.3]],
    ])
    fr = torch.tensor([
        [[0.0, 0.2, 0.1], [0.2, 0.0, 0.2]],
        [[0.0, 0.2, 0.1], [0.2, 0.0, 0.2]],
        [[0.0, 0.2, 0.1], [0.2, 0.0, 0.2]],
    ])
    stats.samples = {"en": en, "fr": fr}
    stats.tokens[:] = 10
    return stats


def ref_all_active(means: np.ndarray) -> set[tuple[int, int]]:
    k, layers, w = means.shape
    return {(i, j) for i in range(layers) for j in range(w) if all(means[s, i, j] > 0 for s in range(k))}


def ref_top_mean(means: np.ndarray, k: int) -> set[tuple[int, int]]:
    n, layers, w = means.shape
    scored = sorted((-sum(float(means[s, i, j]) for s in range(n)) / n, i, j) for i in range(layers) for j in range(w))
    return {(i, j) for _, i, j in scored[:k]}


def test_active_in_all_sentences():
    stats = sample_stats()
    neurons = select_active_in_all_sentences(stats)
    assert as_pairs(neurons, "en") == {(0, 0), (1, 0), (1, 2)} == ref_all_active(stats.samples["en"].numpy())
    assert as_pairs(neurons, "fr") == {(0, 1), (0, 2), (1, 0), (1, 2)} == ref_all_active(stats.samples["fr"].numpy())
    assert neurons.meta.method == "all-active" and neurons.meta.params["sentences"] == {"en": 3, "fr": 3}
    assert neurons.meta.widths == {"act": 3} and neurons.meta.model_id == "toy/model"


def test_top_mean_with_ties_across_layers():
    stats = sample_stats()
    neurons = select_top_mean(stats, 2)
    assert as_pairs(neurons, "en") == {(1, 0), (1, 1)} == ref_top_mean(stats.samples["en"].numpy(), 2)
    # fr: (0,1), (1,0) and (1,2) tie at 0.2; the first two by (layer, index) are kept
    assert as_pairs(neurons, "fr") == {(0, 1), (1, 0)} == ref_top_mean(stats.samples["fr"].numpy(), 2)
    one = select_top_mean(stats, 1, languages=["fr"])
    assert as_pairs(one, "fr") == {(0, 1)} and one.groups == ("fr",)
    assert one.meta.method == "top-mean" and one.meta.params["k"] == 1 and one.meta.params["sentences"] == {"fr": 3}
    with pytest.raises(NeurospecError, match="k="):
        select_top_mean(stats, 7)


def test_baseline_without_sample_is_refused():
    stats = make_stats(hand_counts(), [100, 100, 100])
    with pytest.raises(NeurospecError, match="per-sentence sample"):
        select_active_in_all_sentences(stats)


def test_baselines_round_trip_with_fingerprint(tmp_path):
    stats = sample_stats()
    stats.save(tmp_path / "stats")
    loaded = ActivationStats.load(tmp_path / "stats")
    neurons = select_active_in_all_sentences(loaded)
    assert neurons == select_active_in_all_sentences(sample_stats())
    assert neurons.meta.data_fingerprint.startswith("sha256:")
    assert set(neurons.meta.params["data_files"]) == {"sample/en.safetensors", "sample/fr.safetensors"}


# --------------------------------------------------------------------------------------------
# Random controls


def source_set() -> NeuronSet:
    meta = NeuronSetMeta(num_layers=3, widths={"act": 20, "q": 8}, method="lape", params={"top_rate": 0.01})
    groups = {
        "en": {"act": {0: [1, 2, 3], 2: [5]}, "q": {1: [0, 7]}},
        "fr": {"act": {0: [2, 9]}},
        "ja": {},
    }
    return NeuronSet(groups, meta)


def counts_by_entry(neurons: NeuronSet) -> dict:
    return {(g, s, layer): int(idx.numel()) for g, s, layer, idx in neurons.entries()}


def test_random_matches_sizes_and_is_deterministic():
    like = source_set()
    first = select_random(like, seed=0)
    assert counts_by_entry(first) == counts_by_entry(like) and first.groups == like.groups
    assert first == select_random(like, seed=0)
    assert first != select_random(like, seed=1)
    for _, site, _, idx in first.entries():
        assert int(idx.max()) < like.meta.widths[site] and idx.unique().numel() == idx.numel()
    meta = first.meta
    assert meta.method == "random" and meta.params["seed"] == 0 and meta.params["source_method"] == "lape"
    assert meta.widths == {"act": 20, "q": 8} and meta.num_layers == 3


def test_random_exclude_and_widths():
    like = source_set()
    for seed in range(5):
        drawn = select_random(like, seed=seed, exclude=True)
        assert counts_by_entry(drawn) == counts_by_entry(like)
        for site in ("act", "q"):
            source = like.layer_indices(None, site)
            for layer, idx in drawn.layer_indices(None, site).items():
                assert not torch.isin(idx, source[layer]).any()
    no_width = NeuronSet({"a": {"act": {0: [1]}}}, num_layers=1)
    with pytest.raises(NeurospecError, match="width of site 'act'"):
        select_random(no_width)
    assert select_random(no_width, widths={"act": 4}).meta.widths == {"act": 4}
    full = NeuronSet({"a": {"act": {0: [0, 1, 2]}}}, NeuronSetMeta(num_layers=1, widths={"act": 4}))
    with pytest.raises(NeurospecError, match="exclude=False"):
        select_random(full, exclude=True)
    with pytest.raises(NeurospecError, match="seed"):
        select_random(like, seed="0")
