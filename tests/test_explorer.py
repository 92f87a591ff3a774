"""The neuron explorer of the report (one page per group) and `neurospec explain --summary`: the numbers on a group
page equal the statistics and the kept contexts read straight from their safetensors files, the marked token is the
kept one, escaped; chromium opens the pages without error; only pages a report wrote are replaced or removed; a
large group's pages are measured (size, load time in chromium: printed, and recorded in docs/report.md)."""

from __future__ import annotations

import html
import json
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from families import family
from interventions_common import TEXTS, neuron_set, sentence_stats, tiny_llama, tok
from safetensors.torch import load_file
from test_report_browser import ARGS, chromium
from typer.testing import CliRunner

from neurospec.cli.main import app
from neurospec.data.corpora import open_corpus
from neurospec.measure.collect import CollectOptions, collect
from neurospec.neurons.neuron_set import NeuronSet, NeuronSetMeta
from neurospec.report import write_report
from neurospec.report.explorer import PAGE_NEURONS, TOP_TOKENS
from neurospec.report.fields import ReportError

runner = CliRunner()
MIDDLE = 8  # the marked token's place in a kept window (neurospec.measure.contexts.CONTEXT_WINDOW)
ESCAPED_LINE = "Use <b>bold</b> & <i>x</i> < y > z."  # tokens holding <, > and &


# --------------------------------------------------------------------------------------------
# building runs


def _named_model(root: Path, **overrides):
    """A tiny Llama whose recorded model id is a folder holding its tokenizer (so contexts decode to text)."""
    tokenizer_dir = root / "tokenizer"
    tok().save_pretrained(tokenizer_dir)
    t = tok()
    model = family("llama").build(0, vocab_size=len(t), pad_token_id=t.pad_token_id, bos_token_id=t.bos_token_id,
                                  eos_token_id=t.eos_token_id, **overrides) if overrides else tiny_llama()
    model.config._name_or_path = str(tokenizer_dir)
    model.name_or_path = str(tokenizer_dir)
    return model


