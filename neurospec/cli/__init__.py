"""The ``neurospec`` command line (``neurospec.cli.main:app``): it parses options, calls the Python API and prints."""
