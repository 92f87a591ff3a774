"""Fluency of generated continuations: distinct-n, repeated tokens, and perplexity under the unmodified model.

    from neurospec.evaluate.fluency import distinct_n, repeated_token_share, continuation_nll, compare_fluency
    distinct_n([5, 5, 7, 5], 2)            # 2 distinct bigrams of 3 -> 0.667
    repeated_token_share([5, 5, 7, 5])     # 1 of 3 tokens repeats the one before it -> 0.333
    nll = continuation_nll(model, tok, prompts, generations)   # per generation: (summed NLL, tokens), no edit
    measures = compare_fluency(steered_units, none_units)      # measure -> FluencyComparison

Per continuation (its generated token ids): ``distinct_1`` and ``distinct_2`` are the distinct n-grams over
all n-grams of the continuation (undefined with fewer than n tokens), ``repeated_token_share`` the share of
tokens after the first that equal the token right before them (``择择种种种种`` scores high); each is averaged
over the continuations where it is defined. ``perplexity`` is exp of the summed negative log-likelihood of
the generated tokens given the prompt under the model with no intervention, over the summed token count
(continuations pooled, as neurospec's perplexity is). Every measure is thus a ratio of sums over prompts,
so its 95% interval is a seeded percentile bootstrap over prompts, and a row's change from the unmodified
model's generations (the same prompts) a paired one (prompts drawn together for both rows).
"""

from __future__ import annotations

from typing import Sequence

import torch

from neurospec.data.prompts import PLAIN, EncodedPrompt, PromptFormat, encode, ensure_pad_token
from neurospec.evaluate.intervals import bootstrap_counts, percentile_interval
from neurospec.evaluate.scoring import Generation, score_encoded
from neurospec.results.steering import FluencyComparison, Measure

FLUENCY_MEASURES = ("distinct_1", "distinct_2", "repeated_token_share", "perplexity")
FLUENCY_INTERVAL = "percentile bootstrap over prompts"
FLUENCY_CHANGE_INTERVAL = "paired percentile bootstrap over prompts"
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0

Units = dict[str, tuple[float, float]]  # measure -> (numerator, denominator) of one continuation


def distinct_n(tokens: Sequence[int], n: int) -> float | None:
    """``distinct_n([5, 5, 7, 5], 2)``: distinct n-grams over all n-grams of ``tokens``; None with fewer than n."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def repeated_token_share(tokens: Sequence[int]) -> float | None:
    """``repeated_token_share([5, 5, 7, 5])``: the share of tokens after the first equal to the one before; None
    with fewer than two tokens."""
    pairs = list(zip(tokens, tokens[1:]))
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def continuation_units(tokens: Sequence[int], nll: float) -> Units:
    """The (numerator, denominator) of every measure for one continuation (0, 0 where a measure is undefined)."""
    units: Units = {}
    for name, value in (("distinct_1", distinct_n(tokens, 1)), ("distinct_2", distinct_n(tokens, 2)),
                        ("repeated_token_share", repeated_token_share(tokens))):
        units[name] = (value, 1.0) if value is not None else (0.0, 0.0)
    units["perplexity"] = (nll, float(len(tokens)))
    return units


def continuation_nll(model, tokenizer, prompts: Sequence[str], generations: Sequence[Generation], *,
                     fmt: PromptFormat = PLAIN, batch_size: int = 8) -> list[float]:
    """``continuation_nll(model, tok, prompts, generations)``: per generation, the summed negative log-likelihood of
    its generated token ids given its prompt under ``model`` with no intervention (0.0 for an empty one)."""
    encoded, scored_at = [], []
    for i, (prompt, generation) in enumerate(zip(prompts, generations)):
        if generation.token_ids:
            head = encode(tokenizer, prompt, fmt)
            ids = list(generation.token_ids)
            encoded.append(EncodedPrompt(head.input_ids + ids, head.roles + ["continuation"] * len(ids)))
            scored_at.append(i)
    nll = [0.0] * len(generations)
    if encoded:
        scores = score_encoded(model, encoded, ensure_pad_token(tokenizer), batch_size=batch_size, intervention=None)
        for i, score in zip(scored_at, scores):
            nll[i] = -score.logprob
    return nll


def ratio(sums: torch.Tensor, measure: str) -> torch.Tensor:
    """The measure from summed (numerator, denominator) columns: their ratio, exp of it for perplexity."""
    value = sums[..., 0] / sums[..., 1]
    return value.exp() if measure == "perplexity" else value


def finite_interval(replicates: torch.Tensor) -> tuple[float, float] | None:
    """The 95% percentile interval of the finite replicates (a resample with no defined value is left out)."""
    kept = replicates[torch.isfinite(replicates)]
    return percentile_interval(kept) if kept.numel() else None


def measure(units: Sequence[Units], name: str) -> Measure:
    """The measure over prompts with its seeded bootstrap interval; value None where no continuation defines it."""
    data = torch.tensor([u[name] for u in units], dtype=torch.float64)
    defined = int((data[:, 1] > 0).sum())
    if not defined:
        return Measure(None, None, 0)
    counts = bootstrap_counts(len(units), BOOTSTRAP_RESAMPLES, torch.Generator().manual_seed(BOOTSTRAP_SEED))
    replicates = ratio(counts @ data, name)
    return Measure(float(ratio(data.sum(0), name)), finite_interval(replicates), defined)


def change_interval(steered: Sequence[Units], baseline: Sequence[Units], name: str) -> tuple[float, float] | None:
    """The paired bootstrap interval of the steered measure minus the baseline's (prompts drawn together)."""
    data = torch.tensor([[*s[name], *b[name]] for s, b in zip(steered, baseline)], dtype=torch.float64)
    if not (data[:, 1].sum() > 0 and data[:, 3].sum() > 0):
        return None
    counts = bootstrap_counts(len(data), BOOTSTRAP_RESAMPLES, torch.Generator().manual_seed(BOOTSTRAP_SEED))
    sums = counts @ data
    return finite_interval(ratio(sums[:, :2], name) - ratio(sums[:, 2:], name))


def compare_fluency(steered: Sequence[Units], baseline: Sequence[Units]) -> dict[str, FluencyComparison]:
    """Per measure: the steered row's value, the unmodified model's on the same prompts, and the paired change."""
    if len(steered) != len(baseline):
        raise ValueError(f"{len(steered)} steered continuations but {len(baseline)} unmodified ones")
    return {name: FluencyComparison(measure(steered, name), measure(baseline, name),
                                    change_interval(steered, baseline, name)) for name in FLUENCY_MEASURES}
