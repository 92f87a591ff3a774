"""A study config (YAML): the model, shared defaults and the steps, checked before any work starts.

    study = load_study("examples/toy-study.yaml")
    [step.name for step in study.steps]          # in the file's order
    study.steps[0].verb.name                     # 'collect'

The file::

    title: LAPE on the small toy model          # optional, shown in the report
    model: toy:small                             # hub id, local folder, or toy:NAME (trained on first use)
    data: /data/mirror                           # optional: a data mirror for this study (as NEUROSPEC_DATA)
    defaults:                                    # options given to every step whose verb has them
      languages: [en, de, fr]
    steps:
      collect:                                   # a step named like its verb ...
        corpus_dir: ntrex128                     # a registered data set (neurospec data list) or a path
        mode: sentence
      lape:
        verb: select lape                        # ... or any name with `verb:`
        stats: $collect                          # the output of an earlier step

Several models: ``models:`` instead of ``model:``, a mapping of short names to models (or a list; each then
named after its model), and every step runs once per model into ``RUN_DIR/<name>/``; ``$step`` refers to the
same model's step. ``study.per_model`` holds one checked single-model study per name::

    models:
      gemma: gemma-3-270m
      toy: toy:small

A step's options are its verb's command-line options, with ``_`` or ``-``. Paths are relative to the
config file; a path option may name a registered data set instead (``ntrex128``, ``flores``), read
from the mirror or the cache of ``neurospec data fetch``. ``$NAME`` is step NAME's output, ``$NAME/sub`` a path
inside it, and ``$NAME.random`` a companion file it writes (``select culture --random-sets N``). Every mistake -- a misspelt key,
an unknown step or verb, a missing path, a value the verb refuses, a reference to a later step, a
data set that is not here (with the command that fetches it) -- is refused here, naming the file and line.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from neurospec.pipeline.values import Model, Reference
from neurospec.pipeline.verbs import STEP_VERBS, Verb, step_verb
from neurospec.pipeline.yaml_lines import LineMap, load_yaml_with_lines
from neurospec.util.errors import ConfigError, NeurospecError, RenamedWarning

TOP_LEVEL_KEYS = ("title", "model", "models", "data", "defaults", "steps")
STEP_NAME = re.compile(r"^[A-Za-z][\w-]*$")
REFERENCE = re.compile(r"^\$(?P<step>[A-Za-z][\w-]*)(?:\.(?P<companion>\w+))?(?P<sub>/.*)?$")
# Options whose value is NAME=PATH (repeatable); the PATH part is a path like any other.
NAMED_PATH_OPTIONS = ("corpus", "path")


@dataclass
class Step:
    """One step: a verb and its options, with resolved values and the line of each key."""

    name: str
    verb: Verb
    line: int
    values: dict[str, Any] = field(default_factory=dict)     # option -> str | bool | list | Path | Reference
    lines: dict[str, int] = field(default_factory=dict)

    def references(self) -> list[Reference]:
        found = []
        for value in self.values.values():
            for item in value if isinstance(value, list) else [value]:
                target = item[1] if isinstance(item, tuple) else item
                if isinstance(target, Reference):
                    found.append(target)
        return found

    @property
    def upstream(self) -> list[str]:
        return list(dict.fromkeys(ref.step for ref in self.references()))


@dataclass
class Study:
    """A parsed and checked study config."""

    path: Path
    text: str
    title: str | None
    model: Model | None
    data: Path | None
    steps: list[Step]
    per_model: dict[str, "Study"] = field(default_factory=dict)  # name -> its single-model study (``models:``)

    def step(self, name: str) -> Step:
        return next(step for step in self.steps if step.name == name)

    def toy_models(self) -> list[str]:
        """The toy recipes the steps load (``toy:NAME``), in order of first use."""
        names = [step.values["model"].value for step in self.steps
                 if isinstance(step.values.get("model"), Model) and step.values["model"].kind == "toy"]
        return list(dict.fromkeys(names))


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def load_study(path: str | Path) -> Study:
    """Read and check the study config at ``path`` (see the module docstring); nothing runs."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study config {path} not found; give the path of a YAML file (examples/ has some)")
    document = load_yaml_with_lines(path)
    if not isinstance(document, LineMap):
        raise ConfigError(f"{_where(path, 1)}: a study config is a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    base = path.resolve().parent
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{_where(path, document.line_of(key))}: unknown key {key!r}"
                              f"{_suggest(key, TOP_LEVEL_KEYS)} (a study has {', '.join(TOP_LEVEL_KEYS)})")
    if "model" in document and "models" in document:
        raise ConfigError(f"{_where(path, document.line_of('models'))}: a study names one `model:` or several "
                          "`models:`, not both; remove one")
    model = _model(document.get("model"), path, base, document.line_of("model")) if "model" in document else None
    data = None
    if document.get("data") is not None:
        data = _existing_path(document["data"], path, base, document.line_of("data"), "data folder")
    with data_environment(data):
        if "models" not in document:
            return _load_steps(document, path, base, model, data)
        per_model = {name: _load_steps(document, path, base, each, data)
                     for name, each in _models(document, path, base).items()}
    return Study(path=path, text=path.read_text(encoding="utf-8"), title=document.get("title"), model=None,
                 data=data, steps=[], per_model=per_model)


