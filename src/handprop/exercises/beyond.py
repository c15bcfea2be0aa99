"""Checkers for chapter 7 (beyond): a 3-D convolution's output shape and parameter count, and
triplanar patches through a voxel.

The student's functions::

    conv3d_shape_and_params(input_shape, filters, kernel_size, stride=1, padding=0) -> (output_shape, n_params)
    triplanar_patches(volume, centre, size) -> (axial, coronal, sagittal)

graded against ``Conv3D`` (``compute_output_shape`` and ``count_params`` after building) and
``hp.data.extract_triplanar_patches``.
"""

from __future__ import annotations

import numpy as np

from ..layers import Conv3D
from .result import CheckResult, StudentError, as_array, call_student, worst_entry

__all__ = ["check_conv3d_shape_and_params", "check_triplanar_patches"]


CONV3D_CASES = [  # input (C, D, H, W), filters, kernel, stride, padding
    ((1, 15, 15, 15), 16, 3, 1, 0),
    ((16, 13, 13, 13), 32, 3, 1, 0),
    ((3, 32, 32, 32), 8, 5, 2, 0),
    ((2, 10, 20, 30), 4, 3, 1, 1),
    ((8, 9, 9, 9), 8, 1, 1, 0),
]


def _library_conv3d(input_shape, filters, k, stride, padding):
    layer = Conv3D(filters, k, stride=stride, padding=padding)
    out = layer.build(input_shape, rng=0)
    return tuple(int(d) for d in out), layer.count_params()


_PARAM_MISTAKES = [
    (lambda c, f, k: f * c * k * k + f, "a 3-D kernel is k x k x k: filters * in_channels * k³ weights, not k²"),
    (lambda c, f, k: f * c * k**3, "each filter has a bias too: + filters"),
    (lambda c, f, k: f * k**3 + f, "one k³ kernel per pair of input and output channels: filters * in_channels * k³"),
]


def check_conv3d_shape_and_params(conv3d_shape_and_params):
    """Grade ``conv3d_shape_and_params(input_shape, filters, kernel_size, stride=1, padding=0)``.

    ``input_shape`` is ``(C, D, H, W)``; expected ``((filters, Do, Ho, Wo), n_params)`` with, along each
    of the three axes, ``o = floor((n + 2 padding - k) / stride) + 1`` and
    ``n_params = filters * C * k³ + filters`` -- what ``Conv3D`` builds.
    """
    name = "output shape and parameters of a 3-D convolution"
    findings, wrong_params, problems = [], [], []
    shapes_ok = True
    for input_shape, filters, k, stride, padding in CONV3D_CASES:
        expected_shape, expected_params = _library_conv3d(input_shape, filters, k, stride, padding)
        label = f"input {input_shape}, {filters} filters of {k}³, stride {stride}, padding {padding}"
        try:
            got = call_student(conv3d_shape_and_params, input_shape, filters, k, stride=stride, padding=padding,
                               what="conv3d_shape_and_params")
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise StudentError(f"conv3d_shape_and_params returned {got!r}: return (output_shape, n_params)")
            shape = tuple(int(d) for d in got[0])
            n_params = got[1]
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        except (TypeError, ValueError):
            return CheckResult(name, False, findings + [f"{label}: the output shape should be 4 numbers "
                                                        f"(filters, D, H, W), got {got[0]!r}"])
        if shape != expected_shape:
            shapes_ok = False
            problems.append(f"{label}: output shape {shape}, Conv3D gives {expected_shape}")
        if n_params != expected_params:
            wrong_params.append((input_shape[0], filters, k, n_params))
            problems.append(f"{label}: {n_params!r} parameters, Conv3D has {expected_params:,}")
    if not problems:
        findings.append(f"all {len(CONV3D_CASES)} cases agree with Conv3D (shapes and parameter counts)")
        return CheckResult(name, True, findings)
    hint = None
    if wrong_params:
        hint = next((text for formula, text in _PARAM_MISTAKES
                     if all(formula(c, f, k) == got for c, f, k, got in wrong_params)), None)
    if hint is None and not shapes_ok:
        hint = ("the output has `filters` channels, and along each of D, H, W: "
                "(n + 2 padding - k) // stride + 1, as in 2-D")
    return CheckResult(name, False, problems[:4] + ([f"... and {len(problems) - 4} more"] if len(problems) > 4 else []),
                       hint or "n_params = filters * in_channels * k³ + filters")


