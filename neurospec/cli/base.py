"""What every ``neurospec`` verb module shares: the Typer apps, the consoles, the one-line error handling,
provenance stamping and list options.

    from neurospec.cli.base import app, console, user_errors, split_names

Verb modules (``neurospec/cli/*.py``) register their commands on these apps; ``neurospec.cli.main`` imports
them all and is the entry point.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console, RenderHook
from rich.markup import escape

from neurospec.util.errors import NeurospecError, NeurospecWarning
from neurospec.util.text import printable
from neurospec.verbs.base import values_provenance
from neurospec.version import __version__


class VerbGroup(typer.core.TyperGroup):
    """A group of ``neurospec`` verbs: an old flag of a verb (:mod:`neurospec.verbs.renames`) is taken as its new
    one with a one-line deprecation warning, and switches show no ``<bool>`` value in ``--help`` (they take none)."""

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not isinstance(command, typer.core.TyperGroup):
            names = []
            while ctx.parent is not None:          # the groups below the root (``select``), not the program's name
                names.insert(0, ctx.info_name or "")
                ctx = ctx.parent
            path = " ".join([*names, command.name or name or ""]).strip()
            rest = new_flags(path, rest)
            plain_switches(command, ctx)
        return name, command, rest

    def get_params(self, ctx):
        plain_switches(self, ctx)
        return super().get_params(ctx)


def plain_switches(command, ctx) -> None:
    """Give every switch of ``command`` (``--help`` too) an empty value name in its help line."""
    for param in [*command.params, command.get_help_option(ctx)]:
        if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


def new_flags(verb: str, args: list[str]) -> list[str]:
    """``args`` of ``neurospec VERB`` with each old flag (``--targets fr`` or ``--targets=fr``) replaced by its new
    one, with a deprecation warning."""
    from neurospec.verbs.renames import old_flags, renamed_message

    renamed = old_flags(verb)
    result = []
    for arg in args:
        if arg == "--":
            result += args[len(result):]
            break
        flag, equals, value = arg.partition("=")
        if flag in renamed:
            err_console.print(f"[bold yellow]warning:[/] [yellow]{escape(renamed_message(verb, flag, renamed[flag]))}[/]")
            arg = renamed[flag] + equals + value
        result.append(arg)
    return result


app = typer.Typer(
    cls=VerbGroup,
    name="neurospec",
    help="Neuron-level analysis of language models: find, inspect, switch off and amplify neurons.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
neurons_app = typer.Typer(cls=VerbGroup, help="Inspect, import and export neuron files.", no_args_is_help=True)
app.add_typer(neurons_app, name="neurons")

console = Console(highlight=False, emoji=False)  # group names such as random0:Spain: are no emoji codes
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


class _PrintableText:
    """Wraps a renderable: the text of every segment it renders passes :func:`~neurospec.util.text.printable`
    (styles are kept)."""

    def __init__(self, renderable) -> None:
        self.renderable = renderable

    def __rich_console__(self, console, options):
        from rich.segment import Segment

        for segment in console.render(self.renderable, options):
            yield segment if segment.control else Segment(printable(segment.text), segment.style)


class _PrintableHook(RenderHook):
    def process_renderables(self, renderables):
        return [_PrintableText(renderable) for renderable in renderables]


for _console in (console, err_console):
    _console.push_render_hook(_PrintableHook())

GROUP_COLOURS = (
    "cyan", "magenta", "green", "yellow", "blue", "red",
    "bright_cyan", "bright_magenta", "bright_green", "bright_yellow", "bright_blue", "bright_red",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"neurospec {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Neuron-level analysis of language models."""


_depth = 0  # user_errors blocks open: a verb that `neurospec run` calls in-process runs inside run's block


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """``with user_errors(): ...``: a NeurospecError or OSError becomes one red line and exit code 2; a warning of
    neurospec's own (e.g. a skipped empty group) one yellow line; Ctrl-C one line saying what is kept, and exit
    code 130. Python argument names in a message (``top_rate=``) are shown as the command's flags."""
    global _depth
    _depth += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", NeurospecWarning)
            warnings.showwarning = _warning_line(warnings.showwarning)
            yield
    except NeurospecError as err:
        err_console.print(f"[bold red]error:[/] [red]{escape(_one_line(_cli_words(str(err))))}[/]")
        raise typer.Exit(code=2) from None
    except OSError as err:
        where = f" '{err.filename}'" if getattr(err, "filename", None) else ""
        err_console.print(f"[bold red]error:[/] [red]{escape(_one_line(f'{err.strerror or err}{where}'))}[/]")
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        if _depth > 1:  # the outer block (neurospec run) records the interrupted step first, then says so
            raise
        err_console.print(f"[bold red]error:[/] [red]{escape(_interrupted())}[/]")
        raise typer.Exit(code=130) from None
    finally:
        _depth -= 1


def _context():
    """The command line library's current context (typer 0.29 carries its own copy of click), or None."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context
    return get_current_context(silent=True)


def _command_params() -> dict:
    """The current command's parameters by Python name (empty outside a command)."""
    ctx = _context()
    return {param.name: param for param in ctx.command.params} if ctx is not None else {}


def _flag(param) -> str | None:
    return next((opt for opt in getattr(param, "opts", ()) if opt.startswith("--")), None)


