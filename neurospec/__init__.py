"""neurospec: find, switch off, amplify and set the neurons of a language model, and measure what changes.

    from neurospec import load_model, intervene, record, NeuronSet
    lm = load_model("Qwen/Qwen2.5-0.5B")
    neurons = NeuronSet.load("fr.json")
    with intervene(lm.model, Intervention.zero(neurons)):
        logits = lm.model(**batch).logits
"""

__version__ = "0.1.0"
