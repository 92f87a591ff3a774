"""Run by test_collect under ``torchrun`` (or alone): collect statistics of a seeded tiny Llama.

    python collect_worker.py CORPUS_DIR OUT_DIR packed|sentence     (NEUROSPEC_TEST_TOP_CONTEXTS=K: --top-contexts K;
        NEUROSPEC_TEST_CONTEXT_NEURONS=FILE and NEUROSPEC_TEST_CONTEXT_SAMPLE=N: --context-neurons / --context-sample)
"""

import os
import sys
from pathlib import Path

import torch
from families import family
from tiny_tokenizer import tiny_tokenizer

from neurospec.data.corpora import open_corpus
from neurospec.measure.collect import CollectOptions, collect

torch.set_num_threads(1)
folder, out, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
tok = tiny_tokenizer()
model = family("llama").build(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                              eos_token_id=tok.eos_token_id)
corpora = [open_corpus(lang, folder / f"{lang}.txt") for lang in ("en", "fr")]
options = CollectOptions(mode=mode, seq_len=8 if mode == "packed" else 24, batch_size=2, sample_sentences=4,
                         checkpoint_every=30, top_contexts=int(os.environ.get("NEUROSPEC_TEST_TOP_CONTEXTS", "0")),
                         context_neurons=os.environ.get("NEUROSPEC_TEST_CONTEXT_NEURONS") or None,
                         context_sample=int(os.environ.get("NEUROSPEC_TEST_CONTEXT_SAMPLE", "0")))
collect(model, tok, corpora, out, options, quiet=True)
