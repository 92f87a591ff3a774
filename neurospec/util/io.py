"""Atomic artifact writing: a crash or an error never leaves a partial file behind.

    from neurospec.util.io import atomic_write_json, atomic_save_safetensors, file_fingerprint
    atomic_write_json("out/neurons.json", {"format": "neurospec.neuronset", "version": 1})
    atomic_save_safetensors("out/stats.safetensors", {"counts": counts}, {"model": "gpt2"})
    file_fingerprint("out/neurons.json")   # "sha256:9f86d0..."

Every writer serialises first, writes a temporary file in the target's own directory (same file
system), flushes and fsyncs it, then moves it over the target with ``os.replace`` (atomic on POSIX
and Windows). On any failure the temporary file is removed and the target keeps its old content
(or stays absent). Parent directories are created.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import torch

PathLike = str | os.PathLike


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_file(path: PathLike) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """``with atomic_path("big.safetensors") as tmp: save_file(tensors, tmp)``: for writers that want a path.

    Yields a temporary path next to ``path``; when the body returns, the temporary file is
    fsynced and moved over ``path``; when the body raises, it is deleted and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        _fsync_file(tmp_name)
        os.chmod(tmp_name, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def remove_stale_temporaries(folder: PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` leaves when its process is killed mid-write.

    ``remove_stale_temporaries("runs/stats")`` when resuming a run in that folder (recursively);
    returns what was removed. Only names of the form ``.<file>.<random>.tmp`` are touched.
    """
    removed = []
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", *, encoding: str | None = "utf-8") -> Iterator[IO]:
    """``with atomic_open("a.txt") as f: f.write(...)``: the file appears whole on success, never in part.

    ``mode`` is ``"w"`` (text) or ``"wb"`` (bytes). The body writes to a temporary file next to
    ``path``; when the body raises, the temporary file is deleted and ``path`` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding if mode == "w" else None) as handle:
            yield handle


def atomic_write_text(path: PathLike, text: str) -> Path:
    """``atomic_write_text("notes.md", "# Results\\n")``: write UTF-8 text atomically; return the path."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """``atomic_write_bytes("blob.bin", b"...")``: write bytes atomically; return the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def _is_scalar_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        item is None or isinstance(item, (bool, int, float, str)) for item in value
    )


def json_text(obj: Any, *, indent: int = 1) -> str:
    """``json_text({"a": [1, 2, 3]})``: readable JSON, key order kept, lists of scalars on one line.

    Neuron files hold long lists of indices; one index per line (``json.dumps(indent=...)``)
    would make them tens of thousands of lines long. Raises ``TypeError`` or ``ValueError``
    (before anything is written) for values JSON cannot hold, NaN and infinities included.
    """
    pad = " " * indent

    def encode(value: Any, level: int) -> str:
        if isinstance(value, Mapping):
            if not value:
                return "{}"
            inner = pad * (level + 1)
            items = []
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(f"JSON object keys must be strings, not {type(key).__name__} ({key!r})")
                items.append(f"{inner}{json.dumps(key, ensure_ascii=False)}: {encode(item, level + 1)}")
            return "{\n" + ",\n".join(items) + "\n" + pad * level + "}"
        if isinstance(value, (list, tuple)):
            value = list(value)
            if _is_scalar_list(value):
                return "[" + ", ".join(encode(item, level) for item in value) + "]"
            inner = pad * (level + 1)
            return "[\n" + ",\n".join(inner + encode(item, level + 1) for item in value) + "\n" + pad * level + "]"
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    return encode(obj, 0) + "\n"


def atomic_write_json(path: PathLike, obj: Any, *, indent: int = 1) -> Path:
    """``atomic_write_json("run.json", {"model": "gpt2", "layers": [0, 1]})``: readable JSON, atomically.

    Keys keep their insertion order. The whole text is built before the file is opened, so a value
    JSON cannot hold raises without touching ``path``.
    """
    return atomic_write_text(path, json_text(obj, indent=indent))


def atomic_torch_save(path: PathLike, obj: Any) -> Path:
    """``atomic_torch_save("x.neuron.pth", [[torch.tensor([1, 2])]])``: ``torch.save`` atomically.

    For interoperability with reference formats only; neurospec's own artifacts are JSON and
    safetensors, and neurospec loads ``.pth`` files with ``weights_only=True``.
    """
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
    return Path(path)


def atomic_save_safetensors(
    path: PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> Path:
    """``atomic_save_safetensors("stats.safetensors", {"counts": c}, {"model": "gpt2"})``: safetensors, atomically.

    ``metadata`` values must be strings (the safetensors header holds ``str -> str``); pass JSON text
    for anything structured.
    """
    from safetensors.torch import save_file

    if metadata is not None:
        bad = {k: type(v).__name__ for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)}
        if bad:
            raise TypeError(f"safetensors metadata must map str to str; not so for {bad} (encode them with json.dumps)")
    contiguous = {name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata=dict(metadata) if metadata is not None else None)
    return Path(path)


def cache_home() -> Path:
    """neurospec's cache folder: ``$NEUROSPEC_CACHE``, else ``~/.cache/neurospec`` (toy models, GGUF
    conversions, fetched data and fingerprints each keep a subfolder or file there)."""
    return Path(os.environ.get("NEUROSPEC_CACHE", Path.home() / ".cache" / "neurospec"))


def file_fingerprint(path: PathLike, *, chunk_size: int = 1 << 20) -> str:
    """``file_fingerprint("corpus.txt")`` -> ``"sha256:<64 hex digits>"`` of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
