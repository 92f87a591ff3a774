"""Write neurospec/data/checksums.json from a verified local mirror of the data (same layout as a fetch).

    python tools/data_checksums.py MIRROR       # a verified local copy, in the cache's layout

Every file of each GitHub data set's folder is hashed (SOURCE.md and SHA256SUMS, the mirror's own
notes, are left out); where the folder has a SHA256SUMS file, each hash must agree with it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neurospec.data.registry import CHECKSUMS, DATASETS  # noqa: E402
from neurospec.util.io import atomic_write_text  # noqa: E402

NOTES = {"SOURCE.md", "SHA256SUMS"}


def listed_sums(folder: Path) -> dict[str, str]:
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        return {}
    pairs = (line.split(maxsplit=1) for line in sums.read_text(encoding="utf-8").splitlines() if line.strip())
    return {name.strip().removeprefix("./"): digest for digest, name in pairs}


def main(mirror: Path) -> None:
    table: dict[str, dict[str, dict]] = {}
    for entry in DATASETS.values():
        if entry.source != "github":
            continue
        folder = mirror / entry.folder
        listed = listed_sums(folder)
        files = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in NOTES):
            local = path.relative_to(folder).as_posix()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if listed and listed.get(local) != digest:
                raise SystemExit(f"{path}: sha256 {digest} disagrees with {folder / 'SHA256SUMS'}")
            files[local] = {"sha256": digest, "size": path.stat().st_size}
        table[entry.name] = files
        print(f"{entry.name:>15}: {len(files)} files, {sum(f['size'] for f in files.values()) / 1e6:.1f} MB")
    atomic_write_text(CHECKSUMS, json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {CHECKSUMS.relative_to(ROOT)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
