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
with the connectors "because" / "therefore"). A single file holds the language you name. Loading is
:mod:`neurospec.data.xcopa` (``load_xcopa`` and ``CONNECTORS`` are importable from here too).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from neurospec.data.items import MCItem
from neurospec.data.languages import resolve
from neurospec.data.prompts import PLAIN
from neurospec.data.xcopa import CONNECTORS, load_xcopa
from neurospec.evaluate.scoring import choose_by_loglikelihood
from neurospec.evaluate.tasks.base import MCTask
from neurospec.util.errors import NeurospecError

__all__ = ["CONNECTORS", "FULL_STOPS", "XCOPA", "load_xcopa", "xcopa_context", "xcopa_continuation", "xcopa_pairs"]

# sentence-final full stops removed from the end of a premise (Latin, CJK, fullwidth, Devanagari,
# Urdu, Ethiopic, Burmese); question and exclamation marks are kept
FULL_STOPS = ".。．।۔።။"


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


class XCOPA(MCTask):
    """XCOPA (11 languages; English COPA from a file): accuracy of the likelier continuation."""

    name = "xcopa"
    option_defaults = {"keep_outputs": False, "connectors": None, "normalize": "none", "fmt": None}
    scoring = "log-likelihood: premise (final full stop removed) + ' ' + connector | ' ' + option (first letter lower-cased)"

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

