"""Report section of module fine-tuning (finetune.json): accuracy before and after, per evaluated set.

    from neurospec.report.sections.finetune import finetune_section
    section = finetune_section(artifact)    # an Artifact of kind "finetune"

Reads ``layers``, ``block``, ``group``, ``data``, ``training`` (steps, items_used, num_parameters,
losses, settings) and ``evaluation[set]`` (kind, before and after: n, accuracy, ci95; change).
"""

from __future__ import annotations

import numpy as np

from neurospec.report.content import Section, Table, label, number, text
from neurospec.report.discover import Artifact
from neurospec.report.fields import Doc
from neurospec.report.plots import GREY, ci_errors, draw, rotate_labels


def finetune_section(artifact: Artifact) -> Section:
    doc = Doc(artifact.data, str(artifact.path), artifact.fix)
    section = Section("finetune", artifact.label, "Fine-tuning chosen modules: accuracy before and after", artifact.step)
    layers = [item.integer() for item in doc["layers"].list()]
    group = doc.get("group")
    section.facts += [("layers", ", ".join(map(str, layers)) or "none"), ("block", doc["block"].text()),
                      ("layers chosen by", group.text() if group is not None else "a list"),
                      ("training data", doc["data"].text())]
    training = doc.get("training")
    if training is not None:
        for key, name in (("steps", "steps"), ("items_used", "items"), ("num_parameters", "trained parameters")):
            if key in training:
                section.facts.append((name, str(training[key].raw)))
        settings = training.get("settings")
        if settings is not None and "lr" in settings:
            section.facts.append(("learning rate", str(settings["lr"].raw)))
        losses = training.get("losses")
        if losses is not None and losses.list():
            values = [v.number() for v in losses.list()]
            section.facts.append(("loss", f"first {values[0]:.4g}, last {values[-1]:.4g}"))
    table = Table("evaluation", "Accuracy before and after training, 95% bootstrap intervals",
                  ["set", "kind", "n", "before", "before CI low", "before CI high", "after", "after CI low",
                   "after CI high", "change"])
    rows = []
    for name, entry in doc["evaluation"].items():
        before, after = entry["before"], entry["after"]
        b_ci, a_ci = before["ci95"].interval(), after["ci95"].interval()
        kind = entry.get("kind")
        rows.append((name, before["accuracy"].number(), b_ci, after["accuracy"].number(), a_ci))
        table.add(label(name), text(kind.text() if kind is not None else None), number(after["n"].number()),
                  number(before["accuracy"].number(), ".3f"), number(b_ci[0] if b_ci else None, ".3f"),
                  number(b_ci[1] if b_ci else None, ".3f"), number(after["accuracy"].number(), ".3f"),
                  number(a_ci[0] if a_ci else None, ".3f"), number(a_ci[1] if a_ci else None, ".3f"),
                  number(entry["change"].number(), "+.3f"))
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
        before = [r[1] for r in rows]
        after = [r[3] for r in rows]
        ax.bar(x - 0.2, before, 0.4, color=GREY, yerr=ci_errors(before, [r[2] for r in rows]), capsize=3,
               label="before")
        ax.bar(x + 0.2, after, 0.4, color="#1b9e77", yerr=ci_errors(after, [r[4] for r in rows]), capsize=3,
               label="after")
        ax.set_xticks(x, labels=names)
        rotate_labels(ax, names)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("accuracy")
        ax.legend(loc="best")

    return draw("accuracy", "Accuracy before and after fine-tuning (95% CI)", paint,
                size=(max(4.0, 1.2 * len(rows) + 2.0), 3.4),
                alt=f"Bar chart of accuracy before and after fine-tuning on {len(rows)} sets",
                caption="Each evaluated set before (grey) and after (green) training, with 95% bootstrap intervals.")
