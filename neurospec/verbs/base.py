"""What every verb function shares: typed options built from plain values, progress lines, provenance.

    @dataclass
    class PplOptions(VerbOptions):
        model: str
        out: Path
        batch_size: int = option(8, min=1)
    options = PplOptions.from_values({"model": "gemma-3-270m", "out": "runs/ppl", "batch_size": "4"})
    say = progress_printer(options.quiet)
    stamp_result(path, "ppl", options, lm.model)

An options class lists a verb's options with the names, defaults and types of its command-line flags
(``--batch-size`` is ``batch_size``); the CLI, the pipeline and Python callers all build one and call the verb
function with it. ``from_values`` converts strings (from a config file or a command line) to each field's type
and checks declared minimums, naming the flag in its one-line errors.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

from neurospec.util.errors import NeurospecError
from neurospec.util.text import printable

OUTPUT_OPTIONS = ("out", "random_out", "run_dir")


def verb_options(verb: str) -> Callable[[type], type]:
    """``@verb_options("ppl")`` over an options class: a keyword-only dataclass of verb ``verb`` whose constructor
    (and :meth:`VerbOptions.from_values`) also takes the verb's old option names
    (:data:`neurospec.verbs.renames.RENAMED`), with a deprecation warning."""
    from neurospec.verbs.renames import RENAMED, take_renamed

    def decorate(cls: type) -> type:
        cls = dataclasses.dataclass(kw_only=True)(cls)
        cls.VERB = verb
        if RENAMED.get(verb):
            plain_init = cls.__init__

            @functools.wraps(plain_init)
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                plain_init(self, *args, **take_renamed(verb, kwargs))

            cls.__init__ = __init__
        return cls
    return decorate


def option(default: Any = dataclasses.MISSING, *, flag: str | None = None, min: float | None = None,
           positional: bool = False) -> Any:
    """A field with command-line facts: its ``flag`` when it is not ``--`` + the name with dashes, its
    minimum, or ``positional`` for an argument."""
    metadata = {"flag": flag, "min": min, "positional": positional}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One option of a verb: its Python name, flag, type and what the pipeline needs to know of it."""

    name: str
    flag: str | None           # '--max-tokens'; None for a positional argument
    annotation: Any            # the declared type (Path, int, list[str], Optional[str], an Enum)
    is_flag: bool              # a boolean switch
    multiple: bool             # may be repeated (a list)
    required: bool
    default: Any
    minimum: float | None

    @property
    def base_type(self) -> Any:
        """``Optional[Path]`` -> Path; ``list[str]`` -> str."""
        return _unwrap(self.annotation)

    @property
    def is_path(self) -> bool:
        return self.base_type is Path


def _unwrap(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return _unwrap(args[0]) if args else annotation


class VerbOptions:
    """Base of every verb's options dataclass."""

    VERB: typing.ClassVar[str] = ""

    @classmethod
    def fields(cls) -> dict[str, FieldSpec]:
        """Every option by Python name, in declaration order."""
        hints = typing.get_type_hints(cls)
        specs = {}
        for item in dataclasses.fields(cls):
            meta = item.metadata
            annotation = hints[item.name]
            origin = typing.get_origin(annotation)
            has_default = item.default is not dataclasses.MISSING or item.default_factory is not dataclasses.MISSING
            default = (item.default if item.default is not dataclasses.MISSING
                       else item.default_factory() if item.default_factory is not dataclasses.MISSING else None)
            specs[item.name] = FieldSpec(
                name=item.name,
                flag=None if meta.get("positional") else (meta.get("flag") or "--" + item.name.replace("_", "-")),
                annotation=annotation, is_flag=annotation is bool, multiple=origin is list,
                required=not has_default, default=default, minimum=meta.get("min"))
        return specs

    @classmethod
    def from_values(cls, values: Mapping[str, Any]):
        """The options from plain values (strings, numbers, lists, paths), converted and checked."""
        from neurospec.verbs.renames import take_renamed

        specs = cls.fields()
        values = take_renamed(cls.VERB, values)
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise NeurospecError(f"unknown option {unknown[0]!r}; the options are {', '.join(specs)}")
        converted = {name: convert(specs[name], value) for name, value in values.items()}
        missing = [spec.flag or name for name, spec in specs.items() if spec.required and name not in converted]
        if missing:
            raise NeurospecError(f"missing option {missing[0]}: give it a value")
        return cls(**converted)

    def option_values(self) -> dict[str, Any]:
        """``{name: value}`` of every option, as given (not ``values``: sweep has an option of that name)."""
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}


