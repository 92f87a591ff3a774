"""Measuring neurons on text: run folders (``run_folder``), activation statistics (``collect``, ``stats``) and
activation x gradient attribution (``attribution``)."""
