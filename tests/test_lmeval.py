"""The lm-eval bridge against neurospec's own scoring and generation, on a tiny Llama and local tasks.

Every per-choice log-likelihood lm-eval reports under an intervention file must equal
``score_continuations`` under the same file, and differ from the unedited model's; generations must
equal ``generate_texts``; without an intervention the bridge must report what plain HFLM reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from families import family
from tiny_tokenizer import tiny_tokenizer

from neurospec.core.edits import RuntimeStatistic
from neurospec.core.sites import site_map
from neurospec.evaluate.scoring import generate_texts, score_continuations
from neurospec.interventions.files import EditSpec, InterventionSpec
from neurospec.neurons.neuron_set import NeuronSet
from neurospec.util.errors import FileFormatError, NeurospecError, ShapeMismatchError

pytest.importorskip("lm_eval")

MC_ITEMS = [
    {"question": "The cat sat on", "choices": ["the mat because it was warm.", "the dog", "Paris"], "gold": 0},
    {"question": "Which city is the capital of France?", "choices": ["Paris", "Berlin is the capital", "A"], "gold": 0},
    {"question": "Le chat dort sur", "choices": ["le tapis", "la table"], "gold": 0},
    {"question": "She went to the market, and she", "choices": ["bought some bread and cheese.", "sat"], "gold": 0},
    {"question": "The trophy does not fit into the suitcase because it is", "choices": ["too big.", "too small."],
     "gold": 0},
]
GEN_ITEMS = [
    {"question": "The cat sat on the", "answer": "mat"},
    {"question": "Which city is the capital of France? Paris is the", "answer": "capital"},
    {"question": "Die Katze", "answer": "schläft"},
]
PPL_ITEMS = [
    {"text": "The cat sat on the mat because it was warm."},
    {"text": "Le chat dort sur le tapis parce qu'il fait chaud. Die Katze schläft auf der Matte."},
    {"text": "Answer: A"},
]
STOP = "zqzqz"  # never generated: generation runs to max_gen_toks or EOS
MAX_GEN = 5

MC_YAML = """task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""

