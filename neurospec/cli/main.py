"""The ``neurospec`` command line: one verb per user task; it parses, calls the API and prints.

    neurospec neurons show lape.json                       # counts per group and site, per-layer histogram
    neurospec neurons show LLaMA-2-7B.neuron.pth --groups en,zh,fr,es,vi,id,ja --json
    neurospec neurons import LLaMA-2-7B.neuron.pth --groups en,zh,fr,es,vi,id,ja --model meta-llama/Llama-2-7b-hf --out lape.json
    neurospec neurons export lape.json --format lape-pth --out lape.neuron.pth
    neurospec collect --model M --corpus fr=fr.txt --corpus de=ntrex128 --out stats/ --max-tokens 1000000
    neurospec select lape --stats stats/ --out lape.json
    neurospec stats show stats/

Errors a user can fix (:class:`neurospec.util.errors.NeurospecError`, and file system errors) print one
red line on stderr and exit with code 2; outputs are written atomically, so a failed command leaves
no partial file. Add a verb group from another module with ``app.add_typer(other_app, name="verb")``
below, next to ``neurons``.
"""

from __future__ import annotations

from neurospec.cli.base import app

# isort: off
# Each module registers its verbs on app when imported, in this order (the order `neurospec --help` lists).
from neurospec.cli import neurons, measure, evaluate, lmeval, culture, study, data  # noqa: F401
# isort: on

__all__ = ["app"]

if __name__ == "__main__":  # python -m neurospec.cli.main (torchrun -m neurospec.cli.main ...)
    app()
