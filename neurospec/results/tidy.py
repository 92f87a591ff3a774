"""Tidy tables of the artifacts: one row per estimate, with its condition, languages, metric, n and interval.

    from neurospec.results.tidy import load, tidy_table, write_tidy_csv
    tables = load("runs/study")                  # {"ppl": DataFrame, "lss": DataFrame, ...}: needs pandas
    lss = tables["lss"].query("metric == 'lss' and condition == language")
    lss.pivot(index="source", columns="language", values="estimate")
    write_tidy_csv("runs/ppl/ppl.json")          # runs/ppl/ppl.tidy.csv beside it (every verb does this)
    tidy_table("runs/lss/lss.json").rows         # the same rows as dicts, without pandas

Every verb that writes a JSON result writes ``<name>.tidy.csv`` beside ``<name>.json`` (``ppl.tidy.csv``,
``lss.tidy.csv``, ``xcopa.tidy.csv``, a sweep's ``sweep.tidy.csv`` and one per setting's ``lss.json``; not in
statistics and attribution folders, whose manifest lists every file: :func:`load` reads their JSON). The rows
are built from the typed result (:mod:`neurospec.results`): per kind, this module says which field is the
condition, the group, the languages; the numbers are read generically from the cell's JSON, so a field a result
gains flows into the table:

- every number of a cell is a row, its key the ``metric`` (a nested object prefixes its keys:
  ``baseline.share``, ``rules.letters_only.accuracy``; an object ``{"estimate", "lo", "hi"}`` under ``difference``
  is the metric ``difference``);
- ``n`` is the cell's ``n`` (the nearest enclosing one), else what the kind says (a perplexity cell's texts);
- an interval ``ci95: [lo, hi]`` (or ``lo``/``hi``) belongs to the cell's main number (``lss``, ``share``,
  ``accuracy``...), ``<metric>_ci95`` or ``<metric>_ci`` (or ``<metric>_lo``/``_hi``) to ``<metric>``; ``interval``
  is the method the file names (the cell's ``interval_method``, the file's ``interval_method[metric]``, ppl.json's
  ``intervals.method``), else the key the interval came from (``ci95``);
- per-item lists (``ids``, ``d0``, ``di``, ``losses``) and free-form ``details`` and ``settings`` are left out.

Columns (:data:`COLUMNS`): ``kind file condition group seed recipe dataset source language subset metric n
estimate lo hi interval``; a neuron set's table (:data:`NEURON_COLUMNS`) is ``kind file group site layer
neurons``. docs/artifacts.md says what each column holds per kind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping

from neurospec.results.downstream import DownstreamTable
from neurospec.results.fields import ResultError
from neurospec.results.finetune import FinetuneRecord
from neurospec.results.lmeval import LmevalResult
from neurospec.results.lss import LSSRecord
from neurospec.results.masking import MaskingRecord
from neurospec.results.perplexity import PerplexityMatrix
from neurospec.results.steering import SteeringRecord
from neurospec.results.sweep import SweepRecord
from neurospec.util.errors import NeurospecError
from neurospec.util.io import atomic_write_text

COLUMNS = ("kind", "file", "condition", "group", "seed", "recipe", "dataset", "source", "language", "subset",
           "metric", "n", "estimate", "lo", "hi", "interval")
NEURON_COLUMNS = ("kind", "file", "group", "site", "layer", "neurons")
SUFFIX = ".tidy.csv"

INTEGER_COLUMNS = ("seed", "n", "layer", "neurons")
NUMBER_COLUMNS = ("estimate", "lo", "hi")

_BOUND_NAMES = {"ci95": "pair", "ci": "pair", "interval": "pair", "lo": "lo", "low": "lo", "hi": "hi", "high": "hi",
                "interval_method": "method"}
_RANDOM_CONDITION = re.compile(r"^random(\d+):(.+)$")


# ------------------------------------------------------------------------------------------------
# one cell's numbers


@dataclass
class Estimate:
    """One number of a cell: its ``metric``, value (None where the file holds null), ``n`` and interval."""

    metric: str
    estimate: float | int | None
    n: int | None = None
    lo: float | None = None
    hi: float | None = None
    interval: str | None = None


def estimates(values: Mapping[str, Any], *, primary: str | None = None, n: int | None = None,
              interval: str | None = None, methods: Mapping[str, str] | None = None, prefix: str = "",
              skip: Collection[str] = (), names: Mapping[str, str] | None = None) -> list[Estimate]:
    """``estimates({"lss": 0.2, "ci95": [0.0, 0.6], "n": 5, "mean_d0": -3.7}, primary="lss")``: every number of a
    cell's JSON as an :class:`Estimate` (``lss`` with n 5 and [0.0, 0.6], ``mean_d0`` with n 5), read as the
    module docstring says. ``skip`` leaves keys out (the identity fields), ``names`` renames keys (``score`` ->
    ``accuracy``); ``n`` is the default the cell's own ``n`` overrides; an interval's method is the cell's
    ``interval_method``, else ``methods[key]`` (a file's ``interval_method`` object), else ``interval``, else the
    key it came from (``ci95``)."""
    names, methods = names or {}, methods or {}
    n = count(values.get("n"), n)
    method = values.get("interval_method")
    interval = method if isinstance(method, str) else interval
    kept = {names.get(key, key): value for key, value in values.items() if key not in skip and key != "n"}
    head = main_number(kept, primary)
    found: dict[str, Estimate] = {}
    bounds: dict[str | None, dict[str, Any]] = {}
    for key, value in kept.items():
        stem, part = bound_of(key, value)
        if part is not None:
            target = head if stem is None else names.get(stem, stem)
            bounds.setdefault(target, {})[part] = value
            if part == "pair":
                bounds[target]["name"] = key if stem is None else key[len(stem) + 1:]
        elif is_number(value) or value is None:
            found[key] = Estimate(metric_name(key, prefix), value, n)
        elif isinstance(value, Mapping):
            for inner in estimates(value, primary=primary, n=n, interval=interval, methods=methods,
                                   prefix=f"{prefix}{key}."):
                found[f"{key}.{inner.metric}"] = inner
    for target, parts in bounds.items():
        attach(found, target, parts, prefix, n, methods.get(target or "") or interval)
    return list(found.values())


def main_number(values: Mapping[str, Any], primary: str | None) -> str | None:
    """The key a bare ``ci95``/``lo``/``hi`` belongs to: ``primary``, else ``estimate``, else the only number."""
    if primary in values:
        return primary
    if "estimate" in values:
        return "estimate"
    numbers = [key for key, value in values.items() if is_number(value) and bound_of(key, value)[1] is None]
    return numbers[0] if len(numbers) == 1 else None


def bound_of(key: str, value: Any) -> tuple[str | None, str | None]:
    """``("margin", "pair")`` for ``margin_ci95: [lo, hi]``, ``(None, "lo")`` for a bare ``lo``; ``(None, None)`` for
    a key that is no interval bound. ``None`` as the stem means the cell's main number."""
    stem, part = None, _BOUND_NAMES.get(key)
    if part is None:
        for name, kind in _BOUND_NAMES.items():
            if key.endswith("_" + name):
                stem, part = key[: -len(name) - 1], kind
                break
    if part is None:
        return None, None
    if part in ("lo", "hi") and stem is not None and stem in _BOUND_NAMES:   # ci95_lo: the main number's
        stem = None
    elif part in ("lo", "hi") and stem is not None:
        inner, inner_part = bound_of(stem, [0, 0])                              # margin_ci95_lo: margin's
        stem = inner if inner_part == "pair" else stem
    usable = {"pair": is_pair(value) or value is None, "lo": is_number(value) or value is None,
              "hi": is_number(value) or value is None, "method": isinstance(value, str) or value is None}
    return (stem, part) if usable[part] else (None, None)


def attach(found: dict[str, Estimate], target: str | None, parts: Mapping[str, Any], prefix: str, n: int | None,
           interval: str | None) -> None:
    """Put an interval's bounds (``pair`` or ``lo``/``hi``, and a ``method``) on the estimate ``target``; an
    interval whose estimate the cell lacks becomes an estimate of its own (no number of the file is lost).
    ``interval`` names its method unless the cell does (``interval_method``); else the key it came from names it."""
    lo, hi = parts["pair"] if parts.get("pair") is not None else (parts.get("lo"), parts.get("hi"))
    if lo is None and hi is None:
        return
    key = target if target is not None else "interval"
    if key not in found:
        found[key] = Estimate(metric_name(key, prefix), None, n)
    estimate = found[key]
    estimate.lo, estimate.hi = lo, hi
    estimate.interval = parts.get("method") or interval or parts.get("name")


def metric_name(key: str, prefix: str) -> str:
    """``prefix + key``; a nested object's ``estimate`` is named by the object (``difference.estimate`` ->
    ``difference``)."""
    if key == "estimate" and prefix:
        return prefix.rstrip(".")
    return prefix + key


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_pair(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(is_number(v) or v is None for v in value)


def count(value: Any, default: int | None) -> int | None:
    """A whole number of items (``n``), or ``default`` when ``value`` is none."""
    if is_number(value) and float(value).is_integer():
        return int(value)
    return default


# ------------------------------------------------------------------------------------------------
# rows per kind


@dataclass
class TidyTable:
    """The tidy rows of one artifact file: its ``kind``, the ``columns`` and the rows (dicts of them)."""

    kind: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def csv_text(self) -> str:
        """The rows as CSV: header, then one line per row; empty fields where a row has no value."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([csv_value(row.get(column)) for column in self.columns])
        return buffer.getvalue()


def csv_value(value: Any) -> str:
    """A value as its CSV field: floats at full precision (``repr``), None empty."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def result_row(kind: str, file: str, estimate: Estimate, **identity: Any) -> dict[str, Any]:
    """A row of :data:`COLUMNS`: ``identity`` (condition, group, languages...) and the estimate's fields; the
    unmodified model's rows (condition ``none``) have no recipe."""
    row = dict.fromkeys(COLUMNS)
    row.update(identity, kind=kind, file=file, metric=estimate.metric, n=estimate.n, estimate=estimate.estimate,
               lo=estimate.lo, hi=estimate.hi, interval=estimate.interval)
    if row["condition"] == "none":
        row["recipe"] = None
    return row


def rows_of(kind: str, file: str, found: list[Estimate], **identity: Any) -> list[dict[str, Any]]:
    return [result_row(kind, file, estimate, **identity) for estimate in found]


def condition_parts(name: str) -> tuple[str | None, int | None]:
    """``(group, seed)`` of a condition name: ``random3:fr`` -> ("fr", 3), ``fr`` -> ("fr", None), ``none`` -> (None,
    None)."""
    if name == "none":
        return None, None
    matched = _RANDOM_CONDITION.match(name)
    return (matched.group(2), int(matched.group(1))) if matched else (name, None)


def row_language_fields(document: Mapping[str, Any], rows: Collection[str],
                        languages: Collection[str]) -> dict[str, Mapping[str, Mapping[str, Any]]]:
    """The top-level fields of ``document`` shaped row -> language -> value (``cells``, ``change_ppl``, ...)."""
    out = {}
    for key, value in document.items():
        if (isinstance(value, Mapping) and value and set(value) <= set(rows)
                and all(isinstance(cols, Mapping) and set(cols) <= set(languages) for cols in value.values())):
            out[key] = value
    return out


def cell_values(fields: Mapping[str, Mapping[str, Mapping[str, Any]]], row: str, language: str,
                bounds: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """One row x language of every field shaped so: the cell's own fields (field ``cells``), each other field's
    value under its name (``change_ppl``) and each of ``bounds`` (an ``intervals`` object's fields of the same
    shape) as ``<name>_ci``."""
    values: dict[str, Any] = {}
    for key, matrix in fields.items():
        value = matrix.get(row, {}).get(language, ...)
        if key == "cells" and isinstance(value, Mapping):
            values.update(value)
        elif key != "cells" and value is not ...:
            values[key] = value
    for key, matrix in (bounds or {}).items():
        value = matrix.get(row, {}).get(language, ...)
        if value is not ...:
            values[f"{key}_ci"] = value
    return values


def ppl_rows(matrix: PerplexityMatrix, file: str) -> list[dict[str, Any]]:
    """A row per condition x language x number of the cell (``ppl``, ``mean_nll``, ``nll``, ``tokens``, ``texts``,
    ``change_ppl``, ``change_nll`` with their intervals; n = the texts), the condition's ``neurons``, and per group
    the ``summary.*`` numbers (own, mean other, difference, selectivity; n = the own language's texts) for its
    neurons and its random rows."""
    document = matrix.to_json()
    recipe = matrix.recipe.name
    names = [row.name for row in matrix.rows]
    fields = row_language_fields(document, names, matrix.languages)
    intervals = document.get("intervals") or {}
    bounds = row_language_fields(intervals, names, matrix.languages)
    method = intervals.get("method")
    out: list[dict[str, Any]] = []
    for row in matrix.rows:
        who = dict(condition=row.name, group=row.group, seed=row.seed, recipe=recipe)
        out += rows_of("ppl", file, [Estimate("neurons", row.neurons)], **who)
        for language in matrix.languages:
            values = cell_values(fields, row.name, language, bounds)
            found = estimates(values, n=matrix.cells[row.name][language].texts, interval=method)
            out += rows_of("ppl", file, found, language=language, **who)
    seeds = {row.name: row.seed for row in matrix.rows}
    for group, entry in document.get("summary", {}).items():
        own = entry.get("language")
        texts = matrix.cells["none"][own].texts if own in matrix.languages else None   # the own language's texts
        for label, value in entry.items():
            if isinstance(value, Mapping):
                name = group if label == "neurons" else label
                found = estimates(value, prefix="summary.", n=texts, interval=method)
                out += rows_of("ppl", file, found, condition=name, group=group, seed=seeds.get(name), recipe=recipe,
                               language=own)
    return out


def lss_rows(record: LSSRecord, file: str) -> list[dict[str, Any]]:
    """A row per source -> target cell x number (``lss`` with its interval, ``mean_d0``, ``mean_di``,
    ``excluded_identical``, ``missing``; condition the target group), per paired control (condition
    ``random<seed>:<target>`` or ``other:<group>``: ``lss`` and ``margin`` with their intervals), and the pooled
    numbers (subset ``pooled``; condition ``targets``, ``random`` or ``other``)."""
    recipe = record.recipe.name
    document = record.to_json()
    methods = document.get("interval_method") or {}
    pooled_methods = {key[len("pooled_"):]: value for key, value in methods.items() if key.startswith("pooled_")}
    out: list[dict[str, Any]] = []
    for cell in record.cells:
        where = dict(recipe=recipe, source=cell.source, language=cell.target)
        values = cell.to_json()
        found = estimates(values, primary="lss", methods=methods, skip=("source", "target", "controls", "ids", "d0",
                                                                        "di"))
        out += rows_of("lss", file, found, condition=cell.target, group=cell.target, **where)
        for name, control in values["controls"].items():
            group, seed = control.get("group", cell.target), control.get("seed")
            condition = f"random{seed}:{group}" if name == "random" and seed is not None else f"{name}:{group}"
            found = estimates(control, primary="lss", n=cell.n, methods=methods, skip=("seed", "group", "di"))
            out += rows_of("lss", file, found, condition=condition, group=group, seed=seed, **where)
    pooled = document.get("pooled") or {}
    means = {key: document[key] for key in ("mean_offdiagonal", "mean_d0") if key in document}   # over the cells
    found = estimates(means) + estimates(pooled, primary="lss", methods=pooled_methods, skip=("controls",))
    out += rows_of("lss", file, found, condition="targets", recipe=recipe, subset="pooled")
    for name, control in pooled.get("controls", {}).items():
        found = estimates(control, primary="lss", n=pooled.get("n"), methods=pooled_methods)
        out += rows_of("lss", file, found, condition=name, recipe=recipe, subset="pooled")
    return out


def sweep_rows(record: SweepRecord, file: str) -> list[dict[str, Any]]:
    """A row per setting x number (``mean_lss``, ``pooled_lss`` with its interval, ``mean_d0``); condition and
    recipe the setting's recipe. Each setting's own cells are in its folder's lss.json (and lss.tidy.csv). A sweep
    that generated adds per setting the ``steering.*`` numbers: ``steering.share`` (with its Wilson interval),
    ``steering.k``, ``steering.baseline.share``, ``steering.change`` (paired interval), ``steering.degradation``
    and the ``steering.fluency.<measure>`` rows (:func:`fluency_estimates`)."""
    methods = record.settings.get("generation", {}).get("interval_method") or {}
    out: list[dict[str, Any]] = []
    for point in record.curve:
        found = estimates(point.to_json(), skip=("recipe", "value", "factor", "positions", "folder", "steering"))
        if point.steering is not None:
            values = point.steering.to_json()
            found += estimates(values, primary="share", methods=methods, prefix="steering.",
                               skip=("fluency", "within_bound"))
            found += fluency_estimates(values["fluency"], methods, prefix="steering.")
        out += rows_of("sweep", file, found, condition=point.recipe, recipe=point.recipe)
    return out


def fluency_estimates(fluency: Mapping[str, Any], methods: Mapping[str, str], prefix: str = "") -> list[Estimate]:
    """Per fluency measure (steer.json's ``fluency`` object): ``fluency.<measure>`` (its value, bootstrap interval
    and n), ``fluency.<measure>.baseline`` (the unmodified model's on the same prompts) and
    ``fluency.<measure>.change`` (their difference, paired interval); intervals named by ``methods["fluency"]``
    and ``methods["fluency_change"]``."""
    found = []
    for name, values in fluency.items():
        metric, base = f"{prefix}fluency.{name}", values["baseline"]
        change = values.get("change_ci95") or (None, None)
        found += [Estimate(metric, values["value"], values["n"], *pair_bounds(values.get("ci95")),
                           methods.get("fluency")),
                  Estimate(f"{metric}.baseline", base["value"], base["n"], *pair_bounds(base.get("ci95")),
                           methods.get("fluency")),
                  Estimate(f"{metric}.change", values["change"], values["n"], change[0], change[1],
                           methods.get("fluency_change"))]
    return found


def pair_bounds(interval: Any) -> tuple[float | None, float | None]:
    """``(lo, hi)`` of a ``[lo, hi]`` interval; ``(None, None)`` without one."""
    return (interval[0], interval[1]) if is_pair(interval) else (None, None)


def steer_rows(record: SteeringRecord, file: str) -> list[dict[str, Any]]:
    """A row per target row x source x number: ``share`` of continuations in the target language (with its
    interval), ``k``, the unmodified model's ``baseline.share``, ``baseline.k``, the paired ``change``, and per
    fluency measure ``fluency.<measure>``, ``fluency.<measure>.baseline`` and ``fluency.<measure>.change`` with
    their intervals (:func:`fluency_estimates`)."""
    rows = {row.name: row for row in record.rows}
    methods = record.to_json().get("interval_method") or {}
    out: list[dict[str, Any]] = []
    for line in record.table:
        row = rows.get(line.row)
        values = line.to_json()
        found = estimates(values, primary="share", methods=methods,
                          skip=("row", "kind", "target", "source", "fluency"))
        found += fluency_estimates(values.get("fluency") or {}, methods)
        out += rows_of("steer", file, found, condition=line.row, group=row.group if row else None,
                       seed=row.seed if row else None, recipe=record.recipe.name, source=line.source,
                       language=line.target)
    return out


def downstream_rows(table: DownstreamTable, file: str) -> list[dict[str, Any]]:
    """A row per condition x language x number: the task's metric (``accuracy``, ``chrf``...) with its interval,
    the cell's other metrics, the ``change`` against ``none``; per target row its ``summary.self`` and
    ``summary.cross_mean`` change."""
    recipe = table.recipe.name if table.recipe else None
    document = table.to_json()
    fields = row_language_fields(document, table.rows, table.languages)
    methods = document.get("interval_method") or {}
    out: list[dict[str, Any]] = []
    for row in table.rows:
        group, seed = condition_parts(row)
        for language in table.languages:
            cell = table.cells[row][language]
            values = {**cell_values(fields, row, language),
                      **{key: value for key, value in cell.metrics.items() if key != cell.metric}}
            found = estimates(values, primary=cell.metric, n=cell.n, names={"score": cell.metric},
                              methods={cell.metric: methods.get("score"), "change": methods.get("change")},
                              skip=("task", "language", "metric", "metrics", "details"))
            out += rows_of("downstream", file, found, condition=row, group=group, seed=seed, recipe=recipe,
                           dataset=table.task, language=language)
    for row, change in document.get("summary", {}).get("per_target", {}).items():
        group, seed = condition_parts(row)
        out += rows_of("downstream", file, estimates(change, prefix="summary.", interval=methods.get("summary")),
                       condition=row, group=group,
                       seed=seed, recipe=recipe, dataset=table.task)
    return out


def mask_rows(record: MaskingRecord, file: str) -> list[dict[str, Any]]:
    """A row per condition x benchmark x item group (``subset``: ``all`` or a country) x number: ``accuracy`` with
    its interval, per template, per scoring rule, ``change`` and ``margin_over_random`` with their intervals;
    per condition the ``summary.<kind>_change`` numbers."""
    out: list[dict[str, Any]] = []
    methods = record.interval_method or {}
    for cell in record.cells:
        group, seed = condition_parts(cell.condition)
        found = estimates(cell.to_json(), primary="accuracy", skip=("condition", "benchmark", "group"),
                          names={"margin": "margin_over_random"}, methods=methods)
        out += rows_of("mask_eval", file, found, condition=cell.condition, group=group, seed=seed,
                       dataset=cell.benchmark, subset=cell.group)
    for row in record.summary:
        group, seed = condition_parts(row.condition)
        out += rows_of("mask_eval", file, estimates(row.columns(), prefix="summary."), condition=row.condition,
                       group=group, seed=seed)
    return out


def finetune_rows(record: FinetuneRecord, file: str) -> list[dict[str, Any]]:
    """A row per evaluated set x ``before``/``after`` training x number (the accuracy cell's), and the ``change``
    (condition ``after``); group the group that ranked the layers."""
    out: list[dict[str, Any]] = []
    for name, entry in record.evaluation.items():
        for condition, cell in (("before", entry.before), ("after", entry.after)):
            found = estimates(cell.to_json(), primary="accuracy", skip=("condition", "benchmark", "group"),
                              names={"margin": "margin_over_random"})
            out += rows_of("finetune", file, found, condition=condition, group=record.group, dataset=name,
                           subset=cell.group)
        out += rows_of("finetune", file, [Estimate("change", entry.change, entry.after.n)], condition="after",
                       group=record.group, dataset=name, subset=entry.after.group)
    return out


def lmeval_rows(result: LmevalResult, file: str) -> list[dict[str, Any]]:
    """A row per condition x lm-eval result (``dataset``) x filter (``subset``) x metric: the value lm-eval reports
    (metric ``acc``...), its standard error (``acc_stderr``) and the change against ``none`` (``acc_change``);
    ``language`` the target group a condition stands for. lm-eval gives standard errors, not intervals: no lo/hi."""
    conditions = {condition.name: condition for condition in result.conditions}
    recipe = result.recipe.name if result.recipe else None
    out: list[dict[str, Any]] = []
    for cell in result.cells:
        condition = conditions.get(cell.condition)
        names = {"value": cell.metric, "stderr": f"{cell.metric}_stderr", "change": f"{cell.metric}_change"}
        found = estimates(cell.to_json(), primary=cell.metric, names=names,
                          skip=("condition", "task", "metric", "filter", "higher_is_better"))
        out += rows_of("lmeval", file, found, condition=cell.condition, group=condition.group if condition else None,
                       seed=condition.seed if condition else None, recipe=recipe, dataset=cell.task,
                       language=condition.target if condition else None, subset=cell.filter)
    return out


def keyed_rows(kind: str, file: str, document: Mapping[str, Any], keys: list[str], column: str,
               n_field: str | None = None) -> list[dict[str, Any]]:
    """A row per key (language, group) x field of ``document`` that maps every key to a number (``tokens``,
    ``accuracy``); n from ``n_field``."""
    sizes = document.get(n_field, {}) if n_field else {}
    out = []
    for key in keys:
        for name, values in document.items():
            if isinstance(values, Mapping) and set(values) == set(keys) and all(
                    is_number(v) or v is None for v in values.values()):
                n = count(sizes.get(key) if isinstance(sizes, Mapping) else None, None)
                out.append(result_row(kind, file, Estimate(name, values[key], n), **{column: key}))
    return out


def stats_rows(document: Mapping[str, Any], file: str) -> list[dict[str, Any]]:
    """A statistics folder's stats.json: a row per language x count (``tokens``, ``sentences``)."""
    return keyed_rows("stats", file, document, list(document.get("languages", [])), "language")


def attribution_rows(document: Mapping[str, Any], file: str) -> list[dict[str, Any]]:
    """An attribution run's attribution.json: a row per group x number (``counts``, ``prob_sums``, ``accuracy``;
    n = the group's examples)."""
    return keyed_rows("attribution", file, document, list(document.get("groups", [])), "group", "counts")


def neuron_rows(path: Path, file: str) -> list[dict[str, Any]]:
    """A neuron set: a row per group x site x layer with its number of neurons; a group without neurons has one
    row of 0 neurons (no site, no layer)."""
    from neurospec.neurons.neuron_set import NeuronSet

    neurons = NeuronSet.load(path)
    out = []
    for group in neurons.groups:
        counted = [(site, layer, len(indices)) for _, site, layer, indices in neurons.entries([group])]
        for site, layer, number in counted or [(None, None, 0)]:
            out.append({"kind": "neurons", "file": file, "group": group, "site": site, "layer": layer,
                        "neurons": number})
    return out


@dataclass(frozen=True)
class Kind:
    """An artifact kind with a tidy table: its name, the result type that reads it (None: read as plain JSON or a
    neuron set), its rows, and whether its table is written beside it (not in a statistics or attribution folder,
    which holds exactly the files its manifest lists: :func:`load` builds those tables from the JSON)."""

    name: str
    result_type: type | None
    rows: Callable[..., list[dict[str, Any]]]
    columns: tuple[str, ...] = COLUMNS
    written: bool = True


#: format id -> its kind (the names :func:`load` keys its tables by, as the report names them)
KINDS: dict[str, Kind] = {
    PerplexityMatrix.FORMAT: Kind("ppl", PerplexityMatrix, ppl_rows),
    LSSRecord.FORMAT: Kind("lss", LSSRecord, lss_rows),
    SweepRecord.FORMAT: Kind("sweep", SweepRecord, sweep_rows),
    SteeringRecord.FORMAT: Kind("steer", SteeringRecord, steer_rows),
    DownstreamTable.FORMAT: Kind("downstream", DownstreamTable, downstream_rows),
    MaskingRecord.FORMAT: Kind("mask_eval", MaskingRecord, mask_rows),
    FinetuneRecord.FORMAT: Kind("finetune", FinetuneRecord, finetune_rows),
    LmevalResult.FORMAT: Kind("lmeval", LmevalResult, lmeval_rows),
    "neurospec.neuronset": Kind("neurons", None, neuron_rows, NEURON_COLUMNS),
    "neurospec.stats": Kind("stats", None, stats_rows, written=False),
    "neurospec.attribution": Kind("attribution", None, attribution_rows, written=False),
}


# ------------------------------------------------------------------------------------------------
# files


def read_document(path: Path) -> Any:
    """The parsed JSON of ``path``; a one-line error naming the file when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NeurospecError(f"{path} does not exist; give a result file, a verb's output folder or a run folder") \
            from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ResultError(f"{path} cannot be read as JSON ({err}); regenerate it with the command that wrote it") \
            from None


def kind_of_document(document: Any) -> Kind | None:
    """The :class:`Kind` of a parsed JSON document, by its ``format``; None for anything else."""
    return KINDS.get(document.get("format")) if isinstance(document, dict) else None


def tidy_table(path: str | os.PathLike, document: Any = None, file: str | None = None) -> TidyTable | None:
    """The tidy rows of the artifact file ``path`` (``document``: its JSON, already parsed), or None for a JSON
    file that is no artifact with a table (an intervention file, another program's). ``file`` fills the column of
    that name (default: the file's name)."""
    path = Path(path)
    document = read_document(path) if document is None else document
    kind = kind_of_document(document)
    if kind is None:
        return None
    file = file or path.name
    if kind.name == "neurons":
        rows = kind.rows(path, file)
    elif kind.result_type is None:
        rows = kind.rows(document, file)
    else:
        rows = kind.rows(kind.result_type.from_json(document, str(path)), file)
    return TidyTable(kind.name, kind.columns, rows)


def tidy_path(path: str | os.PathLike) -> Path:
    """``runs/ppl/ppl.json`` -> ``runs/ppl/ppl.tidy.csv``: where the tidy table of a JSON file is written."""
    path = Path(path)
    return path.with_name(path.stem + SUFFIX)


def write_tidy_csv(path: str | os.PathLike) -> list[Path]:
    """Write ``<name>.tidy.csv`` beside the artifact ``<name>.json`` (atomically) and return what was written:
    nothing for a JSON file without a table or in a statistics or attribution folder; for a sweep, each setting's
    ``lss.tidy.csv`` too."""
    path = Path(path)
    document = read_document(path)
    kind = kind_of_document(document)
    if kind is None or not kind.written:
        return []
    table = tidy_table(path, document)
    assert table is not None
    written = [atomic_write_text(tidy_path(path), table.csv_text())]
    if table.kind == "sweep":
        for point in document.get("curve", []):
            setting = path.parent / str(point.get("folder") or "") / "lss.json"
            if point.get("folder") and setting.is_file():
                written += write_tidy_csv(setting)
    return written


def artifact_files(root: Path) -> Iterator[tuple[Path, str, Any]]:
    """``(path, label, document)`` of every artifact JSON under ``root`` (a folder, walked in sorted order,
    hidden folders left out; or one file), the label its path relative to ``root``."""
    if root.is_file():
        document = read_document(root)
        if kind_of_document(document) is None:
            shown = document.get("format") if isinstance(document, dict) else None
            raise NeurospecError(f"{root}: format {shown!r} is no artifact with a table; give a result file (ppl.json, "
                                 "lss.json, ...), a neuron set, a verb's output folder or a run folder")
        yield root, root.name, document
        return
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(files):
            if not name.endswith(".json") or name.startswith("."):
                continue
            path = Path(folder) / name
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                continue   # not JSON a neurospec verb wrote: not an artifact
            if kind_of_document(document) is not None:
                yield path, path.relative_to(root).as_posix(), document


def table_text(path: Path, document: Any) -> tuple[str, str]:
    """``(kind, CSV text)`` of one artifact: its tidy CSV when one is there, as new as the JSON and with the
    current columns; else built from the JSON (runs written before tidy tables existed)."""
    kind = kind_of_document(document)
    assert kind is not None
    written = tidy_path(path)
    if written.is_file() and written.stat().st_mtime >= path.stat().st_mtime:
        text = written.read_text(encoding="utf-8")
        if text.split("\n", 1)[0] == ",".join(kind.columns):
            return kind.name, text
    table = tidy_table(path, document)
    assert table is not None
    return table.kind, table.csv_text()


def frame(pandas: Any, text: str, columns: tuple[str, ...], file: str) -> Any:
    """A DataFrame of tidy CSV ``text``: text columns as strings (empty: missing), ``seed``/``n``/``layer``/
    ``neurons`` as nullable integers, ``estimate``/``lo``/``hi`` as floats; the ``file`` column set to ``file``."""
    types = {column: ("Int64" if column in INTEGER_COLUMNS else "float64" if column in NUMBER_COLUMNS else str)
             for column in columns}
    table = pandas.read_csv(io.StringIO(text), dtype=types, keep_default_na=False, na_values=[""])
    table["file"] = file
    return table


def load(path: str | os.PathLike) -> dict[str, Any]:
    """``load("runs/study")["lss"]``: a pandas DataFrame per artifact kind (``ppl``, ``lss``, ``sweep``, ``steer``,
    ``downstream``, ``mask_eval``, ``finetune``, ``lmeval``, ``neurons``, ``stats``, ``attribution``; only those present) of
    every artifact under a run folder, a verb's output folder or one file, each file's rows in turn (``file`` its
    path relative to ``path``). Reads each ``<name>.tidy.csv``, or builds it from the JSON when absent or older.
    Needs pandas (``pip install 'neurospec[tables]'``)."""
    from neurospec.util.extras import require

    pandas = require("pandas", "neurospec.results.load")
    root = Path(path)
    if not root.exists():
        raise NeurospecError(f"{root} does not exist; give a run folder, a verb's output folder or a result file")
    frames: dict[str, list[Any]] = {}
    for file, label, document in artifact_files(root):
        kind, text = table_text(file, document)
        frames.setdefault(kind, []).append(frame(pandas, text, kind_columns(kind), label))
    return {kind: pandas.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
            for kind, parts in frames.items()}


def kind_columns(name: str) -> tuple[str, ...]:
    return next(kind.columns for kind in KINDS.values() if kind.name == name)
