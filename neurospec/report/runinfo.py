"""The run facts at the top of the report: model, neurospec versions, configuration, pipeline steps.

    from neurospec.report.runinfo import run_facts
    facts = run_facts(discovery)          # a Discovery from neurospec.report.discover
    facts.items                           # [("run folder", ...), ("model", ...), ("neurospec", ...), ...]
    facts.config_text                     # config.yaml (or study.json's config) as text, or None

The model is named as the user gave it: the ``model`` entry of config.yaml or study.json when the run
has them (each ``name: model`` of a study of several models), else the names the artifacts record (a
result's ``provenance.model``, a neuron set's ``meta.model_id``, a statistics or attribution folder's
``model``), a cached copy named by what it is a copy of (``toy:small``, ``google/gemma-3-270m``, a built-in
name) rather than by its folder. The fingerprints and the names as recorded go in the value's tooltip.
Versions: the one writing the report and those recorded in the artifacts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from neurospec.report.discover import Artifact, Discovery
from neurospec.version import __version__

CONFIG_FILE = "config.yaml"
_CONFIG_LIMIT = 20_000


@dataclass
class RunFacts:
    """``items`` (label, value) pairs; ``config_name``/``config_text``; ``steps`` rows (name, verb, out, status,
    found); ``outcome`` a sentence when the study did not complete (failed, interrupted, still running)."""

    items: list[tuple[str, str] | tuple[str, str, str]] = field(default_factory=list)
    config_name: str | None = None
    config_text: str | None = None
    steps: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    outcome: str | None = None


def _model_of(config: Any) -> str | None:
    if not isinstance(config, dict):
        return None
    model = config.get("model")
    if isinstance(model, str):
        return model
    if isinstance(model, dict):
        for key in ("id", "name", "path"):
            if isinstance(model.get(key), str):
                return model[key]
    return None


_HUB_CACHE = re.compile(r"models--([^/\\]+?)--([^/\\]+)")
_TOY_CACHE = re.compile(r"[/\\]toy[/\\]([a-z0-9_]+)-[0-9a-f]{6,}[/\\]?$")


def display_name(recorded: str) -> str:
    """The name a user gives for a model recorded as ``recorded``: a Hugging Face cache folder
    (``.../models--google--gemma-3-270m/snapshots/abc``) -> ``google/gemma-3-270m``; a toy model's cache folder
    (``~/.cache/neurospec/toy/small-1a2b3c4d``) -> ``toy:small``; anything else as it is."""
    hub = _HUB_CACHE.search(recorded)
    if hub:
        return f"{hub.group(1)}/{hub.group(2)}"
    toy = _TOY_CACHE.search(recorded)
    if toy:
        return f"toy:{toy.group(1)}"
    return recorded


def section_name(section: Mapping[str, Any]) -> str | None:
    """The user's name of the model a provenance (or statistics, attribution) model section describes: its
    ``name`` (the ``--model`` value as given, where recorded), its built-in name, else its ``id`` / ``model_id`` as
    :func:`display_name` shows it; None when it records none."""
    if isinstance(section.get("name"), str) and section["name"]:
        return section["name"]
    source = section.get("source")
    if isinstance(source, Mapping) and isinstance(source.get("builtin"), str):
        return source["builtin"]
    for key in ("id", "model_id"):
        if isinstance(section.get(key), str) and section[key]:
            return display_name(section[key])
    return None


def model_sections(artifact: Artifact) -> list[dict[str, Any]]:
    """The model sections an artifact records: a result's ``provenance.model``, a neuron set's ``meta.model_id``
    and the provenance in its ``meta.source``, a statistics or attribution folder's ``model``."""
    data = artifact.data
    found: list[Any] = []
    provenance_record = data.get("provenance")
    if isinstance(provenance_record, dict):
        found.append(provenance_record.get("model"))
    meta = data.get("meta")
    if artifact.kind == "neurons" and isinstance(meta, dict):
        if isinstance(meta.get("model_id"), str):
            found.append({"id": meta["model_id"]})
        source = meta.get("source")
        if isinstance(source, dict) and isinstance(source.get("provenance"), dict):
            found.append(source["provenance"].get("model"))
    if artifact.kind in ("stats", "attribution"):
        found.append(data.get("model"))
    return [dict(section) for section in found if isinstance(section, dict)]


