"""Every ``neurospec`` verb as a Python function with a typed options object, returning its typed result.

    from neurospec.verbs.evaluate import PplOptions, ppl
    matrix = ppl(PplOptions(model="gemma-3-270m", neurons=Path("lape.json"), corpus_dir=Path("flores"),
                            out=Path("runs/ppl")))

The command line (``neurospec.cli``) and the pipeline (``neurospec.pipeline``) both build the options and call
these functions; the pipeline passes one loaded model to every step that uses it.
"""
