"""The NLU control sets of the culture method: QNLI, MRPC and CommonsenseQA as multiple-choice items.

    from neurospec.data.nlu import load_qnli, load_mrpc, load_commonsenseqa
    qnli = load_qnli()                          # GLUE QNLI dev, 5,463 items: options ("yes", "no")
    mrpc = load_mrpc()                          # MSRP test (what GLUE's MRPC test is), 1,725 items
    dev = load_mrpc(split="dev")                # GLUE MRPC dev, 408 items
    csqa = load_commonsenseqa("commonsense_qa_validation.jsonl")      # a local export of tau/commonsense_qa

METHODS section 3: suppressing culture neurons should leave these "barely moved". Every item's
group is the benchmark's name (``"qnli"``, ``"mrpc"``, ``"commonsenseqa"``), and so is
``metadata["benchmark"]``.

- QNLI: GLUE's ``dev.tsv`` (``index, question, sentence, label``; labels ``entailment`` /
  ``not_entailment``; parsed with ``csv.QUOTE_NONE`` as GLUE's files need), by default
  the ``qnli`` data set's ``dev.tsv``. Question: ``"Question: ...\\nSentence: ...\\nDoes the sentence
  answer the question?"``; options ``("yes", "no")``; gold ``yes`` for entailment. A
  ``.jsonl/.json/.csv/.parquet`` export of ``nyu-mll/glue`` (``qnli``: ``question, sentence, label, idx``,
  label 0 = entailment) reads too.
- MRPC: GLUE's ``dev.tsv`` or the labelled MSRP test file ``msr_paraphrase_test.txt`` (UTF-8 with a
  BOM; ``Quality, #1 ID, #2 ID, #1 String, #2 String``), by default the ``mrpc`` data set's.
  Question: ``"Sentence 1: ...\\nSentence 2: ...\\nDo these two sentences mean the same thing?"``;
  options ``("yes", "no")``; gold ``yes`` for Quality 1. ``split="test"`` (default, as the culture
  reference evaluates GLUE's MRPC test) or ``"dev"``. A ``nyu-mll/glue`` ``mrpc`` export
  (``sentence1, sentence2, label, idx``, label 1 = equivalent) reads too.
- CommonsenseQA: a local export of ``tau/commonsense_qa`` (``id, question, question_concept, choices
  {label: [...], text: [...]}, answerKey``; JSON lines / JSON, or CSV / TSV where ``choices`` is a
  JSON string or a Python literal); options = the choice texts in file order, gold = the
  ``answerKey``'s choice. The hub's test split has no answers: export ``validation`` (what the
  reference evaluates).

An ``answerKey`` or label that is not one of the options is an error naming the file and line.
"""

from __future__ import annotations

import ast
import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator, Literal

from neurospec.data.culturalbench import need, read_rows
from neurospec.data.items import MCItem
from neurospec.data.locate import locate
from neurospec.util.errors import FileFormatError, NeurospecError

__all__ = ["COMMONSENSEQA_HF", "GLUE_HF", "MRPC_FILES", "NLU_OPTIONS", "load_commonsenseqa", "load_mrpc", "load_qnli"]

#: Hub ids for users exporting the sets themselves.
GLUE_HF = "nyu-mll/glue"
COMMONSENSEQA_HF = "tau/commonsense_qa"
#: The options of QNLI and MRPC items.
NLU_OPTIONS: tuple[str, str] = ("yes", "no")
#: MRPC split -> file name in the GLUE MRPC folder.
MRPC_FILES: dict[str, str] = {"dev": "dev.tsv", "test": "msr_paraphrase_test.txt"}

_QNLI_LABELS = {"entailment": 0, "not_entailment": 1}


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise NeurospecError(f"limit must be a positive integer or None, got {limit!r}")


