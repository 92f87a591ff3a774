"""Load any Hugging Face decoder with its tokenizer and site map.

    from neurospec.core.models import load_model
    lm = load_model("Qwen/Qwen2.5-0.5B", dtype="bfloat16", device="cuda")
    lm = load_model("./my-local-model")                        # a folder saved with save_pretrained
    lm = load_model("google/gemma-3-27b-it", device_map="auto") # larger than one device
    lm = load_model("gemma-3-270m")                             # built in: a real model, offline (the [demo] extra)
    lm = load_model("models/qwen2.5-0.5b-q8_0.gguf")            # GGUF: dequantized once, cached as safetensors
    lm.model, lm.tokenizer, lm.sites.width("act")

``model_shape(name)`` reads only the config (weights are never loaded) to tell how many layers and
neurons a model has, e.g. to validate a neuron file against it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import torch
from torch import nn

from neurospec.core.model_sources import BUILTIN_MODELS, check_exists, dtype_kwarg, resolve_source
from neurospec.core.sites import ModelShape, SiteMap, site_map
from neurospec.util.errors import NeurospecError, NeurospecWarning

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


@dataclass
class LoadedModel:
    """A model in eval mode, its tokenizer (None when asked for none) and its site map."""

    model: nn.Module
    tokenizer: object | None
    name: str

    @property
    def sites(self) -> SiteMap:
        return site_map(self.model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def parse_dtype(dtype: str | torch.dtype | None, on_cpu: bool) -> torch.dtype | str:
    """``"auto"`` means float32 on CPU (bf16 is many times slower there) and the checkpoint's dtype elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.float32 if on_cpu else "auto"
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise NeurospecError(f"unknown dtype {dtype!r}: use one of auto, {', '.join(sorted(_DTYPES))}") from None


def _model_classes():
    """Causal LMs first; image-text-to-text for multimodal wrappers (Gemma-3 12b/27b-it) not mapped there."""
    import transformers

    classes = [transformers.AutoModelForCausalLM]
    for name in ("AutoModelForImageTextToText", "AutoModelForVision2Seq"):
        if hasattr(transformers, name):
            classes.append(getattr(transformers, name))
    return classes


def _not_found_errors() -> tuple[type[Exception], ...]:
    """What a missing model raises: OSError, or (transformers 4.50 to 4.57, for a local path that does not
    exist) huggingface_hub's HFValidationError, a ValueError saying the path is no valid repo id."""
    try:
        from huggingface_hub.errors import HFValidationError
    except ImportError:  # huggingface_hub < 0.24
        from huggingface_hub.utils import HFValidationError
    return (OSError, HFValidationError)


def _from(factory_name: str, source, **kwargs):
    last_error = None
    not_found = _not_found_errors()
    for auto_class in _model_classes():
        try:
            return getattr(auto_class, factory_name)(source, **kwargs)
        except ValueError as err:  # "Unrecognized configuration class ... for this kind of AutoModel"
            if isinstance(err, not_found):
                raise
            last_error = err
    raise NeurospecError(
        f"{source if isinstance(source, str) else type(source).__name__} is not a causal language model "
        f"transformers can load ({last_error}). Pass a decoder model id or folder."
    )


# Config fields every decoder's modules are sized by: a value that is no positive whole number (``"four"``)
# would fail deep inside the model's constructor.
_SIZE_FIELDS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings")
_SHOWN = 5  # names listed in a message about weights; the rest are counted


def _config_errors() -> tuple[type[Exception], ...]:
    """What reading an invalid config.json raises: ValueError (custom code not allowed, an unknown model type),
    TypeError or KeyError (a malformed field), or huggingface_hub's strict-dataclass validation error."""
    try:
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:  # huggingface_hub before 0.31 validates nothing
        return (ValueError, TypeError, KeyError)
    return (ValueError, TypeError, KeyError, StrictDataclassError)


def _config_file(source: str, name: str) -> str:
    folder = Path(source).expanduser()
    return str(folder / "config.json") if folder.is_dir() else f"the config.json of {name!r}"


