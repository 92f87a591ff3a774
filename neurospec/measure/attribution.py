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

With ``top_items=K`` (``attribute --top-items K``; off by default) the run also keeps, for every neuron of every
site and every group, the K examples with the largest ``score_i(n)`` (the weighted, clamped score that S(n, c)
sums), merged batch by batch into ``(groups, width, K)`` tensors per site and layer: memory O(neurons x K) per
group. Ties go to the earlier example (its index in the examples the run read, as :func:`prepare_examples` orders
them: template-major). Files, fingerprinted in ``attribution.json`` (``top_item_files``, ``item_file``)::

    top_items/<group>.safetensors   values.<site> (L, W, K) float32, largest first (-inf in empty slots)
                                    indices.<site> (L, W, K) int64, example index (-1 in empty slots)
    top_items/items.json            per example index: its item id, template, group and question

Read them with :class:`neurospec.measure.top_items.TopItems`.
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
from neurospec.util.io import atomic_write_json, file_fingerprint
from neurospec.util.progress import progress
from neurospec.version import __version__

__all__ = [
    "AttributionScores", "DEFAULT_SITES", "Example", "OBJECTIVES", "TARGETS", "attribute", "empty_top_items",
    "merge_top_items", "prepare_examples", "top_items_files",
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
TOP_ITEMS_DIR = "top_items"  # attribute --top-items K: top_items/<group>.safetensors (module docstring)
ITEM_FILE = f"{TOP_ITEMS_DIR}/items.json"  # what each example index of the top items refers to
ITEM_LIST_KEYS = ("item_ids", "templates", "groups", "question_index", "questions")

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
    question: str | None = None  # the item's question as the template shows it (for the top items' reader)


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
                                        item.gold, item.id, name, item.question))
            else:
                encoded = encode(tokenizer, template(item), fmt, " " + item.options[item.gold])
                answer = encoded.input_ids[encoded.prompt_length:]
                if encoded.prompt_length == 0 or not answer:
                    raise NeurospecError(f"item {item.id!r}: an empty prompt or answer with template {name!r}")
                examples.append(Example(tuple(encoded.input_ids[:-1]), tuple(answer), item.group, clamped, None,
                                        item.gold, item.id, name, item.question))
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
    examples the model answered right (argmax over the option letters). ``top_items`` (``top_items=K`` runs,
    loaded with ``load(..., top_items=True)``): per group ``values.<site>`` / ``indices.<site>`` (layers, width, K),
    and ``item_list`` what the indices refer to (see the module docstring).
    """

    scores: dict[str, torch.Tensor]
    groups: list[str]
    counts: torch.Tensor
    prob_sums: torch.Tensor
    correct: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    files: dict[str, str] = field(default_factory=dict)
    top_items: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)
    item_list: dict[str, Any] | None = field(default=None, repr=False)

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
        if self.top_items:  # only with top_items=K: other runs keep their exact attribution.json
            document["top_item_files"] = self._save_top_items(run, files, previous, complete)
            document["item_file"] = ITEM_FILE
        self.path, self.files = folder, run.commit(document, files, previous, progress_info)
        return folder

    def _save_top_items(self, run: RunFolder, files: dict[str, str], previous: dict[str, str],
                        complete: bool) -> dict[str, str]:
        """Write each group's top items (a checkpoint slot, or the final name) and the item list (once); ``files``
        gets their fingerprints; returns group -> file name."""
        names = {}
        for group, final in top_items_files(self.groups).items():
            name = final if complete else run.free_slot(final.removesuffix(".safetensors"), previous)
            files[name] = run.write_tensors(name, {k: v.detach().cpu().contiguous()
                                                   for k, v in self.top_items[group].items()})
            names[group] = name
        if ITEM_FILE in previous:
            files[ITEM_FILE] = previous[ITEM_FILE]
        else:
            atomic_write_json(run.path / ITEM_FILE, self.item_list)
            files[ITEM_FILE] = file_fingerprint(run.path / ITEM_FILE)
        return names

    @classmethod
    def read_meta(cls, folder: str | Path) -> dict[str, Any]:
        """``attribution.json`` of ``folder``, checked for format and version (no tensors loaded)."""
        return RunFolder(folder, ATTRIBUTION_RUN).read_manifest()

    @classmethod
    def load(cls, folder: str | Path, *, allow_incomplete: bool = False, top_items: bool = False) -> "AttributionScores":
        """Read a run folder, every tensor file checked against its fingerprint in ``attribution.json``; with
        ``top_items`` also the kept top items, when the run keeps them."""
        folder = Path(folder)
        meta = cls.read_meta(folder)
        run = RunFolder(folder, ATTRIBUTION_RUN)
        tensors = run.read_tensors(meta, allow_incomplete=allow_incomplete)
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
        loaded = cls(scores, groups, tensors["counts"], tensors["prob_sums"], tensors["correct"], kept, folder,
                     meta.get("files") or {})
        if top_items and meta.get("top_item_files"):
            loaded.top_items, loaded.item_list = read_top_items(run, meta)
        return loaded

    def check_model(self, model) -> "AttributionScores":
        """Raise ShapeMismatchError unless every scored site has this model's layer count and width."""
        sites = site_map(model)
        for site, tensor in self.scores.items():
            if site not in sites.sites or tensor.shape[1] != sites.num_layers or tensor.shape[2] != sites.width(site):
                raise ShapeMismatchError(f"{self._label()} do not fit this model at site {site!r} "
                                         f"(scores {tuple(tensor.shape[1:])}); were they made for another model?")
        return self