def _models(document: LineMap, path: Path, base: Path) -> dict[str, Model]:
    """``models:`` as name -> Model: a mapping of names to models, or a list (each named after its model)."""
    value, line = document["models"], document.line_of("models")
    if isinstance(value, LineMap):
        named = {str(name): (item, value.line_of(name)) for name, item in value.items()}
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        named = {re.sub(r"[^A-Za-z0-9_-]+", "-", item.rsplit("/", 1)[-1]).strip("-"): (item, line) for item in value}
        if len(named) < len(value):
            raise ConfigError(f"{_where(path, line)}: two models of `models:` get the same name; name them: "
                              "`models: {a: MODEL, b: MODEL}`")
    else:
        named = {}
    if len(named) < 2:
        raise ConfigError(f"{_where(path, line)}: `models:` names two or more models, as a mapping such as "
                          "`{gemma: gemma-3-270m, toy: toy:small}` or a list; for one model write `model:`")
    for name, (_, name_line) in named.items():
        if not STEP_NAME.match(name) or name.lower() in {"report", "study.json", "config.yaml"}:
            raise ConfigError(f"{_where(path, name_line)}: model name {name!r} must start with a letter and hold "
                              "only letters, digits, _ and - (it names the model's folder in the run)")
    return {name: _model(item, path, base, name_line) for name, (item, name_line) in named.items()}


def _load_steps(document: LineMap, path: Path, base: Path, model: Model | None, data: Path | None) -> Study:
    defaults = document.get("defaults") or LineMap()
    if not isinstance(defaults, LineMap):
        raise ConfigError(f"{_where(path, document.line_of('defaults'))}: defaults is a mapping of option: value")
    raw_steps = document.get("steps")
    if not isinstance(raw_steps, LineMap) or not raw_steps:
        raise ConfigError(f"{_where(path, document.line_of('steps'))}: a study needs `steps:`, a mapping of step name "
                          f"to options, e.g. `collect: {{corpus_dir: data/ntrex128}}`")
    steps: list[Step] = []
    for name, options in raw_steps.items():
        steps.append(_step(str(name), options, raw_steps.line_of(name), defaults, model, path, base, steps))
    _check_defaults_used(defaults, steps, path)
    study = Study(path=path, text=path.read_text(encoding="utf-8"), title=document.get("title"), model=model,
                  data=data, steps=steps)
    _check_data(study)
    _check_command_lines(study)
    _check_values(study)
    return study


@contextlib.contextmanager
def data_environment(data: Path | None) -> Iterator[None]:
    """NEUROSPEC_DATA set to a study's ``data:`` folder for the block (unchanged when it has none)."""
    if data is None:
        yield
        return
    before = os.environ.get("NEUROSPEC_DATA")
    os.environ["NEUROSPEC_DATA"] = str(data)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("NEUROSPEC_DATA", None)
        else:
            os.environ["NEUROSPEC_DATA"] = before


def datasets_read(step: Step) -> dict[str, int]:
    """Registered data sets ``step`` reads by name (``parallel: flores``, ``data: blend``, ``benchmarks:
    blend,qnli``, ``eval``'s task), each with the line naming it; none for a step given ``data_dir``."""
    from neurospec.data.registry import dataset_named

    if "data_dir" in step.values:
        return {}
    found: dict[str, int] = {}
    for option, value in step.values.items():
        if option in step.verb.kind.foreign:  # lm-eval's task xcopa is not neurospec's data set xcopa
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str):
                continue
            for word in item.split(","):
                name = dataset_named(word.strip())
                if name is not None:
                    found.setdefault(name, step.lines.get(option, step.line))
    return found


