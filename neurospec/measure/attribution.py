"""Activation x gradient attribution (Yamamoto et al., ICLR 2026): a score per neuron and group, in one backward pass.

    from neurospec.measure.attribution import attribute, AttributionScores
    from neurospec.data.blend import build_blend_items, control_items, BLEND_TEMPLATES, blend_prompt_format
    from neurospec.data.countryrc import build_countryrc_items, countryrc_prompts
    items = build_blend_items(topics="find")
    blend = attribute(model, tok, items, fmt=blend_prompt_format(), templates=BLEND_TEMPLATES.values(),
                      out="runs/attr/blend")              # streams, checkpoints, resumes; one file per dataset
    ctrl = attribute(model, tok, control_items(items), fmt=blend_prompt_format(),
                     templates=BLEND_TEMPLATES.values(), out="runs/attr/blend-control")   # control: clamped >= 0
    templates, fmt = countryrc_prompts()                  # CountryRC: the reference's 4 prompts, no prefill
    crc = attribute(model, tok, build_countryrc_items(split="find"), fmt=fmt, templates=templates)  # 800 examples
    blend.sum("gate_pre", "China")                        # (layers, width): S(n, China)
    AttributionScores.load("runs/attr/blend").counts      # examples per group

For one example i (an item rendered with one template) and a neuron n of a site:

    score_i(n) = w_i * max_t [ a_{i,t,n} * dy_i / da_{i,t,n} ]     over the example's non-padding positions t
    S(n, c)    = sum of score_i(n) over the examples of group c

- ``objective="prob"`` (the paper's): ``y_i = p_i``, the softmax probability of the gold token at the
  answer position, and ``w_i = p_i``. ``objective="logprob"``: ``y_i = log p_i`` and ``w_i = 1``.
- ``target="letter"`` (the paper's): the gold option's letter, scored at the last prompt token (as
  :func:`neurospec.evaluate.scoring.choose_by_letter` reads it). ``target="answer"``: the gold option's text as a
  continuation of the prompt; ``p_i`` is the product of its tokens' probabilities and the input holds
  the prompt and every answer token but the last (a small model that cannot read lettered options
  still has a meaningful objective).
- Padding is masked with ``-inf`` before the max, so a padded row whose real products are all
  negative keeps its negative maximum (the reference fills padding with 0, which clips it).
- Control examples (``item.metadata["control"]``, or ``clamp=True``) are clamped at >= 0 after weighting.

Every site of every layer is scored from the same backward pass; parameters are frozen for it (no
weight gradient is computed) and the model is in eval mode. Per site and layer the aggregation is
four tensor operations on the device (product, mask, max over tokens, ``index_add_`` into a
``(groups, width)`` float64 accumulator): memory is O(neurons x groups), never per example.

A run folder holds ``attribution.json`` (format, model, sites, groups, counts, settings, the
fingerprint of the examples, progress) and ``scores.safetensors`` (per site a ``(groups, layers,
width)`` float64 tensor of S(n, c); ``counts``, ``prob_sums``, ``correct`` per group). Checkpoints
go to alternating slots and ``attribution.json`` is written last, so a run killed at any moment
resumes (``resume=True``) from its last checkpoint and ends with the same sums as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

import torch

from neurospec.core.forward import accepts, length_sorted_chunks, model_device
from neurospec.core.hooks import SiteBatch, capture_gradients
from neurospec.core.sites import site_map
from neurospec.data.items import MCItem
from neurospec.data.lettered import bare_question, encode_lettered, lettered_prompt
from neurospec.data.prompts import PLAIN, EncodedPrompt, PromptFormat, collate, encode, ensure_pad_token
from neurospec.measure.run_folder import RunFolder, RunKind
from neurospec.util.errors import FileFormatError, NeurospecError, ShapeMismatchError
from neurospec.util.progress import progress
from neurospec.version import __version__

__all__ = [
    "AttributionScores", "DEFAULT_SITES", "Example", "OBJECTIVES", "TARGETS", "attribute", "prepare_examples",
]

FORMAT = "neurospec.attribution"
VERSION = 1
META_FILE = "attribution.json"
TENSOR_FILE = "scores.safetensors"
#: The sites the culture paper scores (``up_pre`` is scored there but not used by the selection).
DEFAULT_SITES: tuple[str, ...] = ("gate_pre", "up_pre", "q", "k", "v")
TARGETS = ("letter", "answer")
OBJECTIVES = ("prob", "logprob")
#: Attribution run folders. ``attribute`` has no overwrite and writes beside files already in its folder.
ATTRIBUTION_RUN = RunKind(META_FILE, FORMAT, version=VERSION, tensor_file=TENSOR_FILE, writer="neurospec attribute",
                          what="attribution scores", redo="run the attribution again",
                          same="the same model, data, templates and settings", overwrite=False, own_folder=False)
#: The settings a resumed run must share with its folder.
RESUME_KEYS = ("sites", "objective", "target", "batch_size", "layers", "examples_fingerprint", "model")

Template = Callable[[MCItem], str]


# --------------------------------------------------------------------------------------------
# Examples: items rendered with templates, tokenised once


@dataclass(frozen=True)
class Example:
    """One scored input: token ids, the gold token(s) scored at its last positions, its group.

    ``targets`` are predicted at the last ``len(targets)`` positions of ``input_ids``. ``options``
    (letter target only) are the option letters' token ids and ``gold`` the gold option's index,
    for the accuracy recorded alongside the scores.
    """

    input_ids: tuple[int, ...]
    targets: tuple[int, ...]
    group: str
    clamp: bool = False
    options: tuple[int, ...] | None = None
    gold: int | None = None
    item_id: str | None = None
    template: str = ""


def _template_name(template: Template, index: int) -> str:
    return str(getattr(template, "name", None) or getattr(template, "__name__", None) or f"template{index}")


def prepare_examples(tokenizer, items: Sequence[MCItem], *, fmt: PromptFormat = PLAIN,
                     templates: Iterable[Template] | None = None, target: Literal["letter", "answer"] = "letter",
                     letters: str = "ABCDEFGHIJ", form: Literal["auto", "bare", "space"] = "auto",
                     clamp: bool | None = None) -> list[Example]:
    """Render every item with every template (template-major order) and tokenise it.

    Templates default to :func:`neurospec.data.lettered.lettered_prompt` (letter target) or the bare
    question (answer target, whose continuation is ``" " + gold option``). ``clamp=None`` clamps the
    items whose ``metadata["control"]`` is true. A template may carry ``view(item) -> MCItem`` (the
    item as that template shows it: its own options and gold), ``letters`` and ``form``, which then
    replace the arguments for that template: the CountryRC prompts of the reference
    (:data:`neurospec.data.countryrc.COUNTRYRC_TEMPLATES`) draw their own options and ask for A-D or 1-4.
    """
    if target not in TARGETS:
        raise NeurospecError(f"target={target!r}: use one of {', '.join(TARGETS)}")
    if not items:
        raise NeurospecError("no items to attribute: the item list is empty (check the data and its filters)")
    chosen = list(templates) if templates is not None else [lettered_prompt if target == "letter" else bare_question]
    if not chosen:
        raise NeurospecError("templates= is empty: give at least one prompt template")
    if target == "letter" and any(template is bare_question for template in chosen):
        raise NeurospecError("the bare-question template shows no options, so there is no letter to score: use "
                             "target='answer' with it (--target answer), or a lettered template")
    missing = next((item for item in items if item.group is None), None)
    if missing is not None:
        raise NeurospecError(f"item {missing.id!r} has no group (country): attribution sums scores per group")
    examples = []
    for t, template in enumerate(chosen):
        name = _template_name(template, t)
        view = getattr(template, "view", None)
        shown = [view(item) for item in items] if callable(view) else list(items)
        lettered = (encode_lettered(tokenizer, shown, fmt=fmt, prompt=template,
                                    letters=getattr(template, "letters", None) or letters,
                                    form=getattr(template, "form", None) or form)
                    if target == "letter" else [None] * len(shown))
        for item, pair in zip(shown, lettered):
            clamped = bool(item.metadata.get("control")) if clamp is None else clamp
            if pair is not None:
                encoded, ids = pair
                examples.append(Example(tuple(encoded.input_ids), (ids[item.gold],), item.group, clamped, tuple(ids),
                                        item.gold, item.id, name))
            else:
                encoded = encode(tokenizer, template(item), fmt, " " + item.options[item.gold])
                answer = encoded.input_ids[encoded.prompt_length:]
                if encoded.prompt_length == 0 or not answer:
                    raise NeurospecError(f"item {item.id!r}: an empty prompt or answer with template {name!r}")
                examples.append(Example(tuple(encoded.input_ids[:-1]), tuple(answer), item.group, clamped, None,
                                        item.gold, item.id, name))
    return examples


def _fingerprint(examples: Sequence[Example]) -> str:
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e.input_ids, e.targets, e.group, e.clamp, e.options, e.gold]).encode())
    return f"sha256:{digest.hexdigest()}"


# --------------------------------------------------------------------------------------------
# The scores


@dataclass
class AttributionScores:
    """Summed attribution scores S(n, c) per site, group, layer and neuron, with per-group counts.

    ``scores[site]`` is ``(groups, layers, width)`` float64; ``counts`` the examples per group,
    ``prob_sums`` the summed gold probability per group, ``correct`` (letter target) how many
    examples the model answered right (argmax over the option letters).
    """

    scores: dict[str, torch.Tensor]
    groups: list[str]
    counts: torch.Tensor
    prob_sums: torch.Tensor
    correct: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(self.scores)

    @property
    def num_layers(self) -> int:
        return next(iter(self.scores.values())).shape[1]

    @property
    def num_examples(self) -> int:
        return int(self.counts.sum())

    def width(self, site: str) -> int:
        return self._site(site).shape[2]

    def _site(self, site: str) -> torch.Tensor:
        if site not in self.scores:
            raise NeurospecError(f"site {site!r} was not scored in {self._label()} (scored: {', '.join(self.scores)}); "
                                 f"attribute again with it in sites=")
        return self.scores[site]

    def group_index(self, group: str) -> int:
        if group not in self.groups:
            raise NeurospecError(f"group {group!r} is not in {self._label()} (groups: {', '.join(self.groups)})")
        return self.groups.index(group)

    def sum(self, site: str, group: str | None = None) -> torch.Tensor:
        """(layers, width): S(n, group), or the sum over every group when ``group`` is None."""
        tensor = self._site(site)
        return tensor.sum(0) if group is None else tensor[self.group_index(group)]

    def accuracy(self) -> dict[str, float | None]:
        """Per group, the share of examples the model answered right (None without a letter target)."""
        if self.meta.get("target") != "letter":
            return {g: None for g in self.groups}
        return {g: (int(c) / int(n) if n else None) for g, c, n in zip(self.groups, self.correct, self.counts)}

    def _label(self) -> str:
        return f"attribution scores {str(self.path)!r}" if self.path else "these attribution scores"

    # ---- files

    def describe(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "neurospec_version": __version__, **self.meta,
                "sites": list(self.scores), "groups": list(self.groups), "num_layers": self.num_layers,
                "widths": {s: int(t.shape[2]) for s, t in self.scores.items()},
                "counts": {g: int(n) for g, n in zip(self.groups, self.counts.tolist())},
                "prob_sums": {g: float(p) for g, p in zip(self.groups, self.prob_sums.tolist())},
                "accuracy": self.accuracy()}

    def save(self, folder: str | Path, *, complete: bool = True, progress_info: dict | None = None) -> Path:
        """Write the tensors (a checkpoint into a free slot), then ``attribution.json`` last; both atomic."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        run = RunFolder(folder, ATTRIBUTION_RUN)
        previous = dict(self.files) if self.path == folder else {}
        name = TENSOR_FILE if complete else run.free_slot("scores", previous)
        tensors = {f"scores.{site}": t for site, t in self.scores.items()}
        tensors.update(counts=self.counts, prob_sums=self.prob_sums, correct=self.correct)
        files = {name: run.write_tensors(name, tensors)}
        document = {**self.describe(), "complete": complete, "files": files, "tensor_file": name}
        self.path, self.files = folder, run.commit(document, files, previous, progress_info)
        return folder

    @classmethod
    def read_meta(cls, folder: str | Path) -> dict[str, Any]:
        """``attribution.json`` of ``folder``, checked for format and version (no tensors loaded)."""
        return RunFolder(folder, ATTRIBUTION_RUN).read_manifest()

    @classmethod
    def load(cls, folder: str | Path, *, allow_incomplete: bool = False) -> "AttributionScores":
        """Read a run folder, every tensor file checked against its fingerprint in ``attribution.json``."""
        folder = Path(folder)
        meta = cls.read_meta(folder)
        tensors = RunFolder(folder, ATTRIBUTION_RUN).read_tensors(meta, allow_incomplete=allow_incomplete)
        groups = list(meta["groups"])
        scores = {}
        for site in meta["sites"]:
            tensor = tensors.get(f"scores.{site}")
            expected = (len(groups), int(meta["num_layers"]), int(meta["widths"][site]))
            if tensor is None or tuple(tensor.shape) != expected:
                raise FileFormatError(f"{folder / meta.get('tensor_file', TENSOR_FILE)}: scores of site {site!r} "
                                      f"missing or not of shape {expected}")
            scores[site] = tensor
        kept = {k: v for k, v in meta.items() if k not in _DERIVED}
        return cls(scores, groups, tensors["counts"], tensors["prob_sums"], tensors["correct"], kept, folder,
                   meta.get("files") or {})

    def check_model(self, model) -> "AttributionScores":
        """Raise ShapeMismatchError unless every scored site has this model's layer count and width."""
        sites = site_map(model)
        for site, tensor in self.scores.items():
            if site not in sites.sites or tensor.shape[1] != sites.num_layers or tensor.shape[2] != sites.width(site):
                raise ShapeMismatchError(f"{self._label()} do not fit this model at site {site!r} "
                                         f"(scores {tuple(tensor.shape[1:])}); were they made for another model?")
        return self


