"""Fine-tune only chosen modules of a model (the culture paper's layer-restricted fine-tuning).

    from neurospec.train import layers_by_neuron_count, mlp_module_names, finetune, save_finetuned
    layers = layers_by_neuron_count(neurons, "culture-general", k=4)              # richest 4 layers
    control = layers_by_neuron_count(neurons, "culture-general", k=4, order="none")  # 4 layers with none
    result = finetune(model, tok, qnli_items, mlp_module_names(model, layers))     # lr 3e-5, 1 epoch, 10k items
    save_finetuned(model, tok, "runs/ft-richest", result=result)

The culture-neuron paper (METHODS section 3, last paragraph) fine-tunes a model on an NLU set
(QNLI, 10k samples, 1 epoch, lr 3e-5) while training ONLY the MLPs of the k layers richest in
culture-general neurons, or of k layers holding none, and compares cultural and NLU accuracy
before and after. Its reference unfreezes Gemma-3 parameters only; here the modules are found
structurally (:mod:`neurospec.core.sites`) for every decoder family.

The loss is the cross-entropy of the gold option's letter at the answer position (the last
prompt token; full-vocabulary softmax), over prompts made exactly as :func:`neurospec.evaluate.scoring.
choose_by_letter` makes them, so accuracy before and after is measured with the same prompt:

    loss = -log softmax(logits[last prompt token])[letter_id(gold)]

Only the parameters of the named modules are given to AdamW and have ``requires_grad``; every
other parameter stays bit-identical. A parameter shared with a module that is not trained (tied
input/output embeddings) is refused rather than trained behind the caller's back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import fnmatch
import functools
import math
import os
import shutil
import tempfile
from numbers import Integral
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import torch
from torch import nn

from neurospec.core.forward import accepts
from neurospec.core.sites import ATTENTION_SITES, MLP_SITES, site_map
from neurospec.data.items import MCItem
from neurospec.data.prompts import PLAIN, EncodedPrompt, PromptFormat, collate, ensure_pad_token
from neurospec.data.splits import item_ids
from neurospec.evaluate.scoring import encode_lettered, lettered_prompt, model_device
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.results.finetune import FinetuneResult
from neurospec.util.errors import NeurospecError, UnsupportedModelError
from neurospec.util.io import atomic_write_json
from neurospec.util.progress import progress as _progress

LayerOrder = Literal["richest", "none", "poorest"]
LetterForm = Literal["auto", "bare", "space"]

__all__ = [
    "FinetuneResult", "attention_module_names", "finetune", "layers_by_neuron_count", "mlp_module_names",
    "save_finetuned", "trainable_parameters",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------
# Choosing the layers


def layers_by_neuron_count(neurons: NeuronSet, group: str, k: int, *, site: str | None = None,
                           order: LayerOrder = "richest", seed: int = 0) -> list[int]:
    """``k`` layers chosen by how many neurons of ``group`` they hold, in ascending layer order.

    ``order="richest"``: the k layers with the most neurons (all sites summed, or only ``site``),
    ties broken by the lower layer index. ``"poorest"``: the k with the fewest, ties likewise.
    ``"none"``: k layers holding no neuron of the group, a seeded draw among all such layers
    (the paper's control); an error when fewer than k layers are empty.
    """
    if not _is_int(k) or not 1 <= k <= neurons.num_layers:
        raise NeurospecError(
            f"k={k!r} layers cannot be chosen: the neuron set has {neurons.num_layers} layers, so k must be "
            f"an integer from 1 to {neurons.num_layers}."
        )
    if order not in ("richest", "none", "poorest"):
        raise NeurospecError(f"unknown order {order!r}: use 'richest', 'none' or 'poorest'.")
    counts = neurons.per_layer_counts(group, site).tolist()  # unknown group or site: a clear error there
    layers = range(len(counts))
    if order == "richest":
        chosen = sorted(layers, key=lambda layer: (-counts[layer], layer))[:k]
    elif order == "poorest":
        chosen = sorted(layers, key=lambda layer: (counts[layer], layer))[:k]
    else:
        empty = [layer for layer in layers if counts[layer] == 0]
        if len(empty) < k:
            where = f" at site {site!r}" if site else ""
            raise NeurospecError(
                f"only {len(empty)} of {len(counts)} layers hold no neuron of group {group!r}{where}, fewer than "
                f"k={k}: choose k <= {len(empty)}, or use order='poorest' for the k layers with the fewest neurons."
            )
        generator = torch.Generator().manual_seed(int(seed))
        chosen = [empty[i] for i in torch.randperm(len(empty), generator=generator)[:k].tolist()]
    return sorted(chosen)


# --------------------------------------------------------------------------------------------
# Finding the MLP and attention blocks of a layer


def _layer_list(layers: Sequence[int] | int, num_layers: int) -> list[int]:
    if _is_int(layers):
        layers = [int(layers)]  # type: ignore[list-item]
    chosen: list[int] = []
    for layer in layers:  # type: ignore[union-attr]
        if not _is_int(layer) or not 0 <= layer < num_layers:
            raise NeurospecError(
                f"layer {layer!r} does not exist: the model has {num_layers} layers (0..{num_layers - 1})."
            )
        if int(layer) not in chosen:
            chosen.append(int(layer))
    if not chosen:
        raise NeurospecError("no layers given: pass at least one layer index (see layers_by_neuron_count).")
    return chosen


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _block_names(model: nn.Module, layers: Sequence[int] | int, sites: tuple[str, ...], kind: str) -> list[str]:
    """Per layer, the block (``mlp``, ``self_attn``, ...) holding ``sites``: the first path component under it.

    Where a site's module sits directly on the decoder layer (OPT's ``fc1``/``fc2``), there is no
    block to name, so those site modules themselves (with parameters) are named instead.
    """
    sites_here = site_map(model)
    present = [s for s in sites if s in sites_here.specs]
    if not present:
        raise UnsupportedModelError(
            f"no {kind} site is known in {sites_here.model_type} models (sites here: {', '.join(sites_here.sites)}), "
            "so its modules cannot be located: name the modules to train yourself, or register a site map "
            "(neurospec.core.sites.register_family)."
        )
    names: list[str] = []
    for layer in _layer_list(layers, sites_here.num_layers):
        prefix = f"{sites_here.layers_path}.{layer}."
        block = sites_here.layers[layer]
        order = {name: i for i, (name, _) in enumerate(block.named_modules())}
        found: dict[str, None] = {}
        for site in present:
            location = sites_here.locate(site, layer)
            relative = location.module_name[len(prefix):] if location.module_name.startswith(prefix) else None
            if not relative:
                raise UnsupportedModelError(
                    f"site {site!r} of layer {layer} is at {location.module_name!r}, outside the layer "
                    f"{prefix[:-1]!r}: name the modules to train yourself."
                )
            first = relative.split(".")[0]
            if first == relative:  # the site module is a direct child of the layer: no block around it
                if _has_parameters(location.module):
                    found[relative] = None
            else:
                found[first] = None
        if not found:
            raise UnsupportedModelError(
                f"the {kind} sites of layer {layer} ({', '.join(present)}) hold no parameters and sit in no block: "
                "name the modules to train yourself."
            )
        names += [prefix + name for name in sorted(found, key=lambda n: order.get(n, len(order)))]
    return names


def mlp_module_names(model: nn.Module, layers: Sequence[int] | int) -> list[str]:
    """Full module names of the MLP block of each layer: ``["model.layers.3.mlp", ...]``.

    Found from the MLP sites for any family (GPT-2 ``transformer.h.3.mlp``, Phi-3's fused
    ``gate_up_proj`` inside ``model.layers.3.mlp``). OPT has no MLP module: its ``fc1`` and ``fc2``
    are named instead.
    """
    return _block_names(model, layers, MLP_SITES, "MLP")


def attention_module_names(model: nn.Module, layers: Sequence[int] | int) -> list[str]:
    """Full module names of the attention block of each layer: ``["model.layers.3.self_attn", ...]``."""
    return _block_names(model, layers, ATTENTION_SITES[:1], "attention")


# --------------------------------------------------------------------------------------------
# Which parameters are trained


_WILDCARDS = ("*", "?", "[")


def _under(name: str, module: str) -> bool:
    return module == "" or name.startswith(module + ".")


def trainable_parameters(model: nn.Module, modules: Sequence[str]) -> dict[str, nn.Parameter]:
    """Every parameter under the named modules: ``{"model.layers.3.mlp.up_proj.weight": Parameter, ...}``.

    ``modules`` are full module names as in ``model.named_modules()`` or fnmatch patterns
    (``"model.layers.*.mlp"``). A name matching no module, or only modules without parameters,
    is an error. A parameter shared with a module that is not named (tied embeddings) is an
    error naming both, rather than a silent change to the other module.
    """
    if isinstance(modules, str):
        modules = [modules]
    if not modules:
        raise NeurospecError("no modules to train: name at least one (e.g. mlp_module_names(model, layers)).")
    all_modules = dict(model.named_modules(remove_duplicate=False))
    matched: list[str] = []
    for name in modules:
        if not isinstance(name, str):
            raise NeurospecError(f"module names must be strings, not {name!r}.")
        if any(ch in name for ch in _WILDCARDS):
            hits = [m for m in all_modules if fnmatch.fnmatchcase(m, name)]
        else:
            hits = [name] if name in all_modules else []
        if not hits:
            close = difflib.get_close_matches(name, list(all_modules), n=5, cutoff=0.5)
            examples = close or [m for m in all_modules if m][:5]
            raise NeurospecError(
                f"module {name!r} matches no module of {type(model).__name__}; modules are named like "
                f"{', '.join(map(repr, examples))}. Use full names from model.named_modules() or fnmatch patterns "
                "such as 'model.layers.*.mlp' (mlp_module_names(model, layers) finds the MLP blocks)."
            )
        if not any(_has_parameters(all_modules[m]) for m in hits):
            raise NeurospecError(
                f"module {name!r} ({', '.join(hits[:3])}{' ...' if len(hits) > 3 else ''}) holds no parameters, so "
                "there is nothing to train; name its parent block (e.g. the 'mlp') instead."
            )
        matched += [m for m in hits if m not in matched]

    names_of: dict[int, list[str]] = {}
    params: dict[int, nn.Parameter] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(param), []).append(name)
        params[id(param)] = param
    chosen: dict[str, nn.Parameter] = {}
    for key, names in names_of.items():
        inside = [n for n in names if any(_under(n, m) for m in matched)]
        if not inside:
            continue
        outside = [n for n in names if n not in inside]
        if outside:
            raise NeurospecError(
                f"parameter {inside[0]!r} is shared with {', '.join(map(repr, outside))} (tied weights, such as "
                "tied input and output embeddings), which is not among the modules to train: training it would "
                "change that module too. Add the module holding it to the modules, or untie the weights first."
            )
        chosen[inside[0]] = params[key]
    return chosen


# --------------------------------------------------------------------------------------------
# Fine-tuning


# FinetuneResult (what finetune() returns, and its JSON) is neurospec.results.finetune's.


def _check_settings(lr: float, epochs: int, batch_size: int, max_items: int | None, weight_decay: float,
                    grad_clip: float | None) -> None:
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        raise NeurospecError(f"lr={lr!r} must be a positive number (the paper uses 3e-5).")
    if not _is_int(epochs) or epochs < 1:
        raise NeurospecError(f"epochs={epochs!r} must be an integer >= 1 (the paper trains 1 epoch).")
    if not _is_int(batch_size) or batch_size < 1:
        raise NeurospecError(f"batch_size={batch_size!r} must be an integer >= 1.")
    if max_items is not None and (not _is_int(max_items) or max_items < 1):
        raise NeurospecError(f"max_items={max_items!r} must be an integer >= 1, or None for all items.")
    if not isinstance(weight_decay, (int, float)) or not math.isfinite(weight_decay) or weight_decay < 0:
        raise NeurospecError(f"weight_decay={weight_decay!r} must be a number >= 0.")
    if grad_clip is not None and (not isinstance(grad_clip, (int, float)) or not grad_clip > 0):
        raise NeurospecError(f"grad_clip={grad_clip!r} must be a positive number, or None for no clipping.")


def _check_items(items: Sequence[MCItem], letters: str) -> None:
    if len(items) == 0:
        raise NeurospecError("no items to train on: pass a non-empty list of MCItem (e.g. QNLI items).")
    for i, item in enumerate(items):
        label = f"item {i}" + (f" ({item.id!r})" if getattr(item, "id", None) else "")
        options = getattr(item, "options", None)
        gold = getattr(item, "gold", None)
        if options is None or not _is_int(gold):
            raise NeurospecError(f"{label} is a {type(item).__name__}, not an MCItem with options and an integer gold.")
        if len(options) > len(letters):
            raise NeurospecError(
                f"{label} has {len(options)} options but only {len(letters)} letters ({letters!r}): pass more letters."
            )
        if not 0 <= gold < len(options):
            raise NeurospecError(
                f"{label}: gold index {gold} is outside its {len(options)} options (0..{len(options) - 1}); "
                "fix the item's gold."
            )


def _prompt_function(prompt: Callable[[MCItem], str], letters: str) -> Callable[[MCItem], str]:
    """``lettered_prompt`` with the letters trained on (the default letters need no binding)."""
    if prompt is lettered_prompt and letters != "ABCDEFGHIJ":
        return functools.partial(lettered_prompt, letters=letters)
    return prompt


def _encode_items(tokenizer, items: Sequence[MCItem], fmt: PromptFormat, prompt: Callable[[MCItem], str],
                  letters: str, form: LetterForm) -> tuple[list[EncodedPrompt], list[int]]:
    """Each item's prompt as ``choose_by_letter`` makes it, and the token id of its gold letter."""
    pairs = encode_lettered(tokenizer, items, fmt=fmt, prompt=prompt, letters=letters, form=form)
    return [e for e, _ in pairs], [ids[item.gold] for (_, ids), item in zip(pairs, items)]


