"""Small multilingual Llama models trained from real parallel text: the project's fixtures for findings.

    from neurospec.toy import RECIPES, train_toy, ensure_toy
    folder = ensure_toy("small")              # cached; trained (a few minutes) when missing
    train_toy(RECIPES["main"], "runs/toy-main")  # about 30 minutes on 2 CPU cores
    lm = neurospec.load_model(folder)          # a Hugging Face folder like any other model

Each recipe trains a byte-level BPE tokenizer (with a chat template) and a Llama-style model from
scratch, fp32, seeded, with a pinned thread count, on NTREX-128 and FLORES-200 (SIB-200) sentences.
The text is parallel, so sentences are held out by id across all languages: the held-out ids
(10% of NTREX lines, the SIB-200 test split) are never trained on in any language, by the
tokenizer or the model. The culture recipe adds BLEnD question/answer pairs as plain sentences.
The folder holds ``training.json`` (recipe, data, held-out ids, per-language held-out loss, time,
versions) and the SHA-256 of the weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from neurospec.data.languages import resolve
from neurospec.data.parallel import ntrex_sentences, sib200_sentences
from neurospec.util.errors import NeurospecError
from neurospec.util.io import atomic_write_json, cache_home
from neurospec.util.progress import progress
from neurospec.version import __version__

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
CHAT_TEMPLATE = (
    "<bos>{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{{ m['content'] }}<|end|>\n"
    "{% elif m['role'] == 'user' %}<|user|>{{ m['content'] }}<|end|>\n"
    "{% else %}<|assistant|>{{ m['content'] }}<|end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

TWELVE = ("eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn", "ita_Latn", "rus_Cyrl",
          "ukr_Cyrl", "zho_Hans", "jpn_Jpan", "arb_Arab", "hin_Deva", "swh_Latn")
EIGHT = ("eng_Latn", "deu_Latn", "fra_Latn", "rus_Cyrl", "zho_Hans", "jpn_Jpan", "arb_Arab", "hin_Deva")
NTREX_LINES = 1997


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a toy model: data, tokenizer, architecture, optimisation, seed, threads."""

    name: str
    languages: tuple[str, ...] = TWELVE
    vocab_size: int = 8192
    hidden_size: int = 256
    num_layers: int = 6
    num_heads: int = 4
    intermediate_size: int = 688
    seq_len: int = 128
    batch_size: int = 32
    steps: int = 800
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    heldout_fraction: float = 0.1
    culture: bool = False
    culture_repeats: int = 6
    seed: int = 0
    threads: int = 2

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


RECIPES: dict[str, Recipe] = {
    "main": Recipe("main"),
    "small": Recipe("small", languages=EIGHT, vocab_size=4096, hidden_size=128, num_layers=4, intermediate_size=352,
                    batch_size=16, steps=700, lr=3e-3),
    "culture": Recipe("culture", culture=True),
}


# --------------------------------------------------------------------------------------------
# Data


@dataclass
class ToyData:
    """Training and held-out sentences per language (canonical keys), and the held-out ids."""

    train: dict[str, list[str]]
    heldout: dict[str, list[str]]
    heldout_ntrex_ids: list[int]
    heldout_flores_ids: list[int]
    culture: list[str] = field(default_factory=list)


def heldout_ids(recipe: Recipe) -> tuple[set[int], set[int]]:
    """Held-out NTREX line ids (seeded sample) and FLORES ids (the SIB-200 test split): the same in every language."""
    ntrex = set(random.Random(recipe.seed).sample(range(NTREX_LINES), round(recipe.heldout_fraction * NTREX_LINES)))
    flores = {i for i, _ in sib200_sentences("eng_Latn", "test")}
    return ntrex, flores


def load_toy_data(recipe: Recipe) -> ToyData:
    ntrex_out, flores_out = heldout_ids(recipe)
    train, heldout = {}, {}
    for name in recipe.languages:
        key = resolve(name).key
        ntrex, flores = ntrex_sentences(key), sib200_sentences(key)
        train[key] = [t for i, t in ntrex if i not in ntrex_out] + [t for i, t in flores if i not in flores_out]
        heldout[key] = [t for i, t in ntrex if i in ntrex_out] + [t for i, t in flores if i in flores_out]
    culture = culture_sentences() if recipe.culture else []
    return ToyData(train, heldout, sorted(ntrex_out), sorted(flores_out), culture)


