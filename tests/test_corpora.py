"""neurospec.data.corpora: every format, ordering, blank lines, fingerprints, errors, real shared data."""

from __future__ import annotations

import gzip
import json
import sys
import types
from itertools import islice
from pathlib import Path

import pytest

from neurospec.data.corpora import (
    Corpus,
    HFSource,
    check_corpus,
    corpora_in_directory,
    open_corpus,
    parse_corpus_option,
    parse_hf_spec,
)
from neurospec.data.languages import all_languages
from neurospec.data.locate import mirror_root
from neurospec.data.parallel import ntrex_sentences, sib200_sentences
from neurospec.util.errors import NeurospecError
from neurospec.util.io import file_fingerprint

DATA = mirror_root()
TSV_HEADER = "index_id\tcategory\ttext\n"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def tsv(*texts: str, start: int = 0) -> str:
    return TSV_HEADER + "".join(f"{start + i}\ttopic\t{text}\n" for i, text in enumerate(texts))


def make_ntrex(folder: Path) -> Path:
    write(folder / "newstest2019-src.eng.txt", "One.\r\nTwo.\r\n")
    write(folder / "newstest2019-ref.fra.txt", "Un.\r\nDeux.\r\n")
    write(folder / "newstest2019-ref.zho-CN.txt", "一。\r\n二。\r\n")
    return folder


def make_sib(folder: Path) -> Path:
    for lang, words in (("fra_Latn", ("un", "deux", "trois")), ("deu_Latn", ("eins", "zwei", "drei"))):
        for split, word in zip(("train", "dev", "test"), words):
            write(folder / lang / f"{split}.tsv", tsv(f"{word} a", f"{word} b"))
    return folder


# ---------------------------------------------------------------------------------------------------------
# Plain text
# ---------------------------------------------------------------------------------------------------------

def test_text_file_order_blank_lines_crlf_bom_and_stripping(tmp_path):
    path = write(tmp_path / "fr.txt", b"\xef\xbb\xbfPremier.\r\n\r\n   \n  Deuxi\xc3\xa8me.  \nTroisi\xc3\xa8me.")
    corpus = open_corpus("fr", path)
    assert (corpus.language, corpus.kind, corpus.source) == ("fra_Latn", "text", str(path))
    assert list(corpus.texts()) == ["Premier.", "Deuxième.", "Troisième."]
    check_corpus(corpus)


def test_any_other_extension_is_plain_text(tmp_path):
    corpus = open_corpus("French", write(tmp_path / "notes.md", "a\nb\n"))
    assert corpus.kind == "text" and list(corpus.texts()) == ["a", "b"]


def test_texts_is_a_fresh_iterator_each_call(tmp_path):
    corpus = open_corpus("de", write(tmp_path / "de.txt", "a\nb\nc\n"))
    first, second = corpus.texts(), corpus.texts()
    assert next(first) == "a" and next(first) == "b"
    assert list(second) == ["a", "b", "c"]
    assert list(corpus.texts()) == list(corpus.texts()) == ["a", "b", "c"]
    assert list(islice(corpus.texts(), 1)) == ["a"]


def test_gzip_text_file(tmp_path):
    path = tmp_path / "fr.txt.gz"
    path.write_bytes(gzip.compress(b"x\n\ny\n"))
    corpus = open_corpus("fr", path)
    assert corpus.kind == "text" and list(corpus.texts()) == ["x", "y"]
    assert corpus.fingerprint() == file_fingerprint(path)


# ---------------------------------------------------------------------------------------------------------
# JSONL
# ---------------------------------------------------------------------------------------------------------

