"""Neuron sets: named groups of neurons (``NeuronSet``) and the file formats they are read from and written to.

    from neurospec.neurons import NeuronSet, load_neuron_file
"""

from neurospec.neurons.formats import is_json_file, load_neuron_file
from neurospec.neurons.neuron_set import FORMAT, VERSION, NeuronSet, NeuronSetMeta

__all__ = ["FORMAT", "VERSION", "NeuronSet", "NeuronSetMeta", "is_json_file", "load_neuron_file"]
