"""The culture-neuron verbs: attribute, select culture, mask-eval, finetune.

    from neurospec.verbs.culture import AttributeOptions, SelectCultureOptions, attribute, select_culture
    attribute(AttributeOptions(model="gemma-3-270m", data="blend", templates="all", out=Path("runs/attr/blend")))
    chosen = select_culture(SelectCultureOptions(blend=Path("runs/attr/blend"), control=Path("runs/attr/blend-control"),
                                                 countryrc=Path("runs/attr/countryrc"), random_seeds=10,
                                                 out=Path("culture.json")))

Each writes JSON (and CSV for tables) stamped with what produced it, and returns its result; the engines are
:func:`neurospec.measure.attribution.attribute`, :mod:`neurospec.select.culture`,
:func:`neurospec.evaluate.masking.mask_eval` and :func:`neurospec.train.finetune`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from neurospec.measure.run_folder import writing
from neurospec.util.errors import NeurospecError
from neurospec.verbs.base import (
    ModelOptions,
    VerbOptions,
    check_not_an_input,
    load_for,
    one_group,
    option,
    options_provenance,
    progress_printer,
    split_list,
    stamp_result,
    verb_options,
)
from neurospec.verbs.evaluate import load_inputs, parse_recipe, parse_seeds
from neurospec.verbs.measure import save_selection

ITEM_TOKENS = 256      # what --batch-size auto plans for: a multiple-choice prompt with its options

# --------------------------------------------------------------------------------------------
# Helpers shared by the verbs: data sets, templates, prompt formats, layers


def data_paths(values: list[str] | None) -> dict[str, Path]:
    """``--path NAME=FILE`` items (repeatable) -> ``{name: Path(file)}``."""
    chosen = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise NeurospecError(f"--path {value!r}: write NAME=FILE, e.g. --path culturalbench=culturalbench.jsonl")
        chosen[name.strip()] = Path(path)
    return chosen


def blend_templates(names: str) -> list:
    """``--templates`` of mask-eval and finetune: BLEnD's templates by name, ``all`` of them, or ``question``."""
    from neurospec.data.blend import BLEND_TEMPLATES
    from neurospec.evaluate.scoring import bare_question

    known = {**BLEND_TEMPLATES, "question": bare_question}
    chosen = list(BLEND_TEMPLATES) if names.strip() == "all" else split_list(names, "--templates") or []
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise NeurospecError(f"--templates {names!r}: choose from {', '.join(known)} or all (question = the bare "
                             "question, for --target answer)")
    return [known[n] for n in chosen]


def prompt_format(name: str, tokenizer):
    """``--prompt-format``: auto (chat with BLEnD's JSON prefill when ``tokenizer`` has a chat template, else plain),
    chat or plain."""
    from neurospec.data.blend import blend_prompt_format
    from neurospec.data.prompts import PLAIN

    if name == "auto":
        name = "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    if name not in ("chat", "plain"):
        raise NeurospecError(f"--prompt-format {name!r}: use auto, chat or plain")
    return blend_prompt_format() if name == "chat" else PLAIN


def attribute_templates(names: str, data: str) -> list:
    """``--templates`` of ``attribute``: ``auto`` = the reference's prompts for ``data``; CountryRC's by name."""
    from neurospec.data.countryrc import COUNTRYRC_TEMPLATES

    names = names.strip()
    if names == "auto":
        names = "countryrc" if data.strip().lower() == "countryrc" else "blend"
    chosen, rest = [], []
    for name in split_list(names, "--templates") or []:
        if name == "countryrc":
            chosen.extend(COUNTRYRC_TEMPLATES.values())
        elif name in COUNTRYRC_TEMPLATES:
            chosen.append(COUNTRYRC_TEMPLATES[name])
        else:
            rest.append(name)
    if chosen and rest:
        raise NeurospecError(f"--templates {names!r}: the CountryRC prompts (no prefill) and {', '.join(rest)} "
                             "(JSON prefill) need different formats; attribute them in separate runs")
    return chosen or blend_templates(names)


