"""neurospec: find, switch off, amplify and set the neurons of a language model, and measure what changes.

    from neurospec import load_model, NeuronSet, Edit, intervene, record
    lm = load_model("Qwen/Qwen2.5-0.5B")
    lape = NeuronSet.load("lape.json").validate_for(lm.sites)
    with intervene(lm.model, Edit.zero(lape, groups=["fr"])):      # deactivate the French neurons
        logits = lm.model(**batch).logits
"""

from neurospec import moved
from neurospec.core.edits import Edit, RuntimeStatistic
from neurospec.core.hooks import capture_gradients, generate, intervene, prompt_boundary, record
from neurospec.core.models import LoadedModel, load_model, model_shape
from neurospec.core.sites import SITES, ModelShape, SiteMap, SiteSpec, register_family, site_map
from neurospec.interventions.files import EditSpec, InterventionSpec, ValuesRef
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.version import __version__ as __version__  # re-exported: neurospec.__version__

moved.install()

__all__ = [
    "Edit", "EditSpec", "InterventionSpec", "LoadedModel", "ModelShape", "NeuronSet", "RuntimeStatistic", "SITES",
    "SiteMap", "SiteSpec", "ValuesRef", "capture_gradients", "generate", "intervene", "load_model", "model_shape",
    "prompt_boundary", "record", "register_family", "site_map",
]
