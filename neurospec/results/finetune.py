"""Fine-tuning chosen modules (finetune.json): what was trained, and accuracy before and after per evaluated set.

    from neurospec.results.finetune import FinetuneRecord, FinetuneResult
    record = FinetuneRecord.from_json(json.loads(text), "runs/ft/finetune.json")
    record.layers, record.training.losses, record.evaluation["qnli"].change
    record.evaluation["blend"].before.accuracy, record.evaluation["blend"].after.ci95

:class:`FinetuneResult` is what :func:`neurospec.train.finetune` returns (modules, parameters, losses,
settings: the ``training`` part of the file, and the model folder's own finetune.json). ``neurospec
finetune`` writes the whole record: the layers and block trained, the group that ranked them, the training
data, how items were split, and each evaluated set's accuracy cell (:class:`~neurospec.results.masking.MaskCell`)
before and after training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurospec.results.fields import Doc, check_rewrites, open_document
from neurospec.results.masking import MaskCell


@dataclass
class FinetuneResult:
    """What :func:`neurospec.train.finetune` trained: modules, parameter tensors, step losses and the settings."""

    modules: list[str]
    parameter_names: list[str]
    num_parameters: int  # trained scalars (sum of numel)
    steps: int
    items_used: int
    losses: list[float] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    item_ids: list[str] = field(default_factory=list)  # the items trained on, in training order

    def to_json(self) -> dict[str, Any]:
        return {"modules": list(self.modules), "parameter_names": list(self.parameter_names),
                "num_parameters": self.num_parameters, "steps": self.steps, "items_used": self.items_used,
                "losses": list(self.losses), "settings": dict(self.settings), "item_ids": list(self.item_ids)}

    @classmethod
    def from_json(cls, doc: Doc) -> "FinetuneResult":
        """``FinetuneResult.from_json(Doc(data, "model/finetune.json"))``, or the ``training`` field of a record."""
        return cls(doc["modules"].texts(), doc["parameter_names"].texts(), doc["num_parameters"].integer(),
                   doc["steps"].integer(), doc["items_used"].integer(), doc["losses"].numbers(),
                   doc["settings"].object(), doc["item_ids"].texts())


@dataclass
class FinetuneEvaluation:
    """One evaluated set: its ``kind`` (cultural or nlu) and its accuracy cell before and after training."""

    kind: str | None
    before: MaskCell
    after: MaskCell

    @property
    def change(self) -> float:
        """Accuracy after minus accuracy before."""
        return self.after.accuracy - self.before.accuracy

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "before": self.before.to_json(), "after": self.after.to_json(),
                "change": self.change}

    @classmethod
    def from_json(cls, doc: Doc) -> "FinetuneEvaluation":
        return cls(doc["kind"].opt_text(), MaskCell.from_json(doc["before"]), MaskCell.from_json(doc["after"]))


@dataclass
class FinetuneRecord:
    """A finetune.json: the ``layers`` whose ``block`` (mlp or attention) was trained, the ``group`` whose neurons
    ranked them (None for a list of layers), the training ``data``, the training itself, the item ``splits``, and
    the accuracy of each evaluated set before and after."""

    FORMAT = "neurospec.finetune"
    VERSION = 1
    COMMAND = "neurospec finetune"

    layers: list[int]
    block: str
    group: str | None
    data: str
    training: FinetuneResult
    evaluation: dict[str, FinetuneEvaluation]
    splits: dict[str, Any] | None = None  # how training and evaluation items were kept apart
    provenance: dict[str, Any] | None = None  # the command and the model before training

    @property
    def empty_groups(self) -> dict[str, str]:
        """Fine-tuning skips no group (it refuses an empty ranking group): always empty."""
        return {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.FORMAT, "version": self.VERSION, "layers": self.layers,
                               "block": self.block, "group": self.group, "data": self.data,
                               "training": self.training.to_json()}
        if self.splits is not None:
            out["splits"] = self.splits
        out["evaluation"] = {name: entry.to_json() for name, entry in self.evaluation.items()}
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out

    @classmethod
    def from_json(cls, document: Any, where: str, fix: str | None = None) -> "FinetuneRecord":
        """The record a finetune.json holds (``where`` names the file in errors, ``fix`` says what to do about one)."""
        doc = open_document(document, cls, where, fix)
        record = cls(doc["layers"].integers(), doc["block"].text(), doc["group"].opt_text(), doc["data"].text(),
                     FinetuneResult.from_json(doc["training"]),
                     {name: FinetuneEvaluation.from_json(entry) for name, entry in doc["evaluation"].items()},
                     doc["splits"].object() if "splits" in doc else None,
                     doc["provenance"].object() if "provenance" in doc else None)
        check_rewrites(doc, record.to_json())
        return record
