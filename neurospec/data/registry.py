"""Every data set neurospec reads, where it comes from publicly, its license, and a sha256 per file.

    from neurospec.data.registry import DATASETS, dataset
    blend = dataset("blend")
    blend.folder                 # 'blend': its folder in a mirror (NEUROSPEC_DATA) and in the cache
    blend.files["annotations/China_data.json"]   # FileEntry(sha256=..., size=...)
    blend.url_of("annotations/China_data.json")  # raw.githubusercontent.com/<repo>/<commit>/data/annotations/...

A GitHub data set is pinned to a commit, and each local file comes from one path of the repository at
that commit. The file list and checksums live in ``checksums.json`` beside this module (written by
``python tools/data_checksums.py MIRROR``, which reads a verified mirror). Hub-only data sets (INCLUDE,
CulturalBench, NormAd) name a Hugging Face dataset id and commit, read from the hub's public commit
pages, and are fetched with ``huggingface_hub`` (which checks what it downloads against the hub's
own hashes); they carry no checksums here because no copy of them was available to hash.
WorldValuesBench is ``manual``: its survey files are distributed under the World Values Survey's terms,
not by the repository, so it cannot be fetched; its entry says where to get it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping

from neurospec.util.errors import NeurospecError

CHECKSUMS = Path(__file__).with_name("checksums.json")
GITHUB_RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class DataSet:
    """One data set: ``name`` (what users type), ``folder`` (its folder in a mirror and in the cache)."""

    name: str
    folder: str
    title: str
    license: str
    citation: str
    source: str                                   # "github", "hub" or "manual" (not downloadable)
    repo: str                                     # owner/name on GitHub, or the hub dataset id
    revision: str                                 # the pinned commit
    remote_path: Callable[[str], str] = field(default=lambda local: local, repr=False, compare=False)
    noncommercial: bool = False
    terms: str = ""                               # what the short license name leaves out
    checked: str = "real copy"                    # what the loaders were checked against
    used_by: str = ""

    @property
    def files(self) -> Mapping[str, FileEntry]:
        """Local path (inside ``folder``) -> checksum and size; empty for a hub data set."""
        return _checksums().get(self.name, {})

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files.values())

    def url_of(self, local: str, base_url: str | None = None) -> str:
        """Where ``local`` is downloaded from: the pinned public file, or ``BASE/FOLDER/local`` for a mirror."""
        if base_url:
            return f"{base_url.rstrip('/')}/{self.folder}/{local}"
        if self.source != "github":
            raise NeurospecError(f"data set {self.name!r} lives on the Hugging Face hub ({self.repo}); it has no "
                                 f"file URLs")
        return f"{GITHUB_RAW}/{self.repo}/{self.revision}/{self.remote_path(local)}"

    @property
    def homepage(self) -> str:
        if self.source in ("github", "manual"):
            return f"https://github.com/{self.repo}/tree/{self.revision}"
        return f"https://huggingface.co/datasets/{self.repo}/tree/{self.revision}"


@lru_cache(maxsize=1)
def _checksums() -> dict[str, dict[str, FileEntry]]:
    raw = json.loads(CHECKSUMS.read_text(encoding="utf-8"))
    return {name: {path: FileEntry(**entry) for path, entry in files.items()} for name, files in raw.items()}


def _under(prefix: str) -> Callable[[str], str]:
    return lambda local: f"{prefix}/{local}"


def _ntrex(local: str) -> str:
    return local if local in ("LANGUAGES.tsv", "DOCUMENT_IDS.tsv") else f"NTREX-128/{local}"


def _sib200(local: str) -> str:
    return "data/annotated/eng_Latn/labels.txt" if local == "labels.txt" else f"data/annotated/{local}"


_CC_BY_SA = "CC BY-SA 4.0"

DATASETS: dict[str, DataSet] = {d.name: d for d in (
    DataSet("ntrex128", "ntrex128", "NTREX-128 news test references, English + 43 languages", _CC_BY_SA,
            "Federmann et al. 2022, NTREX-128 (SUMEval)", "github", "MicrosoftTranslator/NTREX",
            "8561f6a622db9edad1217683e5c83daefd8bb2bf", _ntrex, used_by="collect, ppl (LAPE corpora)"),
    DataSet("flores", "sib200_flores", "FLORES-200 sentences of SIB-200, 47 languages, train/dev/test", _CC_BY_SA,
            "Adelani et al. 2023 (SIB-200); NLLB Team 2022 (FLORES-200)", "github", "dadelani/sib-200",
            "593cea88519930f776c1a4a1980b6a35b39dca57", _sib200,
            used_by="ppl, lss, sweep, steer, eval flores/ntrex (parallel items)"),
    DataSet("xcopa", "xcopa", "XCOPA validation and test, 11 languages", "CC BY 4.0", "Ponti et al. 2020 (EMNLP)",
            "github", "cambridgeltl/xcopa", "e2e9d7f105a758ee869cd13e0fe251ef93a29840", _under("data"),
            used_by="eval xcopa"),
    DataSet("xwinograd", "xwinograd", "XWinograd (XWINO), en fr jp pt ru zh",
            "Apache-2.0",
            "Tikhonov & Ryabinin 2021 (Findings of ACL)", "github", "yandex-research/crosslingual_winograd",
            "d2cfbbf7dc8f4ec66381e9651f9f5633c2df848d", used_by="eval xwinograd",
            terms="Apache-2.0 (the repository); the schemas come from several sources with their own terms"),
    DataSet("belebele", "belebele_en_de", "Belebele test, English and German (repackaged JSONL)", _CC_BY_SA,
            "Bandarkar et al. 2024 (Belebele)", "github", "saeub/item-evaluation",
            "c6332925bd1984396267a60a861227514edac484", _under("data/belebele"), used_by="eval belebele"),
    DataSet("blend", "blend", "BLEnD short-answer questions and annotations, 16 countries", _CC_BY_SA,
            "Myung et al. 2024 (NeurIPS Datasets and Benchmarks)", "github", "nlee0212/BLEnD",
            "24e7d732c082c224b3bc9c7dc3b884fe83fb8cc8", _under("data"),
            used_by="attribute, mask-eval, finetune (--data blend, blend-control)"),
    DataSet("countryrc", "countryrc", "CountryRC passage templates (the culture method's country control)", "MIT",
            "Yamamoto et al. 2026 (ICLR), CULNIG", "github", "ynklab/CULNIG",
            "323d480bd65d9b664ec98df4ac17c072aa5bffbd", _under("data/CountryRC"), used_by="attribute --data countryrc"),
    DataSet("qnli", "glue_qnli", "GLUE QNLI dev (derived from SQuAD 1.1)", _CC_BY_SA,
            "Wang et al. 2018 (GLUE); Rajpurkar et al. 2016 (SQuAD)", "github", "jonny-vr/LLMCBench",
            "720be179c2492271f61d7a09291ffd003f36f47d", _under("data/QNLI"), used_by="mask-eval, finetune (NLU control)"),
    DataSet("mrpc", "glue_mrpc", "GLUE MRPC dev and the labelled MSRP test",
            "MSR-SSLA",
            "Dolan & Brockett 2005; Wang et al. 2018 (GLUE)", "github", "Nstats/my_bert",
            "733d79335044b1b7eabb5b47a0eae0cd621dadc0", _under("data/MRPC"), noncommercial=True,
            terms="Microsoft Research Shared Source License Agreement: non-commercial use only",
            used_by="mask-eval, finetune (NLU control)"),
    DataSet("lape-reference", "lape_reference", "LAPE neuron files released with the LAPE paper (7B models)",
            "none stated", "Tang et al. 2024 (ACL)", "github",
            "RUCAIBox/Language-Specific-Neurons", "fdeca23acd53d7a4de5ca3f7a1b66ef94d7e19a7",
            used_by="neurons import/export (LAPE .pth format)"),
    DataSet("include", "include", "INCLUDE regional-knowledge MCQ, 44 languages", "Apache-2.0",
            "Romanou et al. 2025 (ICLR), INCLUDE", "hub", "CohereForAI/include-base-44",
            "13fb8e065b96c9291768204ab2ebd077cc044809",
            checked="published format only", used_by="eval include"),
    DataSet("culturalbench", "culturalbench", "CulturalBench Easy and Hard", "CC BY 4.0",
            "Chiu et al. 2025 (ACL), CulturalBench", "hub", "kellycyy/CulturalBench",
            "996d62a55f6a49c13596f0a31b772812a1aacd67",
            checked="published format only", used_by="mask-eval --benchmarks culturalbench"),
    DataSet("normad", "normad", "NormAd etiquette stories, 75 countries", "CC BY 4.0",
            "Rao et al. 2025 (NAACL), NormAd", "hub", "akhilayerukola/NormAd",
            "0ea94a1eb4a9c9495cd7c3248a6e8dd9a307feb0",
            checked="published format only", used_by="mask-eval --benchmarks normad"),
    DataSet("worldvaluesbench", "WorldValuesBench", "WorldValuesBench survey answers (World Values Survey wave 7)",
            "WVS terms",
            "Zhao et al. 2024 (LREC-COLING), WorldValuesBench", "manual", "Demon702/WorldValuesBench",
            "351947cdbdc63c8953f04a08c70190be1aa42723", noncommercial=True, checked="published format only",
            terms="World Values Survey terms of use: registration, non-commercial research; not downloadable "
                  "by neurospec",
            used_by="mask-eval --benchmarks worldvaluesbench"),
)}


def dataset(name: str) -> DataSet:
    """The registry entry called ``name``; an unknown name is a one-line error listing the known ones."""
    if name in DATASETS:
        return DATASETS[name]
    by_folder = {d.folder: d for d in DATASETS.values()}
    if name in by_folder:
        return by_folder[name]
    raise NeurospecError(f"unknown data set {name!r}; known: {', '.join(DATASETS)} (neurospec data list)")


#: Other names the verbs use for a registered data set (``--data blend-control``, ``--parallel ntrex``).
ALIASES = {"blend-control": "blend", "ntrex": "ntrex128", "sib200": "flores", "culturalbench-easy": "culturalbench",
           "culturalbench-hard": "culturalbench"}


def dataset_named(text: str) -> str | None:
    """The registry name ``text`` stands for (a name, a folder or an alias), or None."""
    if text in DATASETS:
        return text
    if text in ALIASES:
        return ALIASES[text]
    return next((d.name for d in DATASETS.values() if d.folder == text), None)
