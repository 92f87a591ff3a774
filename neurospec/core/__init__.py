"""The model-facing core: loading any decoder (``models``), where each neuron lives (``sites``), and hooks
(``hooks``), the only code in neurospec that touches module internals."""
