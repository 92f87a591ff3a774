"""Progress lines in logs: steps done, a rate and the ETA; the rate in tokens/s where tokens are counted, else
items/s where items are, else steps (cells, settings) per second."""

from __future__ import annotations

import re

from neurospec.util.progress import progress


def test_log_lines_show_the_rate_of_what_the_loop_counts(capsys):
    with progress("lss", total=2, unit="cells", every=1e-9) as bar:
        bar.advance(1)
        bar.advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert re.match(r"lss: 1/2 cells, [0-9,.]+ cells/s, ETA ", lines[0]), lines
    assert lines[-1].startswith("lss: done, 2 cells, ")
    assert not any("tokens/s" in line or "items/s" in line for line in lines)
    with progress("eval xcopa", total=2, unit="cells", every=1e-9) as bar:
        bar.advance(1, items=100)
    lines = capsys.readouterr().err.splitlines()
    assert re.match(r"eval xcopa: 1/2 cells, [0-9,.]+ items/s, ETA ", lines[0]), lines
    with progress("ppl", total=1, unit="cells", every=1e-9) as bar:
        bar.advance(1, tokens=500, items=3)
    lines = capsys.readouterr().err.splitlines()
    assert "tokens/s, ETA " in lines[0] and "tokens/s" in lines[-1] and "items/s" not in lines[0]


def test_quiet_prints_nothing(capsys):
    with progress("ppl", total=1, unit="cells", quiet=True, every=1e-9) as bar:
        bar.advance(1, tokens=10)
    assert capsys.readouterr().err == ""


def test_quiet_loading_silences_the_transformers_progress_bars(tmp_path, capsys):
    from interventions_common import tiny_llama, tok

    from neurospec.core.models import load_model

    tiny_llama().save_pretrained(tmp_path / "model")
    tok().save_pretrained(tmp_path / "model")
    load_model(tmp_path / "model", quiet=True)
    assert "Loading weights" not in capsys.readouterr().err
    load_model(tmp_path / "model")
    assert "Loading weights" in capsys.readouterr().err       # the check can fail: without quiet the bar shows