def attribute_format(name: str, tokenizer, chosen_templates: list):
    """``--prompt-format`` of ``attribute``: the CountryRC prompts take the chat template without a prefill."""
    from neurospec.data.countryrc import CountryRCTemplate, countryrc_prompts

    if chosen_templates and all(isinstance(t, CountryRCTemplate) for t in chosen_templates):
        if name not in ("auto", "chat", "plain"):
            raise NeurospecError(f"--prompt-format {name!r}: use auto, chat or plain")
        chat = name == "chat" or (name == "auto" and bool(getattr(tokenizer, "chat_template", None)))
        return countryrc_prompts(chat=chat)[1]
    return prompt_format(name, tokenizer)


def load_items(name: str, files: dict[str, Path], *, split: str | None, countries: str | None, limit: int | None,
          seed: int) -> list:
    """The items of the set ``name`` (from its ``--path`` file when given)."""
    from neurospec.data.mc_sets import load_mc_set

    return load_mc_set(name, path=files.get(name), countries=split_list(countries, "--countries"), split=split,
                       limit=limit, seed=seed)


def load_sets(names: list[str], files: dict[str, Path], *, split: str | None, countries: str | None,
         limit: int | None, seed: int) -> dict:
    """Each named set's items; ``split`` and ``countries`` apply to the cultural sets only."""
    from neurospec.data.mc_sets import MC_SETS

    unknown = [name for name in names if name not in MC_SETS]
    if unknown:
        raise NeurospecError(f"unknown benchmark(s) {unknown}: choose from {', '.join(MC_SETS)}")
    cultural = {name: MC_SETS[name].kind == "cultural" for name in names}
    return {name: load_items(name, files, split=split if cultural[name] else None,
                        countries=countries if cultural[name] else None, limit=limit, seed=seed) for name in names}


def finetune_layers(spec: str, neurons, group: str, num_layers: int) -> list[int]:
    """``--layers`` of finetune: ``richest:K`` / ``none:K`` / ``poorest:K`` by ``group``'s neurons, or ``4,5,6``."""
    from neurospec.interventions.targets import target_groups
    from neurospec.train import layers_by_neuron_count

    order, sep, count = spec.partition(":")
    if sep and order in ("richest", "none", "poorest"):
        if neurons is None:
            raise NeurospecError(f"--layers {spec}: give --neurons (and --group) to rank layers by neuron count")
        target_groups(neurons, [group], verb=f"finetune --layers {spec} --group")  # an empty group ranks nothing
        return layers_by_neuron_count(neurons, group, int(count), order=order)  # type: ignore[arg-type]
    try:
        chosen = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise NeurospecError(f"--layers {spec!r}: write richest:K, none:K, poorest:K or a list like 4,5,6") from None
    bad = [x for x in chosen if not 0 <= x < num_layers]
    if bad or not chosen:
        raise NeurospecError(f"--layers {spec!r}: layers must lie in 0..{num_layers - 1}")
    return chosen


def check_finite(numbers: dict[str, float]) -> None:
    """Each ``{flag: number}`` finite; a NaN or an infinity is refused naming its flag."""
    for flag, number in numbers.items():
        if not math.isfinite(number):
            raise NeurospecError(f"{flag} {number}: give a finite number")


# --------------------------------------------------------------------------------------------
# attribute


@verb_options("attribute")
class AttributeOptions(ModelOptions):
    """Options of ``neurospec attribute``: activation x gradient scores per country."""

    data: str
    out: Path
    path: list[str] = option([])
    split: str = "find"
    countries: str | None = None
    limit: int | None = option(None, min=1)
    templates: str = "auto"
    prompt_format: str = "auto"
    target: str = "letter"
    objective: str = "prob"
    sites: str = "gate_pre,up_pre,q,k,v"
    seed: int = 0
    checkpoint_every: int = option(200, min=1)
    resume: bool = False
    top_items: int = option(0, min=0)
    batch_size: str | int = "auto"
    quiet: bool = False