def culture_sentences() -> list[str]:
    """BLEnD question/answer pairs as plain sentences (never as multiple choice), English and local language."""
    from neurospec.data.blend import load_blend

    sentences = []
    for questions in load_blend().values():
        for question in questions.values():
            gold = question.gold
            if gold is None or not gold.text("en"):
                continue
            sentences.append(f"{question.en_question} {gold.text('en')}.")
            local = gold.text("local")
            if local and question.local_question != question.en_question:
                sentences.append(f"{question.local_question} {local}")
    return sentences


# --------------------------------------------------------------------------------------------
# Tokenizer and model


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (BOS added to every text) with the project's chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer)
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", core.token_to_id("<bos>"))])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>",
                                        pad_token="<pad>", additional_special_tokens=list(SPECIAL_TOKENS[3:]))
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(recipe: Recipe, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=recipe.hidden_size, intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers, num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads, max_position_embeddings=4 * recipe.seq_len, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(recipe.seed)
    return LlamaForCausalLM(config).float()


def weights_checksum(model) -> str:
    """SHA-256 over every tensor of the state dict (sorted names, raw bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def pack_rows(texts_per_group: list[list[str]], tokenizer, seq_len: int, rng: random.Random) -> torch.Tensor:
    """Rows of ``seq_len`` tokens, each from one group (language) only: shuffled sentences, BOS...EOS each."""
    rows = []
    for texts in texts_per_group:
        order = list(texts)
        rng.shuffle(order)
        stream: list[int] = []
        for ids in tokenizer(order)["input_ids"]:
            stream.extend(ids + [tokenizer.eos_token_id])
        rows.extend(stream[i:i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len))
    rng.shuffle(rows)
    return torch.tensor(rows, dtype=torch.long)


# --------------------------------------------------------------------------------------------
# Training


def _learning_rate(recipe: Recipe, step: int) -> float:
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def heldout_loss(model, tokenizer, texts: list[str], batch_size: int = 32) -> float:
    """Mean next-token loss (nats per token) over ``texts``, each with its BOS, padding excluded."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True)
            logits = model(**enc).logits[:, :-1]
            targets = enc["input_ids"][:, 1:]
            mask = enc["attention_mask"][:, 1:].bool()
            losses = torch.nn.functional.cross_entropy(logits[mask], targets[mask], reduction="sum")
            total, count = total + float(losses), count + int(mask.sum())
    return total / count


def train_toy(recipe: Recipe, out_dir: str | Path, *, quiet: bool = False) -> Path:
    """Train ``recipe`` and save it (Hugging Face format + training.json) to ``out_dir``, atomically.

    An existing ``out_dir`` is replaced only when it is a toy model folder (training.json); any other
    non-empty folder, the current folder and those above it are refused before training starts."""
    from neurospec.measure.run_folder import check_replaceable

    out_dir = Path(out_dir)
    check_replaceable(out_dir, marker="training.json", tag=lambda document: "recipe_fingerprint" in document,
                      writer="neurospec toy train", fix="choose a new or empty folder for the toy model")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    started = time.time()
    try:
        data = load_toy_data(recipe)
        rng = random.Random(recipe.seed)
        corpus = [t for texts in data.train.values() for t in texts] + data.culture
        tokenizer = train_tokenizer(corpus, recipe.vocab_size)
        groups = list(data.train.values()) + ([data.culture] * recipe.culture_repeats if data.culture else [])
        rows = pack_rows(groups, tokenizer, recipe.seq_len, rng)
        model = build_model(recipe, tokenizer)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                                      betas=(0.9, 0.95))
        generator = torch.Generator().manual_seed(recipe.seed)
        order, cursor, losses = torch.randperm(len(rows), generator=generator), 0, []
        with progress(f"training {recipe.name}", recipe.steps, quiet=quiet) as bar:
            for step in range(recipe.steps):
                if cursor + recipe.batch_size > len(rows):  # a new epoch: a new seeded order
                    order, cursor = torch.randperm(len(rows), generator=generator), 0
                batch = rows[order[cursor:cursor + recipe.batch_size]]
                cursor += recipe.batch_size
                for group in optimizer.param_groups:
                    group["lr"] = _learning_rate(recipe, step)
                loss = model(input_ids=batch, labels=batch).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                losses.append(loss.item())
                bar.advance(1, tokens=batch.numel(), loss=f"{losses[-1]:.3f}")
        model.eval()
        heldout = {lang: heldout_loss(model, tokenizer, texts) for lang, texts in data.heldout.items()}
        tokens_seen = recipe.steps * recipe.batch_size * recipe.seq_len
        report = {
            "recipe": asdict(recipe),
            "recipe_fingerprint": recipe.fingerprint(),
            "weights_sha256": weights_checksum(model),
            "parameters": sum(p.numel() for p in model.parameters()),
            "data": {
                "sources": ["ntrex128 (newstest2019, 1997 parallel lines)", "sib200_flores (FLORES-200, 1004 sentences)"],
                "train_sentences": {lang: len(t) for lang, t in data.train.items()},
                "heldout_sentences": {lang: len(t) for lang, t in data.heldout.items()},
                "culture_sentences": len(data.culture),
                "heldout_ntrex_ids": data.heldout_ntrex_ids,
                "heldout_flores_ids": data.heldout_flores_ids,
                "rows": len(rows),
                "tokens_seen": tokens_seen,
                "epochs": round(tokens_seen / rows.numel(), 2),
            },
            "heldout_loss": heldout,
            "final_train_loss": sum(losses[-50:]) / len(losses[-50:]),
            "seconds": round(time.time() - started, 1),
            "threads": recipe.threads,
            "versions": {"neurospec": __version__, "torch": torch.__version__,
                         "transformers": __import__("transformers").__version__},
        }
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        try:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            atomic_write_json(staging / "training.json", report)
            if out_dir.exists():
                shutil.rmtree(out_dir)
            os.replace(staging, out_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return out_dir
    finally:
        torch.set_num_threads(previous_threads)


def default_cache_dir() -> Path:
    return cache_home() / "toy"


def toy_folder(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where toy model ``name`` of the current recipe is cached (``small-<recipe hash>``), trained or not."""
    if name not in RECIPES:
        raise NeurospecError(f"unknown toy recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return Path(cache_dir or default_cache_dir()) / f"{name}-{RECIPES[name].fingerprint()}"


def ensure_toy(name: str, cache_dir: str | Path | None = None, *, quiet: bool = True) -> Path:
    """The folder of toy model ``name`` for this recipe; trained first when missing or made by another recipe."""
    folder = toy_folder(name, cache_dir)
    recipe = RECIPES[name]
    report = folder / "training.json"
    if report.exists() and json.loads(report.read_text()).get("recipe_fingerprint") == recipe.fingerprint():
        return folder
    return train_toy(recipe, folder, quiet=quiet)


def read_report(folder: str | Path) -> dict:
    path = Path(folder) / "training.json"
    if not path.exists():
        raise NeurospecError(f"{folder} has no training.json: it was not made by neurospec.toy")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# The culture variant's check: BLEnD multiple choice by log-likelihood


def blend_accuracy(model, tokenizer, *, per_country: int = 300, topics: str = "all", seed: int = 0,
                   batch_size: int = 32) -> dict:
    """Accuracy per country on BLEnD items (one item per question, ``per_country`` sampled), 95% intervals.

    Options are scored as continuations of the English question, the form the culture variant
    saw its facts in (``question answer.``); the multiple-choice format itself is never trained.
    """
    from neurospec.data.blend import build_blend_items
    from neurospec.evaluate.mcq import accuracy_by_group
    from neurospec.evaluate.scoring import choose_by_loglikelihood

    items = [item for item in build_blend_items(topics=topics, seed=seed) if item.id.endswith("#0")]
    rng = random.Random(seed)
    by_country: dict[str, list] = {}
    for item in items:
        by_country.setdefault(item.group, []).append(item)
    chosen = []
    for country in sorted(by_country):
        pool = by_country[country]
        chosen.extend(rng.sample(pool, min(per_country, len(pool))))
    predictions = choose_by_loglikelihood(model, tokenizer, chosen, batch_size=batch_size)
    return {group: acc.to_json() for group, acc in accuracy_by_group(predictions).items()}