_DERIVED = ("format", "version", "neurospec_version", "sites", "groups", "num_layers", "widths", "counts", "prob_sums",
            "accuracy", "complete", "files", "tensor_file", "progress")


# --------------------------------------------------------------------------------------------
# The engine


@contextlib.contextmanager
def _frozen_eval(model) -> Iterator[None]:
    """Parameters frozen (no weight gradients) and eval mode inside; both restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    training = model.training
    for p, _ in flags:
        p.requires_grad_(False)
    model.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(training)


class _Accumulator:
    """The per-batch weights and groups, and the (groups, width) float64 sums per (site, layer)."""

    def __init__(self, num_groups: int) -> None:
        self.num_groups = num_groups
        self.sums: dict[tuple[str, int], torch.Tensor] = {}
        self.weights = self.group_ids = self.clamp = None
        self.padded = True
        self._on_device: dict = {}

    def start(self, weights: torch.Tensor, group_ids: torch.Tensor, clamp: torch.Tensor, padded: bool) -> None:
        self.weights, self.group_ids, self.clamp, self.padded = weights, group_ids, clamp, padded
        self.any_clamp = bool(clamp.any())
        self._on_device = {}

    def _batch_tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if device not in self._on_device:
            self._on_device[device] = (self.weights.to(device)[:, None], self.group_ids.to(device),
                                       self.clamp.to(device)[:, None])
        return self._on_device[device]

    def __call__(self, batch: SiteBatch) -> None:
        products = batch.values * batch.grads                       # (batch, tokens, width)
        if self.padded:
            products.masked_fill_(~batch.attention_mask[..., None], float("-inf"))
        best = products.amax(dim=1).to(torch.float64)               # (batch, width)
        weights, group_ids, clamp = self._batch_tensors(best.device)
        best.mul_(weights)
        if self.any_clamp:
            best = torch.where(clamp, best.clamp(min=0.0), best)
        key = (batch.site, batch.layer)
        total = self.sums.get(key)
        if total is None:
            total = self.sums[key] = torch.zeros(self.num_groups, best.shape[1], dtype=torch.float64, device=best.device)
        total.index_add_(0, group_ids, best)


def _targets(chunk: Sequence[Example], keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, keep) target ids and mask: row i's targets sit at its last len(targets) kept positions."""
    ids = torch.zeros(len(chunk), keep, dtype=torch.long)
    mask = torch.zeros(len(chunk), keep, dtype=torch.bool)
    for row, example in enumerate(chunk):
        m = len(example.targets)
        ids[row, keep - m:] = torch.tensor(example.targets)
        mask[row, keep - m:] = True
    return ids, mask