def test_jsonl_text_field_order_and_blanks(tmp_path):
    lines = [{"text": "one", "id": 1}, {"text": "  "}, {"text": "two\nlines"}, {"text": " three "}]
    path = write(tmp_path / "c.jsonl", "\n".join(json.dumps(r) for r in lines[:2]) + "\n\n"
                 + "\n".join(json.dumps(r) for r in lines[2:]) + "\n")
    corpus = open_corpus("es", path)
    assert corpus.kind == "jsonl"
    assert list(corpus.texts()) == ["one", "two\nlines", "three"]
    other = open_corpus("es", write(tmp_path / "d.jsonl", '{"body": "b1"}\n{"body": "b2"}\n'), text_field="body")
    assert list(other.texts()) == ["b1", "b2"]
    assert other.describe()["text_field"] == "body"


def test_jsonl_gz(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "a"}\n{"text": "b"}\n'))
    corpus = open_corpus("es", path)
    assert corpus.kind == "jsonl" and list(corpus.texts()) == ["a", "b"]


@pytest.mark.parametrize("line, expected", [
    ("not json", r"line 2 is not JSON"),
    ('{"other": "x"}', r"line 2 has no field 'text' \(fields: other\).*text_field"),
    ('{"text": 3}', r"line 2: field 'text' is int, not a string"),
    ('["text"]', r"line 2 is a JSON list, not an object"),
])
def test_jsonl_errors_name_the_line(tmp_path, line, expected):
    path = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n' + line + "\n")
    corpus = open_corpus("fr", path)
    with pytest.raises(NeurospecError, match=expected) as info:
        check_corpus(corpus)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------------------
# TSV and SIB-200
# ---------------------------------------------------------------------------------------------------------

def test_tsv_file_text_column(tmp_path):
    path = write(tmp_path / "fr.tsv", tsv("Bonjour « monde ».", '"quoted" as is', "") + "\n")
    corpus = open_corpus("fr", path)
    assert corpus.kind == "tsv"
    assert list(corpus.texts()) == ["Bonjour « monde ».", '"quoted" as is']
    other = open_corpus("fr", write(tmp_path / "g.tsv", "sentence\tid\nabc\t1\n"), text_field="sentence")
    assert list(other.texts()) == ["abc"]


def test_tsv_errors(tmp_path):
    with pytest.raises(NeurospecError, match=r"no 'text' column \(columns: a, b\).*text_field"):
        check_corpus(open_corpus("fr", write(tmp_path / "a.tsv", "a\tb\n1\t2\n")))
    with pytest.raises(NeurospecError, match=r"line 3 has 2 tab-separated fields"):
        check_corpus(open_corpus("fr", write(tmp_path / "b.tsv", TSV_HEADER + "0\tx\tok\n1\tx\n")))


def test_sib_layout_splits_in_order(tmp_path):
    folder = make_sib(tmp_path / "sib")
    corpus = open_corpus("fr", folder)
    assert corpus.kind == "sib200" and corpus.source == str(folder / "fra_Latn")
    assert list(corpus.texts()) == ["un a", "un b", "deux a", "deux b", "trois a", "trois b"]
    assert list(open_corpus("fr", folder, split="dev").texts()) == ["deux a", "deux b"]
    assert [p.name for p in corpus.files] == ["train.tsv", "dev.tsv", "test.tsv"]
    assert corpus.describe()["split"] == "all"
    assert open_corpus("de", folder, split="test").describe()["split"] == "test"


def test_sib_language_folder_directly(tmp_path):
    folder = make_sib(tmp_path / "sib") / "deu_Latn"
    assert list(open_corpus("de", folder, split="train").texts()) == ["eins a", "eins b"]
    with pytest.raises(NeurospecError, match=r"holds deu_Latn, not fra_Latn"):
        open_corpus("fr", folder)


def test_sib_errors(tmp_path):
    folder = make_sib(tmp_path / "sib")
    with pytest.raises(NeurospecError, match=r"unknown SIB-200 split 'valid'.*train, dev or test"):
        open_corpus("fr", folder, split="valid")
    with pytest.raises(NeurospecError, match=r"lacks Japanese \(jpn_Jpan\).*It holds deu_Latn, fra_Latn"):
        open_corpus("ja", folder)
    (folder / "fra_Latn" / "dev.tsv").unlink()
    with pytest.raises(NeurospecError, match=r"has no dev.tsv"):
        open_corpus("fr", folder, split="dev")
    no_flores = next(lang for lang in all_languages() if not lang.flores200)
    with pytest.raises(NeurospecError, match=r"FLORES-200 / SIB-200 has no"):
        open_corpus(no_flores.key, folder)