def _not_found_message(name: str, err: Exception) -> str:
    return (f"cannot load model {name!r}: {err}. Give a local folder saved with save_pretrained, a .gguf file, a "
            f"built-in name ({', '.join(BUILTIN_MODELS)}), or a hub id (online, or already in the Hugging Face cache "
            "when HF_HUB_OFFLINE=1).")


def read_config(source: str, name: str, *, trust_remote_code: bool = False, revision: str | None = None):
    """The model's transformers config, or a NeurospecError naming ``name``, what is wrong and the fix: a
    missing model, a config.json that is no valid config, a size field that is no positive whole number, or
    custom code (``auto_map``) that was not allowed to run."""
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code,
                                                         revision=revision)
    except _not_found_errors() as err:
        raise NeurospecError(_not_found_message(name, err)) from None
    except _config_errors() as err:
        if "trust_remote_code" in str(err):
            raise NeurospecError(
                f"model {name!r} needs code from its own repository (auto_map in its config.json), which was not "
                "run; if you trust that code, pass trust_remote_code=True"
            ) from None
        raise NeurospecError(f"{_config_file(source, name)} is not a valid model config ({err}); fix the file or "
                             "save the model again") from None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in _SIZE_FIELDS:
        value = getattr(text, key, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise NeurospecError(f"{_config_file(source, name)}: {key} is {value!r}, not a positive whole number; "
                                 "fix it to the model's value (it must match the weights)")
    return config


@contextlib.contextmanager
def _quiet_loading(bars: bool = True) -> Iterator[None]:
    """transformers' own multi-line loading reports off while loading (load_model reports in one line); its
    progress bars too unless ``bars``."""
    import transformers

    logging = transformers.utils.logging
    before = logging.get_verbosity()
    bars_before = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    if not bars:
        logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(before)
        if bars_before and not bars:
            logging.enable_progress_bar()


def _listed(names, total: int | None = None) -> str:
    names = sorted(names)
    total = len(names) if total is None else total
    more = f" and {total - _SHOWN} more" if total > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more + f" ({total} in all)"


def _is_unreadable_weights(err: Exception) -> bool:
    """A damaged or truncated weight file: safetensors' own error, or torch.load's for a .bin file."""
    if type(err).__name__ == "SafetensorError" or isinstance(err, (EOFError, pickle.UnpicklingError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        word in text for word in ("PytorchStreamReader", "zip archive", "deserializ", "incomplete metadata"))


def _unreadable_files(source: str) -> list[str]:
    """The safetensors files of a local model folder whose header cannot be read."""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        return []
    from safetensors import safe_open

    bad = []
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except Exception:  # noqa: BLE001  safetensors' error type differs between versions
            bad.append(str(path))
    return bad


def _check_loaded_weights(model: nn.Module, info: dict, name: str, allow_missing_weights: bool) -> bool:
    """Refuse a model whose checkpoint lacked weights, held weights it has no place for, or held weights of
    another size than its config says. A weight tied to another (the output layer of a model with tied
    embeddings) or a buffer the model computes itself is not missing."""
    mismatched = sorted(info.get("mismatched_keys") or (), key=lambda item: item[0])
    if mismatched:
        key, in_file, by_config = mismatched[0][:3]
        raise NeurospecError(
            f"the weights of model {name!r} do not match its config.json: {key} is {tuple(in_file)} in the "
            f"checkpoint but {tuple(by_config)} by the config (weights of another size: "
            f"{_listed([item[0] for item in mismatched])}); fix config.json (e.g. intermediate_size, hidden_size, "
            "vocab_size) to the checkpoint's sizes"
        )
    sharing: dict[int, list[str]] = {}
    for key, parameter in model.named_parameters(remove_duplicate=False):
        sharing.setdefault(id(parameter), []).append(key)
    missing_all = set(info.get("missing_keys") or ())
    buffers = {key for key, _ in model.named_buffers()}
    missing = sorted(
        key for key in missing_all if key not in buffers and not any(
            other not in missing_all for names in sharing.values() if key in names for other in names))
    unexpected = sorted(info.get("unexpected_keys") or ())
    if not missing and not unexpected:
        return True
    parts = []
    if missing:
        parts.append(f"missing from the checkpoint (they would be random): {_listed(missing)}")
    if unexpected:
        parts.append(f"in the checkpoint but not in the model: {_listed(unexpected)}")
    message = f"model {name!r}: weights " + "; weights ".join(parts)
    if allow_missing_weights:
        warnings.warn(f"{message}; loaded anyway (allow_missing_weights)", NeurospecWarning, stacklevel=3)
        return False
    raise NeurospecError(f"{message}. The weight files are incomplete or belong to another architecture: download "
                         "or save the model again (allow_missing_weights=True, or the environment variable "
                         "NEUROSPEC_ALLOW_MISSING_WEIGHTS=1, loads it anyway)")


def check_device(device: str | None) -> None:
    """Refuse a device this machine does not have (``cuda`` without CUDA, ``cuda:3`` with 2 GPUs)."""
    if device is None:
        return
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as err:
        raise NeurospecError(f"device={device!r} is no device torch knows ({err}); use cpu, cuda or cuda:N") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise NeurospecError(f"device={device!r}: {why}; use device='cpu', or leave the device out "
                                 "(cuda when available, else cpu)")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise NeurospecError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                                 f"numbered from 0; use device='cuda:0'")
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise NeurospecError(f"device={device!r}: MPS is not available here; use device='cpu'")


def load_model(
    name_or_path: str | Path,
    *,
    dtype: str | torch.dtype | None = "auto",
    device: str | None = None,
    device_map: str | dict | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    attn_implementation: str | None = None,
    tokenizer: bool = True,
    allow_missing_weights: bool = False,
    quiet: bool = False,
) -> LoadedModel:
    """Load a causal LM in eval mode, with its tokenizer: a hub id, a local folder, a ``.gguf`` file (or hub
    ``OWNER/REPO/FILE.gguf``), dequantized once and cached, or a built-in name such as ``gemma-3-270m``
    (:mod:`neurospec.core.model_sources`).

    ``device_map="auto"`` spreads a model larger than one device over all of them (accelerate);
    otherwise the model goes to ``device`` (default: cuda when available, else cpu).
    ``trust_remote_code`` stays off unless you ask: it runs code from the model's repository.

    A checkpoint that lacks weights of the model (transformers would initialise them randomly) or holds
    weights the model has no place for is refused, naming them; ``allow_missing_weights=True`` loads it
    anyway, with a warning (so does the environment variable ``NEUROSPEC_ALLOW_MISSING_WEIGHTS=1``, for
    the command line). Weights of another size than config.json says are always refused, as are a
    damaged weight file, an invalid config.json and a device this machine lacks. ``quiet`` also silences
    transformers' own progress bars while loading. ``revision`` (a hub branch, tag or commit) and ``model_args``
    (more keyword arguments of ``from_pretrained``, e.g. ``{"attn_implementation": "eager"}``; see
    :func:`parse_model_args`) are recorded in the provenance of every result.
    """
    import transformers

    if device_map is None and device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device_map is None:
        check_device(device)
    on_cpu = str(device).startswith("cpu") if device_map is None else not torch.cuda.is_available()
    kwargs = {"trust_remote_code": trust_remote_code, "revision": revision, **dtype_kwarg(parse_dtype(dtype, on_cpu))}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    kwargs.update(checked_model_args(model_args or {}))
    check_exists(name_or_path)
    resolved = resolve_source(name_or_path)
    source = resolved.folder
    name = str(name_or_path)
    read_config(source, name, trust_remote_code=trust_remote_code, revision=revision)
    try:
        with _quiet_loading(bars=not quiet):
            model, info = _from("from_pretrained", source, output_loading_info=True, ignore_mismatched_sizes=True,
                                **kwargs)
    except _not_found_errors() as err:
        raise NeurospecError(_not_found_message(name, err)) from None
    except Exception as err:  # noqa: BLE001  classified below; anything else is re-raised as it was
        if _is_unreadable_weights(err):
            files = _unreadable_files(source)
            where = f"{', '.join(files)} cannot be read" if files else "a weight file cannot be read"
            raise NeurospecError(f"model {name!r}: {where} ({err}): the file is damaged or truncated (an interrupted "
                                 "download or copy?); download or save the model again") from None
        if isinstance(err, RuntimeError) and "size mismatch" in str(err):
            raise NeurospecError(f"the weights of model {name!r} do not match its config.json ({err}); fix "
                                 "config.json to the checkpoint's sizes") from None
        raise
    allow = allow_missing_weights or os.environ.get("NEUROSPEC_ALLOW_MISSING_WEIGHTS") == "1"
    complete = _check_loaded_weights(model, info, name, allow)
    model.neurospec_loaded_from = {"source": source, "revision": revision, "complete": complete,  # for provenance
                                   "model_args": {key: model_args[key] for key in sorted(model_args or {})}}
    if device_map is None:
        model.to(device)
    model.eval()
    model.neurospec_source = resolved.provenance  # recorded by every result that describes the model
    if source != str(name_or_path):  # a GGUF file or built-in name: results name it, not the cache folder
        model.name_or_path = model.config._name_or_path = str(name_or_path)
    tok = None
    if tokenizer:
        tok = transformers.AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, revision=revision)
    loaded = LoadedModel(model, tok, str(name_or_path))
    site_map(loaded.model)  # resolve now: an unsupported architecture fails at load time, with its explanation
    return loaded


