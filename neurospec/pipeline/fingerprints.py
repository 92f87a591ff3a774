"""Fingerprints of a step's inputs: content hashes of files and folders, and of everything a step reads.

    cache = ContentHashes(run_dir / ".fingerprints.json")
    cache.of(Path("corpora/fr"))                     # 'sha256:...' over every file's name and bytes
    step_fingerprint(step, hashes=cache, upstream={"collect": "8f3c..."}, data="blend=sha256:...")

A file is hashed once per (size, modification time); the cache keeps the hashes between runs. A step's
fingerprint covers its verb, its options (output-only options left out), the content of every path it
names, the model, the registered data sets it reads by name (``data``), the neurospec version, and the output id
of every step it reads, which changes whenever that step is run again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from neurospec.pipeline.verbs import COSMETIC_OPTIONS
from neurospec.util.hashing import ContentHashes
from neurospec.version import __version__


def model_fingerprint(model: Any, hashes: ContentHashes) -> str:
    """``hub:ID`` for a hub model, the content of a local folder or file, ``toy:NAME-RECIPEHASH`` for a toy,
    ``builtin:NAME:SHA256`` (its GGUF file's, pinned by its package) for a built-in model."""
    if model.kind == "builtin":
        from neurospec.core.model_sources import BUILTIN_MODELS

        return f"builtin:{model.value}:{BUILTIN_MODELS[model.value].sha256()}"
    if model.kind == "toy":
        from neurospec.toy import toy_folder

        return f"toy:{toy_folder(model.value).name}"
    if model.kind == "local":
        return hashes.of(Path(model.value))
    return f"hub:{model.value}"


def step_fingerprint(step: Any, *, hashes: ContentHashes, upstream: dict[str, str], data: str | None) -> str:
    """sha256 of everything the step's result depends on (see the module docstring)."""
    from neurospec.pipeline.values import Model, Reference

    def describe(value: Any) -> Any:
        if isinstance(value, list):
            return [describe(item) for item in value]
        if isinstance(value, tuple):
            return [value[0], describe(value[1])]
        if isinstance(value, Reference):
            return {"step": value.step, "companion": value.companion, "sub": value.sub,
                    "output_id": upstream.get(value.step)}
        if isinstance(value, Model):
            return model_fingerprint(value, hashes)
        if isinstance(value, Path):
            return {"content": hashes.of(value)}      # where the input lies does not matter, only what it holds
        return value

    options = {name: describe(value) for name, value in sorted(step.values.items()) if name not in COSMETIC_OPTIONS}
    document = {"verb": step.verb.name, "options": options, "neurospec": __version__,
                "data": data}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]
