"""The ``neurospec`` verbs a study step may run: Python functions with typed options (neurospec.verbs).

    verb = step_verb("select lape")
    verb.options["top_rate"].flag            # '--top-rate'
    verb.check({"stats": Path("runs/s/collect"), "top_rate": "0.05"}, out=Path("runs/s/lape.json"))
    verb.run(verb.check(values, out=Path("runs/s/lape.json")), lm=None)   # the verb function, in this process

A step's options are exactly its verb's options (``max_tokens`` or ``max-tokens`` for ``--max-tokens``),
so ``neurospec VERB --help`` documents them. Only verbs that write an artifact can be steps; the pipeline
chooses each step's ``out``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    foreign: tuple = ()                # options naming things of another program (lm-eval tasks), never data sets


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
    "lmeval": VerbKind("folder", foreign=("tasks",)),
    "mask-eval": VerbKind("folder"),
    "finetune": VerbKind("folder"),
}

# Options that only change what is printed: left out of a step's fingerprint.
COSMETIC_OPTIONS = frozenset({"quiet"})


@dataclass(frozen=True)
class Verb:
    """A step verb: its command, its options, and what it writes."""

    name: str
    kind: VerbKind
    spec: Any                          # neurospec.verbs.registry.VerbSpec: options class and function
    options: dict[str, Any]            # name -> neurospec.verbs.base.FieldSpec

    def option_named(self, key: str) -> str | None:
        """The option a config key names: its flag without dashes (``format``, ``max-tokens``) or its
        Python name (``fmt``, ``max_tokens``); None when the verb has no such option."""
        key = key.replace("-", "_")
        if key in self.options:
            return key
        return next((name for name, spec in self.options.items()
                     if spec.flag and spec.flag.lstrip("-").replace("-", "_") == key), None)

    def renamed_option(self, key: str) -> str | None:
        """The option an old config key of this verb now is (``targets`` -> ``groups``, ``format`` ->
        ``prompt_format``; :data:`neurospec.verbs.renames.RENAMED`), or None."""
        from neurospec.verbs.renames import RENAMED, flag_of

        key = key.replace("-", "_")
        if self.option_named(key) is not None:
            return None
        return next((new for old, new in RENAMED.get(self.name, {}).items()
                     if key in (old, flag_of(old).lstrip("-").replace("-", "_"))), None)

    @property
    def keys(self) -> list[str]:
        """The config keys of its options, as ``--help`` spells them (``format``, ``max_tokens``)."""
        return [spec.flag.lstrip("-").replace("-", "_") if spec.flag else name for name, spec in self.options.items()
                if name != "out"]

    def values_with_out(self, values: dict[str, Any], out: Path | None) -> dict[str, Any]:
        return {**values, "out": out} if out is not None else dict(values)

    def check(self, values: dict[str, Any], out: Path | None = None) -> Any:
        """The verb's options from step ``values`` (strings, paths, lists, bools), converted and checked; runs nothing."""
        return self.spec.options.from_values(self.values_with_out(values, out))

    def run(self, options: Any, *, lm: Any = None) -> Any:
        """Run the verb function in this process on ``options`` (from :meth:`check`), with ``lm`` (a model loaded
        for an earlier step) where the verb can share it; the verb's typed result."""
        return self.spec.run(options, lm=lm)

    def shell(self, values: dict[str, Any], out: Path | None = None) -> str:
        """The equivalent ``neurospec VERB ...`` command line, as recorded in study.json and printed."""
        import shlex

        positional: list[str] = []
        args: list[str] = []
        for name, value in self.values_with_out(values, out).items():
            spec = self.options[name]
            if spec.flag is None:
                positional += [str(v) for v in (value if isinstance(value, list) else [value])]
            elif spec.is_flag:
                args += [spec.flag] if value else []
            elif spec.multiple:
                for item in value:
                    args += [spec.flag, str(item)]
            else:
                args += [spec.flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
        return " ".join(["neurospec", self.name, *map(shlex.quote, positional + args)])


def step_verb(name: str) -> Verb:
    """The verb ``name`` (``collect``, ``select lape``, ...); a clear error for any other."""
    from neurospec.verbs.registry import verb_spec

    if name not in STEP_VERBS:
        raise NeurospecError(f"{name!r} is not a verb a step can run; choose one of {', '.join(STEP_VERBS)}")
    spec = verb_spec(name)
    return Verb(name, STEP_VERBS[name], spec, spec.options.fields())
