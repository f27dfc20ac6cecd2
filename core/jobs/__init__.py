"""Long work as jobs: plain callables that report through a context and honour a cancel token.

A job is ``fn(ctx: JobContext) -> result``. It calls ``ctx.progress(done, total, message)``,
``ctx.preview(image)``, ``ctx.log(text)`` and ``ctx.event(name, **data)`` (typed events such as
``run_started`` or ``round_finished``: :data:`EVENTS`) as it goes, and ``ctx.checkpoint()``
between steps, which holds while the job is paused and raises
:class:`worldstudio.core.errors.Cancelled` once it is cancelled. The CLI runs jobs with a progress bar
(:func:`run_in_terminal`); the studio runs the same callables in a worker thread and turns the
reports into Qt signals. One implementation, two front ends.
"""

from worldstudio.core.jobs.context import (
    EVENTS,
    CancelToken,
    JobContext,
    PauseToken,
    Report,
    hosted_by,
    run_in_terminal,
)

__all__ = [
    "EVENTS",
    "CancelToken",
    "JobContext",
    "PauseToken",
    "Report",
    "hosted_by",
    "run_in_terminal",
]
