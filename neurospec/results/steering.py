"""Steering by generation (steer.json): the share of continuations in each target language.

    from neurospec.results.steering import SteeringRecord
    record = SteeringRecord.from_json(json.loads(text), "runs/steer/steer.json")
    line = record.table[0]                  # a target row and a source language
    line.row, line.source, line.steered.share, line.steered.ci95, line.baseline.share

Built by :meth:`neurospec.evaluate.steering.SteeringResult.record`, which also keeps every generation (in
generations.jsonl, not in this file). Rows are ``none``, each target group and per seed
``random<seed>:<group>``; a line of the table is a target row and a source: the share of its continuations in
the row's target language, and the unmodified model's share in that language (``baseline``), each with its 95%
Wilson interval, and the ``change`` (share minus baseline share: the same prompts, so a paired difference) with
Newcombe's paired score interval (``change_ci95``; absent from files written before it, as is the record's
``interval_method``). ``fluency`` (absent from older files) holds per measure (distinct_1, distinct_2,
repeated_token_share, perplexity under the unmodified model; :mod:`neurospec.evaluate.fluency`) the row's
``value`` with its bootstrap ``ci95`` and ``n``, the unmodified model's (``baseline``) on the same prompts, and
the ``change`` between them with a paired bootstrap ``change_ci95``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from neurospec.interventions.recipes import Recipe
from neurospec.results.fields import Doc, check_rewrites, interval_json, open_document
from neurospec.results.recipes import read_recipe


@dataclass(frozen=True)
class SteeringRow:
    """A row: ``kind`` none, group or random; ``group`` whose neurons; ``target`` the language steered toward."""

    name: str
    kind: Literal["none", "group", "random"]
    group: str | None = None
    target: str | None = None
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "group": self.group, "target": self.target, "seed": self.seed}

    @classmethod
    def from_json(cls, doc: Doc) -> "SteeringRow":
        kind = doc["kind"].text()
        if kind not in ("none", "group", "random"):
            raise doc["kind"].error(f"is {kind!r}; a row is none, group or random")
        return cls(doc["name"].text(), kind, doc["group"].opt_text(), doc["target"].opt_text(),  # type: ignore[arg-type]
                   doc["seed"].opt_integer())


@dataclass(frozen=True)
class Share:
    """``k`` of ``n`` continuations in a language: ``share`` = k / n, with its 95% Wilson interval ``ci95``."""

    k: int
    n: int
    ci95: tuple[float, float]

    @property
    def share(self) -> float:
        return self.k / self.n

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "n": self.n, "share": self.share, "ci95": interval_json(self.ci95)}

    @classmethod
    def from_json(cls, doc: Doc) -> "Share":
        n = doc["n"].integer()
        if n < 1:
            raise doc["n"].error(f"is {n}; a share needs at least one continuation")
        interval = doc["ci95"].interval()
        if interval is None:
            raise doc["ci95"].error("is null; a share has a [low, high] interval")
        return cls(doc["k"].integer(), n, interval)


@dataclass(frozen=True)
class Measure:
    """A fluency measure of one row's continuations from one source: ``value`` (None where no continuation defines
    it), its 95% bootstrap interval ``ci95`` and ``n``, the continuations that define it."""

    value: float | None
    ci95: tuple[float, float] | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": interval_json(self.ci95), "n": self.n}

    @classmethod
    def from_json(cls, doc: Doc) -> "Measure":
        value = doc["value"].opt_number()
        return cls(None if value is None else float(value), doc["ci95"].interval(), doc["n"].integer())


@dataclass(frozen=True)
class FluencyComparison:
    """A fluency measure of a row (``steered``) and of the unmodified model on the same prompts (``baseline``), with
    the paired bootstrap interval of their difference (``change_ci95``)."""

    steered: Measure
    baseline: Measure
    change_ci95: tuple[float, float] | None

    @property
    def change(self) -> float | None:
        """The steered value minus the unmodified model's (None where either is undefined)."""
        if self.steered.value is None or self.baseline.value is None:
            return None
        return self.steered.value - self.baseline.value

    def to_json(self) -> dict[str, Any]:
        return {**self.steered.to_json(), "baseline": self.baseline.to_json(), "change": self.change,
                "change_ci95": interval_json(self.change_ci95)}

    @classmethod
    def from_json(cls, doc: Doc) -> "FluencyComparison":
        return cls(Measure.from_json(doc), Measure.from_json(doc["baseline"]), doc["change_ci95"].interval())


