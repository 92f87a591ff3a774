"""English -> X sentence pairs for translation: FLORES-200 (via SIB-200 or the release) and NTREX-128.

    from neurospec.data.translation import flores_pairs, ntrex_pairs, flores_languages, ntrex_languages
    pairs = flores_pairs("zho_Hans", split="test")          # 204 (FLORES id, English, Chinese) pairs
    pairs[0].id, pairs[0].source, pairs[0].reference
    ntrex_pairs("de")                                       # 1997 (line, English, German) pairs

``flores``: a SIB-200 folder (``<dir>/<flores code>/{train,dev,test}.tsv``, the shared copy; splits
``train`` 701, ``dev`` 99, ``test`` 204 sentences or ``all``; default ``test``, the sentences the
project's toy models hold out) or the FLORES-200 release folder (``<dir>/{dev,devtest}/<code>.{dev,devtest}``;
default ``devtest``). Pairs are matched by FLORES sentence id. ``ntrex``: the NTREX-128 folder
(``newstest2019-src.eng.txt`` and ``newstest2019-ref.<code>.txt``; 1997 line-parallel sentences), paired
by line. How translations are generated and scored is :mod:`neurospec.evaluate.tasks.translation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from neurospec.data.languages import resolve
from neurospec.data.parallel import SIB_SPLITS, ntrex_sentences, sib200_sentences
from neurospec.data.records import data_location, missing_language
from neurospec.util.errors import NeurospecError

__all__ = ["FLORES_DEV_SIZE", "FLORES_SPLITS", "SOURCE", "TranslationPair", "flores_default_split",
           "flores_languages", "flores_pairs", "ntrex_languages", "ntrex_pairs"]

SOURCE = "eng_Latn"
FLORES_SPLITS = ("dev", "devtest")
FLORES_DEV_SIZE = 997  # SIB-200 / FLORES ids: dev line i is id i, devtest line i is id 997 + i
_FLORES = "FLORES-200 (SIB-200)"
_NTREX = "NTREX-128"


@dataclass(frozen=True)
class TranslationPair:
    """A sentence id (FLORES id or NTREX line), the English source and the reference translation."""

    id: int
    source: str
    reference: str


def _matched(source: list[tuple[int, str]], target: list[tuple[int, str]]) -> list[TranslationPair]:
    references = dict(target)
    return [TranslationPair(i, text, references[i]) for i, text in source if i in references]


def _keys(codes: Iterable[str]) -> list[str]:
    keys: dict[str, None] = {}
    for code in codes:
        try:
            key = resolve(code).key
        except NeurospecError:
            continue
        if key != SOURCE:
            keys.setdefault(key, None)
    return list(keys)


# ---- FLORES: SIB-200 folders or the FLORES-200 release


def _is_release(folder: Path) -> bool:
    return any((folder / split).is_dir() for split in FLORES_SPLITS)


def _release_sentences(folder: Path, code: str, split: str) -> list[tuple[int, str]]:
    path = folder / split / f"{code}.{split}"
    if not path.is_file():
        raise NeurospecError(f"FLORES-200 file {path} not found")
    offset = FLORES_DEV_SIZE if split == "devtest" else 0
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(offset + i, line.strip()) for i, line in enumerate(lines) if line.strip()]


def flores_languages(data_dir: str | Path | None = None) -> list[str]:
    """Canonical keys of the target languages at ``data_dir`` (default: the ``flores`` data set), English left out."""
    folder = data_location(data_dir, "sib200_flores", _FLORES)
    if _is_release(folder):
        return _keys(sorted({p.name.split(".")[0] for split in FLORES_SPLITS if (folder / split).is_dir()
                             for p in (folder / split).iterdir()}))
    return _keys(sorted(p.name for p in folder.iterdir() if p.is_dir()))


def flores_default_split(data_dir: str | Path | None = None) -> str:
    """``"devtest"`` for the FLORES-200 release layout, ``"test"`` for SIB-200's."""
    folder = data_location(data_dir, "sib200_flores", _FLORES)
    return "devtest" if _is_release(folder) else "test"


def flores_pairs(language: str, split: str | None = None, data_dir: str | Path | None = None) -> list[TranslationPair]:
    """(id, English, ``language``) FLORES-200 pairs; ``split`` per layout (SIB-200: test; release: devtest)."""
    lang = resolve(language)
    folder = data_location(data_dir, "sib200_flores", _FLORES)
    if lang.key not in flores_languages(data_dir):
        raise missing_language("flores", lang.key, folder, lambda: flores_languages(data_dir))
    if _is_release(folder):
        split = split or "devtest"
        if split not in FLORES_SPLITS:
            raise NeurospecError(f"the FLORES-200 release at {folder} has splits dev and devtest, not {split!r}")
        return _matched(_release_sentences(folder, SOURCE, split), _release_sentences(folder, lang.flores200, split))
    split = split or "test"
    if split not in SIB_SPLITS + ("all",):
        raise NeurospecError(f"SIB-200 has splits {', '.join(SIB_SPLITS)} and all, not {split!r}")
    return _matched(sib200_sentences(SOURCE, split, folder), sib200_sentences(lang.key, split, folder))


# ---- NTREX-128


def ntrex_languages(data_dir: str | Path | None = None) -> list[str]:
    """Canonical keys of the reference languages at ``data_dir`` (default: the ``ntrex128`` data set), English left out."""
    folder = data_location(data_dir, "ntrex128", _NTREX)
    names = sorted(p.name for p in folder.glob("newstest2019-ref.*.txt"))
    return _keys(name[len("newstest2019-ref."):-len(".txt")] for name in names)


def ntrex_pairs(language: str, data_dir: str | Path | None = None) -> list[TranslationPair]:
    """(line, English, ``language``) NTREX-128 pairs."""
    lang = resolve(language)
    folder = data_location(data_dir, "ntrex128", _NTREX)
    if lang.key not in ntrex_languages(data_dir):
        raise missing_language("ntrex", lang.key, folder, lambda: ntrex_languages(data_dir))
    return _matched(ntrex_sentences(SOURCE, folder), ntrex_sentences(lang.key, folder))
