"""Where each step of a study writes, and the command line it runs.

    output_path(run_dir, step)          # RUN_DIR/collect (a folder) or RUN_DIR/lape.json (a file)
    command_line(study, step, run_dir, toy_folders={"small": folder})   # ['--model', ..., '--out', 'RUN_DIR/collect']
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from neurospec.pipeline.config import Reference, Step, Study


def output_path(run_dir: Path, step: "Step") -> Path:
    """RUN_DIR/NAME for a verb that writes a folder, RUN_DIR/NAME.json for one that writes a file."""
    return run_dir / (step.name if step.verb.kind.output == "folder" else f"{step.name}.json")


def companion_path(output: Path, suffix: str) -> Path:
    """``lape.json`` + ``.random.json`` -> ``lape.random.json``."""
    return output.with_name(output.name.removesuffix(".json") + suffix)


def outputs(run_dir: Path, step: "Step") -> list[Path]:
    """Every path the step writes: its output and its companions."""
    main = output_path(run_dir, step)
    return [main] + [companion_path(main, suffix) for suffix in step.verb.kind.companions.values()]


def reference_path(study: "Study", ref: "Reference", run_dir: Path) -> Path:
    """The path ``$step``, ``$step.companion`` or ``$step/sub`` stands for in ``run_dir``."""
    source = study.step(ref.step)
    target = output_path(run_dir, source)
    if ref.companion:
        target = companion_path(target, source.verb.kind.companions[ref.companion])
    return target / ref.sub if ref.sub else target


def command_line(study: "Study", step: "Step", run_dir: Path, *, toy_folders: Mapping[str, Path]) -> list[str]:
    """The step's arguments for its verb, every reference and model resolved (``toy:NAME`` to the toy's
    folder); ``--out`` chosen by the pipeline."""
    from neurospec.pipeline.config import Model, Reference

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [resolve(item) for item in value]
        if isinstance(value, tuple):
            return f"{value[0]}={resolve(value[1])}"
        if isinstance(value, Reference):
            return str(reference_path(study, value, run_dir))
        if isinstance(value, Model):
            return str(toy_folders[value.value]) if value.kind == "toy" else value.value
        return str(value) if isinstance(value, Path) else value

    values = {name: resolve(value) for name, value in step.values.items()}
    return step.verb.argv(values, out=output_path(run_dir, step))
