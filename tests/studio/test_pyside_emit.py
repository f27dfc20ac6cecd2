"""PySide6 6.12.0's Signal.emit() drops a reference to True on every emit, and after a few
thousand emits the interpreter aborts ("bool_dealloc"); pyproject.toml keeps PySide6 below
6.12. This guards the pin: many emits must not crash the interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_tens_of_thousands_of_emits_do_not_crash():
    script = textwrap.dedent("""
        import sys
        from PySide6.QtCore import QObject, Signal

        class O(QObject):
            s = Signal(int)

        o = O()
        got = []
        o.s.connect(got.append)
        before = sys.getrefcount(True)
        for i in range(50000):
            o.s.emit(i)
        assert len(got) == 50000
        assert before - sys.getrefcount(True) < 100, "emit() leaks references to True"
        print("ok")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