GEN_YAML = """task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["{stop}"]
  max_gen_toks: {max_gen}
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


PPL_YAML = """task: tiny_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A saved tiny Llama + tokenizer, two local tasks, a neuron file and intervention files."""
    root = tmp_path_factory.mktemp("lmeval")
    tok = tiny_tokenizer()
    model = family("llama").build(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                  eos_token_id=tok.eos_token_id)
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)

    tasks = root / "tasks"
    tasks.mkdir()
    tasks_and_data = (("mc", MC_ITEMS, MC_YAML), ("gen", GEN_ITEMS, GEN_YAML), ("ppl", PPL_ITEMS, PPL_YAML))
    for name, items, template in tasks_and_data:
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
        (tasks / f"tiny_{name}.yaml").write_text(template.format(data=data, stop=STOP, max_gen=MAX_GEN))

    shape = site_map(model).shape
    width = shape.widths["act"]
    neurons = NeuronSet({"a": {"act": {0: [1, 7, width // 2], 1: [3, width - 1]}}, "b": {"act": {1: [10, 11]}}},
                        num_layers=shape.num_layers)
    neurons.meta.widths = dict(shape.widths)
    neurons.save(root / "neurons.json")
    specs = {
        mode: [EditSpec("neurons.json", groups=["a"], op="set", value=4.0, positions=mode)]
        for mode in ("all", "prompt", "continuation")
    }
    # a run-time statistic is computed over each row's non-padding tokens: padding must not count
    specs["runtime"] = [EditSpec("neurons.json", groups=["a"], op="add", value=RuntimeStatistic("mean"), factor=50.0),
                        EditSpec("neurons.json", groups=["b"], op="scale", factor=-3.0, positions="continuation")]
    paths = {}
    for name, edits in specs.items():
        paths[name] = root / f"{name}.json"
        InterventionSpec(edits, base_dir=root).save(paths[name])

    other = NeuronSet({"a": {"act": {0: [1, 2]}}}, num_layers=shape.num_layers)
    other.meta.widths = {**shape.widths, "act": width + 32}  # made for a model with a wider MLP
    other.save(root / "other_neurons.json")
    InterventionSpec([EditSpec("other_neurons.json", op="zero")], base_dir=root).save(root / "other.json")
    return {"root": root, "model_dir": model_dir, "tasks": tasks, "model": model, "tok": tok, "specs": paths}


@pytest.fixture(autouse=True)
def _outside_repository(world, monkeypatch):
    """lm-eval records the git commit of the working directory: run where there is none."""
    monkeypatch.chdir(world["root"])


def evaluate(world, task: str, **kwargs) -> dict:
    from neurospec.integrations.lmeval import run_lm_eval

    return run_lm_eval(str(world["model_dir"]), [task], include_path=world["tasks"], include_defaults=False,
                       batch_size=3, log_samples=True, **kwargs)


def mc_pairs(results: dict) -> list[tuple[str, str, float]]:
    """(context, continuation, log-likelihood) of every choice of every item lm-eval logged."""
    rows = []
    for sample in sorted(results["samples"]["tiny_mc"], key=lambda s: s["doc_id"]):
        assert len(sample["arguments"]) == len(sample["filtered_resps"])
        for (context, continuation), (logprob, _greedy) in zip(sample["arguments"], sample["filtered_resps"]):
            rows.append((context, continuation, logprob))
    assert len(rows) == sum(len(item["choices"]) for item in MC_ITEMS)
    return rows


def native(world, rows, spec_path=None):
    intervention = None if spec_path is None else InterventionSpec.load(spec_path)
    return score_continuations(world["model"], world["tok"], [r[0] for r in rows], [r[1] for r in rows],
                               intervention=intervention)


def test_task_tokenises_like_neurospec(world):
    """Precondition of the comparisons: lm-eval's joint encoding splits where neurospec's separate one does."""
    tok = world["tok"]
    for item in MC_ITEMS:
        for choice in item["choices"]:
            context, continuation = item["question"], " " + choice
            joint = tok(context + continuation)["input_ids"]
            assert joint == tok(context)["input_ids"] + tok(continuation, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("mode", ["all", "prompt", "continuation", "runtime"])
def test_multiple_choice_loglikelihoods_equal_native_scoring(world, mode):
    spec = world["specs"][mode]
    results = evaluate(world, "tiny_mc", intervention=str(spec))
    rows = mc_pairs(results)
    edited = native(world, rows, spec)
    plain = native(world, rows)
    changed = 0
    for (context, continuation, logprob), mine, unedited in zip(rows, edited, plain):
        assert logprob == pytest.approx(mine.logprob, abs=1e-4), (mode, context, continuation)
        if mode != "continuation" or mine.num_tokens > 1:  # a 1-token continuation is never fed to the model
            assert abs(logprob - unedited.logprob) > 1e-3, (mode, context, continuation)
            changed += 1
    assert changed >= 5
    record = results["config"]["neurospec_intervention"]
    assert record["file"] == str(spec.resolve()) and record["sha256"].startswith("sha256:")
    assert record["edits"][0]["positions"] == ("all" if mode == "runtime" else mode)
    json.dumps(results, allow_nan=False)  # plain JSON


def test_without_intervention_equals_plain_hflm(world, tmp_path):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    output = tmp_path / "out" / "plain.json"
    bridge = evaluate(world, "tiny_mc", output=output)
    assert json.loads(output.read_text()) == bridge
    assert bridge["config"]["neurospec_intervention"] is None
    hflm = HFLM(pretrained=str(world["model_dir"]), device="cpu", batch_size=3)
    reference = simple_evaluate(hflm, tasks=["tiny_mc"], log_samples=True,
                                task_manager=TaskManager(include_path=str(world["tasks"]), include_defaults=False))
    ours, theirs = mc_pairs(bridge), mc_pairs(reference)
    assert [(c, k) for c, k, _ in ours] == [(c, k) for c, k, _ in theirs]
    assert [lp for _, _, lp in ours] == [lp for _, _, lp in theirs]
    assert bridge["results"]["tiny_mc"]["acc,none"] == reference["results"]["tiny_mc"]["acc,none"]
    for (_, _, logprob), mine in zip(ours, native(world, ours)):  # and both equal neurospec's unedited scores
        assert logprob == pytest.approx(mine.logprob, abs=1e-4)


@pytest.mark.parametrize("mode", ["all", "continuation"])
def test_generate_until_equals_generate_texts(world, mode):
    spec = world["specs"][mode]
    results = evaluate(world, "tiny_gen", intervention=spec)
    samples = sorted(results["samples"]["tiny_gen"], key=lambda s: s["doc_id"])
    prompts = [sample["arguments"][0][0] for sample in samples]
    assert prompts == [item["question"] for item in GEN_ITEMS]
    lm_eval_texts = [sample["filtered_resps"][0] for sample in samples]
    expected = generate_texts(world["model"], world["tok"], prompts, max_new_tokens=MAX_GEN,
                              intervention=InterventionSpec.load(spec))
    assert lm_eval_texts == [g.text.split(STOP)[0] for g in expected]
    unedited = generate_texts(world["model"], world["tok"], prompts, max_new_tokens=MAX_GEN)
    assert lm_eval_texts != [g.text for g in unedited]  # the intervention was applied


@pytest.mark.parametrize("mode", ["all", "continuation"])
def test_rolling_loglikelihood_equals_native_scoring(world, mode):
    """Perplexity tasks: lm-eval scores the whole text after a prefix token (one window at this length)."""
    from neurospec.data.prompts import EncodedPrompt
    from neurospec.evaluate.scoring import score_encoded

    spec = world["specs"][mode]
    results = evaluate(world, "tiny_ppl", intervention=spec)
    samples = sorted(results["samples"]["tiny_ppl"], key=lambda s: s["doc_id"])
    tok = world["tok"]
    encoded = []
    for item in PPL_ITEMS:
        tokens = tok(item["text"])["input_ids"]  # lm-eval's encoding, which starts with the tokenizer's BOS
        assert len(tokens) < 100  # one rolling window: the tiny model's max_length is 128
        encoded.append(EncodedPrompt([tok.bos_token_id] + tokens, ["wrapper"] + ["continuation"] * len(tokens)))
    edited = score_encoded(world["model"], encoded, tok.pad_token_id, intervention=InterventionSpec.load(spec))
    plain = score_encoded(world["model"], encoded, tok.pad_token_id)
    for sample, mine, unedited in zip(samples, edited, plain):
        logprob = sample["filtered_resps"][0]
        assert logprob == pytest.approx(mine.logprob, abs=1e-4)
        assert abs(logprob - unedited.logprob) > 1e-3


def test_loaded_model_object_and_spec(world):
    """Python users pass the model, tokenizer and a loaded InterventionSpec."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from neurospec.integrations.lmeval import NeurospecLM

    spec = InterventionSpec.load(world["specs"]["prompt"])
    lm = NeurospecLM(pretrained=world["model"], tokenizer=world["tok"], intervention=spec, batch_size=2)
    assert lm.edits is not None and len(lm.edits) == 1
    results = simple_evaluate(lm, tasks=["tiny_mc"], log_samples=True,
                              task_manager=TaskManager(include_path=str(world["tasks"]), include_defaults=False))
    rows = mc_pairs(results)
    for (_, _, logprob), mine in zip(rows, native(world, rows, world["specs"]["prompt"])):
        assert logprob == pytest.approx(mine.logprob, abs=1e-4)