def convert(spec: FieldSpec, value: Any) -> Any:
    """``value`` as ``spec``'s type: ``"4"`` -> 4 for an int, ``"a.json"`` -> Path, ``"true"`` -> True."""
    if value is None:
        return None
    if spec.multiple:
        items = value if isinstance(value, (list, tuple)) else [value]
        return [_scalar(spec, item) for item in items]
    if isinstance(value, (list, tuple)) and spec.base_type is str:   # a list option written as YAML list
        value = ",".join(map(str, value))
    return _scalar(spec, value)


def _scalar(spec: FieldSpec, value: Any) -> Any:
    kind = spec.base_type
    name = spec.flag or spec.name
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false"):
                    raise ValueError
                return value.lower() == "true"
            return bool(value)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return value if isinstance(value, kind) else kind(str(value))
        if kind is int:
            if isinstance(value, float) or (isinstance(value, str) and not value.strip().lstrip("+-").isdigit()):
                raise ValueError
            number = int(value)
        elif kind is float:
            number = float(value)
        elif kind is Path:
            return value if isinstance(value, Path) else Path(str(value))
        else:
            return value if isinstance(value, str) else str(value)
    except ValueError:
        is_enum = isinstance(kind, type) and issubclass(kind, enum.Enum)
        choices = f" (one of {', '.join(m.value for m in kind)})" if is_enum else ""
        raise NeurospecError(f"{name} {value!r} is not a valid {getattr(kind, '__name__', kind)}{choices}") from None
    if spec.minimum is not None and number < spec.minimum:
        raise NeurospecError(f"{name} {value!r} is below its minimum {spec.minimum:g}")
    return number


def progress_printer(quiet: bool) -> Callable[..., None]:
    """``say("text", value)``: one line on stdout unless ``quiet``, control characters made visible."""
    def say(*parts: Any) -> None:
        if not quiet:
            print(printable(" ".join(str(p) for p in parts)), flush=True)
    return say


def options_provenance(verb: str, options: VerbOptions, model: Any = None) -> dict:
    """The provenance record of a verb's result: ``model``, every option naming an existing file or folder
    as an input (``LANG=PATH`` items too), and every option's value (outputs left out)."""
    values = options.option_values()
    if "batch_size_used" in options.__dict__:            # what --batch-size auto chose
        values["batch_size_used"] = options.__dict__["batch_size_used"]
    return values_provenance(f"neurospec {verb}", values, model)


def values_provenance(command: str, values: Mapping[str, Any], model: Any = None) -> dict:
    """:func:`options_provenance` for plain ``{option: value}`` (a command line's parameters)."""
    from neurospec.core.provenance import provenance

    inputs: dict[str, Path] = {}
    values = {name: value for name, value in values.items() if name not in OUTPUT_OPTIONS}
    for name, value in values.items():
        if value is None:
            continue
        several = isinstance(value, (list, tuple))
        for item in value if several else [value]:
            if isinstance(item, Path) and item.exists():
                inputs[f"{name}:{item}" if several else name] = item
            elif isinstance(item, str) and "=" in item:
                label, _, target = item.partition("=")
                if target and Path(target).expanduser().exists():
                    inputs[f"{name}:{label}"] = Path(target).expanduser()
    return provenance(model, inputs, values, command=command)


def stamp_result(written: Path, verb: str, options: VerbOptions, model: Any = None, main: str | None = None) -> Path:
    """Add the provenance of ``verb`` run with ``options`` to the JSON result ``written`` (or ``written / main``),
    then write its tidy table ``<name>.tidy.csv`` beside it (:func:`neurospec.results.tidy.write_tidy_csv`)."""
    from neurospec.core.provenance import stamp
    from neurospec.results.tidy import write_tidy_csv

    stamp(Path(written) / main if main else Path(written), options_provenance(verb, options, model))
    write_tidy_csv(Path(written) / main if main else Path(written))
    return Path(written)


