"""Progress lines in logs: cells done and the ETA always, tokens/s only when the loop counts tokens."""

from __future__ import annotations

from neurospec.util.progress import progress


def test_log_lines_show_tokens_per_second_only_for_loops_that_count_tokens(capsys):
    with progress("lss", total=2, unit="cells", every=1e-9) as bar:
        bar.advance(1)
        bar.advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("lss: 1/2 cells, ETA ") and lines[-1].startswith("lss: done, 2 cells, ")
    assert not any("tokens/s" in line for line in lines)
    with progress("ppl", total=1, unit="cells", every=1e-9) as bar:
        bar.advance(1, tokens=500)
    lines = capsys.readouterr().err.splitlines()
    assert "tokens/s, ETA " in lines[0] and "tokens/s" in lines[-1]
