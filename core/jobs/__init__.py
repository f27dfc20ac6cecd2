"""Long work as jobs: plain callables that report through a context and honour a cancel token.

A job is ``fn(ctx: JobContext) -> result``. It calls ``ctx.progress(done, total, message)``,
``ctx.preview(image)`` and ``ctx.log(text)`` as it goes, and ``ctx.check_cancelled()`` between
steps (which raises :class:`worldstudio.core.errors.Cancelled`). The CLI runs jobs with a progress bar
(:func:`run_in_terminal`); the studio runs the same callables in a worker thread and turns the
reports into Qt signals. One implementation, two front ends.
"""

from worldstudio.core.jobs.context import CancelToken, JobContext, Report, run_in_terminal

__all__ = ["CancelToken", "JobContext", "Report", "run_in_terminal"]