def attribute(options: AttributeOptions, *, lm=None):
    """Activation x gradient scores of every neuron, summed per country (the culture paper's attribution);
    written to ``options.out`` (attribution.json + scores.safetensors) and returned
    (:class:`~neurospec.measure.attribution.AttributionScores`)."""
    from neurospec.measure import attribution

    with writing(options.out, "neurospec attribute"):
        chosen_items = load_items(options.data, data_paths(options.path), split=options.split,
                                  countries=options.countries, limit=options.limit, seed=options.seed)
        chosen_templates = attribute_templates(options.templates, options.data)
        lm = load_for(options, lm)
        scores = attribution.attribute(
            lm.model, lm.tokenizer, chosen_items, fmt=attribute_format(options.prompt_format, lm.tokenizer, chosen_templates),
            templates=chosen_templates, target=options.target, objective=options.objective,
            sites=split_list(options.sites, "--sites") or [],
            batch_size=options.batch_for(lm, tokens=ITEM_TOKENS, backward=True), out=options.out,
            resume=options.resume, checkpoint_every=options.checkpoint_every, quiet=options.quiet,
            dataset=options.data, description=f"attribute {options.data}", top_items=options.top_items)
        say_accuracy(scores, progress_printer(options.quiet))
        stamp_result(options.out, "attribute", options, lm.model, "attribution.json")
    return scores


def say_accuracy(scores, say) -> None:
    """One line per group of an attribution run: its examples and, where scored, its accuracy."""
    accuracy = scores.accuracy()
    for group, n in zip(scores.groups, scores.counts.tolist()):
        acc = accuracy.get(group)
        say(f"{group:>18}  examples {n:>6}  " + (f"accuracy {acc:.3f}" if acc is not None else ""))


# --------------------------------------------------------------------------------------------
# select culture


@verb_options("select culture")
class SelectCultureOptions(VerbOptions):
    """Options of ``neurospec select culture``: culture-general and culture-specific neurons."""

    blend: Path
    control: Path
    countryrc: Path
    out: Path
    kind: str = "both"
    countries: str | None = None
    mlp_rate: float = 0.01
    attention_rate: float = 0.002
    countryrc_rate: float = 0.01
    specific_rate: float = 0.003
    z_threshold: float = option(0.5, flag="--z")
    random_sets: int = option(0, min=0)
    random_out: Path | None = None

    def random_path(self) -> Path:
        """Where the random baselines go: ``random_out``, else ``out`` with ``.random.json``."""
        return self.random_out or self.out.with_suffix(".random.json")


@dataclass
class CultureSelection:
    """What ``select culture`` wrote: the selection and (with ``random_sets``) its random baselines."""

    neurons: Any                 # NeuronSet, saved at ``out``
    out: Path
    random: Any = None           # NeuronSet of groups random<seed>:<group>, saved at ``random_out``; or None
    random_out: Path | None = None


def select_culture(options: SelectCultureOptions) -> CultureSelection:
    """Culture-general and culture-specific neurons from three attribution runs (METHODS section 3), saved
    to ``options.out`` (and the random baselines to ``options.random_path()``) and returned."""
    from neurospec.select.culture import select_random_pooled

    with writing([options.out, options.random_path()], "neurospec select culture", file=True):
        check_selection_options(options)
        chosen = save_selection(culture_selection(options), options.out, "select culture", options)
        if not options.random_sets:
            return CultureSelection(chosen, options.out)
        random = select_random_pooled(chosen, seeds=range(options.random_sets))
        save_selection(random, options.random_path(), "select culture", options)
        return CultureSelection(chosen, options.out, random, options.random_path())


def check_selection_options(options: SelectCultureOptions) -> None:
    """``--kind``, the rates and ``--random-out`` checked before any run is read."""
    if options.kind not in ("general", "specific", "both"):
        raise NeurospecError(f"--kind {options.kind!r}: use general, specific or both")
    check_finite({"--mlp-rate": options.mlp_rate, "--attention-rate": options.attention_rate,
                  "--countryrc-rate": options.countryrc_rate, "--specific-rate": options.specific_rate,
                  "--z": options.z_threshold})
    if options.random_sets:
        check_not_an_input(options.random_path(), "--random-out", {"--out": options.out})