def _collect(model, root: Path, texts: dict[str, list[str]], k: int) -> Path:
    corpora = []
    for lang, lines in texts.items():
        (root / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        corpora.append(open_corpus(lang, root / f"{lang}.txt"))
    folder = root / "run" / "stats"
    collect(model, tok(), corpora, folder, CollectOptions(top_contexts=k, batch_size=4), quiet=True)
    return folder


def _fingerprint(stats: Path) -> str:
    return json.loads((stats / "stats.json").read_text(encoding="utf-8"))["files"]["stats.safetensors"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A run: statistics keeping 3 contexts (English holds a line of < > &), a LAPE-like set (a neuron in two
    groups) recording the statistics' fingerprint, its report."""
    root = tmp_path_factory.mktemp("explorer")
    model = _named_model(root)
    texts = {lang: list(lines) for lang, lines in TEXTS.items()}
    texts["eng_Latn"].append(ESCAPED_LINE)
    stats = _collect(model, root, texts, k=3)
    lape = neuron_set(model)
    lape = lape.union(lape.rename({"fra_Latn": "both"}).select("both"))
    lape.meta.method, lape.meta.data_fingerprint = "lape", _fingerprint(stats)
    lape.save(root / "run" / "lape.json")
    return root / "run", write_report(root / "run")


# --------------------------------------------------------------------------------------------
# the independent reading: tensors from the safetensors files, the page by regular expressions


def expected_group(run: Path, group: str) -> dict:
    """Straight from the files: the group's neurons, mean P per language, each neuron's P and kept contexts (the
    marked token decoded here), and the top tokens."""
    data = json.loads((run / "lape.json").read_text(encoding="utf-8"))
    members = sorted((int(layer), int(i)) for layer, idx in data["groups"][group]["act"].items() for i in idx)
    meta = json.loads((run / "stats" / "stats.json").read_text(encoding="utf-8"))
    tensors = load_file(run / "stats" / "stats.safetensors")
    p = tensors["active"].numpy().astype(np.float32) / tensors["tokens"].numpy().astype(np.float32)[:, None, None]
    languages = meta["languages"]
    kept = {lang: load_file(run / "stats" / meta["context_files"][lang]) for lang in languages}
    neurons = {}
    for layer, i in members:
        contexts = {}
        for lang in languages:
            at = _slot(kept[lang], layer, i)
            if at is None:  # contexts kept for selected neurons only, not this one
                contexts[lang] = []
                continue
            values, positions, windows = (kept[lang][name][at].tolist() for name in ("values", "positions", "windows"))
            contexts[lang] = [(value, tok().decode([window[MIDDLE]], skip_special_tokens=False))
                              for value, position, window in zip(values, positions, windows) if position >= 0]
        neurons[(layer, i)] = {"p": {lang: float(p[g, layer, i]) for g, lang in enumerate(languages)},
                               "contexts": contexts}
    means = {lang: float(np.mean([p[g, layer, i] for layer, i in members], dtype=np.float64))
             for g, lang in enumerate(languages)}
    tokens = {lang: Counter(token for key in members for _, token in neurons[key]["contexts"][lang]).most_common(
        TOP_TOKENS) for lang in languages}
    return {"members": members, "means": means, "neurons": neurons, "tokens": tokens, "languages": languages}


def _slot(tensors: dict, layer: int, neuron: int):
    """Where a neuron's contexts lie in a contexts file: (layer, neuron), or its row when the file keeps selected
    neurons only (a ``neurons`` (M, 2) tensor); None when it keeps none for it."""
    if "neurons" not in tensors:
        return (layer, neuron)
    rows = ((tensors["neurons"][:, 0] == layer) & (tensors["neurons"][:, 1] == neuron)).nonzero()
    return int(rows[0, 0]) if len(rows) else None


def read_page(text: str) -> dict:
    """What a group page shows, read back from its markup."""
    header, _, rest = text.partition('<div class="neurons">')
    languages = re.search(r'<table class="group-languages">(.*?)</table>', header, re.S).group(1)
    means = {lang: float(value) for lang, value in
             re.findall(r'<tr data-language="([^"]+)">.*?<td class="num" data-value="([^"]+)">', languages)}
    token_rows = re.search(r'<table class="group-tokens">(.*?)</table>', header, re.S).group(1)
    tokens = {html.unescape(lang): [(html.unescape(t), int(c)) for c, t in
                                    re.findall(r'<code class="tok" data-count="(\d+)">(.*?)</code>', row, re.S)]
              for lang, row in re.findall(r'<tr data-language="([^"]+)">(.*?)</tr>', token_rows, re.S)}
    neurons = {}
    for layer, index, body in re.findall(r'<details class="neuron" id="[^"]+" data-layer="(\d+)" '
                                         r'data-neuron="(\d+)">(.*?)</details>', rest, re.S):
        bars = re.search(r'<table class="probability">(.*?)</table>', body, re.S).group(1)
        p = {lang: float(v) for lang, v in re.findall(r'<tr data-language="([^"]+)">.*?data-value="([^"]+)"', bars)}
        contexts = {lang: [(float(v), html.unescape(m)) for v, m in
                           re.findall(r'<li data-value="([^"]+)">.*?<mark>(.*?)</mark>', items, re.S)]
                    for lang, items in re.findall(r'<ol class="ctx" data-language="([^"]+)">(.*?)</ol>', body, re.S)}
        groups = re.search(r"groups: ([^<·]*?)(?: · |</summary>)", body).group(1).split(", ")
        neurons[(int(layer), int(index))] = {"p": p, "contexts": contexts, "groups": groups}
    return {"means": means, "tokens": tokens, "neurons": neurons}


# --------------------------------------------------------------------------------------------
# the numbers


def test_group_pages_equal_the_tensors_read_directly(small_run):
    run, report = small_run
    manifest = json.loads((report.parent / "report.json").read_text(encoding="utf-8"))
    assert manifest["pages"] == ["explorer/both.html", "explorer/deu-latn.html", "explorer/eng-latn.html",
                                 "explorer/fra-latn.html"]
    main = report.read_text(encoding="utf-8")
    for group, page in (("fra_Latn", "fra-latn"), ("both", "both"), ("eng_Latn", "eng-latn")):
        assert f'<a href="explorer/{page}.html">' in main
        want = expected_group(run, group)
        got = read_page((report.parent / "explorer" / f"{page}.html").read_text(encoding="utf-8"))
        assert list(got["means"]) == sorted(want["languages"], key=lambda lang: -want["means"][lang])
        for lang in want["languages"]:
            assert got["means"][lang] == pytest.approx(want["means"][lang], rel=1e-9, abs=1e-12)
        assert {lang: list(found) for lang, found in got["tokens"].items()} == want["tokens"]
        assert list(got["neurons"]) == want["members"]  # every neuron, in layer order
        for key, neuron in got["neurons"].items():
            assert neuron["p"] == want["neurons"][key]["p"]
            assert neuron["contexts"] == want["neurons"][key]["contexts"]  # values and the marked tokens
            if group in ("fra_Latn", "both"):
                assert neuron["groups"] == ["fra_Latn", "both"]


def test_marked_tokens_are_escaped(small_run):
    run, report = small_run
    pages = {path.name: path.read_text(encoding="utf-8") for path in (report.parent / "explorer").glob("*.html")}
    marked = [m for text in pages.values() for m in re.findall(r"<mark>(.*?)</mark>", text, re.S)]
    angled = [m for m in marked if "&lt;" in m or "&gt;" in m]
    assert angled, "no kept token holds < or >: the test corpus no longer exercises escaping"
    assert all("<" not in m and ">" not in m for m in marked)
    for text in pages.values():
        assert "<b>bold" not in text and "<i>x" not in text and "&amp;lt;" not in text  # escaped once, never twice
        body = re.sub(r"</?[a-z][a-z0-9]*(?: [^<>]*)?>", "", text.split("<body", 1)[1].split(">", 1)[1])
        assert "<" not in body and ">" not in body  # no text left looking like markup after the tags are gone


def test_explain_group_on_the_command_line(small_run):
    run, _ = small_run
    done = runner.invoke(app, ["explain", str(run / "lape.json"), "--stats", str(run / "stats"), "--summary",
                               "--groups", "French", "--json"])
    assert done.exit_code == 0, done.output
    [summary] = json.loads(done.output)["groups"]
    want = expected_group(run, "fra_Latn")
    assert summary["group"] == "fra_Latn" and summary["neurons"] == len(want["members"]) and summary["site"] == "act"
    assert [row["language"] for row in summary["languages"]] == sorted(want["languages"],
                                                                        key=lambda lang: -want["means"][lang])
    for row in summary["languages"]:
        assert row["probability"] == pytest.approx(want["means"][row["language"]], rel=1e-9)
        top = Counter(max(want["languages"], key=lambda lang: n["p"][lang]) for n in want["neurons"].values())
        assert row["top_for"] == top[row["language"]]
    assert {lang: [(t["token"], t["count"]) for t in found] for lang, found in summary["tokens"].items()} == \
        want["tokens"]
    plain = runner.invoke(app, ["explain", str(run / "lape.json"), "--stats", str(run / "stats"), "--summary"],
                          env={"COLUMNS": "200"})
    assert plain.exit_code == 0 and "mean P(>0)" in plain.output and "fra_Latn  6 neurons at act" in plain.output
    assert plain.output.count("neurons at act") == len(NeuronSet.load(run / "lape.json").groups)


# --------------------------------------------------------------------------------------------
# the writer's rules


def test_only_pages_a_report_wrote_are_replaced_or_removed(small_run, tmp_path):
    run, _ = small_run
    out = tmp_path / "out"
    (out / "explorer").mkdir(parents=True)
    (out / "explorer" / "mine.html").write_text("my page", encoding="utf-8")
    write_report(run, out)
    assert sorted(p.name for p in (out / "explorer").iterdir()) == ["both.html", "deu-latn.html", "eng-latn.html",
                                                                   "fra-latn.html", "mine.html"]
    # a later report without the group "both" removes its page, and only it
    other = tmp_path / "run2"
    shutil.copytree(run / "stats", other / "stats")
    lape = NeuronSet.load(run / "lape.json")
    lape.select(["fra_Latn", "eng_Latn"]).save(other / "lape.json")
    write_report(other, out)
    assert sorted(p.name for p in (out / "explorer").iterdir()) == ["eng-latn.html", "fra-latn.html", "mine.html"]
    assert (out / "explorer" / "mine.html").read_text(encoding="utf-8") == "my page"
    assert json.loads((out / "report.json").read_text())["pages"] == ["explorer/eng-latn.html",
                                                                      "explorer/fra-latn.html"]
    # a page of the same name the report did not write: an error, and nothing changes
    fresh = tmp_path / "fresh"
    (fresh / "explorer").mkdir(parents=True)
    (fresh / "explorer" / "fra-latn.html").write_text("mine too", encoding="utf-8")
    with pytest.raises(ReportError, match=r"explorer/fra-latn\.html was not written by neurospec report"):
        write_report(run, fresh)
    assert sorted(p.name for p in fresh.rglob("*")) == ["explorer", "fra-latn.html"]
    assert (fresh / "explorer" / "fra-latn.html").read_text(encoding="utf-8") == "mine too"


def test_without_contexts_no_pages_and_the_section_says_how(tmp_path):
    model = tiny_llama()
    (tmp_path / "run").mkdir()
    sentence_stats(model, tmp_path / "run")
    lape = neuron_set(model)
    lape.meta.data_fingerprint = _fingerprint(tmp_path / "run" / "stats")
    lape.save(tmp_path / "run" / "lape.json")
    report = write_report(tmp_path / "run")
    assert not (report.parent / "explorer").exists()
    assert json.loads((report.parent / "report.json").read_text())["pages"] == []
    text = report.read_text(encoding="utf-8")
    assert "keep no top contexts" in text and "--top-contexts K" in text and 'data-table="explorer"' not in text


# --------------------------------------------------------------------------------------------
# in chromium


def open_page(path: Path) -> dict:
    """``path`` in chromium from file:// (only file: and data: requests let through): console errors, page errors,
    refused requests, the number of <mark> elements, whether the first one shows once its neuron is opened, and
    the load time."""
    executable = chromium()
    from playwright.sync_api import sync_playwright

    seen = {"console": [], "errors": [], "refused": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})

            def route(handle):
                if handle.request.url.startswith(("file:", "data:")):
                    handle.continue_()
                else:
                    seen["refused"].append(handle.request.url)
                    handle.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda message: seen["console"].append((message.type, message.text)))
            page.on("pageerror", lambda error: seen["errors"].append(str(error)))
            start = time.perf_counter()
            page.goto(path.as_uri(), wait_until="load")
            seen["load_s"] = time.perf_counter() - start
            seen["navigation_ms"] = page.evaluate("() => performance.getEntriesByType('navigation')[0].duration")
            seen["marks"] = page.evaluate("() => document.querySelectorAll('mark').length")
            seen["details"] = page.evaluate("() => document.querySelectorAll('details.neuron').length")
            if seen["details"]:
                page.locator("details.neuron > summary").first.click()
                seen["mark_shown"] = page.locator("details.neuron[open] mark").first.is_visible()
        finally:
            browser.close()
    return seen


