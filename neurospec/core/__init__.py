"""The model-facing core: loading any decoder (``models``, ``model_sources``), where each neuron lives
(``sites``), what an edit does to neurons (``edits``, ``operations``: op, value, factor, positions, checked once),
and hooks (``hooks``), the only code in neurospec that touches module internals. ``provenance`` fingerprints
models and inputs; ``forward`` holds small helpers of batched forward passes."""
