"""XCOPA: causal commonsense reasoning, two options scored as continuations (zero-shot, log-likelihood).

    from neurospec.evaluate.tasks.xcopa import XCOPA, load_xcopa, xcopa_pairs
    items = load_xcopa("et", split="test")                 # 500 MCItems; split "val" has 100
    xcopa_pairs(items[0])   # [("Ese oli mullikilesse mässitud sest", " see oli õrn."), (.., " see oli väike.")]
    XCOPA().evaluate(model, tok, "et", limit=100, intervention=edit)

Context: the premise with its final full stop removed (``.``, or the script's own such as ``。``; a
premise without one, as in Thai and Tamil, is kept whole), a space, and the language's cause or
effect connector (METHODS section 2). Continuation: a space and the option with its first
character lower-cased. This is lm-eval's ``xcopa`` task, with one difference: lm-eval drops the
premise's last character unconditionally, which cuts a letter off every Thai and Tamil premise.
lm-eval joins premise and connector with a space in every language, Chinese and Thai included;
so does this module.

Data: the XCOPA repository layout ``<dir>/<code>/{val,test}.<code>.jsonl`` (the shared copy), the same
with ``{validation,test}.jsonl`` names, or one JSONL/JSON/CSV file with the Hugging Face
``cambridgeltl/xcopa`` fields (``premise, choice1, choice2, question, label``; English COPA files too,
with the connectors "because" / "therefore"). A single file holds the language you name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from neurospec.data.items import MCItem
from neurospec.util.errors import FileFormatError, NeurospecError
from neurospec.data.languages import resolve
from neurospec.data.prompts import PLAIN
from neurospec.evaluate.scoring import choose_by_loglikelihood
from neurospec.evaluate.tasks.base import MCTask, data_location
from neurospec.evaluate.tasks.records import field, read_records

__all__ = ["CONNECTORS", "FULL_STOPS", "XCOPA", "load_xcopa", "xcopa_context", "xcopa_continuation", "xcopa_pairs"]

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

# sentence-final full stops removed from the end of a premise (Latin, CJK, fullwidth, Devanagari,
# Urdu, Ethiopic, Burmese); question and exclamation marks are kept
FULL_STOPS = ".。．।۔።။"

_SPLIT_FILES = {"test": ("test",), "val": ("val", "validation", "dev")}


def _code(language: str) -> str:
    lang = resolve(language)
    return lang.xcopa or lang.iso639_1 or lang.key


def xcopa_context(premise: str, question: str, connectors: tuple[str, str] | Mapping[str, str]) -> str:
    """The premise without its final full stop, a space, and the cause or effect connector."""
    if isinstance(connectors, Mapping):
        connectors = (connectors["cause"], connectors["effect"])
    if question not in ("cause", "effect"):
        raise NeurospecError(f"XCOPA question must be 'cause' or 'effect', not {question!r}")
    text = premise.strip()
    if text and text[-1] in FULL_STOPS:
        text = text[:-1]
    return f"{text} {connectors[0] if question == 'cause' else connectors[1]}"


def xcopa_continuation(choice: str) -> str:
    """A space and the choice with its first character lower-cased (lm-eval's ``convert_choice``)."""
    choice = choice.strip()
    return " " + choice[:1].lower() + choice[1:]


def xcopa_pairs(item: MCItem, connectors: tuple[str, str] | Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(context, continuation) per option; connectors default to the item's language's (``metadata``)."""
    chosen = connectors or item.metadata["connectors"]
    context = xcopa_context(item.question, item.metadata["question"], chosen)
    return [(context, xcopa_continuation(option)) for option in item.options]


def _split_file(folder: Path, code: str, split: str) -> Path:
    names = [f"{stem}.{code}.jsonl" for stem in _SPLIT_FILES[split]] + [f"{stem}.jsonl" for stem in _SPLIT_FILES[split]]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    held = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
    raise NeurospecError(f"XCOPA folder {folder} has no {split} split (looked for {', '.join(names)}); it holds {held}")


def _source(language: str, split: str, data_dir: str | Path | None) -> Path:
    location = data_location(data_dir, "xcopa", "XCOPA")
    if location.is_file():
        return location
    code = _code(language)
    if not (location / code).is_dir():
        raise XCOPA().missing_language(language, location, data_dir)
    return _split_file(location / code, code, split)


def load_xcopa(language: str, split: str = "test", data_dir: str | Path | None = None) -> list[MCItem]:
    """XCOPA items of ``language`` (split ``test`` or ``val``); options are choice1, choice2; gold = label."""
    key = resolve(language).key
    split = XCOPA().split_name(split)
    path = _source(key, split, data_dir)
    code = _code(key)
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


class XCOPA(MCTask):
    """XCOPA (11 languages; English COPA from a file): accuracy of the likelier continuation."""

    name = "xcopa"
    data_folder = "xcopa"
    splits = ("test", "val")
    split_aliases = {"validation": "val", "dev": "val"}
    option_defaults = {"keep_outputs": False, "connectors": None, "normalize": "none", "fmt": None}
    scoring = "log-likelihood: premise (final full stop removed) + ' ' + connector | ' ' + option (first letter lower-cased)"

    def languages(self, data_dir: str | Path | None = None) -> list[str]:
        location = data_location(data_dir, self.data_folder, "XCOPA")
        if location.is_file():
            return []  # one file holds whatever language the caller names
        keys = []
        for folder in sorted(p for p in location.iterdir() if p.is_dir()):
            try:
                keys.append(resolve(folder.name).key)
            except NeurospecError:
                continue
        return keys

    def load(self, language, *, data_dir=None, split=None) -> list[MCItem]:
        return load_xcopa(language, self.split_name(split), data_dir)

    def predict(self, model, tokenizer, items: Sequence[MCItem], *, intervention=None, batch_size: int = 8,
                connectors=None, normalize: str = "none", fmt=None) -> list:
        for item in items:
            if connectors is None and item.metadata.get("connectors") is None:
                raise NeurospecError(
                    f"XCOPA has no connectors for {resolve(item.group).name} ({item.group}); "
                    "pass connectors={'cause': ..., 'effect': ...}")
        return choose_by_loglikelihood(model, tokenizer, items, pairs=lambda item: xcopa_pairs(item, connectors),
                                       normalize=normalize, fmt=fmt or PLAIN, batch_size=batch_size,
                                       intervention=intervention)

    def describe(self, options) -> dict:
        chosen = options["connectors"]
        return {"scoring": self.scoring, "normalize": options["normalize"],
                "connectors": None if chosen is None else dict(zip(("cause", "effect"), _pair(chosen)))}


def _pair(connectors) -> tuple[str, str]:
    if isinstance(connectors, Mapping):
        return connectors["cause"], connectors["effect"]
    return tuple(connectors)  # type: ignore[return-value]

