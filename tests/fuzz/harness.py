"""What the fuzz tests share: a hard per-case deadline, the check that only the project's own
errors come out, a tally per format, and hypothesis strategies that mutate valid files.

Each case runs under a real-time alarm (``DEADLINE`` seconds, SIGALRM): a loader that loops or
blocks is stopped and counted as a hang, which a hypothesis ``deadline`` (measured after the
case returns) cannot do. The default run tries ``EXAMPLES`` cases per format; set
``WORLDSTUDIO_FUZZ=long`` for thousands (``LONG_EXAMPLES``), in which mode a bad case is counted
instead of failing the test and the tally (cases, crashes, hangs per format) is printed at the
end of the session.
"""

from __future__ import annotations

import json
import os
import re
import signal
import traceback
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from worldstudio.core.errors import WorldStudioError

LONG = os.environ.get("WORLDSTUDIO_FUZZ", "").lower() == "long"
EXAMPLES = int(os.environ.get("WORLDSTUDIO_FUZZ_EXAMPLES", "0")) or (3000 if LONG else 250)
# The measure of a hang: more than 10 s (a case takes milliseconds; the margin is for a
# busy machine)
DEADLINE = float(os.environ.get("WORLDSTUDIO_FUZZ_DEADLINE", "10"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the alarm below is the deadline: it also stops a case that never returns
    database=None,  # nothing written into the work tree
    derandomize=not LONG,  # the default run is the same every time; the long run explores
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    print_blob=True,
)

# format -> Counter(cases=, ok=, refused=, crashes=, hangs=); examples of each failure
TALLY: dict[str, Counter] = {}
FAILURES: dict[str, list[str]] = {}


class Hang(BaseException):
    """A case ran past the deadline. A BaseException, so that the code under test, which may
    catch Exception, cannot swallow it."""


@contextmanager
def deadline(seconds: float):
    def alarm(_signum, _frame):
        raise Hang(f"still running after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_case(fmt: str, fn: Callable[[], object], describe: Callable[[], str] = lambda: "") -> str:
    """Run one case of format ``fmt``: "ok" when ``fn`` returned, "refused" when it raised the
    project's own error. Anything else is a crash, and running past the deadline a hang: the
    test fails (or, in the long run, the case is counted)."""
    tally = TALLY.setdefault(fmt, Counter())
    tally["cases"] += 1
    try:
        with deadline(DEADLINE):
            fn()
    except WorldStudioError as exc:
        message = str(exc)
        if "\n" in message.strip() or not message.strip():
            return _bad(fmt, "crashes", f"not one line: {message!r}", describe)
        tally["refused"] += 1
        return "refused"
    except Hang as exc:
        return _bad(fmt, "hangs", str(exc), describe)
    except Exception:  # noqa: BLE001 - the point of the test
        return _bad(fmt, "crashes", traceback.format_exc(limit=6), describe)
    tally["ok"] += 1
    return "ok"


def _bad(fmt: str, kind: str, what: str, describe: Callable[[], str]) -> str:
    TALLY[fmt][kind] += 1
    text = f"{fmt}: {kind[:-1]}: {what}\ninput: {describe()[:2000]}"
    FAILURES.setdefault(fmt, []).append(text)
    if not LONG:
        raise AssertionError(text) from None  # the text holds the traceback already
    return kind


# --------------------------------------------------------------------------------------------
# Mutations of valid files

HOSTILE_TOKENS = [
    b"[" * 100_000,
    b"{" * 50_000,
    b"1" * 5000,
    b"-" + b"9" * 400,
    b"1e400",
    b"-1e400",
    b"1e308",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"\xff\xfe\x00",
    b"\x00",
    b'"\\ud800"',
    b"null",
    b"true",
    b"[]",
    b"{}",
    b'""',
    b'"../../outside.npy"',
    b'"/etc/passwd"',
    b"0",
    b"-1",
    b"4294967296",
    b"18446744073709551617",
]

# JSON values to put in place of a field (the placeholder is replaced by the raw token when the
# value is a bytes token that json.dumps cannot write)
_VALUES = st.one_of(
    st.sampled_from(HOSTILE_TOKENS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["/etc/passwd", "../../outside.npy", "scene/../../x", "C:\\x", "~/x", ""]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(min_value=-10, max_value=10), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _paths(obj, prefix=()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:50]):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj, path: tuple, value, delete: bool = False):
    if not path:
        return value
    parent = obj
    for p in path[:-1]:
        parent = parent[p]
    if delete and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return obj


@st.composite
def mutated_json(draw, seed: dict | list) -> bytes:
    """``seed`` with a few fields replaced, deleted or added (hostile values included), as
    JSON text; sometimes with byte-level damage on top."""
    obj = json.loads(json.dumps(seed))
    paths = _paths(obj)
    raw: dict[str, bytes] = {}
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        value = draw(_VALUES)
        if isinstance(value, bytes):
            key = f"@@raw{len(raw)}@@"
            raw[key] = value
            value = key
        try:
            if action == "add":
                target = obj
                for p in path:
                    target = target[p]
                if isinstance(target, dict):
                    target[draw(st.text(max_size=8))] = value
                elif isinstance(target, list):
                    target.append(value)
            else:
                obj = _set(obj, path, value, delete=action == "delete")
        except (KeyError, IndexError, TypeError):
            pass
        paths = _paths(obj)
    text = json.dumps(obj, allow_nan=True).encode()
    for key, token in raw.items():
        text = text.replace(json.dumps(key).encode(), token)
    if draw(st.integers(0, 4)) == 0:
        text = draw(mutated_bytes(text))
    return text


@st.composite
def mutated_bytes(
    draw, seed: bytes, tokens: list[bytes] = HOSTILE_TOKENS, min_edits: int = 1
) -> bytes:
    """``seed`` with a few byte-level edits: flipped bytes, inserted tokens or random bytes,
    deleted runs, a truncation, a duplicated run."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(min_edits, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate", "token"]))
        n = len(data)
        at = int(draw(st.floats(0, 1)) * n)
        if op == "flip" and n:
            data[min(at, n - 1)] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(tokens))
        elif op == "delete" and n:
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[at:]
        elif op == "duplicate" and n:
            run = data[at : at + draw(st.integers(1, 256))]
            data[at:at] = run * draw(st.integers(1, 4))
    return bytes(data)


def replace_numbers(text: bytes, value: bytes, count: int, start: int) -> bytes:
    """``text`` with ``count`` of its numbers, from the ``start``-th on, replaced by ``value``."""
    matches = list(re.finditer(rb"-?\d+(\.\d+)?(e[-+]?\d+)?", text))
    if not matches:
        return text
    chosen = matches[start % len(matches) :][:count]
    out = bytearray(text)
    for m in reversed(chosen):
        out[m.start() : m.end()] = value
    return bytes(out)


def tally_report() -> list[str]:
    lines = []
    for fmt in sorted(TALLY):
        t = TALLY[fmt]
        lines.append(
            f"{fmt:<14} cases {t['cases']:>6}  ok {t['ok']:>6}  refused {t['refused']:>6}  "
            f"crashes {t['crashes']:>4}  hangs {t['hangs']:>4}"
        )
    return lines
