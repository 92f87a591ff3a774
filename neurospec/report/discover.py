"""Finding the artifacts of a run folder: every JSON file whose ``format`` is one the report draws.

    from neurospec.report.discover import discover
    found = discover("runs/study")                 # walks the folder recursively
    [(a.kind, a.label) for a in found.artifacts]   # [("neurons", "lape.json"), ("ppl", "ppl/ppl.json"), ...]
    found.skipped                                  # [("notes.json", "not valid JSON"), ...]

Each artifact is labelled by its path relative to the run folder (``/`` separators). When the run
folder holds ``study.json`` (``{"steps": [{"name": ..., "verb": ..., "out": "relative/path"}, ...]}``,
written by a pipeline), artifacts follow the order of its steps and carry their step's name; the
others come after, sorted by path. Without it every artifact is sorted by path.

A study of several models (study.json with a ``models`` list, ``[{"name": "gemma", "model": "gemma-3-270m",
"out": "gemma"}, ...]``, each ``out`` an ordinary run folder) is discovered model by model: ``found.models``
holds each model's own :class:`Discovery` (labels relative to its folder, ordered by its own study.json), and
``found.artifacts`` every model's artifacts in the models' order, labelled ``<out>/<label>``, after the
artifacts of the study folder itself.

Statistics folders (``stats.json``) and attribution runs (``attribution.json``) are artifacts of kinds
``stats`` and ``attribution``, drawn from their tensors; intervention files and JSON of other programs
are left out. A file
that cannot be parsed is an error when it is recognisably a neurospec artifact (a known artifact
file name, or a ``"neurospec.`` format tag near its start) and is listed in ``skipped`` otherwise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from neurospec.measure.attribution import FORMAT as ATTRIBUTION_FORMAT
from neurospec.measure.attribution import VERSION as ATTRIBUTION_VERSION
from neurospec.measure.stats import FORMAT as STATS_FORMAT
from neurospec.measure.stats import VERSION as STATS_VERSION
from neurospec.report.fields import ReportError
from neurospec.results import (
    NEURON_SET_FORMAT,
    DownstreamTable,
    FinetuneRecord,
    LmevalResult,
    LSSRecord,
    MaskingRecord,
    PerplexityMatrix,
    Result,
    SteeringRecord,
    SweepRecord,
)
from neurospec.results.fields import ResultError

R = TypeVar("R")

# artifact kind drawn by the report -> the result type that reads it (neuron sets are read by NeuronSet.load)
RESULT_TYPES: dict[str, type] = {
    "ppl": PerplexityMatrix,
    "lss": LSSRecord,
    "sweep": SweepRecord,
    "steer": SteeringRecord,
    "downstream": DownstreamTable,
    "mask_eval": MaskingRecord,
    "finetune": FinetuneRecord,
    "lmeval": LmevalResult,
}

# run folders of tensors, read by their own loaders (the manifest's format -> kind, the command, the version)
RUN_FOLDER_KINDS: dict[str, tuple[str, str, int]] = {
    STATS_FORMAT: ("stats", "neurospec collect", STATS_VERSION),
    ATTRIBUTION_FORMAT: ("attribution", "neurospec attribute", ATTRIBUTION_VERSION),
}

# format tag -> artifact kind drawn by the report
FORMATS: dict[str, str] = {NEURON_SET_FORMAT: "neurons", **{cls.FORMAT: kind for kind, cls in RESULT_TYPES.items()},
                           **{tag: kind for tag, (kind, _, _) in RUN_FOLDER_KINDS.items()}}

# neurospec formats that are internals of a run, not results: left out without a note
INTERNAL_FORMATS: frozenset[str] = frozenset({"neurospec.intervention",
                                              "neurospec.report"})  # report.json: the figures a report wrote

# the command that writes each kind (for error messages)
COMMANDS: dict[str, str] = {"neurons": "neurospec select ... / neurospec neurons import",
                            **{kind: cls.COMMAND for kind, cls in RESULT_TYPES.items()},
                            **{kind: command for kind, command, _ in RUN_FOLDER_KINDS.values()}}

# the artifact version this neurospec reads, per kind
VERSIONS: dict[str, int] = {"neurons": 1, **{kind: cls.VERSION for kind, cls in RESULT_TYPES.items()},
                            **{kind: version for kind, _, version in RUN_FOLDER_KINDS.values()}}
STUDY_FILE = "study.json"
_KNOWN_NAMES = frozenset({"ppl.json", "lss.json", "sweep.json", "steer.json", "mask_eval.json", "finetune.json",
                         "lmeval.json"})
_HEAD = 4096


@dataclass
class Artifact:
    """One artifact: its ``kind`` (a value of :data:`FORMATS`), ``label`` (path relative to the run
    folder), absolute ``path``, parsed ``data`` and, with a study.json, the ``step`` that wrote it."""

    kind: str
    label: str
    path: Path
    data: dict[str, Any]
    step: str | None = None
    cached: Result | None = field(default=None, repr=False, compare=False)  # what :meth:`result` made of ``data``

    @property
    def fix(self) -> str:
        return f"regenerate it with `{COMMANDS[self.kind]}` or remove it from the run folder"

    def result(self) -> Result:
        """The artifact as its result type (:data:`RESULT_TYPES`; not for neuron sets or run folders), read once.

        A malformed file raises :class:`ReportError` naming the file, the field and the fix."""
        if self.cached is None:
            try:
                self.cached = RESULT_TYPES[self.kind].from_json(self.data, str(self.path), self.fix)
            except ResultError as err:
                raise ReportError(str(err)) from None
        return self.cached

    def read(self, result_type: type[R]) -> R:
        """``artifact.read(LSSRecord)``: :meth:`result`, typed (``result_type`` is this kind's result type)."""
        result = self.result()
        if not isinstance(result, result_type):
            raise TypeError(f"artifact {self.label!r} is of kind {self.kind}, not a {result_type.__name__}")
        return result


@dataclass(frozen=True)
class Step:
    """A step of study.json: its ``name``, the ``verb`` it ran, its output ``out`` (relative path) and its
    ``status`` as the report shows it (:func:`step_status`)."""

    name: str
    verb: str | None
    out: str
    status: str = "not recorded"


@dataclass
class Discovery:
    """What :func:`discover` found in ``run_dir``."""

    run_dir: Path
    artifacts: list[Artifact] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    steps: list[Step] | None = None
    study: dict[str, Any] | None = None
    models: list[ModelRun] | None = None  # a study of several models: each model's own discovery


@dataclass
class ModelRun:
    """A model of a study of several models: its ``name``, the ``model`` as the config gives it, its run folder
    ``out`` (relative to the study folder) and what :func:`discover` found there (None: no such folder yet)."""

    name: str
    model: str | None
    out: str
    found: Discovery | None


def discover(run_dir: str | os.PathLike, *, exclude: tuple[str | os.PathLike, ...] = ()) -> Discovery:
    """Every artifact under ``run_dir`` (recursively), ordered as the module docstring says.

    Folders in ``exclude`` (e.g. the report's own output folder) and hidden folders are not entered.
    Raises :class:`ReportError` for a run folder that does not exist, an unreadable study.json, or a
    neurospec artifact that is not valid JSON.
    """
    root = Path(run_dir)
    if not root.exists():
        raise ReportError(f"run folder '{root}' does not exist; give the folder a neurospec run wrote into")
    if not root.is_dir():
        raise ReportError(f"'{root}' is a file, not a run folder; give the folder holding the artifacts")
    root = root.resolve()
    skip_dirs = {Path(p).resolve() for p in exclude}
    found = Discovery(root)
    study_path = root / STUDY_FILE
    if study_path.is_file():
        found.study, found.steps = _read_study(study_path)
        found.models = _discover_models(root, study_path, found.study, exclude)
        skip_dirs |= {(root / model.out).resolve() for model in found.models or ()}
    for path in _json_files(root, skip_dirs):
        label = path.relative_to(root).as_posix()
        if path == study_path:
            continue
        parsed = _read(path, label)
        if isinstance(parsed, str):
            found.skipped.append((label, parsed))
            continue
        tag = parsed.get("format") if isinstance(parsed, dict) else None
        if not isinstance(tag, str) or tag in INTERNAL_FORMATS:
            continue
        if tag not in FORMATS:
            if tag.startswith("neurospec."):
                found.skipped.append((label, f"format {tag!r} is not one the report draws"))
            continue
        version, readable = parsed.get("version"), VERSIONS[FORMATS[tag]]
        if version != readable:
            found.skipped.append((label, f"{tag} version {version!r}; this neurospec reads version {readable} "
                                         "(a newer neurospec wrote it? upgrade)"))
            continue
        found.artifacts.append(Artifact(FORMATS[tag], label, path, parsed))
    found.artifacts = _ordered(found.artifacts, found.steps)
    for model in found.models or ():
        if model.found is not None:
            found.artifacts += [replace(a, label=f"{model.out}/{a.label}") for a in model.found.artifacts]
            found.skipped += [(f"{model.out}/{label}", reason) for label, reason in model.found.skipped]
    return found


def _discover_models(root: Path, study_path: Path, study: dict[str, Any],
                     exclude: tuple[str | os.PathLike, ...]) -> list[ModelRun] | None:
    """Each model of a study of several models, discovered in its own folder; None for a study of one model."""
    models = study_models(study_path, study)
    if models is None:
        return None
    runs = []
    for name, model, out in models:
        folder = root / out
        runs.append(ModelRun(name, model, out, discover(folder, exclude=exclude) if folder.is_dir() else None))
    return runs


def study_models(path: Path, study: dict[str, Any]) -> list[tuple[str, str | None, str]] | None:
    """``[(name, model, out), ...]`` of study.json's ``models`` list (None when it has none); a malformed entry
    is an error naming the file and the entry."""
    entries = study.get("models")
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise ReportError(f"{path}: \"models\" must be a list ([{{\"name\": ..., \"model\": ..., \"out\": "
                          "\"folder\"}, ...]); fix it or run the study again")
    models: list[tuple[str, str | None, str]] = []
    for i, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        out = entry.get("out") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or not isinstance(out, str) or not _inside(out):
            raise ReportError(f"{path}: models[{i}] needs a \"name\" and an \"out\" folder inside the study folder "
                              "(a relative path without '..'); fix it or run the study again")
        out = PurePosixPath(out.replace("\\", "/")).as_posix().strip("/")
        if any(name == known or _nested(out, seen) for known, _, seen in models):
            raise ReportError(f"{path}: models[{i}] repeats the name {name!r} or shares the folder {out!r} with another "
                              "model; each model needs its own name and a folder of its own")
        model = entry.get("model") if isinstance(entry.get("model"), str) else None
        models.append((name, model, out))
    return models


def _nested(first: str, second: str) -> bool:
    """Whether one folder is the other or holds it."""
    return first == second or first.startswith(second + "/") or second.startswith(first + "/")


def _inside(out: str) -> bool:
    """Whether ``out`` is a folder below the study folder (relative, not ``.``, no ``..``)."""
    parts = PurePosixPath(out.replace("\\", "/")).parts
    return bool(parts) and not out.startswith(("/", "\\")) and ".." not in parts and parts != (".",)


def _json_files(root: Path, skip_dirs: set[Path]) -> list[Path]:
    """``*.json`` files under ``root``, walked in sorted order, hidden and excluded folders left out."""
    out = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() not in skip_dirs)
        out += [here / name for name in sorted(files) if name.endswith(".json") and not name.startswith(".")]
    return out