def test_intervention_for_another_model_is_refused(world):
    from neurospec.integrations.lmeval import NeurospecLM

    with pytest.raises(ShapeMismatchError, match=r"other\.json.*another model"):
        NeurospecLM(pretrained=str(world["model_dir"]), intervention=str(world["root"] / "other.json"), device="cpu")
    with pytest.raises(ShapeMismatchError, match="another model"):
        NeurospecLM(pretrained=world["model"], tokenizer=world["tok"], intervention=world["root"] / "other.json")


def test_missing_intervention_file_is_refused(world):
    from neurospec.integrations.lmeval import NeurospecLM, run_lm_eval

    missing = world["root"] / "nope.json"
    with pytest.raises(FileFormatError, match=r"nope\.json.*no such file"):
        NeurospecLM(pretrained=str(world["model_dir"]), intervention=str(missing), device="cpu")
    with pytest.raises(NeurospecError, match=r"nope\.json"):
        run_lm_eval(world["model"], "tiny_mc", tokenizer=world["tok"], intervention=missing,
                    include_path=world["tasks"], include_defaults=False)
    with pytest.raises(NeurospecError, match="include_path"):
        run_lm_eval(world["model"], "tiny_mc", tokenizer=world["tok"], include_path=world["root"] / "no_tasks")


def test_command_line(world, tmp_path):
    """``python -m neurospec.integrations.lmeval`` is lm-eval's CLI with ``--model neurospec`` registered."""
    out = tmp_path / "cli"
    spec = world["specs"]["all"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "neurospec.integrations.lmeval", "--model", "neurospec",
         "--model_args", f"pretrained={world['model_dir']},intervention={spec}",
         "--tasks", "tiny_mc", "--include_path", str(world["tasks"]), "--device", "cpu", "--batch_size", "3",
         "--output_path", str(out), "--log_samples"],
        cwd=world["root"], env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result_files = list(out.rglob("results_*.json"))
    sample_files = list(out.rglob("samples_tiny_mc_*.jsonl"))
    assert len(result_files) == 1 and len(sample_files) == 1
    results = json.loads(result_files[0].read_text())
    assert results["config"]["neurospec_intervention"]["file"] == str(spec.resolve())
    samples = [json.loads(line) for line in sample_files[0].read_text().splitlines() if line.strip()]
    rows = []
    for sample in sorted(samples, key=lambda s: s["doc_id"]):  # the CLI logs {"gen_args_0": {"arg_0": ...}}
        arguments = [sample["arguments"][f"gen_args_{i}"] for i in range(len(sample["arguments"]))]
        for args, (logprob, _greedy) in zip(arguments, sample["filtered_resps"]):
            rows.append((args["arg_0"], args["arg_1"], float(logprob)))  # numbers logged as strings
    for (_, _, logprob), mine in zip(rows, native(world, rows, spec)):
        assert logprob == pytest.approx(mine.logprob, abs=1e-4)
    assert len(rows) == sum(len(item["choices"]) for item in MC_ITEMS)
