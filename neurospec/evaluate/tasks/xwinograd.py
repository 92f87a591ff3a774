"""XWinograd: pronoun resolution by partial scoring (zero-shot, log-likelihood), six languages.

    from neurospec.evaluate.tasks.xwinograd import XWinograd, load_xwinograd, xwinograd_pairs
    items = load_xwinograd("jp")          # MCItems; question = the sentence with "_" for the pronoun
    xwinograd_pairs(items[0])             # [(sentence up to "_" with option 1, text after "_"), ...]
    XWinograd().evaluate(model, tok, "fr", intervention=edit)

Each option replaces ``_``; the text after it is scored given the sentence up to and including the
option (:func:`neurospec.evaluate.scoring.partial_scoring_pair`). The continuation is the sentence's own text
after ``_``: lm-eval instead strips it and prefixes a space (``target_delimiter=" "`` does the same
here), which differs for Japanese and Chinese, where no space follows the pronoun.

Data: the original release's ``dataset.tsv`` (the shared copy) or a JSONL/JSON/CSV file with the
Hugging Face ``Muennighoff/xwinograd`` fields; loading, and how ``_`` is built from the release's
tokens, is :mod:`neurospec.data.xwinograd` (``load_xwinograd`` and ``underscore_sentence`` are
importable from here too).
"""

from __future__ import annotations

from typing import Sequence

from neurospec.data.items import MCItem
from neurospec.data.prompts import PLAIN
from neurospec.data.xwinograd import load_xwinograd, underscore_sentence
from neurospec.evaluate.scoring import choose_by_loglikelihood, partial_scoring_pair
from neurospec.evaluate.tasks.base import MCTask

__all__ = ["XWinograd", "load_xwinograd", "underscore_sentence", "xwinograd_pairs"]


def xwinograd_pairs(item: MCItem, target_delimiter: str | None = None) -> list[tuple[str, str]]:
    """(sentence up to ``_`` with the option, text after ``_``) per option.

    ``target_delimiter=" "`` gives lm-eval's continuation: the text after ``_`` stripped, after a space.
    """
    pairs = [partial_scoring_pair(item.question, option) for option in item.options]
    if target_delimiter is None:
        return pairs
    return [(context, target_delimiter + after.strip()) for context, after in pairs]


class XWinograd(MCTask):
    """XWinograd (en fr jp pt ru zh): accuracy of partial scoring."""

    name = "xwinograd"
    option_defaults = {"keep_outputs": False, "target_delimiter": None, "normalize": "none", "fmt": None}
    scoring = "partial scoring: sentence up to '_' with the option | the text after '_'"

    def predict(self, model, tokenizer, items: Sequence[MCItem], *, intervention=None, batch_size: int = 8,
                target_delimiter: str | None = None, normalize: str = "none", fmt=None) -> list:
        return choose_by_loglikelihood(model, tokenizer, items,
                                       pairs=lambda item: xwinograd_pairs(item, target_delimiter),
                                       normalize=normalize, fmt=fmt or PLAIN, batch_size=batch_size,
                                       intervention=intervention)

    def describe(self, options) -> dict:
        return {"scoring": self.scoring, "target_delimiter": options["target_delimiter"],
                "normalize": options["normalize"]}
