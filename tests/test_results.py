"""`neurospec.results`: every artifact kind, written by the real verbs, read back as its type and written again.

The run folder is test_report.py's (:func:`test_report.build_run`: ppl, lss, a sweep, steer, an `eval
xwinograd` table, mask-eval and finetune on a tiny Llama, the last two through the CLI). Each file must come
back byte for byte from its type; the numbers the types give are checked against the raw JSON; a broken field
is named in a one-line error; `read` picks the type by the format id.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from neurospec.results import (
    TYPES,
    DownstreamTable,
    FinetuneRecord,
    LSSRecord,
    MaskingRecord,
    PerplexityMatrix,
    ResultError,
    SteeringRecord,
    SweepRecord,
    from_document,
    read,
)
from neurospec.util.io import json_text

ARTIFACTS = {  # label in the run folder -> the type that reads it
    "ppl/ppl.json": PerplexityMatrix,
    "lss/lss.json": LSSRecord,
    "sweep/sweep.json": SweepRecord,
    "sweep/01-set_p_max_x4/lss.json": LSSRecord,
    "steer/steer.json": SteeringRecord,
    "xwinograd/xwinograd.json": DownstreamTable,
    "mask/mask_eval.json": MaskingRecord,
    "ft/finetune.json": FinetuneRecord,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from test_report import build_run

    return build_run(tmp_path_factory.mktemp("results"))


def document(run: Path, label: str) -> dict:
    return json.loads((run / label).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("label", ARTIFACTS)
def test_file_round_trips_byte_for_byte(run, label):
    path = run / label
    result = read(path)
    assert type(result) is ARTIFACTS[label]
    assert json_text(result.to_json()) == path.read_text(encoding="utf-8")
    again = ARTIFACTS[label].from_json(json.loads(json_text(result.to_json())), str(path))
    assert again.to_json() == result.to_json()


# the keys, in order, of each kind's objects as the writers wrote them before the result types existed: the
# types must keep every file exactly as it was (issue 24 appended keys for intervals after the old ones, which
# keep their places: ppl's intervals and the summary's *_ci, lss's, steer's, eval's and mask-eval's interval_method,
# steer's change and fluency (issue 25), eval's change_ci95, summary *_ci95 and cells' item_correct)
KEYS = {
    "ppl/ppl.json": {
        "": "format version recipe languages rows cells change_ppl change_nll summary empty_groups settings intervals",
        "rows.0": "name kind group seed neurons",
        "cells.none.eng_Latn": "ppl mean_nll nll tokens texts",
        "summary.fra_Latn": "language neurons random0:fra_Latn",
        "summary.fra_Latn.neurons": "ppl nll",
        "summary.fra_Latn.neurons.ppl": "own mean_other selectivity own_ci mean_other_ci difference difference_ci "
                                        "selectivity_ci selectivity_note",
        "intervals": "method confidence bootstrap seed texts change_ppl change_nll",
        "recipe": "name op value kind factor positions",
    },
    "lss/lss.json": {
        "": "format version recipe sources targets lss mean_offdiagonal mean_d0 degenerate pooled empty_groups cells "
            "settings interval_method",
        "interval_method": "lss margin pooled_lss pooled_margin",
        "cells.0": "source target n excluded_identical missing lss ci95 mean_d0 mean_di controls ids d0 di",
        "cells.0.controls.random": "seed lss ci95 margin margin_ci95 di",
        "cells.0.controls.other": "group lss ci95 margin margin_ci95 di",
        "pooled": "n items lss ci95 controls",
        "pooled.controls.random": "cells lss margin margin_ci95",
    },
    "sweep/sweep.json": {
        "": "format version best recipes curve empty_groups settings",
        "curve.0": "recipe value factor positions mean_lss pooled_lss pooled_lss_ci95 mean_d0 folder",
    },
    "steer/steer.json": {
        "": "format version recipe sources rows table empty_groups settings interval_method",
        "rows.0": "name kind group target seed",
        "table.0": "row kind target source k n share ci95 baseline change change_ci95 fluency",
        "table.0.baseline": "k n share ci95",
        "table.0.fluency": "distinct_1 distinct_2 repeated_token_share perplexity",
        "table.0.fluency.perplexity": "value ci95 n baseline change change_ci95",
        "table.0.fluency.perplexity.baseline": "value ci95 n",
    },
    "xwinograd/xwinograd.json": {
        "": "format version task recipe rows languages cells change summary empty_groups settings change_ci95 "
            "interval_method provenance",
        "cells.none.eng_Latn": "task language metric score ci95 n metrics details item_correct",
        "summary": "self_mean cross_mean per_target self_mean_ci95 cross_mean_ci95 self_minus_cross "
                   "self_minus_cross_ci95",
        "summary.per_target.fra_Latn": "self cross_mean self_ci95 cross_mean_ci95",
        "interval_method": "score change summary",
    },
    "mask/mask_eval.json": {
        "": "format version settings conditions benchmarks templates summary cells related empty_groups "
            "interval_method",
        "interval_method": "accuracy change margin_over_random",
        "benchmarks.blend": "kind items groups",
        "cells.0": "condition benchmark group n accuracy ci95 per_template rules non_letter_share",
        "cells.5": "condition benchmark group n accuracy ci95 per_template rules non_letter_share change change_ci95 "
                   "random_change margin_over_random margin_ci95",
        "cells.0.rules.letters_only": "accuracy",
        "cells.5.rules.letters_only": "accuracy change",
        "summary.0": "condition cultural_change cultural_margin_over_random nlu_change nlu_margin_over_random",
        "summary.3": "condition cultural_change nlu_change",
    },
    "ft/finetune.json": {
        "": "format version layers block group data training splits evaluation provenance",
        "training": "modules parameter_names num_parameters steps items_used losses settings item_ids",
        "evaluation.qnli": "kind before after change",
        "evaluation.qnli.before": "condition benchmark group n accuracy ci95 per_template rules non_letter_share",
    },
}


@pytest.mark.parametrize("label", KEYS)
def test_files_keep_their_keys(run, label):
    for path, keys in KEYS[label].items():
        value = read(run / label).to_json()
        for key in path.split(".") if path else []:
            value = value[int(key)] if isinstance(value, list) else value[key]
        assert list(value) == keys.split(), (label, path)


COVERED_ELSEWHERE = {"neurospec.lmeval": "test_lmeval_verb.py"}  # needs lm-eval: round-tripped in its own module


OLDER = {  # label -> what a file written before issue 24's intervals lacks (it must still read, and write back)
    "lss/lss.json": ["interval_method"],
    "sweep/01-set_p_max_x4/lss.json": ["interval_method"],
    "steer/steer.json": ["interval_method", "table.*.change", "table.*.change_ci95", "table.*.fluency"],
    "mask/mask_eval.json": ["interval_method"],
    "xwinograd/xwinograd.json": ["interval_method", "change_ci95", "summary.self_mean_ci95", "summary.cross_mean_ci95",
                                 "summary.self_minus_cross", "summary.self_minus_cross_ci95",
                                 "summary.per_target.*.self_ci95", "summary.per_target.*.cross_mean_ci95",
                                 "cells.*.*.item_correct"],
}


@pytest.mark.parametrize("label", [*OLDER, "ppl/ppl.json"])
def test_files_written_before_the_intervals_still_read(run, label):
    doc = document(run, label)
    if label == "ppl/ppl.json":  # no intervals, and the summary's first three keys with the raw ratio
        del doc["intervals"]
        for entry in doc["summary"].values():
            for which, kinds in entry.items():
                if which != "language":
                    for kind, values in kinds.items():
                        ratio = values["own"] / values["mean_other"] if values["mean_other"] != 0 else None
                        kinds[kind] = {"own": values["own"], "mean_other": values["mean_other"], "selectivity": ratio}
    for key in OLDER.get(label, []):
        parent, _, last = key.rpartition(".")
        for holder in holders_of(doc, parent):
            del holder[last]
    result = ARTIFACTS[label].from_json(doc, label)
    assert result.to_json() == doc and "interval_method" not in doc and "intervals" not in doc


def holders_of(doc, path: str) -> list:
    """The objects at a dotted ``path`` of ``doc`` (``*``: every element of a list or value of an object)."""
    found = [doc]
    for key in path.split(".") if path else []:
        if key == "*":
            found = [inner for value in found for inner in (value.values() if isinstance(value, dict) else value)]
        else:
            found = [value[key] for value in found]
    return found


def test_every_result_format_is_covered():
    assert set(TYPES) == {cls.FORMAT for cls in ARTIFACTS.values()} | set(COVERED_ELSEWHERE)
    assert all(cls.VERSION == 1 for cls in TYPES.values())


def test_evaluate_modules_build_and_reexport_the_types():
    import neurospec.results.downstream as downstream
    import neurospec.results.finetune as finetune
    import neurospec.results.perplexity as perplexity
    import neurospec.results.steering as steering
    from neurospec.evaluate.downstream import DownstreamTable as EvalDownstreamTable
    from neurospec.evaluate.perplexity import Perplexity, Row
    from neurospec.evaluate.perplexity import PerplexityMatrix as EvalPerplexityMatrix
    from neurospec.evaluate.steering import SteeringRow
    from neurospec.train import FinetuneResult

    assert EvalPerplexityMatrix is perplexity.PerplexityMatrix and Row is perplexity.Row
    assert Perplexity is perplexity.Perplexity and SteeringRow is steering.SteeringRow
    assert EvalDownstreamTable is downstream.DownstreamTable and FinetuneResult is finetune.FinetuneResult


def test_lss_matrix_without_items_round_trips(tmp_path):
    from interventions_common import TEXTS, neuron_set, sentence_stats, tiny_llama, tok

    from neurospec.data.lss_items import items_from_parallel
    from neurospec.evaluate.lss import lss_matrix

    model = tiny_llama()
    sentences = {lang: list(enumerate(lines)) for lang, lines in TEXTS.items()}
    n = min(len(rows) for rows in sentences.values())
    items = items_from_parallel({lang: rows[:n] for lang, rows in sentences.items()})
    matrix = lss_matrix(model, tok(), items, neuron_set(model), recipe="set:p_max*5",
                        stats=sentence_stats(model, tmp_path), controls=("random", "other"), bootstrap=50)
    for items in (True, False):
        written = json.loads(json_text(matrix.to_json(items)))
        record = LSSRecord.from_json(written, "lss.json")
        assert record.to_json() == written
        assert all((cell.ids is not None) is items for cell in record.cells)
        assert all((c.di is not None) is items for cell in record.cells for c in cell.controls.values())
    cell = record.cell("eng_Latn", "fra_Latn")
    assert cell.lss == matrix.cells[("eng_Latn", "fra_Latn")].lss and set(cell.controls) == {"random", "other"}
    assert set(record.lss) == set(TEXTS)


# ------------------------------------------------------------------------------------------------
# the typed values are the file's numbers


def test_perplexity_values(run):
    raw = document(run, "ppl/ppl.json")
    matrix = read(run / "ppl/ppl.json")
    for row, per_language in raw["cells"].items():
        for language, cell in per_language.items():
            assert matrix.cells[row][language].ppl == cell["ppl"] == math.exp(cell["nll"] / cell["tokens"])
            assert matrix.change("ppl")[row][language] == cell["ppl"] - raw["cells"]["none"][language]["ppl"]
    for group, entry in matrix.selectivity().items():
        assert entry.language == raw["summary"][group]["language"]
        neurons = entry.by_row["neurons"]["nll"]
        changes = raw["change_nll"][group]
        others = [v for lang, v in changes.items() if lang != entry.language]
        assert neurons.own == changes[entry.language] and neurons.mean_other == sum(others) / len(others)


def test_lss_and_sweep_values(run):
    raw = document(run, "lss/lss.json")
    record = read(run / "lss/lss.json")
    assert record.pooled.n == sum(cell["n"] for cell in raw["cells"])
    assert record.degenerate is raw["degenerate"] and record.mean_d0 == raw["mean_d0"]
    for cell in raw["cells"]:
        typed = record.cell(cell["source"], cell["target"])
        assert typed.lss == record.lss[cell["source"]][cell["target"]] == cell["lss"]
        assert typed.ci95 == tuple(cell["ci95"]) and typed.d0 == cell["d0"]
        assert typed.lss == sum(di > d0 for di, d0 in zip(cell["di"], cell["d0"])) / cell["n"]
        assert typed.controls["random"].seed == cell["controls"]["random"]["seed"]
        assert typed.controls["other"].group == cell["controls"]["other"]["group"]
    sweep = read(run / "sweep/sweep.json")
    raw = document(run, "sweep/sweep.json")
    assert sweep.best.name == raw["best"]["name"] == max(raw["curve"], key=lambda p: p["mean_lss"])["recipe"]
    for point in sweep.curve:
        setting = read(run / "sweep" / point.folder / "lss.json")
        assert point.mean_lss == setting.mean_offdiagonal and point.pooled_lss == setting.pooled.lss


def test_steering_downstream_masking_finetune_values(run):
    steer = read(run / "steer/steer.json")
    for line, raw in zip(steer.table, document(run, "steer/steer.json")["table"]):
        assert (line.row, line.source, line.steered.k, line.steered.n) == (raw["row"], raw["source"], raw["k"], raw["n"])
        assert line.steered.share == raw["share"] == raw["k"] / raw["n"] and line.baseline.ci95 == tuple(
            raw["baseline"]["ci95"])
    table = read(run / "xwinograd/xwinograd.json")
    raw = document(run, "xwinograd/xwinograd.json")
    diagonal = [raw["cells"][row][row]["score"] - raw["cells"]["none"][row]["score"]
                for row in raw["rows"][1:] if row in raw["languages"]]
    assert table.self_cross().self_mean == sum(diagonal) / len(diagonal) == raw["summary"]["self_mean"]
    mask = read(run / "mask/mask_eval.json")
    raw = document(run, "mask/mask_eval.json")
    for cell in raw["cells"]:
        typed = mask.cell(cell["condition"], cell["benchmark"], cell["group"])
        assert typed.accuracy == cell["accuracy"] and typed.margin_over_random == cell.get("margin_over_random")
    assert [row.to_json() for row in mask.summary] == raw["summary"]
    assert mask.empty_groups == {"Spain": "no neurons selected by union"}
    finetune = read(run / "ft/finetune.json")
    raw = document(run, "ft/finetune.json")
    for name, entry in raw["evaluation"].items():
        typed = finetune.evaluation[name]
        assert typed.change == entry["change"] == entry["after"]["accuracy"] - entry["before"]["accuracy"]
    assert finetune.training.losses == raw["training"]["losses"] and finetune.layers == raw["layers"]


# ------------------------------------------------------------------------------------------------
# broken files


def _set(doc: dict, path: str, value) -> None:
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        doc = doc[key]
    if value is _DELETE:
        del doc[keys[-1]]
    else:
        doc[keys[-1]] = value


_DELETE = object()

BROKEN = [  # label, field, new value (or _DELETE), what the error says about the field
    ("ppl/ppl.json", "change_ppl", _DELETE, "field change_ppl is missing"),
    ("ppl/ppl.json", "cells.none.fra_Latn.nll", "many", "field cells.none.fra_Latn.nll should be a number, not a string"),
    ("ppl/ppl.json", "cells.none.fra_Latn.ppl", 1.5, "field cells.none.fra_Latn.ppl is 1.5, but the fields it is computed"),
    ("ppl/ppl.json", "change_ppl.none.deu_Latn", 0.25, "field change_ppl.none.deu_Latn is 0.25, but the fields"),
    ("ppl/ppl.json", "version", 2, "field version is 2; this neurospec reads neurospec.ppl_matrix version 1"),
    ("lss/lss.json", "cells.0.ci95", [0.1], "field cells.0.ci95 should be a [low, high] pair, not 1 values"),
    ("lss/lss.json", "pooled.controls.random.margin", None, "field pooled.controls.random.margin should be a number"),
    ("lss/lss.json", "bogus", 1, "field bogus is not a field of a neurospec.lss_matrix version 1 file"),
    ("lss/lss.json", "degenerate", False, "field degenerate is False, but the fields it is computed from give True"),
    ("sweep/sweep.json", "curve.1.mean_lss", None, "field curve.1.mean_lss should be a number, not null"),
    ("sweep/sweep.json", "best.op", "multiply", "field best is not a recipe"),
    ("steer/steer.json", "table.0.share", 0.123, "field table.0.share is 0.123, but the fields it is computed"),
    ("steer/steer.json", "rows.1.kind", "sideways", "field rows.1.kind is 'sideways'; a row is none, group or random"),
    ("xwinograd/xwinograd.json", "cells.none.eng_Latn.score", _DELETE, "field cells.none.eng_Latn.score is missing"),
    ("xwinograd/xwinograd.json", "summary.self_mean", 0.5, "field summary.self_mean is 0.5, but the fields"),
    ("mask/mask_eval.json", "cells.3.ci95", "wide", "field cells.3.ci95 should be a list, not a string"),
    ("mask/mask_eval.json", "summary.0.cultural_change", "x", "field summary.0.cultural_change should be a number"),
    ("ft/finetune.json", "training.steps", 1.5, "field training.steps should be a whole number, not 1.5"),
    ("ft/finetune.json", "evaluation.qnli.change", 0.75, "field evaluation.qnli.change is 0.75, but the fields"),
]


@pytest.mark.parametrize("label,field,value,says", BROKEN, ids=[f"{b[0]}:{b[1]}" for b in BROKEN])
def test_broken_field_is_named_in_one_line(run, label, field, value, says):
    doc = copy.deepcopy(document(run, label))
    _set(doc, field, value)
    where = str(run / label)
    with pytest.raises(ResultError) as caught:
        ARTIFACTS[label].from_json(doc, where)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{where}: ") and says in message
    assert message.endswith(f"regenerate it with `{ARTIFACTS[label].COMMAND}`")


def test_fix_names_what_to_do(run):
    doc = document(run, "ppl/ppl.json")
    del doc["languages"]
    with pytest.raises(ResultError, match=r"field languages is missing; remove it from the run folder$"):
        PerplexityMatrix.from_json(doc, "ppl.json", fix="remove it from the run folder")


# ------------------------------------------------------------------------------------------------
# read: dispatch by format id


def test_read_dispatches_by_format_id(run, tmp_path):
    for label, cls in ARTIFACTS.items():
        moved = tmp_path / label.replace("/", "_")  # the file name says nothing: the format id decides
        moved.write_text((run / label).read_text(encoding="utf-8"), encoding="utf-8")
        assert type(read(moved)) is cls
        assert type(from_document(document(run, label), label)) is cls


def test_read_refuses_what_is_no_result(run, tmp_path):
    with pytest.raises(ResultError, match=r"lape\.json: format 'neurospec\.neuronset' is not a neurospec result .*"
                                          r"NeuronSet\.load$"):
        read(run / "lape.json")
    with pytest.raises(ResultError, match=r"notes\.json: no format is not a neurospec result"):
        read(run / "notes.json")
    with pytest.raises(ResultError, match=r"scratch\.json is not valid JSON"):
        read(run / "scratch.json")
    with pytest.raises(ResultError, match=r"missing\.json does not exist"):
        read(tmp_path / "missing.json")
    with pytest.raises(ResultError, match=r"field format is 'neurospec\.ppl_matrix', not 'neurospec\.lss_matrix'"):
        LSSRecord.from_json(document(run, "ppl/ppl.json"), "ppl.json")
