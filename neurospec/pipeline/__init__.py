"""One command for a whole study: a YAML config of steps, each a ``neurospec`` verb, run into one folder.

    from neurospec.pipeline import load_study, run_study
    study = load_study("examples/toy-study.yaml")      # checked: keys, steps, paths, values, references
    run_dir = run_study(study)                           # runs/toy-study; skips what is up to date

``neurospec run STUDY.yaml`` is the command line. The config format: :mod:`neurospec.pipeline.config`;
the run folder and when a step runs again: :mod:`neurospec.pipeline.runner`; docs/pipeline.md.
"""

from neurospec.pipeline.config import ConfigError, Study, load_study
from neurospec.pipeline.runner import StepFailed, run_study

__all__ = ["ConfigError", "StepFailed", "Study", "load_study", "run_study"]