# from_pretrained arguments neurospec sets from its own options: --model-arg may not give them
OWN_LOADING_ARGS = {"trust_remote_code": "--trust-remote-code", "revision": "--revision", "torch_dtype": "--dtype",
                    "dtype": "--dtype", "device_map": "--device-map", "output_loading_info": None,
                    "pretrained_model_name_or_path": "--model"}


def parse_model_args(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["attn_implementation=eager", "low_cpu_mem_usage=true"]`` -> ``{"attn_implementation": "eager",
    "low_cpu_mem_usage": True}`` (as lm-eval's ``model_args``: true/false, integers and decimals are converted,
    anything else stays text); a mapping is checked and returned."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return checked_model_args(items)
    parsed: dict[str, Any] = {}
    for item in items:
        key, equals, text = str(item).partition("=")
        key = key.strip()
        if not equals or not key.isidentifier():
            raise NeurospecError(f"--model-arg {item!r}: give KEY=VALUE, e.g. --model-arg attn_implementation=eager")
        if key in parsed:
            raise NeurospecError(f"--model-arg {key} is given twice; give each key once")
        parsed[key] = _model_arg_value(text.strip())
    return checked_model_args(parsed)


def _model_arg_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def checked_model_args(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` unless one of them is set by a neurospec option (named in the one-line error)."""
    for key in arguments:
        if key in OWN_LOADING_ARGS:
            use = OWN_LOADING_ARGS[key]
            raise NeurospecError(f"--model-arg {key}=...: neurospec sets {key} itself"
                                 + (f"; use {use}" if use else "; leave it out"))
    return dict(arguments)


def empty_model(name_or_path: str | Path, *, trust_remote_code: bool = False) -> nn.Module:
    """The model's modules on the meta device, built from its config alone (no weights read)."""
    from neurospec.util.extras import require

    init_empty_weights = require("accelerate", "building a model without weights").init_empty_weights

    check_exists(name_or_path)
    config = read_config(resolve_source(name_or_path).folder, str(name_or_path), trust_remote_code=trust_remote_code)
    with init_empty_weights():
        model = _from("from_config", config, trust_remote_code=trust_remote_code)
    model.config._name_or_path = str(name_or_path)
    return model


def model_shape(name_or_path: str | Path, *, trust_remote_code: bool = False) -> ModelShape:
    """Layer count and site widths of a model, from its config alone."""
    return SiteMap(empty_model(name_or_path, trust_remote_code=trust_remote_code)).shape
