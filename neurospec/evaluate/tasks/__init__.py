"""Downstream benchmarks (METHODS section 2), scored: XCOPA, XWinograd, Belebele, INCLUDE, translation.

    from neurospec.evaluate.tasks import get_task, TASKS
    task = get_task("xcopa")
    task.languages()                                    # ['est_Latn', 'hat_Latn', ...]
    result = task.evaluate(model, tok, "et", limit=100, intervention=Edit.zero(neurons))
    result.score, result.ci95, result.to_json()

Tasks: ``xcopa``, ``xwinograd``, ``belebele``, ``include`` (accuracy, Wilson interval) and ``flores``,
``ntrex`` (English -> X translation, chrF++ with BLEU beside it): one per ``downstream`` entry of
:data:`neurospec.data.benchmarks.BENCHMARKS`, which holds their data side (``TASKS[name].benchmark``).
``intervention`` is anything :func:`neurospec.core.hooks.intervene` accepts, or None. See docs/tasks.md.
"""

from __future__ import annotations

from neurospec.data.benchmarks import benchmark_names
from neurospec.evaluate.tasks.base import MCTask, Task, TaskResult
from neurospec.evaluate.tasks.belebele import Belebele
from neurospec.evaluate.tasks.include import Include
from neurospec.evaluate.tasks.translation import Flores, Ntrex
from neurospec.evaluate.tasks.xcopa import XCOPA
from neurospec.evaluate.tasks.xwinograd import XWinograd
from neurospec.util.errors import NeurospecError

__all__ = ["TASK_CLASSES", "TASKS", "MCTask", "Task", "TaskResult", "get_task", "task_names"]

#: The scoring class of each downstream benchmark.
TASK_CLASSES: dict[str, type[Task]] = {cls.name: cls for cls in (XCOPA, XWinograd, Belebele, Include, Flores, Ntrex)}


def _registered_tasks() -> dict[str, Task]:
    """One task per downstream entry of the benchmark registry, in its order; an entry with no class is an error."""
    names = benchmark_names("downstream")
    unscored = sorted(set(names) - set(TASK_CLASSES))
    if unscored:
        raise NeurospecError(f"downstream benchmark(s) {unscored} have no task class in neurospec.evaluate.tasks; "
                             f"add one to TASK_CLASSES")
    return {name: TASK_CLASSES[name]() for name in names}


#: Every downstream task, by name: the view of the downstream entries of neurospec.data.benchmarks.BENCHMARKS.
TASKS: dict[str, Task] = _registered_tasks()


def task_names() -> list[str]:
    """The registered task names."""
    return list(TASKS)


def get_task(name: str) -> Task:
    """The task registered as ``name`` (case-insensitive)."""
    task = TASKS.get(str(name).strip().lower())
    if task is None:
        raise NeurospecError(f"unknown task {name!r}: use one of {', '.join(TASKS)}")
    return task