def culture_selection(options: SelectCultureOptions):
    """The NeuronSet of the groups ``options.kind`` asks for, from the three runs in their checked roles."""
    from neurospec.measure.attribution import AttributionScores
    from neurospec.select.culture import CULTURE_COUNTRIES, check_roles, select_culture_general, select_culture_specific

    folders = (options.blend, options.control, options.countryrc)
    check_roles(*(SimpleNamespace(meta=AttributionScores.read_meta(folder), path=folder) for folder in folders),
                options={"blend": "--blend", "control": "--control", "countryrc": "--countryrc"})
    runs = [AttributionScores.load(folder) for folder in folders]
    chosen = None
    if options.kind in ("general", "both"):
        chosen = select_culture_general(*runs, mlp_rate=options.mlp_rate, attention_rate=options.attention_rate,
                                        countryrc_rate=options.countryrc_rate)
    if options.kind in ("specific", "both"):
        specific = select_culture_specific(
            *runs, countries=split_list(options.countries, "--countries") or CULTURE_COUNTRIES,
            rate=options.specific_rate, countryrc_rate=options.countryrc_rate, z_threshold=options.z_threshold)
        chosen = specific if chosen is None else chosen.union(specific)
    return chosen


# --------------------------------------------------------------------------------------------
# mask-eval


@verb_options("mask-eval")
class MaskEvalOptions(ModelOptions):
    """Options of ``neurospec mask-eval``: accuracy with neuron groups suppressed or enhanced."""

    neurons: Path
    out: Path
    groups: str | None = None
    recipe: str = "zero"
    random_neurons: Path | None = None
    random_seeds: str | None = ""
    stats: Path | None = None
    mode: str | None = None          # deprecated: --recipe zero (suppress) or scale*FACTOR (enhance)
    factor: float | None = None      # deprecated, with mode
    benchmarks: str = "blend,qnli"
    path: list[str] = option([])
    split: str = "test"
    countries: str | None = None
    limit: int | None = option(None, min=1)
    templates: str = "blend"
    prompt_format: str = "auto"
    scoring: str = "vocab"
    seed: int = 0
    batch_size: str | int = "auto"
    quiet: bool = False


def mask_eval(options: MaskEvalOptions, *, lm=None):
    """Accuracy per benchmark and group with each neuron group suppressed or enhanced, against random
    baselines; written to ``options.out`` (mask_eval.json, accuracy.csv, related_*.csv) and returned
    (:class:`~neurospec.evaluate.masking.MaskingResult`)."""
    from neurospec.data.mc_sets import MC_SETS
    from neurospec.evaluate import masking
    from neurospec.neurons.formats import load_neuron_file

    with writing(options.out, "neurospec mask-eval"):
        chosen_recipe = masking_recipe(options)
        chosen_sets = load_sets(split_list(options.benchmarks, "--benchmarks") or [], data_paths(options.path),
                                split=options.split, countries=options.countries, limit=options.limit,
                                seed=options.seed)
        chosen_templates = blend_templates(options.templates)
        lm = load_for(options, lm)
        neuron_set = load_neuron_file(options.neurons, shape=lm.sites)
        random_file = options.random_neurons
        baseline = load_neuron_file(random_file, shape=lm.sites) if random_file is not None else None
        statistics = load_inputs(None, options.stats, lm, need_neurons=False)[1]
        conditions = masking.masking_conditions(neuron_set, split_list(options.groups, "--groups"), recipe=chosen_recipe,
                                                random=baseline, random_option=f"--random-neurons {random_file}",
                                                random_seeds=parse_seeds(options.random_seeds), stats=statistics)
        result = masking.mask_eval(lm.model, lm.tokenizer, chosen_sets, conditions, scoring=options.scoring,
                                   fmt=prompt_format(options.prompt_format, lm.tokenizer), templates=chosen_templates,
                                   kinds={n: MC_SETS[n].kind for n in chosen_sets},
                                   batch_size=options.batch_for(lm, tokens=ITEM_TOKENS),
                                   seed=options.seed, quiet=options.quiet)
        say_masking(result, chosen_sets, progress_printer(options.quiet))
        stamp_result(result.save(options.out), "mask-eval", options, lm.model, "mask_eval.json")
    return result


