"""Every step verb is a Python function whose options class mirrors its command exactly, and the CLI and the
pipeline both run that function."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer

from neurospec.cli.main import app
from neurospec.util.errors import NeurospecError
from neurospec.verbs.base import VerbOptions, convert, split_list
from neurospec.verbs.registry import STEP_FUNCTIONS, verb_spec


def commands() -> dict:
    found = {}

    def walk(command, prefix: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            full = f"{prefix} {name}".strip()
            walk(sub, full) if hasattr(sub, "commands") else found.setdefault(full, sub)

    walk(typer.main.get_command(app), "")
    return found


def click_default(param):
    default = param.default
    if callable(default):
        default = default()
    if isinstance(default, tuple):
        default = list(default)
    return default


@pytest.mark.parametrize("verb", sorted(STEP_FUNCTIONS))
def test_options_class_mirrors_the_command(verb):
    """Same names, flags, defaults, minimums, switches and repeatable options as ``neurospec VERB --help``."""
    command = commands()[verb]
    fields = verb_spec(verb).options.fields()
    cli = {}
    for param in command.params:
        positional = type(param).__name__.endswith("Argument")
        flag = None if positional else next(o for o in param.opts if o.startswith("--"))
        cli[param.name] = (flag, bool(getattr(param, "is_flag", False)), bool(getattr(param, "multiple", False)),
                           bool(param.required), getattr(param, "min", None))
    mine = {name: (spec.flag, spec.is_flag, spec.multiple, spec.required, spec.minimum) for name, spec in fields.items()}
    assert mine == cli
    for param in command.params:
        if not param.required:
            default = click_default(param)
            ours = fields[param.name].default
            ours = ours.value if hasattr(ours, "value") else ours
            assert ours == default or (ours is None and default in (None, [])), (param.name, ours, default)


@pytest.mark.parametrize("verb", sorted(STEP_FUNCTIONS))
def test_options_classes_are_keyword_dataclasses(verb):
    options = verb_spec(verb).options
    assert dataclasses.is_dataclass(options) and issubclass(options, VerbOptions)


def test_from_values_converts_and_names_the_flag():
    options = verb_spec("ppl").options
    built = options.from_values({"model": "m", "out": "runs/x", "limit": "4", "corpus": "fr=a.txt",
                                 "quiet": "true", "languages": ["en", "fr"], "batch_size": "16"})
    assert built.limit == 4 and built.out == Path("runs/x") and built.corpus == ["fr=a.txt"]
    assert built.quiet is True and built.languages == "en,fr" and built.batch_size == "16"
    with pytest.raises(NeurospecError, match=r"--max-length '1' is below its minimum 2"):
        options.from_values({"model": "m", "out": "o", "max_length": "1"})
    with pytest.raises(NeurospecError, match=r"--limit 'four' is not a valid int"):
        options.from_values({"model": "m", "out": "o", "limit": "four"})
    with pytest.raises(NeurospecError, match=r"--batch-size 'lots': give a whole number of sequences \(e.g. 8\), or auto"):
        options.from_values({"model": "m", "out": "o", "batch_size": "lots"})
    with pytest.raises(NeurospecError, match=r"--batch-size '0': give at least 1 sequence, or auto"):
        options.from_values({"model": "m", "out": "o", "batch_size": "0"})
    with pytest.raises(NeurospecError, match=r"missing option --out"):
        options.from_values({"model": "m"})
    with pytest.raises(NeurospecError, match=r"unknown option 'batch'"):
        options.from_values({"model": "m", "out": "o", "batch": 2})


def test_convert_refuses_a_float_for_an_int_and_a_word_for_a_switch():
    spec = verb_spec("ppl").options.fields()
    with pytest.raises(NeurospecError):
        convert(spec["limit"], 2.5)
    with pytest.raises(NeurospecError):
        convert(spec["quiet"], "yes please")


def test_split_list():
    assert split_list(" en, zh,fr", "--languages") == ["en", "zh", "fr"]
    assert split_list(["en", "fr"], "--languages") == ["en", "fr"]
    assert split_list("", "--random-seeds", allow_empty=True) == []
    with pytest.raises(NeurospecError, match=r"--languages 'en,,fr' has an empty item"):
        split_list("en,,fr", "--languages")
