"""The values a study config gives that are known only once the run starts: a step's output, the model.

    Reference("collect", sub="stats.json")       # $collect/stats.json
    Model("toy", "small", line=3)                # model: toy:small
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """``$step``, ``$step.companion`` or ``$step/sub``: a path inside the run folder, known once it runs."""

    step: str
    companion: str | None = None
    sub: str | None = None


@dataclass(frozen=True)
class Model:
    """The model every step uses: ``kind`` is hub, local (a folder or .gguf file), builtin or toy."""

    kind: str
    value: str                  # hub id, absolute folder or file, built-in name, or toy recipe name
    line: int

    @property
    def label(self) -> str:
        return f"toy:{self.value}" if self.kind == "toy" else self.value
