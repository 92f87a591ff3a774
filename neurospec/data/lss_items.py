"""Parallel prompt/answer items for the Language Steering Shift, from MLAMA-style JSONL or a parallel corpus.

    from neurospec.data.lss_items import load_lss_items, items_from_parallel, parallel_sentences
    items = load_lss_items("mlama.jsonl")                      # prompts and answers per language
    items = items_from_parallel(parallel_sentences("ntrex", ["eng", "fra", "deu"]), answer_words=1)
    items[0].prompts["fra_Latn"], items[0].answers["fra_Latn"]

JSONL, one item per line; languages in any code the registry knows::

    {"id": "P19-1", "prompt": {"en": "Dante was born in", "fr": "Dante est né à"},
                    "answer": {"en": "Florence", "fr": "Florence"}}
    {"id": "P19-2", "template": {"en": "[X] was born in [Y].", "fr": "[X] est né à [Y]."},
                    "subject": {"en": "Dante", "fr": "Dante"}, "answer": {"en": "Florence", "fr": "Florence"}}

A template's prompt is its text before ``[Y]`` with ``[X]`` replaced by the subject (what follows
``[Y]`` is dropped: the answer is scored as the continuation of the prompt).

The cut of a parallel sentence (documented in docs/evaluation.md): trailing punctuation is removed;
in a language written with spaces the answer is the last ``answer_words`` words and the prompt the
words before them (followed by a space, which scoring moves to the front of the answer); in a
language written without spaces between words (Chinese, Japanese, Thai, Burmese, Khmer, Lao,
Tibetan) the answer is the last ``answer_chars`` characters. A pair whose prompt would be empty is
left out. The answer of language t is therefore the end of t's translation of the same sentence:
a short text in language t that fits the sentence, not a word-by-word translation of the source
answer.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from neurospec.data.languages import resolve
from neurospec.util.errors import NeurospecError

UNSPACED_SCRIPTS = frozenset({"Hans", "Hant", "Jpan", "Thai", "Mymr", "Khmr", "Laoo", "Tibt"})


@dataclass(frozen=True)
class ParallelItem:
    """One item: a prompt and an answer in each of several languages (registry keys)."""

    id: str
    prompts: Mapping[str, str]
    answers: Mapping[str, str]
    metadata: Mapping[str, object] = field(default_factory=dict)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in self.prompts if lang in self.answers)


def is_unspaced(language: str) -> bool:
    """True for languages written without spaces between words (cut by characters)."""
    return resolve(language).script in UNSPACED_SCRIPTS


def _strip_end(text: str) -> str:
    text = text.strip()
    while text and (unicodedata.category(text[-1]).startswith("P") or text[-1].isspace()):
        text = text[:-1]
    return text


def cut_sentence(text: str, language: str, *, answer_words: int = 1, answer_chars: int = 2) -> tuple[str, str] | None:
    """``cut_sentence("Le chat dort.", "fr")`` -> ``("Le chat ", "dort")``; None when no prompt is left."""
    if answer_words < 1 or answer_chars < 1:
        raise NeurospecError("answer_words and answer_chars must be at least 1")
    body = _strip_end(text)
    if is_unspaced(language):
        if len(body) <= answer_chars:
            return None
        return body[:-answer_chars], body[-answer_chars:]
    words = body.split()
    if len(words) <= answer_words:
        return None
    return " ".join(words[:-answer_words]) + " ", " ".join(words[-answer_words:])


def items_from_parallel(sentences: Mapping[str, Sequence[tuple[int, str]]], *, answer_words: int = 1,
                        answer_chars: int = 2, limit: int | None = None) -> list[ParallelItem]:
    """Items from parallel sentences ``{language: [(sentence id, text), ...]}``, joined on the id.

    Only ids present in every language are used, in ascending order; ``limit`` keeps the first N.
    Languages whose sentence is too short to cut are missing from that item.
    """
    if len(sentences) < 2:
        raise NeurospecError("the Language Steering Shift needs parallel text in at least two languages")
    keys = {resolve(lang).key: dict(rows) for lang, rows in sentences.items()}
    common = sorted(set.intersection(*(set(rows) for rows in keys.values())))
    if not common:
        raise NeurospecError(f"the parallel texts of {', '.join(keys)} share no sentence id")
    items = []
    for sid in common[:limit] if limit else common:
        prompts, answers = {}, {}
        for lang, rows in keys.items():
            cut = cut_sentence(rows[sid], lang, answer_words=answer_words, answer_chars=answer_chars)
            if cut is not None:
                prompts[lang], answers[lang] = cut
        items.append(ParallelItem(str(sid), prompts, answers, {"sentence_id": sid}))
    return items


def parallel_sentences(source: str, languages: Iterable[str], *, split: str = "dev",
                       data_dir: str | Path | None = None) -> dict[str, list[tuple[int, str]]]:
    """``parallel_sentences("ntrex", ["en", "fr"])`` or ``("flores", ..., split="dev")``: sentences per language key."""
    from neurospec.data.parallel import ntrex_sentences, sib200_sentences

    if source == "ntrex":
        return {resolve(lang).key: ntrex_sentences(lang, data_dir) for lang in languages}
    if source in ("flores", "sib200"):
        return {resolve(lang).key: sib200_sentences(lang, split, data_dir) for lang in languages}
    raise NeurospecError(f"unknown parallel corpus {source!r}: use ntrex or flores (or an LSS JSONL file)")


def _per_language(raw: object, name: str, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise NeurospecError(f"{where}: {name!r} must be an object {{language: text}}")
    out = {}
    for lang, text in raw.items():
        if not isinstance(text, str) or not text.strip():
            raise NeurospecError(f"{where}: {name}[{lang!r}] must be a non-empty string")
        try:
            out[resolve(lang).key] = text
        except NeurospecError as err:
            raise NeurospecError(f"{where}: {err}") from None
    return out


def _template_prompt(template: str, subject: str | None, where: str) -> str:
    if "[Y]" not in template:
        raise NeurospecError(f"{where}: template {template!r} has no [Y] where the answer goes")
    before = template.split("[Y]", 1)[0]
    if "[X]" in before:
        if subject is None:
            raise NeurospecError(f"{where}: template has [X] but the item gives no subject in that language")
        before = before.replace("[X]", subject)
    if not before.strip():
        raise NeurospecError(f"{where}: the template's prompt before [Y] is empty")
    return before


def load_lss_items(path: str | Path, languages: Iterable[str] | None = None) -> list[ParallelItem]:
    """Read LSS items from JSONL (see the module docstring); ``languages`` keeps those languages."""
    path = Path(path)
    if not path.is_file():
        raise NeurospecError(f"LSS item file {path} does not exist")
    wanted = None if languages is None else {resolve(lang).key for lang in languages}
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as err:
            raise NeurospecError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(raw, dict) or "answer" not in raw or not ("prompt" in raw or "template" in raw):
            raise NeurospecError(f"{where}: an item needs 'answer' and 'prompt' (or 'template' and 'subject')")
        answers = _per_language(raw["answer"], "answer", where)
        if "prompt" in raw:
            prompts = _per_language(raw["prompt"], "prompt", where)
        else:
            templates = _per_language(raw["template"], "template", where)
            subjects = _per_language(raw["subject"], "subject", where) if "subject" in raw else {}
            prompts = {lang: _template_prompt(t, subjects.get(lang), where) for lang, t in templates.items()}
        if wanted is not None:
            prompts = {k: v for k, v in prompts.items() if k in wanted}
            answers = {k: v for k, v in answers.items() if k in wanted}
        items.append(ParallelItem(str(raw.get("id", number)), prompts, answers))
    if not items:
        raise NeurospecError(f"{path} holds no items")
    return items
