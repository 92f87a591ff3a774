"""What produced a result: the model's fingerprint, the sha256 of every input file, and the options.

    from neurospec.core.provenance import model_fingerprint, provenance, stamp
    model_fingerprint(lm.model)                 # 'sha256:...' of its config and weights (cached on the model)
    record = provenance(lm.model, inputs={"neurons": Path("lape.json")}, options={"recipe": "zero"})
    stamp(Path("runs/ppl/ppl.json"), record)    # adds the record as "provenance" to a written JSON result

The weights fingerprint is a sha256 over every parameter's name, shape and values rounded to bfloat16,
so the same checkpoint loaded in float32 on a CPU and in bfloat16 on a GPU has one fingerprint, and a model
built in Python has the same fingerprint as the folder it is saved to. It is computed once per loaded
model (about a second per billion parameters) and, for a model :func:`neurospec.core.models.load_model` read
from files, remembered per weight file (size and modification time) in ``~/.cache/neurospec/
fingerprints.json`` (``NEUROSPEC_CACHE`` moves it). Input files are hashed once per (size, modification
time) too (``file-hashes.json`` there). docs/artifacts.md describes the record.

:func:`check_made_on` warns (:class:`~neurospec.util.errors.OtherWeightsWarning`) when a neuron file or a
statistics folder was made on other weights than the model it is used with; ``NeuronSet.validate_for``
and ``ActivationStats.check_model`` call it when given a model's site map.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

import torch

from neurospec.util.errors import OtherWeightsWarning
from neurospec.util.io import atomic_write_json, cache_home, json_text
from neurospec.version import __version__

_CHUNK = 1 << 24  # elements rounded and hashed at a time: bounded extra memory on the model's device
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# config keys that name or describe a copy of the model, not the model
_CONFIG_NOISE = ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "architectures", "_commit_hash")


def config_fingerprint(model: Any) -> str:
    """sha256 of the model's config without its name, dtype and versions (as stats.json records it)."""
    config = model.config.to_dict()
    for key in _CONFIG_NOISE:
        config.pop(key, None)
    return "sha256:" + hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def _hash_parameters(model: torch.nn.Module) -> str | None:
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters(), key=lambda item: item[0]):
        if parameter.device.type == "meta":  # offloaded by accelerate: the values are not here to hash
            return None
        data = parameter.detach().reshape(-1)
        digest.update(f"{name}\0{tuple(parameter.shape)}\0".encode())
        for start in range(0, data.numel(), _CHUNK):
            chunk = data[start:start + _CHUNK]
            if chunk.is_floating_point():
                chunk = chunk.to(torch.bfloat16).view(torch.int16)
            digest.update(chunk.cpu().contiguous().numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def _weight_files(model: Any) -> list[Path]:
    """The weight files ``load_model`` read the model from (none when it was built in Python)."""
    loaded = getattr(model, "neurospec_loaded_from", None) or {}
    if not loaded.get("complete"):
        return []
    folder = Path(str(loaded.get("source", ""))).expanduser()
    if not folder.is_dir():  # a hub id: its snapshot folder in the Hugging Face cache, if there
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(str(loaded.get("source")), "config.json", revision=loaded.get("revision"))
        except Exception:  # noqa: BLE001  no hub cache, an odd name: no files to key the memo by
            return []
        if not isinstance(found, str):
            return []
        folder = Path(found).parent
    return sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())


def weights_fingerprint(model: torch.nn.Module) -> str | None:
    """sha256 of the model's parameters at bfloat16 precision (see the module docstring); None when they are
    offloaded. Cached on the model (``model.neurospec_weights_fingerprint``): change the weights in place
    and the cached value describes them as loaded."""
    known = getattr(model, "neurospec_weights_fingerprint", None)
    if known is not None:
        return known
    import transformers

    files = _weight_files(model)
    key = None
    memo_path = cache_home() / "fingerprints.json"
    memo: dict[str, str] = {}
    if files:
        key = json.dumps([type(model).__name__, transformers.__version__, torch.__version__,
                          [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]])
        try:
            memo = json.loads(memo_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            memo = {}
    value = memo.get(key) if key else None
    if value is None:
        with torch.no_grad():
            value = _hash_parameters(model)
        if key and value:
            memo[key] = value
            try:
                atomic_write_json(memo_path, memo)
            except OSError:  # a read-only cache is only slower
                pass
    try:
        model.neurospec_weights_fingerprint = value
    except AttributeError:
        pass
    return value


def model_fingerprint(model: torch.nn.Module) -> str | None:
    """sha256 over the config fingerprint and the weights fingerprint; None when the weights are offloaded."""
    weights = weights_fingerprint(model)
    if weights is None:
        return None
    text = f"{config_fingerprint(model)}\n{weights}"
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def describe_model(model: torch.nn.Module) -> dict[str, Any]:
    """The ``model`` section of a provenance record."""
    dtype = next((p.dtype for p in model.parameters()), None)
    return {"id": getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None) or None,
            "fingerprint": model_fingerprint(model), "weights_fingerprint": weights_fingerprint(model),
            "config_fingerprint": config_fingerprint(model), "class": type(model).__name__,
            "dtype": str(dtype).replace("torch.", "") if dtype is not None else None,
            "source": getattr(model, "neurospec_source", None), **loading_options(model)}


