"""The ``neurospec`` command line: one verb per user task; it parses, calls the API and prints.

    neurospec neurons show lape.json                       # counts per group and site, per-layer histogram
    neurospec neurons show LLaMA-2-7B.neuron.pth --groups en,zh,fr,es,vi,id,ja --json
    neurospec neurons import LLaMA-2-7B.neuron.pth --groups en,zh,fr,es,vi,id,ja --model meta-llama/Llama-2-7b-hf --out lape.json
    neurospec neurons export lape.json --format lape-pth --out lape.neuron.pth
    neurospec collect --model M --corpus fr=fr.txt --corpus de=ntrex128 --out stats/ --max-tokens 1000000
    neurospec select lape --stats stats/ --out lape.json
    neurospec stats show stats/

Errors a user can fix (:class:`neurospec.util.errors.NeurospecError`, and file system errors) print one
red line on stderr and exit with code 2; outputs are written atomically, so a failed command leaves
no partial file. Add a verb group from another module with ``app.add_typer(other_app, name="verb")``
below, next to ``neurons``.
"""

from __future__ import annotations

import contextlib
import os
import re
import unicodedata
import warnings
from enum import Enum
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console, RenderHook
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from neurospec.version import __version__
from neurospec.util.errors import EmptyGroupWarning, NeurospecError, NeurospecWarning
from neurospec.util.io import atomic_torch_save, json_text
from neurospec.measure.run_folder import writing

