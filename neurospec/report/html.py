"""The report page as one self-contained HTML document: inline CSS, figures as SVG data: URIs, no script.

    from neurospec.report.html import render
    text = render(page)                   # a Page from neurospec.report.page.build_page

Every table is ``<table data-artifact="<artifact label>" data-table="<id>">``; every numeric cell
is ``<td data-value="<repr of the exact number>">shown text</td>``, so the page can be checked
against the JSON it was drawn from. All text is escaped; the page loads nothing from anywhere. Each figure
links its 200-dpi PNG file (``figures/<slug>.png``, beside the page). The layout is responsive: figures
shrink to the page's width and wide tables scroll inside their own box, so nothing runs off a narrow window.
"""

from __future__ import annotations

import base64
from html import escape

from neurospec.report.content import Cell, Figure, Section, Table
from neurospec.report.discover import FORMATS
from neurospec.report.page import Page
from neurospec.report.plots import PNG_DPI

OPEN_ROWS = 30  # longer tables start folded (a <details> element, no script needed)

CSS = """
:root { --ink: #1d232a; --muted: #5b6570; --line: #d9dee3; --soft: #f4f6f8; --accent: #1f5f99; --warn: #9a3b00; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; font: 15px/1.5 system-ui, -apple-system, "Segoe UI",
       Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { background: var(--soft); border-bottom: 1px solid var(--line); padding: 1.2rem 0 0.8rem; }
.wrap { max-width: 1280px; margin: 0 auto; padding: 0 1.5rem; }
@media (max-width: 700px) { .wrap { padding: 0 0.8rem; } body { font-size: 14px; } }
h1 { font-size: 1.6rem; margin: 0 0 0.6rem; }
h2 { font-size: 1.3rem; margin: 0 0 0.3rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 0.4rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em;
       background: var(--soft); padding: 0.05em 0.3em; border-radius: 3px; overflow-wrap: anywhere; }
main, section, .block, figure, details { min-width: 0; max-width: 100%; }
p, li, dd, summary, figcaption { overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; margin: 0.5rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; min-width: 0; }
dl.facts dd[title] { text-decoration: underline dotted var(--muted); cursor: help; }
pre.config { background: #fff; border: 1px solid var(--line); padding: 0.6rem; overflow-x: auto; max-height: 24rem;
             font-size: 0.82rem; }
nav.toc { border-bottom: 1px solid var(--line); padding-top: 0.8rem; padding-bottom: 0.8rem; }
nav.toc ol { columns: 2 22rem; margin: 0.3rem 0 0; padding-left: 1.4rem; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
nav.toc .kind { color: var(--muted); font-size: 0.85em; }
section.artifact { border-bottom: 1px solid var(--line); padding: 1.4rem 0; }
section.artifact[data-kind="model"] { border-top: 3px solid var(--accent); margin-top: 1rem; }
section.artifact[data-kind="model"] > h2, section.artifact[data-kind="compare"] > h2 { font-size: 1.5rem; }
p.source { color: var(--muted); margin: 0 0 0.4rem; }
p.note { color: var(--muted); }
p.warning { color: var(--warn); font-weight: 600; }
p.outcome { background: #fbe9e7; border-left: 4px solid var(--warn); color: var(--warn); font-weight: 700;
  padding: .6rem .9rem; }
td.status.failed, td.status.interrupted { color: var(--warn); font-weight: 700; }
td.status.not { color: var(--muted); }
p.empty { font-size: 1.1rem; padding: 2rem 0; }
.block { display: flex; flex-wrap: wrap; align-items: flex-start; column-gap: 2rem; }
.block > .tables { flex: 1 1 100%; min-width: 0; max-width: 100%; }
.block > figure + .tables { flex: 0 1 auto; }  /* beside its figure when the tables fit there, else below */
figure + .tables summary, figure + .tables p.note { width: 0; min-width: 100%; }  /* the tables set the width */
figure { margin: 1rem 0 0.5rem; flex: 0 1 auto; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
figcaption a { color: var(--accent); white-space: nowrap; }
figcaption { color: var(--muted); font-size: 0.88rem; margin-top: 0.3rem; max-width: 70rem; }
figcaption b { color: var(--ink); }
details.table { margin: 0.6rem 0 1rem; }
details.table > summary { cursor: pointer; color: var(--accent); font-size: 0.9rem; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.4rem 0; }
caption { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
th, td { border: 1px solid var(--line); padding: 0.2rem 0.45rem; white-space: nowrap; }
thead th { background: var(--soft); position: sticky; top: 0; }
tbody th { text-align: left; font-weight: 600; background: #fbfcfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.missing { color: var(--muted); text-align: center; }
footer { color: var(--muted); font-size: 0.85rem; padding: 1rem 0 2rem; }
"""


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _cell(cell: Cell) -> str:
    title = f' title="{_attr(cell.title)}"' if cell.title else ""
    if cell.header:
        return f'<th scope="row"{title}>{escape(cell.text)}</th>'
    if cell.numeric:
        return f'<td class="num" data-value="{_attr(repr(cell.value))}"{title}>{escape(cell.text)}</td>'
    css = ' class="missing"' if cell.text == "\u2014" else ""
    shown = f'<a href="{_attr(cell.href)}">{escape(cell.text)}</a>' if cell.href else escape(cell.text)
    return f"<td{css}{title}>{shown}</td>"


def render_table(table: Table, artifact: str) -> str:
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in table.columns)
    body = "\n".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in table.rows)
    html = (f'<div class="table-wrap"><table data-artifact="{_attr(artifact)}" data-table="{_attr(table.id)}">'
            f"<caption>{escape(table.caption)}</caption><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>"
            "</table></div>")
    if table.note:
        html += f'<p class="note">{escape(table.note)}</p>'
    opened = " open" if len(table.rows) <= OPEN_ROWS else ""
    return (f'<details class="table"{opened}><summary>Table: {escape(table.caption)} ({len(table.rows)} rows)'
            f"</summary>{html}</details>")


