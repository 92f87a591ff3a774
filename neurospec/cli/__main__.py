"""``python -m neurospec.cli ...`` (and ``torchrun -m neurospec.cli ...``): the ``neurospec`` command."""

from neurospec.cli.main import app

app()
