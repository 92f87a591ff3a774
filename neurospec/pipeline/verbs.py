"""The ``neurospec`` verbs a study step may run, read from the command line itself.

    verb = step_verb("select lape")
    verb.options["top_rate"].flag            # '--top-rate'
    verb.argv({"stats": "runs/s/collect", "top_rate": 0.05}, out=Path("runs/s/lape.json"))
    verb.run(argv)                            # the verb, in this process; returns its exit code

A step's options are exactly its verb's command-line options (``max_tokens`` or ``max-tokens`` for
``--max-tokens``), so ``neurospec VERB --help`` documents them. Only verbs that write an artifact can
be steps; the pipeline chooses each step's ``--out``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from neurospec.util.errors import NeurospecError


@dataclass(frozen=True)
class VerbKind:
    """What the pipeline must know of a verb beyond its options."""

    output: str                        # "folder" or "file" (written at RUN_DIR/<step> or RUN_DIR/<step>.json)
    resumable: bool = False            # has --resume for an unfinished --out folder
    companions: dict = field(default_factory=dict)   # extra outputs: name -> suffix replacing .json
    output_options: tuple = ()         # options naming further files it writes (set by the pipeline, not the user)


STEP_VERBS: dict[str, VerbKind] = {
    "collect": VerbKind("folder", resumable=True),
    "attribute": VerbKind("folder", resumable=True),
    "select lape": VerbKind("file"),
    "select all-active": VerbKind("file"),
    "select top-mean": VerbKind("file"),
    "select random": VerbKind("file"),
    "select culture": VerbKind("file", companions={"random": ".random.json"}, output_options=("random_out",)),
    "neurons import": VerbKind("file"),
    "ppl": VerbKind("folder"),
    "steer": VerbKind("folder"),
    "lss": VerbKind("folder"),
    "sweep": VerbKind("folder"),
    "eval": VerbKind("folder"),
    "mask-eval": VerbKind("folder"),
    "finetune": VerbKind("folder"),
}

# Options that only change what is printed: left out of a step's fingerprint.
COSMETIC_OPTIONS = frozenset({"quiet"})


@dataclass(frozen=True)
class OptionSpec:
    """One option or argument of a verb."""

    name: str                  # the Python name (max_tokens)
    flag: str | None           # '--max-tokens'; None for a positional argument
    annotation: Any            # the type it is declared with (Path, int, list[str], an Enum, ...)
    is_flag: bool              # a boolean switch
    multiple: bool             # may be repeated
    required: bool

    @property
    def is_path(self) -> bool:
        return _unwrap(self.annotation) is Path


def _unwrap(annotation: Any) -> Any:
    """``Optional[Path]`` -> Path; ``list[str]`` -> str."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return _unwrap(args[0]) if args else annotation


@dataclass(frozen=True)
class Verb:
    """A step verb: its command, its options, and what it writes."""

    name: str
    kind: VerbKind
    command: Any
    options: dict[str, OptionSpec]

    def option_named(self, key: str) -> str | None:
        """The option a config key names: its flag without dashes (``format``, ``max-tokens``) or its
        Python name (``fmt``, ``max_tokens``); None when the verb has no such option."""
        key = key.replace("-", "_")
        if key in self.options:
            return key
        return next((name for name, spec in self.options.items()
                     if spec.flag and spec.flag.lstrip("-").replace("-", "_") == key), None)

    @property
    def keys(self) -> list[str]:
        """The config keys of its options, as ``--help`` spells them (``format``, ``max_tokens``)."""
        return [spec.flag.lstrip("-").replace("-", "_") if spec.flag else name for name, spec in self.options.items()
                if name != "out"]

    def argv(self, values: dict[str, Any], out: Path | None = None) -> list[str]:
        """The command-line arguments for option ``values`` (already resolved to strings, bools, lists)."""
        positional: list[str] = []
        args: list[str] = []
        for name, value in values.items():
            spec = self.options[name]
            if spec.flag is None:
                positional += [str(v) for v in (value if isinstance(value, list) else [value])]
            elif spec.is_flag:
                if value:
                    args.append(spec.flag)
            elif spec.multiple:
                for item in value:
                    args += [spec.flag, str(item)]
            else:
                args += [spec.flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
        if out is not None:
            args += ["--out", str(out)]
        return positional + args

    def check(self, argv: list[str]) -> None:
        """Parse ``argv`` as the command line would (types, choices, ranges, required options), running nothing."""
        try:
            self.command.make_context(self.name, list(argv))
        except Exception as err:   # the command line library's usage errors
            message = err.format_message() if hasattr(err, "format_message") else str(err)
            raise NeurospecError(message) from None

    def run(self, argv: list[str]) -> int:
        """Run the verb in this process, as ``neurospec VERB ARGV`` would; its exit code."""
        code = self.command.main(args=list(argv), prog_name=f"neurospec {self.name}", standalone_mode=False)
        return code if isinstance(code, int) else 0

    def shell(self, argv: list[str]) -> str:
        import shlex

        return " ".join(["neurospec", self.name, *map(shlex.quote, argv)])


@cache
def _commands() -> dict[str, Any]:
    import typer

    from neurospec.cli.main import app

    commands: dict[str, Any] = {}

    def walk(command: Any, prefix: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            full = f"{prefix} {name}".strip()
            walk(sub, full) if hasattr(sub, "commands") else commands.setdefault(full, sub)

    walk(typer.main.get_command(app), "")
    return commands


def step_verb(name: str) -> Verb:
    """The verb ``name`` (``collect``, ``select lape``, ...); a clear error for any other."""
    if name not in STEP_VERBS:
        raise NeurospecError(f"{name!r} is not a verb a step can run; choose one of {', '.join(STEP_VERBS)}")
    command = _commands()[name]
    hints = typing.get_type_hints(command.callback)
    options = {}
    for param in command.params:
        flag = next((o for o in param.opts if o.startswith("--")), None) if hasattr(param, "opts") else None
        positional = type(param).__name__.endswith("Argument")
        options[param.name] = OptionSpec(
            name=param.name, flag=None if positional else flag, annotation=hints.get(param.name, str),
            is_flag=bool(getattr(param, "is_flag", False)), multiple=bool(getattr(param, "multiple", False)),
            required=bool(param.required))
    return Verb(name, STEP_VERBS[name], command, options)
