"""What a checker returns: a verdict that is truthy on success and says what is wrong otherwise.

    result = check_momentum_step(momentum_step)
    bool(result)        # True when every case passed
    print(result)       # PASSED / NOT YET, then one line per finding, then a hint
    result              # in Jupyter: a green or red box with the same lines

The text starts with ``PASSED`` or ``NOT YET`` (the notebook tests read that word), and it is
also the ``repr``, so a checker as the last line of a cell shows its verdict in a terminal too.
"""

from __future__ import annotations

import html
import re
import traceback

import numpy as np

__all__ = ["CheckResult", "StudentError", "call_student", "rel_error", "worst_entry", "describe_difference",
           "tolerance", "is_shape_error", "shape_error_finding"]


class CheckResult:
    """The verdict of one exercise checker.

    Attributes
    ----------
    name : str — what was checked, e.g. ``"momentum step"``.
    passed : bool — the result is truthy exactly when this is True.
    findings : list[str] — one sentence per observation (what passed, what differs and where).
    hint : str or None — the most likely cause of a failure, when a checker can tell.
    """

    def __init__(self, name, passed, findings=(), hint=None):
        self.name = str(name)
        self.passed = bool(passed)
        self.findings = [str(f) for f in findings]
        self.hint = hint

    def __bool__(self):
        return self.passed

    def text(self) -> str:
        verdict = "PASSED" if self.passed else "NOT YET"
        lines = [f"{verdict}: {self.name}"]
        lines += [f"  {'✔' if self.passed else '•'} {finding}" for finding in self.findings]
        if self.hint and not self.passed:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    __str__ = text
    __repr__ = text

    def _repr_html_(self):
        colour, background, verdict = (("#1a7f37", "#eaf7ee", "✔ passed") if self.passed
                                       else ("#b42318", "#fdecea", "✘ not yet"))
        items = "".join(f"<li>{html.escape(f)}</li>" for f in self.findings)
        hint = (f"<p style='margin:4px 0 0 0'><b>hint:</b> {html.escape(self.hint)}</p>"
                if self.hint and not self.passed else "")
        return (f"<div style='border-left:4px solid {colour};background:{background};padding:6px 10px'>"
                f"<b style='color:{colour}'>{verdict}</b>: {html.escape(self.name)}"
                f"<ul style='margin:4px 0 0 0'>{items}</ul>{hint}</div>")


class StudentError(Exception):
    """The student's function raised, or returned something unusable; the message says which."""


def call_student(function, *args, what="your function", **kwargs):
    """Call the student's code; turn any exception into a :class:`StudentError` that says what happened.

    ``NotImplementedError`` (the notebooks' placeholder) becomes "not written yet"; any other
    exception is reported with its type, message and the line of the student's code that raised.
    """
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        raise StudentError(f"{what} is not written yet: replace `raise NotImplementedError` with your code") from None
    except Exception as error:  # any bug in the student's code is a finding, not a crash
        frames = traceback.extract_tb(error.__traceback__)
        where = f" (line {frames[-1].lineno}: `{frames[-1].line}`)" if frames and frames[-1].line else ""
        raise StudentError(f"{what} raised {type(error).__name__}: {error}{where}") from None


SHAPE_ERRORS = ("mismatch in its core dimension", "not aligned", "could not be broadcast")


def is_shape_error(error):
    """True when the student's code raised NumPy's error for arrays whose sizes do not fit (``A @ B``
    with A's columns != B's rows, or an elementwise operation on shapes that do not broadcast)."""
    text = str(error)
    return "raised ValueError" in text and any(phrase in text for phrase in SHAPE_ERRORS)


def shape_error_finding(error, what, shapes):
    """A sentence for a shape error in the student's ``what`` instead of NumPy's message: where it
    happened (the line of code) and the shapes the student had, ``shapes`` = ``{"dy": "(N, D_out) =
    (4, 3)", ...}``."""
    match = re.search(r"\(line \d+: `.*`\)$", str(error))
    where = " " + match.group(0) if match else ""
    rule = ("an elementwise operation needs arrays of the same (or broadcastable) shapes"
            if "could not be broadcast" in str(error) else "in A @ B the columns of A must match the rows of B")
    listed = ", ".join(f"{name} is {shape}" for name, shape in shapes.items())
    return f"{what} combines arrays whose shapes do not fit{where}: {listed}; {rule}"


def as_array(value, name, shape):
    """``value`` as a float64 array of ``shape``, or a :class:`StudentError` naming ``name``."""
    if value is None:
        raise StudentError(f"{name} is None: did you forget to return it?")
    array = np.asarray(value, dtype=np.float64)
    if array.shape != tuple(shape):
        raise StudentError(f"{name} has shape {array.shape}, expected {tuple(shape)}")
    return array


FLOAT32_RTOL = 1e-4
"""The tolerance for answers computed in float32 (eps 1.2e-7; up to ~1e3 times that where an entry
is a small difference of large terms): rounding, while the mistakes checkers name are >= 1e-3."""


def tolerance(rtol, *values):
    """``rtol``, or :data:`FLOAT32_RTOL` when any of the student's arrays ``values`` is float32 (a
    correct answer computed in single precision differs from the float64 reference by rounding)."""
    if any(getattr(value, "dtype", None) == np.float32 for value in values):
        return max(rtol, FLOAT32_RTOL)
    return rtol


def rel_error(a, b, floor=1e-8):
    """Elementwise relative error ``|a - b| / max(|a| + |b|, floor)`` (CS231n's, with a floor)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)


def worst_entry(got, expected, floor=None):
    """``(max relative error, index of it)`` between two arrays of the same shape.

    ``floor`` defaults to 1e-3 of the largest magnitude, so entries that should be ~0 are compared
    on the array's scale rather than dividing rounding noise by almost nothing.
    """
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if floor is None:
        floor = max(1e-3 * float(np.max(np.abs(expected), initial=0.0)), 1e-12)
    err = rel_error(got, expected, floor)
    if not np.all(np.isfinite(got)):
        index = np.unravel_index(int(np.argmax(~np.isfinite(got))), got.shape)
        return float("inf"), tuple(int(i) for i in index)
    index = np.unravel_index(int(np.argmax(err)), err.shape)
    return float(err[index]), tuple(int(i) for i in index)


def describe_difference(name, got, expected, reference="the library's"):
    """One sentence: where ``got`` differs most from ``expected`` and by how much."""
    error, index = worst_entry(got, expected)
    if not np.isfinite(error):
        return f"{name} is not finite (inf or nan) at index {index}"
    return (f"{name} differs from {reference} value: max relative error {error:.2g} at index {index} "
            f"(yours {float(np.asarray(got)[index]):.6g}, expected {float(np.asarray(expected)[index]):.6g})")
