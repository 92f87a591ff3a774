"""A study config is checked before any work starts: each mistake is refused naming its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.pipeline import ConfigError, load_study, run_study
from neurospec.pipeline.config import Reference
from neurospec.util.errors import RenamedWarning

runner = CliRunner()

GOOD = """\
model: model
defaults:
  quiet: true
steps:
  collect:
    corpus:
      eng_Latn: texts/en.txt
    mode: sentence
    max_tokens: 1000
  lape:
    verb: select lape
    stats: $collect
    top_k: 5
  culture-attr:
    verb: attribute
    data: blend
    prompt_format: plain
    countries: [China, Spain]
  ppl:
    neurons: $lape
    corpus_dir: texts
    random_seeds: 0
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "en.txt").write_text("A sentence.\n", encoding="utf-8")
    return tmp_path


def _write(folder: Path, text: str) -> Path:
    path = folder / "study.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``, found independently of the loader."""
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def test_an_old_option_key_is_read_as_its_new_name_with_a_warning(folder):
    old = GOOD.replace("    prompt_format: plain", "    format: plain")
    with pytest.warns(RenamedWarning, match=r"study.yaml:\d+: step 'culture-attr': format is now prompt_format"):
        study = load_study(_write(folder, old))
    assert study.step("culture-attr").values["prompt_format"] == "plain"


def test_a_good_config_is_read_with_its_references_and_options(folder):
    study = load_study(_write(folder, GOOD))
    assert [step.name for step in study.steps] == ["collect", "lape", "culture-attr", "ppl"]
    assert study.step("lape").values["stats"] == Reference("collect")
    assert study.step("lape").upstream == ["collect"]
    assert study.step("culture-attr").values["prompt_format"] == "plain"
    assert study.step("culture-attr").values["countries"] == ["China", "Spain"]
    assert study.step("collect").values["quiet"] is True                  # from defaults
    assert "quiet" not in study.step("lape").values                       # select lape has no --quiet
    assert study.step("collect").values["corpus"] == [("eng_Latn", folder / "texts" / "en.txt")]
    assert study.step("ppl").lines["random_seeds"] == _line_of(GOOD, "random_seeds")


MISTAKES = [
    # (what is wrong, the text edited into GOOD, the line's marker, words the message must hold)
    ("top-level typo", GOOD.replace("defaults:", "defualts:"), "defualts:", ["unknown key 'defualts'",
                                                                             "did you mean 'defaults'"]),
    ("option typo", GOOD.replace("max_tokens: 1000", "max_token: 1000"), "max_token:",
     ["unknown option 'max_token'", "step 'collect'", "did you mean 'max_tokens'"]),
    ("unknown step", GOOD.replace("  ppl:\n", "  perplexity:\n"), "  perplexity:",
     ["unknown step 'perplexity'", "verb:"]),
    ("unknown verb", GOOD.replace("verb: select lape", "verb: select lapse"), "verb: select lapse",
     ["unknown step 'select lapse'", "did you mean 'select lape'"]),
    ("missing data path", GOOD.replace("texts/en.txt", "texts/fr.txt"), "texts/fr.txt",
     ["texts/fr.txt not found", "relative to the config file"]),
    ("missing folder option", GOOD.replace("corpus_dir: texts", "corpus_dir: corpora"), "corpus_dir: corpora",
     ["option 'corpus_dir' of step 'ppl'", "corpora not found"]),
    ("missing model folder", GOOD.replace("model: model", "model: ./models/tiny"), "model: ./models/tiny",
     ["model folder ./models/tiny not found"]),
    ("value the verb refuses", GOOD.replace("mode: sentence", "mode: sentences"), "mode: sentences",
     ["step 'collect'", "--mode"]),
    ("number the verb refuses", GOOD.replace("max_tokens: 1000", "max_tokens: lots"), "max_tokens: lots",
     ["step 'collect'", "--max-tokens"]),
    ("reference to a later step", GOOD.replace("stats: $collect", "stats: $ppl"), "stats: $ppl",
     ["$ppl refers to no earlier step"]),
    ("reference to no step", GOOD.replace("neurons: $lape", "neurons: $lapee"), "neurons: $lapee",
     ["did you mean 'lape'"]),
    ("unknown companion", GOOD.replace("neurons: $lape", "neurons: $lape.random"), "neurons: $lape.random",
     ["writes no 'random' file"]),
    ("output chosen by hand", GOOD.replace("top_k: 5", "top_k: 5\n    out: mine.json"), "out: mine.json",
     ["pipeline chooses where steps write"]),
    ("default of no step", GOOD.replace("quiet: true", "quiet: true\n  top_rat: 0.1"), "top_rat:",
     ["default 'top_rat' is an option of no step", "did you mean 'top_rate'"]),
    ("duplicate key", GOOD.replace("top_k: 5", "top_k: 5\n    top_k: 6"), "top_k: 6", ["given twice"]),
    ("switch given a word", GOOD.replace("quiet: true", "quiet: yes please"), "quiet: yes please",
     ["is a switch"]),
    ("required option missing", GOOD.replace("    stats: $collect\n", ""), "  lape:", ["--stats"]),
    ("YAML syntax", GOOD.replace("mode: sentence", "mode: [sentence"), "max_tokens: 1000", ["not valid YAML"]),
]