def masking_recipe(options: MaskEvalOptions):
    """``--recipe``, or the deprecated ``--mode suppress|enhance`` with ``--factor`` (zero / scale*FACTOR)."""
    import warnings

    from neurospec.interventions.conditions import mode_recipe
    from neurospec.util.errors import RenamedWarning

    if options.mode is None and options.factor is None:
        return parse_recipe(options.recipe)
    if options.recipe != "zero":
        raise NeurospecError("give --recipe only (--mode and --factor are its old form)")
    factor = 2.0 if options.factor is None else options.factor
    if not math.isfinite(factor):
        raise NeurospecError(f"--factor {factor}: give a finite number, e.g. 2 (NaN or infinity would make every "
                             "logit NaN)")
    recipe = mode_recipe(options.mode or "suppress", factor)
    warnings.warn(f"neurospec mask-eval: --mode/--factor are now --recipe {recipe.name}; the old names go in the "
                  "next release", RenamedWarning, stacklevel=3)
    return recipe


def say_masking(result, chosen_sets: dict, say) -> None:
    """The summary rows of a masking result, and per benchmark the unmodified accuracy under both rules."""
    for row in result.summary():
        say("  ".join(f"{k} {v:+.4f}" if isinstance(v, float) else f"{v:>20}" for k, v in row.items()))
    for benchmark in chosen_sets if result.by_rule else ():
        cell = result.cell("none", benchmark)
        say(f"{benchmark} unmodified: accuracy {cell['rules']['full_vocabulary']['accuracy']:.4f} (full "
            f"vocabulary), {cell['rules']['letters_only']['accuracy']:.4f} (letters only); "
            f"{cell['non_letter_share']:.1%} of answers were no option's letter")


# --------------------------------------------------------------------------------------------
# finetune


@verb_options("finetune")
class FinetuneOptions(ModelOptions):
    """Options of ``neurospec finetune``: train the MLP (or attention) blocks of chosen layers."""

    out: Path
    layers: str
    neurons: Path | None = None
    groups: str = "culture-general"
    block: str = "mlp"
    data: str = "qnli"
    train_path: Path | None = None
    allow_overlap: bool = False
    path: list[str] = option([])
    samples: int = option(10_000, min=1)
    lr: float = 3e-5
    epochs: int = option(1, min=1)
    benchmarks: str = "blend,qnli"
    limit: int | None = option(None, min=1)
    templates: str = "blend"
    prompt_format: str = "auto"
    scoring: str = "vocab"
    seed: int = 0
    save_model: bool = False
    batch_size: int = option(8, min=1)
    quiet: bool = False


@dataclass
class FinetuneRun:
    """What ``finetune`` wrote: the ``finetune.json`` record and what training changed."""

    record: Any                  # neurospec.results.finetune.FinetuneRecord
    training: Any                # neurospec.train.FinetuneResult

    @property
    def document(self) -> dict:
        """The content of ``finetune.json``."""
        return self.record.to_json()

    @property
    def layers(self) -> list[int]:
        return self.record.layers