def _run_batch(model, chunk: Sequence[Example], pad_id: int, objective: str, accumulator: _Accumulator,
               group_ids: torch.Tensor, device: torch.device, extra: dict, trim: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, objective, backward for one batch; returns (gold probability, correct) per row."""
    encoded = [EncodedPrompt(list(e.input_ids), ["text"] * len(e.input_ids)) for e in chunk]
    batch = collate(encoded, pad_id, "left").to(device)
    keep = max(len(e.targets) for e in chunk)
    outputs = model(**batch.model_inputs(model), **extra, **({"logits_to_keep": keep} if trim else {}))
    logits = outputs.logits[:, -keep:].float()
    target_ids, target_mask = (t.to(logits.device) for t in _targets(chunk, keep))
    logprobs = logits.log_softmax(-1)
    token_logprobs = logprobs.gather(-1, target_ids[..., None])[..., 0].masked_fill(~target_mask, 0.0)
    logprob = token_logprobs.sum(-1)
    prob = logprob.exp()
    weights = prob.detach().double() if objective == "prob" else torch.ones_like(prob, dtype=torch.float64)
    clamp = torch.tensor([e.clamp for e in chunk])
    accumulator.start(weights, group_ids, clamp, padded=not bool(batch.attention_mask.all()))
    (prob if objective == "prob" else logprob).sum().backward()
    correct = torch.zeros(len(chunk), dtype=torch.int64)
    with torch.no_grad():
        for row, example in enumerate(chunk):
            if example.options is not None:
                option_logits = logits[row, -1, list(example.options)]
                correct[row] = int(int(option_logits.argmax()) == example.gold)
    return prob.detach().double().cpu(), correct


def attribute(model, tokenizer, items: Sequence[MCItem] | Sequence[Example], *, fmt: PromptFormat = PLAIN,
              templates: Iterable[Template] | None = None, target: Literal["letter", "answer"] = "letter",
              objective: Literal["prob", "logprob"] = "prob", sites: Sequence[str] = DEFAULT_SITES,
              layers: Iterable[int] | None = None, letters: str = "ABCDEFGHIJ", clamp: bool | None = None,
              batch_size: int = 8, out: str | Path | None = None, resume: bool = False,
              checkpoint_every: int = 200, quiet: bool = False, description: str = "attribute",
              dataset: str | None = None) -> AttributionScores:
    """Score every neuron of ``sites`` on ``items`` (each rendered with every template); see the module docstring.

    ``items`` may also be ready :class:`Example` s (then fmt/templates/target/letters/clamp are unused).
    With ``out`` the run is saved there, checkpointed every ``checkpoint_every`` batches; ``resume=True``
    continues an unfinished run of the same examples, model and settings (and returns a finished one
    as it is). Without ``resume`` an existing run in ``out`` is an error, never overwritten silently.
    """
    if objective not in OBJECTIVES:
        raise NeurospecError(f"objective={objective!r}: use one of {', '.join(OBJECTIVES)}")
    if batch_size < 1 or checkpoint_every < 1:
        raise NeurospecError("batch_size and checkpoint_every must be at least 1")
    if items and isinstance(items[0], Example):
        examples = list(items)  # type: ignore[arg-type]
        target = "letter" if all(e.options is not None for e in examples) else "answer"
    else:
        examples = prepare_examples(tokenizer, items, fmt=fmt, templates=templates, target=target,  # type: ignore[arg-type]
                                    letters=letters, clamp=clamp)
    if not examples:
        raise NeurospecError("no examples to attribute: the item list is empty (check the data and its filters)")
    smap = site_map(model)
    sites = list(dict.fromkeys([sites] if isinstance(sites, str) else sites))
    for site in sites:
        smap.check_site(site)
    chosen_layers = list(range(smap.num_layers)) if layers is None else sorted(set(int(x) for x in layers))
    for layer in chosen_layers:
        smap.check_layer(layer)

    groups = sorted({e.group for e in examples})
    group_of = {g: i for i, g in enumerate(groups)}
    from neurospec.measure.collect import model_description

    settings = {"sites": sites, "objective": objective, "target": target, "batch_size": batch_size, "layers": chosen_layers,
                "templates": list(dict.fromkeys(e.template for e in examples)), "dataset": dataset,
                "clamped_examples": sum(e.clamp for e in examples), "examples": len(examples),
                "examples_fingerprint": _fingerprint(examples), "padding": "-inf before the max over tokens",
                "model": {k: v for k, v in model_description(model, sites[0]).items() if k != "width"}}
    chunks = list(length_sorted_chunks([len(e.input_ids) for e in examples], batch_size))

    folder = Path(out) if out is not None else None
    run = RunFolder(folder, ATTRIBUTION_RUN) if folder is not None else None
    resumed = run.start({key: settings[key] for key in RESUME_KEYS}, resume=resume) if run is not None else None
    previous = AttributionScores.load(folder, allow_incomplete=True) if resumed is not None else None
    if resumed is not None and resumed.complete:
        return previous
    done = int(resumed.progress.get("batches_done", 0)) if resumed is not None else 0
    accumulator = _Accumulator(len(groups))
    counts = torch.zeros(len(groups), dtype=torch.int64)
    prob_sums = torch.zeros(len(groups), dtype=torch.float64)
    correct = torch.zeros(len(groups), dtype=torch.int64)
    if previous is not None:
        for site in sites:
            for layer in chosen_layers:
                accumulator.sums[(site, layer)] = previous.scores[site][:, layer].clone()
        counts, prob_sums, correct = previous.counts.clone(), previous.prob_sums.clone(), previous.correct.clone()

    def snapshot() -> AttributionScores:
        tensors = {}
        for site in sites:
            tensor = torch.zeros(len(groups), smap.num_layers, smap.width(site), dtype=torch.float64)
            for layer in chosen_layers:
                if (site, layer) in accumulator.sums:
                    tensor[:, layer] = accumulator.sums[(site, layer)].cpu()
            tensors[site] = tensor
        return AttributionScores(tensors, groups, counts, prob_sums, correct, dict(settings))

    pad_id = ensure_pad_token(tokenizer)
    device = model_device(model)
    extra = {"use_cache": False} if accepts(model, "use_cache") else {}
    trim = accepts(model, "logits_to_keep")  # the output head runs on the scored positions only
    result = snapshot() if previous is not None else None
    if previous is not None and folder is not None:
        result.path, result.files = previous.path, previous.files
    with _frozen_eval(model), capture_gradients(model, sites, layers=chosen_layers, callback=accumulator, keep=False), \
            progress(description, total=len(chunks), unit="batches", quiet=quiet) as bar:
        for b in range(done, len(chunks)):
            chunk = [examples[i] for i in chunks[b]]
            ids = torch.tensor([group_of[e.group] for e in chunk])
            probs, right = _run_batch(model, chunk, pad_id, objective, accumulator, ids, device, extra, trim)
            counts.index_add_(0, ids, torch.ones(len(chunk), dtype=torch.int64))
            prob_sums.index_add_(0, ids, probs)
            correct.index_add_(0, ids, right)
            bar.advance(1, tokens=sum(len(e.input_ids) for e in chunk))
            if folder is not None and (b + 1) % checkpoint_every == 0 and b + 1 < len(chunks):
                partial = snapshot()
                if result is not None:
                    partial.path, partial.files = result.path, result.files
                partial.save(folder, complete=False, progress_info={"batches_done": b + 1, "batches": len(chunks)})
                result = partial
    final = snapshot()
    if folder is not None:
        if result is not None:
            final.path, final.files = result.path, result.files
        final.save(folder, complete=True, progress_info={"batches_done": len(chunks), "batches": len(chunks)})
    return final

