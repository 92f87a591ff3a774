"""The culture-neuron verbs of the ``neurospec`` command: attribute, select culture, mask-eval, finetune.

    neurospec attribute --model M --data blend --split find --templates all --out runs/attr/blend
    neurospec attribute --model M --data blend-control --split find --templates all --out runs/attr/blend-control
    neurospec attribute --model M --data countryrc --split find --out runs/attr/countryrc    # the reference's 4 prompts
    neurospec select culture --blend runs/attr/blend --control runs/attr/blend-control \\
        --countryrc runs/attr/countryrc --random-seeds 10 --out culture.json
    neurospec mask-eval --model M --neurons culture.json --random culture.random.json \\
        --benchmarks blend,countryrc,qnli,mrpc --limit 200 --out runs/mask
    neurospec finetune --model M --neurons culture.json --layers richest:4 --data qnli --samples 10000 \\
        --evaluate blend,qnli --out runs/ft-richest

Each writes JSON (and CSV for tables) and prints a short summary; the same functions are
:func:`neurospec.measure.attribution.attribute`, :mod:`neurospec.select.culture`, :func:`neurospec.evaluate.masking.mask_eval`
and :func:`neurospec.train.finetune`. Registered on :data:`neurospec.cli.main.app` when that module is imported.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import typer
from rich.markup import escape

from neurospec.cli.base import app, command_provenance, console, not_an_input, split_names, stamped, user_errors
from neurospec.cli.measure import select_app, write_selection
from neurospec.cli.base import BATCH, DEVICE, DEVICE_MAP, DTYPE, MODEL, QUIET, TRUST, done, load, progress_printer
from neurospec.util.errors import NeurospecError
from neurospec.measure.run_folder import writing

_DATA_PATH = typer.Option(None, "--path", help="name=FILE for a set read from a local file (culturalbench=cb.jsonl); "
                          "repeat for several. BLEnD, CountryRC, QNLI and MRPC default to the shared data.")
_COUNTRIES = typer.Option(None, "--countries", help="Only these countries, e.g. China,Iran,US (any name BLEnD knows).")
_TEMPLATES = typer.Option("blend", "--templates", help="Prompt templates: blend, question_first, options_first, terse, "
                          "all of these, or question (the bare question, with --target answer).")
_FORMAT = typer.Option("auto", "--format", help="auto (chat with the {\"answer_choice\":\" prefill when the tokenizer has a "
                       "chat template, else plain), chat, plain.")
_SCORING = typer.Option("vocab", "--scoring", help="vocab: the argmax over the whole vocabulary must be the gold "
                        "letter (the paper's); letter: the argmax over the option letters only; loglik: the "
                        "options' log-likelihoods after the question (small models).")


def _paths(values: Optional[list[str]]) -> dict[str, Path]:
    out = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise NeurospecError(f"--path {value!r}: write NAME=FILE, e.g. --path culturalbench=culturalbench.jsonl")
        out[name.strip()] = Path(path)
    return out


def _templates(names: str):
    from neurospec.data.blend import BLEND_TEMPLATES
    from neurospec.evaluate.scoring import bare_question

    known = {**BLEND_TEMPLATES, "question": bare_question}
    chosen = list(BLEND_TEMPLATES) if names.strip() == "all" else split_names(names) or []
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise NeurospecError(f"--templates {names!r}: choose from {', '.join(known)} or all (question = the bare "
                             "question, for --target answer)")
    return [known[n] for n in chosen]


def _format(name: str, tokenizer):
    from neurospec.data.blend import blend_prompt_format
    from neurospec.data.prompts import PLAIN

    if name == "auto":
        name = "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    if name not in ("chat", "plain"):
        raise NeurospecError(f"--format {name!r}: use auto, chat or plain")
    return blend_prompt_format() if name == "chat" else PLAIN


_ATTRIBUTE_TEMPLATES = typer.Option(
    "auto", "--templates", help="Prompt templates. auto (default): the reference's for the set: CountryRC's 4 "
    "(countryrc) for --data countryrc, else blend. BLEnD's: blend, question_first, options_first, terse, or all "
    "of these (with the {\"answer_choice\":\" prefill); countryrc (the reference's 4 CountryRC prompts, no prefill) "
    "or one of countryrc_letter_1/2, countryrc_number_1/2; question (the bare question, with --target answer). "
    "--data countryrc --templates blend is neurospec's earlier CountryRC protocol.")
_ATTRIBUTE_FORMAT = typer.Option("auto", "--format", help="auto (chat when the tokenizer has a chat template, else "
                                 "plain), chat, plain. In chat, BLEnD templates get the {\"answer_choice\":\" "
                                 "prefill; the CountryRC prompts never do (as the reference).")


def _attribute_templates(names: str, data: str) -> list:
    """``--templates`` of ``attribute``: ``auto`` = the reference's prompts for ``data``; CountryRC's by name."""
    from neurospec.data.countryrc import COUNTRYRC_TEMPLATES

    names = names.strip()
    if names == "auto":
        names = "countryrc" if data.strip().lower() == "countryrc" else "blend"
    chosen, rest = [], []
    for name in split_names(names) or []:
        if name == "countryrc":
            chosen.extend(COUNTRYRC_TEMPLATES.values())
        elif name in COUNTRYRC_TEMPLATES:
            chosen.append(COUNTRYRC_TEMPLATES[name])
        else:
            rest.append(name)
    if chosen and rest:
        raise NeurospecError(f"--templates {names!r}: the CountryRC prompts (no prefill) and {', '.join(rest)} "
                             "(JSON prefill) need different formats; attribute them in separate runs")
    return chosen or _templates(names)


def _attribute_format(name: str, tokenizer, templates: list):
    """``--format`` of ``attribute``: the CountryRC prompts take the chat template without a prefill."""
    from neurospec.data.countryrc import CountryRCTemplate, countryrc_prompts

    if templates and all(isinstance(t, CountryRCTemplate) for t in templates):
        if name not in ("auto", "chat", "plain"):
            raise NeurospecError(f"--format {name!r}: use auto, chat or plain")
        chat = name == "chat" or (name == "auto" and bool(getattr(tokenizer, "chat_template", None)))
        return countryrc_prompts(chat=chat)[1]
    return _format(name, tokenizer)


def _items(name: str, paths: dict[str, Path], *, split: Optional[str], countries: Optional[str], limit: Optional[int],
           seed: int):
    from neurospec.data.mc_sets import load_mc_set

    return load_mc_set(name, path=paths.get(name), countries=split_names(countries), split=split, limit=limit, seed=seed)


@app.command("attribute")
def attribute_command(
    model: str = MODEL,
    data: str = typer.Option(..., "--data", help="blend, blend-control, countryrc, or any set of `mask-eval --benchmarks`."),
    out: Path = typer.Option(..., "--out", help="Run folder: attribution.json + scores.safetensors."),
    path: Optional[list[str]] = _DATA_PATH,
    split: str = typer.Option("find", "--split", help="find (Food / Work life / Sport; CountryRC's first 25 passages), "
                              "test, or all."),
    countries: Optional[str] = _COUNTRIES,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N items per country."),
    templates: str = _ATTRIBUTE_TEMPLATES, fmt: str = _ATTRIBUTE_FORMAT,
    target: str = typer.Option("letter", "--target", help="letter (the paper) or answer (the gold option's text)."),
    objective: str = typer.Option("prob", "--objective", help="prob (the paper: p * max a*dp/da) or logprob."),
    sites: str = typer.Option("gate_pre,up_pre,q,k,v", "--sites", help="Sites to score."),
    seed: int = typer.Option(0, "--seed", help="Seed of the item builders (distractor draws, option order)."),
    checkpoint_every: int = typer.Option(200, "--checkpoint-every", min=1, help="Checkpoint every N batches."),
    resume: bool = typer.Option(False, "--resume", help="Continue an unfinished run in --out (or reuse a finished one)."),
    batch_size: int = BATCH, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Activation x gradient scores of every neuron, summed per country (the culture paper's attribution)."""
    from neurospec.measure.attribution import attribute

    with user_errors(), writing(out, "neurospec attribute"):
        paths = _paths(path)
        items = _items(data, paths, split=split, countries=countries, limit=limit, seed=seed)
        chosen_templates = _attribute_templates(templates, data)
        lm = load(model, dtype, device, device_map, trust_remote_code)
        prompt_format = _attribute_format(fmt, lm.tokenizer, chosen_templates)
        scores = attribute(lm.model, lm.tokenizer, items, fmt=prompt_format, templates=chosen_templates,
                           target=target, objective=objective, sites=split_names(sites) or [], batch_size=batch_size,
                           out=out, resume=resume, checkpoint_every=checkpoint_every, quiet=quiet, dataset=data,
                           description=f"attribute {data}")
        say = progress_printer(quiet)
        accuracy = scores.accuracy()
        for group, n in zip(scores.groups, scores.counts.tolist()):
            acc = accuracy.get(group)
            say(f"{group:>18}  examples {n:>6}  " + (f"accuracy {acc:.3f}" if acc is not None else ""))
        done(stamped(out, lm.model, "attribution.json"))


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
    random_seeds: int = typer.Option(0, "--random-seeds", min=0, help="Also write N random baselines per group."),
    random_out: Optional[Path] = typer.Option(None, "--random-out", help="File of the random baselines "
                                              "(default: OUT with .random.json)."),
) -> None:
    """Culture-general and culture-specific neurons from three attribution runs (METHODS section 3)."""
    from neurospec.measure.attribution import AttributionScores
    from neurospec.select.culture import (CULTURE_COUNTRIES, check_roles, select_culture_general,
                                          select_culture_specific, select_random_pooled)

    with user_errors(), writing([out, random_out or out.with_suffix(".random.json")], "neurospec select culture", file=True):
        if kind not in ("general", "specific", "both"):
            raise NeurospecError(f"--kind {kind!r}: use general, specific or both")
        for flag, number in (("--mlp-rate", mlp_rate), ("--attention-rate", attention_rate),
                             ("--countryrc-rate", countryrc_rate), ("--specific-rate", specific_rate), ("--z", z_threshold)):
            if not math.isfinite(number):
                raise NeurospecError(f"{flag} {number}: give a finite number")
        if random_seeds:
            not_an_input(random_out or out.with_suffix(".random.json"), "--random-out", {"--out": out})
        check_roles(*(SimpleNamespace(meta=AttributionScores.read_meta(folder), path=folder)
                      for folder in (blend, control, countryrc)),
                    options={"blend": "--blend", "control": "--control", "countryrc": "--countryrc"})
        runs = [AttributionScores.load(folder) for folder in (blend, control, countryrc)]
        chosen = None
        if kind in ("general", "both"):
            chosen = select_culture_general(*runs, mlp_rate=mlp_rate, attention_rate=attention_rate,
                                            countryrc_rate=countryrc_rate)
        if kind in ("specific", "both"):
            specific = select_culture_specific(*runs, countries=split_names(countries) or CULTURE_COUNTRIES,
                                               rate=specific_rate, countryrc_rate=countryrc_rate, z_threshold=z_threshold)
            chosen = specific if chosen is None else chosen.union(specific)
        write_selection(chosen, out)
        if random_seeds:
            target = random_out or out.with_suffix(".random.json")
            write_selection(select_random_pooled(chosen, seeds=range(random_seeds)), target)


