"""Translation from English (FLORES-200 via SIB-200, NTREX-128): greedy generation, chrF++ and BLEU.

    from neurospec.evaluate.tasks.translation import Flores, Ntrex, flores_pairs, translation_prompt
    pairs = flores_pairs("zho_Hans", split="test")          # 204 (FLORES id, English, Chinese) pairs
    print(translation_prompt(TEMPLATES["default"], pairs[0].source, "zho_Hans"))
    Flores().evaluate(model, tok, "fr", limit=50, intervention=edit).score       # chrF++
    Ntrex().evaluate(model, tok, "de", limit=100, keep_outputs=True).details["outputs"]

Zero-shot prompt (``template=``, a name in :data:`TEMPLATES` or a format string with ``{source}``
and ``{target}``, the target's English name; ``target_name=`` overrides the name):

    Translate the following sentence from English to {target}.
    English: {source}
    {target}:

``template="reference"`` is the amplification paper's code's prompt. Generation is greedy,
``max_new_tokens=50`` (METHODS section 2); the output is cut at its first newline and stripped. Generation
stops at that newline (``stop_at_newline=True``, the default): what follows it is never scored, so a row
stops there and the batch when every row has (``keep_outputs`` then holds the text up to the newline;
``stop_at_newline=False`` generates all 50 tokens, with the same scores).
Metrics (:mod:`neurospec.evaluate.tasks.mt_metrics`): chrF++ (primary, with a seeded bootstrap interval over
sentences) and BLEU with sacrebleu's ``zh`` / ``char`` / ``13a`` tokenizer by target language.

Data. ``flores``: a SIB-200 folder (``<dir>/<flores code>/{train,dev,test}.tsv``, the shared copy; splits
``train`` 701, ``dev`` 99, ``test`` 204 sentences or ``all``; default ``test``, the sentences the
project's toy models hold out) or the FLORES-200 release folder (``<dir>/{dev,devtest}/<code>.{dev,devtest}``;
default ``devtest``). Pairs are matched by FLORES sentence id. ``ntrex``: the NTREX-128 folder
(``newstest2019-src.eng.txt`` and ``newstest2019-ref.<code>.txt``; 1997 line-parallel sentences), paired
by line. Loading is :mod:`neurospec.data.translation` (``flores_pairs``, ``ntrex_pairs`` and
``TranslationPair`` are importable from here too).
"""

from __future__ import annotations

import re
from pathlib import Path

from neurospec.data.languages import resolve
from neurospec.data.prompts import PLAIN
from neurospec.data.translation import SOURCE, TranslationPair, flores_default_split, flores_pairs, ntrex_pairs
from neurospec.evaluate.scoring import generate_texts
from neurospec.evaluate.tasks.base import Task, TaskResult, format_details, take
from neurospec.evaluate.tasks.mt_metrics import translation_scores
from neurospec.util.errors import NeurospecError

__all__ = [
    "TEMPLATES",
    "Flores",
    "Ntrex",
    "TranslationPair",
    "TranslationTask",
    "clean_output",
    "flores_pairs",
    "ntrex_pairs",
    "target_name",
    "translation_prompt",
]

TEMPLATES = {
    "default": "Translate the following sentence from English to {target}.\nEnglish: {source}\n{target}:",
    "reference": "Translate from English to {target}.\n\nEnglish: {source}\n{target}: ",
}

def target_name(language: str) -> str:
    """The language's English name without a parenthesis: ``zho_Hans`` -> ``Chinese``."""
    return re.sub(r"\s*\(.*\)\s*$", "", resolve(language).name)


def translation_prompt(template: str, source: str, language: str, name: str | None = None) -> str:
    """``template`` filled with the English ``source`` and the target language's name."""
    try:
        return template.format(source=source, target=name or target_name(language))
    except (KeyError, IndexError) as err:
        raise NeurospecError(f"translation template {template!r} has an unknown field {err}; "
                             "use only {source} and {target}") from None


def clean_output(text: str) -> str:
    """The generated text up to its first newline, stripped."""
    return text.split("\n", 1)[0].strip()


# ---- tasks


class TranslationTask(Task):
    """English -> X translation: chrF++ (primary) and BLEU of greedy generations."""

    metric = "chrf++"
    option_defaults = {"template": "default", "target_name": None, "max_new_tokens": 50, "fmt": None,
                       "bootstrap": 1000, "seed": 0, "keep_outputs": False, "stop_at_newline": True}

    def pairs(self, language: str, data_dir, split) -> list[TranslationPair]:
        """The (id, English, ``language``) pairs: the registry entry's loader."""
        return self.benchmark.load(language=language, path=data_dir, split=split)

    def evaluate(self, model, tokenizer, language: str, *, intervention=None, limit: int | None = None,
                 batch_size: int = 8, data_dir: str | Path | None = None, split: str | None = None,
                 **options) -> TaskResult:
        opts = self.options(options)
        key = self.language_key(language)
        if key == SOURCE:
            raise NeurospecError(f"{self.name} translates from English: name a target language other than English")
        template = TEMPLATES.get(opts["template"], opts["template"])
        if "{source}" not in template:
            raise NeurospecError(f"template {opts['template']!r} is neither a name ({', '.join(TEMPLATES)}) "
                                 "nor a format string with {source}")
        pairs = take(self.pairs(key, data_dir, split), limit)
        if not pairs:
            raise NeurospecError(f"{self.name} ({key}): no sentence pairs to translate")
        prompts = [translation_prompt(template, pair.source, key, opts["target_name"]) for pair in pairs]
        generations = generate_texts(model, tokenizer, prompts, fmt=opts["fmt"] or PLAIN,
                                     max_new_tokens=opts["max_new_tokens"], batch_size=batch_size,
                                     intervention=intervention,
                                     stop_strings=["\n"] if opts["stop_at_newline"] else ())
        hypotheses = [clean_output(g.text) for g in generations]
        references = [pair.reference for pair in pairs]
        scores = translation_scores(hypotheses, references, key, bootstrap=opts["bootstrap"], seed=opts["seed"])
        details = {
            "split": split or self.default_split(data_dir), "data": str(data_dir) if data_dir else f"dataset:{self.data_folder}",
            "limit": limit, "intervention": intervention is not None, "template": template,
            "target_name": opts["target_name"] or target_name(key), "max_new_tokens": opts["max_new_tokens"],
            "prompt_format": format_details(opts["fmt"]), "decoding": "greedy; output cut at the first newline, stripped",
            "bleu_tokenize": scores.bleu_tokenize,
            "signatures": scores.signatures, "bootstrap": opts["bootstrap"], "seed": opts["seed"],
            "empty_outputs": sum(not h for h in hypotheses),
        }
        if opts["keep_outputs"]:
            details["outputs"] = [{"id": p.id, "source": p.source, "reference": p.reference, "prompt": prompt,
                                   "generated": g.text, "hypothesis": h}
                                  for p, prompt, g, h in zip(pairs, prompts, generations, hypotheses)]
        return TaskResult(self.name, key, "chrf++", scores.chrf, scores.chrf_ci95, len(pairs),
                          {"chrf++": scores.chrf, "bleu": scores.bleu}, details,
                          sentence_statistics=scores.sentence_statistics)

    def default_split(self, data_dir) -> str:
        return self.splits[0]


class Flores(TranslationTask):
    """English -> X on FLORES-200 sentences (SIB-200's copy by default)."""

    name = "flores"

    def default_split(self, data_dir) -> str:
        return flores_default_split(data_dir)


class Ntrex(TranslationTask):
    """English -> X on NTREX-128 (1997 news sentences)."""

    name = "ntrex"
