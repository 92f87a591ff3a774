"""Downstream benchmarks (METHODS section 2), one registry: XCOPA, XWinograd, Belebele, INCLUDE, translation.

    from neurospec.evaluate.tasks import get_task, TASKS
    task = get_task("xcopa")
    task.languages()                                    # ['est_Latn', 'hat_Latn', ...]
    result = task.evaluate(model, tok, "et", limit=100, intervention=Edit.zero(neurons))
    result.score, result.ci95, result.to_json()

Tasks: ``xcopa``, ``xwinograd``, ``belebele``, ``include`` (accuracy, Wilson interval) and ``flores``,
``ntrex`` (English -> X translation, chrF++ with BLEU beside it). ``intervention`` is anything
:func:`neurospec.core.hooks.intervene` accepts, or None. See docs/tasks.md.
"""

from __future__ import annotations

from neurospec.util.errors import NeurospecError
from neurospec.evaluate.tasks.base import MCTask, Task, TaskResult
from neurospec.evaluate.tasks.belebele import Belebele
from neurospec.evaluate.tasks.include import Include
from neurospec.evaluate.tasks.translation import Flores, Ntrex
from neurospec.evaluate.tasks.xcopa import XCOPA
from neurospec.evaluate.tasks.xwinograd import XWinograd

__all__ = ["TASKS", "MCTask", "Task", "TaskResult", "get_task", "task_names"]

TASKS: dict[str, Task] = {task.name: task for task in (XCOPA(), XWinograd(), Belebele(), Include(), Flores(), Ntrex())}


def task_names() -> list[str]:
    """The registered task names."""
    return list(TASKS)


def get_task(name: str) -> Task:
    """The task registered as ``name`` (case-insensitive)."""
    task = TASKS.get(str(name).strip().lower())
    if task is None:
        raise NeurospecError(f"unknown task {name!r}: use one of {', '.join(TASKS)}")
    return task