def _read(path: Path, label: str) -> Any:
    """The parsed JSON, or a string saying why a file that is no artifact was skipped."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ReportError(f"{path}: cannot be read ({err.strerror or err}); check its permissions") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        head = raw[:_HEAD].decode("utf-8", errors="replace")
        if path.name in _KNOWN_NAMES or '"neurospec.' in head:
            raise ReportError(f"{path}: artifact '{label}' is not valid JSON ({_reason(err)}); the file is "
                              "truncated or corrupt: regenerate it with the command that wrote it, or remove "
                              "it from the run folder") from None
        return "not valid JSON"


def _reason(err: Exception) -> str:
    return "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else str(err)


def _read_study(path: Path) -> tuple[dict[str, Any], list[Step]]:
    """study.json and its steps; a malformed one is an error naming the file and the entry."""
    try:
        study = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ReportError(f"{path} is not valid JSON ({_reason(err)}); fix it or remove it (the report then "
                          "orders sections by path)") from None
    if not isinstance(study, dict) or not isinstance(study.get("steps"), list):
        raise ReportError(f"{path}: expected an object with a \"steps\" list "
                          "([{\"name\": ..., \"verb\": ..., \"out\": \"relative/path\"}, ...])")
    steps = []
    for i, entry in enumerate(study["steps"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("out"), str) or not entry["out"].strip():
            raise ReportError(f"{path}: steps[{i}] needs an \"out\" string (the step's output path, relative "
                              "to the run folder)")
        out = PurePosixPath(entry["out"].replace("\\", "/")).as_posix().strip("/") or "."
        verb = entry.get("verb") if isinstance(entry.get("verb"), str) else None
        name = entry.get("name") if isinstance(entry.get("name"), str) and entry["name"] else (verb or out)
        steps.append(Step(name, verb, out, step_status(entry)))
    return study, steps


STEP_STATUSES = ("done", "skipped (unchanged)", "done (earlier run)", "failed", "interrupted", "not run")


def step_status(entry: dict[str, Any]) -> str:
    """One of :data:`STEP_STATUSES` for a study.json step record: ``status`` says where the step stands,
    ``this_run`` what the latest `neurospec run` did with it (absent in records written before it existed)."""
    status, this_run = entry.get("status"), entry.get("this_run", "ran")
    if status == "complete":
        return {"skipped": "skipped (unchanged)", None: "done (earlier run)"}.get(this_run, "done")
    if status == "failed":
        return "failed"
    if status in ("interrupted", "running"):  # "running" in a study that is not: killed mid-step
        return "interrupted"
    return "not run"


def step_owns(step: Step, label: str) -> bool:
    """Whether artifact ``label`` is the output of ``step``: the path itself, inside it (a folder), or a
    sibling named after it (``culture.json`` owns ``culture.random.json``)."""
    if step.out == ".":
        return True
    if label == step.out or label.startswith(step.out + "/"):
        return True
    out = PurePosixPath(step.out)
    here = PurePosixPath(label)
    return out.suffix == ".json" and here.parent == out.parent and here.name.startswith(out.stem + ".")


def _ordered(artifacts: list[Artifact], steps: list[Step] | None) -> list[Artifact]:
    by_path = sorted(artifacts, key=lambda a: a.label)
    if not steps:
        return by_path
    placed: list[Artifact] = []
    taken: set[str] = set()
    # the most specific step claims an artifact (a step writing "." would otherwise take all)
    owner: dict[str, int] = {}
    for artifact in by_path:
        matches = [i for i, step in enumerate(steps) if step_owns(step, artifact.label)]
        if matches:
            owner[artifact.label] = max(matches, key=lambda i: (len(steps[i].out), -i))
    for i, step in enumerate(steps):
        for artifact in by_path:
            if owner.get(artifact.label) == i and artifact.label not in taken:
                artifact.step = step.name
                placed.append(artifact)
                taken.add(artifact.label)
    return placed + [a for a in by_path if a.label not in taken]
