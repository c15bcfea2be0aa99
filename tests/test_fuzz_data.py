"""Property-based fuzzing (hypothesis) of the data loaders, as tests/test_fuzz.py does for layers,
models and model files: whatever image files a DRIVE-layout folder holds (any pixel type, any
values, damaged bytes, a header declaring a huge size) and whatever parameters a learner passes,
``load_drive`` and ``load_images`` give data in range -- images finite in [0, 1], masks 0/1 -- or
an ``hp.DataError`` that names the file; the samplers and splits a result or a ValueError /
TypeError naming the argument. Never a traceback from PIL or NumPy.

Bounded as test_fuzz.py: fixed example counts, no deadline, no database, a fixed seed (~10 s);
``HANDPROP_FUZZ_SCALE=20`` runs 20x the examples with fresh random seeds.
"""

import os
import struct
import zlib

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

import handprop as hp  # noqa: E402
from handprop.data import load_drive, save_drive_layout, synthetic_retina  # noqa: E402

SCALE = int(os.environ.get("HANDPROP_FUZZ_SCALE", "1"))
FUZZ = settings(deadline=None, database=None, derandomize=SCALE == 1,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SIZE = (16, 18)  # (H, W)

PIXEL_TYPES = {  # PIL mode -> how its pixels are drawn
    "L": np.uint8, "RGB": np.uint8, "RGBA": np.uint8, "I;16": np.uint16, "I": np.int32, "F": np.float32,
}
SPECIAL = [0.0, 1.0, 255.0, 65535.0, -1.0, 0.5, np.nan, np.inf, -np.inf, 1e30]


@st.composite
def pixel_arrays(draw, shape=SIZE):
    """A (H, W[, C]) array in one of the PIL modes an image file may hold, with right, wrong and
    absurd values."""
    mode = draw(st.sampled_from(sorted(PIXEL_TYPES)))
    dtype = PIXEL_TYPES[mode]
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    full = shape + ((channels,) if channels else ())
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        high = draw(st.sampled_from([1, 2, 255, int(info.max)]))
        array = rng.integers(max(info.min, -high if mode == "I" else 0), high, full, endpoint=True).astype(dtype)
    else:
        array = rng.uniform(0, draw(st.sampled_from([1.0, 255.0, 4000.0])), full).astype(dtype)
        for _ in range(draw(st.integers(0, 3))):
            array[tuple(rng.integers(0, n) for n in full)] = draw(st.sampled_from(SPECIAL))
    return mode, array


def damage(raw, data):
    """The bytes of a file, truncated, with bytes changed, replaced by noise, or (a PNG) with a
    header that declares a huge size."""
    kind = data.draw(st.sampled_from(["none", "truncate", "flip", "random", "huge"]))
    raw = bytearray(raw)
    if kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    elif kind == "random":
        raw = bytearray(data.draw(st.binary(max_size=200)))
    elif kind == "huge" and raw[:8] == b"\x89PNG\r\n\x1a\n":
        side = data.draw(st.sampled_from([9800, 15000, 65000]))
        raw[16:24] = struct.pack(">II", side, side)
        raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)


def check_loaded(data):
    assert data.images.dtype == np.float32 and np.isfinite(data.images).all()
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert data.fov.dtype == bool and data.fov.any(axis=(1, 2)).all()
    if data.vessels is not None:
        assert set(np.unique(data.vessels)) <= {0, 1}


@pytest.fixture(scope="module")
def patient():
    return synthetic_retina(1, seed=2, size=SIZE)


@settings(FUZZ, max_examples=80 * SCALE)
@given(data=st.data())
def test_load_drive_reads_any_file_or_names_it(patient, tmp_path_factory, data):
    root = tmp_path_factory.mktemp("drive")
    save_drive_layout(patient, root, "training")
    base = root / "training"
    target = data.draw(st.sampled_from(["images/21_training", "mask/21_training_mask", "1st_manual/21_manual1"]))
    for old in base.glob(target + ".*"):
        old.unlink()
    suffix = data.draw(st.sampled_from([".tif", ".png"] if "images" in target else [".gif", ".png", ".tif"]))
    mode, array = data.draw(pixel_arrays())
    path = base / (target + suffix)
    try:
        Image.fromarray(array, mode=mode if mode != "I;16" else None).save(path)
    except (OSError, ValueError, KeyError, TypeError):  # a pixel type this format cannot store
        hypothesis.assume(False)
    path.write_bytes(damage(path.read_bytes(), data))
    try:
        loaded = load_drive(root, "training")
    except hp.DataError as e:
        assert path.name in str(e) or str(base) in str(e), repr(e)
        return
    check_loaded(loaded)


