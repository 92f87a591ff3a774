"""INCLUDE: regional-knowledge exam questions in 44 languages, four options, answered by letter.

    from neurospec.evaluate.tasks.include import Include, load_include
    items = load_include("et", "include_base_44.jsonl")      # rows whose language is Estonian
    Include().evaluate(model, tok, "Estonian", data_dir="include_base_44.jsonl", limit=200)

Prompt (METHODS section 2, the reference's): ``question\\nA) ..\\nB) ..\\nC) ..\\nD) ..\\nAnswer:``
(:func:`neurospec.evaluate.scoring.lettered_prompt`, question stripped); the chosen option is the letter
with the highest next-token probability (:func:`neurospec.evaluate.scoring.choose_by_letter`). The letters are
the reference's bare tokens "A".."D" right after ``Answer:`` (``form="bare"``, the default);
``form="space"`` scores " A".." D" instead (a different id on Gemma-3 tokenizers), ``form="auto"``
lets :func:`neurospec.evaluate.scoring.letter_token_ids` choose. ``details["form"]`` records the form used
(``auto`` as the form it resolved to).

Data: ``neurospec data fetch include`` (``CohereForAI/include-base-44`` at a pinned revision, parquet
files per language), or your own export: JSONL, JSON, CSV, TSV or parquet files with the Hugging Face fields ``question``,
``option_a`` .. ``option_d`` (or a ``choices`` list of four), ``answer`` (0-3), ``language`` (an English
name such as ``Estonian``, or any code :func:`neurospec.data.languages.resolve` knows); ``subject``,
``domain``, ``country``, ``level`` and ``regional_feature`` are kept in ``metadata`` where present.
``data_dir`` is one file or a folder of such files (all below it are read, in path order); without it,
the fetched ``include`` data set. Loading is :mod:`neurospec.data.include` (``load_include`` is
importable from here too).
"""

from __future__ import annotations

from typing import Sequence

from neurospec.data.include import LETTERS, load_include
from neurospec.data.items import MCItem
from neurospec.data.prompts import PLAIN, encode
from neurospec.evaluate.scoring import choose_by_letter, letter_token_ids, lettered_prompt
from neurospec.evaluate.tasks.base import MCTask, TaskResult
from neurospec.util.errors import NeurospecError

__all__ = ["FORMS", "Include", "include_prompt", "load_include", "resolved_form"]


def include_prompt(item: MCItem) -> str:
    """``question\\nA) ..\\nB) ..\\nC) ..\\nD) ..\\nAnswer:``."""
    return lettered_prompt(item, LETTERS)


class Include(MCTask):
    """INCLUDE (from your export): accuracy of the likeliest answer letter."""

    name = "include"
    option_defaults = {"keep_outputs": False, "form": "bare", "fmt": None}
    scoring = "letter: argmax over the next-token probability of A/B/C/D after 'question\\nA) ..\\nD) ..\\nAnswer:'"

    def evaluate(self, model, tokenizer, language: str, **options) -> TaskResult:
        """As :meth:`MCTask.evaluate`; ``form="auto"`` is resolved first, so ``details["form"]`` is bare or space."""
        if "form" in options:
            options["form"] = resolved_form(tokenizer, options["form"], options.get("fmt"))
        return super().evaluate(model, tokenizer, language, **options)

    def predict(self, model, tokenizer, items: Sequence[MCItem], *, intervention=None, batch_size: int = 8,
                form: str = "bare", fmt=None) -> list:
        check_form(form)
        return choose_by_letter(model, tokenizer, items, fmt=fmt or PLAIN, prompt=include_prompt, letters=LETTERS,
                                form=form, batch_size=batch_size, intervention=intervention)

    def describe(self, options) -> dict:
        return {"scoring": self.scoring, "form": options["form"]}


FORMS = ("bare", "space", "auto")
_PROBE = MCItem("?", ("a", "b", "c", "d"), 0)  # every INCLUDE prompt ends alike: "...\nD) ..\nAnswer:"


def check_form(form: str) -> None:
    """``check_form("bare")``: a letter form :func:`neurospec.evaluate.scoring.letter_token_ids` takes, else a one-line error."""
    if form not in FORMS:
        raise NeurospecError(f"include: unknown form {form!r}; use bare (the reference's 'A'), space (' A') or auto")


def resolved_form(tokenizer, form: str, fmt=None) -> str:
    """``resolved_form(tok, "auto")``: the form ("bare" or "space") INCLUDE's letters take; bare and space as given."""
    check_form(form)
    if form != "auto":
        return form
    tail = encode(tokenizer, include_prompt(_PROBE), fmt or PLAIN).text[-24:]
    chosen = letter_token_ids(tokenizer, tail, LETTERS, "auto")
    try:
        return "space" if letter_token_ids(tokenizer, tail, LETTERS, "space") == chosen else "bare"
    except NeurospecError:  # " A" is not one token there: auto chose the bare letters
        return "bare"