@dataclass(frozen=True)
class SteeringLine:
    """One target ``row`` and ``source`` language: the ``steered`` share in the row's ``target`` language and the
    unmodified model's share in it (``baseline``)."""

    row: str
    kind: str
    target: str
    source: str
    steered: Share
    baseline: Share
    change_ci95: tuple[float, float] | None = None  # Newcombe's paired interval of ``change`` (None: an older file)
    fluency: dict[str, FluencyComparison] | None = None  # measure -> comparison with none (None: an older file)

    @property
    def change(self) -> float:
        """The steered share minus the unmodified model's share in the target language, on the same prompts."""
        return self.steered.share - self.baseline.share

    def to_json(self) -> dict[str, Any]:
        out = {"row": self.row, "kind": self.kind, "target": self.target, "source": self.source,
               **self.steered.to_json(), "baseline": self.baseline.to_json()}
        if self.change_ci95 is not None:
            out.update(change=self.change, change_ci95=interval_json(self.change_ci95))
        if self.fluency is not None:
            out["fluency"] = {name: comparison.to_json() for name, comparison in self.fluency.items()}
        return out

    @classmethod
    def from_json(cls, doc: Doc) -> "SteeringLine":
        change_ci95 = doc["change_ci95"].interval() if "change_ci95" in doc else None
        fluency = ({name: FluencyComparison.from_json(measure) for name, measure in doc["fluency"].items()}
                   if "fluency" in doc else None)
        return cls(doc["row"].text(), doc["kind"].text(), doc["target"].text(), doc["source"].text(),
                   Share.from_json(doc), Share.from_json(doc["baseline"]), change_ci95, fluency)


@dataclass
class SteeringRecord:
    """A steer.json: the recipe, the prompt languages (``sources``), the rows and the share table."""

    FORMAT = "neurospec.steering"
    VERSION = 1
    COMMAND = "neurospec steer"

    recipe: Recipe
    sources: list[str]
    rows: list[SteeringRow]
    table: list[SteeringLine]
    settings: dict[str, Any] = field(default_factory=dict)
    empty_groups: dict[str, str] = field(default_factory=dict)  # group -> why it has no row (no neurons)
    provenance: dict[str, Any] | None = None  # what `neurospec steer` adds to the file (the command, the model)
    interval_method: dict[str, str] | None = None  # kind of interval -> its method (None: an older file)

    def to_json(self) -> dict[str, Any]:
        out = {"format": self.FORMAT, "version": self.VERSION, "recipe": self.recipe.to_json(),
               "sources": self.sources, "rows": [row.to_json() for row in self.rows],
               "table": [line.to_json() for line in self.table], "empty_groups": self.empty_groups,
               "settings": self.settings}
        if self.interval_method is not None:
            out["interval_method"] = self.interval_method
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out

    @classmethod
    def from_json(cls, document: Any, where: str, fix: str | None = None) -> "SteeringRecord":
        """The record a steer.json holds (``where`` names the file in errors, ``fix`` says what to do about one)."""
        doc = open_document(document, cls, where, fix)
        provenance = doc["provenance"].object() if "provenance" in doc else None
        record = cls(read_recipe(doc["recipe"]), doc["sources"].texts(),
                     [SteeringRow.from_json(row) for row in doc["rows"].list()],
                     [SteeringLine.from_json(line) for line in doc["table"].list()], doc["settings"].object(),
                     doc["empty_groups"].text_map(), provenance,
                     doc["interval_method"].text_map() if "interval_method" in doc else None)
        check_rewrites(doc, record.to_json())
        return record
