"""NeuronSet: file format, validation, shape checks, set algebra, LAPE reference interop, atomic writes.

    python -m pytest -q tests/test_neurons.py
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest
import torch

import neurospec.util.io as nio
from neurospec.core.sites import ModelShape
from neurospec.data.locate import mirror_root
from neurospec.neurons.formats import load_neuron_file
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.util.errors import FileFormatError, NeurospecError, ShapeMismatchError

LAPE_DIR = mirror_root() / "lape_reference"
LANGS = ["en", "zh", "fr", "es", "vi", "id", "ja"]
# name -> (layers, FFN width, lists in the file), from SOURCE.md
REFERENCE = {
    "LLaMA-2-7B": (32, 11008, 7),
    "Mistral-7B": (32, 14336, 6),
    "BLOOM-7B": (30, 16384, 6),
}
LLAMA2 = ModelShape(num_layers=32, widths={"act": 11008, "down_in": 11008}, model_id="meta-llama/Llama-2-7b-hf")
MISTRAL = ModelShape(num_layers=32, widths={"act": 14336}, model_id="mistralai/Mistral-7B-v0.1")


def reference_file(name: str) -> Path:
    path = LAPE_DIR / f"{name}.neuron.pth"
    if not path.is_file():
        pytest.skip(f"LAPE reference file {path} is absent (expected in the data mirror, NEUROSPEC_DATA)")
    return path


def raw_reference(name: str) -> list[list[torch.Tensor]]:
    return torch.load(reference_file(name), weights_only=True)


def python_sets(neurons: NeuronSet) -> dict[str, set[tuple[str, int, int]]]:
    """Each group as a python set of (site, layer, index), read through the public accessors."""
    return {
        g: {(s, layer, int(i)) for s in neurons.sites(g) for layer in neurons.layers(g, s) for i in neurons.indices(g, s, layer)}
        for g in neurons.groups
    }


def small_set() -> NeuronSet:
    meta = NeuronSetMeta(
        num_layers=4,
        widths={"act": 16, "q": 8},
        model_id="tiny/llama",
        method="test",
        params={"top_rate": 0.01, "nested": {"a": [1, 2]}},
        data_fingerprint="sha256:abc",
        source={"note": "hand made"},
    )
    return NeuronSet(
        {"en": {"act": {0: [5, 1, 5, 3], 3: [15]}, "q": {1: [7]}}, "fr": {"act": {"2": [0]}}, "ja": {}},
        meta,
    )


# --------------------------------------------------------------------------------------------
# Construction and the JSON file


def test_indices_are_sorted_unique_int64_and_absent_layers_empty():
    neurons = NeuronSet({"en": {"act": {0: torch.tensor([9, 2, 2, 4], dtype=torch.int32), 2: []}}}, num_layers=3)
    got = neurons.indices("en", "act", 0)
    assert got.tolist() == [2, 4, 9] and got.dtype == torch.int64
    for layer in (1, 2):  # never given / given empty
        empty = neurons.indices("en", "act", layer)
        assert empty.dtype == torch.int64 and empty.shape == (0,)
    assert neurons.layers("en", "act") == [0]
    assert neurons.indices("en", "q", 0).numel() == 0  # a site the group lacks


def test_json_round_trip(tmp_path):
    neurons = small_set()
    path = neurons.save(tmp_path / "sub" / "n.json")
    document = json.loads(path.read_text())
    assert document["format"] == "neurospec.neuronset" and document["version"] == 1
    assert list(document["groups"]) == ["en", "fr", "ja"]
    assert document["groups"]["en"] == {"act": {"0": [1, 3, 5], "3": [15]}, "q": {"1": [7]}}
    assert document["meta"]["widths"] == {"act": 16, "q": 8}
    loaded = NeuronSet.load(path)
    assert loaded == neurons
    assert loaded.meta.to_dict() == neurons.meta.to_dict()
    assert loaded.groups == ("en", "fr", "ja") and loaded.path == path
    assert python_sets(loaded) == python_sets(neurons)


def test_json_index_lists_stay_on_one_line(tmp_path):
    text = small_set().save(tmp_path / "n.json").read_text()
    assert '"0": [1, 3, 5]' in text
    assert text.count("\n") < 60


def _document() -> dict:
    return {
        "format": "neurospec.neuronset",
        "version": 1,
        "meta": {"num_layers": 4, "widths": {"act": 16}, "model_id": "tiny/llama"},
        "groups": {"en": {"act": {"0": [1, 2]}}, "fr": {"act": {"3": [4]}}},
    }


def _set(path_in_doc: list, value):
    document = _document()
    target = document
    for key in path_in_doc[:-1]:
        target = target[key]
    target[path_in_doc[-1]] = value
    return document


BAD_FILES = {
    "format tag": (_set(["format"], "lape"), ["format tag is 'lape'", "neurospec.neuronset", "import"]),
    "newer version": (_set(["version"], 2), ["version 2", "Upgrade neurospec"]),
    "unknown site": (_set(["groups", "fr"], {"mlp": {"0": [1]}}), ["group 'fr'", "unknown site 'mlp'", "act"]),
    "float index": (_set(["groups", "en", "act", "0"], [1, 2.5]),
                    ["group 'en'", "site 'act'", "layer 0", "2.5", "not an integer"]),
    "string index": (_set(["groups", "en", "act", "0"], ["3"]), ["layer 0", "'3'", "not an integer"]),
    "bool index": (_set(["groups", "en", "act", "0"], [True]), ["layer 0", "True", "not an integer"]),
    "negative index": (_set(["groups", "en", "act", "0"], [3, -1]), ["group 'en'", "layer 0", "index -1 is negative"]),
    "layer beyond num_layers": (_set(["groups", "fr", "act"], {"4": [1]}),
                                ["group 'fr'", "layer 4 does not exist", "4 layers", "num_layers"]),
    "index beyond width": (_set(["groups", "fr", "act", "3"], [16]),
                           ["group 'fr'", "layer 3", "index 16 is out of range", "16 neurons", "widths"]),
    "layer not a number": (_set(["groups", "en", "act"], {"first": [1]}), ["group 'en'", "layer 'first' is not an integer"]),
    "no num_layers": (_set(["meta"], {"widths": {}}), ["num_layers"]),
    "unknown width site": (_set(["meta", "widths"], {"ffn": 3}), ["widths", "unknown site 'ffn'"]),
    "indices not a list": (_set(["groups", "en", "act", "0"], 3), ["layer 0", "list of integers"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_load_rejects_bad_files_naming_file_entry_and_fix(tmp_path, case):
    document, words = BAD_FILES[case]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(FileFormatError) as info:
        NeuronSet.load(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, (word, message)


def test_load_rejects_invalid_json_and_duplicate_layers(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "neurospec.neuronset", ')
    with pytest.raises(FileFormatError, match="not valid JSON"):
        NeuronSet.load(broken)
    twice = tmp_path / "twice.json"
    text = json.dumps(_document()).replace('"0": [1, 2]', '"0": [1, 2], "0": [3]')
    twice.write_text(text)
    with pytest.raises(FileFormatError, match="duplicate key"):
        NeuronSet.load(twice)


def test_construction_checks_entries_too():
    with pytest.raises(NeurospecError, match="layer 5 does not exist"):
        NeuronSet({"en": {"act": {5: [1]}}}, num_layers=5)
    with pytest.raises(NeurospecError, match="not a torch.float32 tensor|not a torch.float32"):
        NeuronSet({"en": {"act": {0: torch.tensor([1.0])}}}, num_layers=5)
    with pytest.raises(NeurospecError, match="unknown site 'mlp'"):
        NeuronSet({"en": {"mlp": {0: [1]}}}, num_layers=5)
    with pytest.raises(NeurospecError, match="index 8 is out of range"):
        NeuronSet({"en": {"act": {0: [8]}}}, NeuronSetMeta(num_layers=2, widths={"act": 8}))


def test_unknown_group_error_lists_the_groups():
    neurons = small_set()
    for call in (lambda: neurons.indices("de", "act", 0), lambda: neurons.count("de"), lambda: neurons.select("de")):
        with pytest.raises(NeurospecError) as info:
            call()
        assert "unknown group 'de'" in str(info.value) and "'en', 'fr', 'ja'" in str(info.value)


# --------------------------------------------------------------------------------------------
# validate_for


def test_validate_for_layer_that_does_not_exist():
    neurons = NeuronSet({"en": {"act": {40: [1]}}}, NeuronSetMeta(num_layers=48, model_id="big/model"))
    with pytest.raises(ShapeMismatchError) as info:
        neurons.validate_for(LLAMA2)
    message = str(info.value)
    assert "layer 40 does not exist" in message and "has 32 layers" in message
    assert "was this neuron file made for another model?" in message
    assert "big/model" in message and "meta-llama/Llama-2-7b-hf" in message


def test_validate_for_bloom_file_with_32_layer_model():
    bloom = NeuronSet.from_lape(reference_file("BLOOM-7B"), LANGS)
    with pytest.raises(ShapeMismatchError) as info:
        bloom.validate_for(LLAMA2)
    message = str(info.value)
    assert "BLOOM-7B.neuron.pth" in message and "30 layers" in message and "32 layers" in message
    assert "meta-llama/Llama-2-7b-hf" in message and "another model" in message


def test_validate_for_mistral_file_with_llama2_shape_by_width():
    mistral = NeuronSet.from_lape(reference_file("Mistral-7B"), LANGS, shape=MISTRAL)
    assert mistral.meta.widths == {"act": 14336}
    with pytest.raises(ShapeMismatchError) as info:
        mistral.validate_for(LLAMA2)
    message = str(info.value)
    assert "14336" in message and "11008" in message and "another model" in message
    assert "mistralai/Mistral-7B-v0.1" in message and "meta-llama/Llama-2-7b-hf" in message


def test_validate_for_mistral_file_without_widths_by_index():
    mistral = NeuronSet.from_lape(reference_file("Mistral-7B"), LANGS)  # widths unknown
    assert mistral.meta.widths == {}
    beyond = max(int(t.max()) for lang in raw_reference("Mistral-7B") for t in lang if t.numel())
    assert beyond >= 11008  # the independent reason the check must fire
    with pytest.raises(ShapeMismatchError) as info:
        mistral.validate_for(LLAMA2)
    message = str(info.value)
    assert "does not exist" in message and "11008" in message and "another model" in message


def test_validate_for_site_the_model_lacks_and_success_returns_self():
    neurons = NeuronSet({"en": {"up_pre": {0: [1]}}}, num_layers=32)
    bloom_like = ModelShape(num_layers=32, widths={"act": 16384, "down_in": 16384, "gate_pre": 16384},
                            model_id="bigscience/bloom-7b1")
    with pytest.raises(ShapeMismatchError, match="site 'up_pre'.*bigscience/bloom-7b1 does not have"):
        neurons.validate_for(bloom_like)
    fine = NeuronSet({"en": {"act": {31: [11007]}}}, num_layers=32)
    assert fine.validate_for(LLAMA2) is fine


def test_validate_for_accepts_a_site_map_and_load_checks_shape(tmp_path):
    transformers = pytest.importorskip("transformers")
    from neurospec.core.sites import SiteMap

    config = transformers.LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2,
    )
    sites = SiteMap(transformers.LlamaForCausalLM(config))
    ok = NeuronSet({"en": {"act": {1: [23]}, "q": {0: [15]}}}, num_layers=2)
    assert ok.validate_for(sites) is ok
    path = NeuronSet({"en": {"act": {1: [24]}}}, num_layers=2).save(tmp_path / "wide.json")
    with pytest.raises(ShapeMismatchError, match="neuron 24 does not exist.*24 'act' neurons"):
        NeuronSet.load(path, shape=sites)


# --------------------------------------------------------------------------------------------
# LAPE reference files


def test_llama2_reference_counts_match_source_md():
    neurons = NeuronSet.from_lape(reference_file("LLaMA-2-7B"), LANGS, shape=LLAMA2)
    expected = {"en": 95, "zh": 583, "fr": 1022, "es": 838, "vi": 836, "id": 1068, "ja": 582}
    assert {g: neurons.count(g) for g in neurons.groups} == expected
    assert neurons.count() == 3523 == round(0.01 * 32 * 11008)
    assert neurons.meta.model_id == "meta-llama/Llama-2-7b-hf" and neurons.meta.widths == {"act": 11008}
    assert neurons.meta.source["lists"] == 7 and neurons.meta.source["format"] == "lape-pth"


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_counts_against_an_independent_read(name):
    layers, width, lists = REFERENCE[name]
    raw = raw_reference(name)
    assert len(raw) == lists and all(len(lang) == layers for lang in raw)
    neurons = NeuronSet.from_lape(reference_file(name), LANGS)
    for i, lang in enumerate(LANGS):
        expected = sum(t.numel() for t in raw[i]) if i < len(raw) else 0
        assert neurons.count(lang) == expected
    distinct = {(layer, int(j)) for lang in raw for layer, t in enumerate(lang) for j in t}
    assert neurons.count() == len(distinct) == round(0.01 * layers * width)  # exactly 1% of all FFN neurons
    per_layer = torch.zeros(layers, dtype=torch.int64)
    for layer, _ in distinct:
        per_layer[layer] += 1
    assert torch.equal(neurons.per_layer_counts(), per_layer)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_round_trips_exactly_through_json(tmp_path, name):
    layers, _, lists = REFERENCE[name]
    raw = raw_reference(name)
    NeuronSet.from_lape(reference_file(name), LANGS).save(tmp_path / "n.json")
    NeuronSet.load(tmp_path / "n.json").save_lape(tmp_path / "back.pth")
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert isinstance(back, list) and len(back) == len(raw) == lists
    for lang_back, lang_raw in zip(back, raw):
        assert isinstance(lang_back, list) and len(lang_back) == len(lang_raw) == layers
        for got, want in zip(lang_back, lang_raw):
            assert got.dtype == want.dtype == torch.int64
            assert got.shape == want.shape and torch.equal(got, want)


def test_missing_trailing_language_is_an_empty_group():
    mistral = NeuronSet.from_lape(reference_file("Mistral-7B"), LANGS)
    assert mistral.groups == tuple(LANGS)
    assert mistral.is_empty("ja") and mistral.count("ja") == 0 and not mistral.is_empty("id")
    assert mistral.sites("ja") == ("act",)


def test_more_lists_than_group_names_is_an_error():
    with pytest.raises(FileFormatError) as info:
        NeuronSet.from_lape(reference_file("Mistral-7B"), LANGS[:5])
    message = str(info.value)
    assert "6 language lists" in message and "5 group names" in message and "Mistral-7B.neuron.pth" in message


def test_from_lape_loads_with_weights_only_and_refuses_pickled_objects(tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    NeuronSet.from_lape(reference_file("BLOOM-7B"), LANGS)
    assert calls == [True]
    monkeypatch.setattr(torch, "load", real_load)

    evil = tmp_path / "evil.pth"
    torch.save([[_Pickled()]], evil)
    with pytest.raises(FileFormatError, match="weights_only=True"):
        NeuronSet.from_lape(evil, ["en"])


class _Pickled:
    """An arbitrary object: loading it would need unpickling code."""


def test_from_lape_shape_with_other_layer_count():
    with pytest.raises(ShapeMismatchError, match="30 layers per language.*32 layers"):
        NeuronSet.from_lape(reference_file("BLOOM-7B"), LANGS, shape=LLAMA2)


def test_to_lape_drops_trailing_empty_groups_and_keeps_middle_ones():
    neurons = NeuronSet({"a": {"act": {1: [3]}}, "b": {}, "c": {"act": {0: [2, 1]}}, "d": {}, "e": {}}, num_layers=3)
    lists = neurons.to_lape()
    assert len(lists) == 3 and all(len(lang) == 3 for lang in lists)
    assert [t.tolist() for t in lists[0]] == [[], [3], []]
    assert [t.tolist() for t in lists[1]] == [[], [], []]
    assert [t.tolist() for t in lists[2]] == [[1, 2], [], []]
    assert all(t.dtype == torch.int64 for lang in lists for t in lang)
    assert len(neurons.to_lape(["b", "d"])) == 0


def test_lape_file_with_explicit_trailing_empty_list_round_trips(tmp_path):
    original = [[torch.tensor([1, 4]), torch.tensor([], dtype=torch.int64)], [torch.empty(0, dtype=torch.int64)] * 2]
    torch.save(original, tmp_path / "two.pth")
    neurons = NeuronSet.from_lape(tmp_path / "two.pth", ["x", "y", "z"])
    assert len(neurons.to_lape()) == 2  # as many lists as the file held
    assert len(neurons.select("x", "y").to_lape()) == 1  # a new selection follows the reference rule


def test_to_lape_refuses_a_second_site_unless_one_is_chosen():
    neurons = NeuronSet({"en": {"act": {0: [1]}, "q": {1: [2]}}, "fr": {"q": {0: [3]}}}, num_layers=2)
    with pytest.raises(NeurospecError, match="one site.*act, q"):
        neurons.to_lape()
    chosen = neurons.to_lape(site="q")
    assert [[t.tolist() for t in lang] for lang in chosen] == [[[], [2]], [[3], []]]
    only_act = neurons.to_lape(site="act")  # fr has no act neurons: a trailing empty group, dropped
    assert [[t.tolist() for t in lang] for lang in only_act] == [[[1], []]]


# --------------------------------------------------------------------------------------------
# Counting, set algebra, overlap: against python sets


def random_set(seed: int, groups: list[str], num_layers: int = 5, width: int = 30) -> NeuronSet:
    rng = random.Random(seed)
    data = {}
    for group in groups:
        sites = {}
        for site in rng.sample(["act", "q", "gate_pre"], 2):
            sites[site] = {layer: rng.sample(range(width), rng.randint(0, 8))
                           for layer in range(num_layers) if rng.random() < 0.7}
        data[group] = sites
    return NeuronSet(data, NeuronSetMeta(num_layers=num_layers, widths={"act": width}))


def test_counts_and_per_layer_counts_against_python_sets():
    neurons = random_set(1, ["en", "fr", "de"])
    sets = python_sets(neurons)
    for group, members in sets.items():
        assert neurons.count(group) == len(members)
        assert neurons.count(group, "act") == len({m for m in members if m[0] == "act"})
    everything = set().union(*sets.values())
    assert neurons.count() == len(everything)
    assert neurons.count(["en", "fr"]) == len(sets["en"] | sets["fr"])
    expected = [len({m for m in sets["en"] | sets["de"] if m[0] == "act" and m[1] == layer}) for layer in range(5)]
    assert neurons.per_layer_counts(["en", "de"], "act").tolist() == expected
    union = neurons.layer_indices(["en", "fr"], "act")
    expected_pairs = {(m[1], m[2]) for m in sets["en"] | sets["fr"] if m[0] == "act"}
    assert {(layer, int(i)) for layer, t in union.items() for i in t} == expected_pairs
    assert all(torch.equal(t, torch.unique(t)) and t.numel() for t in union.values())


def test_set_operations_between_neuron_sets_group_wise():
    a = random_set(2, ["en", "fr"])
    b = random_set(3, ["fr", "de"])
    sa, sb = python_sets(a), python_sets(b)
    union = a | b
    assert union.groups == ("en", "fr", "de")
    assert python_sets(union) == {"en": sa["en"], "fr": sa["fr"] | sb["fr"], "de": sb["de"]}
    both = a & b
    assert both.groups == ("fr",) and python_sets(both) == {"fr": sa["fr"] & sb["fr"]}
    minus = a - b
    assert minus.groups == ("en", "fr")
    assert python_sets(minus) == {"en": sa["en"], "fr": sa["fr"] - sb["fr"]}
    assert a.union(b) == union and a.intersection(b) == both and a.difference(b) == minus


def test_set_operations_between_groups():
    neurons = random_set(4, ["en", "fr", "de"])
    sets = python_sets(neurons)
    assert python_sets(neurons.union("en", "fr")) == {"en|fr": sets["en"] | sets["fr"]}
    assert python_sets(neurons.intersection("en", "fr", name="both")) == {"both": sets["en"] & sets["fr"]}
    assert python_sets(neurons.difference("en", "fr", "de")) == {"en-fr-de": sets["en"] - sets["fr"] - sets["de"]}
    merged = neurons.merge(["fr", "de"], "fr+de")
    assert merged.groups == ("en", "fr+de")
    assert python_sets(merged) == {"en": sets["en"], "fr+de": sets["fr"] | sets["de"]}


def test_overlap_jaccard_against_python_sets():
    neurons = random_set(5, ["en", "fr", "de", "zh"]).union(NeuronSet({"none": {}}, num_layers=5))
    sets = python_sets(neurons)
    labels, jaccard = neurons.overlap()
    assert labels == ["en", "fr", "de", "zh", "none"] and jaccard.shape == (5, 5)
    for i, a in enumerate(labels):
        for j, b in enumerate(labels):
            union = sets[a] | sets[b]
            expected = len(sets[a] & sets[b]) / len(union) if union else 0.0
            assert jaccard[i, j].item() == pytest.approx(expected, abs=1e-12)
    _, counts = neurons.overlap(["en", "zh"], kind="count")
    assert counts.tolist() == [[len(sets["en"]), len(sets["en"] & sets["zh"])], [len(sets["en"] & sets["zh"]), len(sets["zh"])]]
    _, act_only = neurons.overlap(["en", "fr"], site="act")
    ea = {m for m in sets["en"] if m[0] == "act"}
    fa = {m for m in sets["fr"] if m[0] == "act"}
    assert act_only[0, 1].item() == pytest.approx(len(ea & fa) / len(ea | fa))


def test_select_rename_and_incompatible_sets():
    neurons = small_set()
    picked = neurons.select("fr", "en")
    assert picked.groups == ("fr", "en") and python_sets(picked)["en"] == python_sets(neurons)["en"]
    renamed = neurons.rename({"en": "eng"})
    assert renamed.groups == ("eng", "fr", "ja") and python_sets(renamed)["eng"] == python_sets(neurons)["en"]
    with pytest.raises(NeurospecError, match="two groups"):
        neurons.rename({"en": "fr"})
    other = NeuronSet({"en": {"act": {0: [1]}}}, num_layers=5)
    with pytest.raises(ShapeMismatchError, match="4 layers.*5"):
        neurons | other
    wider = NeuronSet({"en": {"act": {0: [1]}}}, NeuronSetMeta(num_layers=4, widths={"act": 32}))
    with pytest.raises(ShapeMismatchError, match="16 wide.*32 wide"):
        neurons & wider


def test_load_neuron_file_dispatches_by_content(tmp_path):
    json_path = small_set().save(tmp_path / "no_suffix")
    assert load_neuron_file(json_path) == small_set()
    bloom = load_neuron_file(reference_file("BLOOM-7B"), groups=LANGS)
    assert bloom.count("en") == sum(t.numel() for t in raw_reference("BLOOM-7B")[0])
    with pytest.raises(NeurospecError, match="--groups"):
        load_neuron_file(reference_file("BLOOM-7B"))


# --------------------------------------------------------------------------------------------
# Atomic writes (neurospec.util.io)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_save_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    target = tmp_path / "n.json"
    target.write_text("old content")

    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(nio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        small_set().save(target)
    assert target.read_text() == "old content"
    assert _leftovers(tmp_path) == []


def test_save_writes_nothing_when_serialisation_fails(tmp_path, monkeypatch):
    unserialisable = small_set()
    unserialisable.meta.params["bad"] = object()
    with pytest.raises(TypeError):
        unserialisable.save(tmp_path / "n.json")
    assert list(tmp_path.iterdir()) == []

    def broken_dumps(*args, **kwargs):
        raise ValueError("encoder broke")

    monkeypatch.setattr(nio.json, "dumps", broken_dumps)
    (tmp_path / "keep.json").write_text("previous")
    with pytest.raises(ValueError, match="encoder broke"):
        small_set().save(tmp_path / "keep.json")
    assert (tmp_path / "keep.json").read_text() == "previous" and _leftovers(tmp_path) == []


def test_failure_in_the_middle_of_writing_leaves_no_file(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError):
        with nio.atomic_open(tmp_path / "half.txt") as handle:
            handle.write("the first half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []

    def torch_save_then_crash(obj, handle):
        handle.write(b"PK\x03\x04 partial")
        raise RuntimeError("crash while pickling")

    monkeypatch.setattr(nio.torch, "save", torch_save_then_crash)
    with pytest.raises(RuntimeError, match="pickling"):
        small_set().select("en").save_lape(tmp_path / "x.pth", site="act")
    assert list(tmp_path.iterdir()) == []


def test_safetensors_text_and_fingerprint(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    path = nio.atomic_save_safetensors(tmp_path / "a" / "s.safetensors", {"x": torch.arange(6).view(2, 3).t()}, {"k": "v"})
    assert torch.equal(safetensors.load_file(path)["x"], torch.arange(6).view(2, 3).t())
    with safetensors.safe_open(path, "pt") as handle:
        assert handle.metadata() == {"k": "v"}
    with pytest.raises(TypeError, match="str to str"):
        nio.atomic_save_safetensors(tmp_path / "bad.safetensors", {"x": torch.zeros(1)}, {"k": 1})
    assert not (tmp_path / "bad.safetensors").exists() and _leftovers(tmp_path) == []
    text_path = nio.atomic_write_text(tmp_path / "t.txt", "héllo\n")
    assert text_path.read_text(encoding="utf-8") == "héllo\n"
    assert nio.file_fingerprint(text_path) == "sha256:" + hashlib.sha256("héllo\n".encode()).hexdigest()
    mode = os.stat(text_path).st_mode & 0o777
    assert mode & 0o044 == 0o044 or os.umask(os.umask(0)) & 0o044  # readable by others unless the umask forbids


def test_json_text_keeps_order_and_refuses_nan():
    text = nio.json_text({"b": 1, "a": [1, 2, 3], "c": {"d": [[1], [2]]}})
    assert json.loads(text) == {"b": 1, "a": [1, 2, 3], "c": {"d": [[1], [2]]}}
    assert text.index('"b"') < text.index('"a"') and '"a": [1, 2, 3]' in text
    with pytest.raises(ValueError):
        nio.json_text({"x": float("nan")})