def _answer_logits(model: nn.Module, batch) -> torch.Tensor:
    """Logits at the last column (the answer position of every left-padded row): [batch, vocab]."""
    inputs = batch.model_inputs(model)
    if accepts(model, "use_cache"):
        inputs["use_cache"] = False
    if accepts(model, "logits_to_keep"):
        inputs["logits_to_keep"] = 1
    return model(**inputs).logits[:, -1]


@contextlib.contextmanager
def _training_state(model: nn.Module, trainable: Sequence[nn.Parameter]):
    """Only ``trainable`` require grad, the model is in train mode; both restored on exit."""
    flags = {id(p): (p, p.requires_grad) for p in model.parameters()}
    modes = [(module, module.training) for module in model.modules()]
    try:
        for param, _ in flags.values():
            param.requires_grad_(False)
        for param in trainable:
            param.requires_grad_(True)
        model.train()
        yield
    finally:
        for param in trainable:
            param.grad = None
        for param, flag in flags.values():
            param.requires_grad_(flag)
        for module, mode in modes:
            module.training = mode


def _rng_devices(model: nn.Module) -> list[torch.device]:
    return sorted({p.device for p in model.parameters() if p.device.type == "cuda"}, key=str)


def finetune(model: nn.Module, tokenizer, items: Sequence[MCItem], modules: Sequence[str], *,
             fmt: PromptFormat = PLAIN, prompt: Callable[[MCItem], str] = lettered_prompt,
             letters: str = "ABCDEFGHIJ", form: LetterForm = "auto", lr: float = 3e-5, epochs: int = 1,
             batch_size: int = 8, max_items: int | None = 10_000, seed: int = 0, weight_decay: float = 0.0,
             grad_clip: float | None = 1.0, progress: bool = True) -> FinetuneResult:
    """Train only the parameters of ``modules`` on the gold letters of ``items``, in place.

    Prompts, letters and answer position are those of :func:`neurospec.evaluate.scoring.choose_by_letter`
    with the same ``fmt``/``prompt``/``letters``/``form``. The first ``max_items`` items after a
    seeded shuffle are used (reshuffled each further epoch); batches are left-padded. AdamW gets
    only the trainable parameters; gradients are clipped to norm ``grad_clip``. The model is in
    train mode while training; afterwards every module's mode and every parameter's
    ``requires_grad`` are as before. Defaults are the paper's (lr 3e-5, 1 epoch, 10k items).
    Deterministic for a seed on CPU.
    """
    _check_settings(lr, epochs, batch_size, max_items, weight_decay, grad_clip)
    if not isinstance(letters, str) or len(set(letters)) != len(letters) or len(letters) < 2:
        raise NeurospecError(f"letters={letters!r} must be a string of at least 2 distinct letters.")
    _check_items(items, letters)
    if isinstance(modules, str):
        modules = [modules]
    trainable = trainable_parameters(model, modules)
    prompt = _prompt_function(prompt, letters)

    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(items), generator=generator).tolist()
    chosen = order[:max_items] if max_items is not None else order
    used = [items[i] for i in chosen]
    pad_id = ensure_pad_token(tokenizer)
    encoded, targets = _encode_items(tokenizer, used, fmt, prompt, letters, form)

    steps_per_epoch = math.ceil(len(used) / batch_size)
    total_steps = steps_per_epoch * epochs
    device = model_device(model)
    params = list(trainable.values())
    losses: list[float] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=_rng_devices(model)))
        torch.manual_seed(int(seed))  # dropout, where a model has any
        stack.enter_context(_training_state(model, params))
        model.__dict__.pop("neurospec_weights_fingerprint", None)  # the weights change: provenance hashes them anew
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        bar = stack.enter_context(_progress(f"fine-tuning {len(modules)} module name(s)", total=total_steps,
                                            unit="steps", quiet=not progress))
        for epoch in range(epochs):
            positions = list(range(len(used))) if epoch == 0 else torch.randperm(
                len(used), generator=generator).tolist()
            for start in range(0, len(positions), batch_size):
                rows = positions[start:start + batch_size]
                batch = collate([encoded[i] for i in rows], pad_id, "left").to(device)
                target = torch.tensor([targets[i] for i in rows], device=device)
                logits = _answer_logits(model, batch).float()
                loss = nn.functional.cross_entropy(logits, target.to(logits.device))
                if not torch.isfinite(loss):
                    raise NeurospecError(
                        f"the loss became {loss.item()} at step {len(losses)}: lower lr (now {lr}) or train in fp32/bf16."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.advance(1, tokens=int(batch.attention_mask.sum()), loss=f"{losses[-1]:.4f}")

    settings = {
        "lr": lr, "epochs": epochs, "batch_size": batch_size, "max_items": max_items, "seed": seed,
        "weight_decay": weight_decay, "grad_clip": grad_clip, "optimizer": "AdamW", "letters": letters,
        "form": form, "fmt": dataclasses.asdict(fmt), "prompt": getattr(prompt, "__name__", None)
        or getattr(getattr(prompt, "func", None), "__name__", repr(prompt)),
        "loss": "cross-entropy of the gold letter at the last prompt token",
    }
    return FinetuneResult(
        modules=list(modules), parameter_names=list(trainable), num_parameters=sum(p.numel() for p in params),
        steps=len(losses), items_used=len(used), losses=losses, settings=settings, item_ids=item_ids(used),
    )


# --------------------------------------------------------------------------------------------
# Saving


def save_finetuned(model: nn.Module, tokenizer, out_dir: str | os.PathLike, *,
                   result: FinetuneResult | None = None, overwrite: bool = False) -> Path:
    """Save the model (safetensors) and tokenizer to ``out_dir``, whole or not at all.

    Everything is written to a temporary folder next to ``out_dir`` and renamed into place, so an
    error leaves no partial folder. ``result`` is saved as ``finetune.json``. An existing
    non-empty ``out_dir`` is an error unless ``overwrite=True``, and even then unless it is a model folder
    (config.json) other than the one ``model`` was loaded from, the current folder or one above it.
    """
    from neurospec.measure.run_folder import check_replaceable

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NeurospecError(f"{out} exists and is not a folder: choose another output folder.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise NeurospecError(f"{out} already exists and is not empty: choose another folder or pass overwrite=True.")
    source = getattr(model, "name_or_path", None)
    check_replaceable(out, marker="config.json", inputs=[source if source and Path(source).is_dir() else None],
                      writer="save_finetuned", fix="choose another output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if result is not None:
            atomic_write_json(staging / "finetune.json", result.to_json())
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