@settings(FUZZ, max_examples=40 * SCALE)
@given(data=st.data())
def test_load_images_reads_any_photograph_or_names_it(tmp_path_factory, data):
    mode, array = data.draw(pixel_arrays(shape=(16, 20)))
    path = tmp_path_factory.mktemp("photo") / ("photo" + data.draw(st.sampled_from([".png", ".tif"])))
    try:
        Image.fromarray(array, mode=mode if mode != "I;16" else None).save(path)
    except (OSError, ValueError, KeyError, TypeError):
        hypothesis.assume(False)
    path.write_bytes(damage(path.read_bytes(), data))
    try:
        loaded = hp.segmentation.load_images([path])
    except hp.DataError as e:
        assert str(path) in str(e), repr(e)
        return
    assert loaded.images.dtype == np.float32 and np.isfinite(loaded.images).all()
    assert loaded.images.min() >= 0 and loaded.images.max() <= 1


ANY_VALUE = st.one_of(st.integers(-3, 40), st.floats(allow_nan=True, allow_infinity=True, width=32), st.booleans(),
                      st.none(), st.sampled_from(["", "3", "nope"]), st.tuples(st.integers(-1, 5), st.integers(-1, 5)))

CALLS = {
    "TileSampler": (lambda d, **k: hp.data.TileSampler(d.images, d.vessels, d.fov, **k),
                    ["size"], ["batch_size", "tiles_per_epoch", "margin", "seed"]),
    "PatchSampler": (lambda d, **k: hp.data.PatchSampler(d.images, d.vessels, d.fov, **k),
                     ["size"], ["batch_size", "patches_per_epoch", "balance", "seed"]),
    "split_patients": (lambda d, **k: hp.data.split_patients(d, **k), [], ["fractions", "seed"]),
    "Affine": (lambda d, **k: hp.data.Affine(**k), [], ["rotation", "scale"]),
    "Elastic": (lambda d, **k: hp.data.Elastic(**k), [], ["alpha", "sigma"]),
    "Intensity": (lambda d, **k: hp.data.Intensity(**k), [], ["brightness", "contrast", "gamma"]),
}


@settings(FUZZ, max_examples=150 * SCALE)
@given(data=st.data())
def test_sampler_and_augmentation_parameters_answer_in_words(patient, data):
    name = data.draw(st.sampled_from(sorted(CALLS)))
    make, required, optional = CALLS[name]
    kwargs = {k: data.draw(ANY_VALUE) for k in required}
    for k in data.draw(st.lists(st.sampled_from(optional), unique=True, max_size=3)):
        kwargs[k] = data.draw(ANY_VALUE)
    three = synthetic_retina(3, seed=2, size=(24, 24)) if name == "split_patients" else None
    try:
        result = make(three or patient, **kwargs)
    except (ValueError, TypeError) as e:
        assert name in str(e) or any(k in str(e) for k in kwargs), f"{name}({kwargs}): {e!r}"
        return
    if name in ("TileSampler", "PatchSampler"):  # a sampler that was accepted hands out finite batches
        arrays = [a for b in next(iter(result.epoch(0))) for a in (b if isinstance(b, list) else [b])]
        assert all(np.isfinite(np.asarray(a, np.float64)).all() for a in arrays)  # several sizes: a list
    elif name == "split_patients":
        assert sorted(np.concatenate(result).tolist()) == [0, 1, 2] and all(len(p) for p in result)
    else:
        image, vessels, fov = hp.data.Augmenter([result])(patient.images[0], patient.vessels[0], patient.fov[0], rng=0)
        assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