def _cli_words(message: str) -> str:
    """``top_rate=7.0`` -> ``--top-rate 7.0``, ``pass data_dir=`` -> ``pass --data-dir``: the library's messages
    name Python arguments; under the command line they name the flags of the current command."""
    params = _command_params()
    for name, param in params.items():
        flag = _flag(param)
        if not name or not flag:
            continue
        if getattr(param, "is_flag", False):
            message = re.sub(rf"\b{re.escape(name)}=True\b", flag, message)
        message = re.sub(rf"\b{re.escape(name)}=(?=[^\s),;])", f"{flag} ", message)
        message = re.sub(rf"\b{re.escape(name)}=", flag, message)
    if "path" in params:  # the culture verbs take a data set's file as --path NAME=FILE
        message = re.sub(r"\bdata_dir=", "--path NAME=FILE", message)
    return message


def _interrupted() -> str:
    """The line Ctrl-C prints: what of the command's output is kept, and how to go on."""
    ctx = _context()
    params = ctx.params if ctx is not None else {}
    if "resume" in params:
        out = Path(params.get("out") or ".")
        if out.is_dir() and any(entry.name != ".lock" and not entry.name.endswith(".tmp") for entry in out.iterdir()):
            return f"interrupted; the last checkpoint in {out} is kept: run the same command with --resume to continue"
        return f"interrupted before the first checkpoint; nothing is kept in {out}: run the same command again"
    if "run_dir" in params and "force" in params:
        return "interrupted; the steps that finished are kept: run the same command again to go on from the unfinished one"
    return "interrupted; files are written whole or not at all, so nothing half-written is left: run the command again"


def _warning_line(previous):
    """A ``warnings.showwarning`` that prints neurospec's warnings as one line and hands others to ``previous``."""
    def show(message, category, *where, **more) -> None:
        if issubclass(category, NeurospecWarning):
            err_console.print(f"[bold yellow]warning:[/] [yellow]{escape(_one_line(str(message)))}[/]")
        else:
            previous(message, category, *where, **more)
    return show


def _one_line(message: str) -> str:
    return " ".join(message.split())


def command_provenance(model=None) -> dict:
    """The provenance record of the current command's result (:func:`neurospec.verbs.base.values_provenance` of
    its parameters) for the verbs that are not functions of :mod:`neurospec.verbs`."""
    ctx = _context()
    params = dict(ctx.params) if ctx is not None else {}
    names = []
    while ctx is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    verb = " ".join(reversed(names[:-1])) if len(names) > 1 else (names[0] if names else "")
    return values_provenance(f"neurospec {verb.removeprefix('neurospec ')}".strip(), params, model)


@contextlib.contextmanager
def warnings_after() -> Iterator[None]:
    """``with user_errors(), warnings_after(): print_table(verb(options))``: the warnings raised inside the block
    are shown when it ends, after what it printed (a selection's table, then the warning about its empty groups)."""
    held: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                held = list(caught)
    finally:   # after an error too: a warning is never lost
        for item in held:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)


def split_names(text: str | None, flag: str | None = None, *, allow_empty: bool = False,
                 example: str = "en,zh,fr") -> list[str] | None:
    """``"en, zh,fr"`` -> ``["en", "zh", "fr"]``; None stays None; ``""`` is ``[]`` with ``allow_empty``.

    An empty item (``"en,,fr"``, ``","``) is an error naming ``flag`` (default: the option of the current
    command that holds ``text``)."""
    if text is None:
        return None
    if allow_empty and not text.strip():
        return []
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        if flag is None:
            flag = next((_flag(param) for name, param in _command_params().items()
                         if _flag(param) and _current_value(name) == text), None) or "the list"
        raise NeurospecError(f"{flag} {text!r} has an empty item; give items separated by commas, e.g. {example}")
    return names


def _current_value(name: str):
    ctx = _context()
    return ctx.params.get(name) if ctx is not None else None


# --------------------------------------------------------------------------------------------
# Options and helpers of the verbs that load a model

MODEL = typer.Option(..., "--model", help="Hub id, local folder, .gguf file or built-in name of the model.")
REVISION = typer.Option(None, "--revision", help="Branch, tag or commit of a hub model (recorded in every result).")
MODEL_ARG = typer.Option([], "--model-arg", help="KEY=VALUE for from_pretrained (repeatable; true/false and numbers "
                         "are converted), e.g. --model-arg attn_implementation=eager.")
BATCH = typer.Option(8, "--batch-size", min=1, help="Sequences per forward call.")
BATCH_AUTO = typer.Option("auto", "--batch-size", help="Sequences per forward call, or auto: the largest that fits "
                          "(tried on a GPU; on a CPU estimated against a quarter of the free memory, at most 8).")
DTYPE = typer.Option("auto", "--dtype", help="auto (fp32 on CPU, the checkpoint's elsewhere), float32, bfloat16...")
DEVICE = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if available).")
DEVICE_MAP = typer.Option(None, "--device-map", help="auto: spread a large model over all GPUs.")
TRUST = typer.Option(False, "--trust-remote-code", help="Run code from the model's repository.")
QUIET = typer.Option(False, "--quiet", help="No progress lines.")


def load(model: str, dtype: str, device: Optional[str], device_map: Optional[str], trust_remote_code: bool):
    from neurospec.core.models import load_model

    return load_model(model, dtype=dtype, device=device, device_map=device_map, trust_remote_code=trust_remote_code)


def progress_printer(quiet: bool):
    def line(*parts: Any) -> None:
        if not quiet:
            console.print(escape(" ".join(str(p) for p in parts)), soft_wrap=True)
    return line


def done(path: Path) -> None:
    console.print(escape(f"wrote {path}"), soft_wrap=True)