def datasets_in_config(path: str | Path) -> list[str]:
    """Every registered data set a study config names in its steps' options, read from the YAML alone
    (so that ``neurospec data fetch --for`` works before the data is here)."""
    from neurospec.data.registry import dataset_named

    document = load_yaml_with_lines(Path(path))
    steps = document.get("steps") if isinstance(document, dict) else None
    found: list[str] = []
    for step_name, options in (steps or {}).items():
        verb = options.get("verb", step_name) if isinstance(options, dict) else None
        kind = STEP_VERBS.get(verb) if isinstance(verb, str) else None
        for key, value in options.items() if isinstance(options, dict) else ():
            if kind is not None and str(key).replace("-", "_") in kind.foreign:
                continue
            for item in value if isinstance(value, list) else [value]:
                for word in str(item).split(","):
                    name = dataset_named(word.strip())
                    if name is not None and name not in found:
                        found.append(name)
    return found


def _check_data(study: Study) -> None:
    from neurospec.data.locate import where

    for step in study.steps:
        for name, line in datasets_read(step).items():
            if where(name) is None:
                raise ConfigError(f"{_where(study.path, line)}: step {step.name!r} reads the data set {name!r}, "
                                  f"which is not here; run `neurospec data fetch --for {study.path}` (every "
                                  f"data set this study reads), or set NEUROSPEC_DATA to a mirror")


def _model(value: Any, path: Path, base: Path, line: int) -> Model:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{_where(path, line)}: model is a hub id, a local folder or .gguf file, a built-in name "
                          f"or toy:NAME, not {value!r}")
    from neurospec.core.model_sources import BUILTIN_MODELS

    if value in BUILTIN_MODELS:
        return Model("builtin", value, line)
    if value.startswith("toy:"):
        from neurospec.toy import RECIPES

        name = value[4:]
        if name not in RECIPES:
            raise ConfigError(f"{_where(path, line)}: unknown toy model {name!r}{_suggest(name, RECIPES)} "
                              f"(toy recipes: {', '.join(RECIPES)})")
        return Model("toy", name, line)
    local = (base / value).expanduser()
    if local.exists():
        return Model("local", str(local.resolve()), line)
    if value.startswith((".", "/", "~")):
        raise ConfigError(f"{_where(path, line)}: model folder {value} not found (looked at {local}); "
                          f"fix the path, or give a hub id such as Qwen/Qwen2.5-0.5B")
    return Model("hub", value, line)


def _existing_path(value: Any, path: Path, base: Path, line: int, what: str) -> Path:
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ConfigError(f"{_where(path, line)}: {what} must be a path, not {value!r}")
    resolved = (base / str(value)).expanduser()
    if not resolved.exists() and what != "data folder":
        from neurospec.data.registry import dataset_named

        name = dataset_named(str(value))
        if name is not None:
            return _dataset_folder(name, path, line)
    if not resolved.exists():
        raise ConfigError(f"{_where(path, line)}: {what} {value} not found (looked at {resolved}); "
                          f"paths in a study config are relative to the config file")
    return resolved.resolve()


def _dataset_folder(name: str, path: Path, line: int) -> Path:
    """The folder of registered data set ``name`` (mirror, then cache); its absence names the fetch command."""
    from neurospec.data.locate import where

    found = where(name)
    if found is None:
        raise ConfigError(f"{_where(path, line)}: the data set {name!r} is not here; run `neurospec data fetch "
                          f"--for {path}` (every data set this study reads), or set NEUROSPEC_DATA to a mirror")
    return found[1].resolve()


def _step(name: str, options: Any, line: int, defaults: LineMap, model: Model | None, path: Path, base: Path,
          earlier: list[Step]) -> Step:
    if not STEP_NAME.match(name):
        raise ConfigError(f"{_where(path, line)}: step name {name!r} must start with a letter and hold only "
                          f"letters, digits, _ and -")
    if options is None:
        options = LineMap()
        options.line, options.key_lines = line, {}
    if not isinstance(options, LineMap):
        raise ConfigError(f"{_where(path, line)}: step {name!r} needs a mapping of options, not {options!r}")
    verb_name = options.get("verb", name)
    if verb_name not in STEP_VERBS:
        hint = _suggest(verb_name, STEP_VERBS)
        where = options.line_of("verb") if "verb" in options else line
        raise ConfigError(f"{_where(path, where)}: unknown step {verb_name!r}{hint} "
                          f"(a step runs one of: {', '.join(STEP_VERBS)}; name it so or add `verb:`)")
    step = Step(name=name, verb=step_verb(verb_name), line=line)
    given = {key: options.line_of(key) for key in options if key != "verb"}
    for key, key_line in given.items():
        option = _option_name(step, key, path, key_line)
        step.values[option] = _value(step, option, options[key], path, base, key_line, earlier)
        step.lines[option] = key_line
    for key in defaults:
        option = step.verb.option_named(str(key))
        if option is not None and option not in step.values and option != "out":
            step.values[option] = _value(step, option, defaults[key], path, base, defaults.line_of(key), earlier)
            step.lines[option] = defaults.line_of(key)
    if "model" in step.verb.options and "model" not in step.values:
        if model is None:
            raise ConfigError(f"{_where(path, line)}: step {name!r} needs a model: add `model:` (or `models:`) at "
                              "the top of the file")
        step.values["model"] = model
        step.lines["model"] = model.line
    return step