def split_list(text: str | list | None, flag: str, *, allow_empty: bool = False, example: str = "en,zh,fr"
               ) -> list[str] | None:
    """``"en, zh,fr"`` (or ``["en", "zh", "fr"]``) -> ``["en", "zh", "fr"]``; None stays None; ``""`` is ``[]``
    with ``allow_empty``. An empty item (``"en,,fr"``) is an error naming ``flag``."""
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        text = ",".join(map(str, text))
    if allow_empty and not text.strip():
        return []
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise NeurospecError(f"{flag} {text!r} has an empty item; give items separated by commas, e.g. {example}")
    return names


def one_group(groups: str, why: str) -> str:
    """``--groups`` where a verb takes exactly one group (``why`` says why, in the error)."""
    names = split_list(groups, "--groups") or []
    if len(names) != 1:
        raise NeurospecError(f"--groups {groups!r}: {why}; name one group")
    return names[0]


@dataclasses.dataclass(kw_only=True)
class ModelOptions(VerbOptions):
    """The options of every verb that loads a model."""

    model: str
    revision: str | None = None
    model_args: list[str] = option([], flag="--model-arg")
    dtype: str = "auto"
    device: str | None = None
    device_map: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        from neurospec.core.models import parse_model_args

        parse_model_args(self.model_args)                        # checked before any work too
        if isinstance(getattr(self, "batch_size", None), str):   # "auto" or a number, checked before any work
            from neurospec.core.batch_size import parse

            parse(self.batch_size)

    def batch_for(self, lm: Any, *, tokens: int, backward: bool = False) -> int:
        """The batch size to run with: ``batch_size`` as given, or for ``auto`` the largest that fits sequences of
        ``tokens`` tokens (:func:`neurospec.core.batch_size.batch_size`); remembered for the provenance record."""
        from neurospec.core.batch_size import batch_size

        used = batch_size(lm.model, getattr(self, "batch_size", "auto"), tokens=tokens, backward=backward)
        self.__dict__["batch_size_used"] = used
        return used

    def model_key(self) -> tuple:
        """What identifies the loaded model: two steps with the same key can share one."""
        return (self.model, self.revision, tuple(self.model_args), self.dtype, self.device, self.device_map,
                self.trust_remote_code)


def load_for(options: ModelOptions, lm: Any = None) -> Any:
    """``lm`` when the caller passes a loaded model (the pipeline shares one per study), else the model of ``options``."""
    if lm is not None:
        return lm
    from neurospec.core.models import load_model, parse_model_args

    return load_model(options.model, dtype=options.dtype, device=rank_device(options.device),
                      device_map=options.device_map, trust_remote_code=options.trust_remote_code,
                      revision=options.revision, model_args=parse_model_args(options.model_args),
                      quiet=bool(getattr(options, "quiet", False)))


def corpora_from_options(corpus: list[str], corpus_dir: Path | None, languages: str | None, text_field: str,
                         split: str | None) -> list:
    """The corpora named by ``--corpus LANG=PATH`` (repeatable) and ``--corpus-dir`` (with ``--languages``)."""
    from neurospec.data.corpora import corpora_in_directory, parse_corpus_option

    corpora = [parse_corpus_option(str(value), text_field=text_field, split=split) for value in corpus]
    if corpus_dir is not None:
        corpora += corpora_in_directory(corpus_dir, split_list(languages, "--languages"), text_field=text_field,
                                        split=split)
    if not corpora:
        raise NeurospecError("no corpus: give --corpus LANGUAGE=PATH (repeatable) or --corpus-dir FOLDER")
    return corpora


def check_not_an_input(out: Path, out_option: str, inputs: Mapping[str, Path | None]) -> None:
    """Refuse an output file that is one of the verb's input files (``{flag: path}``): writing it would destroy
    that input."""
    import os

    for flag, path in inputs.items():
        if path is not None and os.path.realpath(out) == os.path.realpath(path):
            raise NeurospecError(f"{out_option} {out} is the {flag} file: writing it would overwrite that input; "
                                 f"choose another {out_option}")


def rank_device(device: str | None) -> str | None:
    """``rank_device(None)`` -> ``"cuda:1"`` under torchrun's LOCAL_RANK=1: each process takes the GPU of its
    local rank unless a device was given (or there is no GPU)."""
    import os

    import torch

    if device is None and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device
