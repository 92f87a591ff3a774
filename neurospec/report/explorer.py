"""The neuron explorer: one self-contained HTML page per group of a neuron set, from the top contexts a statistics
folder of the same run keeps (``neurospec collect ... --top-contexts K``).

    from neurospec.report.discover import discover
    from neurospec.report.explorer import build_explorer
    explorer = build_explorer(discover("runs/study"))
    [page.name for page in explorer.pages]          # ["explorer/fra-latn.html", "explorer/fra-latn-2.html", ...]
    explorer.tables["lape.json"]                    # the link table the neuron set's section shows

A neuron set is paired with the statistics folder it was selected from: the one whose tensor fingerprints its meta
records (``data_fingerprint``, ``params.data_files``), else the folder its ``source.stats`` names, else the only
complete statistics folder of the same model id and shape. Random baselines get no pages.

Each group page shows the group as a whole (:func:`neurospec.measure.explain.explain_group`: the mean activation
probability per language over its neurons, as CSS bars, and its top tokens per language with counts), then its
neurons in layer order, each inside a closed ``<details>`` element (the browser lays out only what is opened): layer,
index, site, the groups it belongs to, its P(value > 0) per language as bars and its top contexts per language, the
token in ``<mark>``. A page holds at most :data:`PAGE_NEURONS` neurons; further ones go to ``<group>-2.html``, ...
Every text is escaped; numbers carry their exact value in ``data-value``; the page loads nothing from anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Sequence

from neurospec.measure.contexts import TopContexts
from neurospec.measure.explain import RememberedContexts, explain_group, group_members
from neurospec.measure.stats import ActivationStats
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.report.content import Table, label, link, number, text
from neurospec.report.discover import Artifact, Discovery
from neurospec.report.fields import ReportError
from neurospec.report.sections.neurons import is_random
from neurospec.util.errors import NeurospecError

PAGE_NEURONS = 500  # neurons per explorer page; a larger group continues on <group>-2.html, <group>-3.html, ...
TOP_TOKENS = 10  # top tokens per language in a group's header
EXPLORER_DIR = "explorer"  # the pages' folder beside report.html
MAIN_PAGE = "../report.html"  # the report, seen from a page
BAR_PX = 160  # a bar's length at P = 1
HOW_TO = ("collect the statistics with `neurospec collect ... --top-contexts K` into this run folder to get one "
          "explorer page per group (its neurons' activation probability per language and top contexts)")

CSS = """
* { box-sizing: border-box; }
body { margin: 0; color: #1d232a; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
.wrap { max-width: 1280px; margin: 0 auto; padding: 0 1.5rem; }
header { background: #f4f6f8; border-bottom: 1px solid #d9dee3; padding: 1rem 0 0.6rem; }
h1 { font-size: 1.5rem; margin: 0 0 0.4rem; } h2 { font-size: 1.2rem; margin: 1.2rem 0 0.4rem; }
a { color: #1f5f99; } p.note { color: #5b6570; } nav.pages a, nav.pages b { margin-right: 0.5rem; }
table { border-collapse: collapse; font-size: 0.82rem; margin: 0.3rem 0; }
th, td { border: 1px solid #d9dee3; padding: 0.15rem 0.45rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.bar { width: """ + str(BAR_PX + 12) + """px; }
td.bar span { display: block; height: 0.75em; background: #1f5f99; min-width: 1px; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.88em; background: #f4f6f8; white-space: pre; }
details.neuron { border-bottom: 1px solid #d9dee3; padding: 0.25rem 0; }
details.neuron > summary { cursor: pointer; }
details.neuron[open] > summary { font-weight: 600; }
.neuron-body { display: flex; flex-wrap: wrap; gap: 0.5rem 2rem; padding: 0.4rem 0 0.6rem 1rem; }
.contexts { flex: 1 1 36rem; min-width: 0; }
ol.ctx { margin: 0.1rem 0 0.5rem; padding-left: 1.6rem; }
ol.ctx li { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.82rem; white-space: pre-wrap;
            overflow-wrap: anywhere; }
ol.ctx .v { color: #5b6570; }
mark { background: #ffd54f; color: inherit; padding: 0 0.1em; }
h4 { margin: 0.3rem 0 0; font-size: 0.88rem; }
"""


@dataclass(frozen=True)
class ExplorerPage:
    """One written page: ``name`` relative to the report folder (``explorer/<slug>.html``) and its HTML."""

    name: str
    html: str


@dataclass
class Explorer:
    """The explorer of a run: its pages, and per neuron-set artifact label the link table and notes its section
    shows."""

    pages: list[ExplorerPage] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Pairing:
    """A neuron set, its artifact, and the statistics artifact it was selected from (None when none is found)."""

    neurons: NeuronSet
    artifact: Artifact
    stats: Artifact | None


def build_explorer(found: Discovery) -> Explorer:
    """Render every group page of every neuron set whose statistics keep top contexts (nothing is written)."""
    explorer = Explorer()
    used: set[str] = set()
    for pairing in pairings(found):
        label_ = pairing.artifact.label
        if pairing.stats is None:
            explorer.notes[label_] = [f"Neuron explorer: no complete statistics folder of this neuron set's model is "
                                      f"in the run; {HOW_TO}."]
        elif not pairing.stats.data.get("context_files"):
            explorer.notes[label_] = [f"Neuron explorer: the statistics '{pairing.stats.label}' keep no top "
                                      f"contexts; {HOW_TO}."]
        else:
            pages, table = explore(pairing, used)
            explorer.pages += pages
            explorer.tables[label_] = table
    return explorer


def pairings(found: Discovery) -> list[Pairing]:
    """Each neuron set of the run that is no random baseline, with its statistics artifact (see the module
    docstring)."""
    stats = [a for a in found.artifacts if a.kind == "stats" and a.data.get("complete") is True]
    paired = []
    for artifact in found.artifacts:
        if artifact.kind != "neurons":
            continue
        try:
            neurons = NeuronSet.load(artifact.path)
        except NeurospecError as err:
            raise ReportError(f"{err} (artifact '{artifact.label}'; {artifact.fix})") from None
        if not is_random(neurons) and neurons.groups:
            paired.append(Pairing(neurons, artifact, matching_stats(neurons, stats, found.run_dir)))
    return paired


def matching_stats(neurons: NeuronSet, candidates: Sequence[Artifact], run_dir: Path) -> Artifact | None:
    """The statistics artifact ``neurons`` was selected from: by recorded fingerprints, by the recorded folder, or
    the only one of the same model id and shape; those keeping contexts first."""
    meta = neurons.meta
    rules = (lambda a: _same_files(meta, a), lambda a: _same_folder(meta, a, run_dir))
    for rule in rules:
        hits = [a for a in candidates if rule(a)]
        if hits:
            return sorted(hits, key=lambda a: (not a.data.get("context_files"), a.label))[0]
    same_model = [a for a in candidates if meta.model_id and (a.data.get("model") or {}).get("model_id") == meta.model_id
                  and a.data.get("num_layers") == neurons.num_layers
                  and meta.widths.get(str(a.data.get("site"))) in (None, a.data.get("width"))]
    return same_model[0] if len(same_model) == 1 else None


def _same_files(meta, artifact: Artifact) -> bool:
    files = artifact.data.get("files") if isinstance(artifact.data.get("files"), dict) else {}
    recorded = meta.params.get("data_files") if isinstance(meta.params.get("data_files"), dict) else None
    if recorded:
        return all(files.get(name) == value for name, value in recorded.items())
    return bool(meta.data_fingerprint) and meta.data_fingerprint in files.values()


def _same_folder(meta, artifact: Artifact, run_dir: Path) -> bool:
    source = meta.source.get("stats") if isinstance(meta.source, dict) else None
    if not isinstance(source, str) or not source:
        return False
    folder = artifact.path.parent.resolve()
    try:
        return folder in {Path(source).resolve(), (run_dir / source).resolve()}
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# one neuron set's pages


def explore(pairing: Pairing, used: set[str]) -> tuple[list[ExplorerPage], Table]:
    """The pages of every group of one neuron set and the table linking them."""
    folder = pairing.stats.path.parent
    try:
        statistics = ActivationStats.load(folder)
        contexts = RememberedContexts(TopContexts.load(folder))
    except NeurospecError as err:
        raise ReportError(f"{err} (artifact '{pairing.stats.label}'; {pairing.stats.fix})") from None
    neurons = pairing.neurons
    members = group_members(neurons, statistics.site)
    belongs: dict[tuple[int, int], list[str]] = {}
    for group in neurons.groups:
        for key in members[group]:
            belongs.setdefault(key, []).append(group)
    probabilities = statistics.probabilities().numpy()
    table = Table("explorer", f"Neuron explorer: one page per group ({statistics.site} neurons, contexts from "
                              f"{pairing.stats.label})", ["group", "neurons", "page", "pages"],
                  note=f"At most {PAGE_NEURONS} neurons a page; each page links the group's others.")
    pages: list[ExplorerPage] = []
    for group in neurons.groups:
        found = members[group]
        if not found:
            table.add(label(group), number(0), text(f"no neurons at {statistics.site}"), number(0))
            continue
        chunks = [found[i:i + PAGE_NEURONS] for i in range(0, len(found), PAGE_NEURONS)]
        names = page_names(group, pairing.artifact.label, len(chunks), used)
        summary = explain_group(neurons, statistics, group, TOP_TOKENS, contexts=contexts)
        view = GroupView(group, pairing.artifact.label, pairing.stats.label, statistics.site, statistics.languages,
                         summary, names, len(found))
        for number_, chunk in enumerate(chunks):
            rows = [NeuronView(layer, neuron, belongs[(layer, neuron)], probabilities[:, layer, neuron].tolist(),
                               {lang: contexts.neuron(lang, layer, neuron) for lang in contexts.languages})
                    for layer, neuron in chunk]
            pages.append(ExplorerPage(f"{EXPLORER_DIR}/{names[number_]}", render_group_page(view, number_, rows)))
        table.add(label(group), number(len(found)), link(names[0], f"{EXPLORER_DIR}/{names[0]}"),
                  number(len(chunks)))
    return pages, table


def slug(name: str) -> str:
    """``"fra_Latn"`` -> ``"fra-latn"``: lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "group"


def page_names(group: str, set_label: str, count: int, used: set[str]) -> list[str]:
    """``count`` file names for a group's pages (``<slug>.html``, ``<slug>-2.html``, ...), none already in ``used``:
    on a clash the neuron set's name goes first, then a number."""
    base = slug(group)
    candidates = [base, f"{slug(re.sub(r'[.]json$', '', set_label))}-{base}"]
    candidates += [f"{base}-g{n}" for n in range(2, 2 + len(used) + 2)]
    for candidate in candidates:
        names = [f"{candidate}.html"] + [f"{candidate}-{n}.html" for n in range(2, count + 1)]
        if not used & set(names):
            used.update(names)
            return names
    raise AssertionError("unreachable: a free name always exists")


# --------------------------------------------------------------------------------------------
# HTML


@dataclass(frozen=True)
class GroupView:
    """What every page of one group shows at its top."""

    group: str
    neuron_set: str
    stats: str
    site: str
    languages: list[str]
    summary: dict[str, Any]
    names: list[str]
    total: int


@dataclass(frozen=True)
class NeuronView:
    """One neuron on a page: where it is, its groups, P(value > 0) per language (stats order), its contexts."""

    layer: int
    neuron: int
    groups: list[str]
    probability: list[float]
    contexts: dict[str, list]


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _bar_row(name: str, value: float, extra: str = "") -> str:
    width = max(0.0, min(1.0, value)) * BAR_PX
    return (f'<tr data-language="{_e(name)}"><th scope="row">{_e(name)}</th><td class="bar"><span style="width:'
            f'{width:.1f}px"></span></td><td class="num" data-value="{value!r}">{value:.4f}</td>{extra}</tr>')


def render_group_page(view: GroupView, index: int, neurons: list[NeuronView]) -> str:
    """The HTML document of page ``index`` (from 0) of a group."""
    first = index * PAGE_NEURONS + 1
    title = f"Neuron explorer: {view.group}"
    parts = [f"<h1>{_e(title)}</h1>",
             f'<p class="note">Neuron set <code>{_e(view.neuron_set)}</code> \u00b7 statistics '
             f"<code>{_e(view.stats)}</code> \u00b7 site <b>{_e(view.site)}</b> \u00b7 {view.total} neurons \u00b7 "
             f'<a href="{MAIN_PAGE}">back to the report</a></p>', _page_links(view, index)]
    body = [_group_header(view),
            f'<h2>Neurons {first}\u2013{first + len(neurons) - 1} of {view.total} (layer order)</h2>',
            '<p class="note">Open a neuron for its activation probability per language and its top contexts (the '
            "token marked).</p>",
            '<div class="neurons">' + "\n".join(_neuron(view, n) for n in neurons) + "</div>",
            _page_links(view, index)]
    page_title = f"{title} ({view.neuron_set})" + (f", page {index + 1}" if len(view.names) > 1 else "")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<link rel=\"icon\" href=\"data:,\">\n<title>{_e(page_title)}</title>\n<style>{CSS}</style>\n</head>\n"
            f'<body data-group="{_e(view.group)}" data-page="{index + 1}">\n<header><div class="wrap">{"".join(parts)}'
            f'</div></header>\n<main class="wrap">\n{"".join(body)}\n</main>\n</body>\n</html>\n')


def _page_links(view: GroupView, index: int) -> str:
    if len(view.names) == 1:
        return ""
    links = [f"<b>{n + 1}</b>" if n == index else f'<a href="{_e(name)}">{n + 1}</a>'
             for n, name in enumerate(view.names)]
    return f'<nav class="pages">Pages ({PAGE_NEURONS} neurons each): {"".join(links)}</nav>'


def _group_header(view: GroupView) -> str:
    summary = view.summary
    rows = "".join(_bar_row(row["language"], row["probability"],
                            f'<td class="num" data-value="{row["top_for"]}">{row["top_for"]}</td>')
                   for row in summary["languages"])
    languages = ('<h2>Languages it fires on</h2><table class="group-languages"><thead><tr><th>language</th><th>mean '
                 "P(value &gt; 0)</th><th></th><th>neurons firing most here</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table><p class=\"note\">The mean over the group's {summary['neurons']} "
                 "neurons of the share of the language's tokens on which the neuron's value is above 0.</p>")
    token_rows = "".join(
        f'<tr data-language="{_e(lang)}"><th scope="row">{_e(lang)}</th><td>'
        + " ".join(f'<code class="tok" data-count="{t["count"]}">{_e(t["token"])}</code>\u00a0{t["count"]}'
                   for t in summary["tokens"].get(lang, [])) + "</td></tr>"
        for lang in view.languages if lang in summary["tokens"])
    tokens = (f"<h2>Top tokens</h2><table class=\"group-tokens\"><tbody>{token_rows}</tbody></table>"
              f'<p class="note">The {TOP_TOKENS} most frequent marked tokens among its neurons\' kept top contexts, per '
              "language, with their counts.</p>")
    return languages + tokens


def _neuron(view: GroupView, neuron: NeuronView) -> str:
    best = max(range(len(view.languages)), key=lambda g: neuron.probability[g]) if view.languages else None
    peak = (f" \u00b7 fires most on {_e(view.languages[best])} ({neuron.probability[best]:.3f})"
            if best is not None else "")
    bars = "".join(_bar_row(lang, value) for lang, value in zip(view.languages, neuron.probability))
    contexts = "".join(_contexts(lang, found) for lang, found in neuron.contexts.items())
    return (f'<details class="neuron" id="n-{neuron.layer}-{neuron.neuron}" data-layer="{neuron.layer}" '
            f'data-neuron="{neuron.neuron}"><summary>layer {neuron.layer} \u00b7 neuron {neuron.neuron} \u00b7 '
            f"{_e(view.site)} \u00b7 groups: {_e(', '.join(neuron.groups))}{peak}</summary>"
            f'<div class="neuron-body"><table class="probability"><thead><tr><th>language</th><th>P(value &gt; 0)'
            f'</th><th></th></tr></thead><tbody>{bars}</tbody></table><div class="contexts">{contexts}</div></div>'
            "</details>")


def _contexts(language: str, found: list) -> str:
    if not found:
        return f'<h4>{_e(language)}</h4><p class="note">no context kept</p>'
    items = "".join(f'<li data-value="{c.value!r}"><span class="v">{c.value:.3f}</span>  {_e(c.left)}'
                    f"<mark>{_e(c.token)}</mark>{_e(c.right)}</li>" for c in found)
    return f'<h4>{_e(language)}</h4><ol class="ctx" data-language="{_e(language)}">{items}</ol>'
