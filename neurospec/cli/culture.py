"""The culture-neuron verbs of the ``neurospec`` command: attribute, select culture, mask-eval, finetune.

    neurospec attribute --model M --data blend --split find --templates all --out runs/attr/blend
    neurospec attribute --model M --data blend-control --split find --templates all --out runs/attr/blend-control
    neurospec attribute --model M --data countryrc --split find --out runs/attr/countryrc    # the reference's 4 prompts
    neurospec select culture --blend runs/attr/blend --control runs/attr/blend-control \\
        --countryrc runs/attr/countryrc --random-sets 10 --out culture.json
    neurospec mask-eval --model M --neurons culture.json --random-neurons culture.random.json \\
        --benchmarks blend,countryrc,qnli,mrpc --limit 200 --out runs/mask
    neurospec finetune --model M --neurons culture.json --layers richest:4 --data qnli --samples 10000 \\
        --benchmarks blend,qnli --out runs/ft-richest

Each writes JSON (and CSV for tables) and prints a short summary; the same verbs are Python functions in
neurospec.verbs.culture. Registered on :data:`neurospec.cli.main.app` when that module is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from neurospec.cli.base import (
    BATCH,
    BATCH_AUTO,
    DEVICE,
    DEVICE_MAP,
    DTYPE,
    MODEL,
    MODEL_ARG,
    QUIET,
    REVISION,
    TRUST,
    app,
    console,
    done,
    user_errors,
    warnings_after,
)
from neurospec.cli.measure import select_app, write_selection
from neurospec.verbs.culture import (
    AttributeOptions,
    FinetuneOptions,
    MaskEvalOptions,
    SelectCultureOptions,
    attribute,
    finetune,
    mask_eval,
    select_culture,
)

_DATA_PATH = typer.Option([], "--path", help="name=FILE for a set read from a local file (culturalbench=cb.jsonl); "
                          "repeat for several. BLEnD, CountryRC, QNLI and MRPC default to the shared data.")
_COUNTRIES = typer.Option(None, "--countries", help="Only these countries, e.g. China,Iran,US (any name BLEnD knows).")
_TEMPLATES = typer.Option("blend", "--templates", help="Prompt templates: blend, question_first, options_first, terse, "
                          "all of these, or question (the bare question, with --target answer).")
_FORMAT = typer.Option("auto", "--prompt-format", help="auto (chat with the {\"answer_choice\":\" prefill when the tokenizer "
                       "has a "
                       "chat template, else plain), chat, plain.")
_SCORING = typer.Option("vocab", "--scoring", help="vocab: the argmax over the whole vocabulary must be the gold "
                        "letter (the paper's); letter: the argmax over the option letters only; loglik: the "
                        "options' log-likelihoods after the question (small models).")

_ATTRIBUTE_TEMPLATES = typer.Option(
    "auto", "--templates", help="Prompt templates. auto (default): the reference's for the set: CountryRC's 4 "
    "(countryrc) for --data countryrc, else blend. BLEnD's: blend, question_first, options_first, terse, or all "
    "of these (with the {\"answer_choice\":\" prefill); countryrc (the reference's 4 CountryRC prompts, no prefill) "
    "or one of countryrc_letter_1/2, countryrc_number_1/2; question (the bare question, with --target answer). "
    "--data countryrc --templates blend is neurospec's earlier CountryRC protocol.")
_ATTRIBUTE_FORMAT = typer.Option("auto", "--prompt-format", help="auto (chat when the tokenizer has a chat template, else "
                                 "plain), chat, plain. In chat, BLEnD templates get the {\"answer_choice\":\" "
                                 "prefill; the CountryRC prompts never do (as the reference).")


@app.command("attribute")
def attribute_command(
    model: str = MODEL, revision: Optional[str] = REVISION, model_args: list[str] = MODEL_ARG,
    data: str = typer.Option(..., "--data", help="blend, blend-control, countryrc, or any set of `mask-eval --benchmarks`."),
    out: Path = typer.Option(..., "--out", help="Run folder: attribution.json + scores.safetensors."),
    path: list[str] = _DATA_PATH,
    split: str = typer.Option("find", "--split", help="find (Food / Work life / Sport; CountryRC's first 25 passages), "
                              "test, or all."),
    countries: Optional[str] = _COUNTRIES,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N items per country."),
    templates: str = _ATTRIBUTE_TEMPLATES, prompt_format: str = _ATTRIBUTE_FORMAT,
    target: str = typer.Option("letter", "--target", help="letter (the paper) or answer (the gold option's text)."),
    objective: str = typer.Option("prob", "--objective", help="prob (the paper: p * max a*dp/da) or logprob."),
    sites: str = typer.Option("gate_pre,up_pre,q,k,v", "--sites", help="Sites to score."),
    seed: int = typer.Option(0, "--seed", help="Seed of the item builders (distractor draws, option order)."),
    checkpoint_every: int = typer.Option(200, "--checkpoint-every", min=1, help="Checkpoint every N batches."),
    resume: bool = typer.Option(False, "--resume", help="Continue an unfinished run in --out (or reuse a finished one)."),
    top_items: int = typer.Option(0, "--top-items", min=0, help="Keep every neuron's K top-scoring items per country "
                                  "(top_items/<country>.safetensors; `neurospec explain --attribution` shows them). "
                                  "0 (default): off."),
    batch_size: str = BATCH_AUTO, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Activation x gradient scores of every neuron, summed per country (the culture paper's attribution)."""
    with user_errors():
        options = AttributeOptions(**locals())
        attribute(options)
        done(options.out)


