"""Load any Hugging Face decoder with its tokenizer and site map.

    from neurospec.models import load_model
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

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from neurospec.errors import NeurospecError
from neurospec.model_sources import BUILTIN_MODELS, dtype_kwarg, resolve_source
from neurospec.sites import ModelShape, SiteMap, site_map

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


def load_model(
    name_or_path: str | Path,
    *,
    dtype: str | torch.dtype | None = "auto",
    device: str | None = None,
    device_map: str | dict | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    attn_implementation: str | None = None,
    tokenizer: bool = True,
) -> LoadedModel:
    """Load a causal LM in eval mode, with its tokenizer: a hub id, a local folder, a ``.gguf`` file (or hub
    ``OWNER/REPO/FILE.gguf``), dequantized once and cached, or a built-in name such as ``gemma-3-270m``
    (:mod:`neurospec.model_sources`).

    ``device_map="auto"`` spreads a model larger than one device over all of them (accelerate);
    otherwise the model goes to ``device`` (default: cuda when available, else cpu).
    ``trust_remote_code`` stays off unless you ask: it runs code from the model's repository.
    """
    import transformers

    if device_map is None and device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    on_cpu = str(device).startswith("cpu") if device_map is None else not torch.cuda.is_available()
    kwargs = {"trust_remote_code": trust_remote_code, "revision": revision, **dtype_kwarg(parse_dtype(dtype, on_cpu))}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    resolved = resolve_source(name_or_path)
    source = resolved.folder
    try:
        model = _from("from_pretrained", source, **kwargs)
    except _not_found_errors() as err:
        raise NeurospecError(
            f"cannot load model {str(name_or_path)!r}: {err}. Give a local folder saved with save_pretrained, a "
            f".gguf file, a built-in name ({', '.join(BUILTIN_MODELS)}), or a hub id (online, or already in the "
            "Hugging Face cache when HF_HUB_OFFLINE=1)."
        ) from None
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
    loaded.sites  # resolve now: an unsupported architecture fails at load time, with its explanation
    return loaded


def empty_model(name_or_path: str | Path, *, trust_remote_code: bool = False) -> nn.Module:
    """The model's modules on the meta device, built from its config alone (no weights read)."""
    import transformers
    from accelerate import init_empty_weights

    try:
        config = transformers.AutoConfig.from_pretrained(resolve_source(name_or_path).folder,
                                                         trust_remote_code=trust_remote_code)
    except OSError as err:
        raise NeurospecError(f"cannot read the config of model {str(name_or_path)!r}: {err}") from None
    with init_empty_weights():
        model = _from("from_config", config, trust_remote_code=trust_remote_code)
    model.config._name_or_path = str(name_or_path)
    return model


def model_shape(name_or_path: str | Path, *, trust_remote_code: bool = False) -> ModelShape:
    """Layer count and site widths of a model, from its config alone."""
    return SiteMap(empty_model(name_or_path, trust_remote_code=trust_remote_code)).shape
