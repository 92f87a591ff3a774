"""Content hashes of files and folders, remembered by (size, modification time) in a JSON file.

    hashes = ContentHashes(cache_home() / "file-hashes.json")
    hashes.of(Path("corpora/fr"))        # 'sha256:...' over every file's relative name and bytes
    hashes.save()
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from neurospec.util.io import atomic_write_json, file_fingerprint
from neurospec.util.locks import LOCK_NAME


class ContentHashes:
    """sha256 of files and folders, remembered by (size, mtime) in a JSON file."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._changed = False
        self._known: dict[str, list] = {}
        if path is not None and path.exists():
            try:
                self._known = json.loads(path.read_text())
            except ValueError:   # a damaged cache is only a cache
                self._known = {}

    def _file(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        known = self._known.get(key)
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            return known[2]
        digest = file_fingerprint(path)
        self._known[key] = [stat.st_size, stat.st_mtime_ns, digest]
        self._changed = True
        return digest

    def of(self, path: Path) -> str:
        """The fingerprint of a file, or of a folder (every file below it, by relative name and content)."""
        if path.is_file():
            return self._file(path)
        digest = hashlib.sha256()
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                if name == LOCK_NAME:  # who holds a folder's lock is not its content
                    continue
                file = Path(root) / name
                digest.update(f"{file.relative_to(path).as_posix()}\0{self._file(file)}\n".encode())
        return f"sha256:{digest.hexdigest()}"

    def save(self) -> None:
        if self.path is not None and self._changed:
            atomic_write_json(self.path, self._known)
            self._changed = False