@select_app.command("culture")
def select_culture_command(
    blend: Path = typer.Option(..., "--blend", exists=True, file_okay=False, help="Attribution run on BLEnD (find split)."),
    control: Path = typer.Option(..., "--control", exists=True, file_okay=False, help="Attribution run on BLEnD-control."),
    countryrc: Path = typer.Option(..., "--countryrc", exists=True, file_okay=False, help="Attribution run on CountryRC."),
    out: Path = typer.Option(..., "--out", help="NeuronSet JSON file to write."),
    kind: str = typer.Option("both", "--kind", help="general, specific, or both."),
    countries: Optional[str] = typer.Option(None, "--countries", help="Culture-specific countries (default: the "
                                            "paper's 8: China, Indonesia, Iran, Mexico, South Korea, Spain, UK, US)."),
    mlp_rate: float = typer.Option(0.01, "--mlp-rate", help="Culture-general: top fraction of gate_pre neurons."),
    attention_rate: float = typer.Option(0.002, "--attention-rate", help="Culture-general: top fraction of q/k/v."),
    countryrc_rate: float = typer.Option(0.01, "--countryrc-rate", help="Drop the top fraction by CountryRC score."),
    specific_rate: float = typer.Option(0.003, "--specific-rate", help="Culture-specific: top fraction of the pool."),
    z_threshold: float = typer.Option(0.5, "--z", help="Culture-specific: minimum z-score across countries."),
    random_sets: int = typer.Option(0, "--random-sets", min=0, help="Also write N random baselines per group (seeds "
                                    "0..N-1; mask-eval --random-neurons reads them)."),
    random_out: Optional[Path] = typer.Option(None, "--random-out", help="File of the random baselines "
                                              "(default: OUT with .random.json)."),
) -> None:
    """Culture-general and culture-specific neurons from three attribution runs (METHODS section 3)."""
    with user_errors(), warnings_after():
        selection = select_culture(SelectCultureOptions(**locals()))
        write_selection(selection.neurons, selection.out)
        if selection.random is not None:
            write_selection(selection.random, selection.random_out)


