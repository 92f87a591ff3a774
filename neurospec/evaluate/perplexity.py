"""Token-weighted perplexity per language, and the matrix "neurons of group g intervened" x "language evaluated".

    from neurospec.evaluate.perplexity import perplexity, perplexity_matrix
    perplexity(model, tok, ["Le chat dort.", ...]).ppl                       # exp(total NLL / total tokens)
    perplexity(model, tok, texts, intervention=Edit.zero(lape, groups=["fra_Latn"]))
    matrix = perplexity_matrix(model, tok, {"fra_Latn": fr_texts, "deu_Latn": de_texts}, lape,
                               recipe=Recipe.zero(), random_seeds=(0, 1))
    matrix.ppl["fra_Latn"]["deu_Latn"], matrix.summary()["fra_Latn"]["selectivity"]
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
"""

from __future__ import annotations

from typing import Callable, Literal, Mapping, Sequence

import torch

from neurospec.core.forward import length_sorted_chunks, model_device
from neurospec.core.head import summed_nll
from neurospec.core.hooks import prompt_boundary
from neurospec.data.prompts import EncodedPrompt, collate, ensure_pad_token
from neurospec.evaluate.scoring import applied, predicting
from neurospec.interventions.conditions import Condition, build_conditions
from neurospec.interventions.recipes import Recipe
from neurospec.measure.collect import check_length, max_positions
from neurospec.results.perplexity import Perplexity, PerplexityMatrix, Row
from neurospec.util.errors import NeurospecError
from neurospec.util.progress import progress

Bos = Literal["auto", "never"]


def default_max_length(model) -> int:
    """min(the model's maximum position, 2048): the longest window a text is scored in."""
    limit = max_positions(model)
    return min(limit[0], 2048) if limit else 2048


def encode_windows(tokenizer, texts: Sequence[str], *, bos: Bos = "auto", max_length: int = 2048) -> list[EncodedPrompt]:
    """Each text as one or more windows ``[BOS] + tokens``; roles mark the BOS ``wrapper`` and the text ``text``."""
    if bos not in ("auto", "never"):
        raise NeurospecError(f"bos must be 'auto' or 'never', not {bos!r}")
    prefix = [tokenizer.bos_token_id] if bos == "auto" and tokenizer.bos_token_id is not None else []
    room = max_length - len(prefix)
    if room < 2:
        raise NeurospecError(f"max_length={max_length} leaves no room to score a token")
    windows = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise NeurospecError(f"text {i} is empty: perplexity needs text (drop empty lines)")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids), room):
            chunk = ids[start:start + room]
            windows.append(EncodedPrompt(prefix + chunk, ["wrapper"] * len(prefix) + ["text"] * len(chunk)))
    return windows


def perplexity(model, tokenizer, texts: Sequence[str], *, intervention=None, batch_size: int = 8, bos: Bos = "auto",
               max_length: int | None = None) -> Perplexity:
    """Token-weighted perplexity of ``texts`` (see the module docstring for what is scored)."""
    if not texts:
        raise NeurospecError("no texts to evaluate: perplexity needs at least one text")
    check_length(model, max_length, "max_length")
    windows = encode_windows(tokenizer, texts, bos=bos, max_length=max_length or default_max_length(model))
    pad_id = ensure_pad_token(tokenizer)
    device = model_device(model)
    total, count = 0.0, 0
    with torch.no_grad(), applied(model, intervention):
        for chunk in length_sorted_chunks([len(w) for w in windows], batch_size):
            batch = collate([windows[i] for i in chunk], pad_id, "right").to(device)
            scored = batch.role_mask("text")[:, 1:]
            with prompt_boundary(model, batch.continuation_start):   # the head in chunks: no B x T x V tensor
                total += summed_nll(model, batch.model_inputs(model), predicting(scored),
                                    batch.input_ids[:, 1:][scored])
            count += int(scored.sum())
    if count == 0:
        raise NeurospecError("no token could be scored: every text is a single token and the tokenizer has no BOS")
    return Perplexity(total, count, len(texts))


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
                      quiet: bool = True) -> PerplexityMatrix:
    """The perplexity of every language in ``texts`` under no intervention, each group's, and random controls.

    ``neurons`` is a NeuronSet (None: only the unmodified row); ``groups`` picks and orders its groups (a group
    without neurons gets no row and is listed in ``empty_groups``, see :mod:`neurospec.interventions.targets`);
    ``stats`` supplies corpus statistics when the recipe sets neurons to one. ``on_cell(row, language,
    result)`` is called as each cell is finished; ``quiet=False`` also reports cells done, tokens/s and the ETA.
    """
    from neurospec.core.sites import site_map

    recipe = Recipe.parse(recipe)
    if not texts:
        raise NeurospecError("no languages to evaluate: give held-out texts for at least one language")
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
    return PerplexityMatrix([row for row, _ in plans], list(texts), cells, recipe, settings, empty)