_DERIVED = ("format", "version", "neurospec_version", "sites", "groups", "num_layers", "widths", "counts", "prob_sums",
            "accuracy", "complete", "files", "tensor_file", "progress", "top_item_files", "item_file")


# --------------------------------------------------------------------------------------------
# Top items: each neuron's K examples of largest score per group


def top_items_files(groups: Sequence[str]) -> dict[str, str]:
    """``top_items_files(["China", "UK"])`` -> ``{"China": "top_items/China.safetensors", ...}``: each group's file,
    its name made safe for a file system (characters other than letters, digits, space, ``-_.,()+`` become ``_``;
    a name taken twice gets ``-<n>``)."""
    names: dict[str, str] = {}
    for group in groups:
        stem = "".join(c if c.isalnum() or c in " -_.,()+" else "_" for c in group).strip(" .") or "group"
        name, n = stem, 1
        while f"{TOP_ITEMS_DIR}/{name}.safetensors" in names.values():
            n += 1
            name = f"{stem}-{n}"
        names[group] = f"{TOP_ITEMS_DIR}/{name}.safetensors"
    return names


def read_top_items(run: RunFolder, meta: dict[str, Any]) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """The top items of a run folder (group -> tensors) and its item list, each checked against its fingerprint."""
    files = meta.get("files") or {}
    tensors = {group: run.load_tensors(name, files.get(name)) for group, name in meta["top_item_files"].items()}
    name = meta.get("item_file", ITEM_FILE)
    path = run.path / name
    if not path.exists() or (name in files and file_fingerprint(path) != files[name]):
        raise FileFormatError(f"{path} is missing or does not match the fingerprint in {run.path / META_FILE}; "
                              "the folder is corrupt: run the attribution again")
    items = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(items, dict) or not all(isinstance(items.get(key), list) for key in ITEM_LIST_KEYS):
        raise FileFormatError(f"{path} is not an item list of neurospec attribute (it needs lists "
                              f"{', '.join(ITEM_LIST_KEYS)}); run the attribution again")
    return tensors, items


def describe_examples(examples: Sequence[Example]) -> dict[str, Any]:
    """The item list of ``top_items/items.json``: per example index its item id, template and group, and the
    index of its question in ``questions`` (each distinct text once; -1 when the example has none). It has no
    ``format`` key, so a report never lists it as an artifact; ``attribution.json`` names and fingerprints it."""
    questions: dict[str, int] = {}
    question_index = [-1 if e.question is None else questions.setdefault(e.question, len(questions)) for e in examples]
    return {"index": "position in the examples the run read (items x templates, template-major)",
            "item_ids": [e.item_id for e in examples], "templates": [e.template for e in examples],
            "groups": [e.group for e in examples], "question_index": question_index, "questions": list(questions)}


