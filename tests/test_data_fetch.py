"""The data registry and `neurospec data fetch`, offline: a mirror served over HTTP on 127.0.0.1.

Every check is against an independent computation: sha256 recomputed from the bytes, the mirror's own
SHA256SUMS files, and the loaders' items read from the mirror itself.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.data.fetch import MARKER, PARTIAL, fetch
from neurospec.data.locate import locate, mirror_root
from neurospec.data.registry import DATASETS, dataset, dataset_named
from neurospec.evaluate.tasks.xcopa import load_xcopa
from neurospec.evaluate.tasks.xwinograd import load_xwinograd
from neurospec.util.errors import NeurospecError
from neurospec.util.locks import exclusive

MIRROR = mirror_root()
needs_mirror = pytest.mark.skipif(MIRROR is None or not (MIRROR / "xcopa").is_dir(),
                                  reason="the data mirror (NEUROSPEC_DATA, set in tests/conftest.py) is absent")
SERVED = ("xcopa", "xwinograd", "countryrc")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, honours ``Range: bytes=N-`` (as GitHub's raw server does) and can cut a file short."""

    cut: dict[str, int] = {}          # URL path -> bytes to send before dropping the connection
    slow = False                      # send in small pieces with pauses (a download that takes seconds)
    served_bytes = 0

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match:
            start = int(match[1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.cut:
            body = body[: self.cut[self.path]]
        type(self).served_bytes += len(body)
        if not self.slow:
            self.wfile.write(body)
            return
        for start in range(0, len(body), 16384):
            self.wfile.write(body[start:start + 16384])
            time.sleep(0.02)


@pytest.fixture
def server(tmp_path):
    """(base URL, served folder): copies of a few small data sets, served on an ephemeral port."""
    root = tmp_path / "served"
    for name in SERVED:
        shutil.copytree(MIRROR / dataset(name).folder, root / dataset(name).folder)
    _Handler.cut, _Handler.served_bytes, _Handler.slow = {}, 0, False
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mirror_sums(folder: Path) -> dict[str, str]:
    lines = (folder / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    return {name.strip().removeprefix("./"): digest for digest, name in (line.split(maxsplit=1) for line in lines)}


@needs_mirror
@pytest.mark.parametrize("name", [n for n, d in DATASETS.items() if d.source == "github"])
def test_the_registry_lists_every_file_of_the_mirror_with_its_checksum(name):
    entry = dataset(name)
    folder = MIRROR / entry.folder
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
               if p.is_file() and p.name not in ("SOURCE.md", "SHA256SUMS")}
    assert set(entry.files) == on_disk
    sums = _mirror_sums(folder) if (folder / "SHA256SUMS").exists() else {}
    for local, expected in entry.files.items():
        if local in sums:  # the mirror's own record, made when it was copied
            assert expected.sha256 == sums[local]
        assert expected.size == (folder / local).stat().st_size
    assert entry.files[next(iter(entry.files))].sha256 == _sha(folder / next(iter(entry.files)))


def test_public_sources_are_pinned_to_commits():
    for entry in DATASETS.values():
        assert re.fullmatch(r"[0-9a-f]{40}", entry.revision), entry.name
        assert entry.license and entry.citation
        if entry.source == "github":
            url = entry.url_of(next(iter(entry.files)))
            assert url.startswith(f"https://raw.githubusercontent.com/{entry.repo}/{entry.revision}/"), url
    assert dataset("ntrex128").url_of("newstest2019-ref.deu.txt").endswith("/NTREX-128/newstest2019-ref.deu.txt")
    assert dataset("ntrex128").url_of("LANGUAGES.tsv").endswith(f"{dataset('ntrex128').revision}/LANGUAGES.tsv")
    assert dataset("flores").url_of("labels.txt").endswith("/data/annotated/eng_Latn/labels.txt")
    assert dataset("flores").url_of("deu_Latn/dev.tsv").endswith("/data/annotated/deu_Latn/dev.tsv")
    assert dataset("mrpc").noncommercial and dataset_named("blend-control") == "blend"


@needs_mirror
def test_fetch_verifies_every_file_and_a_second_fetch_downloads_nothing(server, tmp_path):
    url, _ = server
    report = fetch("xcopa", cache=tmp_path / "cache", base_url=url)
    folder = tmp_path / "cache" / "xcopa"
    assert sorted(report.downloaded) == sorted(dataset("xcopa").files) and report.kept == []
    for local, expected in dataset("xcopa").files.items():
        assert _sha(folder / local) == expected.sha256 == _sha(MIRROR / "xcopa" / local)
    assert (folder / MARKER).is_file() and not (folder / PARTIAL).exists()
    served = _Handler.served_bytes
    again = fetch("xcopa", cache=tmp_path / "cache", base_url=url)
    assert again.downloaded == [] and len(again.kept) == len(dataset("xcopa").files)
    assert _Handler.served_bytes == served


@needs_mirror
def test_loaders_read_the_fetched_copy_exactly_as_the_mirror(server, tmp_path, monkeypatch):
    url, _ = server
    for name in ("xcopa", "xwinograd"):
        fetch(name, cache=tmp_path / "cache" / "data", base_url=url)
    from_mirror = (load_xcopa("zh", "test"), load_xwinograd("ru"))
    monkeypatch.delenv("NEUROSPEC_DATA")
    monkeypatch.setenv("NEUROSPEC_CACHE", str(tmp_path / "cache"))
    assert locate("xcopa") == tmp_path / "cache" / "data" / "xcopa"
    assert (load_xcopa("zh", "test"), load_xwinograd("ru")) == from_mirror
    assert len(from_mirror[0]) == 500


@needs_mirror
def test_a_tampered_file_is_refused_and_not_kept(server, tmp_path):
    url, root = server
    target = root / "xwinograd" / "dataset.tsv"
    original = target.read_bytes()
    target.write_bytes(original.replace(b"en\t", b"fr\t", 1))     # one schema relabelled, same size
    assert target.read_bytes() != original
    with pytest.raises(NeurospecError, match=r"sha256 [0-9a-f]{64} is not the registry's .*not kept"):
        fetch("xwinograd", cache=tmp_path / "cache", base_url=url)
    folder = tmp_path / "cache" / "xwinograd"
    assert not (folder / "dataset.tsv").exists() and not (folder / MARKER).exists()
    assert not list((folder / PARTIAL).rglob("*.part"))


@needs_mirror
def test_a_download_cut_midway_resumes_where_it_stopped(server, tmp_path):
    url, _ = server
    size = dataset("xwinograd").files["dataset.tsv"].size
    _Handler.cut["/xwinograd/dataset.tsv"] = size // 3
    with pytest.raises(NeurospecError, match="could not download .*run the same fetch again to resume"):
        fetch("xwinograd", cache=tmp_path / "cache", base_url=url)
    folder = tmp_path / "cache" / "xwinograd"
    assert not (folder / "dataset.tsv").exists() and not (folder / MARKER).exists()
    assert (folder / PARTIAL / "dataset.tsv.part").stat().st_size == size // 3
    _Handler.cut.clear()
    report = fetch("xwinograd", cache=tmp_path / "cache", base_url=url)
    assert report.bytes == size - size // 3          # only the rest came over the wire
    assert _sha(folder / "dataset.tsv") == dataset("xwinograd").files["dataset.tsv"].sha256


@needs_mirror
def test_a_fetch_killed_midway_is_finished_by_the_next(server, tmp_path):
    """A real `neurospec data fetch` process, killed (SIGKILL) while it downloads: nothing sits under the
    final name, and the next fetch completes and verifies the file."""
    url, _ = server
    _Handler.slow = True                      # about 2.5 s for the 2 MB file
    env = {**os.environ, "NEUROSPEC_CACHE": str(tmp_path / "cache"), "NEUROSPEC_DATA": str(tmp_path / "none")}
    process = subprocess.Popen([sys.executable, "-m", "neurospec.cli.main", "data", "fetch", "xwinograd", "--base-url",
                                url, "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "cache" / "data" / "xwinograd"
    part = folder / PARTIAL / "dataset.tsv.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert part.exists() and 0 < part.stat().st_size < dataset("xwinograd").files["dataset.tsv"].size
    assert not (folder / "dataset.tsv").exists() and not (folder / MARKER).exists()
    _Handler.slow = False
    report = fetch("xwinograd", cache=tmp_path / "cache" / "data", base_url=url)
    assert report.downloaded == ["dataset.tsv"] and not (folder / PARTIAL).exists()
    assert _sha(folder / "dataset.tsv") == dataset("xwinograd").files["dataset.tsv"].sha256


def test_nothing_here_names_the_data_set_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSPEC_DATA", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("NEUROSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NEUROSPEC_FETCH", raising=False)
    with pytest.raises(NeurospecError, match=r"data set 'blend' is not here .*run `neurospec data fetch blend`"):
        locate("blend")
    with pytest.raises(NeurospecError, match=r"unknown data set 'blnd'"):
        locate("blnd")
    with pytest.raises(NeurospecError, match=r"worldvaluesbench cannot be downloaded .*github.com/Demon702/WorldValuesBench"):
        fetch("worldvaluesbench", cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


@needs_mirror
def test_cli_lists_and_fetches(server, tmp_path, monkeypatch):
    url, _ = server
    monkeypatch.setenv("NEUROSPEC_DATA", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("NEUROSPEC_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    listed = runner.invoke(app, ["data", "list"], terminal_width=200)
    assert listed.exit_code == 0
    assert re.search(r"mrpc .*MSR-SSLA \(non-commercial\)", listed.output)
    assert re.search(r"xcopa .*CC BY 4.0 .*-", listed.output)
    fetched = runner.invoke(app, ["data", "fetch", "countryrc", "xcopa", "--base-url", url], terminal_width=200)
    assert fetched.exit_code == 0, fetched.output
    assert "xcopa: 22 downloaded" in fetched.output
    assert re.search(r"xcopa .*cache", runner.invoke(app, ["data", "list"], terminal_width=200).output)
    missing = runner.invoke(app, ["data", "fetch", "blend", "--base-url", url], terminal_width=200)
    assert missing.exit_code == 2 and "could not download" in missing.output
    assert not (tmp_path / "cache" / "data" / "blend" / MARKER).exists()


def test_a_locked_folder_names_its_holder(tmp_path):
    with exclusive(tmp_path / "run", "first"):
        with pytest.raises(NeurospecError, match=r"in use by pid \d+ \(second\)"):
            with exclusive(tmp_path / "run", "second"):
                pass
    with exclusive(tmp_path / "run", "third"):  # released: free again
        pass