# --------------------------------------------------------------------------------- triplanar
def _triplanar_reference(volume, centre, size):
    from ..data import extract_triplanar_patches

    mask = np.zeros(volume.shape[1:], np.uint8)
    planes, _ = extract_triplanar_patches(volume, mask, np.asarray([centre]), size)
    return [p[0].astype(np.float64) for p in planes]


PLANES = ("axial", "coronal", "sagittal")


def check_triplanar_patches(triplanar_patches):
    """Grade ``triplanar_patches(volume, centre, size) -> (axial, coronal, sagittal)``.

    ``volume`` (C, D, H, W), ``centre`` = (z, y, x), odd ``size``; each patch (C, size, size) with the
    voxel at ``[size // 2, size // 2]``: axial ``volume[:, z, rows y, cols x]``, coronal
    ``volume[:, rows z, y, cols x]``, sagittal ``volume[:, rows z, rows y, x]`` (rows z, columns y);
    zero outside the volume -- as ``hp.data.extract_triplanar_patches``.
    """
    name = "triplanar patches through a voxel"
    rng = np.random.default_rng(0)
    volume = rng.random((2, 9, 11, 13)).astype(np.float32).astype(np.float64)  # exact in float32, as the library
    cases = [("centre (4, 5, 6), size 5", (4, 5, 6), 5), ("centre (2, 7, 3), size 3", (2, 7, 3), 3),
             ("a centre near the border, (0, 10, 1), size 5: zero outside the volume", (0, 10, 1), 5)]
    findings = []
    for label, centre, size in cases:
        given = volume.copy()
        try:
            out = call_student(triplanar_patches, given, centre, size, what="triplanar_patches")
            if isinstance(out, np.ndarray) and out.ndim == 4 and len(out) == 3:
                out = tuple(out)  # the three patches stacked into one (3, C, size, size) array
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise StudentError(f"triplanar_patches returned {type(out).__name__}: return the three patches "
                                   "(axial, coronal, sagittal)")
            got = [as_array(p, f"the {plane} patch", (volume.shape[0], size, size)) for p, plane in zip(out, PLANES)]
            if not np.array_equal(given, volume):
                raise StudentError("triplanar_patches changed the volume: pad a copy (np.pad returns one)")
        except StudentError as error:
            hint = None
            if "IndexError" in str(error) or "shape" in str(error):
                hint = ("near the border the patch sticks out of the volume: zero-pad the volume by size // 2 on "
                        "every side first (np.pad) and shift the centre by size // 2")
            return CheckResult(name, False, findings + [f"{label}: {error}"], hint)
        expected = _triplanar_reference(volume, centre, size)
        bad = [i for i in range(3) if not worst_entry(got[i], expected[i])[0] < 1e-6]
        if not bad:
            findings.append(f"{label}: the three planes agree with hp.data.extract_triplanar_patches")
            continue
        problems = [f"{label}: the {PLANES[i]} patch differs from hp.data.extract_triplanar_patches'" for i in bad]
        hint = None
        for i in bad:
            if any(worst_entry(got[i], expected[j])[0] < 1e-6 for j in range(3) if j != i):
                hint = ("the planes are in the wrong order or mixed up: axial fixes z, coronal fixes y, "
                        "sagittal fixes x")
            elif worst_entry(got[i], expected[i].transpose(0, 2, 1))[0] < 1e-6:
                hint = (f"the {PLANES[i]} patch is transposed: rows are the first of its two free axes "
                        "(axial: y, x; coronal: z, x; sagittal: z, y)")
        return CheckResult(name, False, findings + problems,
                           hint or "the voxel must sit at [size // 2, size // 2]: rows run from z - size // 2 "
                                   "to z + size // 2 (likewise for y and x), zero outside the volume")
    return CheckResult(name, True, findings)
