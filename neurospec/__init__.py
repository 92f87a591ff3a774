"""neurospec: find, switch off, amplify and set the neurons of a language model, and measure what changes.

    from neurospec import load_model, NeuronSet, Edit, intervene, record
    lm = load_model("Qwen/Qwen2.5-0.5B")
    lape = NeuronSet.load("lape.json").validate_for(lm.sites)
    with intervene(lm.model, Edit.zero(lape, groups=["fr"])):      # deactivate the French neurons
        logits = lm.model(**batch).logits
"""

__version__ = "0.1.0"

from neurospec.edits import Edit, RuntimeStatistic  # noqa: E402
from neurospec.hooks import capture_gradients, generate, intervene, prompt_boundary, record  # noqa: E402
from neurospec.interventions import EditSpec, InterventionSpec, ValuesRef  # noqa: E402
from neurospec.models import LoadedModel, load_model, model_shape  # noqa: E402
from neurospec.neurons import NeuronSet  # noqa: E402
from neurospec.sites import SITES, ModelShape, SiteMap, SiteSpec, register_family, site_map  # noqa: E402

__all__ = [
    "Edit", "EditSpec", "InterventionSpec", "LoadedModel", "ModelShape", "NeuronSet", "RuntimeStatistic", "SITES",
    "SiteMap", "SiteSpec", "ValuesRef", "capture_gradients", "generate", "intervene", "load_model", "model_shape",
    "prompt_boundary", "record", "register_family", "site_map",
]
