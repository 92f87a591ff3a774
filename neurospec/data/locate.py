"""Where a data set is read from, by name.

    from neurospec.data.locate import locate
    folder = locate("blend")                  # NEUROSPEC_DATA/blend, else the verified cache, else an error
    folder = locate("blend", "my/blend")      # a folder given explicitly always wins: the data set's own
    folder = locate("blend", "my/data")       # or a data root holding blend/ (as NEUROSPEC_DATA; --data-dir)
    folder = locate("blend", fetch=True)      # download it when it is nowhere here

Order: an explicit path; then ``$NEUROSPEC_DATA/<folder>`` (a mirror with the layout of the cache, which
our machines have); then the cache of ``neurospec data fetch`` (``~/.cache/neurospec/data``, only once a
fetch completed and verified it); then a fetch, when asked for (``fetch=True`` or ``NEUROSPEC_FETCH=1``).
Otherwise the error names the data set and the command that gets it.
"""

from __future__ import annotations

import os
from pathlib import Path

from neurospec.data.fetch import cache_root, fetch, is_complete
from neurospec.data.registry import dataset
from neurospec.util.errors import NeurospecError


def mirror_root() -> Path | None:
    """``$NEUROSPEC_DATA`` as a path, or None when unset."""
    value = os.environ.get("NEUROSPEC_DATA")
    return Path(value).expanduser() if value else None


def where(name: str) -> tuple[str, Path] | None:
    """``("mirror" | "cache", folder)`` where data set ``name`` is present here, or None."""
    entry = dataset(name)
    mirror = mirror_root()
    if mirror is not None and (mirror / entry.folder).exists():
        return "mirror", mirror / entry.folder
    cached = cache_root() / entry.folder
    if is_complete(cached):
        return "cache", cached
    return None


def locate(name: str, explicit: str | os.PathLike | None = None, *, fetch_missing: bool | None = None) -> Path:
    """The folder of data set ``name`` (see the module doc for the order); ``explicit`` must exist."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if (path / dataset(name).folder).is_dir():   # a data root, laid out as NEUROSPEC_DATA
            return path / dataset(name).folder
        if not path.exists():
            raise NeurospecError(f"{name} data not found at {path}; fix the path, or leave it out to use the "
                                 f"{name} data set (neurospec data fetch {dataset(name).name})")
        return path
    entry = dataset(name)
    found = where(name)
    if found is not None:
        return found[1]
    if fetch_missing is None:
        fetch_missing = os.environ.get("NEUROSPEC_FETCH", "").lower() in ("1", "true", "yes")
    if fetch_missing:
        return fetch(entry.name).folder
    mirror = mirror_root()
    looked = f"NEUROSPEC_DATA={mirror} has no {entry.folder}/ and " if mirror is not None else ""
    raise NeurospecError(f"data set {entry.name!r} is not here ({looked}nothing is cached); run `neurospec data "
                         f"fetch {entry.name}`, or set NEUROSPEC_DATA to a folder holding {entry.folder}/")
