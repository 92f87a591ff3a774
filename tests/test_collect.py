"""Activation statistics: counts against an independent forward hook, resume, two processes, bad input."""

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

from neurospec.core.sites import site_map
from neurospec.data.corpora import open_corpus
from neurospec.measure.collect import CollectOptions, collect, default_seq_len, sentence_packing_works
from neurospec.measure.stats import ActivationStats
from neurospec.util.errors import FileFormatError, NeurospecError, ShapeMismatchError

HERE = Path(__file__).parent
TEXTS = {
    "en": ["The weather was mild and the market opened early.", "She read the letter twice before answering.",
           "Trains to the coast leave every hour.", "A small dog slept under the table.",
           "They planted trees along the river in spring.", "Nobody expected the meeting to last so long."],
    "fr": ["Le marché ouvre tôt le matin.", "Elle a relu la lettre deux fois.", "Les trains partent chaque heure.",
           "Un petit chien dormait sous la table."],
}


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _model(tok, name: str = "llama"):
    return family(name).build(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                              eos_token_id=tok.eos_token_id)


@pytest.fixture
def corpora(tmp_path):
    found = []
    for lang, lines in TEXTS.items():
        path = tmp_path / f"{lang}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        found.append(open_corpus(lang, path))
    return found


def _independent_packed(model, tok, seq_len: int, max_tokens: int | None = None) -> dict[str, dict]:
    expected = {}
    for lang, lines in TEXTS.items():
        stream = [i for line in lines for i in tok(line, add_special_tokens=False)["input_ids"]]
        stream = stream[:max_tokens] if max_tokens else stream
        values = [[] for _ in model.model.layers]
        for start in range(0, len(stream), seq_len):
            row = torch.tensor([stream[start:start + seq_len]])
            for layer, v in enumerate(act_values(model, row)):
                values[layer].append(v[0])
        expected[lang] = _summaries([torch.cat(v) for v in values], len(stream))
    return expected


def _summaries(per_layer: list[torch.Tensor], tokens: int) -> dict:
    return {"tokens": tokens,
            "active": torch.stack([(v > 0).sum(0) for v in per_layer]),
            "sum": torch.stack([v.double().sum(0) for v in per_layer]),
            "sum_sq": torch.stack([(v.double() ** 2).sum(0) for v in per_layer]),
            "max": torch.stack([v.max(0).values for v in per_layer])}


