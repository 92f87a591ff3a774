"""One builder per artifact kind: ``SECTIONS[kind](artifact) -> Section`` (sweeps take their settings too).

    from neurospec.report.sections import SECTIONS, sweep_section
    section = SECTIONS["ppl"](artifact)
"""

from __future__ import annotations

from typing import Callable

from neurospec.report.content import Section
from neurospec.report.discover import Artifact
from neurospec.report.sections.attribution import attribution_section
from neurospec.report.sections.downstream import downstream_section
from neurospec.report.sections.finetune import finetune_section
from neurospec.report.sections.lmeval import lmeval_section
from neurospec.report.sections.lss import lss_section, sweep_section, sweep_setting_labels
from neurospec.report.sections.masking import mask_section
from neurospec.report.sections.neurons import neuron_section
from neurospec.report.sections.perplexity import ppl_section
from neurospec.report.sections.stats import stats_section
from neurospec.report.sections.steering import steer_section

SECTIONS: dict[str, Callable[[Artifact], Section]] = {
    "neurons": neuron_section,
    "ppl": ppl_section,
    "lss": lss_section,
    "steer": steer_section,
    "downstream": downstream_section,
    "mask_eval": mask_section,
    "finetune": finetune_section,
    "lmeval": lmeval_section,
    "stats": stats_section,
    "attribution": attribution_section,
}

__all__ = ["SECTIONS", "sweep_section", "sweep_setting_labels"]
