"""The run facts at the top of the report: model, neurospec versions, configuration, pipeline steps.

    from neurospec.report.runinfo import run_facts
    facts = run_facts(discovery)          # a Discovery from neurospec.report.discover
    facts.items                           # [("run folder", ...), ("model", ...), ("neurospec", ...), ...]
    facts.config_text                     # config.yaml (or study.json's config) as text, or None

The model comes from config.yaml or study.json (a ``model`` entry) when the run has them, else from
the neuron sets' ``meta.model_id``. Versions: the one writing the report and those recorded in the
artifacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from neurospec.report.discover import Discovery
from neurospec.version import __version__

CONFIG_FILE = "config.yaml"
_CONFIG_LIMIT = 20_000


@dataclass
class RunFacts:
    """``items`` (label, value) pairs; ``config_name``/``config_text``; ``steps`` rows (name, verb, out, status,
    found); ``outcome`` a sentence when the study did not complete (failed, interrupted, still running)."""

    items: list[tuple[str, str]] = field(default_factory=list)
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


def run_facts(found: Discovery) -> RunFacts:
    facts = RunFacts()
    facts.items.append(("run folder", str(found.run_dir)))
    models: list[str] = []
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
            models.append(model)
    if found.study is not None:
        model = _model_of(found.study) or _model_of(found.study.get("config"))
        if model:
            models.append(model)
        if facts.config_text is None and isinstance(found.study.get("config"), dict):
            facts.config_name = "study.json: config"
            facts.config_text = json.dumps(found.study["config"], indent=1, ensure_ascii=False)
    versions: list[str] = []
    for artifact in found.artifacts:
        meta = artifact.data.get("meta") if artifact.kind == "neurons" else None
        if isinstance(meta, dict):
            if isinstance(meta.get("model_id"), str):
                models.append(meta["model_id"])
            if isinstance(meta.get("neurospec_version"), str):
                versions.append(meta["neurospec_version"])
    models = list(dict.fromkeys(models))
    facts.items.append(("model", ", ".join(models) if models else "not recorded in these artifacts"))
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
