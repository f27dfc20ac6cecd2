"""The fuzz tally: with WORLDSTUDIO_FUZZ=long the cases, crashes and hangs per format are
printed at the end of the session (tests/fuzz/harness.py)."""

from __future__ import annotations

from .harness import FAILURES, LONG, TALLY, tally_report


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    tr = terminalreporter
    tr.section("fuzz tally" + (" (long run)" if LONG else ""))
    for line in tally_report():
        tr.write_line(line)
    if LONG:
        for _fmt, items in sorted(FAILURES.items()):
            for text in items[:3]:
                tr.write_line(text)
