"""Where each step of a study writes, and the option values it runs with.

    output_path(run_dir, step)          # RUN_DIR/collect (a folder) or RUN_DIR/lape.json (a file)
    step_values(study, step, run_dir, toy_folders={"small": folder})   # {'model': ..., 'stats': Path(...)}
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from neurospec.pipeline.config import Step, Study
    from neurospec.pipeline.values import Reference


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


def step_values(study: "Study", step: "Step", run_dir: Path, *, toy_folders: Mapping[str, Path]) -> dict[str, Any]:
    """The step's option values for its verb, every reference and model resolved (``toy:NAME`` to the toy's
    folder, ``$step`` to its output path, ``NAME=PATH`` items to text); ``out`` is chosen by the pipeline."""
    from neurospec.pipeline.values import Model, Reference

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [resolve(item) for item in value]
        if isinstance(value, tuple):
            return f"{value[0]}={resolve(value[1])}"
        if isinstance(value, Reference):
            return reference_path(study, value, run_dir)
        if isinstance(value, Model):
            return str(toy_folders[value.value]) if value.kind == "toy" else value.value
        return value

    return {name: resolve(value) for name, value in step.values.items()}
