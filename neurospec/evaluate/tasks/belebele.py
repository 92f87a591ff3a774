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
carry ``dialect`` (the Belebele language code) may hold several languages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from neurospec.data.items import MCItem
from neurospec.util.errors import FileFormatError
from neurospec.data.languages import language_of, resolve
from neurospec.data.prompts import PLAIN
from neurospec.evaluate.scoring import choose_by_letter
from neurospec.evaluate.tasks.base import MCTask, data_location
from neurospec.evaluate.tasks.records import RECORD_SUFFIXES, field, read_records

__all__ = ["Belebele", "belebele_prompt", "load_belebele"]

LETTERS = "ABCD"
ORIGINAL_FIELDS = "flores_passage, question, mc_answer1..mc_answer4, correct_answer_num"


def belebele_prompt(item: MCItem) -> str:
    """``P: passage\\nQ: question\\nA: ..\\nB: ..\\nC: ..\\nD: ..\\nAnswer:`` (lm-eval's template)."""
    lines = [f"P: {item.metadata['passage']}", f"Q: {item.question.strip()}"]
    lines += [f"{letter}: {option}" for letter, option in zip(LETTERS, item.options)]
    return "\n".join(lines) + "\nAnswer:"


def _repackaged(path: Path, line: int, record: dict, key: str, code: str) -> list[MCItem]:
    passage = str(field(record, "text", path, line, needed="text, items"))
    questions = field(record, "items", path, line, needed="text, items")
    items = []
    for number, question in enumerate(questions):
        answers = question.get("answers") or []
        golds = [i for i, answer in enumerate(answers) if answer.get("correct") is True]
        if len(answers) != 4 or len(golds) != 1 or "question" not in question:
            raise FileFormatError(f"{path} line {line}, question {number}: expected a question, 4 answers and "
                                  f"exactly one correct, found {len(answers)} answers and {len(golds)} correct")
        items.append(MCItem(str(question["question"]), tuple(str(a["text"]) for a in answers), golds[0],
                            group=key, id=f"belebele-{code}-{line}-{number}", metadata={"passage": passage}))
    return items


def _original(path: Path, line: int, record: dict, key: str, code: str) -> MCItem:
    options = tuple(str(field(record, f"mc_answer{k}", path, line, needed=ORIGINAL_FIELDS)) for k in range(1, 5))
    answer = str(field(record, "correct_answer_num", path, line, needed=ORIGINAL_FIELDS)).strip()
    if answer not in ("1", "2", "3", "4"):
        raise FileFormatError(f"{path} line {line}: correct_answer_num must be 1-4, not {answer!r}")
    number = record.get("question_number", line)
    link = record.get("link")
    return MCItem(str(field(record, "question", path, line, needed=ORIGINAL_FIELDS)), options, int(answer) - 1,
                  group=key, id=f"belebele-{code}-{line}-{number}",
                  metadata={"passage": str(field(record, "flores_passage", path, line, needed=ORIGINAL_FIELDS)),
                            "link": link})


def _file_for(location: Path, key: str) -> Path:
    lang = resolve(key)
    code = lang.flores200 or key
    for name in (f"{code}.jsonl", f"{code}.json", f"{key}.jsonl"):
        if (location / name).is_file():
            return location / name
    raise Belebele().missing_language(key, location, location)


def load_belebele(language: str, data_dir: str | Path | None = None) -> list[MCItem]:
    """Belebele items of ``language`` in file order (passage by passage, question by question)."""
    key = resolve(language).key
    location = data_location(data_dir, "belebele_en_de", "Belebele")
    path = _file_for(location, key) if location.is_dir() else location
    code = resolve(key).flores200 or key
    items: list[MCItem] = []
    for line, record in read_records(path):
        dialect = record.get("dialect")
        if dialect and language_of(str(dialect)) != key:
            continue
        if "items" in record:
            items.extend(_repackaged(path, line, record, key, code))
        elif "flores_passage" in record or "mc_answer1" in record:
            items.append(_original(path, line, record, key, code))
        else:
            raise FileFormatError(f"{path} line {line}: neither Belebele format (re-packaged: text, items; "
                                  f"original: {ORIGINAL_FIELDS})")
    if not items:
        raise Belebele().missing_language(key, path, data_dir)
    return items


class Belebele(MCTask):
    """Belebele (the shared copy: English, German): accuracy of the likeliest answer letter."""

    name = "belebele"
    data_folder = "belebele_en_de"
    splits = ("test",)
    option_defaults = {"keep_outputs": False, "form": "auto", "fmt": None}
    scoring = "letter: argmax over the next-token probability of A/B/C/D after 'P: ..\\nQ: ..\\nA: ..\\nAnswer:'"

    def languages(self, data_dir: str | Path | None = None) -> list[str]:
        location = data_location(data_dir, self.data_folder, "Belebele")
        if location.is_dir():
            found = [language_of(p.stem) for p in sorted(location.iterdir()) if p.suffix in RECORD_SUFFIXES]
        else:
            found = [language_of(str(r["dialect"])) for _, r in read_records(location) if r.get("dialect")]
        return list(dict.fromkeys(k for k in found if k))

    def load(self, language, *, data_dir=None, split=None) -> list[MCItem]:
        self.split_name(split)
        return load_belebele(language, data_dir)

    def predict(self, model, tokenizer, items: Sequence[MCItem], *, intervention=None, batch_size: int = 8,
                form: str = "auto", fmt=None) -> list:
        return choose_by_letter(model, tokenizer, items, fmt=fmt or PLAIN, prompt=belebele_prompt, letters=LETTERS,
                                form=form, batch_size=batch_size, intervention=intervention)

    def describe(self, options) -> dict:
        return {"scoring": self.scoring, "form": options["form"]}
