"""Run folders: the folder one command writes, its lock, what neurospec may replace, overwrite, resume, and the
manifest that says what produced the folder.

    from neurospec.measure.run_folder import RunFolder, RunKind
    STATS = RunKind("stats.json", "neurospec.stats", version=1, tensor_file="stats.safetensors",
                    writer="neurospec collect", what="statistics", made="collected", redo="collect it again",
                    same="the same model, corpora and options")
    run = RunFolder("runs/stats", STATS, inputs=[corpus_file, model_dir])
    with run.locked():                                  # OUT/.lock; a second writer: "... in use by pid N (...)"
        previous = run.start({"options": options}, resume=True, overwrite=False, model=description)
        # None: start afresh (--overwrite cleared what collect wrote); else previous.complete, previous.progress
        files = {name: run.write_tensors(name, tensors)}            # a checkpoint: name = run.free_slot(...)
        run.commit(document, files, previous_files, progress={"batch": 3})   # the manifest, written last
    manifest = run.read_manifest()                      # checked for format and version
    tensors = run.read_tensors(manifest)                # refused while unfinished, checked against its fingerprint

The functions the commands call are thin ones over the class:

    check_replaceable(out, marker="stats.json", tag="neurospec.stats", inputs=[corpus_file, model_dir],
                      writer="neurospec collect")       # raises NeurospecError naming the path and the reason
    clear_folder(out)                                    # its entries, all but the lock file
    with writing(out, "neurospec ppl"):                  # OUT/.lock; a second writer: "... in use by pid N (...)"
        ...
    with writing(out_file, "neurospec select lape", file=True):   # OUT_FILE.lock beside it, removed after
        ...

The rule: neurospec deletes or replaces a folder only when it wrote it itself (the folder holds the
marker file of the command that writes it, with that command's format tag), and never the current
folder, a folder above it, an input of the command, or a folder holding an input.

The manifest is the run's JSON document, written last and atomically: it names every tensor file with its
sha256, says whether the run is complete and, while it is not, how far it got (``progress``). Checkpoints go to
the slot (``*.checkpoint-a`` / ``-b``) the current manifest does not name, so a process killed at any instant
leaves a folder that resumes from its last manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from neurospec.util.errors import FileFormatError, NeurospecError
from neurospec.util.io import atomic_save_safetensors, atomic_write_json, file_fingerprint, remove_stale_temporaries
from neurospec.util.locks import LOCK_NAME, exclusive, exclusive_file

PathLike = str | os.PathLike
Tag = str | Callable[[dict], bool] | None
#: What the model check of :meth:`RunFolder.start` compares (a recorded ``None`` weights fingerprint is skipped:
#: folders from before neurospec recorded it).
MODEL_KEYS = ("model_type", "num_layers", "width", "config_fingerprint", "weights_fingerprint")


def _resolved(path: PathLike) -> Path:
    return Path(os.path.realpath(path))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _differ(key: str) -> str:
    """``differ`` after a plural key (``options``, ``corpora``), ``differs`` after a singular one (``batch_size``)."""
    return "differ" if key.endswith(("s", "a")) else "differs"


def has_marker(folder: PathLike, marker: str, tag: Tag = None) -> bool:
    """Whether ``folder/marker`` is a JSON object of neurospec's: its ``format`` is ``tag`` (or ``tag(doc)``
    holds; any object when ``tag`` is None)."""
    try:
        document = json.loads((Path(folder) / marker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return _tagged(document, tag)


def _tagged(document: Any, tag: Tag) -> bool:
    """Whether ``document`` is a JSON object whose ``format`` is ``tag`` (``tag(document)`` holds; None: any)."""
    if not isinstance(document, dict):
        return False
    if tag is None:
        return True
    return tag(document) if callable(tag) else document.get("format") == tag


@dataclass(frozen=True)
class RunKind:
    """What a kind of run folder holds and which command writes it; every message about such a folder uses it.

    ``RunKind("attribution.json", "neurospec.attribution", version=1, writer="neurospec attribute",
    what="attribution scores", overwrite=False, own_folder=False)``
    """

    manifest: str  # the JSON document written last; also the marker that neurospec wrote the folder
    format: Tag = None  # the manifest's "format" (or a test of the whole document; None: any JSON object)
    version: int | None = None  # the manifest version this neurospec reads (None: not checked)
    tensor_file: str | None = None  # the main tensor file of a complete run
    writer: str = "neurospec"  # the command that writes such folders, as a user types it
    what: str = "outputs"  # what the folder holds, a plural noun: "statistics", "attribution scores"
    made: str = "made"  # how it is made, in "it was collected on another model"
    redo: str = "run it again"  # the fix for a corrupt folder
    same: str = "the same model, inputs and options"  # what a resumed run keeps
    option: str = "--out"  # the option that names the folder
    overwrite: bool = True  # whether the writer offers --overwrite (else an existing run is resumed or refused)
    own_folder: bool = True  # whether the writer refuses a non-empty folder without its manifest


#: A folder of no particular kind: locking, clearing and check_replaceable's rules only.
ANY_RUN = RunKind("")


@dataclass(frozen=True)
class Resumed:
    """The run a folder holds, to go on from: its manifest. ``complete``: it finished (reuse it as it is);
    otherwise ``progress`` is how far its last checkpoint got."""

    manifest: dict[str, Any]

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def progress(self) -> dict[str, Any]:
        return dict(self.manifest.get("progress") or {})


class RunFolder:
    """The folder (or, for a lock, the file) one command writes; see the module docstring.

    ``RunFolder("runs/stats", STATS, inputs=[corpus_file])``: ``inputs`` are the command's inputs, which the
    folder must neither be nor hold for it to be cleared.
    """

    def __init__(self, path: PathLike, kind: RunKind = ANY_RUN, *, inputs: Iterable[PathLike | None] = ()) -> None:
        self.path = Path(path)
        self.kind = kind
        self.inputs = tuple(None if item is None else Path(item) for item in inputs)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, {self.kind.writer!r})"

    # ---- the lock

    @contextlib.contextmanager
    def locked(self, what: str | None = None, *, beside: bool = False, wait: bool = False) -> Iterator[None]:
        """``with run.locked():`` hold ``FOLDER/.lock`` (``beside=True``: ``PATH.lock`` next to a file, or a folder
        replaced whole) for the block. While another process holds it this raises "PATH is in use by pid N
        (``what``, default the kind's writer)", or, with ``wait=True``, waits for it. Under torchrun only rank 0
        locks (the ranks of one run write one folder together)."""
        if os.environ.get("RANK", "0") != "0":
            yield
            return
        what = what or self.kind.writer
        with (exclusive_file(self.path, what, wait=wait) if beside else exclusive(self.path, what, wait=wait)):
            yield

    # ---- replacing what neurospec wrote

    def has_content(self) -> bool:
        """``run.has_content()``: whether the folder exists and holds anything but its lock file."""
        return self.path.is_dir() and any(entry.name != LOCK_NAME for entry in self.path.iterdir())

    def has_manifest(self) -> bool:
        """``run.has_manifest()``: whether the folder holds its kind's manifest file (valid or not)."""
        return bool(self.kind.manifest) and (self.path / self.kind.manifest).exists()

    def check_replaceable(self, fix: str = "choose a new or empty folder") -> None:
        """Raise :class:`NeurospecError` (ending in ``fix``) unless neurospec may delete the folder and write it anew.

        Refused: the current folder or one above it, an input (or a folder holding one), a file, and a
        non-empty folder without the kind's manifest (see :func:`has_marker`). An absent or empty folder passes."""
        target, here = _resolved(self.path), Path.cwd().resolve()
        if _within(here, target):
            where = "the current folder" if target == here else "a folder above the current folder"
            raise NeurospecError(f"{self.path} is {where}; neurospec never deletes it: {fix}")
        for item in self.inputs:
            if item is None:
                continue
            source = _resolved(item)
            if _within(source, target):
                what = "is" if source == target else f"holds {item}, which is"
                raise NeurospecError(f"{self.path} {what} an input of this command; neurospec never deletes its "
                                     f"inputs: {fix}")
        if not target.exists():
            return
        if not target.is_dir():
            raise NeurospecError(f"{self.path} is a file, not a folder: {fix}")
        if not self.has_content():
            return
        marker, writer = self.kind.manifest, self.kind.writer
        if not has_marker(target, marker, self.kind.format):
            raise NeurospecError(f"{self.path} was not written by {writer} (it holds no {marker} of {writer}'s); "
                                 f"neurospec replaces only folders it wrote: {fix}")

    def clear(self) -> None:
        """``run.clear()``: delete every entry of the folder but its lock file (check :meth:`check_replaceable`
        first)."""
        for entry in self.path.iterdir():
            if entry.name == LOCK_NAME:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    # ---- starting: afresh, over what was there, or from where an earlier run stopped

    def start(self, expected: Mapping[str, Any], *, resume: bool, overwrite: bool = False,
              normalise: Callable[[str, Any], Any] | None = None,
              model: Mapping[str, Any] | None = None) -> Resumed | None:
        """``run.start({"options": opts}, resume=True)``: the run to go on from, or None to start afresh.

        With ``resume`` a folder holding the kind's manifest is resumed (its stale temporary files removed) when
        it was made with this run's ``expected`` values (each manifest key, passed through ``normalise(key,
        value)`` first) and, with ``model``, on a model of this one's :data:`MODEL_KEYS`; otherwise one error
        names what differs and the fix. Without ``resume`` an existing run is refused, or, with ``overwrite``,
        cleared when neurospec may replace it (:meth:`check_replaceable`). A non-empty folder without the manifest
        is refused (kinds that ``own_folder``) or written into."""
        if self.path.exists() and not self.path.is_dir():
            raise NeurospecError(f"output folder {self.path} is a file: choose a new or empty folder for "
                                 f"{self.kind.option}")
        if not self.has_content():
            return None
        if resume and self.has_manifest():
            remove_stale_temporaries(self.path)  # a run killed mid-write leaves one
            manifest = self.read_manifest()
            self.check_same(manifest, expected, normalise)
            if model is not None:
                self.check_same_model(manifest.get("model") or {}, model)
            return Resumed(manifest)
        if not overwrite:
            self._refuse_existing()
            return None
        self.check_replaceable(f"choose a new or empty folder for {self.kind.option}")
        self.clear()
        return None

    def _refuse_existing(self) -> None:
        """Raise for a non-empty folder that the run may not write into as it is (without --resume / --overwrite)."""
        kind = self.kind
        if self.has_manifest():
            instead = "pass --overwrite to replace them" if kind.overwrite else "choose another output folder"
            raise NeurospecError(f"output folder {self.path} holds {kind.what} already: add --resume to continue "
                                 f"them, or {instead}")
        if kind.own_folder:
            raise NeurospecError(f"output folder {self.path} is not empty and holds no {kind.what} (no "
                                 f"{kind.manifest}): choose a new or empty folder")

    def check_same(self, manifest: Mapping[str, Any], expected: Mapping[str, Any],
                   normalise: Callable[[str, Any], Any] | None = None) -> None:
        """Refuse to resume unless ``manifest[key]`` (through ``normalise``) equals ``expected[key]`` for every key."""
        for key, mine in expected.items():
            theirs = manifest.get(key)
            if (normalise(key, theirs) if normalise else theirs) != mine:
                raise NeurospecError(f"cannot resume {self.path}: its {key} {_differ(key)} from this run's ({theirs!r} "
                                     f"vs {mine!r}); run with {self.kind.same}, or choose another {self.kind.option}")

    def check_same_model(self, recorded: Mapping[str, Any], mine: Mapping[str, Any]) -> None:
        """Refuse to resume a run made on another model than ``mine`` (:data:`MODEL_KEYS` of the model
        descriptions; a run recorded without a weights fingerprint is not checked on it)."""
        for key in MODEL_KEYS:
            if key == "weights_fingerprint" and recorded.get(key) is None:
                continue
            if recorded.get(key) != mine.get(key):
                raise NeurospecError(f"cannot resume {self.path}: it was {self.kind.made} on another model ({key} "
                                     f"{recorded.get(key)!r}, this model {mine.get(key)!r}); load the same model or "
                                     f"choose another {self.kind.option}")

    # ---- the manifest and the files it names

    def read_manifest(self) -> dict[str, Any]:
        """``run.read_manifest()``: the manifest, checked for format and version; every failure names the file and
        the fix."""
        kind, path = self.kind, self.path / self.kind.manifest
        if not self.path.is_dir():
            raise NeurospecError(f"{kind.what} folder {self.path} does not exist; make it with `{kind.writer}`")
        if not path.exists():
            raise FileFormatError(f"{self.path} holds no {kind.manifest}: it is not a {kind.what} folder made by "
                                  f"`{kind.writer}`")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise FileFormatError(f"{path} is not valid JSON ({err}); the folder is corrupt: {kind.redo}") from err
        if not _tagged(manifest, kind.format):
            raise FileFormatError(f"{path} is not a neurospec {kind.what} file (format {kind.format!r} expected)")
        if kind.version is not None and manifest.get("version") != kind.version:
            raise FileFormatError(f"{path} has version {manifest.get('version')!r}; this neurospec reads version "
                                  f"{kind.version}")
        return manifest

    def read_tensors(self, manifest: Mapping[str, Any], *, allow_incomplete: bool = False) -> dict[str, torch.Tensor]:
        """``run.read_tensors(manifest)``: the main tensor file the manifest names, refused while the run is
        unfinished (unless ``allow_incomplete``), checked against its fingerprint."""
        kind = self.kind
        if not manifest.get("complete") and not allow_incomplete:
            raise NeurospecError(f"{self.path} holds unfinished {kind.what} (a checkpoint); finish it with "
                                 f"`{kind.writer} ... --resume`")
        files = manifest.get("files") or {}
        name = manifest.get("tensor_file", kind.tensor_file)
        if name not in files:
            raise FileFormatError(f"{self.path / kind.manifest} lists no {name}; the folder is corrupt: {kind.redo}")
        return self.load_tensors(name, files[name])

    def load_tensors(self, name: str, fingerprint: str | None) -> dict[str, torch.Tensor]:
        """``run.load_tensors("sample/fr.safetensors", manifest["files"][...])``: one safetensors file of the folder,
        checked against ``fingerprint`` (None: unchecked)."""
        path, kind = self.path / name, self.kind
        if not path.exists():
            raise FileFormatError(f"{path} is missing; the {kind.what} folder is incomplete: {kind.redo}")
        if fingerprint is not None and file_fingerprint(path) != fingerprint:
            raise FileFormatError(f"{path} does not match the fingerprint recorded in {self.path / kind.manifest} "
                                  f"(changed or truncated); {kind.redo}")
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise FileFormatError(f"{path} cannot be read as safetensors ({err}); {kind.redo}") from err

    @staticmethod
    def free_slot(base: str, referenced: Mapping[str, str]) -> str:
        """``RunFolder.free_slot("stats", manifest["files"])``: the checkpoint slot of ``base`` (``-a`` or ``-b``)
        that the current manifest does not name."""
        first = f"{base}.checkpoint-a.safetensors"
        return f"{base}.checkpoint-b.safetensors" if first in referenced else first

    def write_tensors(self, name: str, tensors: Mapping[str, torch.Tensor]) -> str:
        """``run.write_tensors("stats.safetensors", tensors)``: write the file atomically; returns its fingerprint."""
        path = self.path / name
        atomic_save_safetensors(path, dict(tensors))
        return file_fingerprint(path)

    def commit(self, document: dict[str, Any], files: dict[str, str], previous: Mapping[str, str],
               progress: dict | None = None) -> dict[str, str]:
        """``run.commit(document, files, previous_files, progress)``: write the manifest last (with ``progress``),
        atomically, then remove the files of ``previous`` it no longer names; returns ``files``."""
        if progress is not None:
            document["progress"] = progress
        atomic_write_json(self.path / self.kind.manifest, document)
        for stale in set(previous) - set(files):
            (self.path / stale).unlink(missing_ok=True)
        return files


# --------------------------------------------------------------------------------------------
# The functions the commands call


def read_run_document(folder: PathLike, meta_file: str, fmt: str, version: int, *, what: str, command: str,
                      redo: str) -> dict[str, Any]:
    """The JSON document of a run folder (statistics, attribution, a study run), checked for format and version.

    ``read_run_document("runs/stats", "stats.json", "neurospec.stats", 1, what="statistics",
    command="neurospec collect", redo="collect it again")``: every failure names the file and the fix.
    """
    kind = RunKind(meta_file, fmt, version=version, writer=command, what=what, redo=redo)
    return RunFolder(folder, kind).read_manifest()


def check_replaceable(path: PathLike, *, marker: str, tag: Tag = None, inputs: Iterable[PathLike | None] = (),
                      writer: str = "neurospec", fix: str = "choose a new or empty folder") -> None:
    """Raise :class:`NeurospecError` unless neurospec may delete the folder ``path`` and write it anew.

    Refused: the current folder or one above it, an input (or a folder holding one), a file, and a
    non-empty folder without ``marker`` (see :func:`has_marker`). An absent or empty folder passes."""
    RunFolder(path, RunKind(marker, tag, writer=writer), inputs=inputs).check_replaceable(fix)


def clear_folder(folder: PathLike) -> None:
    """Delete every entry of ``folder`` but its lock file (call :func:`check_replaceable` first)."""
    RunFolder(folder).clear()


@contextlib.contextmanager
def writing(paths: PathLike | Iterable[PathLike | None] | None, what: str, *, file: bool = False) -> Iterator[None]:
    """Lock a command's outputs for its run: ``FOLDER/.lock`` of an output folder, ``FILE.lock`` beside an output
    file (``file=True``; also for a folder that is replaced whole). None entries are skipped.

    Under torchrun only rank 0 locks (the ranks of one collection write one folder together)."""
    if paths is None or isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    chosen = list(dict.fromkeys(Path(p) for p in paths if p is not None))
    with contextlib.ExitStack() as stack:
        for path in chosen:
            stack.enter_context(RunFolder(path).locked(what, beside=file))
        yield