app = typer.Typer(
    name="neurospec",
    help="Neuron-level analysis of language models: find, inspect, switch off and amplify neurons.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
neurons_app = typer.Typer(help="Inspect, import and export neuron files.", no_args_is_help=True)
app.add_typer(neurons_app, name="neurons")

console = Console(highlight=False, emoji=False)  # group names such as random0:Spain: are no emoji codes
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def _printable(text: str) -> str:
    """Control characters (an ESC in a group name from a file) as ``\\x1b``: shown, never sent to the terminal."""
    if text.isprintable() or all(ch in "\n\t" or unicodedata.category(ch) != "Cc" for ch in text):
        return text
    return "".join(ch if ch in "\n\t" or unicodedata.category(ch) != "Cc" else ascii(ch)[1:-1] for ch in text)


class _PrintableText:
    """Wraps a renderable: the text of every segment it renders passes :func:`_printable` (styles are kept)."""

    def __init__(self, renderable) -> None:
        self.renderable = renderable

    def __rich_console__(self, console, options):
        from rich.segment import Segment

        for segment in console.render(self.renderable, options):
            yield segment if segment.control else Segment(_printable(segment.text), segment.style)


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


_OUTPUT_OPTIONS = ("out", "random_out", "run_dir")


def _provenance(model=None) -> dict:
    """The provenance record (:func:`neurospec.core.provenance.provenance`) of the current command's result:
    ``model`` (a loaded model; by default the model its first input records), every option naming an existing
    file or folder as an input (``--corpus LANG=PATH`` too), and every option's value."""
    from neurospec.core.provenance import provenance

    ctx = _context()
    params = dict(ctx.params) if ctx is not None else {}
    inputs: dict[str, Path] = {}
    for name, value in params.items():
        if name in _OUTPUT_OPTIONS or value is None:
            continue
        several = isinstance(value, (list, tuple))
        for item in value if several else [value]:
            if isinstance(item, Path) and item.exists():
                inputs[f"{name}:{item}" if several else name] = item
            elif isinstance(item, str) and "=" in item:
                label, _, target = item.partition("=")
                if target and Path(target).expanduser().exists():
                    inputs[f"{name}:{label}"] = Path(target).expanduser()
    names = []
    while ctx is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    verb = " ".join(reversed(names[:-1])) if len(names) > 1 else (names[0] if names else "")
    verb = verb.removeprefix("neurospec ")
    return provenance(model, inputs, {k: v for k, v in params.items() if k not in _OUTPUT_OPTIONS},
                      command=f"neurospec {verb}".strip())


def _stamped(written: Path, model=None, main: str | None = None) -> Path:
    """Add the current command's provenance to the JSON result ``written`` (or ``written / main`` for a folder);
    returns ``written``."""
    from neurospec.core.provenance import stamp

    stamp(Path(written) / main if main else Path(written), _provenance(model))
    return written


def _split_names(text: str | None, flag: str | None = None, *, allow_empty: bool = False,
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
# neurospec neurons show


def _counts_table(neurons) -> Table:
    sites = [s for s in _sites_of(neurons)]
    table = Table()
    table.add_column("group")
    for site in sites:
        width = neurons.meta.widths.get(site)
        table.add_column(f"{site}" + (f" (of {width * neurons.num_layers})" if width else ""), justify="right")
    table.add_column("total", justify="right")
    for i, group in enumerate(neurons.groups):
        cells = [str(neurons.count(group, site)) if site in neurons.sites(group) else "-" for site in sites]
        table.add_row(Text(group, style=_colour(i)), *cells, str(neurons.count(group)))
    table.add_section()
    table.add_row("distinct, all groups", *[str(neurons.count(None, site)) for site in sites], str(neurons.count()))
    return table


def _header(neurons) -> str:
    name = str(neurons.path) if neurons.path else "neuron set"
    parts = [f"{neurons.num_layers} layers", f"model {neurons.meta.model_id or 'unknown'}"]
    if neurons.meta.method:
        parts.append(f"method {neurons.meta.method}")
    return f"{name}: " + ", ".join(parts)


def _sites_of(neurons) -> list[str]:
    from neurospec.core.sites import SITES

    present = {site for group in neurons.groups for site in neurons.sites(group)}
    return [site for site in SITES if site in present]


def _colour(i: int) -> str:
    return GROUP_COLOURS[i % len(GROUP_COLOURS)]


def _stacked_bar(counts: list[int], scale_max: int, width: int) -> Text:
    """One layer's bar: a segment per group (its colour), lengths by cumulative rounding so totals add up.

    A layer with neurons but too few for one cell gets a thin mark in its largest group's colour.
    """
    bar = Text()
    done, cumulative = 0, 0
    for i, count in enumerate(counts):
        cumulative += count
        end = round(cumulative / scale_max * width) if scale_max else 0
        if end > done:
            bar.append("█" * (end - done), style=_colour(i))
            done = end
    if not done and cumulative:
        bar.append("▏", style=_colour(max(range(len(counts)), key=counts.__getitem__)))
    return bar


def _histogram(neurons, site: str, width: int | None) -> Table:
    groups = neurons.groups
    per_group = [neurons.per_layer_counts(group, site).tolist() for group in groups]
    totals = [sum(column) for column in zip(*per_group)] if per_group else [0] * neurons.num_layers
    scale_max = max(totals, default=0)
    bar_width = width or max(10, min(40, console.width - 8 - 6 * (len(groups) + 1)))
    table = Table(
        title=escape(f"per layer, site {site!r}: stacked bars, longest = {scale_max}"),
        title_justify="left", box=None, pad_edge=False, padding=(0, 1),
    )
    table.add_column("layer", justify="right")
    for i, group in enumerate(groups):
        table.add_column(Text(group, style=_colour(i)), justify="right")
    table.add_column("sum", justify="right")
    table.add_column("", no_wrap=True, overflow="crop", min_width=bar_width)
    for layer in range(neurons.num_layers):
        counts = [column[layer] for column in per_group]
        table.add_row(str(layer), *[str(c) if c else "." for c in counts], str(totals[layer]),
                      _stacked_bar(counts, scale_max, bar_width))
    return table


@neurons_app.command("show")
def show(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="NeuronSet JSON file, or a LAPE .pth file (with --groups)."),
    groups: Optional[str] = typer.Option(None, "--groups", help="Names of a LAPE .pth file's lists, in order: en,zh,fr,..."),
    site: str = typer.Option("act", "--site", help="Site of a LAPE .pth file's neurons."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable counts (JSON) instead of tables."),
    bar_width: Optional[int] = typer.Option(None, "--bar-width", min=5, help="Width of the histogram bars."),
) -> None:
    """Counts per group and site, and a per-layer histogram."""
    from neurospec.neurons.formats import load_neuron_file

    with user_errors():
        neurons = load_neuron_file(file, groups=_split_names(groups), site=site)
        if as_json:
            typer.echo(json_text(neurons.summary()), nl=False)
            return
        console.print(escape(_header(neurons)), soft_wrap=True)
        console.print(_counts_table(neurons))
        for site_name in _sites_of(neurons):
            console.print()
            console.print(_histogram(neurons, site_name, bar_width))


# --------------------------------------------------------------------------------------------
# neurospec neurons import / export


@neurons_app.command("import")
def import_lape(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A LAPE reference .pth file (list[lang][layer])."),
    groups: str = typer.Option(..., "--groups", help="Names of the file's lists, in order: en,zh,fr,es,vi,id,ja."),
    out: Path = typer.Option(..., "--out", help="The NeuronSet JSON file to write."),
    model: Optional[str] = typer.Option(None, "--model", help="Hub id or local folder: check the neurons fit it (config only)."),
    site: str = typer.Option("act", "--site", help="Site the indices refer to (LAPE: act)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run code from --model's repository."),
) -> None:
    """Convert a LAPE .pth neuron file to a NeuronSet JSON file."""
    from neurospec.neurons.neuron_set import NeuronSet

    with user_errors(), writing(out, "neurospec neurons import", file=True):
        shape = None
        if model is not None:
            from neurospec.core.models import model_shape

            shape = model_shape(model, trust_remote_code=trust_remote_code)
        neurons = NeuronSet.from_lape(file, _split_names(groups), site=site, shape=shape)
        neurons.meta.source = {**neurons.meta.source, "provenance": _provenance({"id": model} if model else None)}
        neurons.save(out)
        checked = f", checked against {model}" if model else " (no --model: widths unknown, not checked)"
        console.print(
            f"wrote {escape(str(out))}: {len(neurons)} groups, {neurons.count()} distinct neurons in "
            f"{neurons.num_layers} layers{escape(checked)}",
            soft_wrap=True,
        )


class ExportFormat(str, Enum):
    """Formats ``neurons export`` writes."""

    lape_pth = "lape-pth"


@neurons_app.command("export")
def export(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A NeuronSet JSON file."),
    fmt: ExportFormat = typer.Option(..., "--format", help="lape-pth: the LAPE reference list[lang][layer] file."),
    out: Path = typer.Option(..., "--out", help="The file to write."),
    groups: Optional[str] = typer.Option(None, "--groups", help="Export only these groups, in this order."),
    site: Optional[str] = typer.Option(None, "--site", help="Site to export (default: the set's only site)."),
) -> None:
    """Write a NeuronSet JSON file in another format."""
    from neurospec.neurons.neuron_set import NeuronSet

    with user_errors(), writing(out, "neurospec neurons export", file=True):
        neurons = NeuronSet.load(file)
        if fmt is ExportFormat.lape_pth:
            names = _split_names(groups)
            lists = neurons.to_lape(names, site)
            atomic_torch_save(out, lists)
            console.print(
                f"wrote {escape(str(out))}: {len(lists)} lists x {neurons.num_layers} layers ({fmt.value})", soft_wrap=True
            )


# --------------------------------------------------------------------------------------------
# neurospec sites / neurospec intervention check


@app.command("sites")
def sites(
    model: str = typer.Argument(..., help="Hub id or local folder (only its config is read)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run code from the model's repository."),
) -> None:
    """Where each neuron site lives in a model, and its width."""
    from neurospec.core.models import empty_model
    from neurospec.core.sites import SiteMap

    with user_errors():
        site_map = SiteMap(empty_model(model, trust_remote_code=trust_remote_code))
        console.print(escape(f"{model}: {site_map.model_type}, {site_map.num_layers} layers "
                             f"({site_map.layers_path}), sites from the {site_map.source}"), soft_wrap=True)
        table = Table("site", "module (layer 0)", "hook", "width", "columns")
        for row in site_map.describe():
            table.add_row(row["site"], row["module"], row["hook"], str(row["width"]), row["columns"])
        console.print(table)


intervention_app = typer.Typer(help="Write and check intervention files.", no_args_is_help=True)
app.add_typer(intervention_app, name="intervention")


@intervention_app.command("check")
def check_intervention(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="An intervention JSON file."),
    model: str = typer.Option(..., "--model", help="Hub id or local folder to check it against (config only)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run code from the model's repository."),
) -> None:
    """Load an intervention file and every file it names, and check them against a model."""
    from neurospec.interventions.files import InterventionSpec
    from neurospec.core.models import empty_model

    with user_errors():
        edits = InterventionSpec.load(file).edits_for(empty_model(model, trust_remote_code=trust_remote_code))
        table = Table("#", "neurons", "op", "value", "factor", "positions", "count")
        for i, edit in enumerate(edits):
            value = "-" if edit.value is None else edit.value if isinstance(edit.value, (int, float)) else (
                edit.value.to_json() if hasattr(edit.value, "to_json") else f"per neuron {tuple(edit.value.shape)}"
            )
            table.add_row(str(i), escape(edit.label), edit.op, escape(str(value)), f"{edit.factor:g}", edit.positions,
                          str(edit.count))
        console.print(f"{escape(str(file))}: {len(edits)} edit(s), valid for {escape(model)}", soft_wrap=True)
        console.print(table)


@intervention_app.command("make")
def make_intervention(
    neurons: Path = typer.Option(..., "--neurons", exists=True, dir_okay=False, help="NeuronSet JSON file."),
    group: str = typer.Option(..., "--group", help="The group whose neurons are edited, e.g. fr."),
    recipe: str = typer.Option(..., "--recipe", help="zero, scale*2, set:p_max, set:p_median*2, add:runtime:max..."),
    out: Path = typer.Option(..., "--out", help="Intervention JSON file to write."),
    stats: Optional[Path] = typer.Option(None, "--stats", help="Statistics folder, for p_max / p_median / mean."),
) -> None:
    """Write an intervention file for one group and recipe (values go to OUT.values.safetensors)."""
    from neurospec.interventions.recipes import Recipe, write_intervention
    from neurospec.measure.stats import ActivationStats

    with user_errors(), writing(out, "neurospec intervention make", file=True):
        chosen = Recipe.parse(recipe, "--recipe")
        _not_an_input(out, "--out", {"--neurons": neurons})
        written = write_intervention(chosen, neurons, group, out, ActivationStats.load(stats) if stats else None)
        console.print(escape(f"wrote {written}"), soft_wrap=True)


@app.command("languages")
def languages(
    names: list[str] = typer.Argument(None, help="Language codes or names in any scheme (zh, zho-CN, jp, swh_Latn, French)."),
) -> None:
    """Resolve language names and codes (ISO 639-1/3, FLORES-200, NTREX, XCOPA, XWinograd, py3langid)."""
    from neurospec.data.languages import resolve

    with user_errors():
        table = Table("query", "key", "name", "ISO 639-1", "ISO 639-3", "NTREX", "XCOPA", "XWinograd", "py3langid")
        for name in names or []:
            lang = resolve(name)
            table.add_row(name, lang.key, lang.name, *(v or "-" for v in (
                lang.iso639_1, lang.iso639_3, lang.ntrex, lang.xcopa, lang.xwinograd, lang.langid)))
        console.print(table)


toy_app = typer.Typer(help="Small multilingual models trained from real text (the project's fixtures).",
                      no_args_is_help=True)
app.add_typer(toy_app, name="toy")


@toy_app.command("train")
def toy_train(
    recipe: str = typer.Argument(..., help="main (about 30 min on 2 cores), small (a few minutes) or culture."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder to write (default: the cache, reused if there)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a toy model (tokenizer + Llama) from NTREX-128 and FLORES-200, held out by sentence id."""
    from neurospec.toy import RECIPES, ensure_toy, read_report, toy_folder, train_toy

    with user_errors():
        if recipe not in RECIPES:
            raise NeurospecError(f"unknown recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
        with writing(out or toy_folder(recipe), "neurospec toy train", file=True):  # the folder is replaced whole
            folder = train_toy(RECIPES[recipe], out, quiet=quiet) if out else ensure_toy(recipe, quiet=quiet)
        report = read_report(folder)
        console.print(f"{escape(str(folder))}: {report['parameters']:,} parameters, {report['weights_sha256']}")
        table = Table("language", "held-out loss (nats/token)")
        for language, loss in report["heldout_loss"].items():
            table.add_row(language, f"{loss:.3f}")
        console.print(table)


@toy_app.command("blend-accuracy")
def toy_blend_accuracy(
    model: Path = typer.Argument(..., exists=True, file_okay=False, help="A model folder (the culture toy)."),
    per_country: int = typer.Option(300, "--per-country", min=1, help="Items sampled per country."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the table as JSON."),
) -> None:
    """BLEnD multiple-choice accuracy per country (log-likelihood), with 95% Wilson intervals."""
    from neurospec.util.io import atomic_write_json
    from neurospec.core.models import load_model
    from neurospec.toy import blend_accuracy

    with user_errors(), writing(out, "neurospec toy blend-accuracy", file=True):
        lm = load_model(model)
        table_data = blend_accuracy(lm.model, lm.tokenizer, per_country=per_country)
        table = Table("country", "accuracy", "95% interval", "n", "chance", "above chance")
        for group, row in table_data.items():
            table.add_row(group, f"{row['accuracy']:.3f}", f"{row['ci95'][0]:.3f}-{row['ci95'][1]:.3f}", str(row["n"]),
                          f"{row['chance']:.2f}", "yes" if row["above_chance"] else "no")
        console.print(table)
        if out:
            atomic_write_json(out, {"model": str(model), "per_country": per_country, "accuracy": table_data})


# --------------------------------------------------------------------------------------------
# neurospec collect / select / stats


class Mode(str, Enum):
    packed = "packed"
    sentence = "sentence"


def _rank_device(device: Optional[str]) -> Optional[str]:
    """Under torchrun each process takes the GPU of its LOCAL_RANK unless a device was given."""
    import os

    import torch

    if device is None and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


def corpora_from_options(corpus: list[str], corpus_dir: Optional[Path], languages: Optional[str], text_field: str,
                         split: Optional[str]) -> list:
    """The corpora named by ``--corpus LANG=PATH`` (repeatable) and ``--corpus-dir`` (with ``--languages``)."""
    from neurospec.data.corpora import corpora_in_directory, parse_corpus_option

    corpora = [parse_corpus_option(value, text_field=text_field, split=split) for value in corpus]
    if corpus_dir is not None:
        corpora += corpora_in_directory(corpus_dir, _split_names(languages), text_field=text_field, split=split)
    if not corpora:
        raise NeurospecError("no corpus: give --corpus LANGUAGE=PATH (repeatable) or --corpus-dir FOLDER")
    return corpora


@app.command("collect")
def collect_command(
    model: str = typer.Option(..., "--model", help="Hub id or local folder of the model."),
    corpus: list[str] = typer.Option([], "--corpus", help="LANGUAGE=PATH (repeatable): a text, .jsonl or .tsv file, an "
                                     "NTREX-128 or SIB-200 folder, or hf:NAME[:CONFIG][@SPLIT]."),
    corpus_dir: Optional[Path] = typer.Option(None, "--corpus-dir", help="Every language of a folder (LANG.txt files, "
                                              "or an NTREX-128 / SIB-200 folder) or data set (ntrex128, flores)."),
    languages: Optional[str] = typer.Option(None, "--languages", help="With --corpus-dir: only these, e.g. en,fr,zh."),
    out: Path = typer.Option(..., "--out", help="Statistics folder to write."),
    site: str = typer.Option("act", "--site", help="Neuron site: act, down_in, gate_pre, up_pre, q, k, v."),
    mode: Mode = typer.Option(Mode.packed, "--mode", help="packed rows (LAPE) or one sentence per row (amplification)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="Counted tokens per language (default all)."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", min=1, help="Row length (default min(max_position, 4096); "
                                          "512 in sentence mode)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Rows per forward call."),
    sample_sentences: int = typer.Option(100, "--sample-sentences", min=0, help="Sentence mode: per-sentence means kept "
                                         "for the first K sentences (p_max / p_median)."),
    no_pack: bool = typer.Option(False, "--no-pack", help="Sentence mode: one padded sentence per row."),
    no_bos: bool = typer.Option(False, "--no-bos", help="Sentence mode: no BOS / special tokens before each sentence "
                                "(the amplification reference's tokenisation; Gemma degrades without BOS)."),
    checkpoint_every: int = typer.Option(10_000_000, "--checkpoint-every", min=1, help="Tokens between checkpoints."),
    resume: bool = typer.Option(False, "--resume", help="Continue an unfinished --out folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    text_field: str = typer.Option("text", "--text-field", help="Field of JSONL / HF records holding the text."),
    split: Optional[str] = typer.Option(None, "--split", help="SIB-200 split (train, dev, test) or HF split."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (fp32 on CPU, the checkpoint's elsewhere), float32, bfloat16..."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if available)."),
    device_map: Optional[str] = typer.Option(None, "--device-map", help="auto: spread a large model over all GPUs."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run code from the model's repository."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Activation statistics per language (counts of value > 0, sums, squares, max; per-sentence sample)."""
    from neurospec.measure.collect import CollectOptions, check_length, collect
    from neurospec.core.models import load_model

    with user_errors(), writing(out, "neurospec collect"):
        corpora = corpora_from_options(corpus, corpus_dir, languages, text_field, split)
        options = CollectOptions(site=site, mode=mode.value, seq_len=seq_len, max_tokens=max_tokens,
                                 batch_size=batch_size, sample_sentences=sample_sentences, pack_sentences=not no_pack,
                                 bos=not no_bos, checkpoint_every=checkpoint_every)
        options.check()
        lm = load_model(model, dtype=dtype, device=_rank_device(device), device_map=device_map,
                        trust_remote_code=trust_remote_code)
        check_length(lm.model, seq_len, "--seq-len")
        stats = collect(lm.model, lm.tokenizer, corpora, out, options, resume=resume, overwrite=overwrite, quiet=quiet)
        if os.environ.get("RANK", "0") == "0":  # under torchrun one process writes
            _stamped(out, lm.model, "stats.json")
        if not quiet:
            console.print(_stats_table(stats))


def _stats_table(stats) -> Table:
    probabilities = stats.probabilities()
    table = Table(title=escape(f"{stats.path}: site {stats.site}, {stats.num_layers} layers x {stats.width} neurons"))
    for column in ("language", "tokens", "sentences", "mean P(>0)", "mean value", "sample"):
        table.add_column(column, justify="left" if column == "language" else "right")
    for g, language in enumerate(stats.languages):
        sample = "-"
        if language in stats.sample_files:
            sample = str(stats.sentence_means(language).shape[0])
        table.add_row(language, f"{int(stats.tokens[g]):,}", f"{stats.sentences.get(language, 0):,}",
                      f"{float(probabilities[g].mean()):.4f}", f"{float(stats.mean()[g].mean()):.4f}", sample)
    return table


stats_app = typer.Typer(help="Inspect activation statistics folders.", no_args_is_help=True)
app.add_typer(stats_app, name="stats")


@stats_app.command("show")
def stats_show(
    folder: Path = typer.Argument(..., help="A folder written by `neurospec collect`."),
    as_json: bool = typer.Option(False, "--json", help="Print stats.json (model, corpora, options, tokens)."),
) -> None:
    """Tokens, sentences and activation rates per language; model, site and options."""
    from neurospec.measure.stats import ActivationStats

    with user_errors():
        meta = ActivationStats.read_meta(folder)
        if as_json:
            typer.echo(json_text(meta), nl=False)
            return
        if not meta.get("complete"):
            console.print(f"[yellow]unfinished collection (checkpoint at {meta.get('progress')}); "
                          "finish it with `neurospec collect ... --resume`[/]")
            return
        stats = ActivationStats.load(folder)
        console.print(escape(f"model {stats.model.get('model_id') or 'unknown'} ({stats.model.get('model_type')}), "
                             f"mode {stats.options.get('mode')}, rows of {stats.options.get('seq_len')} tokens"))
        console.print(_stats_table(stats))


select_app = typer.Typer(help="Select neurons from activation statistics.", no_args_is_help=True)
app.add_typer(select_app, name="select")

_STATS = typer.Option(..., "--stats", help="A folder written by `neurospec collect`.")
_OUT = typer.Option(..., "--out", help="NeuronSet JSON file to write.")
_LANGUAGES = typer.Option(None, "--languages", help="Only these languages of the statistics, e.g. en,fr,zh.")


def _not_an_input(out: Path, out_option: str, inputs: dict[str, Optional[Path]]) -> None:
    """Refuse an output file that is one of the command's input files (``{option: path}``): writing it would
    destroy that input."""
    for option, path in inputs.items():
        if path is not None and os.path.realpath(out) == os.path.realpath(path):
            raise NeurospecError(f"{out_option} {out} is the {option} file: writing it would overwrite that input; "
                                 f"choose another {out_option}")


def _write_selection(neurons, out: Path) -> None:
    """Save a selection, print its counts, and warn (one line) about groups left without neurons."""
    from neurospec.interventions.targets import empty_reason, summary_reason

    neurons.meta.source = {**neurons.meta.source, "provenance": _provenance()}
    neurons.save(out)
    console.print(escape(f"{out}: " + _header(neurons).split(": ", 1)[1]), soft_wrap=True)
    console.print(_counts_table(neurons))
    empty = [group for group in neurons.groups if neurons.is_empty(group)]
    if empty:
        reason = summary_reason({group: empty_reason(neurons, group) for group in empty}, "in its meta params")
        warnings.warn(f"{out}: {', '.join(empty)}: {reason}; the evaluation verbs will skip them", EmptyGroupWarning)


def _check_rates(rates: dict) -> None:
    """Each ``{flag: value}`` a rate in (0, 1], as LAPE needs, checked before anything is read."""
    for flag, value in rates.items():
        if not 0 < value <= 1:   # NaN fails too
            raise NeurospecError(f"{flag} {value!r} is not a rate in (0, 1]: give a number such as 0.95")


def _load_stats(folder: Path):
    from neurospec.measure.stats import ActivationStats

    return ActivationStats.load(folder)


@select_app.command("lape")
def select_lape_command(
    stats: Path = _STATS,
    out: Path = _OUT,
    top_rate: float = typer.Option(0.01, "--top-rate", help="Share of all neurons kept (lowest entropy), over all layers."),
    filter_rate: float = typer.Option(0.95, "--filter-rate", help="Quantile of all probabilities a neuron must exceed."),
    bar_rate: float = typer.Option(0.95, "--bar-rate", help="Quantile a language's probability must exceed to be assigned."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Instead: the k lowest-entropy neurons per language."),
    languages: Optional[str] = _LANGUAGES,
) -> None:
    """LAPE (Tang et al., 2024): language-specific neurons by activation-probability entropy."""
    from neurospec.select import select_lape, select_lape_top_k

    with user_errors(), writing(out, "neurospec select lape", file=True):
        _check_rates({"--filter-rate": filter_rate, "--bar-rate": bar_rate, **({} if top_k else {"--top-rate": top_rate})})
        data, names = _load_stats(stats), _split_names(languages)
        if top_k is not None:
            neurons = select_lape_top_k(data, top_k, filter_rate=filter_rate, activation_bar_ratio=bar_rate, languages=names)
        else:
            neurons = select_lape(data, top_rate=top_rate, filter_rate=filter_rate, activation_bar_ratio=bar_rate,
                                  languages=names)
        _write_selection(neurons, out)


@select_app.command("all-active")
def select_all_active_command(stats: Path = _STATS, out: Path = _OUT, languages: Optional[str] = _LANGUAGES) -> None:
    """Neurons whose per-sentence mean is > 0 in every sampled sentence (Rahmanisa et al.'s baseline)."""
    from neurospec.select import select_active_in_all_sentences

    with user_errors(), writing(out, "neurospec select all-active", file=True):
        _write_selection(select_active_in_all_sentences(_load_stats(stats), languages=_split_names(languages)), out)


@select_app.command("top-mean")
def select_top_mean_command(
    stats: Path = _STATS, out: Path = _OUT, k: int = typer.Option(..., "--k", min=1, help="Neurons per language."),
    languages: Optional[str] = _LANGUAGES,
) -> None:
    """The k neurons with the highest mean per-sentence activation, per language."""
    from neurospec.select import select_top_mean

    with user_errors(), writing(out, "neurospec select top-mean", file=True):
        _write_selection(select_top_mean(_load_stats(stats), k, languages=_split_names(languages)), out)


@select_app.command("random")
def select_random_command(
    like: Path = typer.Option(..., "--like", exists=True, dir_okay=False, help="NeuronSet whose sizes to match."),
    out: Path = _OUT,
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    exclude: bool = typer.Option(False, "--exclude", help="Never draw a neuron of --like."),
) -> None:
    """A random set with as many neurons as --like in every group, site and layer."""
    from neurospec.neurons.neuron_set import NeuronSet
    from neurospec.select import select_random

    with user_errors(), writing(out, "neurospec select random", file=True):
        _not_an_input(out, "--out", {"--like": like})
        _write_selection(select_random(NeuronSet.load(like), seed=seed, exclude=exclude), out)


from neurospec.cli import evaluate as cli_evaluate  # noqa: E402,F401  registers ppl, steer, lss, sweep, eval
from neurospec.cli import culture as cli_culture  # noqa: E402,F401  registers attribute, select culture, mask-eval, finetune
from neurospec.cli import study as cli_study  # noqa: E402,F401  registers run, report
from neurospec.cli import data as cli_data  # noqa: E402,F401  registers data list, data fetch

if __name__ == "__main__":  # python -m neurospec.cli.main (torchrun -m neurospec.cli.main ...)
    from neurospec.cli.main import app as registered  # the imported module's app: the verbs above registered on it

    registered()
