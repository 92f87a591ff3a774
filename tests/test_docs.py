"""The documentation agrees with the code (fast; no model is loaded).

(a) every command and sub-command of the ``neurospec`` app has a heading and an example in docs/cli.md;
(b) every ``neurospec ...`` example line in docs/cli.md names a real command and only options it has
    (checked against click's parameter lists, never by running the command);
(c) every ``from neurospec... import ...`` line in docs/api.md and docs/concepts.md imports.

Conventions the checks rely on (stated at the top of docs/cli.md):

- examples are lines of fenced ``bash`` blocks that start with ``neurospec`` (or run
  ``-m neurospec.cli.main``, as under torchrun); backslash continuations are joined, comments dropped;
- a line containing :data:`SKIP_MARK` is a sketch and is not parsed (none is needed today);
- ``...`` stands for options elided from the line; the options that are written are still checked.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

import neurospec.cli.main

DOCS = Path(__file__).resolve().parents[1] / "docs"
CLI_DOC = DOCS / "cli.md"
IMPORT_DOCS = (DOCS / "api.md", DOCS / "concepts.md")

#: A line holding this marker is a sketch with placeholders, not a command to check.
SKIP_MARK = "# sketch"

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


# --------------------------------------------------------------------------------------------
# The app's commands


def root_command():
    return typer.main.get_command(neurospec.cli.main.app)


def is_group(command) -> bool:
    return hasattr(command, "commands")  # typer vendors click: duck-type rather than isinstance


def command_paths(command=None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command below the root, as name paths: ("neurons",), ("neurons", "show"), ..."""
    command = command or root_command()
    paths = []
    for name, sub in command.commands.items():
        paths.append(prefix + (name,))
        if is_group(sub):
            paths += command_paths(sub, prefix + (name,))
    return paths


def option_names(command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


# --------------------------------------------------------------------------------------------
# Reading the docs


def bash_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(line number of the first line, lines) of every fenced bash block."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if current is None and stripped.startswith("```bash"):
            current, start = [], number + 1
        elif current is not None and stripped.startswith("```"):
            blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def example_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command) of every example: continuations joined, comments and blanks dropped."""
    out = []
    for start, lines in bash_blocks(text):
        pending, first = "", None
        for offset, line in enumerate(lines):
            if first is None:
                first = start + offset
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            joined = (pending + line).strip()
            pending, number, first = "", first, None
            if joined and not joined.startswith("#"):
                out.append((number, joined))
    return out


def neurospec_args(line: str) -> list[str] | None:
    """The arguments after ``neurospec`` (or ``-m neurospec.cli.main``), comments removed; None for other lines."""
    if SKIP_MARK in line:
        return None
    tokens = shlex.split(line, comments=True)
    if tokens and tokens[0] == "neurospec":
        return tokens[1:]
    if "-m" in tokens:
        at = tokens.index("-m")
        if at + 1 < len(tokens) and tokens[at + 1] == "neurospec.cli.main":
            return tokens[at + 2:]
    return None


def check_example(args: list[str], root=None) -> str | None:
    """None when ``neurospec ARGS`` names a real command and only its options; else what is wrong."""
    command, path = root or root_command(), ["neurospec"]
    rest = list(args)
    while is_group(command) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        if name not in command.commands:
            return f"{' '.join(path)} has no command {name!r} (it has: {', '.join(command.commands)})"
        command = command.commands[name]
        path.append(name)
    if is_group(command) and not any(arg.startswith("-") for arg in rest):
        return f"{' '.join(path)} is a group: name one of its commands ({', '.join(command.commands)})"
    known = option_names(command)
    for arg in rest:
        if not arg.startswith("-") or arg == "-" or _NUMBER.match(arg):
            continue
        name = arg.split("=", 1)[0]
        if name not in known:
            return f"{' '.join(path)} has no option {name!r} (it has: {', '.join(sorted(known))})"
    return None


def headings(text: str) -> set[str]:
    """Heading texts without the #'s and backticks: '## `neurospec neurons show`' -> 'neurospec neurons show'."""
    return {line.lstrip("#").strip().strip("`").strip() for line in text.splitlines() if re.match(r"^#{1,6} ", line)}