def section_aliases(sections: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Recorded model names -> the name the user gave, learnt from the model sections that record both: a
    built-in or GGUF model's cache folder and file (``source.gguf.cache`` / ``.file``) -> its name."""
    aliases: dict[str, str] = {}
    for section in sections:
        name, source = section_name(section), section.get("source")
        gguf = source.get("gguf") if isinstance(source, Mapping) else None
        if name and isinstance(gguf, Mapping):
            aliases.update({gguf[key]: name for key in ("cache", "file")
                            if isinstance(gguf.get(key), str) and gguf[key] != name})
    return aliases


def model_aliases(artifacts: Iterable[Artifact]) -> dict[str, str]:
    """:func:`section_aliases` over every model section the ``artifacts`` record."""
    return section_aliases(section for artifact in artifacts for section in model_sections(artifact))


def rename_model_facts(facts: list, aliases: Mapping[str, str]) -> list:
    """``facts`` with a ``model`` fact that shows a recorded name of :func:`model_aliases` showing the user's
    name instead, the recorded one moved to its tooltip."""
    renamed = []
    for label, value, *tooltip in facts:
        if label == "model" and value in aliases:
            lines = [line for line in (tooltip[0] if tooltip else "").split("\n") if line]
            renamed.append((label, aliases[value], "\n".join(lines + [f"recorded as: {value}"])))
        else:
            renamed.append((label, value, *tooltip))
    return renamed


def model_tooltip(sections: Iterable[Mapping[str, Any]], shown: Iterable[str]) -> str:
    """The tooltip of a model name: the fingerprints, revisions and names as recorded (those not shown)."""
    sections = list(sections)
    shown = set(shown)
    lines = []
    for key, words in (("fingerprint", "model fingerprint"), ("weights_fingerprint", "weights fingerprint"),
                       ("revision", "revision")):
        values = dict.fromkeys(str(s[key]) for s in sections if s.get(key))
        lines += [f"{words}: {value}" for value in values]
    recorded = dict.fromkeys(str(s.get("id") or s.get("model_id")) for s in sections
                             if (s.get("id") or s.get("model_id")))
    lines += [f"recorded as: {name}" for name in recorded if name not in shown]
    return "\n".join(lines)


def model_fact(given: Iterable[str], sections: Iterable[Mapping[str, Any]],
               aliases: Mapping[str, str] | None = None) -> tuple[str, str, str]:
    """``("model", shown name(s), tooltip)``: the names the user gave (else the recorded ones, as
    :func:`section_name` shows them, through ``aliases``) with the fingerprints in the tooltip."""
    sections = list(sections)
    aliases = {**section_aliases(sections), **(aliases or {})}
    names = list(dict.fromkeys(given)) or list(dict.fromkeys(
        aliases.get(name, name) for name in (section_name(s) for s in sections) if name))
    shown = ", ".join(names) if names else "not recorded in these artifacts"
    return "model", shown, model_tooltip(sections, names)


def run_facts(found: Discovery) -> RunFacts:
    facts = RunFacts()
    facts.items.append(("run folder", str(found.run_dir)))
    given: list[str] = []
    config_path = found.run_dir / CONFIG_FILE
    if config_path.is_file():
        text = config_path.read_text(encoding="utf-8", errors="replace")
        facts.config_name = CONFIG_FILE
        facts.config_text = text if len(text) <= _CONFIG_LIMIT else text[:_CONFIG_LIMIT] + "\n... (cut)"
        try:
            import yaml

            model = _model_of(yaml.safe_load(text))
        except Exception:  # a config the report cannot parse is still shown as text
            model = None
        if model:
            given.append(model)
    if found.study is not None:
        model = _model_of(found.study) or _model_of(found.study.get("config"))
        if model:
            given.append(model)
        if facts.config_text is None and isinstance(found.study.get("config"), dict):
            facts.config_name = "study.json: config"
            facts.config_text = json.dumps(found.study["config"], indent=1, ensure_ascii=False)
    given += [f"{run.name}: {run.model or 'not recorded'}" for run in found.models or ()]
    versions: list[str] = []
    sections: list[dict[str, Any]] = []
    for artifact in found.artifacts:
        sections += model_sections(artifact)
        meta = artifact.data.get("meta") if artifact.kind == "neurons" else None
        if isinstance(meta, dict) and isinstance(meta.get("neurospec_version"), str):
            versions.append(meta["neurospec_version"])
    facts.items.append(model_fact(given, sections, model_aliases(found.artifacts)))
    recorded = ", ".join(dict.fromkeys(versions))
    facts.items.append(("neurospec", f"{__version__} (this report)" + (f"; artifacts written by {recorded}"
                                                                        if recorded else "")))
    facts.items.append(("artifacts", str(len(found.artifacts))))
    facts.items.append(("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")))
    if found.steps is not None:
        for step in found.steps:
            count = sum(a.step == step.name for a in found.artifacts)
            facts.steps.append((step.name, step.verb or "", step.out, step.status, count))
        facts.outcome = _outcome(found)
    return facts


def _outcome(found: Discovery) -> str | None:
    """A sentence for a study that did not complete, naming the step where it stopped; None when it completed."""
    status = (found.study or {}).get("status")
    stopped = [step.name for step in found.steps or [] if step.status in ("failed", "interrupted")]
    where = f" at step {stopped[0]}" if stopped else ""
    later = " Later steps did not run; the sections below show what finished."
    if status == "failed" or (status is None and any(s.status == "failed" for s in found.steps or [])):
        return f"This study FAILED{where}.{later} Its error is in the `neurospec run` output."
    if status == "interrupted":
        return f"This study was interrupted{where}.{later} Run it again to finish it."
    if status == "running":
        return "This study was still running (or was killed) when the report was written; some steps may be missing."
    return None
