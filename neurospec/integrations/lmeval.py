"""lm-evaluation-harness bridge: any lm-eval task, run with a neurospec intervention active.

    from neurospec.integrations.lmeval import run_lm_eval, NeurospecLM
    results = run_lm_eval("./my-model", ["arc_easy"], intervention="zero_fr.json", limit=200,
                          output="out/arc_easy.zero_fr.json")
    results["results"]["arc_easy"]["acc,none"]

    lm = NeurospecLM(pretrained=model, tokenizer=tok, intervention=InterventionSpec.load("zero_fr.json"))
    lm_eval.simple_evaluate(lm, tasks=["arc_easy"])          # an lm-eval LM like any other

    python -m neurospec.integrations.lmeval --model neurospec \\
        --model_args pretrained=./my-model,intervention=zero_fr.json \\
        --tasks my_task --include_path ./tasks --device cpu --output_path out/

:class:`NeurospecLM` is lm-eval's ``HFLM`` (registered as ``--model neurospec``) with one more
argument, ``intervention``: an intervention file (see ``docs/hooks.md``), a loaded
``InterventionSpec``, or ``Edit`` objects. It is checked against the loaded model before any
request runs, and is active in every forward pass lm-eval makes: ``loglikelihood`` (multiple
choice), ``loglikelihood_rolling`` (perplexity) and ``generate_until``, for every row of every batch;
padding is never edited. Without ``intervention`` the class is ``HFLM``, unchanged.

Position modes. ``positions="all"`` edits every token. For ``"prompt"`` / ``"continuation"``:

* log-likelihood requests: the prompt is the context tokens of each request (few-shot examples,
  question, BOS), the continuation the continuation tokens that are fed to the model; every row of a
  batch has its own boundary (these requests run through neurospec's own right-padded, masked
  forward pass, so the numbers equal :func:`neurospec.evaluate.scoring.score_continuations`);
* rolling log-likelihood: each window's context is the prompt, its scored tokens the continuation;
* ``generate_until``: the prompt is the (left-padded) input, the continuation what the model writes,
  as in :func:`neurospec.core.hooks.generate`.

lm-eval is an optional extra: ``pip install 'neurospec[lmeval]'``. Importing this module does not
import lm-eval; building the model class or running an evaluation does.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from neurospec.core.edits import Edit
from neurospec.core.hooks import intervene, prompt_boundary
from neurospec.interventions.files import InterventionSpec
from neurospec.util.errors import FileFormatError, NeurospecError, ShapeMismatchError, UnsupportedModelError
from neurospec.util.io import atomic_write_json, file_fingerprint

MODEL_NAME = "neurospec"
"""The name lm-eval knows the bridge by: ``--model neurospec``."""

_MODULE = "neurospec.integrations.lmeval"  # also when this file runs as __main__
_INSTALL_HINT = "pip install 'neurospec[lmeval]'"

# NeurospecLM is made on first access (module __getattr__), so that importing this module needs no lm-eval
__all__ = ["MODEL_NAME", "LmEvalMissingError", "NeurospecLM", "main", "register", "run_lm_eval"]  # noqa: F822


class LmEvalMissingError(NeurospecError):
    """lm-evaluation-harness is not installed."""


def _require_lm_eval() -> None:
    try:
        import lm_eval.models.huggingface  # noqa: F401
    except ImportError as err:
        raise LmEvalMissingError(
            f"the lm-eval bridge needs lm-evaluation-harness with its Hugging Face backend ({err}); "
            f"install it with: {_INSTALL_HINT}"
        ) from None


# --------------------------------------------------------------------------------------------
# Interventions: loaded and checked against the model


def _source_name(intervention: Any) -> str:
    if isinstance(intervention, (str, os.PathLike)):
        return str(intervention)
    if isinstance(intervention, InterventionSpec):
        return f"InterventionSpec with {len(intervention.edits)} edit(s) (files under {intervention.base_dir})"
    if isinstance(intervention, Edit):
        return f"Edit on {intervention.label}"
    return f"{len(intervention)} Edit(s)"


def _as_spec_or_edits(intervention: Any) -> InterventionSpec | list[Edit]:
    """Parse what ``intervention=`` may be; a file is read now (before any model is loaded)."""
    if isinstance(intervention, (str, os.PathLike)):
        path = Path(intervention)
        if not path.is_file():
            raise FileFormatError(
                f"intervention={str(intervention)!r}: no such file (looked at {path.resolve()}); pass the path of "
                "an intervention JSON file (written by InterventionSpec.save; `neurospec intervention check FILE "
                "--model M` checks one)"
            )
        return InterventionSpec.load(path)
    if isinstance(intervention, InterventionSpec):
        return intervention
    if isinstance(intervention, Edit):
        return [intervention]
    if isinstance(intervention, (list, tuple)) and intervention and all(isinstance(e, Edit) for e in intervention):
        return list(intervention)
    raise NeurospecError(
        f"intervention={intervention!r} is not an intervention: pass the path of an intervention JSON file, "
        "an InterventionSpec, an Edit or a list of Edits"
    )


def _fit(parsed: InterventionSpec | list[Edit], model, source: str, target: str) -> list[Edit]:
    """The edits, with every referenced file loaded and every check ``intervene`` makes done now."""
    try:
        edits = parsed.edits_for(model) if isinstance(parsed, InterventionSpec) else list(parsed)
        with intervene(model, edits):  # validates sites, layers, indices and value shapes; runs nothing
            pass
    except NeurospecError as err:
        raise type(err)(f"intervention {source} does not fit {target}: {err}") from None
    return edits


def _precheck_folder(parsed: InterventionSpec | list[Edit], folder: str, source: str, trust_remote_code: bool) -> None:
    """For a local model folder: check the intervention against the config alone, before loading weights."""
    from neurospec.core.models import empty_model

    try:
        skeleton = empty_model(folder, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - the real load reports what is wrong with the folder
        return
    try:
        _fit(parsed, skeleton, source, f"model {folder}")
    except (ShapeMismatchError, FileFormatError, UnsupportedModelError):
        raise
    except NeurospecError:  # anything that may depend on real weights is checked again after loading
        return


def _edit_summary(edit: Edit) -> dict[str, Any]:
    value: Any = {"none": None, "per_neuron": "per-neuron values"}.get(edit.value_kind, None)
    if edit.value_kind == "constant":
        value = edit.value
    elif edit.value_kind == "runtime":
        value = {"runtime": edit.value.name, **({"q": edit.value.q} if edit.value.q is not None else {})}
    return {"neurons": edit.label, "op": edit.op, "value": value, "factor": edit.factor,
            "positions": edit.positions, "count": edit.count}


# --------------------------------------------------------------------------------------------
# The lm-eval model class


class _Row:
    """One forward row of the edited log-likelihood pass, shared by requests that feed identical tokens."""

    __slots__ = ("requests", "start", "tokens")

    def __init__(self, tokens: list[int], start: int):
        self.tokens = tokens
        self.start = start  # column of the first continuation token: the prompt boundary
        self.requests: list[tuple[int, list[int]]] = []  # (request index, continuation tokens)


class _NeurospecMixin:
    """Everything :class:`NeurospecLM` adds to lm-eval's ``HFLM``; see the module docstring."""

    def __init__(self, pretrained: Any, intervention: Any = None, **kwargs: Any) -> None:
        from neurospec.core.models import LoadedModel

        self._edits: list[Edit] | None = None
        self._active_depth = 0
        self._feeds_last = False
        self.intervention_source: str | None = None
        self._intervention_file: Path | None = None
        if isinstance(pretrained, LoadedModel):
            if kwargs.get("tokenizer") is None:
                kwargs["tokenizer"] = pretrained.tokenizer
            pretrained = pretrained.model
        elif isinstance(pretrained, os.PathLike):
            pretrained = str(pretrained)
        parsed = None
        if intervention is not None:
            parsed = _as_spec_or_edits(intervention)  # a missing or malformed file fails before the model loads
            self.intervention_source = _source_name(intervention)
            if isinstance(intervention, (str, os.PathLike)):
                self._intervention_file = Path(intervention).resolve()
            if isinstance(pretrained, str) and Path(pretrained).is_dir() and not kwargs.get("subfolder"):
                _precheck_folder(parsed, pretrained, self.intervention_source, bool(kwargs.get("trust_remote_code")))
        super().__init__(pretrained=pretrained, **kwargs)
        if parsed is None:
            return
        if self.backend != "causal":
            raise NeurospecError(
                f"intervention {self.intervention_source}: neurospec edits decoder-only models, but lm-eval loaded "
                f"{pretrained if isinstance(pretrained, str) else type(pretrained).__name__} as {self.backend!r}; "
                "pass backend='causal' if it is a decoder"
            )
        name = pretrained if isinstance(pretrained, str) else getattr(self.model, "name_or_path", "") or "the model"
        self._edits = _fit(parsed, self.model, self.intervention_source, f"model {name}")
        # a run-time statistic covers every token of the call, so feed the whole scored sequence (as
        # neurospec.evaluate.scoring does) rather than lm-eval's sequence without its last token
        self._feeds_last = any(edit.value_kind == "runtime" for edit in self._edits)

    # ---------------------------------------------------------------- what is active

    @property
    def edits(self) -> list[Edit] | None:
        """The edits applied in every forward pass (None: no intervention, plain HFLM)."""
        return self._edits

    def intervention_info(self) -> dict[str, Any] | None:
        """A JSON-ready record of the intervention (source, fingerprint, edits); None without one."""
        if self._edits is None:
            return None
        info: dict[str, Any] = {"source": self.intervention_source}
        if self._intervention_file is not None:
            info["file"] = str(self._intervention_file)
            info["sha256"] = file_fingerprint(self._intervention_file)
        info["edits"] = [_edit_summary(edit) for edit in self._edits]
        return info

    def get_model_info(self) -> dict:
        info = super().get_model_info()
        info["neurospec_intervention"] = self.intervention_info()
        return info

    @contextlib.contextmanager
    def _intervention_active(self) -> Iterator[None]:
        """The intervention's hooks, entered once however deeply lm-eval's methods call each other."""
        if self._edits is None or self._active_depth:
            yield
            return
        self._active_depth = 1
        try:
            with intervene(self.model, self._edits):
                yield
        finally:
            self._active_depth = 0

    # ---------------------------------------------------------------- lm-eval entry points

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        with self._intervention_active():
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        with self._intervention_active():
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

    def generate_until(self, requests, disable_tqdm: bool = False):
        with self._intervention_active():
            return super().generate_until(requests, disable_tqdm=disable_tqdm)

    def _model_call(self, inps, attn_mask=None, labels=None):
        with self._intervention_active():
            return super()._model_call(inps, attn_mask=attn_mask, labels=labels)

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        if self._edits is None:
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        # the prompt is the padded input: everything generate() appends is continuation
        with self._intervention_active(), prompt_boundary(self.model, context.shape[1]):
            return super()._model_generate(context, max_length, stop, **generation_kwargs)

    def _detect_batch_size(self, requests=None, pos: int = 0):
        if self._edits is None:
            return super()._detect_batch_size(requests, pos)
        # a memory probe on a dummy batch: any boundary will do for prompt/continuation edits
        with self._intervention_active(), prompt_boundary(self.model, 0):
            return super()._detect_batch_size(requests, pos)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        if self._edits is None:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        with self._intervention_active():
            return self._edited_loglikelihood_tokens(requests, disable_tqdm, override_bs)

    # ---------------------------------------------------------------- log-likelihoods under an edit

    def _rows(self, requests) -> list[_Row]:
        """Requests as forward rows (identical rows shared), longest first.

        As lm-eval: context + continuation, cut from the left to ``max_length + 1`` tokens, without
        its last token (never an input). The prompt boundary of a row is the column where its
        continuation starts.
        """
        limit = self.max_length
        rows: dict[tuple, _Row] = {}
        for index, (_, context, continuation) in enumerate(requests):
            context, continuation = list(context), list(continuation)
            if not context or not continuation:
                raise NeurospecError(
                    f"log-likelihood request {index} has an empty {'context' if not context else 'continuation'} "
                    "after tokenisation; check the task's doc_to_text / doc_to_choice"
                )
            if len(continuation) > limit:
                raise NeurospecError(
                    f"log-likelihood request {index}: its continuation has {len(continuation)} tokens, more than the "
                    f"model's max_length ({limit}); pass a larger max_length= or shorten the task's choices"
                )
            full = (context + continuation)[-(limit + 1):]
            start = len(full) - len(continuation)
            fed = full if self._feeds_last and len(full) <= limit else full[:-1]
            key = (tuple(fed), start)
            if key not in rows:
                rows[key] = _Row(fed, start)
            rows[key].requests.append((index, continuation))
        return sorted(rows.values(), key=lambda row: (-len(row.tokens), row.tokens))

    def _edited_loglikelihood_tokens(self, requests, disable_tqdm: bool, override_bs: int | None):
        import torch.nn.functional as F
        from tqdm import tqdm

        if self.backend != "causal":
            raise NeurospecError("neurospec interventions apply to decoder-only (causal) models")
        rows = self._rows(requests)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        if not rows:
            return []
        batch_size = self.batch_size
        if batch_size == "auto":
            batch_size = override_bs or self._detect_batch_size([(None, rows[0].tokens, [0])], 0)
            self.batch_sizes[0] = batch_size
        batch_size = max(int(batch_size), 1)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        model, device = self.model, self.device
        progress = tqdm(total=len(requests), disable=(disable_tqdm or self.rank != 0),
                        desc="Running loglikelihood requests (neurospec intervention)")
        for begin in range(0, len(rows), batch_size):
            chunk = rows[begin:begin + batch_size]
            width = len(chunk[0].tokens)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, row in enumerate(chunk):  # right padding: a row's columns are its token positions
                input_ids[i, :len(row.tokens)] = torch.tensor(row.tokens, dtype=torch.long)
                attention_mask[i, :len(row.tokens)] = 1
            starts = torch.tensor([row.start for row in chunk], dtype=torch.long)
            with (torch.no_grad(),
                  torch.autocast(device_type=device.type, dtype=self.mixed_precision_dtype,
                                 enabled=self.mixed_precision_dtype is not None),
                  prompt_boundary(model, starts)):
                logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
            for i, row in enumerate(chunk):
                for index, continuation in row.requests:
                    # the token at column t is predicted at column t - 1
                    piece = logits[i, row.start - 1:row.start - 1 + len(continuation)]
                    logprobs = F.log_softmax(piece, dim=-1, dtype=self.softmax_dtype)
                    target = torch.tensor(continuation, dtype=torch.long, device=logprobs.device)
                    answer = (float(logprobs.gather(-1, target[:, None]).sum()),
                              bool((logprobs.argmax(-1) == target).all()))
                    results[index] = answer
                    request_str = requests[index][0]
                    if request_str is not None:
                        self.cache_hook.add_partial("loglikelihood", request_str, answer)
                    progress.update(1)
        progress.close()
        return results