def _option_name(step: Step, key: Any, path: Path, line: int) -> str:
    renamed = step.verb.renamed_option(str(key))
    if renamed is not None:
        warnings.warn(f"{_where(path, line)}: step {step.name!r}: {key} is now {renamed}; the old name goes in the "
                      "next release", RenamedWarning, stacklevel=2)
    option = renamed or step.verb.option_named(str(key)) or str(key).replace("-", "_")
    if option == "out" or option in step.verb.kind.output_options:
        raise ConfigError(f"{_where(path, line)}: step {step.name!r} sets {key!r}, but the pipeline chooses where "
                          f"steps write (RUN_DIR/{step.name}); remove it and refer to the output as ${step.name}")
    if option not in step.verb.options:
        choices = step.verb.keys
        raise ConfigError(f"{_where(path, line)}: unknown option {key!r} for step {step.name!r} (verb "
                          f"{step.verb.name}){_suggest(option, choices)}; its options: {', '.join(choices)}")
    return option


def _value(step: Step, option: str, value: Any, path: Path, base: Path, line: int, earlier: list[Step]) -> Any:
    spec = step.verb.options[option]
    if isinstance(value, LineMap) and option in NAMED_PATH_OPTIONS:     # {name: path}, each on its own line
        return [_item(step, option, f"{key}={item}", path, base, value.line_of(key), earlier)
                for key, item in value.items()]
    if isinstance(value, (dict, LineMap)):
        raise ConfigError(f"{_where(path, line)}: option {option!r} of step {step.name!r} takes a value or a list, "
                          f"not a mapping")
    if spec.is_flag:
        if not isinstance(value, bool):
            raise ConfigError(f"{_where(path, line)}: option {option!r} of step {step.name!r} is a switch: "
                              f"write true or false, not {value!r}")
        return value
    if option == "model":
        return _model(value, path, base, line)
    items = value if isinstance(value, list) else [value]
    if spec.multiple and not isinstance(value, list):
        value = items
    resolved = [_item(step, option, item, path, base, line, earlier) for item in items]
    return resolved if isinstance(value, list) else resolved[0]


def _item(step: Step, option: str, item: Any, path: Path, base: Path, line: int, earlier: list[Step]) -> Any:
    if isinstance(item, (list, dict)) or item is None:
        raise ConfigError(f"{_where(path, line)}: option {option!r} of step {step.name!r} has an empty or nested "
                          f"value {item!r}")
    spec = step.verb.options[option]
    text = str(item).lower() if isinstance(item, bool) else str(item)
    if option in NAMED_PATH_OPTIONS and "=" in text:
        name, _, target = text.partition("=")
        if target.startswith("hf:"):
            return text
        return (name, _path_or_reference(step, option, target, path, base, line, earlier))
    if spec.is_path:
        return _path_or_reference(step, option, text, path, base, line, earlier)
    if text.startswith("$"):
        raise ConfigError(f"{_where(path, line)}: option {option!r} of step {step.name!r} is not a path, so it "
                          f"cannot take the step output {text}")
    return text


def _path_or_reference(step: Step, option: str, text: str, path: Path, base: Path, line: int,
                       earlier: list[Step]) -> Path | Reference:
    if text.startswith("$"):
        match = REFERENCE.match(text)
        names = [s.name for s in earlier]
        if not match:
            raise ConfigError(f"{_where(path, line)}: {text!r} is not a step output; write $STEP, $STEP/sub/path "
                              f"or $STEP.companion")
        if match["step"] not in names:
            later = "" if match["step"] != step.name else " (a step cannot use its own output)"
            raise ConfigError(f"{_where(path, line)}: {text} refers to no earlier step{later}"
                              f"{_suggest(match['step'], names)}; steps run in the file's order, "
                              f"earlier ones: {', '.join(names) or 'none'}")
        source = next(s for s in earlier if s.name == match["step"])
        companion = match["companion"]
        if companion and companion not in source.verb.kind.companions:
            have = ", ".join(source.verb.kind.companions) or "none"
            raise ConfigError(f"{_where(path, line)}: step {source.name!r} ({source.verb.name}) writes no "
                              f"{companion!r} file (its companions: {have})")
        if match["sub"] and source.verb.kind.output != "folder":
            raise ConfigError(f"{_where(path, line)}: step {source.name!r} writes a file, so {text} has no "
                              f"path inside it; write ${source.name}")
        return Reference(match["step"], companion, match["sub"].lstrip("/") if match["sub"] else None)
    return _existing_path(text, path, base, line, f"option {option!r} of step {step.name!r}: path")


