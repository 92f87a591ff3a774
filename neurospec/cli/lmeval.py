"""``neurospec lmeval``: any lm-eval task under each group's intervention, with the random and other-language controls.

    neurospec lmeval --model M --neurons lape.json --groups fr,de --tasks xnli_fr,xnli_de --limit 200 --out runs/lmeval
    neurospec lmeval --model M --neurons lape.json --recipe set:p_max --stats stats/ --tasks my_task \\
        --include-path tasks/ --random-seeds 0,1 --out runs/lmeval

Writes lm-eval's own results of every run into ``--out``/lm_eval/ and the table of every condition, task and metric
(value, stderr, change against the unmodified model) as lmeval.json and lmeval.csv; the same verb is the Python
function :func:`neurospec.verbs.lmeval.lmeval`. Registered on :data:`neurospec.cli.main.app` when imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from neurospec.cli.base import (
    BATCH_AUTO,
    DEVICE,
    DEVICE_MAP,
    DTYPE,
    MODEL,
    MODEL_ARG,
    QUIET,
    REVISION,
    TRUST,
    app,
    console,
    done,
    user_errors,
)
from neurospec.results.lmeval import LmevalResult
from neurospec.verbs.lmeval import LmevalOptions, lmeval


@app.command("lmeval")
def lmeval_command(
    model: str = MODEL, revision: Optional[str] = REVISION, model_args: list[str] = MODEL_ARG,
    tasks: str = typer.Option(..., "--tasks", help="lm-eval tasks or groups, e.g. xnli_fr,arc_easy (wildcards too)."),
    out: Path = typer.Option(..., "--out", help="Output folder: lmeval.json, lmeval.csv and lm-eval's own results."),
    neurons: Optional[Path] = typer.Option(None, "--neurons", help="NeuronSet JSON file (neurospec select ...); "
                                           "without it only the unmodified model runs."),
    stats: Optional[Path] = typer.Option(None, "--stats", help="Statistics folder, for recipes that use p_max / "
                                         "p_median / mean."),
    recipe: str = typer.Option("zero", "--recipe", help="What is done to each group's neurons: zero, scale*0.5, "
                               "set:p_max*2..."),
    groups: Optional[str] = typer.Option(None, "--groups", help="Only these groups of --neurons, e.g. fr,de "
                                         "(default: every group)."),
    random_seeds: Optional[str] = typer.Option("0", "--random-seeds", help="Seeds of the size-matched random "
                                               "controls ('' for none)."),
    controls: Optional[str] = typer.Option("random,other", "--controls", help="Paired controls: random, other "
                                           "('' for none)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N items of each task."),
    num_fewshot: Optional[int] = typer.Option(None, "--num-fewshot", min=0, help="Few-shot examples (default: the "
                                              "task's)."),
    include_path: Optional[Path] = typer.Option(None, "--include-path", help="Folder of your own task YAML files."),
    log_samples: bool = typer.Option(False, "--log-samples", help="Keep every item's requests and answers in "
                                     "lm-eval's results."),
    batch_size: str = BATCH_AUTO, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Any lm-eval task, unmodified and under each group's intervention, with random and other-language controls."""
    with user_errors():
        options = LmevalOptions(**locals())
        result = lmeval(options)
        print_table(result)
        done(options.out / "lmeval.json")


def print_table(result: LmevalResult) -> None:
    """Value ± stderr of every condition, task and metric, with the change against the unmodified model."""
    table = Table(title="lm-eval under each condition")
    for column in ("condition", "task", "metric", "value ± stderr", "change"):
        table.add_column(column, justify="left" if column in ("condition", "task", "metric") else "right")
    for cell in result.cells:
        value = "\u2014" if cell.value is None else f"{cell.value:.4g}"
        if cell.stderr is not None:
            value += f" ± {cell.stderr:.2g}"
        change = "" if cell.change is None else f"{cell.change:+.4g}"
        metric = cell.metric if cell.filter == "none" else f"{cell.metric} ({cell.filter})"
        table.add_row(escape(cell.condition), escape(cell.task), escape(metric), value, change)
    console.print(table)
