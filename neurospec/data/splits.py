"""Training and evaluation items that never overlap.

    from neurospec.data.splits import held_out_split, shared_items
    train, held = held_out_split(qnli_items, seed=0)      # seeded, disjoint halves of one set
    shared_items(train, evaluation_items)                 # [] when no evaluated item was trained on

Items are compared by content (question and options), not by id: two files of one benchmark (GLUE's
train and dev) number their rows independently, so equal ids do not mean equal items, nor the reverse.
"""

from __future__ import annotations

import hashlib
import random
from typing import Sequence

from neurospec.data.items import MCItem


def content_key(item: MCItem) -> str:
    """A digest of the item's question and options: what the model sees of it, whatever its id."""
    text = "\x1e".join([item.question, *item.options])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def held_out_split(items: Sequence[MCItem], *, seed: int) -> tuple[list[MCItem], list[MCItem]]:
    """(training, held out): a seeded shuffle of distinct contents cut in half; items whose content repeats
    go to the same side, so no content is on both. Each side keeps the set's own order."""
    keys = sorted({content_key(item) for item in items})
    random.Random(f"neurospec-split-{seed}").shuffle(keys)
    held_keys = set(keys[: len(keys) // 2])
    train = [item for item in items if content_key(item) not in held_keys]
    held = [item for item in items if content_key(item) in held_keys]
    return train, held


def shared_items(train: Sequence[MCItem], evaluation: Sequence[MCItem]) -> list[MCItem]:
    """The evaluation items whose content is also among the training items."""
    trained = {content_key(item) for item in train}
    return [item for item in evaluation if content_key(item) in trained]


def item_ids(items: Sequence[MCItem]) -> list[str]:
    """Each item's id (its content key where it has none), in order, for the record of a split."""
    return [item.id or content_key(item)[:16] for item in items]


def separate(train_name: str, train: Sequence[MCItem], evaluation: dict[str, list[MCItem]], *, same_source: bool,
             seed: int, allow_overlap: bool = False) -> tuple[list[MCItem], dict[str, list[MCItem]], dict]:
    """Training items and evaluation sets with no item in common, and the record of how they were made.

    When the training set is also evaluated from the same source (``same_source``: no separate training
    file), it is cut by :func:`held_out_split`: training takes one half, its evaluation the other. Any
    other shared item is refused, naming the sets, unless ``allow_overlap``.
    """
    from neurospec.util.errors import NeurospecError

    evaluation = dict(evaluation)
    train = list(train)
    method = "separate sources"
    if same_source and train_name in evaluation:
        train, evaluation[train_name] = held_out_split(train, seed=seed)
        method = f"seeded halves of {train_name} (seed {seed}): training one, its evaluation the other"
    shared = {name: len(shared_items(train, items)) for name, items in evaluation.items()}
    clashes = {name: n for name, n in shared.items() if n}
    if clashes and not allow_overlap:
        listed = ", ".join(f"{name} ({n} of {len(evaluation[name])})" for name, n in clashes.items())
        raise NeurospecError(f"the training items of {train_name} are also evaluation items of {listed}; give "
                             f"a separate training file (--train-path) or leave that set out of --benchmarks, or "
                             f"pass --allow-overlap to evaluate on trained items knowingly")
    return train, evaluation, {"method": method, "overlap_allowed": allow_overlap, "shared_items": shared}