def _assert_matches(stats: ActivationStats, expected: dict[str, dict]) -> None:
    for g, lang in enumerate(expected):
        want = expected[lang]
        assert int(stats.tokens[g]) == want["tokens"]
        assert torch.equal(stats.active[g], want["active"]), lang
        torch.testing.assert_close(stats.sum[g], want["sum"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats.sum_sq[g], want["sum_sq"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats.max[g], want["max"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seq_len,batch_size,max_tokens", [(16, 3, None), (7, 2, 40)])
def test_packed_counts_equal_a_plain_forward_hook(tok, corpora, tmp_path, seq_len, batch_size, max_tokens):
    model = _model(tok)
    options = CollectOptions(mode="packed", seq_len=seq_len, batch_size=batch_size, max_tokens=max_tokens)
    stats = collect(model, tok, corpora, tmp_path / "stats", options, quiet=True)
    _assert_matches(stats, _independent_packed(model, tok, seq_len, max_tokens))
    assert stats.languages == ["eng_Latn", "fra_Latn"]
    meta = json.loads((tmp_path / "stats" / "stats.json").read_text())
    assert meta["complete"] and meta["options"]["seq_len"] == seq_len and meta["tokens"]["eng_Latn"] == stats.tokens[0]


def _independent_sentences(model, tok, sample: int, bos: bool = True) -> tuple[dict, dict]:
    """Each sentence alone, with the tokenizer's BOS (none with ``bos=False``), counting its own tokens only."""
    expected, means = {}, {}
    for lang, lines in TEXTS.items():
        values = [[] for _ in model.model.layers]
        per_sentence = []
        for line in lines:
            encoded = tok(line, add_special_tokens=bos, return_special_tokens_mask=True)
            keep = torch.tensor(encoded["special_tokens_mask"]) == 0
            layers = [v[0][keep] for v in act_values(model, torch.tensor([encoded["input_ids"]]))]
            for layer, v in enumerate(layers):
                values[layer].append(v)
            per_sentence.append(torch.stack([v.mean(0) for v in layers]))
        expected[lang] = _summaries([torch.cat(v) for v in values], sum(v.shape[0] for v in values[0]))
        means[lang] = torch.stack(per_sentence[:sample])
    return expected, means


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_sentence_mode_one_sentence_per_row_equals_each_sentence_alone(tok, corpora, tmp_path, name):
    model = _model(tok, name)
    options = CollectOptions(mode="sentence", pack_sentences=False, batch_size=3, sample_sentences=5)
    stats = collect(model, tok, corpora, tmp_path / "stats", options, quiet=True)
    if name == "gpt2":  # the independent hook below reads Llama module names; gpt2 checks padding + counts only
        assert stats.sentences == {"eng_Latn": 6, "fra_Latn": 4}
        return
    expected, means = _independent_sentences(model, tok, 5)
    _assert_matches(stats, expected)
    assert stats.sentences == {"eng_Latn": 6, "fra_Latn": 4}
    torch.testing.assert_close(stats.sentence_means("en"), means["en"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats.sentence_means("fra_Latn"), means["fr"], rtol=1e-5, atol=1e-6)
    assert stats.sentence_means("fr").shape[0] == 4  # fewer sentences than the sample size
    torch.testing.assert_close(stats.amplification_values("en", "p_max"), means["en"].max(0).values)
    torch.testing.assert_close(stats.amplification_values("en", "p_median"), means["en"].median(0).values)


def test_packed_sentences_see_what_they_would_see_alone(tok, corpora, tmp_path):
    model = _model(tok)
    assert sentence_packing_works(model, tok, TEXTS["en"][:2])
    options = CollectOptions(mode="sentence", seq_len=40, batch_size=2, sample_sentences=3)
    stats = collect(model, tok, corpora, tmp_path / "stats", options, quiet=True)
    assert json.loads((tmp_path / "stats" / "stats.json").read_text())["options"]["packed_sentences"] is True
    expected, means = _independent_sentences(model, tok, 3)
    for g, lang in enumerate(expected):
        assert int(stats.tokens[g]) == expected[lang]["tokens"]
        # other matmul shapes round differently: a value within 1e-6 of 0 may flip its sign
        assert (stats.active[g] - expected[lang]["active"]).abs().sum() <= 2
        torch.testing.assert_close(stats.sum[g], expected[lang]["sum"], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(stats.max[g], expected[lang]["max"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(stats.sentence_means("en"), means["en"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pack", [False, True])
def test_sentence_mode_without_bos_equals_the_references_tokenisation(tok, corpora, tmp_path, pack):
    """bos=False (the amplification reference: add_special_tokens=False) gives the values of each sentence run
    alone without BOS; the default keeps BOS, which changes every value but not the counted tokens."""
    model = _model(tok)
    assert tok("x")["input_ids"][0] == tok.bos_token_id  # the tokenizer adds a BOS
    options = dict(mode="sentence", pack_sentences=pack, seq_len=40, batch_size=2, sample_sentences=5)
    plain = collect(model, tok, corpora, tmp_path / "plain", CollectOptions(**options, bos=False), quiet=True)
    with_bos = collect(model, tok, corpora, tmp_path / "bos", CollectOptions(**options), quiet=True)
    expected, means = _independent_sentences(model, tok, 5, bos=False)
    if pack:  # other matmul shapes round differently: a value within 1e-6 of 0 may flip its sign
        for g, lang in enumerate(expected):
            assert int(plain.tokens[g]) == expected[lang]["tokens"]
            assert (plain.active[g] - expected[lang]["active"]).abs().sum() <= 2
            torch.testing.assert_close(plain.sum[g], expected[lang]["sum"], rtol=1e-4, atol=1e-4)
    else:
        _assert_matches(plain, expected)
    torch.testing.assert_close(plain.sentence_means("en"), means["en"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(plain.amplification_values("fr", "p_max"), means["fr"].max(0).values,
                               rtol=1e-4, atol=1e-5)
    assert torch.equal(plain.tokens, with_bos.tokens) and plain.sentences == with_bos.sentences
    assert not torch.allclose(plain.sum, with_bos.sum)
    assert not torch.allclose(plain.sentence_means("en"), with_bos.sentence_means("en"))
    recorded = json.loads((tmp_path / "plain" / "stats.json").read_text())["options"]
    assert recorded["bos"] is False and recorded["packed_sentences"] is pack
    assert json.loads((tmp_path / "bos" / "stats.json").read_text())["options"]["bos"] is True
    with pytest.raises(NeurospecError, match="cannot resume .*options differ"):
        collect(model, tok, corpora, tmp_path / "plain", CollectOptions(**options), resume=True, quiet=True)
    meta_file = tmp_path / "bos" / "stats.json"  # a folder from before the option was collected with BOS
    meta = json.loads(meta_file.read_text())
    del meta["options"]["bos"]
    meta_file.write_text(json.dumps(meta))
    collect(model, tok, corpora, tmp_path / "bos", CollectOptions(**options), resume=True, quiet=True)


def test_alibi_family_falls_back_to_one_sentence_per_row(tok, corpora, tmp_path):
    model = _model(tok, "bloom")
    assert not sentence_packing_works(model, tok, TEXTS["en"][:2])
    stats = collect(model, tok, corpora, tmp_path / "s", CollectOptions(mode="sentence", batch_size=4), quiet=True)
    assert json.loads((tmp_path / "s" / "stats.json").read_text())["options"]["packed_sentences"] is False
    assert stats.sentences == {"eng_Latn": 6, "fra_Latn": 4}


def test_sentence_token_cap_cuts_the_last_sentence(tok, corpora, tmp_path):
    model = _model(tok)
    stats = collect(model, tok, corpora, tmp_path / "s", CollectOptions(mode="sentence", max_tokens=25), quiet=True)
    assert stats.tokens.tolist() == [25, 25]


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("mode", ["packed", "sentence"])
def test_killed_run_resumes_to_the_same_files(tok, corpora, tmp_path, mode):
    model = _model(tok)
    options = CollectOptions(mode=mode, seq_len=8 if mode == "packed" else 24, batch_size=2 if mode == "packed" else 1,
                             checkpoint_every=20,
                             sample_sentences=4)
    whole = collect(model, tok, corpora, tmp_path / "whole", options, quiet=True)

    def stop(language: str, batch: int) -> None:
        if language == "eng_Latn" and batch == 3:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        collect(model, tok, corpora, tmp_path / "resumed", options, quiet=True, after_batch=stop)
    meta = json.loads((tmp_path / "resumed" / "stats.json").read_text())
    assert meta["complete"] is False and meta["progress"]["batch"] > 0
    with pytest.raises(NeurospecError, match="unfinished"):
        ActivationStats.load(tmp_path / "resumed")
    with pytest.raises(NeurospecError, match="--resume"):
        collect(model, tok, corpora, tmp_path / "resumed", options, quiet=True)
    resumed = collect(model, tok, corpora, tmp_path / "resumed", options, quiet=True, resume=True)
    for name in ("tokens", "active", "sum", "sum_sq", "max"):
        assert torch.equal(getattr(resumed, name), getattr(whole, name)), name
    assert resumed.sentences == whole.sentences
    if mode == "sentence":
        assert torch.equal(resumed.sentence_means("en"), whole.sentence_means("en"))
    # resuming a complete folder changes nothing
    again = collect(model, tok, corpora, tmp_path / "resumed", options, quiet=True, resume=True)
    assert torch.equal(again.active, whole.active)


def test_resume_refuses_another_model_or_options(tok, corpora, tmp_path):
    options = CollectOptions(seq_len=8, batch_size=1, checkpoint_every=10)

    def stop(language: str, batch: int) -> None:
        if batch == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        collect(_model(tok), tok, corpora, tmp_path / "s", options, quiet=True, after_batch=stop)
    other = family("llama").build(vocab_size=len(tok), intermediate_size=64)
    with pytest.raises(NeurospecError, match="another model"):
        collect(other, tok, corpora, tmp_path / "s", options, quiet=True, resume=True)
    with pytest.raises(NeurospecError, match="options differ"):
        collect(_model(tok), tok, corpora, tmp_path / "s", CollectOptions(seq_len=9, batch_size=1, checkpoint_every=10),
                quiet=True, resume=True)


def test_two_processes_give_the_statistics_of_one(tok, corpora, tmp_path):
    script = HERE / "collect_worker.py"
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    for mode in ("packed", "sentence"):
        single = tmp_path / f"one-{mode}"
        double = tmp_path / f"two-{mode}"
        subprocess.run([sys.executable, str(script), str(tmp_path), str(single), mode], check=True, env=env, timeout=300)
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(script), str(tmp_path), str(double), mode],
                       check=True, env=env, timeout=300, capture_output=True)
        one, two = ActivationStats.load(single), ActivationStats.load(double)
        for name in ("tokens", "active", "sum", "sum_sq", "max"):
            assert torch.equal(getattr(one, name), getattr(two, name)), (mode, name)
        assert one.sentences == two.sentences
        if mode == "sentence":
            assert torch.equal(one.sentence_means("en"), two.sentence_means("en"))


# ---- bad input: a clear error, and nothing written


def _fails(tok, corpora, out: Path, match: str, options: CollectOptions | None = None, model=None) -> None:
    with pytest.raises(NeurospecError, match=match):
        collect(model or _model(tok), tok, corpora, out, options or CollectOptions(seq_len=8), quiet=True)
    assert not out.exists()


def test_bad_corpora_fail_before_anything_is_written(tok, tmp_path):
    with pytest.raises(NeurospecError, match="does not exist"):
        open_corpus("en", tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    _fails(tok, [open_corpus("en", empty)], tmp_path / "b", "has no text")
    broken = tmp_path / "broken.txt"
    broken.write_bytes(b"fine line\nbad \xff\xfe bytes\n")
    _fails(tok, [open_corpus("en", broken)], tmp_path / "c", "UTF-8")
    only_specials = tmp_path / "specials.txt"
    only_specials.write_text("<bos><eos>\n", encoding="utf-8")
    _fails(tok, [open_corpus("en", only_specials)], tmp_path / "d", "no tokens after tokenisation",
           CollectOptions(mode="sentence"))
    ok = tmp_path / "ok.txt"
    ok.write_text("hello\n", encoding="utf-8")
    _fails(tok, [open_corpus("en", ok), open_corpus("eng_Latn", ok)], tmp_path / "e", "same language")
    _fails(tok, [open_corpus("en", ok)], tmp_path / "f", "unknown site", CollectOptions(site="mlp"))
    _fails(tok, [open_corpus("en", ok)], tmp_path / "g", "batch_size", CollectOptions(batch_size=0))


def test_statistics_folder_checks(tok, corpora, tmp_path):
    model = _model(tok)
    stats = collect(model, tok, corpora, tmp_path / "s", CollectOptions(seq_len=8), quiet=True)
    assert stats.check_model(site_map(model), site="act") is stats
    with pytest.raises(ShapeMismatchError, match="site 'act', not 'gate_pre'"):
        stats.check_model(site_map(model), site="gate_pre")
    other = family("llama").build(vocab_size=len(tok), intermediate_size=64)
    with pytest.raises(ShapeMismatchError, match="another model"):
        stats.check_model(site_map(other).shape)
    tensors = tmp_path / "s" / "stats.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-10])
    with pytest.raises(FileFormatError, match="fingerprint"):
        ActivationStats.load(tmp_path / "s")
    (tmp_path / "s" / "stats.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        ActivationStats.load(tmp_path / "s")
    with pytest.raises(NeurospecError, match="does not exist"):
        ActivationStats.load(tmp_path / "missing")


def test_default_row_lengths(tok):
    model = _model(tok)
    limit = model.config.max_position_embeddings
    assert default_seq_len(model, "packed") == min(limit, 4096)
    assert default_seq_len(model, "sentence") == min(limit, 512)


def test_a_crash_after_the_tensors_before_stats_json_leaves_a_resumable_checkpoint(tok, corpora, tmp_path, monkeypatch):
    import neurospec.measure.run_folder as stats_module  # it writes the manifest (stats.json)

    model = _model(tok)
    options = CollectOptions(mode="sentence", seq_len=24, batch_size=1, checkpoint_every=20, sample_sentences=4)
    whole = collect(model, tok, corpora, tmp_path / "whole", options, quiet=True)
    real, calls = stats_module.atomic_write_json, []

    def crash_on_third(path, obj, **kw):  # the tensors of the third checkpoint are written, its index is not
        calls.append(path)
        if len(calls) == 3:
            raise _Interrupt
        return real(path, obj, **kw)

    monkeypatch.setattr(stats_module, "atomic_write_json", crash_on_third)
    with pytest.raises(_Interrupt):
        collect(model, tok, corpora, tmp_path / "r", options, quiet=True)
    monkeypatch.setattr(stats_module, "atomic_write_json", real)
    resumed = collect(model, tok, corpora, tmp_path / "r", options, quiet=True, resume=True)
    for name in ("tokens", "active", "sum", "sum_sq", "max"):
        assert torch.equal(getattr(resumed, name), getattr(whole, name)), name
    assert torch.equal(resumed.sentence_means("en"), whole.sentence_means("en"))
    names = sorted(p.relative_to(tmp_path / "r").as_posix() for p in (tmp_path / "r").rglob("*") if p.is_file())
    assert names == ["sample/eng_Latn.safetensors", "sample/fra_Latn.safetensors", "stats.json", "stats.safetensors"]
