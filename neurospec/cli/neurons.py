"""The neuron-file verbs of the ``neurospec`` command, and the small look-up verbs.

    neurospec neurons show lape.json                       # counts per group and site, per-layer histogram
    neurospec neurons import LLaMA-2-7B.neuron.pth --groups en,zh,fr,es,vi,id,ja --model meta-llama/Llama-2-7b-hf --out lape.json
    neurospec neurons export lape.json --format lape-pth --out lape.neuron.pth
    neurospec sites --model M;  neurospec languages;  neurospec intervention check FILE;  neurospec toy train small
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from neurospec.cli.base import GROUP_COLOURS, VerbGroup, app, console, neurons_app, split_names, user_errors, warnings_after
from neurospec.measure.run_folder import writing
from neurospec.util.errors import NeurospecError
from neurospec.util.io import atomic_torch_save, json_text
from neurospec.verbs.base import check_not_an_input, one_group
from neurospec.verbs.measure import NeuronsImportOptions, neurons_import

# --------------------------------------------------------------------------------------------
# neurospec neurons show


def counts_table(neurons) -> Table:
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


def neuron_set_header(neurons) -> str:
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
    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="NeuronSet JSON file, or a LAPE .pth file (with --groups)."),
    groups: Optional[str] = typer.Option(None, "--groups", help="Names of a LAPE .pth file's lists, in order: en,zh,fr,..."),
    site: str = typer.Option("act", "--site", help="Site of a LAPE .pth file's neurons."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable counts (JSON) instead of tables."),
    bar_width: Optional[int] = typer.Option(None, "--bar-width", min=5, help="Width of the histogram bars."),
) -> None:
    """Counts per group and site, and a per-layer histogram."""
    from neurospec.neurons.formats import load_neuron_file

    with user_errors():
        neurons = load_neuron_file(file, groups=split_names(groups), site=site)
        if as_json:
            typer.echo(json_text(neurons.summary()), nl=False)
            return
        console.print(escape(neuron_set_header(neurons)), soft_wrap=True)
        console.print(counts_table(neurons))
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
    with user_errors(), warnings_after():
        neurons = neurons_import(NeuronsImportOptions(**locals()))
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
            names = split_names(groups)
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


intervention_app = typer.Typer(cls=VerbGroup, help="Write and check intervention files.", no_args_is_help=True)
app.add_typer(intervention_app, name="intervention")


@intervention_app.command("check")
def check_intervention(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="An intervention JSON file."),
    model: str = typer.Option(..., "--model", help="Hub id or local folder to check it against (config only)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run code from the model's repository."),
) -> None:
    """Load an intervention file and every file it names, and check them against a model."""
    from neurospec.core.models import empty_model
    from neurospec.interventions.files import InterventionSpec

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
    groups: str = typer.Option(..., "--groups", help="The group whose neurons are edited (one), e.g. fr."),
    recipe: str = typer.Option(..., "--recipe", help="zero, scale*2, set:p_max, set:p_median*2, add:runtime:max..."),
    out: Path = typer.Option(..., "--out", help="Intervention JSON file to write."),
    stats: Optional[Path] = typer.Option(None, "--stats", help="Statistics folder, for p_max / p_median / mean."),
) -> None:
    """Write an intervention file for one group and recipe (values go to OUT.values.safetensors)."""
    from neurospec.interventions.recipes import Recipe, write_intervention
    from neurospec.measure.stats import ActivationStats

    with user_errors(), writing(out, "neurospec intervention make", file=True):
        chosen = Recipe.parse(recipe, "--recipe")
        check_not_an_input(out, "--out", {"--neurons": neurons})
        group = one_group(groups, "an intervention file is made for one group")
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


toy_app = typer.Typer(cls=VerbGroup, help="Small multilingual models trained from real text (the project's fixtures).",
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
    limit: int = typer.Option(300, "--limit", min=1, help="Items sampled per country."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the table as JSON."),
) -> None:
    """BLEnD multiple-choice accuracy per country (log-likelihood), with 95% Wilson intervals."""
    from neurospec.core.models import load_model
    from neurospec.toy import blend_accuracy
    from neurospec.util.io import atomic_write_json

    with user_errors(), writing(out, "neurospec toy blend-accuracy", file=True):
        lm = load_model(model)
        table_data = blend_accuracy(lm.model, lm.tokenizer, per_country=limit)
        table = Table("country", "accuracy", "95% interval", "n", "chance", "above chance")
        for group, row in table_data.items():
            table.add_row(group, f"{row['accuracy']:.3f}", f"{row['ci95'][0]:.3f}-{row['ci95'][1]:.3f}", str(row["n"]),
                          f"{row['chance']:.2f}", "yes" if row["above_chance"] else "no")
        console.print(table)
        if out:
            atomic_write_json(out, {"model": str(model), "per_country": limit, "accuracy": table_data})


@app.command("explain")
def explain(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="NeuronSet JSON file (neurospec select ...)."),
    stats: Optional[Path] = typer.Option(None, "--stats", exists=True, file_okay=False, help="Statistics folder of "
                                         "the same model (collect --top-contexts K for the contexts)."),
    attribution: Optional[Path] = typer.Option(None, "--attribution", exists=True, file_okay=False, help="Instead of "
                                               "--stats, for culture neurons (select culture): the attribution run "
                                               "on BLEnD (attribute --top-items K for the top items)."),
    items: int = typer.Option(3, "--items", min=0, help="With --attribution: top items shown per neuron and country."),
    groups: Optional[str] = typer.Option(None, "--groups", help="Only these groups (any language or country name)."),
    limit: int = typer.Option(5, "--limit", min=1, help="Neurons shown per group (in layer order)."),
    contexts: int = typer.Option(3, "--contexts", min=0, help="Top contexts shown per neuron and language."),
    summary: bool = typer.Option(False, "--summary", help="Each group (of --groups, or every group) as a whole "
                                 "instead: the languages it fires on and its top tokens per language."),
    tokens: int = typer.Option(10, "--tokens", min=1, help="With --summary: top tokens shown per language."),
    as_json: bool = typer.Option(False, "--json", help="Print the explanation as JSON."),
) -> None:
    """Why each neuron was selected: its activation probability per language, its groups and its top contexts;
    with --summary, each group as a whole."""
    from neurospec.measure.explain import explain_group, explain_neurons
    from neurospec.neurons.neuron_set import NeuronSet

    with user_errors():
        if (stats is None) == (attribution is None):
            raise NeurospecError("give --stats S (language neurons) or --attribution RUN (culture neurons), one of them")
        if attribution is not None:
            explain_culture(file, attribution, groups, limit, items, as_json, summary)
            return
        if summary:
            chosen = split_names(groups) or NeuronSet.load(file).groups
            summaries = [explain_group(file, stats, group, top_tokens=tokens) for group in chosen]
            if as_json:
                console.print(json_text({"groups": summaries}), soft_wrap=True, markup=False)
            for found in [] if as_json else summaries:
                print_group(found, stats)
            return
        explained = explain_neurons(file, stats, split_names(groups), limit=limit, contexts=contexts)
        show_explained(explained, as_json, print_explained, explained["languages"], None if explained["has_contexts"]
                       else f"{stats} keeps no top contexts: collect with --top-contexts K to see them")


def show_explained(explained: dict, as_json: bool, print_neuron, labels: list[str], missing: str | None) -> None:
    """``explained`` as JSON, or each neuron with ``print_neuron(neuron, labels)`` and then the ``missing`` hint."""
    if as_json:
        console.print(json_text(explained), soft_wrap=True, markup=False)
        return
    for neuron in explained["neurons"]:
        print_neuron(neuron, labels)
    if missing:
        console.print(escape(missing))


def print_explained(neuron: dict, languages: list[str]) -> None:
    """One neuron: a header, its activation probability per language, its top contexts (the token marked)."""
    console.print(Text(f"{neuron['group']}  layer {neuron['layer']}  neuron {neuron['neuron']}  ({neuron['site']}; "
                       f"groups: {', '.join(neuron['groups'])})", style="bold"))
    table = Table("language", "P(>0)", "top contexts", show_edge=False)
    for language in languages:
        shown = Text()
        for i, context in enumerate(neuron["contexts"].get(language, [])):
            shown.append(("\n" if i else "") + f"{context['value']:.3f}  {context['left']}")
            shown.append(context["token"], style="bold reverse")
            shown.append(context["right"])
        table.add_row(language, f"{neuron['probability'][language]:.4f}", shown)
    console.print(table)


def print_group(summary: dict, stats: Path) -> None:
    """A group as a whole: per language its neurons' mean P(>0), how many fire most there, its top tokens."""
    console.print(Text(f"{summary['group']}  {summary['neurons']} neurons at {summary['site']}", style="bold"))
    table = Table("language", "mean P(>0)", "top for", "top tokens (count)", show_edge=False)
    for row in summary["languages"]:
        shown = Text()
        for i, found in enumerate(summary["tokens"].get(row["language"], [])):
            shown.append(", " if i else "")
            shown.append(found["token"], style="bold reverse")
            shown.append(f" {found['count']}")
        table.add_row(row["language"], f"{row['probability']:.4f}", str(row["top_for"]), shown)
    console.print(table)
    if not summary["has_contexts"]:
        console.print(escape(f"{stats} keeps no top contexts: collect with --top-contexts K to see top tokens"))


