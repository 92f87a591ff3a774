"""Steering the output language by generation, and the share of generations in the target language.

    from neurospec.evaluate.steering import LanguageIdentifier, steer_generation
    LanguageIdentifier().identify("Le chat dort sur le tapis")           # 'fra_Latn'
    result = steer_generation(model, tok, {"eng_Latn": prompts_en, "deu_Latn": prompts_de}, lape,
                              recipe="set:p_max", stats=stats, targets=["fra_Latn"], random_seeds=(0,))
    result.share("fra_Latn", "eng_Latn")    # ShareOf(k, n, share, ci95): English prompts -> French outputs
    result.save("runs/steer")               # steer.json, steer_share.csv, generations.jsonl

Every (row, source language) generates a continuation of each prompt: rows are ``none`` (no
intervention), each target group with ``recipe`` applied to its neurons, and per seed
``random<seed>:<target>`` (matched random neurons, same recipe). The language of each continuation
(the generated text only, not the prompt) is identified offline with py3langid, whose model is in
its wheel and which covers all 18 languages of the amplification paper, Haitian and Quechua
included (lingua-language-detector lacks both; docs/evaluation.md). A continuation without letters
counts as no language. Shares carry 95% Wilson intervals (which keep a width at 0 of 4 and 4 of 4);
a row's change from the unmodified model's share (the same prompts, so paired) carries Newcombe's paired
score interval (steer.json's ``interval_method`` names both). Beside each share, the fluency of the row's
continuations (distinct-1, distinct-2, repeated-token share, and their perplexity under the unmodified model:
one extra scoring pass of the generated tokens given the prompt, no intervention) and of the unmodified
model's own, with seeded bootstrap intervals over prompts (:mod:`neurospec.evaluate.fluency`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from neurospec.data.languages import language_of
from neurospec.data.prompts import PLAIN, PromptFormat
from neurospec.evaluate.fluency import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    FLUENCY_CHANGE_INTERVAL,
    FLUENCY_INTERVAL,
    Units,
    compare_fluency,
    continuation_nll,
    continuation_units,
)
from neurospec.evaluate.intervals import NEWCOMBE_PAIRED, WILSON, newcombe_paired, wilson
from neurospec.evaluate.scoring import generate_texts
from neurospec.interventions.conditions import Condition, build_conditions
from neurospec.interventions.recipes import Recipe
from neurospec.results.steering import FluencyComparison, Share, SteeringLine, SteeringRecord, SteeringRow
from neurospec.results.tables import write_matrix_csv
from neurospec.util.errors import NeurospecError
from neurospec.util.io import atomic_write_json, atomic_write_text
from neurospec.util.progress import progress


@lru_cache(maxsize=1)
def _py3langid():
    from py3langid.langid import MODEL_FILE
    from py3langid.langid import LanguageIdentifier as Model

    return Model, MODEL_FILE


class LanguageIdentifier:
    """py3langid behind the language registry: ``identify(text)`` -> registry key, or None.

    ``candidates`` (language names or codes) restricts the answer to those languages; by default
    every language py3langid knows can be returned.
    """

    def __init__(self, candidates: Sequence[str] | None = None) -> None:
        from neurospec.data.languages import from_langid_label, langid_label, resolve

        model_class, model_file = _py3langid()
        self._model = model_class.from_model_file(model_file, norm_probs=True)
        self._to_key = from_langid_label
        self.candidates: list[str] | None = None
        if candidates is not None:
            labels = []
            for name in candidates:
                label = langid_label(name)
                if label is None:
                    raise NeurospecError(f"py3langid cannot identify {resolve(name).name}; drop it from the candidates")
                labels.append(label)
            self._model.set_languages(langs=sorted(set(labels)))
            self.candidates = [resolve(name).key for name in candidates]

    def identify(self, text: str) -> str | None:
        """The language key of ``text``; None when it holds no letters."""
        if not any(ch.isalpha() for ch in text):
            return None
        label, _ = self._model.classify(text)
        language = self._to_key(label)
        return language.key if language is not None else None


@dataclass(frozen=True)
class ShareOf:
    """``k`` of ``n`` outputs in the language; ``share`` = k / n with its 95% Wilson interval."""

    k: int
    n: int

    @property
    def share(self) -> float:
        return self.k / self.n

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def record(self) -> Share:
        """The share as steer.json holds it (:class:`neurospec.results.steering.Share`)."""
        return Share(self.k, self.n, self.ci95)

    def to_json(self) -> dict[str, Any]:
        return self.record().to_json()


@dataclass
class SteeringResult:
    """Generations and their identified languages per row and source language (rows: :class:`SteeringRow`)."""

    rows: list[SteeringRow]
    sources: list[str]
    outputs: dict[str, dict[str, list[dict[str, Any]]]]
    recipe: Recipe
    settings: dict[str, Any] = field(default_factory=dict)
    empty_groups: dict[str, str] = field(default_factory=dict)  # group -> why it has no row (no neurons)

    def share(self, row: str, source: str, language: str | None = None) -> ShareOf:
        """Share of ``row``'s outputs from ``source`` prompts identified as ``language`` (default: the row's target)."""
        language = language or next(r.target for r in self.rows if r.name == row)
        outputs = self.outputs[row][source]
        return ShareOf(sum(o["language"] == language for o in outputs), len(outputs))

    def in_language(self, row: str, source: str, language: str) -> list[bool]:
        """Per prompt of ``source``, in order: whether ``row``'s continuation was identified as ``language``."""
        return [o["language"] == language for o in self.outputs[row][source]]

    def fluency_units(self, row: str, source: str) -> list[Units] | None:
        """Per prompt of ``source``, in order: the fluency units of ``row``'s continuation (None when the
        generations carry no token ids and scores)."""
        outputs = self.outputs[row][source]
        if not all("token_ids" in o and "nll" in o for o in outputs):
            return None
        return [continuation_units(o["token_ids"], o["nll"]) for o in outputs]

    def fluency(self, row: str, source: str) -> dict[str, FluencyComparison] | None:
        """Per fluency measure: ``row``'s continuations from ``source`` against the unmodified model's."""
        steered, baseline = self.fluency_units(row, source), self.fluency_units("none", source)
        return compare_fluency(steered, baseline) if steered is not None and baseline is not None else None

    def lines(self) -> list[SteeringLine]:
        """One line per (target row, source): its share in the target, the unmodified model's share there, and
        the paired interval of the change between them (the same prompts under both); and the fluency of both."""
        return [SteeringLine(row.name, row.kind, row.target, source, self.share(row.name, source).record(),
                             self.share("none", source, row.target).record(),
                             newcombe_paired(self.in_language(row.name, source, row.target),
                                             self.in_language("none", source, row.target)),
                             self.fluency(row.name, source))
                for row in self.rows if row.target is not None for source in self.sources]

    def table(self) -> list[dict[str, Any]]:
        """:meth:`lines` as JSON: the ``table`` of steer.json."""
        return [line.to_json() for line in self.lines()]

    def record(self) -> SteeringRecord:
        """What steer.json holds: everything but the generations (:class:`neurospec.results.steering.SteeringRecord`)."""
        return SteeringRecord(self.recipe, self.sources, list(self.rows), self.lines(), self.settings,
                              self.empty_groups, interval_method={"share": WILSON, "change": NEWCOMBE_PAIRED,
                                                                  "fluency": FLUENCY_INTERVAL,
                                                                  "fluency_change": FLUENCY_CHANGE_INTERVAL})

    def to_json(self) -> dict[str, Any]:
        return self.record().to_json()

    def save(self, folder: str | Path) -> Path:
        """``steer.json``, ``steer_share.csv`` (rows x sources, share in the row's target) and ``generations.jsonl``."""
        folder = Path(folder)
        shares = {r.name: {s: self.share(r.name, s).share for s in self.sources} for r in self.rows if r.target}
        write_matrix_csv(folder / "steer_share.csv", list(shares), self.sources, shares)
        self.save_generations(folder)
        return atomic_write_json(folder / "steer.json", self.to_json())

    def save_generations(self, folder: str | Path) -> Path:
        """``generations.jsonl``: one line per continuation (row, source, prompt, text, language, token ids, NLL)."""
        lines = [json.dumps({"row": row, "source": source, **output}, ensure_ascii=False)
                 for row, per_source in self.outputs.items() for source, outputs in per_source.items()
                 for output in outputs]
        return atomic_write_text(Path(folder) / "generations.jsonl", "\n".join(lines) + "\n")