def empty_top_items(num_groups: int, width: int, k: int,
                    device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``empty_top_items(G, W, K)``: (G, W, K) values -inf (float32) and example indices -1 (int64): nothing kept."""
    return (torch.full((num_groups, width, k), float("-inf"), dtype=torch.float32, device=device),
            torch.full((num_groups, width, k), -1, dtype=torch.int64, device=device))


def merge_top_items(values: torch.Tensor, indices: torch.Tensor, scores: torch.Tensor, group_ids: torch.Tensor,
                    example_ids: torch.Tensor, groups: Iterable[int] | None = None) -> None:
    """``merge_top_items(values, indices, scores, group_ids, example_ids)``: fold one batch into the kept top K, in
    place. ``values`` / ``indices`` (G, W, K) as :func:`empty_top_items` makes them; ``scores`` (B, W) the batch's
    per-example scores (compared as float32), ``group_ids`` / ``example_ids`` (B,) its rows' group and example
    index; ``groups`` the groups present in the batch (None: found from ``group_ids``). Order: larger score first,
    of equal scores the smaller example index (an empty slot counts as the largest index)."""
    k, width = values.shape[-1], values.shape[1]
    scores = scores.to(values.dtype)
    last = torch.iinfo(torch.int64).max
    for g in (sorted(set(group_ids.tolist())) if groups is None else groups):
        rows = (group_ids == g).nonzero()[:, 0]
        candidates = torch.cat([values[g], scores[rows].t()], dim=1)                       # (W, K + rows)
        index = torch.cat([indices[g], example_ids[rows].to(indices.dtype)[None].expand(width, -1)], dim=1)
        by_index = torch.sort(index.masked_fill(index < 0, last), dim=1).indices          # smaller index first ...
        candidates, index = candidates.gather(1, by_index), index.gather(1, by_index)
        order = torch.sort(candidates, dim=1, descending=True, stable=True).indices[:, :k]  # ... among equal scores
        values[g] = candidates.gather(1, order)
        indices[g] = index.gather(1, order)


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
    """The per-batch weights and groups, and the (groups, width) float64 sums per (site, layer); with ``top_k``
    also the kept top items per (site, layer): (groups, width, K) values and example indices."""

    def __init__(self, num_groups: int, top_k: int = 0) -> None:
        self.num_groups = num_groups
        self.top_k = top_k
        self.sums: dict[tuple[str, int], torch.Tensor] = {}
        self.top: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.weights = self.group_ids = self.clamp = self.example_ids = None
        self.present: list[int] = []
        self.padded = True
        self._on_device: dict = {}

    def start(self, weights: torch.Tensor, group_ids: torch.Tensor, clamp: torch.Tensor, padded: bool,
              example_ids: torch.Tensor | None = None) -> None:
        self.weights, self.group_ids, self.clamp, self.padded = weights, group_ids, clamp, padded
        self.any_clamp = bool(clamp.any())
        self.example_ids = example_ids if example_ids is not None else torch.full_like(group_ids, -1)
        self.present = sorted(set(group_ids.tolist())) if self.top_k else []
        self._on_device = {}

    def _batch_tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if device not in self._on_device:
            self._on_device[device] = (self.weights.to(device)[:, None], self.group_ids.to(device),
                                       self.clamp.to(device)[:, None], self.example_ids.to(device))
        return self._on_device[device]

    def __call__(self, batch: SiteBatch) -> None:
        products = batch.values * batch.grads                       # (batch, tokens, width)
        if self.padded:
            products.masked_fill_(~batch.attention_mask[..., None], float("-inf"))
        best = products.amax(dim=1).to(torch.float64)               # (batch, width)
        weights, group_ids, clamp, example_ids = self._batch_tensors(best.device)
        best.mul_(weights)
        if self.any_clamp:
            best = torch.where(clamp, best.clamp(min=0.0), best)
        key = (batch.site, batch.layer)
        total = self.sums.get(key)
        if total is None:
            total = self.sums[key] = torch.zeros(self.num_groups, best.shape[1], dtype=torch.float64, device=best.device)
        total.index_add_(0, group_ids, best)
        if self.top_k:
            kept = self.top.get(key)
            if kept is None:
                kept = self.top[key] = empty_top_items(self.num_groups, best.shape[1], self.top_k, best.device)
            merge_top_items(*kept, best, group_ids, example_ids, self.present)


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
               group_ids: torch.Tensor, device: torch.device, extra: dict, trim: bool,
               example_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, objective, backward for one batch (rows ``example_ids`` of the run's examples); returns (gold
    probability, correct) per row."""
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
    accumulator.start(weights, group_ids, clamp, padded=not bool(batch.attention_mask.all()), example_ids=example_ids)
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
              dataset: str | None = None, top_items: int = 0) -> AttributionScores:
    """Score every neuron of ``sites`` on ``items`` (each rendered with every template); see the module docstring.

    ``items`` may also be ready :class:`Example` s (then fmt/templates/target/letters/clamp are unused).
    With ``out`` the run is saved there, checkpointed every ``checkpoint_every`` batches; ``resume=True``
    continues an unfinished run of the same examples, model and settings (and returns a finished one
    as it is). Without ``resume`` an existing run in ``out`` is an error, never overwritten silently.
    ``top_items=K`` also keeps every neuron's K top-scoring examples per group (see the module docstring).
    """
    if top_items < 0:
        raise NeurospecError(f"top_items={top_items}: give 0 (off) or the number of top items to keep per neuron")
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
    if top_items:  # recorded only when on: other runs keep their exact attribution.json
        settings["top_items"] = top_items
    chunks = list(length_sorted_chunks([len(e.input_ids) for e in examples], batch_size))

    folder = Path(out) if out is not None else None
    run = RunFolder(folder, ATTRIBUTION_RUN) if folder is not None else None
    expected = {**{key: settings[key] for key in RESUME_KEYS}, "top_items": top_items or None}
    resumed = run.start(expected, resume=resume) if run is not None else None
    previous = (AttributionScores.load(folder, allow_incomplete=True, top_items=bool(top_items))
                if resumed is not None else None)
    if resumed is not None and resumed.complete:
        return previous
    done = int(resumed.progress.get("batches_done", 0)) if resumed is not None else 0
    device = model_device(model)
    accumulator = _Accumulator(len(groups), top_items)
    counts = torch.zeros(len(groups), dtype=torch.int64)
    prob_sums = torch.zeros(len(groups), dtype=torch.float64)
    correct = torch.zeros(len(groups), dtype=torch.int64)
    if previous is not None:
        _restore(accumulator, previous, sites, chosen_layers, groups, device)
        counts, prob_sums, correct = previous.counts.clone(), previous.prob_sums.clone(), previous.correct.clone()
    item_list = describe_examples(examples) if top_items else None

    def snapshot() -> AttributionScores:
        tensors = {}
        for site in sites:
            tensor = torch.zeros(len(groups), smap.num_layers, smap.width(site), dtype=torch.float64)
            for layer in chosen_layers:
                if (site, layer) in accumulator.sums:
                    tensor[:, layer] = accumulator.sums[(site, layer)].cpu()
            tensors[site] = tensor
        return AttributionScores(tensors, groups, counts, prob_sums, correct, dict(settings),
                                 top_items=_top_items_snapshot(accumulator, groups, sites, smap, chosen_layers),
                                 item_list=item_list)

    pad_id = ensure_pad_token(tokenizer)
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
            probs, right = _run_batch(model, chunk, pad_id, objective, accumulator, ids, device, extra, trim,
                                      torch.tensor(chunks[b]))
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