def render_figure(figure: Figure) -> str:
    """``<figure>``: the SVG as a data: URI at its page size (shrinking with the page), the caption, a link to
    the PNG file; a figure without SVG bytes shows its PNG."""
    kind, payload = ("svg+xml", figure.svg) if figure.svg else ("png", figure.png)
    data = base64.b64encode(payload).decode("ascii")
    return (f'<figure data-figure="{_attr(figure.slug)}" style="width: {figure.width}px; max-width: 100%">'
            f'<img src="data:image/{kind};base64,{data}" '
            f'width="{figure.width}" height="{figure.height}" alt="{_attr(figure.alt)}">'
            f"<figcaption><b>{escape(figure.title)}.</b> {escape(figure.caption)} "
            f'<a class="file" href="figures/{_attr(figure.slug)}.png">PNG, {PNG_DPI} dpi</a></figcaption></figure>')


def _facts(items: list[tuple[str, str] | tuple[str, str, str]]) -> str:
    """``<dl>`` of (label, value) pairs; a third element is the value's tooltip (its title attribute)."""
    if not items:
        return ""
    rows = []
    for label, value, *tooltip in items:
        title = f' title="{_attr(tooltip[0])}"' if tooltip and tooltip[0] else ""
        rows.append(f"<dt>{escape(label)}</dt><dd{title}>{escape(value)}</dd>")
    return f'<dl class="facts">{"".join(rows)}</dl>'


def render_section(section: Section) -> str:
    parts = [f'<section class="artifact" id="{_attr(section.anchor)}" data-kind="{_attr(section.kind)}" '
             f'data-artifact="{_attr(section.artifact)}">', f"<h2>{escape(section.title)}</h2>"]
    source = f"artifact <code>{escape(section.artifact)}</code>"
    if section.step:
        source += f" \u00b7 step <b>{escape(section.step)}</b>"
    parts.append(f'<p class="source">{source}</p>')
    parts.append(_facts(section.facts))
    parts += [f'<p class="warning">{escape(w)}</p>' for w in section.warnings]
    parts += [f'<p class="note">{escape(n)}</p>' for n in section.notes]
    for block in section.blocks:
        parts.append('<div class="block">')
        if block.figure is not None:
            parts.append(render_figure(block.figure))
        if block.tables:  # beside the figure where the page has room for both, else below it
            parts.append('<div class="tables">' + "".join(render_table(t, section.artifact) for t in block.tables)
                         + "</div>")
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _steps_table(page: Page) -> str:
    if not page.facts.steps:
        return ""
    rows = "".join(f"<tr><th scope=\"row\">{escape(name)}</th><td>{escape(verb)}</td><td><code>{escape(out)}</code>"
                   f"</td><td class=\"status {_attr(status.split()[0])}\">{escape(status)}</td>"
                   f"<td class=\"num\" data-value=\"{count!r}\">{count}</td></tr>"
                   for name, verb, out, status, count in page.facts.steps)
    return ('<h3>Pipeline steps (study.json)</h3><div class="table-wrap"><table data-artifact="study.json" '
            'data-table="steps"><caption>Steps in order, what the latest run did with each, and the artifacts '
            'found for each</caption><thead><tr><th scope="col">step</th><th scope="col">verb</th>'
            '<th scope="col">output</th><th scope="col">status</th>'
            f'<th scope="col">artifacts</th></tr></thead><tbody>{rows}</tbody></table></div>')


def _step_suffix(section: Section) -> str:
    return f" \u00b7 {escape(section.step)}" if section.step else ""


def render(page: Page) -> str:
    facts = page.facts
    header = [f"<h1>{escape(page.title)}</h1>"]
    if facts.outcome:
        header.append(f'<p class="outcome" role="alert">{escape(facts.outcome)}</p>')
    header.append(_facts(facts.items))
    if facts.config_text is not None:
        header.append(f"<details><summary>Configuration ({escape(facts.config_name or 'config')})</summary>"
                      f'<pre class="config">{escape(facts.config_text)}</pre></details>')
    header.append(_steps_table(page))
    if page.sections:
        items = "".join(f'<li><a href="#{_attr(s.anchor)}">{escape(s.title)}</a> <span class="kind">'
                        f"<code>{escape(s.artifact)}</code>{_step_suffix(s)}</span></li>" for s in page.sections)
        toc = f'<nav class="toc wrap" aria-label="Contents"><h2>Contents</h2><ol>{items}</ol></nav>'
        body = "\n".join(render_section(s) for s in page.sections)
    else:
        kinds = ", ".join(sorted(FORMATS))
        toc = ""
        body = ('<p class="empty">No neurospec artifact was found in this run folder. The report draws JSON files '
                f'whose "format" is one of: {escape(kinds)}.</p>')
    if page.skipped:
        rows = "".join(f"<li><code>{escape(label)}</code>: {escape(reason)}</li>" for label, reason in page.skipped)
        body += f'<section class="artifact" id="skipped"><h3>Files left out</h3><ul>{rows}</ul></section>'
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<link rel=\"icon\" href=\"data:,\">\n"
            f"<title>{escape(page.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f'<header class="top"><div class="wrap">{"".join(header)}</div></header>\n{toc}\n'
            f'<main class="wrap">\n{body}\n</main>\n'
            '<footer class="wrap">Written by <code>neurospec report</code>. Every figure is also a PNG file '
            f"({PNG_DPI} dpi) in <code>figures/</code> beside this page.</footer>\n</body>\n</html>\n")