_CLASS: type | None = None


def _model_class() -> type:
    """``NeurospecLM``: built (lm-eval imported) and registered on first use."""
    global _CLASS
    if _CLASS is None:
        _require_lm_eval()
        from lm_eval.models.huggingface import HFLM

        class NeurospecLM(_NeurospecMixin, HFLM):
            __doc__ = (
                "lm-eval's HFLM with a neurospec intervention active in every forward pass.\n\n"
                "``NeurospecLM(pretrained=PATH_OR_MODEL, tokenizer=None, intervention=FILE_OR_SPEC, **hflm_args)``;\n"
                "without ``intervention`` it is HFLM. ``pretrained`` may also be a ``neurospec.LoadedModel``.\n"
            )

        NeurospecLM.__module__ = _MODULE
        NeurospecLM.__qualname__ = "NeurospecLM"
        _CLASS = NeurospecLM
        register()
    return _CLASS


def register() -> None:
    """Make ``--model neurospec`` known to lm-eval's registry (idempotent; lm-eval must be installed)."""
    _require_lm_eval()
    import lm_eval.models  # noqa: F401  - lm-eval adds its own models only to an empty registry
    from lm_eval.api.registry import model_registry, register_model

    if _CLASS is not None:
        register_model(MODEL_NAME)(_CLASS)  # replaces the lazy placeholder below, if it is there
    elif MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=f"{_MODULE}:NeurospecLM")