def steering_row(condition: Condition) -> SteeringRow:
    """The row of a condition: none, a target group, or a random control, each steering toward its group's language."""
    kind = "group" if condition.kind == "target" else condition.kind
    target = (language_of(condition.group) or condition.group) if condition.group else None
    return SteeringRow(condition.name, kind, condition.group, target, condition.seed)  # type: ignore[arg-type]


def steer_generation(model, tokenizer, prompts: Mapping[str, Sequence[str]], neurons, *,
                     recipe: Recipe | str = "set:p_max", stats=None, targets: Sequence[str] | None = None,
                     random_seeds: Sequence[int] = (), max_new_tokens: int = 32, batch_size: int = 8,
                     candidates: Sequence[str] | None = None, fmt: PromptFormat = PLAIN, do_sample: bool = False,
                     seed: int = 0, on_row: Callable[[str, str], None] | None = None,
                     quiet: bool = True) -> SteeringResult:
    """Generate from every source's prompts under no intervention and under each target's (see module docstring)."""
    from neurospec.core.sites import site_map

    recipe = Recipe.parse(recipe)
    if not prompts or any(not list(p) for p in prompts.values()):
        empty = [s for s, p in prompts.items() if not list(p)]
        raise NeurospecError(f"no prompts for {', '.join(empty) or 'any language'}: give at least one prompt per source")
    neurons.validate_for(site_map(model).shape)
    sources = [language_of(s) or s for s in prompts]
    built = build_conditions(neurons, recipe, targets, verb="steer", stats=stats, random_seeds=random_seeds)
    plans = [(steering_row(condition), condition.edit) for condition in built]
    identifier = LanguageIdentifier(candidates)
    outputs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with progress("steer", total=len(plans) * len(sources), unit="rows x sources", quiet=quiet) as bar:
        for row, edit in plans:
            outputs[row.name] = {}
            for source, texts in zip(sources, prompts.values()):
                generated = generate_texts(model, tokenizer, list(texts), fmt=fmt, max_new_tokens=max_new_tokens,
                                           do_sample=do_sample, seed=seed, batch_size=batch_size, intervention=edit)
                nll = continuation_nll(model, tokenizer, list(texts), generated, fmt=fmt, batch_size=batch_size)
                outputs[row.name][source] = [
                    {"prompt": g.prompt, "text": g.text, "language": identifier.identify(g.text),
                     "token_ids": list(g.token_ids), "nll": loss} for g, loss in zip(generated, nll)
                ]
                bar.advance(1, items=len(generated))
                if on_row:
                    on_row(row.name, source)
    settings = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "seed": seed, "random_seeds": list(random_seeds),
                "candidates": identifier.candidates, "language_id": "py3langid",
                "prompts": {s: len(list(p)) for s, p in zip(sources, prompts.values())},
                "fluency": {"bootstrap_resamples": BOOTSTRAP_RESAMPLES, "bootstrap_seed": BOOTSTRAP_SEED,
                            "perplexity_model": "unmodified"}}
    return SteeringResult([row for row, _ in plans], sources, outputs, recipe, settings, built.empty)


def prompts_from_parallel(sentences: Mapping[str, Sequence[tuple[int, str]]], *, fraction: float = 0.5,
                          limit: int | None = None) -> dict[str, list[str]]:
    """Generation prompts per language: the first ``fraction`` of each sentence's words (characters for
    languages written without spaces), at least one word; ``limit`` keeps the first N sentences."""
    from neurospec.data.lss_items import is_unspaced

    if not 0 < fraction < 1:
        raise NeurospecError(f"fraction must be between 0 and 1, got {fraction}")
    out = {}
    for language, rows in sentences.items():
        chosen = list(rows)[:limit] if limit else list(rows)
        prompts = []
        for _, text in chosen:
            if is_unspaced(language):
                prompts.append(text[:max(1, int(len(text) * fraction))])
            else:
                words = text.split()
                prompts.append(" ".join(words[:max(1, int(len(words) * fraction))]))
        out[language_of(language) or language] = prompts
    return out
