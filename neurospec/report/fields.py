"""The error a report raises when an artifact or the run folder cannot be reported on.

    from neurospec.report.fields import ReportError
    raise ReportError("runs/x/ppl/ppl.json: field cells.none.eng_Latn.nll is missing; regenerate it with ...")

Artifacts are read through their result types (:mod:`neurospec.results`, whose :class:`~neurospec.results.fields.Doc`
names the file, the field and the fix of whatever is wrong); :meth:`neurospec.report.discover.Artifact.result`
turns their errors into this one, so a truncated or hand-edited file never turns into a half-drawn figure.
"""

from __future__ import annotations

from neurospec.util.errors import FileFormatError


class ReportError(FileFormatError):
    """An artifact (or the run folder) cannot be reported on; the message names the file and the fix."""
