"""Shared fixtures of the intervention-evaluation tests: a tiny Llama, its tokenizer, neurons and statistics.

    from interventions_common import tiny_llama, language_texts, neuron_set, sentence_stats, saved_study
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from families import family
from tiny_tokenizer import tiny_tokenizer

from neurospec.data.corpora import open_corpus
from neurospec.measure.collect import CollectOptions, collect
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta

TEXTS = {
    "eng_Latn": ["The cat sat on the mat because it was warm.", "She went to the market and bought bread.",
                 "The man broke his toe.", "Which city is the capital of France?", "Trains leave every hour."],
    "fra_Latn": ["Le chat dort sur le tapis parce qu'il fait chaud.", "Elle est allée au marché.",
                 "Le marché ouvre tôt.", "Les trains partent chaque heure."],
    "deu_Latn": ["Die Katze schläft auf der Matte, weil es warm ist.", "Sie ging auf den Markt.",
                 "Der Zug fährt jede Stunde."],
}


@functools.lru_cache(maxsize=1)
def tok():
    return tiny_tokenizer()


def tiny_llama(seed: int = 0):
    t = tok()
    return family("llama").build(seed, vocab_size=len(t), pad_token_id=t.pad_token_id, bos_token_id=t.bos_token_id,
                                 eos_token_id=t.eos_token_id)


def neuron_set(model, per_group: int = 6, seed: int = 1) -> NeuronSet:
    """Disjoint random neurons at ``act`` for each language of TEXTS, in every layer."""
    layers, width = model.config.num_hidden_layers, model.config.intermediate_size
    order = torch.randperm(layers * width, generator=torch.Generator().manual_seed(seed))
    data = {}
    for g, lang in enumerate(TEXTS):
        keys = order[g * per_group:(g + 1) * per_group]
        data[lang] = {"act": {int(layer): keys[keys // width == layer] % width for layer in range(layers)
                              if (keys // width == layer).any()}}
    return NeuronSet(data, NeuronSetMeta(num_layers=layers, widths={"act": width}))


def sentence_stats(model, folder: Path):
    """Sentence-mode statistics of TEXTS (p_max / p_median available), written to ``folder``."""
    corpora = []
    for lang, lines in TEXTS.items():
        path = folder / f"{lang}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        corpora.append(open_corpus(lang, path))
    return collect(model, tok(), corpora, folder / "stats", CollectOptions(mode="sentence", batch_size=4), quiet=True)


def saved_study(root: Path, neuron_files) -> Path:
    """``root`` holding a saved tiny Llama and its tokenizer (``model/``), the neuron sets that
    ``neuron_files(model)`` names (file name -> NeuronSet), sentence-mode statistics (``stats/``) and
    TEXTS as one file per language (``<language>.txt``)."""
    model = tiny_llama()
    model.save_pretrained(root / "model")
    tok().save_pretrained(root / "model")
    for name, neurons in neuron_files(model).items():
        neurons.save(root / name)
    sentence_stats(model, root)  # writes <language>.txt beside the statistics
    return root
