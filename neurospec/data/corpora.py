"""Per-language text sources (corpora) for activation statistics: files, shared datasets, Hugging Face.

    from neurospec.data.corpora import open_corpus, parse_corpus_option, corpora_in_directory, check_corpus
    fr = open_corpus("fr", "corpora/fr.txt")           # or a .jsonl / .tsv file, an NTREX or SIB-200 folder
    check_corpus(fr)                                   # full validation pass before anything is written
    for text in fr.texts(): ...                        # a fresh streaming iterator, in corpus order
    fr.describe()                                      # {"language": "fra_Latn", "kind": "text", "fingerprint": ...}

Formats, detected from ``path`` (a trailing ``.gz`` is decompressed on the fly):

- plain text (any other extension): one text per non-blank line;
- ``.jsonl``: one JSON object per line, the text in ``text_field`` (default ``"text"``);
- ``.tsv``: FLORES-200 / SIB-200 style, tab-separated with a header and a ``text`` column (``text_field``);
- an NTREX-128 folder (``newstest2019-src.eng.txt``, ``newstest2019-ref.<code>.txt``): the language's file;
- a SIB-200 folder (``<dir>/<flores code>/{train,dev,test}.tsv``, or one language's folder): ``split``
  picks ``train``, ``dev`` or ``test``, default all present, in that order;
- a folder of ``<language>.<ext>`` files (see :func:`corpora_in_directory`): the language's file;
- ``"hf:NAME[:CONFIG][@SPLIT][#REVISION]"``: a Hugging Face dataset, streamed (needs ``pip install datasets``
  and the network).

Every text is stripped of surrounding whitespace (the newline, the ``\\r`` of CRLF files); blank texts are
skipped. Bytes are decoded as strict UTF-8 (a leading byte-order mark is dropped); undecodable bytes are
an error naming the file, line and byte offset, never replaced. All errors are ``NeurospecError``. See
docs/corpora.md.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from neurospec.data.languages import Language, resolve
from neurospec.util.errors import NeurospecError
from neurospec.util.io import file_fingerprint

__all__ = [
    "Corpus", "HFSource", "KINDS", "SIB_SPLITS", "check_corpus", "corpora_in_directory", "open_corpus",
    "parse_corpus_option", "parse_hf_spec",
]

KINDS = ("text", "ntrex", "sib200", "tsv", "jsonl", "hf")
SIB_SPLITS = ("train", "dev", "test")
HF_PREFIX = "hf:"
DIRECTORY_EXTENSIONS = (".txt", ".jsonl", ".tsv", ".txt.gz", ".jsonl.gz", ".tsv.gz")
_NTREX_RE = re.compile(r"^newstest2019-(src|ref)\.(.+)\.txt$")
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = {"1", "on", "yes", "true"}


# ----------------------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HFSource:
    """A Hugging Face dataset to stream: ``hf:NAME[:CONFIG][@SPLIT][#REVISION]``."""

    name: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None

    @property
    def source(self) -> str:
        """``hf:name/config/split`` (the config left out when there is none)."""
        parts = [self.name] + ([self.config] if self.config else []) + [self.split]
        return HF_PREFIX + "/".join(parts)

    @property
    def spec(self) -> str:
        """The ``hf:`` string this source parses from."""
        config = f":{self.config}" if self.config else ""
        revision = f"#{self.revision}" if self.revision else ""
        return f"{HF_PREFIX}{self.name}{config}@{self.split}{revision}"


@dataclass(frozen=True)
class Corpus:
    """The texts of one language from one source; build it with :func:`open_corpus`.

    language    canonical key (``resolve(...).key``, e.g. ``fra_Latn``)
    source      human-readable origin: the file or folder, or ``hf:name/config/split``
    kind        ``text``, ``ntrex``, ``sib200``, ``tsv``, ``jsonl`` or ``hf``
    files       the files read, in order (empty for ``hf``)
    text_field  JSONL field / TSV column / dataset column holding the text
    split       SIB-200 split (None: all present) or dataset split
    hf          the dataset, for ``kind == "hf"``
    """

    language: str
    source: str
    kind: str
    files: tuple[Path, ...] = ()
    text_field: str = "text"
    split: str | None = None
    hf: HFSource | None = None

    def texts(self) -> Iterator[str]:
        """A fresh iterator over the non-blank texts in corpus order; streams, one line or record at a time."""
        if self.kind == "hf":
            return _nonempty(self, _hf_texts(self))
        for path in self.files:
            _require_file(path, self.language)
        return _nonempty(self, _file_texts(self))

    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the file bytes (several files: of their names and hashes), or ``hf:name/config/split[#rev]``."""
        if self.kind == "hf":
            assert self.hf is not None
            return self.hf.source + (f"#{self.hf.revision}" if self.hf.revision else "")
        for path in self.files:
            _require_file(path, self.language)
        if len(self.files) == 1:
            return file_fingerprint(self.files[0])
        lines = "".join(f"{path.name}\t{file_fingerprint(path)}\n" for path in self.files)
        return "sha256:" + hashlib.sha256(lines.encode("utf-8")).hexdigest()

    def describe(self) -> dict[str, Any]:
        """JSON-able record of where the texts came from (for ``stats.json``)."""
        info: dict[str, Any] = {"language": self.language, "source": self.source, "kind": self.kind,
                                "fingerprint": self.fingerprint()}
        if self.kind in ("jsonl", "tsv", "sib200", "hf"):
            info["text_field"] = self.text_field
        if self.kind in ("sib200", "hf"):
            info["split"] = self.split if self.split else "all"
        if len(self.files) > 1:
            info["files"] = [str(path) for path in self.files]
        if self.hf is not None:
            info["hf"] = {"name": self.hf.name, "config": self.hf.config, "split": self.hf.split,
                          "revision": self.hf.revision}
        return info


# ----------------------------------------------------------------------------------------------------------
# Opening
# ----------------------------------------------------------------------------------------------------------

def open_corpus(language: str | Language, path: str | Path, *, text_field: str = "text",
                split: str | None = None) -> Corpus:
    """``open_corpus("fr", "corpora/fr.jsonl")``: the corpus of ``language`` at ``path`` (format detected).

    ``path`` is a file, an NTREX-128 or SIB-200 folder (or the data set's name, ``ntrex128`` or ``flores``),
    a folder of ``<language>.<ext>`` files, or a string
    ``"hf:NAME[:CONFIG][@SPLIT][#REVISION]"``. ``text_field`` names the JSONL field / TSV column / dataset
    column; ``split`` the SIB-200 split (train, dev, test; default all) or the dataset split.
    Nothing is read yet beyond the folder listing: :func:`check_corpus` validates the content.
    """
    key = resolve(language).key
    if not text_field:
        raise NeurospecError(f"corpus {path}: text_field is empty; name the field holding the text, such as 'text'.")
    if isinstance(path, str) and path.startswith(HF_PREFIX):
        return _open_hf(key, path, text_field, split)
    target = local_or_dataset(path)
    if not target.exists():
        raise NeurospecError(f"corpus for {key}: {target} does not exist; check the path (a file, an NTREX-128 or "
                             f"SIB-200 folder, a data set such as ntrex128 or flores, or 'hf:NAME[:CONFIG][@SPLIT]').")
    if target.is_dir():
        return _open_directory(key, target, text_field, split)
    return _open_file(key, target, text_field, split)


def parse_corpus_option(value: str, **kw: Any) -> Corpus:
    """``parse_corpus_option("fr=corpora/fr.txt")``: a ``--corpus LANGUAGE=PATH`` value as a :class:`Corpus`.

    Keyword arguments (``text_field``, ``split``) go to :func:`open_corpus`.
    """
    example = "fr=corpora/fr.txt or fr=hf:wikimedia/wikipedia:20231101.fr@train"
    if "=" not in value:
        raise NeurospecError(f"--corpus {value!r} has no '=': write LANGUAGE=PATH, such as {example}.")
    language, _, path = (part.strip() for part in value.partition("="))
    if not language or not path:
        missing = "language" if not language else "path"
        raise NeurospecError(f"--corpus {value!r} has no {missing}: write LANGUAGE=PATH, such as {example}.")
    try:
        language_key = resolve(language).key
    except NeurospecError as err:
        raise NeurospecError(f"--corpus {value!r}: {err}") from err
    return open_corpus(language_key, path, **kw)


def corpora_in_directory(directory: str | Path, languages: Iterable[str | Language] | None = None,
                         **kw: Any) -> list[Corpus]:
    """``corpora_in_directory("corpora/")``: one :class:`Corpus` per language found in ``directory``.

    ``directory`` holds files ``<language>.<ext>`` (ext ``txt``, ``jsonl``, ``tsv``, optionally ``.gz``) whose
    stem resolves as a language (``fr.txt``, ``fra_Latn.jsonl``, ``French.tsv``), or is itself an NTREX-128
    or SIB-200 folder. ``languages`` keeps those languages, in that order (each must be present); by
    default all found, sorted by key. Keyword arguments go to :func:`open_corpus`.
    """
    folder = _existing_directory(directory)
    wanted = None if languages is None else [resolve(language).key for language in languages]
    if _is_ntrex_directory(folder) or _is_sib_directory(folder):
        found = _layout_languages(folder)
        keys = wanted if wanted is not None else sorted(found)
        return [open_corpus(key, folder, **kw) for key in keys]
    files, unresolved = _language_files(folder)
    if not files:
        raise NeurospecError(_no_language_message(folder, unresolved))
    if wanted is None:
        return [open_corpus(key, files[key], **kw) for key in sorted(files)]
    missing = [key for key in wanted if key not in files]
    if missing:
        raise NeurospecError(f"{folder} has no corpus file for {', '.join(missing)}; it holds "
                             f"{', '.join(sorted(files))}. Add <language>.txt (or .jsonl, .tsv) or drop the language.")
    return [open_corpus(key, files[key], **kw) for key in wanted]


def check_corpus(corpus: Corpus) -> None:
    """Read ``corpus`` once, fully: it must exist, be readable, decode as strict UTF-8, parse, and hold text.

    Raises ``NeurospecError`` naming the file, line and fix. A Hugging Face corpus is checked up to its
    first text (streaming a whole dataset is not a check).
    """
    texts = corpus.texts()
    if corpus.kind == "hf":
        next(texts)
        return
    for _ in texts:
        pass


# ----------------------------------------------------------------------------------------------------------
# Opening: files and folders
# ----------------------------------------------------------------------------------------------------------

def _open_file(key: str, path: Path, text_field: str, split: str | None) -> Corpus:
    kind = _file_kind(path)
    if split is not None:
        raise NeurospecError(f"corpus {path}: split={split!r} applies only to SIB-200 folders and hf: datasets; "
                             f"drop it, or point at the SIB-200 folder.")
    return Corpus(language=key, source=str(path), kind=kind, files=(path,), text_field=text_field)


def _file_kind(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".tsv"):
        return "tsv"
    return "text"


def _open_directory(key: str, folder: Path, text_field: str, split: str | None) -> Corpus:
    if _is_ntrex_directory(folder):
        if split is not None:
            raise NeurospecError(f"corpus {folder}: NTREX-128 has no splits (split={split!r}); drop split.")
        return _open_ntrex(key, folder)
    if _is_sib_directory(folder):
        return _open_sib(key, folder / _flores_code(key, folder), text_field, split)
    if _is_sib_language_directory(folder):
        _check_folder_language(key, folder)
        return _open_sib(key, folder, text_field, split)
    files, _ = _language_files(folder)
    if key in files:
        return open_corpus(key, files[key], text_field=text_field, split=split)
    if files:
        raise NeurospecError(f"{folder} has no corpus file for {key}; it holds {', '.join(sorted(files))}. "
                             f"Add {key}.txt (or .jsonl, .tsv) there, or point at the file.")
    raise NeurospecError(f"{folder} is not a corpus folder: it is no NTREX-128 folder (newstest2019-*.txt), no "
                         f"SIB-200 folder (<flores code>/{{train,dev,test}}.tsv) and holds no <language>.txt, "
                         f".jsonl or .tsv file. Point at a file or at such a folder.")


def _open_ntrex(key: str, folder: Path) -> Corpus:
    lang = resolve(key)
    if not lang.ntrex:
        raise NeurospecError(f"NTREX-128 has no {lang.name} ({key}); use another corpus for it.")
    kind = "src" if lang.ntrex == "eng" else "ref"
    path = folder / f"newstest2019-{kind}.{lang.ntrex}.txt"
    if not path.is_file():
        held = ", ".join(sorted(_layout_languages(folder))) or "none"
        raise NeurospecError(f"NTREX-128 folder {folder} lacks {lang.name} ({key}): no {path.name}. It holds {held}; "
                             f"copy the file from the NTREX-128 repository or use another corpus.")
    return Corpus(language=key, source=str(path), kind="ntrex", files=(path,))


def _flores_code(key: str, folder: Path) -> str:
    lang = resolve(key)
    if not lang.flores200:
        raise NeurospecError(f"FLORES-200 / SIB-200 has no {lang.name} ({key}); use another corpus for it.")
    if not (folder / lang.flores200).is_dir():
        held = ", ".join(sorted(_layout_languages(folder))) or "none"
        raise NeurospecError(f"SIB-200 folder {folder} lacks {lang.name} ({key}): no {lang.flores200}/ folder. "
                             f"It holds {held}; copy data/annotated/{lang.flores200}/ from SIB-200 or use another corpus.")
    return lang.flores200


def _check_folder_language(key: str, folder: Path) -> None:
    try:
        named = resolve(folder.name).key
    except NeurospecError:
        return
    if named != key:
        raise NeurospecError(f"SIB-200 folder {folder} holds {named}, not {key}; point at {folder.parent / key} "
                             f"or name the language {named}.")


def _open_sib(key: str, folder: Path, text_field: str, split: str | None) -> Corpus:
    if split is not None and split not in SIB_SPLITS:
        raise NeurospecError(f"unknown SIB-200 split {split!r} for {folder}: use train, dev or test "
                             f"(or no split for all three).")
    names = (split,) if split else SIB_SPLITS
    files = tuple(folder / f"{name}.tsv" for name in names if (folder / f"{name}.tsv").is_file())
    if not files:
        raise NeurospecError(f"SIB-200 folder {folder} has no {' / '.join(f'{n}.tsv' for n in names)}; "
                             f"choose a split it has, or copy the split files.")
    return Corpus(language=key, source=str(folder), kind="sib200", files=files, text_field=text_field, split=split)


def _is_ntrex_directory(folder: Path) -> bool:
    return any(_NTREX_RE.match(path.name) for path in folder.iterdir() if path.is_file())


def _is_sib_language_directory(folder: Path) -> bool:
    return any((folder / f"{name}.tsv").is_file() for name in SIB_SPLITS)


def _is_sib_directory(folder: Path) -> bool:
    return any(sub.is_dir() and _is_sib_language_directory(sub) for sub in folder.iterdir())


def _layout_languages(folder: Path) -> dict[str, str]:
    """Languages of an NTREX-128 or SIB-200 folder: key -> file or folder name (unknown codes left out)."""
    if _is_ntrex_directory(folder):
        names = {path.name: match.group(2) for path in folder.iterdir()
                 if (match := _NTREX_RE.match(path.name)) and path.is_file()}
    else:
        names = {sub.name: sub.name for sub in folder.iterdir() if sub.is_dir() and _is_sib_language_directory(sub)}
    found: dict[str, str] = {}
    for name, code in sorted(names.items()):
        key = _try_resolve(code)
        if key:
            found.setdefault(key, name)
    return found


def _language_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Files ``<language>.<ext>`` of ``folder``: key -> path, and the names whose stem does not resolve."""
    found: dict[str, Path] = {}
    unresolved: list[str] = []
    for path in sorted(folder.iterdir()):
        stem = _corpus_stem(path)
        if stem is None:
            continue
        key = _try_resolve(stem)
        if key is None:
            unresolved.append(path.name)
        elif key in found:
            raise NeurospecError(f"{folder} holds two corpora for {key}: {found[key].name} and {path.name}; "
                                 f"remove or rename one of them.")
        else:
            found[key] = path
    return found, unresolved


def _corpus_stem(path: Path) -> str | None:
    if path.name.startswith(".") or not path.is_file():
        return None
    lower = path.name.lower()
    for extension in DIRECTORY_EXTENSIONS:
        if lower.endswith(extension) and len(lower) > len(extension):
            return path.name[: -len(extension)]
    return None


def _no_language_message(folder: Path, unresolved: list[str]) -> str:
    fix = ("Name each file <language>.txt (or .jsonl, .tsv) with a code neurospec.data.languages.resolve() knows, "
           "such as fr.txt or fra_Latn.jsonl; or point at an NTREX-128 or SIB-200 folder.")
    if unresolved:
        return f"{folder}: no file name is a known language ({', '.join(unresolved)}). {fix}"
    return f"{folder} holds no corpus files. {fix}"


def local_or_dataset(path: str | Path) -> Path:
    """``path`` itself when it exists; else, when it names a registered data set (``ntrex128``, ``flores``),
    that data set's folder (:func:`neurospec.data.locate.locate`); else ``path`` (for the caller's error)."""
    target = Path(path).expanduser()
    if target.exists():
        return target
    from neurospec.data.locate import locate
    from neurospec.data.registry import dataset_named

    name = dataset_named(str(path))
    return locate(name) if name is not None else target


def _existing_directory(directory: str | Path) -> Path:
    folder = local_or_dataset(directory)
    if not folder.exists():
        raise NeurospecError(f"corpus folder {folder} does not exist; check the path.")
    if not folder.is_dir():
        raise NeurospecError(f"{folder} is a file, not a folder; open it with open_corpus(language, path) "
                             f"or --corpus LANGUAGE={folder}.")
    return folder


def _try_resolve(name: str) -> str | None:
    try:
        return resolve(name).key
    except NeurospecError:
        return None


def _require_file(path: Path, key: str) -> None:
    if not path.exists():
        raise NeurospecError(f"corpus for {key}: {path} does not exist (any more); check the path.")
    if not path.is_file():
        raise NeurospecError(f"corpus for {key}: {path} is not a file; point at a file.")
    if not os.access(path, os.R_OK):
        raise NeurospecError(f"corpus for {key}: {path} is not readable; check its permissions.")


# ----------------------------------------------------------------------------------------------------------
# Reading files
# ----------------------------------------------------------------------------------------------------------

def _nonempty(corpus: Corpus, texts: Iterator[str]) -> Iterator[str]:
    """Yield ``texts``; a source without a single text is an error rather than a silent empty corpus."""
    empty = True
    for text in texts:
        empty = False
        yield text
    if empty:
        where = corpus.source if corpus.kind == "hf" else ", ".join(str(path) for path in corpus.files)
        raise NeurospecError(f"corpus for {corpus.language}: {where} has no text (empty, or only blank lines or "
                             f"blank {corpus.text_field!r} values); give a corpus with text.")


def _file_texts(corpus: Corpus) -> Iterator[str]:
    for path in corpus.files:
        if corpus.kind in ("text", "ntrex"):
            yield from _plain_texts(path)
        elif corpus.kind in ("tsv", "sib200"):
            yield from _tsv_texts(path, corpus.text_field)
        elif corpus.kind == "jsonl":
            yield from _jsonl_texts(path, corpus.text_field)
        else:
            raise NeurospecError(f"unknown corpus kind {corpus.kind!r}; use one of {', '.join(KINDS)}.")


def _open_binary(path: Path) -> IO[bytes]:
    try:
        return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    except OSError as err:
        raise NeurospecError(f"cannot read corpus file {path}: {err}; check the path and its permissions.") from err


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, decoded line without its line break), strict UTF-8, one line at a time."""
    offset = 0
    with _open_binary(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                yield number, _decode(raw, path, number, offset)
                offset += len(raw)
        except (OSError, EOFError) as err:  # gzip: truncated or corrupt data
            raise NeurospecError(f"cannot read corpus file {path} after byte {offset}: {err}; "
                                 f"re-create or re-download the file.") from err


def _decode(raw: bytes, path: Path, number: int, offset: int) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        where = offset + err.start
        bad = raw[err.start:err.end]
        packed = " (uncompressed)" if path.name.lower().endswith(".gz") else ""
        raise NeurospecError(
            f"{path}: line {number} is not valid UTF-8 at byte offset {where}{packed} (bytes {bad!r}); "
            f"re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8 in > out.") from None
    if number == 1 and text.startswith("\ufeff"):
        text = text[1:]
    return text.rstrip("\r\n")


def _plain_texts(path: Path) -> Iterator[str]:
    for _, line in _lines(path):
        text = line.strip()
        if text:
            yield text


def _tsv_texts(path: Path, column: str) -> Iterator[str]:
    """Rows of a tab-separated file with a header; no quoting (as ``csv`` with ``QUOTE_NONE`` reads it)."""
    position: int | None = None
    width = 0
    for number, line in _lines(path):
        if not line.strip():
            continue
        cells = line.split("\t")
        if position is None:
            position, width = _tsv_column(cells, column, path), len(cells)
            continue
        if len(cells) <= position:
            raise NeurospecError(f"{path}: line {number} has {len(cells)} tab-separated fields, the header "
                                 f"{width}; no {column!r} value. Fix the row (tabs inside text are not allowed).")
        text = cells[position].strip()
        if text:
            yield text


def _tsv_column(header: list[str], column: str, path: Path) -> int:
    names = [name.strip() for name in header]
    if column not in names:
        raise NeurospecError(f"{path}: the header has no {column!r} column (columns: {', '.join(names)}); "
                             f"add a header line with a {column!r} column, or pass text_field= (--text-field) "
                             f"naming the text column.")
    return names.index(column)


def _jsonl_texts(path: Path, field: str) -> Iterator[str]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise NeurospecError(f"{path}: line {number} is not JSON ({err.msg} at column {err.colno}); "
                                 f"write one JSON object per line, such as {{\"{field}\": \"...\"}}.") from None
        yield from _record_text(record, field, f"{path}: line {number}")


def _record_text(record: Any, field: str, where: str) -> Iterator[str]:
    if not isinstance(record, dict):
        raise NeurospecError(f"{where} is a JSON {type(record).__name__}, not an object; "
                             f"write one object per line, such as {{\"{field}\": \"...\"}}.")
    if field not in record:
        fields = ", ".join(map(str, record)) or "none"
        raise NeurospecError(f"{where} has no field {field!r} (fields: {fields}); pass text_field= "
                             f"(--text-field) naming the field that holds the text.")
    value = record[field]
    if not isinstance(value, str):
        raise NeurospecError(f"{where}: field {field!r} is {type(value).__name__}, not a string; "
                             f"store the text as a string or name another field with text_field=.")
    text = value.strip()
    if text:
        yield text


# ----------------------------------------------------------------------------------------------------------
# Hugging Face datasets
# ----------------------------------------------------------------------------------------------------------

def parse_hf_spec(spec: str, split: str | None = None) -> HFSource:
    """``parse_hf_spec("hf:wikimedia/wikipedia:20231101.fr@train")`` -> ``HFSource(name, config, split, revision)``.

    ``split`` (the keyword) is used when the spec names none; the default split is ``train``.
    """
    example = "hf:wikimedia/wikipedia:20231101.fr@train"
    if not spec.startswith(HF_PREFIX):
        raise NeurospecError(f"{spec!r} is not a Hugging Face source; write hf:NAME[:CONFIG][@SPLIT], such as {example}.")
    rest, _, revision = spec[len(HF_PREFIX):].partition("#")
    rest, at, spec_split = rest.partition("@")
    name, _, config = rest.partition(":")
    bad = (not name.strip() or (at and not spec_split.strip()) or ("#" in spec and not revision.strip())
           or (":" in rest and not config.strip()) or any(ch.isspace() for ch in spec))
    if bad:
        raise NeurospecError(f"cannot parse Hugging Face source {spec!r}: write hf:NAME[:CONFIG][@SPLIT][#REVISION] "
                             f"without spaces or empty parts, such as {example}.")
    if spec_split and split and spec_split != split:
        raise NeurospecError(f"{spec!r} names split {spec_split!r} but split={split!r} was passed too; give one.")
    return HFSource(name=name, config=config or None, split=spec_split or split or "train", revision=revision or None)


def _open_hf(key: str, spec: str, text_field: str, split: str | None) -> Corpus:
    hf = parse_hf_spec(spec, split)
    return Corpus(language=key, source=hf.source, kind="hf", text_field=text_field, split=hf.split, hf=hf)


def _load_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise NeurospecError("Hugging Face corpora (hf:...) need the optional 'datasets' package: "
                             "pip install datasets. Or give a local file instead.") from None
    return datasets


def _offline_variable() -> str | None:
    for variable in _OFFLINE_VARIABLES:
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return variable
    return None


def _hf_texts(corpus: Corpus) -> Iterator[str]:
    """Stream the dataset; raises at once (not at the first ``next``) when it cannot be opened."""
    hf = corpus.hf
    assert hf is not None
    datasets = _load_datasets()
    variable = _offline_variable()
    if variable:
        raise NeurospecError(f"{hf.spec} streams from the Hugging Face Hub, but {variable} is set (offline); unset "
                             f"{variable} to go online, or download the texts and pass a local file.")
    try:
        stream = datasets.load_dataset(hf.name, hf.config, split=hf.split, streaming=True, revision=hf.revision)
    except Exception as err:  # network, unknown dataset/config/split: all reported the same way
        raise NeurospecError(f"cannot open {hf.spec}: {type(err).__name__}: {err}. Check the dataset name, config "
                             f"and split on huggingface.co, and the network.") from err
    return _hf_records(stream, hf, corpus.text_field)


def _hf_records(stream: Iterable[Any], hf: HFSource, field: str) -> Iterator[str]:
    records = iter(stream)
    number = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except Exception as err:  # a dropped connection mid-stream, a broken shard
            raise NeurospecError(f"streaming {hf.spec} failed after {number} records: {type(err).__name__}: "
                                 f"{err}. Check the network and retry, or use a local copy.") from err
        number += 1
        yield from _record_text(record, field, f"{hf.spec}: record {number}")
