"""The ``neurospec`` command line (``neurospec.cli.main:app``): it parses options, calls the verb functions of
``neurospec.verbs`` and prints. It needs the ``cli`` extra (typer, rich, pyyaml)."""

import importlib.util

for _package in ("typer", "rich", "yaml"):
    if importlib.util.find_spec(_package) is None:
        from neurospec.util.extras import missing_extra

        raise SystemExit(f"error: {missing_extra(_package, 'the neurospec command')}")
