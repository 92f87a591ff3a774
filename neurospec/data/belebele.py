"""Belebele items: reading comprehension on FLORES passages, four options each.

    from neurospec.data.belebele import load_belebele, belebele_languages
    items = load_belebele("de")           # 900 MCItems; metadata["passage"] holds the passage
    belebele_languages()                  # ['deu_Latn', 'eng_Latn'] (the shared copy)

Data: a folder of ``<flores code>.jsonl`` files (``eng_Latn.jsonl``), each line either the shared
re-packaged format (one passage: ``{"text", "items": [{"question", "answers": [{"text", "correct"}
x4]}]}``) or the original Belebele / Hugging Face ``facebook/belebele`` schema (``flores_passage,
question, mc_answer1..mc_answer4, correct_answer_num`` 1-4); or one such file. A file whose records
carry ``dialect`` (the Belebele language code) may hold several languages. How the items are prompted
and scored is :mod:`neurospec.evaluate.tasks.belebele`.
"""

from __future__ import annotations

from pathlib import Path

from neurospec.data.items import MCItem
from neurospec.data.languages import language_of, resolve
from neurospec.data.records import RECORD_SUFFIXES, data_location, field, missing_language, read_records
from neurospec.util.errors import FileFormatError, NeurospecError

__all__ = ["ORIGINAL_FIELDS", "belebele_languages", "load_belebele"]

ORIGINAL_FIELDS = "flores_passage, question, mc_answer1..mc_answer4, correct_answer_num"
_WHAT = "Belebele"


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


def _missing(key: str, source: Path, data_dir: str | Path | None) -> NeurospecError:
    return missing_language("belebele", key, source, lambda: belebele_languages(data_dir))


def _file_for(location: Path, key: str) -> Path:
    lang = resolve(key)
    code = lang.flores200 or key
    for name in (f"{code}.jsonl", f"{code}.json", f"{key}.jsonl"):
        if (location / name).is_file():
            return location / name
    raise _missing(key, location, location)


def load_belebele(language: str, data_dir: str | Path | None = None) -> list[MCItem]:
    """Belebele items of ``language`` in file order (passage by passage, question by question)."""
    key = resolve(language).key
    location = data_location(data_dir, "belebele_en_de", _WHAT)
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
        raise _missing(key, path, data_dir)
    return items


def belebele_languages(data_dir: str | Path | None = None) -> list[str]:
    """Canonical keys of the languages at ``data_dir`` (default: the ``belebele`` data set)."""
    location = data_location(data_dir, "belebele_en_de", _WHAT)
    if location.is_dir():
        found = [language_of(p.stem) for p in sorted(location.iterdir()) if p.suffix in RECORD_SUFFIXES]
    else:
        found = [language_of(str(r["dialect"])) for _, r in read_records(location) if r.get("dialect")]
    return list(dict.fromkeys(k for k in found if k))