def loading_options(model: torch.nn.Module) -> dict[str, Any]:
    """``{"revision": ..., "model_args": {...}}`` as ``load_model`` was given them (only those given)."""
    loaded = getattr(model, "neurospec_loaded_from", None) or {}
    return {key: loaded[key] for key in ("revision", "model_args") if loaded.get(key)}


def _from_record(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A model section recorded elsewhere (stats.json's, an attribution run's, a neuron file's provenance)."""
    keys = ("id", "model_id", "fingerprint", "weights_fingerprint", "config_fingerprint", "class", "dtype", "source",
            "revision", "model_args")
    if "fingerprint" not in recorded and recorded.get("weights_fingerprint") and recorded.get("config_fingerprint"):
        text = f"{recorded['config_fingerprint']}\n{recorded['weights_fingerprint']}"
        recorded = {**recorded, "fingerprint": "sha256:" + hashlib.sha256(text.encode()).hexdigest()}
    section = {("id" if key == "model_id" else key): recorded[key] for key in keys if key in recorded}
    return section


# --------------------------------------------------------------------------------------------
# Input files


def input_sha256(path: Path) -> str:
    """``sha256:...`` of a file's bytes, or of a folder (each file's relative name and sha256, sorted; a
    folder's lock file left out), remembered per (size, modification time)."""
    from neurospec.util.hashing import ContentHashes

    hashes = ContentHashes(cache_home() / "file-hashes.json")
    try:
        return hashes.of(Path(path))
    finally:
        try:
            hashes.save()
        except OSError:  # a read-only cache is only slower
            pass


def describe_input(path: Path) -> dict[str, Any]:
    """``{"path", "sha256"}`` of one input, and the weights it was made on when it records them."""
    path = Path(path)
    entry: dict[str, Any] = {"path": str(path), "sha256": input_sha256(path)}
    made_on = recorded_model(path)
    if made_on and made_on.get("weights_fingerprint"):
        entry["made_on"] = made_on["weights_fingerprint"]
    return entry


def recorded_model(path: Path) -> dict[str, Any] | None:
    """The model a neurospec artifact says it was made on: a neuron file's provenance, a statistics folder's or
    an attribution run's model section; None for anything else."""
    path = Path(path)
    candidates = [path] if path.is_file() else [path / "stats.json", path / "attribution.json"]
    for candidate in candidates:
        if not candidate.is_file() or candidate.suffix != ".json":
            continue
        try:
            document = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict):
            return None
        if document.get("format") == "neurospec.neuronset":
            meta = document.get("meta") or {}
            return made_on(meta.get("source") if isinstance(meta, dict) else None)
        model = document.get("model")
        if isinstance(model, dict):
            return model
        settings = document.get("settings")
        if isinstance(settings, dict) and isinstance(settings.get("model"), dict):
            return settings["model"]
        provenance_record = document.get("provenance")
        if isinstance(provenance_record, dict) and isinstance(provenance_record.get("model"), dict):
            return provenance_record["model"]
    return None


def made_on(source: Any) -> dict[str, Any] | None:
    """The model section of the provenance in a NeuronSet's ``meta.source``; None when it records none."""
    if isinstance(source, Mapping):
        record = source.get("provenance")
        if isinstance(record, Mapping) and isinstance(record.get("model"), Mapping):
            return dict(record["model"])
    return None


# --------------------------------------------------------------------------------------------
# The record


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return "nan"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def provenance(model: torch.nn.Module | Mapping[str, Any] | None, inputs: Mapping[str, Path | None] | None = None,
               options: Mapping[str, Any] | None = None, *, command: str | None = None) -> dict[str, Any]:
    """The provenance record of a result: neurospec's version, the time, ``command``, the model (a loaded
    model, or the model section of the artifact the result was made from; None: the model the first input
    that records one was made on), each input file's path and sha256 (and the weights it was made on, when
    it records them) and ``options``."""
    described = {name: describe_input(Path(path)) for name, path in (inputs or {}).items() if path is not None}
    if isinstance(model, torch.nn.Module):
        section = describe_model(model)
    elif isinstance(model, Mapping):
        section = _from_record(model)
    else:
        section = next((_from_record(found) for name, path in (inputs or {}).items()
                        if path is not None and (found := recorded_model(Path(path)))), None)
    record: dict[str, Any] = {
        "neurospec": __version__, "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "command": command, "model": section, "inputs": described, "options": _plain(dict(options or {})),
    }
    json_text(record)  # fails here, before any file is touched, if something cannot be written as JSON
    return record


def stamp(path: Path, record: Mapping[str, Any]) -> Path:
    """Add ``record`` as ``"provenance"`` to the JSON result at ``path`` (rewritten atomically); return ``path``."""
    path = Path(path)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["provenance"] = dict(record)
    return atomic_write_json(path, document)


def check_made_on(model: torch.nn.Module, recorded: Mapping[str, Any] | None, what: str) -> None:
    """Warn when ``recorded`` (the model section an artifact records) names other weights than ``model``'s."""
    theirs = (recorded or {}).get("weights_fingerprint")
    if not theirs:
        return
    mine = weights_fingerprint(model)
    if mine is None or mine == theirs:
        return
    name = (recorded or {}).get("id") or (recorded or {}).get("model_id") or "a model"
    here = getattr(model, "name_or_path", None) or "this model"
    warnings.warn(f"{what}: made on other weights ({name}, {theirs[:19]}...) than those of {here} "
                  f"({mine[:19]}...), though the shapes match; what it records may mean something else here: use "
                  "the model it was made on, or make it again on this one", OtherWeightsWarning, stacklevel=3)
