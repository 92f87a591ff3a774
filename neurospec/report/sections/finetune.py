"""Report section of module fine-tuning (finetune.json): accuracy before and after, per evaluated set.

    from neurospec.report.sections.finetune import finetune_section
    section = finetune_section(artifact)    # an Artifact of kind "finetune"

Reads the file as a :class:`~neurospec.results.finetune.FinetuneRecord`: the layers, block, ranking group and
training data, the training (steps, items, trained parameters, losses, settings) and each evaluated set's
kind and accuracy cell before and after (n, accuracy, interval), with the change.
"""

from __future__ import annotations

import numpy as np

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.plots import GREY, dots, draw, rotate_labels
from neurospec.results.finetune import FinetuneRecord


def finetune_section(artifact: Artifact) -> Section:
    record = artifact.read(FinetuneRecord)
    section = Section("finetune", artifact.label, "Fine-tuning chosen modules: accuracy before and after", artifact.step)
    section.facts += [("layers", ", ".join(map(str, record.layers)) or "none"), ("block", record.block),
                      ("layers chosen by", record.group if record.group is not None else "a list"),
                      ("training data", record.data)]
    training = record.training
    section.facts += [("steps", str(training.steps)), ("items", str(training.items_used)),
                      ("trained parameters", str(training.num_parameters))]
    if "lr" in training.settings:
        section.facts.append(("learning rate", str(training.settings["lr"])))
    if training.losses:
        section.facts.append(("loss", f"first {training.losses[0]:.4g}, last {training.losses[-1]:.4g}"))
    table = Table("evaluation", "Accuracy before and after training, 95% bootstrap intervals",
                  ["set", "kind", "n", "before", "before CI low", "before CI high", "after", "after CI low",
                   "after CI high", "change"])
    rows = []
    for name, entry in record.evaluation.items():
        before, after = entry.before, entry.after
        b_ci, a_ci = before.ci95, after.ci95
        rows.append((name, before.accuracy, b_ci, after.accuracy, a_ci))
        table.add(label(name), text(entry.kind), number(after.n), number(before.accuracy, ".3f"),
                  number(b_ci[0] if b_ci else None, ".3f"), number(b_ci[1] if b_ci else None, ".3f"),
                  number(after.accuracy, ".3f"), number(a_ci[0] if a_ci else None, ".3f"),
                  number(a_ci[1] if a_ci else None, ".3f"), number(entry.change, "+.3f"))
    if not rows:
        section.notes.append("No set was evaluated before and after training.")
        return section
    section.add(_figure(rows), table)
    return section


def _figure(rows):
    names = [r[0] for r in rows]

    def paint(fig):
        ax = fig.add_subplot()
        x = np.arange(len(rows))
        dots(ax, x - 0.12, [r[1] for r in rows], [r[2] for r in rows], color=GREY, marker="s", label="before")
        dots(ax, x + 0.12, [r[3] for r in rows], [r[4] for r in rows], color="#1b9e77", label="after")
        ax.set_xticks(x, labels=names)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        rotate_labels(ax, names)
        ax.set_ylim(-0.04, 1.04)
        ax.grid(axis="y", color="#e6e6e6", linewidth=0.6)
        ax.set_ylabel("accuracy")
        ax.legend(loc="best")

    return draw("accuracy", "Accuracy before and after fine-tuning (95% CI)", paint,
                size=(max(4.0, 1.0 * len(rows) + 2.0), 3.2),
                alt=f"Dot plot of accuracy before and after fine-tuning on {len(rows)} sets",
                caption="Each evaluated set before (grey squares) and after (green dots) training, with 95% bootstrap "
                        "intervals.")
