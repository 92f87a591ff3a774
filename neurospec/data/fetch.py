"""Download a registered data set into the cache, verifying every file's sha256.

    from neurospec.data.fetch import fetch
    report = fetch("xcopa")                      # -> ~/.cache/neurospec/data/xcopa, every file checked
    report.downloaded, report.kept               # files fetched now, files already there and verified
    fetch("xcopa", base_url="http://127.0.0.1:8000")   # from a mirror served over HTTP (same layout)

Each file goes to ``FOLDER/.partial/PATH.part`` first. An interrupted download resumes from where it
stopped (an HTTP range request; a server that ignores ranges sends the whole file again), and only a
file whose sha256 matches the registry is moved under its final name, so nothing half-written or
tampered ever sits there. The folder is locked while a fetch runs; a second fetch waits, then finds
the files in place and downloads nothing. ``.neurospec-data.json`` marks a complete, verified fetch.
Hub data sets (INCLUDE, CulturalBench, NormAd) are downloaded with ``huggingface_hub`` at their pinned
revision.
"""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from neurospec.data.registry import DataSet, dataset
from neurospec.util.errors import NeurospecError
from neurospec.util.io import atomic_write_json, cache_home, file_fingerprint
from neurospec.util.locks import exclusive

MARKER = ".neurospec-data.json"
PARTIAL = ".partial"
CHUNK = 1 << 20


def cache_root() -> Path:
    """``$NEUROSPEC_CACHE/data`` (default ``~/.cache/neurospec/data``)."""
    return cache_home() / "data"


def base_url_default() -> str | None:
    """``$NEUROSPEC_DATA_URL``: a mirror served over HTTP with the layout of the cache, used instead of the
    public sources."""
    return os.environ.get("NEUROSPEC_DATA_URL") or None


@dataclass
class FetchReport:
    name: str
    folder: Path
    downloaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    bytes: int = 0


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a finished fetch (its marker is written last)."""
    return (folder / MARKER).is_file()


def fetch(name: str, *, cache: str | os.PathLike | None = None, base_url: str | None = None,
          progress: Callable[[int], None] | None = None) -> FetchReport:
    """Fetch data set ``name`` into ``cache`` (default :func:`cache_root`); ``progress(n)`` hears each chunk."""
    entry = dataset(name)
    folder = Path(cache) if cache is not None else cache_root()
    folder = folder / entry.folder
    report = FetchReport(entry.name, folder)
    if entry.source == "manual":
        raise NeurospecError(f"{entry.name} cannot be downloaded by neurospec ({entry.terms}): get its files as "
                             f"{entry.homepage} explains, then pass their folder (--data-dir) or put it under "
                             f"NEUROSPEC_DATA as {entry.folder}/")
    with exclusive(folder, f"fetching {entry.name}", wait=True):
        if entry.source == "hub" and not (base_url or base_url_default()):
            _fetch_hub(entry, folder)
        else:
            for local, expected in entry.files.items():
                final = folder / local
                if (final.is_file() and final.stat().st_size == expected.size
                        and file_fingerprint(final) == f"sha256:{expected.sha256}"):
                    report.kept.append(local)
                    if progress:
                        progress(expected.size)
                    continue
                report.bytes += _download(entry, local, folder, base_url or base_url_default(), progress)
                report.downloaded.append(local)
        shutil.rmtree(folder / PARTIAL, ignore_errors=True)
        atomic_write_json(folder / MARKER, {"name": entry.name, "source": entry.source, "repo": entry.repo,
                                            "revision": entry.revision, "files": len(entry.files)})
    return report


def _download(entry: DataSet, local: str, folder: Path, base_url: str | None,
              progress: Callable[[int], None] | None) -> int:
    expected = entry.files[local]
    url = entry.url_of(local, base_url)
    part = folder / PARTIAL / f"{local}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > expected.size:
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = have and response.status == 206
            if progress and resumed:
                progress(have)
            with open(part, "ab" if resumed else "wb") as out:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    received += len(block)
                    if progress:
                        progress(len(block))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", err)
        raise NeurospecError(f"could not download {url} ({reason}); run the same fetch again to resume, or set "
                             f"NEUROSPEC_DATA to a local copy of the data") from None
    if part.stat().st_size < expected.size:  # the connection closed early: keep what came, for a resume
        raise NeurospecError(f"could not download {url} (the connection closed after {part.stat().st_size} of "
                             f"{expected.size} bytes); run the same fetch again to resume")
    digest = file_fingerprint(part).removeprefix("sha256:")
    if digest != expected.sha256:
        part.unlink()
        raise NeurospecError(f"{url}: sha256 {digest} is not the registry's {expected.sha256} for {entry.name}/"
                             f"{local}; the file was not kept (a changed or tampered source; report it if the "
                             f"source is the public one)")
    final = folder / local
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, final)
    return received


def _fetch_hub(entry: DataSet, folder: Path) -> None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a dependency of transformers
        raise NeurospecError("fetching a hub data set needs huggingface_hub: pip install huggingface_hub") from None
    try:
        snapshot_download(entry.repo, repo_type="dataset", revision=entry.revision, local_dir=folder)
    except Exception as err:  # the hub client raises many kinds (offline mode, HTTP, missing revision)
        raise NeurospecError(f"could not download {entry.name} ({entry.repo} at {entry.revision}) from the "
                             f"Hugging Face hub: {str(err).splitlines()[0]}") from None
