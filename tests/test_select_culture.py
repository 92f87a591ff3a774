"""Culture-general and culture-specific selection against a direct transcription of METHODS section 3."""

from __future__ import annotations

import math

import pytest
import torch

from neurospec.measure.attribution import AttributionScores
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.select.culture import (
    CULTURE_COUNTRIES,
    select_culture_general,
    select_culture_specific,
    select_random_pooled,
)
from neurospec.util.errors import NeurospecError

LAYERS = 3
WIDTHS = {"gate_pre": 200, "up_pre": 200, "q": 48, "k": 24, "v": 24}
COUNTRIES = sorted(CULTURE_COUNTRIES + ("Greece", "Algeria"))


def fake_run(seed: int, groups, examples: int, *, ties: bool = False, nonnegative: bool = False) -> AttributionScores:
    gen = torch.Generator().manual_seed(seed)
    scores = {}
    for site, width in WIDTHS.items():
        values = torch.randn(len(groups), LAYERS, width, generator=gen, dtype=torch.float64)
        if ties:
            values = values.round(decimals=1)  # many equal scores: the tie rule matters
        scores[site] = values.abs() if nonnegative else values
    counts = torch.full((len(groups),), examples // len(groups), dtype=torch.int64)
    counts[0] += examples - int(counts.sum())
    return AttributionScores(scores, list(groups), counts, torch.zeros(len(groups), dtype=torch.float64),
                             torch.zeros(len(groups), dtype=torch.int64), {"model": {"model_id": "fake"}})


def runs(ties=False):
    return (fake_run(0, COUNTRIES, 1000, ties=ties), fake_run(1, COUNTRIES, 800, ties=ties, nonnegative=True),
            fake_run(2, CULTURE_COUNTRIES, 400, ties=ties))


# ---- a direct transcription: neurons as (site, layer, index) keys in dicts, Python sorting


def keys(sites):
    return [(s, layer, i) for s in sites for layer in range(LAYERS) for i in range(WIDTHS[s])]


def value(run, key, country=None):
    s, layer, i = key
    tensor = run.scores[s]
    if country is None:
        return float(tensor[:, layer, i].sum())
    return float(tensor[run.groups.index(country), layer, i])


def top(scored: dict, fraction: float) -> list:
    ranked = sorted(scored.items(), key=lambda kv: kv[1], reverse=True)  # stable: pool order among equals
    return [k for k, _ in ranked[:int(len(ranked) * fraction)]]


def transcribe_general(blend, ctrl, crc):
    chosen = []
    for sites, rate in ((["gate_pre"], 0.01), (["q", "k", "v"], 0.002)):
        pool = keys(sites)
        s = {k: value(blend, k) / 1000 - value(ctrl, k) / 800 for k in pool}
        c = {k: value(crc, k) for k in pool}
        drop = set(top(c, 0.01))
        chosen += [k for k in top(s, rate) if k not in drop]
    return set(chosen)


def transcribe_specific(blend, ctrl, crc, country, rate=0.003):
    pool = keys(["gate_pre", "q", "k", "v"])
    per_country = {k: {c: value(blend, k, c) / 1000 - value(ctrl, k, c) / 800 for c in COUNTRIES} for k in pool}
    s = {k: per_country[k][country] for k in pool}
    drop = set(top({k: value(crc, k, country) for k in pool}, 0.01))
    out = set()
    for k in top(s, rate):
        if k in drop:
            continue
        values = list(per_country[k].values())
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        z = 0.0 if std == 0 else (s[k] - mean) / std
        if z >= 0.5:
            out.add(k)
    return out


def as_keys(neurons: NeuronSet, group: str) -> set:
    return {(site, layer, int(i)) for g, site, layer, idx in neurons.entries([group]) for i in idx}


@pytest.mark.parametrize("ties", [False, True])
def test_general_equals_transcription(ties):
    blend, ctrl, crc = runs(ties)
    chosen = select_culture_general(blend, ctrl, crc)
    expected = transcribe_general(blend, ctrl, crc)
    assert as_keys(chosen, "culture-general") == expected
    counts = chosen.meta.params["counts"]
    assert counts["mlp"]["top"] == int(LAYERS * 200 * 0.01) == 6
    assert counts["attention"]["top"] == int(LAYERS * 96 * 0.002) == 0  # floor, not round
    assert chosen.sites("culture-general") == ("gate_pre",)


def test_general_attention_pool_and_countryrc_removal():
    blend, ctrl, crc = runs()
    chosen = select_culture_general(blend, ctrl, crc, attention_rate=0.05, countryrc_rate=0.2)
    pool = keys(["q", "k", "v"])
    s = {k: value(blend, k) / 1000 - value(ctrl, k) / 800 for k in pool}
    drop = set(top({k: value(crc, k) for k in pool}, 0.2))
    expected_attention = {k for k in top(s, 0.05) if k not in drop}
    got = as_keys(chosen, "culture-general")
    assert {k for k in got if k[0] != "gate_pre"} == expected_attention
    assert chosen.meta.params["counts"]["attention"]["removed_by_countryrc"] == int(len(pool) * 0.05) - len(expected_attention)
    assert len(expected_attention) < int(len(pool) * 0.05)  # the CountryRC filter removed some


@pytest.mark.parametrize("ties", [False, True])
def test_specific_equals_transcription(ties):
    blend, ctrl, crc = runs(ties)
    chosen = select_culture_specific(blend, ctrl, crc, rate=0.03)
    assert list(chosen.groups) == list(CULTURE_COUNTRIES)
    total = 0
    for country in CULTURE_COUNTRIES:
        expected = transcribe_specific(blend, ctrl, crc, country, 0.03)
        assert as_keys(chosen, country) == expected, country
        total += len(expected)
    assert total > 0


def test_specific_default_rate_floor_and_names():
    blend, ctrl, crc = runs()
    chosen = select_culture_specific(blend, ctrl, crc, countries=["South Korea", "USA"])
    assert chosen.groups == ("South_Korea", "US")
    for country in ("South_Korea", "US"):
        assert as_keys(chosen, country) == transcribe_specific(blend, ctrl, crc, country)
        assert chosen.meta.params["counts"][country]["top"] == int(LAYERS * 296 * 0.003)


def test_bad_input():
    blend, ctrl, crc = runs()
    with pytest.raises(NeurospecError, match="Greece"):
        select_culture_specific(blend, ctrl, crc, countries=["Greece"])  # not in CountryRC
    with pytest.raises(NeurospecError, match="Japan|not in"):
        select_culture_specific(blend, ctrl, crc, countries=["Japan"])
    with pytest.raises(NeurospecError, match="rate"):
        select_culture_general(blend, ctrl, crc, mlp_rate=1.5)
    no_q = AttributionScores({"gate_pre": crc.scores["gate_pre"]}, crc.groups, crc.counts, crc.prob_sums, crc.correct, {})
    with pytest.raises(NeurospecError, match="site"):
        select_culture_general(blend, ctrl, no_q)


def test_random_pooled_matches_counts_and_seeds():
    blend, ctrl, crc = runs()
    specific = select_culture_specific(blend, ctrl, crc, rate=0.03)
    baseline = select_random_pooled(specific, seeds=range(3))
    assert len(baseline.groups) == 3 * len(specific.groups)
    for country in specific.groups:
        for seed in range(3):
            group = f"random{seed}:{country}"
            assert baseline.count(group) == specific.count(country)
            assert set(baseline.sites(group)) <= {"gate_pre", "q", "k", "v"}
        assert as_keys(baseline, f"random0:{country}") != as_keys(baseline, f"random1:{country}")
    again = select_random_pooled(specific, seeds=range(3))
    assert again == baseline