def _glue_tsv(path: Path, columns: tuple[str, ...], what: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows of a GLUE TSV (no quoting, optional BOM) as dicts, with ``"<path> line N"``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise FileFormatError(f"{path} is not UTF-8 text (byte {err.start}); {what} files are UTF-8") from None
    # StringIO, not splitlines(): a sentence can hold characters splitlines() breaks on (U+2028, \x1c)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader, None)
    if not header:
        raise FileFormatError(f"{path} is empty: it holds no {what} rows")
    header = [h.strip() for h in header]
    missing = [c for c in columns if c not in header]
    if missing:
        raise FileFormatError(f"{path}: no column(s) {missing}; the header is {header}. A GLUE {what} file has "
                              f"the columns {', '.join(columns)}.")
    for row in reader:
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise FileFormatError(f"{path} line {reader.line_num}: {len(row)} cells, the header has {len(header)} "
                                  f"(GLUE files are tab-separated without quoting)")
        yield f"{path} line {reader.line_num}", dict(zip(header, row))


def _default(dataset_name: str, name: str, path: str | Path | None) -> Path:
    if path is None:
        return locate(dataset_name) / name
    path = Path(path)
    return path / name if path.is_dir() else path


def _exists(path: Path, what: str, hint: str) -> None:
    if not path.is_file():
        raise NeurospecError(f"{what} file {path} not found. {hint}")


def load_qnli(path: str | Path | None = None, *, limit: int | None = None) -> list[MCItem]:
    """GLUE QNLI items: ``dev.tsv`` (default: the ``qnli`` data set's, :mod:`neurospec.data.locate`)
    or a ``nyu-mll/glue`` ``qnli`` export; the first ``limit`` rows when given (file order).

    ``MCItem("Question: ...\\nSentence: ...\\nDoes the sentence answer the question?", ("yes", "no"),
    gold, group="qnli", id="qnli-<index>", metadata={"benchmark": "qnli", "label": ..., "index": ...})``.
    """
    _check_limit(limit)
    path = _default("qnli", "dev.tsv", path)
    _exists(path, "QNLI", f"Pass the GLUE QNLI dev.tsv (or its folder), an export of {GLUE_HF} (config qnli, "
                          f"split validation), or run `neurospec data fetch qnli`.")
    if path.suffix.lower() == ".tsv":
        rows = _glue_tsv(path, ("index", "question", "sentence", "label"), "QNLI")
    else:
        rows = read_rows(path, "QNLI")
    items: list[MCItem] = []
    for where, record in rows:
        if limit is not None and len(items) >= limit:
            break
        label = need(record, "label", where, ("question", "sentence", "label"))
        text = str(label).strip()
        if text in _QNLI_LABELS:
            gold = _QNLI_LABELS[text]
        elif text in ("0", "1"):               # the hub's ClassLabel: 0 = entailment, 1 = not_entailment
            gold = int(text)
        else:
            raise FileFormatError(f"{where}: QNLI label {label!r} is not entailment / not_entailment (or 0 / 1)")
        index = str(record.get("index", record.get("idx", len(items)))).strip()
        question = str(need(record, "question", where)).strip()
        sentence = str(need(record, "sentence", where)).strip()
        items.append(MCItem(
            f"Question: {question}\nSentence: {sentence}\nDoes the sentence answer the question?", NLU_OPTIONS,
            gold, group="qnli", id=f"qnli-{index}",
            metadata={"benchmark": "qnli", "label": "entailment" if gold == 0 else "not_entailment",
                      "index": index}))
    if not items:
        raise FileFormatError(f"{path} holds no QNLI rows")
    return items


def load_mrpc(path: str | Path | None = None, *, split: Literal["dev", "test"] = "test",
              limit: int | None = None) -> list[MCItem]:
    """MRPC items: GLUE's ``dev.tsv`` (``split="dev"``) or the MSRP test file (``"test"``, default), from
    the ``mrpc`` data set by default; ``path`` may be that folder, a file, or a ``nyu-mll/glue``
    ``mrpc`` export.

    ``MCItem("Sentence 1: ...\\nSentence 2: ...\\nDo these two sentences mean the same thing?",
    ("yes", "no"), gold, group="mrpc", id="mrpc-<#1 ID>-<#2 ID>", metadata={"benchmark": "mrpc",
    "label": 1 | 0, "split": ...})``.
    """
    _check_limit(limit)
    if split not in MRPC_FILES:
        raise NeurospecError(f"MRPC split={split!r}; use 'test' (the labelled MSRP test set, {MRPC_FILES['test']}) "
                             f"or 'dev' (GLUE's dev.tsv).")
    path = _default("mrpc", MRPC_FILES[split], path)
    _exists(path, "MRPC", f"Pass the GLUE MRPC folder (dev.tsv, msr_paraphrase_test.txt), one of those files, an "
                          f"export of {GLUE_HF} (config mrpc), or run `neurospec data fetch mrpc`.")
    glue = ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")
    hub = ("sentence1", "sentence2", "label")
    is_glue = path.suffix.lower() in (".tsv", ".txt")
    rows = _glue_tsv(path, glue, "MRPC") if is_glue else read_rows(path, "MRPC")
    items: list[MCItem] = []
    for where, record in rows:
        if limit is not None and len(items) >= limit:
            break
        if is_glue:
            label = str(record["Quality"]).strip()
            first, second = record["#1 String"].strip(), record["#2 String"].strip()
            item_id = f"mrpc-{record['#1 ID'].strip()}-{record['#2 ID'].strip()}"
        else:
            label = str(need(record, "label", where, hub)).strip()
            first = str(need(record, "sentence1", where, hub)).strip()
            second = str(need(record, "sentence2", where, hub)).strip()
            item_id = f"mrpc-{str(record.get('idx', len(items))).strip()}"
        if label not in ("0", "1"):
            raise FileFormatError(f"{where}: MRPC label {label!r} is not 1 (paraphrase) or 0 (not a paraphrase)")
        if not first or not second:
            raise FileFormatError(f"{where}: an empty sentence; MRPC rows need two sentences")
        items.append(MCItem(
            f"Sentence 1: {first}\nSentence 2: {second}\nDo these two sentences mean the same thing?", NLU_OPTIONS,
            0 if label == "1" else 1, group="mrpc", id=item_id,
            metadata={"benchmark": "mrpc", "label": int(label), "split": split}))
    if not items:
        raise FileFormatError(f"{path} holds no MRPC rows")
    return items


def _choices(value: Any, where: str) -> tuple[list[str], list[str]]:
    """``choices`` as (labels, texts): a mapping, or its JSON / Python-literal string (CSV exports)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise FileFormatError(f"{where}: choices {text[:80]!r} is neither JSON nor a Python literal; "
                                      f"it should be {{'label': ['A', ...], 'text': [...]}}") from None
    if not isinstance(value, dict) or "label" not in value or "text" not in value:
        raise FileFormatError(f"{where}: choices must be {{'label': [...], 'text': [...]}}, got {value!r:.80}")
    labels, texts = [str(x).strip() for x in value["label"]], [str(x).strip() for x in value["text"]]
    if len(labels) != len(texts) or len(labels) < 2:
        raise FileFormatError(f"{where}: choices has {len(labels)} labels and {len(texts)} texts; it needs "
                              f"2 or more of each, as many labels as texts")
    if len(set(labels)) != len(labels):
        raise FileFormatError(f"{where}: choice labels {labels} repeat")
    return labels, texts


def load_commonsenseqa(path: str | Path, *, limit: int | None = None) -> list[MCItem]:
    """CommonsenseQA items from a local export of ``tau/commonsense_qa`` (the validation split has answers).

    ``MCItem(question, choice texts, index of answerKey, group="commonsenseqa", id="commonsenseqa-<id>",
    metadata={"benchmark": "commonsenseqa", "answer_key": ..., "labels": (...), "question_concept": ...})``.
    """
    _check_limit(limit)
    if path is None:
        raise NeurospecError(f"CommonsenseQA needs a local file: export {COMMONSENSEQA_HF} (split validation) "
                             f"with Dataset.to_json('commonsense_qa_validation.jsonl') and pass its path.")
    columns = ("id", "question", "choices", "answerKey")
    items: list[MCItem] = []
    for where, record in read_rows(path, "CommonsenseQA"):
        if limit is not None and len(items) >= limit:
            break
        key = record.get("answerKey")
        if key is None or not str(key).strip():
            raise FileFormatError(f"{where}: answerKey is {'missing' if key is None else 'empty'}; the hub's test "
                                  f"split has no answers: export the validation split of {COMMONSENSEQA_HF}")
        labels, texts = _choices(need(record, "choices", where, columns), where)
        key = str(key).strip()
        if key not in labels:
            raise FileFormatError(f"{where}: answerKey {key!r} is not one of the choice labels {labels}")
        qid = str(need(record, "id", where, columns)).strip()
        concept = record.get("question_concept")
        items.append(MCItem(
            str(need(record, "question", where, columns)).strip(), tuple(texts), labels.index(key),
            group="commonsenseqa", id=f"commonsenseqa-{qid}",
            metadata={"benchmark": "commonsenseqa", "answer_key": key, "labels": tuple(labels),
                      "question_concept": None if concept is None else str(concept)}))
    if not items:
        raise FileFormatError(f"{path} holds no CommonsenseQA records")
    return items