def test_chromium_opens_the_pages_without_error(small_run):
    run, report = small_run
    page = report.parent / "explorer" / "fra-latn.html"
    seen = open_page(page)
    assert seen["refused"] == [] and seen["errors"] == []
    assert [text for kind, text in seen["console"] if kind == "error"] == []
    assert seen["marks"] == page.read_text(encoding="utf-8").count("<mark>") > 0
    assert seen["details"] == 6 and seen["mark_shown"]
    main = open_page(report)
    assert main["refused"] == [] and main["errors"] == []
    assert [text for kind, text in main["console"] if kind == "error"] == []


def test_a_large_group_in_chromium(tmp_path):
    """2,000 neurons, K=5, 6 languages: pages of PAGE_NEURONS, their size and load time printed (not asserted)."""
    model = _named_model(tmp_path, intermediate_size=1024)
    from tiny_tokenizer import CORPUS

    lines = sorted(set(CORPUS))
    names = ("eng_Latn", "fra_Latn", "deu_Latn", "rus_Cyrl", "jpn_Jpan", "spa_Latn")
    texts = {name: lines[n::6] * 2 for n, name in enumerate(names)}
    stats = _collect(model, tmp_path, texts, k=5)
    layer0, layer1 = torch.arange(1024), torch.arange(2000 - 1024)
    big = NeuronSet({"big": {"act": {0: layer0, 1: layer1}}},
                    NeuronSetMeta(num_layers=2, widths={"act": 1024}, method="lape", data_fingerprint=_fingerprint(stats)))
    big.save(tmp_path / "run" / "big.json")
    start = time.perf_counter()
    report = write_report(tmp_path / "run")
    written = time.perf_counter() - start
    pages = sorted((report.parent / "explorer").glob("*.html"))
    assert [p.name for p in pages] == ["big-2.html", "big-3.html", "big-4.html", "big.html"]
    sizes = {p.name: p.stat().st_size for p in pages}
    seen = open_page(report.parent / "explorer" / "big.html")
    last = open_page(report.parent / "explorer" / "big-4.html")
    assert seen["details"] == PAGE_NEURONS and last["details"] == 2000 - 3 * PAGE_NEURONS
    assert seen["errors"] == [] and [t for kind, t in seen["console"] if kind == "error"] == []
    assert seen["marks"] == (report.parent / "explorer" / "big.html").read_text(encoding="utf-8").count("<mark>")
    print(f"\nexplorer, 2000 neurons x 6 languages x K=5: report written in {written:.1f} s; page sizes "
          + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items())
          + f"; chromium load big.html {seen['load_s']:.2f} s (navigation {seen['navigation_ms']:.0f} ms), "
          f"big-4.html {last['load_s']:.2f} s")
