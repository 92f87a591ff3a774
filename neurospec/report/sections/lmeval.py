"""Report section of lm-eval tasks under each condition (``neurospec lmeval``): one table per task.

    from neurospec.report.sections.lmeval import lmeval_section
    section = lmeval_section(artifact)      # an Artifact of kind "lmeval"

Reads the file as a :class:`~neurospec.results.lmeval.LmevalResult`. Each lm-eval result (a task, a subtask or a
group) gets a table: per condition (``none``, the groups, the random and other-language controls, with the group
each control stands for) and metric, the value and standard error lm-eval reports and the change against the
unmodified model.
"""

from __future__ import annotations

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.results.lmeval import LmevalCell, LmevalResult

COLUMNS = ["condition", "kind", "stands for", "metric", "n", "value", "\u00b1 stderr", "change"]


def lmeval_section(artifact: Artifact) -> Section:
    result = artifact.read(LmevalResult)
    section = Section("lmeval", artifact.label, f"lm-eval: {', '.join(result.tasks)} under each condition",
                      artifact.step)
    section.facts += facts(result)
    section.notes.append("Values and standard errors are lm-eval's own (its stderr of the mean over items); the "
                         "change is the value minus the unmodified model's (none) on the same items. lm-eval's "
                         "results of every run are kept beside the artifact (conditions[].output).")
    for index, task in enumerate(result.results):
        section.add(None, task_table(result, task, index))
    if not result.cells:
        section.notes.append("lm-eval reported no metric for these tasks.")
    return section


def facts(result: LmevalResult) -> list[tuple[str, str]]:
    """Tasks, recipe, conditions and the settings that decide what the numbers mean."""
    settings = result.settings
    found = [("tasks", ", ".join(result.tasks)), ("recipe", result.recipe.name if result.recipe else "none"),
             ("conditions", ", ".join(result.condition_names))]
    for key, name in (("controls", "controls"), ("limit", "items per task"), ("num_fewshot", "few-shot examples"),
                      ("lm_eval_version", "lm-eval")):
        value = settings.get(key)
        if value not in (None, [], ""):
            found.append((name, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    return found


def metric_name(cell: LmevalCell) -> str:
    """``acc``, or ``exact_match (strict-match)`` where lm-eval applied a filter."""
    return cell.metric if cell.filter == "none" else f"{cell.metric} ({cell.filter})"


def task_table(result: LmevalResult, task: str, index: int) -> Table:
    """One row per condition and metric of lm-eval result ``task``."""
    table = Table(f"task-{index}", f"{task}: value \u00b1 stderr per condition, change against none", COLUMNS)
    for cell in result.cells:
        if cell.task != task:
            continue
        condition = result.condition(cell.condition)
        better = {True: "higher is better", False: "lower is better"}.get(cell.higher_is_better)  # type: ignore[arg-type]
        table.add(label(cell.condition), text(condition.kind), text(condition.target or ""),
                  text(metric_name(cell), title=better), number(cell.n), number(cell.value, ".4g"),
                  number(cell.stderr, ".2g"), number(cell.change, "+.4g"))
    return table
