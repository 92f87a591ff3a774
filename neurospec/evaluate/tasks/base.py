"""What every downstream task shares: the result record, the task base classes, option checking.

    from neurospec.evaluate.tasks.base import TaskResult, Task, MCTask
    result = task.evaluate(model, tok, "et", limit=50)       # any Task subclass
    result.score, result.ci95, result.n, result.to_json()

A :class:`Task` scores a model on one benchmark in one language; the data side (splits, data set,
loader, languages) is the task's entry in :data:`neurospec.data.benchmarks.BENCHMARKS`. :class:`MCTask`
is the multiple-choice kind (load items, predict, count accuracy with a Wilson interval). Options a task does
not know are refused, with the list it does know.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from neurospec.data.benchmarks import Benchmark, benchmark
from neurospec.data.items import MCItem
from neurospec.data.languages import resolve
from neurospec.data.prompts import PLAIN
from neurospec.data.records import data_location, missing_language
from neurospec.data.registry import dataset
from neurospec.evaluate.intervals import wilson
from neurospec.results.downstream import TaskScore
from neurospec.util.errors import NeurospecError

__all__ = ["MCTask", "Task", "TaskResult", "accuracy_result", "data_location", "format_details", "take"]


TaskResult = TaskScore   # one task in one language: the result type (neurospec.results.downstream) owns its JSON


def take(items: Sequence, limit: int | None) -> list:
    """The first ``limit`` items (all when None): the same items on every run."""
    if limit is None:
        return list(items)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise NeurospecError(f"limit must be a positive integer or None, got {limit!r}")
    return list(items)[:limit]


class Task:
    """A benchmark: ``languages()`` lists what the data holds, ``evaluate()`` scores one language.

    Subclasses set ``name`` (a downstream entry of :data:`neurospec.data.benchmarks.BENCHMARKS`, which
    holds the data side: splits, data set, loader, languages), ``metric`` and ``option_defaults``
    (every option ``evaluate`` accepts beyond the common ones, with its default).
    """

    name: str = ""
    metric: str = "accuracy"
    option_defaults: Mapping[str, Any] = {}

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    @property
    def benchmark(self) -> Benchmark:
        """The registry entry this task scores (:func:`neurospec.data.benchmarks.benchmark`)."""
        return benchmark(self.name)

    @property
    def data_folder(self) -> str:
        """The folder of the registered data set it reads by default (``belebele_en_de``)."""
        return dataset(self.benchmark.dataset).folder

    @property
    def splits(self) -> tuple[str, ...]:
        """The accepted splits, the default first (the registry entry's)."""
        return self.benchmark.splits

    @property
    def split_aliases(self) -> Mapping[str, str]:
        """Other names of the splits (``{"dev": "val"}``; the registry entry's)."""
        return self.benchmark.split_aliases

    def languages(self, data_dir: str | Path | None = None) -> list[str]:
        """Canonical keys (``est_Latn``) of the languages the data holds."""
        return self.benchmark.languages(data_dir)

    def evaluate(self, model, tokenizer, language: str, *, intervention=None, limit: int | None = None,
                 batch_size: int = 8, data_dir: str | Path | None = None, split: str | None = None,
                 **options) -> TaskResult:
        """Score ``model`` on this task in ``language``; ``intervention`` goes to every forward pass."""
        raise NotImplementedError

    # ---- helpers for subclasses

    def split_name(self, split: str | None) -> str:
        """The split asked for, by its canonical name; None is the default (the first of ``splits``)."""
        return self.benchmark.split_name(split)

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """``option_defaults`` updated by ``given``; an option the task does not take is an error."""
        unknown = sorted(set(given) - set(self.option_defaults))
        if unknown:
            known = ", ".join(sorted(self.option_defaults)) or "none"
            raise NeurospecError(f"{self.name} does not take option(s) {', '.join(unknown)}; it takes: {known}")
        return {**self.option_defaults, **given}

    def language_key(self, language: str) -> str:
        """The canonical key of ``language`` (any code or name :func:`neurospec.data.languages.resolve` knows)."""
        return resolve(language).key

    def missing_language(self, language: str, source: Path | str, data_dir=None) -> NeurospecError:
        """The error for a language the data lacks, naming the languages it has."""
        return missing_language(self.name, language, source, lambda: self.languages(data_dir))


class MCTask(Task):
    """A multiple-choice task: ``load`` gives items, ``predict`` picks options; the score is accuracy."""

    metric = "accuracy"
    option_defaults: Mapping[str, Any] = {"keep_outputs": False}
    scoring: str = ""  # one line for the result's details: how options are scored

    def load(self, language: str, *, data_dir: str | Path | None = None, split: str | None = None) -> list[MCItem]:
        """The items of ``language`` (``item.group`` its canonical key, ``item.id`` set), in file order:
        the registry entry's loader."""
        return self.benchmark.load(language=language, path=data_dir, split=self.split_name(split))

    def predict(self, model, tokenizer, items: Sequence[MCItem], *, intervention=None, batch_size: int = 8,
                **options) -> list:
        """One :class:`neurospec.evaluate.scoring.MCPrediction` per item."""
        raise NotImplementedError

    def describe(self, options: Mapping[str, Any]) -> dict:
        """Extra details for the result (the prompt or scoring rule actually used)."""
        return {"scoring": self.scoring}

    def evaluate(self, model, tokenizer, language: str, *, intervention=None, limit: int | None = None,
                 batch_size: int = 8, data_dir: str | Path | None = None, split: str | None = None,
                 **options) -> TaskResult:
        opts = self.options(options)
        keep_outputs = opts.pop("keep_outputs")
        key = self.language_key(language)
        split = self.split_name(split)
        items = take(self.load(key, data_dir=data_dir, split=split), limit)
        predictions = self.predict(model, tokenizer, items, intervention=intervention, batch_size=batch_size, **opts)
        return accuracy_result(self.name, key, predictions, {
            "split": split, "data": str(data_dir) if data_dir is not None else f"dataset:{self.data_folder}",
            "limit": limit, "intervention": intervention is not None, **self.describe(opts),
            "prompt_format": format_details(opts.get("fmt")),
        }, keep_outputs)


def format_details(fmt) -> dict:
    """The prompt format as a JSON-ready dict (None means plain text, the tokenizer's BOS)."""
    return asdict(fmt or PLAIN)


def accuracy_result(task: str, language: str, predictions: Sequence, details: dict, keep_outputs: bool) -> TaskResult:
    """Accuracy, Wilson 95% interval and chance level (mean of 1 / options) of MC predictions, and each item's
    correctness (``item_correct``, for paired intervals of changes)."""
    if not predictions:
        raise NeurospecError(f"{task} ({language}): no items to score")
    n = len(predictions)
    correct = sum(bool(p.correct) for p in predictions)
    chance = sum(1 / len(p.item.options) for p in predictions) / n
    details = {**details, "correct": correct, "chance": chance}
    if keep_outputs:
        details["outputs"] = [{"id": p.item.id, "chosen": p.chosen, "gold": p.gold, "scores": list(p.scores)}
                              for p in predictions]
    return TaskResult(task, language, "accuracy", correct / n, wilson(correct, n), n,
                      {"accuracy": correct / n}, details, [int(bool(p.correct)) for p in predictions])
