"""Neuron files of every format: neurospec's JSON, the LAPE reference's ``.pth`` lists, the culture paper's lists.

    from neurospec.neurons.formats import load_neuron_file
    neurons = load_neuron_file("lape.json")                               # any JSON neuron file
    neurons = load_neuron_file("x.neuron.pth", groups=["en", "zh"])      # LAPE reference lists, in order

Each format lives in its own module (``culture`` for the culture paper's lists); the LAPE ``.pth`` form is
:meth:`NeuronSet.from_lape` / :meth:`NeuronSet.to_lape`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from neurospec.core.sites import ModelShape
from neurospec.neurons.formats.culture import is_culnig_document, load_culnig
from neurospec.neurons.neuron_set import NeuronSet, PathLike
from neurospec.util.errors import NeurospecError

__all__ = ["is_json_file", "load_neuron_file"]



def is_json_file(path: PathLike) -> bool:
    """``is_json_file("a.json")``: True when the file's first non-blank byte is ``{`` (else e.g. a torch zip)."""
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")


def load_neuron_file(
    path: PathLike,
    *,
    groups: Sequence[str] | None = None,
    site: str = "act",
    shape: ModelShape | Any | None = None,
) -> NeuronSet:
    """``load_neuron_file("x.json")`` or ``load_neuron_file("x.neuron.pth", groups=["en", "zh"])``.

    JSON neuron files are recognised by content (neurospec's own, or a CULNIG ``top_neurons`` list,
    see :mod:`neurospec.neurons.formats.culture`); anything else is read as a LAPE ``.pth`` file, which needs ``groups``
    (it stores no names).
    """
    path = Path(path)
    if not path.is_file():
        raise NeurospecError(f"neuron file '{path}' does not exist; check the path.")
    if is_json_file(path):
        try:
            culnig = is_culnig_document(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError):
            culnig = False  # NeuronSet.load reports what is wrong with the file
        if culnig:
            return load_culnig(path, groups=groups, shape=shape)
        return NeuronSet.load(path, shape=shape)
    if not groups:
        raise NeurospecError(
            f"'{path}' is not a JSON neuron file; if it is a LAPE .pth file, name its lists in order "
            "(e.g. --groups en,zh,fr,es,vi,id,ja)."
        )
    return NeuronSet.from_lape(path, groups, site=site, shape=shape)
