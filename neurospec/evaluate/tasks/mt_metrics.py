"""Translation metrics: chrF++ (primary) and BLEU with the tokenizer METHODS names per language.

    from neurospec.evaluate.tasks.mt_metrics import translation_scores, bleu_tokenizer
    bleu_tokenizer("zho_Hans")      # 'zh';  'char' for jpn/tha/mya/khm; '13a' otherwise
    scores = translation_scores(hypotheses, references, "jpn_Jpan", bootstrap=1000, seed=0)
    scores.chrf, scores.bleu, scores.chrf_ci95, scores.signatures

chrF++ is ``sacrebleu.metrics.CHRF(word_order=2)``; BLEU is ``sacrebleu.metrics.BLEU(tokenize=...)``;
both are corpus scores with one reference per sentence, and both sacrebleu signatures are kept.
The chrF++ interval is a seeded percentile bootstrap over sentences (resampled sentence statistics
summed as sacrebleu sums them). The per-sentence statistics stay in memory (``sentence_statistics``) for a
paired bootstrap of a change between two runs on the same sentences (:func:`chrf_statistics`,
:func:`chrf_of_sums`; :mod:`neurospec.evaluate.downstream`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from neurospec.data.languages import resolve
from neurospec.util.errors import NeurospecError

__all__ = ["CHAR_TOKENIZED", "TranslationScores", "bleu_tokenizer", "chrf_of_sums", "chrf_statistics",
           "translation_scores"]

# ISO 639-1 codes whose BLEU is computed on characters (METHODS section 2: ja, th, my, km)
CHAR_TOKENIZED = ("ja", "th", "my", "km")


def bleu_tokenizer(language: str) -> str:
    """sacrebleu's BLEU tokenizer for a target language: ``zh`` for Chinese, ``char`` for ja/th/my/km, else ``13a``."""
    lang = resolve(language)
    code = lang.iso639_1 or lang.iso639_3
    if code == "zh" or lang.iso639_3 in ("zho", "cmn"):
        return "zh"
    if code in CHAR_TOKENIZED:
        return "char"
    return "13a"


@dataclass(frozen=True)
class TranslationScores:
    """Corpus chrF++ and BLEU (0-100), the chrF++ bootstrap interval, and sacrebleu signatures."""

    chrf: float
    bleu: float
    chrf_ci95: tuple[float, float] | None
    bleu_tokenize: str
    signatures: dict[str, str]
    sentence_statistics: np.ndarray | None = field(default=None, compare=False, repr=False)  # see chrf_statistics


def chrf_statistics(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray | None:
    """``chrf_statistics(hyps, refs)``: per sentence, the chrF++ statistics sacrebleu sums into a corpus score
    (sentences x statistics, int64); None with a sacrebleu that does not expose them (stable since 2.0)."""
    from sacrebleu.metrics import CHRF

    try:
        stats = CHRF(word_order=2)._extract_corpus_statistics(list(hypotheses), [list(references)])
    except AttributeError:
        return None
    return np.asarray(stats, dtype=np.int64)


def chrf_of_sums(sums) -> np.ndarray:
    """``chrf_of_sums(counts @ table)``: the corpus chrF++ of each row of summed sentence statistics (rows x
    statistics, as :func:`chrf_statistics` gives per sentence), one score per row."""
    from sacrebleu.metrics import CHRF

    compute = CHRF(word_order=2)._compute_score_from_stats
    rows = np.rint(np.atleast_2d(np.asarray(sums, dtype=np.float64))).astype(np.int64)
    return np.array([compute(row.tolist()).score for row in rows], dtype=np.float64)


def _bootstrap(table: np.ndarray, samples: int, seed: int) -> tuple[float, float]:
    n = len(table)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(samples)])
    low, high = np.percentile(chrf_of_sums(counts @ table), [2.5, 97.5])
    return float(low), float(high)


def translation_scores(hypotheses: Sequence[str], references: Sequence[str], language: str, *,
                       bootstrap: int = 1000, seed: int = 0) -> TranslationScores:
    """chrF++ and BLEU of ``hypotheses`` against one reference each, for target ``language``."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise NeurospecError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise NeurospecError("no sentences to score")
    if bootstrap < 0:
        raise NeurospecError(f"bootstrap must be 0 (no interval) or a number of resamples, got {bootstrap}")
    chrf = CHRF(word_order=2)
    tokenize = bleu_tokenizer(language)
    bleu = BLEU(tokenize=tokenize)
    chrf_score = chrf.corpus_score(list(hypotheses), [list(references)])
    bleu_score = bleu.corpus_score(list(hypotheses), [list(references)])
    table = chrf_statistics(hypotheses, references)
    interval = _bootstrap(table, bootstrap, seed) if bootstrap and table is not None else None
    return TranslationScores(float(chrf_score.score), float(bleu_score.score), interval, tokenize,
                             {"chrf++": str(chrf.get_signature()), "bleu": str(bleu.get_signature())}, table)