def finetune(options: FinetuneOptions) -> FinetuneRun:
    """Train only the MLP (or attention) blocks of chosen layers on an NLU set; cultural and NLU accuracy
    before and after, written to ``options.out/finetune.json`` (and the model to ``out/model`` with
    ``save_model``) and returned. Loads its own model: training changes it."""
    from neurospec.data.mc_sets import MC_SETS, limit_per_group
    from neurospec.data.splits import item_ids, separate
    from neurospec.neurons.formats import load_neuron_file
    from neurospec.results.finetune import FinetuneRecord
    from neurospec.results.tidy import write_tidy_csv
    from neurospec.train import attention_module_names, mlp_module_names, save_finetuned
    from neurospec.util.io import atomic_write_json

    with writing(options.out, "neurospec finetune"):
        if options.block not in ("mlp", "attention"):
            raise NeurospecError(f"--block {options.block!r}: use mlp or attention")
        files = data_paths(options.path)
        train_files = {**files, options.data: options.train_path} if options.train_path is not None else files
        train_items = load_sets([options.data], train_files, split="find", countries=None, limit=None,
                           seed=options.seed)[options.data]
        every = load_sets(split_list(options.benchmarks, "--benchmarks") or [], files, split="test", countries=None,
                     limit=None, seed=options.seed)
        train_items, every, split_record = separate(options.data, train_items, every,
                                                    same_source=options.train_path is None, seed=options.seed,
                                                    allow_overlap=options.allow_overlap)
        evaluated = {name: limit_per_group(chosen, options.limit) for name, chosen in every.items()}
        chosen_templates = blend_templates(options.templates)
        lm = load_for(options)
        origin = options_provenance("finetune", options, lm.model)  # the weights before training changes them
        neuron_set = load_neuron_file(options.neurons, shape=lm.sites) if options.neurons is not None else None
        ranking_group = one_group(options.groups, "finetune ranks layers by one group")
        chosen_layers = finetune_layers(options.layers, neuron_set, ranking_group, lm.sites.num_layers)
        modules = (mlp_module_names if options.block == "mlp" else attention_module_names)(lm.model, chosen_layers)
        fmt = prompt_format(options.prompt_format, lm.tokenizer)
        kinds = {n: MC_SETS[n].kind for n in evaluated}
        before = accuracies(lm, evaluated, options, fmt, chosen_templates, kinds)
        trained = train(lm, train_items, modules, options, fmt, chosen_templates[0])
        after = accuracies(lm, evaluated, options, fmt, chosen_templates, kinds)
        split_record.update(train={"set": options.data,
                                   "source": str(options.train_path) if options.train_path else "data set",
                                   "ids": trained.item_ids},
                            evaluation={name: item_ids(chosen) for name, chosen in evaluated.items()})
        document = {"format": "neurospec.finetune", "version": 1, "layers": chosen_layers, "block": options.block,
                    "group": ranking_group if neuron_set is not None else None, "data": options.data,
                    "training": trained.to_json(), "splits": split_record,
                    "evaluation": {name: {"kind": kinds[name], "before": before[name], "after": after[name],
                                          "change": after[name]["accuracy"] - before[name]["accuracy"]}
                                   for name in evaluated},
                    "provenance": origin}
        record = FinetuneRecord.from_json(document, str(options.out / "finetune.json"))   # checked by its type
        options.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(options.out / "finetune.json", record.to_json())
        write_tidy_csv(options.out / "finetune.json")
        say_changes(document, progress_printer(options.quiet))
        if options.save_model:
            save_finetuned(lm.model, lm.tokenizer, options.out / "model", result=trained)
    return FinetuneRun(record, trained)


def accuracies(lm, evaluated: dict, options: FinetuneOptions, fmt, chosen_templates: list, kinds: dict) -> dict:
    """``{set: accuracy cell}`` of the unmodified model on each evaluated set (``{}`` for none)."""
    from neurospec.evaluate.masking import mask_eval as evaluate_masking

    if not evaluated:
        return {}
    result = evaluate_masking(lm.model, lm.tokenizer, evaluated, {"none": None}, scoring=options.scoring, fmt=fmt,
                              templates=chosen_templates, kinds=kinds, batch_size=options.batch_size,
                              seed=options.seed, quiet=True)
    return {name: result.cell("none", name) for name in evaluated}


def train(lm, train_items: list, modules: list[str], options: FinetuneOptions, fmt, prompt):
    """Fine-tune ``modules`` of ``lm`` on ``train_items`` with the options' settings
    (:func:`neurospec.train.finetune`)."""
    from neurospec import train as training

    return training.finetune(lm.model, lm.tokenizer, train_items, modules, fmt=fmt, prompt=prompt, lr=options.lr,
                             epochs=options.epochs, batch_size=options.batch_size, max_items=options.samples,
                             seed=options.seed, progress=not options.quiet)


def say_changes(document: dict, say) -> None:
    """One line per evaluated set of a finetune document: accuracy before -> after (change)."""
    for name, row in document["evaluation"].items():
        say(f"{name:>16} ({row['kind']}): {row['before']['accuracy']:.4f} -> {row['after']['accuracy']:.4f} "
            f"({row['change']:+.4f})")