@app.command("mask-eval")
def mask_eval_command(
    model: str = MODEL,
    neurons: Path = typer.Option(..., "--neurons", exists=True, dir_okay=False, help="NeuronSet JSON (or CULNIG) file."),
    out: Path = typer.Option(..., "--out", help="Output folder: mask_eval.json, accuracy.csv, related_*.csv."),
    groups: Optional[str] = typer.Option(None, "--groups", help="Groups to mask (default: all of --neurons)."),
    random: Optional[Path] = typer.Option(None, "--random", exists=True, dir_okay=False,
                                          help="Random baselines (groups random<seed>:<group>)."),
    mode: str = typer.Option("suppress", "--mode", help="suppress (set to 0) or enhance (multiply by --factor)."),
    factor: float = typer.Option(2.0, "--factor", help="Enhancement factor."),
    benchmarks: str = typer.Option("blend,qnli", "--benchmarks", help="Sets to evaluate: blend, countryrc, culturalbench, "
                                   "normad, worldvaluesbench, qnli, mrpc, commonsenseqa."),
    path: Optional[list[str]] = _DATA_PATH,
    split: str = typer.Option("test", "--split", help="Split of the cultural sets: test (Education / Family / Holidays) "
                              "or find or all."),
    countries: Optional[str] = _COUNTRIES,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N items per group of each set."),
    templates: str = _TEMPLATES, fmt: str = _FORMAT, scoring: str = _SCORING,
    seed: int = typer.Option(0, "--seed", help="Seed of the item builders and of the bootstrap."),
    batch_size: int = BATCH, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Accuracy per benchmark and group with each neuron group suppressed or enhanced, against random baselines."""
    from neurospec.data.mc_sets import MC_SETS
    from neurospec.evaluate.masking import mask_eval, masking_conditions
    from neurospec.neurons.formats import load_neuron_file

    with user_errors(), writing(out, "neurospec mask-eval"):
        if not math.isfinite(factor):
            raise NeurospecError(f"--factor {factor}: give a finite number, e.g. 2 (NaN or infinity would make every "
                                 "logit NaN)")
        paths = _paths(path)
        sets = _sets(split_names(benchmarks) or [], paths, split=split, countries=countries, limit=limit, seed=seed)
        chosen_templates = _templates(templates)
        lm = load(model, dtype, device, device_map, trust_remote_code)
        neuron_set = load_neuron_file(neurons, shape=lm.sites)
        baseline = load_neuron_file(random, shape=lm.sites) if random is not None else None
        conditions = masking_conditions(neuron_set, split_names(groups), mode=mode, factor=factor, random=baseline,
                                        random_option=f"--random {random}")
        result = mask_eval(lm.model, lm.tokenizer, sets, conditions, scoring=scoring, fmt=_format(fmt, lm.tokenizer),
                           templates=chosen_templates, kinds={n: MC_SETS[n].kind for n in sets},
                           batch_size=batch_size, seed=seed, quiet=quiet)
        say = progress_printer(quiet)
        for row in result.summary():
            say("  ".join(f"{k} {v:+.4f}" if isinstance(v, float) else f"{v:>20}" for k, v in row.items()))
        for benchmark in sets if result.by_rule else ():
            cell = result.cell("none", benchmark)
            say(f"{benchmark} unmodified: accuracy {cell['rules']['full_vocabulary']['accuracy']:.4f} (full "
                f"vocabulary), {cell['rules']['letters_only']['accuracy']:.4f} (letters only); "
                f"{cell['non_letter_share']:.1%} of answers were no option's letter")
        done(stamped(result.save(out), lm.model, "mask_eval.json"))


def _sets(names: list[str], paths: dict[str, Path], *, split: Optional[str], countries: Optional[str],
          limit: Optional[int], seed: int) -> dict:
    """Each named set's items; ``split`` and ``countries`` apply to the cultural sets only."""
    from neurospec.data.mc_sets import MC_SETS

    unknown = [name for name in names if name not in MC_SETS]
    if unknown:
        raise NeurospecError(f"unknown benchmark(s) {unknown}: choose from {', '.join(MC_SETS)}")
    cultural = {name: MC_SETS[name].kind == "cultural" for name in names}
    return {name: _items(name, paths, split=split if cultural[name] else None,
                         countries=countries if cultural[name] else None, limit=limit, seed=seed) for name in names}


def _layers(spec: str, neurons, group: str, num_layers: int) -> list[int]:
    from neurospec.interventions.targets import target_groups
    from neurospec.train import layers_by_neuron_count

    order, sep, count = spec.partition(":")
    if sep and order in ("richest", "none", "poorest"):
        if neurons is None:
            raise NeurospecError(f"--layers {spec}: give --neurons (and --group) to rank layers by neuron count")
        target_groups(neurons, [group], verb=f"finetune --layers {spec} --group")  # an empty group ranks nothing
        return layers_by_neuron_count(neurons, group, int(count), order=order)  # type: ignore[arg-type]
    try:
        layers = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise NeurospecError(f"--layers {spec!r}: write richest:K, none:K, poorest:K or a list like 4,5,6") from None
    bad = [x for x in layers if not 0 <= x < num_layers]
    if bad or not layers:
        raise NeurospecError(f"--layers {spec!r}: layers must lie in 0..{num_layers - 1}")
    return layers


@app.command("finetune")
def finetune_command(
    model: str = MODEL,
    out: Path = typer.Option(..., "--out", help="Output folder: finetune.json (+ the model with --save-model)."),
    layers: str = typer.Option(..., "--layers", help="richest:K / none:K / poorest:K (by --group's neurons) or 4,5,6."),
    neurons: Optional[Path] = typer.Option(None, "--neurons", exists=True, dir_okay=False, help="NeuronSet file."),
    group: str = typer.Option("culture-general", "--group", help="The group whose neurons rank the layers."),
    block: str = typer.Option("mlp", "--block", help="mlp or attention: which block of each chosen layer is trained."),
    data: str = typer.Option("qnli", "--data", help="Training set (any --benchmarks name; QNLI in the paper)."),
    train_path: Optional[Path] = typer.Option(None, "--train-path", exists=True,
                                              help="File of the training items of --data (e.g. QNLI's train.tsv, "
                                                   "as the paper); without it, a set also in --evaluate is cut in "
                                                   "two seeded halves."),
    allow_overlap: bool = typer.Option(False, "--allow-overlap", help="Evaluate on items also trained on (refused "
                                       "by default)."),
    path: Optional[list[str]] = _DATA_PATH,
    samples: int = typer.Option(10_000, "--samples", min=1, help="Training items (the paper: 10k)."),
    lr: float = typer.Option(3e-5, "--lr", help="Learning rate (the paper: 3e-5)."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Epochs (the paper: 1)."),
    evaluate: str = typer.Option("blend,qnli", "--evaluate", help="Sets evaluated before and after training."),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", min=1, help="At most N evaluation items per group."),
    templates: str = typer.Option("blend", "--templates", help="Templates for training and evaluation."),
    fmt: str = _FORMAT, scoring: str = _SCORING,
    seed: int = typer.Option(0, "--seed", help="Seed of the item shuffle and builders."),
    save_model: bool = typer.Option(False, "--save-model", help="Also save the fine-tuned model into OUT/model."),
    batch_size: int = BATCH, dtype: str = DTYPE, device: Optional[str] = DEVICE,
    device_map: Optional[str] = DEVICE_MAP, trust_remote_code: bool = TRUST, quiet: bool = QUIET,
) -> None:
    """Train only the MLP (or attention) blocks of chosen layers on an NLU set; cultural and NLU accuracy before/after."""
    from neurospec.data.mc_sets import MC_SETS, limit_per_group
    from neurospec.data.splits import item_ids, separate
    from neurospec.evaluate.masking import mask_eval
    from neurospec.util.io import atomic_write_json
    from neurospec.neurons.formats import load_neuron_file
    from neurospec.train import attention_module_names, finetune, mlp_module_names, save_finetuned

    with user_errors(), writing(out, "neurospec finetune"):
        if block not in ("mlp", "attention"):
            raise NeurospecError(f"--block {block!r}: use mlp or attention")
        paths = _paths(path)
        train_paths = {**paths, data: train_path} if train_path is not None else paths
        train_items = _sets([data], train_paths, split="find", countries=None, limit=None, seed=seed)[data]
        every = _sets(split_names(evaluate) or [], paths, split="test", countries=None, limit=None, seed=seed)
        train_items, every, split_record = separate(data, train_items, every, same_source=train_path is None,
                                                     seed=seed, allow_overlap=allow_overlap)
        sets = {name: limit_per_group(items, eval_limit) for name, items in every.items()}
        chosen_templates = _templates(templates)
        lm = load(model, dtype, device, device_map, trust_remote_code)
        origin = command_provenance(lm.model)  # the weights before training changes them
        neuron_set = load_neuron_file(neurons, shape=lm.sites) if neurons is not None else None
        chosen_layers = _layers(layers, neuron_set, group, lm.sites.num_layers)
        modules = (mlp_module_names if block == "mlp" else attention_module_names)(lm.model, chosen_layers)
        prompt_format = _format(fmt, lm.tokenizer)
        kinds = {n: MC_SETS[n].kind for n in sets}

        def accuracy() -> dict:
            result = mask_eval(lm.model, lm.tokenizer, sets, {"none": None}, scoring=scoring, fmt=prompt_format,
                               templates=chosen_templates, kinds=kinds, batch_size=batch_size, seed=seed, quiet=True)
            return {name: result.cell("none", name) for name in sets}

        say = progress_printer(quiet)
        before = accuracy() if sets else {}
        trained = finetune(lm.model, lm.tokenizer, train_items, modules, fmt=prompt_format, prompt=chosen_templates[0],
                           lr=lr, epochs=epochs, batch_size=batch_size, max_items=samples, seed=seed, progress=not quiet)
        after = accuracy() if sets else {}
        out.mkdir(parents=True, exist_ok=True)
        split_record.update(train={"set": data, "source": str(train_path) if train_path else "data set",
                                   "ids": trained.item_ids},
                            evaluation={name: item_ids(items) for name, items in sets.items()})
        document = {"format": "neurospec.finetune", "version": 1, "layers": chosen_layers, "block": block,
                    "group": group if neuron_set is not None else None, "data": data, "training": trained.to_json(),
                    "splits": split_record,
                    "evaluation": {name: {"kind": kinds[name], "before": before[name], "after": after[name],
                                          "change": after[name]["accuracy"] - before[name]["accuracy"]} for name in sets},
                    "provenance": origin}
        atomic_write_json(out / "finetune.json", document)
        for name, row in document["evaluation"].items():
            say(f"{name:>16} ({row['kind']}): {row['before']['accuracy']:.4f} -> {row['after']['accuracy']:.4f} "
                f"({row['change']:+.4f})")
        if save_model:
            save_finetuned(lm.model, lm.tokenizer, out / "model", result=trained)
        done(out)
        console.print(escape(f"trained {len(trained.parameter_names)} tensors in layers {chosen_layers}"))
