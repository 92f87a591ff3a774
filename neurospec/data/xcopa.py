"""XCOPA items: a premise, a cause-or-effect question and two options, in 11 languages (English COPA too).

    from neurospec.data.xcopa import load_xcopa, xcopa_languages
    items = load_xcopa("et", split="test")                 # 500 MCItems; split "val" has 100
    items[0].metadata["connectors"]                        # ("sest", "seetõttu"): the language's connectors
    xcopa_languages()                                      # ['est_Latn', 'hat_Latn', ...]

Data: the XCOPA repository layout ``<dir>/<code>/{val,test}.<code>.jsonl`` (the shared copy), the same
with ``{validation,test}.jsonl`` names, or one JSONL/JSON/CSV file with the Hugging Face
``cambridgeltl/xcopa`` fields (``premise, choice1, choice2, question, label``; English COPA files too,
with the connectors "because" / "therefore"). A single file holds the language you name.
How the items are scored is :mod:`neurospec.evaluate.tasks.xcopa`.
"""

from __future__ import annotations

from pathlib import Path

from neurospec.data.items import MCItem
from neurospec.data.languages import resolve
from neurospec.data.records import checked_split, data_location, field, missing_language, read_records
from neurospec.util.errors import FileFormatError, NeurospecError

__all__ = ["CONNECTORS", "XCOPA_SPLITS", "XCOPA_SPLIT_ALIASES", "load_xcopa", "xcopa_code", "xcopa_languages"]

# ISO 639-1 / XCOPA code -> (cause connector, effect connector): METHODS section 2, lm-eval's values
CONNECTORS: dict[str, tuple[str, str]] = {
    "et": ("sest", "seetõttu"),
    "ht": ("poukisa", "donk sa"),
    "it": ("perché", "quindi"),
    "id": ("karena", "maka"),
    "qu": ("imataq", "chaymi"),
    "sw": ("kwa sababu", "kwa hiyo"),
    "zh": ("因为", "所以"),
    "ta": ("காரணமாக", "எனவே"),
    "th": ("เพราะ", "ดังนั้น"),
    "tr": ("çünkü", "bu yüzden"),
    "vi": ("bởi vì", "vì vậy"),
    "en": ("because", "therefore"),  # English COPA (lm-eval's copa task)
}

#: XCOPA's splits (the default first) and the other names they go by.
XCOPA_SPLITS: tuple[str, ...] = ("test", "val")
XCOPA_SPLIT_ALIASES: dict[str, str] = {"validation": "val", "dev": "val"}

_SPLIT_FILES = {"test": ("test",), "val": ("val", "validation", "dev")}
_WHAT = "XCOPA"


def xcopa_code(language: str) -> str:
    """``xcopa_code("est_Latn")`` -> ``"et"``: the code XCOPA's folders and connectors use."""
    lang = resolve(language)
    return lang.xcopa or lang.iso639_1 or lang.key


def xcopa_languages(data_dir: str | Path | None = None) -> list[str]:
    """Canonical keys of the language folders at ``data_dir`` (default: the ``xcopa`` data set); [] for one file."""
    location = data_location(data_dir, "xcopa", _WHAT)
    if location.is_file():
        return []  # one file holds whatever language the caller names
    keys = []
    for folder in sorted(p for p in location.iterdir() if p.is_dir()):
        try:
            keys.append(resolve(folder.name).key)
        except NeurospecError:
            continue
    return keys


def _split_file(folder: Path, code: str, split: str) -> Path:
    names = [f"{stem}.{code}.jsonl" for stem in _SPLIT_FILES[split]] + [f"{stem}.jsonl" for stem in _SPLIT_FILES[split]]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    held = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
    raise NeurospecError(f"XCOPA folder {folder} has no {split} split (looked for {', '.join(names)}); it holds {held}")


def _source(language: str, split: str, data_dir: str | Path | None) -> Path:
    location = data_location(data_dir, "xcopa", _WHAT)
    if location.is_file():
        return location
    code = xcopa_code(language)
    if not (location / code).is_dir():
        raise missing_language("xcopa", language, location, lambda: xcopa_languages(data_dir))
    return _split_file(location / code, code, split)


def load_xcopa(language: str, split: str | None = "test", data_dir: str | Path | None = None) -> list[MCItem]:
    """XCOPA items of ``language`` (split ``test`` or ``val``, None: test); options choice1, choice2; gold = label."""
    key = resolve(language).key
    split = checked_split("xcopa", split, XCOPA_SPLITS, XCOPA_SPLIT_ALIASES)
    path = _source(key, split, data_dir)
    code = xcopa_code(key)
    connectors = CONNECTORS.get(code)
    needed = "premise, choice1, choice2, question, label"
    items = []
    for line, record in read_records(path):
        question = str(field(record, "question", path, line, needed=needed)).strip()
        if question not in ("cause", "effect"):
            raise FileFormatError(f"{path} line {line}: question must be 'cause' or 'effect', not {question!r}")
        label = str(field(record, "label", path, line, needed=needed)).strip()
        if label not in ("0", "1"):
            raise FileFormatError(f"{path} line {line}: label must be 0 or 1, not {label!r}")
        idx = record.get("idx", line - 1)
        items.append(MCItem(
            str(field(record, "premise", path, line, needed=needed)),
            (str(field(record, "choice1", path, line, needed=needed)), str(field(record, "choice2", path, line, needed=needed))),
            int(label), group=key, id=f"xcopa-{code}-{split}-{idx}",
            metadata={"question": question, "connectors": connectors, "changed": record.get("changed")},
        ))
    return items