# ---------------------------------------------------------------------------------------------------------
# NTREX-128
# ---------------------------------------------------------------------------------------------------------

def test_ntrex_layout_picks_the_language_file(tmp_path):
    folder = make_ntrex(tmp_path / "ntrex")
    english = open_corpus("en", folder)
    assert english.kind == "ntrex" and english.source == str(folder / "newstest2019-src.eng.txt")
    assert list(english.texts()) == ["One.", "Two."]
    assert list(open_corpus("zh", folder).texts()) == ["一。", "二。"]
    assert list(open_corpus("fra_Latn", folder).texts()) == ["Un.", "Deux."]


def test_ntrex_errors(tmp_path):
    folder = make_ntrex(tmp_path / "ntrex")
    with pytest.raises(NeurospecError, match=r"lacks German \(deu_Latn\): no newstest2019-ref.deu.txt.*"
                                             r"eng_Latn, fra_Latn, zho_Hans"):
        open_corpus("de", folder)
    with pytest.raises(NeurospecError, match=r"NTREX-128 has no Ayacucho Quechua"):
        open_corpus("quy_Latn", folder)
    with pytest.raises(NeurospecError, match=r"no splits"):
        open_corpus("fr", folder, split="test")


# ---------------------------------------------------------------------------------------------------------
# Fingerprints and descriptions
# ---------------------------------------------------------------------------------------------------------

def test_fingerprint_follows_content(tmp_path):
    path = write(tmp_path / "fr.txt", "a\n")
    corpus = open_corpus("fr", path)
    before = corpus.fingerprint()
    assert before == file_fingerprint(path) and before.startswith("sha256:")
    assert open_corpus("fr", write(tmp_path / "copy.txt", "a\n")).fingerprint() == before  # content, not name
    write(path, "a\nb\n")
    assert corpus.fingerprint() != before


def test_sib_fingerprint_covers_every_split(tmp_path):
    folder = make_sib(tmp_path / "sib")
    corpus = open_corpus("fr", folder)
    before = corpus.fingerprint()
    assert before.startswith("sha256:") and before != open_corpus("fr", folder, split="dev").fingerprint()
    write(folder / "fra_Latn" / "test.tsv", tsv("changed"))
    assert corpus.fingerprint() != before


def test_describe_is_json(tmp_path):
    corpus = open_corpus("fr", write(tmp_path / "fr.jsonl", '{"text": "a"}\n'))
    info = json.loads(json.dumps(corpus.describe()))
    assert info == {"language": "fra_Latn", "source": str(tmp_path / "fr.jsonl"), "kind": "jsonl",
                    "fingerprint": corpus.fingerprint(), "text_field": "text"}
    json.dumps(open_corpus("fr", make_sib(tmp_path / "sib")).describe())


# ---------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------

def test_missing_path(tmp_path):
    with pytest.raises(NeurospecError, match=r"nope.txt does not exist"):
        open_corpus("fr", tmp_path / "nope.txt")
    corpus = open_corpus("fr", write(tmp_path / "fr.txt", "a\n"))
    (tmp_path / "fr.txt").unlink()
    with pytest.raises(NeurospecError, match=r"does not exist"):
        corpus.texts()


@pytest.mark.parametrize("content", ["", "\n\n", "  \r\n\t\n"])
def test_empty_or_blank_file_has_no_text(tmp_path, content):
    corpus = open_corpus("fr", write(tmp_path / "fr.txt", content))
    with pytest.raises(NeurospecError, match=r"fr.txt has no text"):
        check_corpus(corpus)
    with pytest.raises(NeurospecError, match=r"has no text"):
        list(corpus.texts())