def _restore(accumulator: _Accumulator, previous: AttributionScores, sites: Sequence[str], layers: Sequence[int],
             groups: Sequence[str], device: torch.device) -> None:
    """Put a checkpoint's sums (and top items, when the accumulator keeps them) back into ``accumulator``."""
    for site in sites:
        for layer in layers:
            accumulator.sums[(site, layer)] = previous.scores[site][:, layer].to(device, copy=True)
            if accumulator.top_k:
                kept = [previous.top_items[g] for g in groups]
                accumulator.top[(site, layer)] = (
                    torch.stack([t[f"values.{site}"][layer] for t in kept]).to(device),
                    torch.stack([t[f"indices.{site}"][layer] for t in kept]).to(device))


def _top_items_snapshot(accumulator: _Accumulator, groups: Sequence[str], sites: Sequence[str], smap,
                        layers: Sequence[int]) -> dict[str, dict[str, torch.Tensor]]:
    """Per group, ``values.<site>`` / ``indices.<site>`` (layers, width, K) on the CPU (empty slots where a layer was
    not scored); ``{}`` when the accumulator keeps no top items."""
    if not accumulator.top_k:
        return {}
    out: dict[str, dict[str, torch.Tensor]] = {group: {} for group in groups}
    for site in sites:
        values, indices = empty_top_items(smap.num_layers, smap.width(site), accumulator.top_k)
        per_group = [(values.clone(), indices.clone()) for _ in groups]
        for layer in layers:
            kept = accumulator.top.get((site, layer))
            if kept is None:
                continue
            for g, (v, i) in enumerate(per_group):
                v[layer], i[layer] = kept[0][g].cpu(), kept[1][g].cpu()
        for group, (v, i) in zip(groups, per_group):
            out[group][f"values.{site}"], out[group][f"indices.{site}"] = v, i
    return out
