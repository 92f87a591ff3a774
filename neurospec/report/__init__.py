"""The HTML report of a run folder: every artifact found, drawn and tabulated on one self-contained page.

    from neurospec.report import write_report
    path = write_report("runs/study")                 # -> runs/study/report/report.html
    path = write_report("runs/study", out="reports/study")

The page (``report.html``) has the run's facts, a table of contents and one section per artifact
(neuron sets, ppl, lss, sweep, steer, eval, mask-eval, finetune, statistics, attribution scores, ...),
each figure followed by the table of its numbers; figures are embedded as SVG data: URIs and also
written as 200-dpi PNG files to ``figures/<slug>.png``. It loads nothing from the network, needs no
script and fits any window width. A malformed artifact raises
:class:`ReportError` naming the file and leaves no partial report. Parts: discover (finding
artifacts), sections/ (one builder per kind), plots (matplotlib), html (the page), writer.
See docs/report.md.
"""

from neurospec.report.discover import FORMATS, discover
from neurospec.report.fields import ReportError
from neurospec.report.writer import write_report

__all__ = ["write_report", "discover", "ReportError", "FORMATS"]