def explain_culture(file: Path, attribution: Path, groups: Optional[str], limit: int, items: int, as_json: bool,
                    summary: bool) -> None:
    """``explain NEURONS --attribution RUN``: each culture neuron's score per country and its top items there."""
    from neurospec.measure.explain import explain_culture_neurons

    if summary:
        raise NeurospecError("--summary reads activation statistics: give it with --stats, not --attribution")
    explained = explain_culture_neurons(file, attribution, split_names(groups), limit=limit, items=items)
    show_explained(explained, as_json, print_culture_neuron, explained["countries"], None if explained["has_top_items"]
                   else f"{attribution} keeps no top items: attribute with --top-items K to see them")


def print_culture_neuron(neuron: dict, countries: list[str]) -> None:
    """One culture neuron: a header, its score per example in each country, its top items there."""
    console.print(Text(f"{neuron['group']}  layer {neuron['layer']}  neuron {neuron['neuron']}  ({neuron['site']}; "
                       f"groups: {', '.join(neuron['groups'])})", style="bold"))
    table = Table("country", "score per example", "top items (score  id  question)", show_edge=False)
    for country in countries:
        score = neuron["score"][country]
        shown = "\n".join(f"{item['score']:.3e}  {item['item_id']}  {item['question']}"
                          for item in neuron["items"].get(country, []))
        table.add_row(country, "-" if score is None else f"{score:.3e}", Text(shown))
    console.print(table)
