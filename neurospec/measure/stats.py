"""Activation statistics per language: the file every selection and amplification step reads.

    from neurospec.measure.stats import ActivationStats
    stats = ActivationStats.load("runs/stats")          # refuses an unfinished or corrupt folder
    stats.probabilities()                                # (languages, layers, neurons) P(value > 0), float32
    stats.mean(), stats.std(), stats.max                 # per language and neuron
    stats.sentence_means("fr")                           # (K, layers, neurons): the first K sentences
    stats.amplification_values("fr", "p_max")            # (layers, neurons): Rahmanisa et al.'s p_max

A folder made by :func:`neurospec.measure.collect.collect` holds::

    stats.json               format tag, version, model, site, languages, tokens, corpora, options, files
    stats.safetensors        tokens (G,) int64; active, sum, sum_sq (G, L, W) int64/float64/float64;
                             max (G, L, W) float32 (-inf where a language had no token)
    sample/<language>.safetensors
                             sentence mode only: "means" (k, L, W) float32, the mean value of every
                             neuron over each of the first K sentences of the language in corpus order

``active`` counts tokens whose value is > 0 (LAPE's ``over_zero``). The per-sentence sample is kept
out of the main tensors and written one language at a time: it costs K x L x W x 4 bytes per language
(100 x 32 x 14336 x 4 = 184 MB for a Llama-3-8B, 3.3 GB over 18 languages), held in memory for one
language at a time while collecting. ``stats.json`` is written last and lists the sha256 of every
tensor file: a folder is complete and intact exactly when that file says ``"complete": true`` and
every fingerprint matches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neurospec.core.sites import SiteMap
from neurospec.measure.run_folder import (
    RunFolder,
    RunKind,
    read_run_document,  # noqa: F401  (neurospec.pipeline.runner imports it here)
)
from neurospec.util.errors import FileFormatError, NeurospecError, ShapeMismatchError
from neurospec.util.io import file_fingerprint
from neurospec.version import __version__

FORMAT = "neurospec.stats"
VERSION = 1
META_FILE = "stats.json"
TENSOR_FILE = "stats.safetensors"
SAMPLE_DIR = "sample"
CONTEXT_DIR = "contexts"  # collect --top-contexts: contexts/<language>.safetensors (neurospec.measure.contexts)
AMPLIFICATION_STATISTICS = ("p_max", "p_median", "mean")
_TENSORS = {"tokens": torch.int64, "active": torch.int64, "sum": torch.float64, "sum_sq": torch.float64,
            "max": torch.float32}
#: Statistics folders: the manifest, the command that writes them, and what their messages say.
STATS_RUN = RunKind(META_FILE, FORMAT, version=VERSION, tensor_file=TENSOR_FILE, writer="neurospec collect",
                    what="statistics", made="collected", redo="collect it again",
                    same="the same model, corpora and options")


@dataclass
class ActivationStats:
    """Streaming statistics of one site, per language (group) and neuron; see the module docstring.

    ``model`` describes the model (``model_id``, ``model_type``, ``num_layers``, ``width``,
    ``config_fingerprint``); ``corpora`` each language's source and fingerprint; ``options`` how the
    statistics were collected (mode, seq_len, max_tokens, batch size, sample size, ...).
    """

    site: str
    languages: list[str]
    tokens: torch.Tensor
    active: torch.Tensor
    sum: torch.Tensor
    sum_sq: torch.Tensor
    max: torch.Tensor
    model: dict[str, Any] = field(default_factory=dict)
    corpora: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    sentences: dict[str, int] = field(default_factory=dict)
    samples: dict[str, torch.Tensor] = field(default_factory=dict)
    path: Path | None = None
    files: dict[str, str] = field(default_factory=dict, repr=False)  # relative path -> sha256, as loaded
    sample_files: dict[str, str] = field(default_factory=dict, repr=False)  # language -> relative path
    contexts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)  # language -> top contexts
    context_files: dict[str, str] = field(default_factory=dict, repr=False)  # language -> relative path

    # ---- construction

    @classmethod
    def empty(cls, site: str, languages: list[str], num_layers: int, width: int, *,
              device: torch.device | str = "cpu", **info: Any) -> "ActivationStats":
        """Zero counts for ``languages`` x ``num_layers`` x ``width`` neurons (max starts at -inf)."""
        shape = (len(languages), num_layers, width)
        return cls(
            site=site, languages=list(languages),
            tokens=torch.zeros(len(languages), dtype=torch.int64, device=device),
            active=torch.zeros(shape, dtype=torch.int64, device=device),
            sum=torch.zeros(shape, dtype=torch.float64, device=device),
            sum_sq=torch.zeros(shape, dtype=torch.float64, device=device),
            max=torch.full(shape, float("-inf"), dtype=torch.float32, device=device),
            **info,
        )

    # ---- shape

    @property
    def num_layers(self) -> int:
        return int(self.active.shape[1])

    @property
    def width(self) -> int:
        return int(self.active.shape[2])

    def index(self, language: str) -> int:
        """Position of ``language`` (a key of this file, e.g. ``fra_Latn``) in the language axis."""
        if language in self.languages:
            return self.languages.index(language)
        from neurospec.data.languages import resolve

        try:
            key = resolve(language).key
        except NeurospecError:
            key = None
        if key in self.languages:
            return self.languages.index(key)
        raise NeurospecError(f"language {language!r} is not in these statistics; they hold {', '.join(self.languages)}")

    # ---- derived statistics

    def probabilities(self) -> torch.Tensor:
        """P(value > 0) per language and neuron, (G, L, W) float32: ``active / tokens`` as LAPE computes it."""
        return self.active.to(torch.float32) / self.tokens.to(torch.float32)[:, None, None]

    def mean(self) -> torch.Tensor:
        """Mean value per language and neuron over all counted tokens, (G, L, W) float64."""
        return self.sum / self.tokens.to(torch.float64)[:, None, None]

    def std(self) -> torch.Tensor:
        """Population standard deviation per language and neuron, (G, L, W) float64."""
        mean = self.mean()
        return (self.sum_sq / self.tokens.to(torch.float64)[:, None, None] - mean * mean).clamp_min(0).sqrt()

    def sentence_means(self, language: str) -> torch.Tensor:
        """(k, L, W) float32: the mean value of every neuron over each of the first k sentences of ``language``."""
        key = self.languages[self.index(language)]
        if key not in self.samples:
            relative = self.sample_files.get(key)
            if self.path is None or relative is None:
                raise NeurospecError(
                    f"these statistics hold no per-sentence sample for {key}: collect them with --mode sentence "
                    "and --sample-sentences K > 0"
                )
            sample = RunFolder(self.path, STATS_RUN).load_tensors(relative, self.files.get(relative))
            self.samples[key] = sample["means"]
        return self.samples[key]

    def amplification_values(self, language: str, statistic: str = "p_max") -> torch.Tensor:
        """(L, W) float32 values for Rahmanisa et al.'s replacement: ``p_max`` / ``p_median`` over the
        per-sentence means of ``language``'s sample (max, median), or the corpus ``mean``."""
        if statistic not in AMPLIFICATION_STATISTICS:
            raise NeurospecError(f"unknown statistic {statistic!r}: use one of {', '.join(AMPLIFICATION_STATISTICS)}")
        if statistic == "mean":
            return self.mean()[self.index(language)].to(torch.float32)
        means = self.sentence_means(language)
        if statistic == "p_max":
            return means.max(dim=0).values
        return means.median(dim=0).values  # torch's median: the lower of the two middle values

    # ---- files

    def describe(self) -> dict[str, Any]:
        """The ``stats.json`` document (without the file list)."""
        return {
            "format": FORMAT, "version": VERSION, "neurospec_version": __version__,
            "site": self.site, "languages": self.languages,
            "num_layers": self.num_layers, "width": self.width,
            "tokens": {lang: int(n) for lang, n in zip(self.languages, self.tokens.tolist())},
            "sentences": dict(self.sentences),
            "model": self.model, "corpora": self.corpora, "options": self.options,
        }

    def save(self, folder: str | Path, *, complete: bool = True, progress: dict | None = None) -> Path:
        """Write the tensors (and the samples in memory), then ``stats.json`` last, each atomically.

        A checkpoint (``complete=False``) never overwrites a file the current ``stats.json`` names: it
        writes the other of two slots (``*.checkpoint-a`` / ``-b``), so a process killed at any instant
        leaves a consistent folder. The final save writes ``stats.safetensors`` and gives the samples
        their final names (hard links), then removes what ``stats.json`` no longer names.
        """
        folder = Path(folder)
        run = RunFolder(folder, STATS_RUN)
        previous = dict(self.files) if self.path == folder else {}
        main = TENSOR_FILE if complete else run.free_slot("stats", previous)
        tensors = {name: getattr(self, name).detach().cpu().contiguous() for name in _TENSORS}
        files = {main: run.write_tensors(main, tensors)}
        samples = {language: {"means": means} for language, means in self.samples.items()}
        _save_parts(run, samples, self.sample_files, SAMPLE_DIR, files, previous, complete)
        _save_parts(run, self.contexts, self.context_files, CONTEXT_DIR, files, previous, complete)
        document = {**self.describe(), "complete": complete, "files": files, "tensor_file": main,
                    "sample_files": dict(self.sample_files)}
        if self.context_files:  # only with --top-contexts: other folders keep their exact stats.json
            document["context_files"] = dict(self.context_files)
        self.path, self.files = folder, run.commit(document, files, previous, progress)
        return folder

    @classmethod
    def read_meta(cls, folder: str | Path) -> dict[str, Any]:
        """``stats.json`` of ``folder``, checked for format and version (no tensors loaded)."""
        return RunFolder(folder, STATS_RUN).read_manifest()

    @classmethod
    def load(cls, folder: str | Path, *, allow_incomplete: bool = False) -> "ActivationStats":
        """Read a statistics folder; every tensor file is checked against the fingerprint in ``stats.json``."""
        folder = Path(folder)
        meta = cls.read_meta(folder)
        tensors = RunFolder(folder, STATS_RUN).read_tensors(meta, allow_incomplete=allow_incomplete)
        languages = list(meta["languages"])
        shape = (len(languages), int(meta["num_layers"]), int(meta["width"]))
        for name, dtype in _TENSORS.items():
            tensor = tensors.get(name)
            expected = (shape[0],) if name == "tokens" else shape
            if tensor is None or tensor.dtype != dtype or tuple(tensor.shape) != expected:
                raise FileFormatError(
                    f"{folder / TENSOR_FILE}: tensor {name!r} is missing or not {dtype} of shape {expected}; "
                    "the folder is corrupt: collect it again"
                )
        return cls(
            site=meta["site"], languages=languages,
            **{name: tensors[name] for name in _TENSORS},
            model=meta.get("model") or {}, corpora=meta.get("corpora") or {}, options=meta.get("options") or {},
            sentences={k: int(v) for k, v in (meta.get("sentences") or {}).items()}, path=folder,
            files=meta.get("files") or {},
            sample_files=dict(meta.get("sample_files") or {}),
            context_files=dict(meta.get("context_files") or {}),
        )

    def check_model(self, shape: Any, *, site: str | None = None) -> "ActivationStats":
        """Raise ShapeMismatchError unless these statistics fit ``shape`` (a ModelShape or SiteMap) and ``site``;
        warn (OtherWeightsWarning) when a SiteMap's model has other weights than those they were collected on."""
        if site is not None and site != self.site:
            raise ShapeMismatchError(
                f"statistics {self._label()} were collected at site {self.site!r}, not {site!r}; collect them at {site!r}"
            )
        live = shape.model if isinstance(shape, SiteMap) else None
        if isinstance(shape, SiteMap):
            shape = shape.shape
        num_layers, width = shape.num_layers, shape.widths.get(self.site)
        if num_layers != self.num_layers or width != self.width:
            model = getattr(shape, "model_id", None) or "the model"
            raise ShapeMismatchError(
                f"statistics {self._label()} were collected on a model with {self.num_layers} layers x {self.width} "
                f"{self.site!r} neurons ({self.model.get('model_id', 'unknown model')}), but {model} has {num_layers} "
                f"x {width}; were they made for another model?"
            )
        if live is not None:  # same shape; other weights are worth a warning (stats.json records them)
            from neurospec.core.provenance import check_made_on

            check_made_on(live, self.model, f"statistics {self._label()}")
        return self

    def _label(self) -> str:
        return f"'{self.path}'" if self.path else "in memory"


def _sample_name(language: str) -> str:
    return f"{SAMPLE_DIR}/{language}.safetensors"


def _save_parts(run: RunFolder, in_memory: dict[str, dict[str, torch.Tensor]], names: dict[str, str], directory: str,
                files: dict[str, str], previous: dict[str, str], complete: bool) -> None:
    """Write the per-language files of ``directory`` (``sample``, ``contexts``) held ``in_memory`` (a checkpoint
    slot, or the final name), record the others ``names`` lists, giving them their final names (hard links) when
    ``complete``; ``names`` and ``files`` are updated."""
    folder = run.path
    for language, tensors in in_memory.items():
        name = f"{directory}/{language}.safetensors" if complete else run.free_slot(f"{directory}/{language}", previous)
        files[name] = run.write_tensors(name, {k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        names[language] = name
    for language, name in names.items():
        if name in files:
            continue
        final = f"{directory}/{language}.safetensors"
        if complete and name != final:
            (folder / final).unlink(missing_ok=True)
            os.link(folder / name, folder / final)
            names[language], name = final, final
        files[name] = previous.get(name) or file_fingerprint(folder / name)
