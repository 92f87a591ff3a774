"""The one multiple-choice item type every benchmark loader produces.

    from neurospec.data.items import MCItem
    item = MCItem("The man broke his toe because", ("he dropped a hammer.", "he ate a pear."), gold=0,
                  group="eng_Latn", id="xcopa-et-1", metadata={"question": "cause"})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from neurospec.util.errors import NeurospecError


@dataclass(frozen=True)
class MCItem:
    """A question (or context), its options, the index of the gold option, a group and free metadata.

    ``group`` is what results are split by: a language, a country. ``metadata`` holds what a
    loader or scorer needs beyond that (a template id, per-option contexts for partial scoring).
    """

    question: str
    options: tuple[str, ...]
    gold: int
    group: str | None = None
    id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if len(self.options) < 2:
            raise NeurospecError(f"item {self.id or self.question[:40]!r} has {len(self.options)} option(s); needs 2+")
        if not 0 <= self.gold < len(self.options):
            raise NeurospecError(
                f"item {self.id or self.question[:40]!r}: gold index {self.gold} is outside its "
                f"{len(self.options)} options"
            )