def test_blank_jsonl_values_have_no_text(tmp_path):
    with pytest.raises(NeurospecError, match=r"has no text"):
        check_corpus(open_corpus("fr", write(tmp_path / "fr.jsonl", '{"text": ""}\n{"text": " "}\n')))


def test_undecodable_bytes_name_line_and_offset(tmp_path):
    path = write(tmp_path / "fr.txt", b"ok\nalso ok\ncaf\xe9\n")
    with pytest.raises(NeurospecError, match=r"fr.txt: line 3 is not valid UTF-8 at byte offset 14") as info:
        check_corpus(open_corpus("fr", path))
    assert "\\xe9" in str(info.value) and "iconv" in str(info.value)
    gz = tmp_path / "fr.txt.gz"
    gz.write_bytes(gzip.compress(b"\xff\n"))
    with pytest.raises(NeurospecError, match=r"line 1 is not valid UTF-8 at byte offset 0 \(uncompressed\)"):
        check_corpus(open_corpus("fr", gz))
    with pytest.raises(NeurospecError, match=r"line 2 is not valid UTF-8"):
        check_corpus(open_corpus("fr", write(tmp_path / "x.jsonl", b'{"text": "a"}\n{"text": "\xc3"}\n')))


def test_unknown_language(tmp_path):
    path = write(tmp_path / "fr.txt", "a\n")
    with pytest.raises(NeurospecError, match=r"Unknown language 'klingonish'"):
        open_corpus("klingonish", path)
    with pytest.raises(NeurospecError, match=r"--corpus 'klingonish=.*Unknown language"):
        parse_corpus_option(f"klingonish={path}")


def test_split_on_a_plain_file_is_an_error(tmp_path):
    with pytest.raises(NeurospecError, match=r"split='test' applies only to SIB-200"):
        open_corpus("fr", write(tmp_path / "fr.txt", "a\n"), split="test")


# ---------------------------------------------------------------------------------------------------------
# --corpus values
# ---------------------------------------------------------------------------------------------------------

def test_parse_corpus_option(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"body": "x"}\n')
    corpus = parse_corpus_option(f"fr={path}", text_field="body")
    assert (corpus.language, corpus.kind, list(corpus.texts())) == ("fra_Latn", "jsonl", ["x"])
    assert parse_corpus_option("ja=hf:some/set@test").source == "hf:some/set/test"


@pytest.mark.parametrize("value, expected", [
    ("fr", r"has no '='.*LANGUAGE=PATH"),
    ("=x.txt", r"has no language"),
    ("fr=", r"has no path"),
])
def test_parse_corpus_option_errors(value, expected):
    with pytest.raises(NeurospecError, match=expected):
        parse_corpus_option(value)


# ---------------------------------------------------------------------------------------------------------
# Directories
# ---------------------------------------------------------------------------------------------------------

def test_corpora_in_directory_of_language_files(tmp_path):
    write(tmp_path / "fr.txt", "a\n")
    write(tmp_path / "deu_Latn.jsonl", '{"text": "b"}\n')
    write(tmp_path / "Japanese.tsv", "text\nc\n")
    write(tmp_path / "README.md", "not a corpus\n")
    write(tmp_path / "notes.txt", "ignored: no language\n")
    corpora = corpora_in_directory(tmp_path)
    assert [(c.language, c.kind) for c in corpora] == [("deu_Latn", "jsonl"), ("fra_Latn", "text"),
                                                       ("jpn_Jpan", "tsv")]
    chosen = corpora_in_directory(tmp_path, ["ja", "French"])
    assert [c.language for c in chosen] == ["jpn_Jpan", "fra_Latn"]
    assert list(open_corpus("de", tmp_path).texts()) == ["b"]  # open_corpus on such a folder picks the file
    with pytest.raises(NeurospecError, match=r"no corpus file for spa_Latn; it holds deu_Latn, fra_Latn, jpn_Jpan"):
        corpora_in_directory(tmp_path, ["es"])
    with pytest.raises(NeurospecError, match=r"no corpus file for spa_Latn"):
        open_corpus("es", tmp_path)


