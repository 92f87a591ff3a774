"""The whole report in memory: run facts and one section per artifact, figures rendered, nothing written.

    from neurospec.report.discover import discover
    from neurospec.report.page import build_page
    page = build_page(discover("runs/study"))
    [s.title for s in page.sections], [f.slug for f in page.figures]

A sweep's per-setting lss.json files are drawn inside the sweep's section, not as sections of
their own. Anchors and figure slugs (the PNG file names) are made unique over the page. A study of several
models (``found.models``) starts with the comparison of the models, then each model's heading and sections. The neuron explorer's
pages (:mod:`neurospec.report.explorer`) are rendered here too, and linked from their neuron sets' sections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from neurospec.interventions.targets import selection_reason
from neurospec.report.content import Figure, Section
from neurospec.report.discover import RUN_FOLDER_KINDS, Artifact, Discovery
from neurospec.report.explorer import Explorer, ExplorerPage, build_explorer
from neurospec.report.runinfo import RunFacts, model_aliases, rename_model_facts, run_facts
from neurospec.report.sections import SECTIONS, sweep_section, sweep_setting_labels
from neurospec.report.sections.compare import comparison_section, model_heading
from neurospec.util.progress import progress


@dataclass
class Page:
    """Everything the HTML writer needs."""

    title: str
    facts: RunFacts
    sections: list[Section] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    pages: list[ExplorerPage] = field(default_factory=list)  # the neuron explorer's pages (explorer/*.html)

    @property
    def figures(self) -> list[Figure]:
        return [figure for section in self.sections for figure in section.figures]


def slugify(label: str) -> str:
    """``"runs/lss_p_max/lss.json"`` -> ``"runs-lss-p-max-lss"``; ``"ppl/ppl.json"`` -> ``"ppl"`` (a file named
    like its folder adds nothing): lower-case letters, digits and dashes."""
    parts = re.sub(r"\.json$", "", label.lower()).split("/")
    if len(parts) >= 2 and parts[-1] == parts[-2]:
        parts.pop()
    return re.sub(r"[^a-z0-9]+", "-", "/".join(parts)).strip("-") or "artifact"


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}-{n}", n + 1
    used.add(candidate)
    return candidate


def groups_without_neurons(artifact: Artifact) -> dict[str, str]:
    """The groups an artifact records as skipped for having no neurons (``empty_groups``), or, for a neuron set,
    its groups that hold none; each with the reason ("no neurons selected by ..."); none for a statistics or
    attribution folder."""
    if artifact.kind in {kind for kind, _, _ in RUN_FOLDER_KINDS.values()}:
        return {}
    if artifact.kind != "neurons":
        return dict(artifact.result().empty_groups)
    data = artifact.data
    if not isinstance(data.get("groups"), dict):
        return {}
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    method = meta.get("method") if isinstance(meta.get("method"), str) else None
    params = meta.get("params") if isinstance(meta.get("params"), dict) else {}
    return {str(group): selection_reason(method, params, str(group)) for group, sites in data["groups"].items()
            if isinstance(sites, dict) and not any(layers for layer_map in sites.values()
                                                   if isinstance(layer_map, dict) for layers in layer_map.values())}


def build_page(found: Discovery, *, quiet: bool = True) -> Page:
    """Build every section (raising ReportError on a malformed artifact) and name anchors and figures; unless
    ``quiet``, with a progress bar over the artifacts (their figures are drawn here)."""
    page = Page(f"neurospec report: {found.run_dir.name}", run_facts(found), skipped=list(found.skipped))
    by_label = {a.label: a for a in found.artifacts}
    owned: dict[str, list[str]] = {}
    for artifact in found.artifacts:
        if artifact.kind == "sweep":
            owned[artifact.label] = [label for label in sweep_setting_labels(artifact)
                                     if label in by_label and by_label[label].kind == "lss"]
    inside_sweeps = {label for labels in owned.values() for label in labels}
    anchors: set[str] = set()
    slugs: set[str] = set()
    aliases = model_aliases(found.artifacts)
    with progress("report", total=len(found.artifacts), unit="artifacts", quiet=quiet) as bar:
        for artifact in found.artifacts:
            bar.advance(1)
            if artifact.label not in inside_sweeps:
                section = _section(artifact, by_label, owned, anchors, slugs)
                section.facts = rename_model_facts(section.facts, aliases)
                page.sections.append(section)
    if found.models is not None:
        page.sections = _study_sections(found, page.sections, anchors, slugs)
    add_explorer(page, build_explorer(found))
    return page


def _study_sections(found: Discovery, sections: list[Section], anchors: set[str], slugs: set[str]) -> list[Section]:
    """A study of several models: the comparison first, the study folder's own sections, then per model a
    heading and the model's sections (in its own study.json's order)."""
    def named(section: Section, base: str) -> Section:
        section.anchor = _unique(f"s-{base}", anchors)
        for figure in section.figures:
            figure.slug = _unique(f"{base}-{slugify(figure.name)}", slugs)
        return section

    models = found.models or []
    inside = [(model, f"{model.out}/") for model in models]
    ordered = [named(comparison_section(found), "compare")]
    ordered += [s for s in sections if not any(s.artifact.startswith(prefix) for _, prefix in inside)]
    for model, prefix in inside:
        ordered.append(named(model_heading(model), f"model-{slugify(model.name)}"))
        ordered += [s for s in sections if s.artifact.startswith(prefix)]
    return ordered


def add_explorer(page: Page, explorer: Explorer) -> None:
    """The explorer's pages into ``page``, and each neuron set's section its link table or its note."""
    page.pages = list(explorer.pages)
    for section in page.sections:
        if section.kind != "neurons":
            continue
        section.notes += explorer.notes.get(section.artifact, [])
        if section.artifact in explorer.tables:
            section.add(None, explorer.tables[section.artifact])


def _section(artifact: Artifact, by_label: dict, owned: dict[str, list[str]], anchors: set[str], slugs: set[str]):
    """The section of one artifact (a sweep with its settings), its anchor and figure names made unique."""
    if artifact.kind == "sweep":
        section = sweep_section(artifact, {label: by_label[label] for label in owned[artifact.label]})
    else:
        section = SECTIONS[artifact.kind](artifact)
    section.warnings += [f"{group}: {reason}" for group, reason in groups_without_neurons(artifact).items()]
    base = slugify(artifact.label)
    section.anchor = _unique(f"s-{base}", anchors)
    for figure in section.figures:
        figure.slug = _unique(f"{base}-{figure.name}", slugs)
    return section