def __getattr__(name: str) -> Any:
    if name == "NeurospecLM":
        return _model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# Python entry point


def _jsonable(value: Any) -> Any:
    """lm-eval's results as plain JSON: tuples become lists, numpy/torch scalars numbers, dtypes and other
    objects strings, non-finite floats null."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return [_jsonable(item) for item in sorted(value, key=str)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and not isinstance(value, type):  # numpy / torch scalars and arrays
        try:
            return _jsonable(value.tolist())
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(value)


def _task_list(tasks: str | Sequence[Any]) -> list[Any]:
    if isinstance(tasks, str):
        names = [name.strip() for name in tasks.split(",") if name.strip()]
    else:
        names = list(tasks)
    if not names:
        raise NeurospecError("no tasks given: pass task names (e.g. ['arc_easy']) or a comma-separated string")
    return names


def run_lm_eval(
    model: Any,
    tasks: str | Sequence[Any],
    *,
    intervention: Any = None,
    tokenizer: Any = None,
    include_path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    include_defaults: bool = True,
    limit: int | float | None = None,
    batch_size: int | str = 8,
    device: str = "cpu",
    dtype: str | torch.dtype | None = None,
    output: str | os.PathLike | None = None,
    **simple_evaluate_kwargs: Any,
) -> dict:
    """Run lm-eval ``tasks`` on ``model`` under ``intervention``; return (and write) the results as JSON.

    ``model``: a hub id or local folder, a loaded ``PreTrainedModel`` (give ``tokenizer`` unless the
    model's ``name_or_path`` holds one), a ``neurospec.LoadedModel``, or an lm-eval ``LM`` already
    built (then ``intervention`` must be None). ``intervention``: an intervention file, an
    ``InterventionSpec``, an ``Edit`` or a list of them. ``include_path``: folder(s) of task YAMLs;
    ``include_defaults=False`` skips indexing lm-eval's own tasks (seconds) when all tasks are local.
    ``dtype=None`` means float32 on CPU and the checkpoint's dtype elsewhere (as ``load_model``).
    Any other keyword goes to ``lm_eval.simple_evaluate`` (``num_fewshot``, ``log_samples``,
    ``gen_kwargs``, ``apply_chat_template``, ``task_manager``, ...). The results are made JSON-ready
    (tuples as lists, non-finite numbers as null) and, when ``output`` is given, written there
    atomically. ``results["config"]["neurospec_intervention"]`` records what was applied. Returns an
    empty dict on the non-main processes of a distributed run.
    """
    _require_lm_eval()
    import lm_eval
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

    from neurospec.core.models import parse_dtype

    task_names = _task_list(tasks)
    if isinstance(model, LM):
        if intervention is not None:
            raise NeurospecError(
                f"model is an lm-eval {type(model).__name__} already built; pass intervention= to NeurospecLM(...) "
                "when building it, or pass the model path or object here instead"
            )
        lm = model
    else:
        cls = _model_class()
        pretrained = str(model) if isinstance(model, os.PathLike) else model
        lm = cls(pretrained=pretrained, tokenizer=tokenizer, intervention=intervention, batch_size=batch_size,
                 device=device, dtype=parse_dtype(dtype, str(device).startswith("cpu")))
    if "task_manager" in simple_evaluate_kwargs:
        if include_path is not None:
            raise NeurospecError("pass include_path= or task_manager=, not both (give the TaskManager the path)")
    else:
        paths = None
        if include_path is not None:
            raw = [include_path] if isinstance(include_path, (str, os.PathLike)) else list(include_path)
            paths = [str(path) for path in raw]
            for path in paths:
                if not Path(path).exists():
                    raise NeurospecError(f"include_path {path!r} does not exist; pass a folder (or file) of task YAMLs")
        simple_evaluate_kwargs["task_manager"] = TaskManager(include_path=paths, include_defaults=include_defaults)
    results = lm_eval.simple_evaluate(model=lm, tasks=task_names, limit=limit, batch_size=batch_size, device=device,
                                      **simple_evaluate_kwargs)
    if results is None:  # a non-main process of a distributed run
        return {}
    clean = _jsonable(dict(results))
    if output is not None:
        atomic_write_json(output, clean)
    return clean


# --------------------------------------------------------------------------------------------
# Command line: lm-eval's own, with the neurospec model registered


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m neurospec.integrations.lmeval ARGS``: lm-eval's command line (``lm-eval ARGS``) with ``--model neurospec``."""
    try:
        register()
    except LmEvalMissingError as err:
        print(f"neurospec.integrations.lmeval: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    from lm_eval.__main__ import cli_evaluate

    saved = sys.argv
    sys.argv = ["lm-eval", *(sys.argv[1:] if argv is None else list(argv))]
    try:
        cli_evaluate()
    except NeurospecError as err:
        print(f"neurospec.integrations.lmeval: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        sys.argv = saved


if __name__ == "__main__":
    # run the importable module's main, so that one NeurospecLM class exists (not one per module copy)
    from neurospec.integrations.lmeval import main as _main

    _main()
