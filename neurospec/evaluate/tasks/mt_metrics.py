"""Translation metrics: chrF++ (primary) and BLEU with the tokenizer METHODS names per language.

    from neurospec.evaluate.tasks.mt_metrics import translation_scores, bleu_tokenizer
    bleu_tokenizer("zho_Hans")      # 'zh';  'char' for jpn/tha/mya/khm; '13a' otherwise
    scores = translation_scores(hypotheses, references, "jpn_Jpan", bootstrap=1000, seed=0)
    scores.chrf, scores.bleu, scores.chrf_ci95, scores.signatures

chrF++ is ``sacrebleu.metrics.CHRF(word_order=2)``; BLEU is ``sacrebleu.metrics.BLEU(tokenize=...)``;
both are corpus scores with one reference per sentence, and both sacrebleu signatures are kept.
The chrF++ interval is a seeded percentile bootstrap over sentences (resampled sentence statistics
summed as sacrebleu sums them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from neurospec.data.languages import resolve
from neurospec.util.errors import NeurospecError

__all__ = ["CHAR_TOKENIZED", "TranslationScores", "bleu_tokenizer", "translation_scores"]

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


def _bootstrap(metric, hypotheses: Sequence[str], references: Sequence[str], samples: int,
               seed: int) -> tuple[float, float] | None:
    try:
        stats = metric._extract_corpus_statistics(list(hypotheses), [list(references)])
        compute = metric._compute_score_from_stats
    except AttributeError:  # a sacrebleu without these (stable since 2.0) gets no interval
        return None
    table = np.asarray(stats, dtype=np.int64)  # sentences x statistics
    n = len(table)
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(samples):
        counts = np.bincount(rng.integers(0, n, size=n), minlength=n)
        scores.append(compute((counts @ table).tolist()).score)
    low, high = np.percentile(scores, [2.5, 97.5])
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
    interval = _bootstrap(chrf, hypotheses, references, bootstrap, seed) if bootstrap else None
    return TranslationScores(float(chrf_score.score), float(bleu_score.score), interval, tokenize,
                             {"chrf++": str(chrf.get_signature()), "bleu": str(bleu.get_signature())})
