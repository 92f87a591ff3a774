"""Belebele: reading comprehension on FLORES passages, four options, answered by letter.

    from neurospec.evaluate.tasks.belebele import Belebele, load_belebele, belebele_prompt
    items = load_belebele("de")           # 900 MCItems; metadata["passage"] holds the passage
    print(belebele_prompt(items[0]))      # "P: ...\\nQ: ...\\nA: ...\\nB: ...\\nC: ...\\nD: ...\\nAnswer:"
    Belebele().evaluate(model, tok, "en", limit=200)

Prompt: lm-eval's ``belebele`` template (passage, stripped question, options A-D, ``Answer:``). The
chosen option is the letter with the highest next-token probability
(:func:`neurospec.evaluate.scoring.choose_by_letter`; " A" or "A", whichever the tokenizer makes one token).

Data: a folder of ``<flores code>.jsonl`` files (``eng_Latn.jsonl``), each line either the shared
re-packaged format (one passage: ``{"text", "items": [{"question", "answers": [{"text", "correct"}
x4]}]}``) or the original Belebele / Hugging Face ``facebook/belebele`` schema (``flores_passage,
question, mc_answer1..mc_answer4, correct_answer_num`` 1-4); or one such file. A file whose records
carry ``dialect`` (the Belebele language code) may hold several languages. Loading is
:mod:`neurospec.data.belebele` (``load_belebele`` is importable from here too).
"""

from __future__ import annotations

from typing import Sequence

from neurospec.data.belebele import load_belebele
from neurospec.data.items import MCItem
from neurospec.data.prompts import PLAIN
from neurospec.evaluate.scoring import choose_by_letter
from neurospec.evaluate.tasks.base import MCTask

__all__ = ["Belebele", "belebele_prompt", "load_belebele"]

LETTERS = "ABCD"


def belebele_prompt(item: MCItem) -> str:
    """``P: passage\\nQ: question\\nA: ..\\nB: ..\\nC: ..\\nD: ..\\nAnswer:`` (lm-eval's template)."""
    lines = [f"P: {item.metadata['passage']}", f"Q: {item.question.strip()}"]
    lines += [f"{letter}: {option}" for letter, option in zip(LETTERS, item.options)]
    return "\n".join(lines) + "\nAnswer:"


class Belebele(MCTask):
    """Belebele (the shared copy: English, German): accuracy of the likeliest answer letter."""

    name = "belebele"
    option_defaults = {"keep_outputs": False, "form": "auto", "fmt": None}
    scoring = "letter: argmax over the next-token probability of A/B/C/D after 'P: ..\\nQ: ..\\nA: ..\\nAnswer:'"

    def predict(self, model, tokenizer, items: Sequence[MCItem], *, intervention=None, batch_size: int = 8,
                form: str = "auto", fmt=None) -> list:
        return choose_by_letter(model, tokenizer, items, fmt=fmt or PLAIN, prompt=belebele_prompt, letters=LETTERS,
                                form=form, batch_size=batch_size, intervention=intervention)

    def describe(self, options) -> dict:
        return {"scoring": self.scoring, "form": options["form"]}
