"""Parallel sentences from NTREX-128 and FLORES-200 (SIB-200), with their sentence ids.

    from neurospec.data.parallel import ntrex_sentences, sib200_sentences
    ntrex_sentences("de")                       # [(0, "..."), (1, "..."), ...]: id = line index, 1997 lines
    sib200_sentences("zho-CN", split="test")    # [(index_id, text), ...]: FLORES-200 sentence ids

Languages may be named in any scheme :func:`neurospec.data.languages.resolve` knows. ``data_dir`` defaults
to the ``ntrex128`` and ``flores`` data sets (:func:`neurospec.data.locate.locate`: NEUROSPEC_DATA, then
the cache of ``neurospec data fetch``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from neurospec.data.languages import resolve
from neurospec.data.locate import locate
from neurospec.util.errors import NeurospecError

SIB_SPLITS = ("train", "dev", "test")


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise NeurospecError(f"{what} not found at {path}; pass the folder of the data set (data_dir=), or "
                             f"leave it out to use the registered data set (neurospec data list)")
    return path


def ntrex_sentences(language: str, data_dir: str | Path | None = None) -> list[tuple[int, str]]:
    """NTREX-128 sentences of ``language`` as (line index, text); line i of every language is parallel."""
    lang = resolve(language)
    if not lang.ntrex:
        raise NeurospecError(f"NTREX-128 has no {lang.name} ({lang.key})")
    folder = locate("ntrex128", data_dir or None)
    kind = "src" if lang.ntrex == "eng" else "ref"
    path = _existing(folder / f"newstest2019-{kind}.{lang.ntrex}.txt", f"NTREX-128 file for {lang.name}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(i, line.strip()) for i, line in enumerate(lines) if line.strip()]


def sib200_sentences(language: str, split: str = "all", data_dir: str | Path | None = None) -> list[tuple[int, str]]:
    """FLORES-200 sentences of ``language`` from SIB-200 as (FLORES index id, text); ``split`` train/dev/test/all."""
    if split != "all" and split not in SIB_SPLITS:
        raise NeurospecError(f"unknown SIB-200 split {split!r}: use train, dev, test or all")
    lang = resolve(language)
    if not lang.flores200:
        raise NeurospecError(f"FLORES-200 has no {lang.name} ({lang.key})")
    folder = _existing(locate("flores", data_dir or None) / lang.flores200,
                       f"SIB-200 folder for {lang.name}")
    rows = []
    for name in (SIB_SPLITS if split == "all" else (split,)):
        with open(_existing(folder / f"{name}.tsv", f"SIB-200 {name} split"), encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                rows.append((int(row["index_id"]), row["text"].strip()))
    return rows