def _check_defaults_used(defaults: LineMap, steps: list[Step], path: Path) -> None:
    for key in defaults:
        if str(key).replace("-", "_") == "out":
            raise ConfigError(f"{_where(path, defaults.line_of(key))}: defaults cannot set out: the pipeline "
                              f"chooses where each step writes")
        if not any(step.verb.option_named(str(key)) for step in steps):
            every = sorted({k for step in steps for k in step.verb.keys})
            raise ConfigError(f"{_where(path, defaults.line_of(key))}: default {key!r} is an option of no step"
                              f"{_suggest(str(key).replace('-', '_'), every)}")


# Values the command line accepts as numbers but the verbs refuse once they run: (low, high, low included,
# high included). Checked with the config, so that --dry-run catches them before any step runs.
RANGES = {"top_rate": (0, 1, False, True), "filter_rate": (0, 1, False, True), "bar_rate": (0, 1, False, True),
          "mlp_rate": (0, 1, True, True), "attention_rate": (0, 1, True, True), "countryrc_rate": (0, 1, True, True),
          "specific_rate": (0, 1, True, True), "prompt_fraction": (0, 1, False, False)}
# Options that name languages: every code must be one neurospec knows (neurospec.data.languages).
LANGUAGE_OPTIONS = ("languages", "sources")


def _check_values(study: Study) -> None:
    from neurospec.data.languages import resolve

    for step in study.steps:
        for option, value in step.values.items():
            where = f"{_where(study.path, step.lines.get(option, step.line))}: step {step.name!r}"
            flag = step.verb.options[option].flag or option
            if option in RANGES and isinstance(value, str):
                low, high, low_in, high_in = RANGES[option]
                try:
                    number = float(value)
                except ValueError:
                    continue  # the command line check names it
                inside = (low <= number if low_in else low < number) and (number <= high if high_in else number < high)
                if not inside:
                    interval = f"{'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
                    raise ConfigError(f"{where}: {flag} {value} is not in {interval}; give a fraction such as 0.01")
            if option in LANGUAGE_OPTIONS:
                for code in value if isinstance(value, list) else [value]:
                    if not isinstance(code, str):
                        continue
                    for part in code.split(","):
                        if not part.strip():
                            raise ConfigError(f"{where}: {flag} {code!r} has an empty item; give codes such as en,fr")
                        try:
                            resolve(part.strip())
                        except NeurospecError as err:
                            raise ConfigError(f"{where}: {flag}: {err}") from None
            if option == "corpus":  # LANGUAGE=PATH
                for item in value if isinstance(value, list) else [value]:
                    name = item[0] if isinstance(item, tuple) else str(item).partition("=")[0]
                    try:
                        resolve(name)
                    except NeurospecError as err:
                        raise ConfigError(f"{where}: --corpus {name}=...: {err}") from None


def _check_command_lines(study: Study) -> None:
    """Build every step's options now (types, minimums, required options), with stand-in paths for outputs not
    yet written."""
    import tempfile

    from neurospec.pipeline.paths import output_path, reference_path, step_values

    with tempfile.TemporaryDirectory(prefix="neurospec-check-") as scratch:
        stand_ins = Path(scratch)
        for step in study.steps:
            for ref in step.references():
                target = reference_path(study, ref, stand_ins)
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.mkdir() if target.suffix != ".json" else target.write_text("{}")
            values = step_values(study, step, stand_ins,
                                 toy_folders={name: stand_ins / "model" for name in study.toy_models()})
            try:
                step.verb.check(values, out=output_path(stand_ins, step))
            except NeurospecError as err:
                line = next((step.lines.get(name, step.line) for name, spec in step.verb.options.items()
                             if spec.flag and spec.flag in str(err)), step.line)
                raise ConfigError(f"{_where(study.path, line)}: step {step.name!r}: {err}") from None