@pytest.mark.parametrize("what, text, marker, words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_refused_naming_its_line_before_any_work(folder, what, text, marker, words):
    path = _write(folder, text)
    with pytest.raises(ConfigError) as caught:
        run_study(path, folder / "run")
    message = str(caught.value)
    assert message.startswith(f"{path}:{_line_of(text, marker)}:"), message
    for word in words:
        assert word in message, message
    assert not (folder / "run").exists()


def test_the_command_line_prints_one_line_and_exits_2(folder):
    path = _write(folder, GOOD.replace("max_tokens: 1000", "max_token: 1000"))
    result = runner.invoke(app, ["run", str(path), "--run-dir", str(folder / "run")])
    assert result.exit_code == 2
    assert f"study.yaml:{_line_of(GOOD, 'max_tokens')}: unknown option 'max_token'" in " ".join(result.output.split())
    assert not (folder / "run").exists()


def test_an_unknown_forced_step_is_refused(folder):
    with pytest.raises(Exception, match="--force lap: the study has no such step"):
        run_study(_write(folder, GOOD), folder / "run", force=["lap"])
    assert not (folder / "run").exists()


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name, model", [("toy-study.yaml", "toy:small"), ("gemma-study.yaml", "gemma-3-270m")])
def test_the_offline_examples_are_valid_studies(name, model):
    study = load_study(EXAMPLES / name)
    assert study.model.label == model
    verbs = {step.verb.name for step in study.steps}
    assert {"collect", "select lape", "ppl", "lss", "sweep", "steer", "attribute", "select culture",
            "mask-eval"} <= verbs


def test_the_online_example_is_a_valid_study_once_its_data_is_fetched(tmp_path, monkeypatch):
    """Its hub model and hf: corpora are not touched by the check; the data sets it names must be here,
    and their absence names the command that fetches them."""
    (tmp_path / "examples").mkdir()
    config = tmp_path / "examples" / "qwen-flores.yaml"
    config.write_text((EXAMPLES / "qwen-flores.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("NEUROSPEC_DATA", str(mirror))
    monkeypatch.setenv("NEUROSPEC_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"data set 'flores' is not here; run `neurospec data fetch --for "):
        load_study(config)
    (mirror / "sib200_flores").mkdir()
    with pytest.raises(ConfigError, match=r"step 'xcopa' reads the data set 'xcopa', which is not here"):
        load_study(config)
    (mirror / "xcopa").mkdir()
    study = load_study(config)
    assert study.model.label == "Qwen/Qwen2.5-0.5B"
    assert study.step("xcopa").values["task"] == "xcopa"
    assert study.step("lss").values["stats"] == Reference("sentences")