@app.command("mask-eval")
def mask_eval_command(
    model: str = MODEL, revision: Optional[str] = REVISION, model_args: list[str] = MODEL_ARG,
    neurons: Path = typer.Option(..., "--neurons", exists=True, dir_okay=False, help="NeuronSet JSON (or CULNIG) file."),
    out: Path = typer.Option(..., "--out", help="Output folder: mask_eval.json, accuracy.csv, related_*.csv."),
    groups: Optional[str] = typer.Option(None, "--groups", help="Groups to mask (default: all of --neurons)."),
    recipe: str = typer.Option("zero", "--recipe", help="What is done to each group's neurons: zero (suppress, the "
                               "paper), scale*2 (enhance), set:p_max with --stats..."),
    random_neurons: Optional[Path] = typer.Option(None, "--random-neurons", exists=True, dir_okay=False,
                                                  help="Random baselines of select culture --random-sets (groups "
                                                  "random<seed>:<group>)."),
    random_seeds: Optional[str] = typer.Option("", "--random-seeds", help="Seeds of size-matched random control "
                                               "groups drawn here ('' for none, the default)."),
    stats: Optional[Path] = typer.Option(None, "--stats", help="Statistics folder, for recipes with p_max / "
                                         "p_median / mean."),
    mode: Optional[str] = typer.Option(None, "--mode", hidden=True, help="Old form of --recipe: suppress or enhance."),
    factor: Optional[float] = typer.Option(None, "--factor", hidden=True, help="Old form of --recipe scale*F."),
    benchmarks: str = typer.Option("blend,qnli", "--benchmarks", help="Sets to evaluate: blend, countryrc, culturalbench, "
                                   "normad, worldvaluesbench, qnli, mrpc, commonsenseqa."),
    path: list[str] = _DATA_PATH,
    split: str = typer.Option("test", "--split", help="Split of the cultural sets: test (Education / Family / Holidays) "
                              "or find or all."),
    countries: Optional[str] = _COUNTRIES,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N items per group of each set."),
    templates: str = _TEMPLATES, prompt_format: str = _FORMAT, scoring: str = _SCORING,
    seed: int = typer.Option(0, "--seed", help="Seed of the item builders and of the bootstrap."),
    batch_size: str = BATCH_AUTO, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Accuracy per benchmark and group with each neuron group suppressed or enhanced, against random baselines."""
    with user_errors():
        options = MaskEvalOptions(**locals())
        mask_eval(options)
        done(options.out)


@app.command("finetune")
def finetune_command(
    model: str = MODEL, revision: Optional[str] = REVISION, model_args: list[str] = MODEL_ARG,
    out: Path = typer.Option(..., "--out", help="Output folder: finetune.json (+ the model with --save-model)."),
    layers: str = typer.Option(..., "--layers", help="richest:K / none:K / poorest:K (by --groups' neurons) or 4,5,6."),
    neurons: Optional[Path] = typer.Option(None, "--neurons", exists=True, dir_okay=False, help="NeuronSet file."),
    groups: str = typer.Option("culture-general", "--groups", help="The group whose neurons rank the layers (one)."),
    block: str = typer.Option("mlp", "--block", help="mlp or attention: which block of each chosen layer is trained."),
    data: str = typer.Option("qnli", "--data", help="Training set (any --benchmarks name; QNLI in the paper)."),
    train_path: Optional[Path] = typer.Option(None, "--train-path", exists=True,
                                              help="File of the training items of --data (e.g. QNLI's train.tsv, "
                                                   "as the paper); without it, a set also in --benchmarks is cut in "
                                                   "two seeded halves."),
    allow_overlap: bool = typer.Option(False, "--allow-overlap", help="Evaluate on items also trained on (refused "
                                       "by default)."),
    path: list[str] = _DATA_PATH,
    samples: int = typer.Option(10_000, "--samples", min=1, help="Training items (the paper: 10k)."),
    lr: float = typer.Option(3e-5, "--lr", help="Learning rate (the paper: 3e-5)."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Epochs (the paper: 1)."),
    benchmarks: str = typer.Option("blend,qnli", "--benchmarks", help="Sets evaluated before and after training."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N evaluation items per group."),
    templates: str = typer.Option("blend", "--templates", help="Templates for training and evaluation."),
    prompt_format: str = _FORMAT, scoring: str = _SCORING,
    seed: int = typer.Option(0, "--seed", help="Seed of the item shuffle and builders."),
    save_model: bool = typer.Option(False, "--save-model", help="Also save the fine-tuned model into OUT/model."),
    batch_size: int = BATCH, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Train only the MLP (or attention) blocks of chosen layers on an NLU set; cultural and NLU accuracy before/after."""
    with user_errors():
        options = FinetuneOptions(**locals())
        run = finetune(options)
        done(options.out)
        console.print(escape(f"trained {len(run.training.parameter_names)} tensors in layers {run.layers}"))