def test_directory_with_two_files_for_one_language(tmp_path):
    write(tmp_path / "fr.txt", "a\n")
    write(tmp_path / "fra_Latn.jsonl", '{"text": "b"}\n')
    with pytest.raises(NeurospecError, match=r"two corpora for fra_Latn: fr.txt and fra_Latn.jsonl"):
        corpora_in_directory(tmp_path)


def test_directory_without_languages(tmp_path):
    write(tmp_path / "notes.txt", "a\n")
    write(tmp_path / "zz-top.jsonl", "{}\n")
    with pytest.raises(NeurospecError, match=r"no file name is a known language \(notes.txt, zz-top.jsonl\)"):
        corpora_in_directory(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NeurospecError, match=r"holds no corpus files"):
        corpora_in_directory(tmp_path / "empty")
    with pytest.raises(NeurospecError, match=r"does not exist"):
        corpora_in_directory(tmp_path / "missing")
    with pytest.raises(NeurospecError, match=r"is a file, not a folder"):
        corpora_in_directory(tmp_path / "notes.txt")
    with pytest.raises(NeurospecError, match=r"is not a corpus folder"):
        open_corpus("fr", tmp_path)


def test_corpora_in_layout_directories(tmp_path):
    ntrex = make_ntrex(tmp_path / "ntrex")
    assert [c.language for c in corpora_in_directory(ntrex)] == ["eng_Latn", "fra_Latn", "zho_Hans"]
    assert [c.language for c in corpora_in_directory(ntrex, ["zh"])] == ["zho_Hans"]
    with pytest.raises(NeurospecError, match=r"lacks German"):
        corpora_in_directory(ntrex, ["de", "fr"])
    sib = make_sib(tmp_path / "sib")
    corpora = corpora_in_directory(sib, split="dev")
    assert [(c.language, list(c.texts())) for c in corpora] == [("deu_Latn", ["zwei a", "zwei b"]),
                                                                 ("fra_Latn", ["deux a", "deux b"])]


# ---------------------------------------------------------------------------------------------------------
# Hugging Face
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("hf:wikimedia/wikipedia:20231101.fr@train", HFSource("wikimedia/wikipedia", "20231101.fr", "train")),
    ("hf:user/set", HFSource("user/set", None, "train")),
    ("hf:user/set@validation", HFSource("user/set", None, "validation")),
    ("hf:user/set:cfg#abc123", HFSource("user/set", "cfg", "train", "abc123")),
])
def test_parse_hf_spec(spec, expected):
    assert parse_hf_spec(spec) == expected
    assert parse_hf_spec(expected.spec) == expected


def test_hf_corpus_source_and_fingerprint():
    corpus = open_corpus("fr", "hf:wikimedia/wikipedia:20231101.fr@train")
    assert (corpus.kind, corpus.source, corpus.split) == ("hf", "hf:wikimedia/wikipedia/20231101.fr/train", "train")
    assert corpus.fingerprint() == "hf:wikimedia/wikipedia/20231101.fr/train"
    assert open_corpus("fr", "hf:a/b#v2", split="test").fingerprint() == "hf:a/b/test#v2"
    info = json.loads(json.dumps(corpus.describe()))
    assert info["hf"] == {"name": "wikimedia/wikipedia", "config": "20231101.fr", "split": "train", "revision": None}


@pytest.mark.parametrize("spec", ["hf:", "hf::cfg", "hf:a/b:", "hf:a/b@", "hf:a/b#", "hf:a b"])
def test_bad_hf_specs(spec):
    with pytest.raises(NeurospecError, match=r"cannot parse Hugging Face source"):
        open_corpus("fr", spec)


