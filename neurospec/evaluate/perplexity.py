"""Token-weighted perplexity per language, and the matrix "neurons of group g intervened" x "language evaluated".

    from neurospec.evaluate.perplexity import perplexity, perplexity_matrix
    perplexity(model, tok, ["Le chat dort.", ...]).ppl                       # exp(total NLL / total tokens)
    perplexity(model, tok, texts, intervention=Edit.zero(lape, groups=["fra_Latn"]))
    matrix = perplexity_matrix(model, tok, {"fra_Latn": fr_texts, "deu_Latn": de_texts}, lape,
                               recipe=Recipe.zero(), random_seeds=(0, 1), bootstrap=1000, seed=0)
    matrix.ppl["fra_Latn"]["deu_Latn"], matrix.intervals.change["ppl"]["fra_Latn"]["deu_Latn"]   # (low, high)
    matrix.summary()["fra_Latn"]["neurons"]["ppl"]["difference"]            # own change minus mean other change
    matrix.save("runs/ppl")                                                 # ppl.json + CSV tables

Protocol. Each text is tokenised without special tokens; the tokenizer's BOS (where it has one) is
put in front of every text of every language alike (``bos="auto"``; ``"never"`` leaves it out). Every
text token that has a token before it is scored: with a BOS that is all of them, without one all but
the first. Texts longer than ``max_length`` are cut into consecutive windows, each scored on its own
(with its own BOS). Perplexity is exp(sum of token NLLs / number of scored tokens) over the whole
language (token-weighted, not a mean of per-text perplexities); padding is never scored and never
changes a score (rows are right-padded and positions come from the attention mask).

Rows of the matrix: ``none`` (the unmodified model), one per group of the neuron set (its neurons
intervened with ``recipe``, zero by default) and, per seed, ``random<seed>:<group>``: as many random
neurons in each layer as the group has there (:func:`neurospec.select.select_random`), given the
same recipe (a corpus statistic is read at the random neurons from the group's own statistics).

Intervals (:func:`matrix_intervals`, on by default: ``bootstrap=1000`` resamples, ``seed=0``, 95%): for each
language the texts are drawn with replacement, the same draw for every row (paired: a resample's change is
its row's perplexity minus the unmodified row's on the same texts), and each statistic is recomputed as the
point estimate is defined, the perplexity of the pooled tokens of the drawn texts. The own-versus-other
contrast of a group combines its own language's resample with the other languages' (drawn independently, as
their texts are). Percentile intervals; ``bootstrap=0`` writes none.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Mapping, Sequence

import torch

from neurospec.core.forward import length_sorted_chunks, model_device
from neurospec.core.head import token_nlls
from neurospec.core.hooks import prompt_boundary
from neurospec.data.prompts import EncodedPrompt, collate, ensure_pad_token
from neurospec.evaluate.intervals import bootstrap_counts, percentile_interval, percentile_intervals
from neurospec.evaluate.scoring import applied, predicting
from neurospec.interventions.conditions import Condition, build_conditions
from neurospec.interventions.recipes import Recipe
from neurospec.measure.collect import check_length, max_positions
from neurospec.results.perplexity import (
    ContrastIntervals,
    Perplexity,
    PerplexityIntervals,
    PerplexityMatrix,
    Row,
    Selectivity,
)
from neurospec.util.errors import NeurospecError, NeurospecWarning
from neurospec.util.progress import progress

Bos = Literal["auto", "never"]


def default_max_length(model) -> int:
    """min(the model's maximum position, 2048): the longest window a text is scored in."""
    limit = max_positions(model)
    return min(limit[0], 2048) if limit else 2048


def encode_windows(tokenizer, texts: Sequence[str], *, bos: Bos = "auto", max_length: int = 2048) -> list[EncodedPrompt]:
    """Each text as one or more windows ``[BOS] + tokens``; roles mark the BOS ``wrapper`` and the text ``text``."""
    return [window for windows in text_windows(tokenizer, texts, bos=bos, max_length=max_length) for window in windows]


def text_windows(tokenizer, texts: Sequence[str], *, bos: Bos = "auto",
                 max_length: int = 2048) -> list[list[EncodedPrompt]]:
    """Per text, its windows as :func:`encode_windows` makes them (``text_windows(tok, texts)[i]``: text i's)."""
    if bos not in ("auto", "never"):
        raise NeurospecError(f"bos must be 'auto' or 'never', not {bos!r}")
    prefix = [tokenizer.bos_token_id] if bos == "auto" and tokenizer.bos_token_id is not None else []
    room = max_length - len(prefix)
    if room < 2:
        raise NeurospecError(f"max_length={max_length} leaves no room to score a token")
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise NeurospecError(f"text {i} is empty: perplexity needs text (drop empty lines)")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append([EncodedPrompt(prefix + ids[start:start + room],
                                  ["wrapper"] * len(prefix) + ["text"] * len(ids[start:start + room]))
                    for start in range(0, len(ids), room)])
    return out


def row_nlls(model, inputs: dict, where: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per batch row, the summed NLL (float64, on the CPU) of ``targets`` predicted at the positions ``where``
    (B x T): :func:`neurospec.core.head.token_nlls` summed per row, so each text's NLL is known (the
    bootstrap resamples texts)."""
    owner = where.nonzero()[:, 0].cpu()
    per_token = token_nlls(model, inputs, where, targets).cpu().double()
    return torch.zeros(where.shape[0], dtype=torch.float64).index_add_(0, owner, per_token)


def perplexity(model, tokenizer, texts: Sequence[str], *, intervention=None, batch_size: int = 8, bos: Bos = "auto",
               max_length: int | None = None) -> Perplexity:
    """Token-weighted perplexity of ``texts`` (see the module docstring for what is scored); the result also keeps
    each text's summed NLL and scored tokens (``text_nll``, ``text_tokens``)."""
    if not texts:
        raise NeurospecError("no texts to evaluate: perplexity needs at least one text")
    check_length(model, max_length, "max_length")
    per_text = text_windows(tokenizer, texts, bos=bos, max_length=max_length or default_max_length(model))
    windows = [window for text in per_text for window in text]
    owners = [i for i, text in enumerate(per_text) for _ in text]
    pad_id = ensure_pad_token(tokenizer)
    device = model_device(model)
    text_nll = [0.0] * len(texts)
    text_tokens = [0] * len(texts)
    with torch.no_grad(), applied(model, intervention):
        for chunk in length_sorted_chunks([len(w) for w in windows], batch_size):
            batch = collate([windows[i] for i in chunk], pad_id, "right").to(device)
            scored = batch.role_mask("text")[:, 1:]
            with prompt_boundary(model, batch.continuation_start):   # the head in chunks: no B x T x V tensor
                nlls = row_nlls(model, batch.model_inputs(model), predicting(scored), batch.input_ids[:, 1:][scored])
            for i, nll, count in zip(chunk, nlls.tolist(), scored.sum(dim=1).tolist()):
                text_nll[owners[i]] += nll
                text_tokens[owners[i]] += int(count)
    if sum(text_tokens) == 0:
        raise NeurospecError("no token could be scored: every text is a single token and the tokenizer has no BOS")
    return Perplexity(math.fsum(text_nll), sum(text_tokens), len(texts), tuple(text_nll), tuple(text_tokens))


# --------------------------------------------------------------------------------------------
# The matrix (its rows, cells and JSON are neurospec.results.perplexity's: Row, Perplexity, PerplexityMatrix)


def matrix_row(condition: Condition) -> Row:
    """The matrix row of a condition (none, its target group, or a random control standing in for one)."""
    kind = "group" if condition.kind == "target" else condition.kind
    return Row(condition.name, kind, condition.group, condition.seed, condition.size)  # type: ignore[arg-type]


def perplexity_matrix(model, tokenizer, texts: Mapping[str, Sequence[str]], neurons=None, *,
                      recipe: Recipe | str = "zero", groups: Sequence[str] | None = None, stats=None,
                      random_seeds: Sequence[int] = (), random_exclude: bool = False, batch_size: int = 8,
                      bos: Bos = "auto", max_length: int | None = None,
                      on_cell: Callable[[str, str, Perplexity], None] | None = None,
                      quiet: bool = True, bootstrap: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> PerplexityMatrix:
    """The perplexity of every language in ``texts`` under no intervention, each group's, and random controls.

    ``neurons`` is a NeuronSet (None: only the unmodified row); ``groups`` picks and orders its groups (a group
    without neurons gets no row and is listed in ``empty_groups``, see :mod:`neurospec.interventions.targets`);
    ``stats`` supplies corpus statistics when the recipe sets neurons to one. ``on_cell(row, language,
    result)`` is called as each cell is finished; ``quiet=False`` also reports cells done, tokens/s and the ETA.
    ``bootstrap`` resamples (0: none), seeded by ``seed``, give every change and contrast its ``confidence``
    interval (:func:`matrix_intervals`).
    """
    from neurospec.core.sites import site_map

    recipe = Recipe.parse(recipe)
    if not texts:
        raise NeurospecError("no languages to evaluate: give held-out texts for at least one language")
    if bootstrap < 0:
        raise NeurospecError(f"bootstrap must be 0 (no intervals) or a number of resamples, got {bootstrap}")
    check_length(model, max_length, "max_length")
    if neurons is not None:
        neurons.validate_for(site_map(model).shape)
    built = build_conditions(neurons, recipe, groups, verb="ppl", stats=stats, random_seeds=random_seeds,
                             random_exclude=random_exclude)
    plans = [(matrix_row(condition), condition.edit) for condition in built]
    empty = built.empty
    cells: dict[str, dict[str, Perplexity]] = {}
    with progress("ppl", total=len(plans) * len(texts), unit="cells", quiet=quiet) as bar:
        for row, edit in plans:
            cells[row.name] = {}
            for language, language_texts in texts.items():
                result = perplexity(model, tokenizer, language_texts, intervention=edit, batch_size=batch_size,
                                    bos=bos, max_length=max_length)
                cells[row.name][language] = result
                bar.advance(1, tokens=result.tokens)
                if on_cell:
                    on_cell(row.name, language, result)
    settings = {"bos": bos, "max_length": max_length or default_max_length(model), "random_seeds": list(random_seeds),
                "random_exclude": random_exclude, "texts": {lang: len(t) for lang, t in texts.items()}}
    matrix = PerplexityMatrix([row for row, _ in plans], list(texts), cells, recipe, settings, empty)
    if bootstrap:
        matrix.intervals = matrix_intervals(matrix, bootstrap=bootstrap, seed=seed, confidence=confidence)
    return matrix


# --------------------------------------------------------------------------------------------
# Intervals: a paired bootstrap over texts

RATIO_NOT_POSITIVE = "the mean change on the other languages is not positive, so a ratio to it means nothing"
RATIO_NEAR_ZERO = "the interval of the mean change on the other languages reaches 0, so the ratio is unbounded"


def matrix_intervals(matrix: PerplexityMatrix, *, bootstrap: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> PerplexityIntervals | None:
    """Paired percentile bootstrap intervals of every change and own-versus-other contrast (module docstring).

    ``matrix_intervals(matrix, bootstrap=1000, seed=0)``; the cells must keep each text's NLL and tokens (as
    :func:`perplexity` makes them). None, with a warning, when a language has fewer than two texts: resampling
    one text gives an interval of zero width, which would claim a certainty it does not have.
    """
    import warnings

    short = [lang for lang in matrix.languages if matrix.cells["none"][lang].texts < 2]
    if short:
        warnings.warn(f"no perplexity intervals: {', '.join(short)} have fewer than 2 texts to resample",
                      NeurospecWarning, stacklevel=2)
        return None
    names = [row.name for row in matrix.rows]
    base = names.index("none")
    mean_nll = resampled_mean_nll(matrix, names, bootstrap, torch.Generator().manual_seed(seed))
    changes = {"ppl": {lang: m.exp() - m[:, base:base + 1].exp() for lang, m in mean_nll.items()},
               "nll": {lang: m - m[:, base:base + 1] for lang, m in mean_nll.items()}}
    change_ci: dict[str, dict[str, dict[str, tuple[float, float] | None]]] = {}
    for kind, by_language in changes.items():
        change_ci[kind] = {name: {} for name in names}
        for language, replicates in by_language.items():
            low, high = percentile_intervals(replicates, confidence)
            for column, name in enumerate(names):
                change_ci[kind][name][language] = None if column == base else (float(low[column]), float(high[column]))
    points = {kind: matrix.change(kind) for kind in ("ppl", "nll")}
    contrasts = {group: {label: {kind: contrast_intervals(changes[kind], own, names.index(name),
                                                          Selectivity.of(points[kind][name], own).mean_other, confidence)
                                 for kind in ("ppl", "nll")} for label, name in pairs}
                 for group, (own, pairs) in matrix.contrasts().items()}
    return PerplexityIntervals(confidence, bootstrap, seed, {lang: matrix.cells["none"][lang].texts
                                                             for lang in matrix.languages}, change_ci, contrasts)


def resampled_mean_nll(matrix: PerplexityMatrix, names: Sequence[str], resamples: int, generator) -> dict[str, torch.Tensor]:
    """Per language, a ``resamples`` x rows tensor: the mean NLL of the pooled tokens of each resample's texts,
    one draw of texts per resample shared by every row (in ``names`` order)."""
    out = {}
    for language in matrix.languages:
        cells = [matrix.cells[name][language] for name in names]
        if any(len(cell.text_nll) != cell.texts or cell.text_tokens != cells[0].text_tokens for cell in cells):
            raise NeurospecError(f"the {language} cells do not keep each text's NLL and tokens alike: intervals need "
                                 "cells made by neurospec.evaluate.perplexity.perplexity on the same texts")
        tokens = torch.tensor(cells[0].text_tokens, dtype=torch.float64)
        nll = torch.tensor([cell.text_nll for cell in cells], dtype=torch.float64).T  # texts x rows
        counts = bootstrap_counts(len(tokens), resamples, generator)
        out[language] = (counts @ nll) / (counts @ tokens).unsqueeze(1)
    return out


def contrast_intervals(changes: Mapping[str, torch.Tensor], own: str, column: int, mean_other: float,
                       confidence: float = 0.95) -> ContrastIntervals:
    """Intervals of one row's own-language change, mean other change, their difference and (where it means
    something) their ratio, from per-language replicate changes (``changes[language][:, column]``).

    The ratio is given only when the mean other change is positive and its interval lies above 0 (and the
    ratio's own interval is finite); otherwise it is None with the reason."""
    own_values = changes[own][:, column]
    other_values = torch.stack([values[:, column] for lang, values in changes.items() if lang != own]).mean(dim=0)
    own_ci = percentile_interval(own_values, confidence)
    other_ci = percentile_interval(other_values, confidence)
    difference_ci = percentile_interval(own_values - other_values, confidence)
    if not mean_other > 0:
        return ContrastIntervals(own_ci, other_ci, difference_ci, None, RATIO_NOT_POSITIVE)
    ratios = torch.where(other_values > 0, own_values / other_values.clamp_min(1e-300), math.inf)
    ratio_ci = percentile_interval(ratios, confidence)
    if not other_ci[0] > 0 or not all(math.isfinite(bound) for bound in ratio_ci):
        return ContrastIntervals(own_ci, other_ci, difference_ci, None, RATIO_NEAR_ZERO)
    return ContrastIntervals(own_ci, other_ci, difference_ci, ratio_ci)