# --------------------------------------------------------------------------------------------
# (a) every command is documented


def test_every_command_has_a_heading_and_an_example():
    text = CLI_DOC.read_text(encoding="utf-8")
    titles = headings(text)
    commands = [" ".join(("neurospec",) + tuple(args)) for _, args in
                [(n, neurospec_args(line)) for n, line in example_lines(text)] if args is not None]
    missing_heading, missing_example = [], []
    for path in command_paths():
        name = "neurospec " + " ".join(path)
        if name not in titles:
            missing_heading.append(name)
        if not any(c == name or c.startswith(name + " ") for c in commands):
            missing_example.append(name)
    assert not missing_heading, f"docs/cli.md has no heading for: {', '.join(missing_heading)}"
    assert not missing_example, f"docs/cli.md has no example line for: {', '.join(missing_example)}"


# --------------------------------------------------------------------------------------------
# (b) every example parses


def test_every_cli_example_uses_real_commands_and_options():
    text = CLI_DOC.read_text(encoding="utf-8")
    examples = [(n, line, neurospec_args(line)) for n, line in example_lines(text)]
    checked, problems = 0, []
    for number, line, args in examples:
        if args is None:
            continue
        problem = check_example(args)
        checked += 1
        if problem:
            problems.append(f"docs/cli.md line {number}: {problem}\n    {line}")
    assert checked >= len(command_paths()), f"only {checked} examples were checked"
    assert not problems, "\n".join(problems)


def test_the_example_checker_catches_mistakes():
    """The checker itself must be able to fail: a wrong verb, sub-command or option is reported."""
    assert check_example(["collect", "--model", "m", "--out", "x"]) is None
    assert check_example(["select", "lape", "--stats", "s", "--out=x.json", "--top-rate", "0.01"]) is None
    assert check_example(["eval", "xcopa", "--model", "m", "--languages", "et", "--out", "x"]) is None
    assert "no option '--top_rate'" in check_example(["select", "lape", "--top_rate", "0.01"])
    assert "no command 'collcet'" in check_example(["collcet", "--model", "m"])
    assert "no command 'lapee'" in check_example(["select", "lapee"])
    assert "is a group" in check_example(["neurons"])
    assert check_example(["--version"]) is None
    assert neurospec_args("torchrun --nproc_per_node=2 -m neurospec.cli.main collect --out x") == ["collect", "--out", "x"]
    assert neurospec_args("python -m other.cli collect") is None
    joined = example_lines("```bash\nneurospec ppl --model m \\\n    --out x   # comment\n# only a comment\n```\n")
    assert [" ".join(line.split()) for _, line in joined] == ["neurospec ppl --model m --out x # comment"]
    assert neurospec_args(joined[0][1]) == ["ppl", "--model", "m", "--out", "x"]


# --------------------------------------------------------------------------------------------
# (c) every documented import works


def import_statements(text: str) -> list[tuple[int, str]]:
    """(line number, statement) of every ``from neurospec... import ...`` line, parentheses joined."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        match = re.match(r"^\s*(from neurospec(\.\w+)* import .*)$", lines[i])
        if not match:
            i += 1
            continue
        statement, start = match.group(1).split("#", 1)[0].rstrip(), i + 1
        while statement.count("(") > statement.count(")") and i + 1 < len(lines):
            i += 1
            statement += " " + lines[i].split("#", 1)[0].strip()
        out.append((start, statement))
        i += 1
    return out


@pytest.mark.parametrize("doc", IMPORT_DOCS, ids=lambda p: p.name)
def test_documented_imports_work(doc):
    statements = import_statements(doc.read_text(encoding="utf-8"))
    assert statements, f"{doc.name} has no `from neurospec... import` line"
    failures = []
    for number, statement in statements:
        try:
            exec(compile(statement, f"{doc.name}:{number}", "exec"), {})
        except Exception as err:  # noqa: BLE001  report every failing line at once
            failures.append(f"{doc.name} line {number}: {statement}\n    {type(err).__name__}: {err}")
    assert not failures, "\n".join(failures)