def test_hf_split_conflict():
    with pytest.raises(NeurospecError, match=r"names split 'train' but split='test'"):
        open_corpus("fr", "hf:a/b@train", split="test")


def test_hf_without_datasets_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    corpus = open_corpus("fr", "hf:a/b")
    with pytest.raises(NeurospecError, match=r"pip install datasets"):
        corpus.texts()
    with pytest.raises(NeurospecError, match=r"pip install datasets"):
        check_corpus(corpus)


def fake_datasets(records, calls):
    def load_dataset(name, config=None, *, split=None, streaming=False, revision=None):
        calls.append((name, config, split, streaming, revision))
        if name == "missing/set":
            raise FileNotFoundError("Dataset 'missing/set' doesn't exist on the Hub")
        return iter(records)

    return types.SimpleNamespace(load_dataset=load_dataset)


def test_hf_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets([], []))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NeurospecError, match=r"HF_HUB_OFFLINE is set \(offline\).*local file"):
        open_corpus("fr", "hf:a/b").texts()


def test_hf_streaming_with_a_fake_datasets(monkeypatch):
    calls: list = []
    records = [{"text": "un"}, {"text": " "}, {"text": "deux", "id": 2}, {"body": "x"}]
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(records, calls))
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    corpus = open_corpus("fr", "hf:wikimedia/wikipedia:20231101.fr@train#rev1")
    check_corpus(corpus)  # only up to the first text: the bad 4th record is not reached
    assert list(islice(corpus.texts(), 2)) == ["un", "deux"]
    assert calls[0] == ("wikimedia/wikipedia", "20231101.fr", "train", True, "rev1")
    with pytest.raises(NeurospecError, match=r"record 4 has no field 'text'"):
        list(corpus.texts())
    with pytest.raises(NeurospecError, match=r"cannot open hf:missing/set@train: FileNotFoundError"):
        open_corpus("fr", "hf:missing/set").texts()


def test_hf_stream_failure_is_wrapped(monkeypatch):
    def broken():
        yield {"text": "first"}
        raise ConnectionError("connection reset")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=lambda *a, **k: broken()))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    texts = open_corpus("fr", "hf:a/b").texts()
    assert next(texts) == "first"
    with pytest.raises(NeurospecError, match=r"streaming hf:a/b@train failed after 1 records: ConnectionError"):
        next(texts)


def test_hf_streaming_with_real_datasets_module(monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets, "load_dataset", fake_datasets([{"text": "a"}, {"text": "b"}], []).load_dataset)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert list(open_corpus("fr", "hf:x/y").texts()) == ["a", "b"]


# ---------------------------------------------------------------------------------------------------------
# Real shared data
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (DATA / "ntrex128" / "newstest2019-ref.deu.txt").is_file(),
                    reason=f"NTREX-128 not staged at {DATA / 'ntrex128'} (set NEUROSPEC_DATA)")
def test_real_ntrex_matches_parallel_reader():
    corpus = open_corpus("de", DATA / "ntrex128")
    check_corpus(corpus)
    assert list(corpus.texts()) == [text for _, text in ntrex_sentences("de")]
    assert "deu_Latn" in [c.language for c in corpora_in_directory(DATA / "ntrex128")]


@pytest.mark.skipif(not (DATA / "sib200_flores" / "fra_Latn").is_dir(),
                    reason=f"SIB-200 not staged at {DATA / 'sib200_flores'} (set NEUROSPEC_DATA)")
def test_real_sib200_matches_parallel_reader():
    folder = DATA / "sib200_flores"
    assert list(open_corpus("fra_Latn", folder).texts()) == [text for _, text in sib200_sentences("fra_Latn")]
    test = open_corpus("fr", folder, split="test")
    assert list(test.texts()) == [text for _, text in sib200_sentences("fr", split="test")]
    assert isinstance(test, Corpus) and test.kind == "sib200"
