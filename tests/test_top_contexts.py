"""collect --top-contexts: the kept top K against a brute-force pass, ties, resume, two processes, off by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from families import family
from tiny_tokenizer import tiny_tokenizer

from neurospec.data.corpora import open_corpus
from neurospec.measure.collect import CollectOptions, collect
from neurospec.measure.contexts import CONTEXT_WINDOW, TopContexts, merge, top_k_earliest
from neurospec.util.errors import NeurospecError

HERE = Path(__file__).parent
TEXTS = {
    "en": ["The weather was mild and the market opened early.", "She read the letter twice before answering.",
           "Trains to the coast leave every hour.", "A small dog slept under the table.",
           "They planted trees along the river in spring.", "Nobody expected the meeting to last so long."],
    "fr": ["Le marché ouvre tôt le matin.", "Elle a relu la lettre deux fois.", "Les trains partent chaque heure.",
           "Un petit chien dormait sous la table."],
}
KEYS = {"en": "eng_Latn", "fr": "fra_Latn"}
K = 3


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _model(tok):
    torch.manual_seed(0)
    return family("llama").build(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                 eos_token_id=tok.eos_token_id)


@pytest.fixture
def corpora(tmp_path):
    found = []
    for lang, lines in TEXTS.items():
        path = tmp_path / f"{lang}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        found.append(open_corpus(lang, path))
    return found


# ---- the brute force: every activation, with plain torch hooks


def _act_values(model, rows: list[list[int]], pad_id: int) -> list[torch.Tensor]:
    """Each layer's ``act_fn`` output for rows run together as collect batches them (right-padded), (B, T, W)
    each, with plain forward hooks."""
    width = max(len(row) for row in rows)
    ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    seen: list[torch.Tensor] = []
    handles = [layer.mlp.act_fn.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
               for layer in model.model.layers]
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _window(row: list[int], j: int) -> list[int]:
    return [row[i] if 0 <= i < len(row) else -1 for i in range(j - CONTEXT_WINDOW, j + CONTEXT_WINDOW + 1)]


def _brute_force(model, rows: list[list[int]], counted: list[list[bool]], seq_len: int, k: int, batch_size: int,
                 pad_id: int) -> dict:
    """Per layer and neuron: the k (value, position, window) of largest value, ties by the earlier position."""
    records: dict[tuple[int, int], list] = {}
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        for layer, values in enumerate(_act_values(model, batch, pad_id)):
            for b, row in enumerate(batch):
                r = start + b
                for j in range(len(row)):
                    if not counted[r][j]:
                        continue
                    for neuron, value in enumerate(values[b, j].tolist()):
                        records.setdefault((layer, neuron), []).append((value, r * seq_len + j, _window(row, j)))
    return {key: sorted(found, key=lambda item: (-item[0], item[1]))[:k] for key, found in records.items()}


def _assert_equal_to(stats_folder: Path, expected: dict, language: str) -> None:
    contexts = TopContexts.load(stats_folder, tokenizer=None)
    kept = contexts.tensors[language]
    for (layer, neuron), want in expected.items():
        got_values = kept["values"][layer, neuron].tolist()
        torch.testing.assert_close(torch.tensor(got_values), torch.tensor([v for v, _, _ in want]),
                                   rtol=1e-5, atol=1e-6)
        assert kept["positions"][layer, neuron].tolist() == [p for _, p, _ in want], (language, layer, neuron)
        assert kept["windows"][layer, neuron].tolist() == [w for _, _, w in want], (language, layer, neuron)


def test_packed_top_contexts_equal_a_brute_force_pass(tok, corpora, tmp_path):
    model = _model(tok)
    seq_len = 8
    options = CollectOptions(mode="packed", seq_len=seq_len, batch_size=2, top_contexts=K, checkpoint_every=20)
    collect(model, tok, corpora, tmp_path / "stats", options, quiet=True)
    for lang, lines in TEXTS.items():
        stream = [i for line in lines for i in tok(line, add_special_tokens=False)["input_ids"]]
        rows = [stream[s:s + seq_len] for s in range(0, len(stream), seq_len)]
        expected = _brute_force(model, rows, [[True] * len(row) for row in rows], seq_len, K, 2, tok.pad_token_id)
        _assert_equal_to(tmp_path / "stats", expected, KEYS[lang])


def test_sentence_top_contexts_equal_a_brute_force_pass(tok, corpora, tmp_path):
    model = _model(tok)
    seq_len = 24
    options = CollectOptions(mode="sentence", seq_len=seq_len, pack_sentences=False, batch_size=1, top_contexts=K)
    collect(model, tok, corpora, tmp_path / "stats", options, quiet=True)
    for lang, lines in TEXTS.items():
        encoded = [tok(line, add_special_tokens=True, return_special_tokens_mask=True) for line in lines]
        rows = [e["input_ids"][:seq_len] for e in encoded]  # collect cuts a sentence at seq_len
        counted = [[m == 0 for m in e["special_tokens_mask"][:seq_len]] for e in encoded]
        _assert_equal_to(tmp_path / "stats", _brute_force(model, rows, counted, seq_len, K, 1, tok.pad_token_id),
                         KEYS[lang])


def test_reader_decodes_the_token_and_its_window(tok, corpora, tmp_path):
    model = _model(tok)
    collect(model, tok, corpora, tmp_path / "stats", CollectOptions(seq_len=8, batch_size=2, top_contexts=2),
            quiet=True)
    contexts = TopContexts.load(tmp_path / "stats", tokenizer=tok)
    found = contexts.neuron("fra_Latn", 1, 5)
    kept = contexts.tensors["fra_Latn"]
    assert [c.value for c in found] == kept["values"][1, 5].tolist()
    window = kept["windows"][1, 5, 0].tolist()
    assert found[0].token == tok.decode(window[CONTEXT_WINDOW:CONTEXT_WINDOW + 1])
    assert found[0].left == tok.decode([i for i in window[:CONTEXT_WINDOW] if i >= 0])
    assert (found[0].row, found[0].index) == divmod(int(kept["positions"][1, 5, 0]), 8)
    with pytest.raises(NeurospecError, match="no top contexts for language"):
        contexts.neuron("de", 0, 0)


# ---- the tie rule


def test_ties_go_to_the_earlier_position():
    torch.manual_seed(1)
    values = torch.randint(0, 4, (40, 6)).float()  # many ties
    for k in (1, 3, 7):
        rows = top_k_earliest(values, k)
        for column in range(values.shape[1]):
            want = sorted(range(values.shape[0]), key=lambda r: (-values[r, column].item(), r))[:k]
            assert rows[:, column].tolist() == want
    # ties inside the kept set (none at the k-th value): still earlier first
    assert top_k_earliest(torch.tensor([[1.0], [2.0], [2.0], [0.0], [2.0]]), 3)[:, 0].tolist() == [1, 2, 4]
    assert top_k_earliest(torch.tensor([[1.0], [2.0], [2.0], [0.0], [2.0]]), 2)[:, 0].tolist() == [1, 2]
    # merging: kept (earlier) wins a tie against a later batch
    kept = {"values": torch.tensor([[[2.0, 1.0]]]), "positions": torch.tensor([[[0, 1]]]),
            "windows": torch.zeros(1, 1, 2, 3, dtype=torch.int32)}
    later = {"values": torch.tensor([[[2.0, 2.0]]]), "positions": torch.tensor([[[5, 6]]]),
             "windows": torch.ones(1, 1, 2, 3, dtype=torch.int32)}
    merged = merge(kept, later)
    assert merged["positions"].tolist() == [[[0, 5]]]
    assert merged["windows"][0, 0, :, 0].tolist() == [0, 1]


# ---- resume, processes, off by default


class _Interrupt(Exception):
    pass


def _context_tensors(folder: Path) -> dict:
    return {lang: kept for lang, kept in TopContexts.load(folder, tokenizer=None).tensors.items()}


@pytest.mark.parametrize("mode", ["packed", "sentence"])
def test_killed_run_resumes_to_the_same_contexts(tok, corpora, tmp_path, mode):
    model = _model(tok)
    options = CollectOptions(mode=mode, seq_len=8 if mode == "packed" else 24, batch_size=2 if mode == "packed" else 1,
                             checkpoint_every=20, sample_sentences=4, top_contexts=K)
    collect(model, tok, corpora, tmp_path / "whole", options, quiet=True)

    def stop(language: str, batch: int) -> None:
        if language == "eng_Latn" and batch == 3:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        collect(model, tok, corpora, tmp_path / "resumed", options, quiet=True, after_batch=stop)
    meta = json.loads((tmp_path / "resumed" / "stats.json").read_text())
    assert meta["complete"] is False and "eng_Latn" in meta["context_files"]
    with pytest.raises(NeurospecError, match="unfinished"):
        TopContexts.load(tmp_path / "resumed")
    collect(model, tok, corpora, tmp_path / "resumed", options, quiet=True, resume=True)
    whole, resumed = _context_tensors(tmp_path / "whole"), _context_tensors(tmp_path / "resumed")
    assert sorted(whole) == sorted(resumed) == ["eng_Latn", "fra_Latn"]
    for lang in whole:
        for name in whole[lang]:
            assert torch.equal(whole[lang][name], resumed[lang][name]), (lang, name)
    final = json.loads((tmp_path / "resumed" / "stats.json").read_text())
    assert final["context_files"] == {lang: f"contexts/{lang}.safetensors" for lang in whole}
    assert sorted(p.name for p in (tmp_path / "resumed" / "contexts").iterdir()) == sorted(
        f"{lang}.safetensors" for lang in whole)


def test_two_processes_keep_the_contexts_of_one(tok, corpora, tmp_path):
    script = HERE / "collect_worker.py"
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1", "NEUROSPEC_TEST_TOP_CONTEXTS": str(K)}
    single, double = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, str(script), str(tmp_path), str(single), "packed"], check=True, env=env, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(script), str(tmp_path), str(double), "packed"],
                   check=True, env=env, timeout=300, capture_output=True)
    one, two = _context_tensors(single), _context_tensors(double)
    for lang in one:
        for name in one[lang]:
            assert torch.equal(one[lang][name], two[lang][name]), (lang, name)


def test_off_by_default_writes_what_it_always_wrote(tok, corpora, tmp_path):
    model = _model(tok)
    collect(model, tok, corpora, tmp_path / "off", CollectOptions(seq_len=8, batch_size=2), quiet=True)
    folder = tmp_path / "off"
    assert sorted(p.name for p in folder.iterdir()) == ["stats.json", "stats.safetensors"]
    meta = json.loads((folder / "stats.json").read_text())
    assert "context_files" not in meta
    assert "top_contexts" not in meta["options"] and "context_window" not in meta["options"]
    with pytest.raises(NeurospecError, match="--top-contexts"):
        TopContexts.load(folder)
    with pytest.raises(NeurospecError, match="top_contexts"):
        CollectOptions(top_contexts=-1).check()
