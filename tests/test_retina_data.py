"""The synthetic retina: structure, determinism per patient, and the properties that make it DRIVE-like."""

import numpy as np
import pytest

import handprop as hp
from handprop.data import RetinaData, synthetic_retina

SMALL = (96, 100)


@pytest.fixture(scope="module")
def small():
    return synthetic_retina(3, seed=5, size=SMALL)


@pytest.fixture(scope="module")
def full():
    return synthetic_retina(1, seed=0)  # one DRIVE-size image


def test_structure_shapes_and_dtypes(small):
    images, vessels, fov, ids = small
    assert images.shape == (3, 3, *SMALL) and images.dtype == np.float32
    assert vessels.shape == (3, *SMALL) and vessels.dtype == np.uint8
    assert fov.shape == (3, *SMALL) and fov.dtype == bool
    assert ids == ["synthetic_000", "synthetic_001", "synthetic_002"]
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(np.round(images * 255) / 255, images)  # 8-bit values, as a photograph
    assert set(np.unique(vessels)) <= {0, 1}
    assert not vessels[~fov].any()  # annotations only inside the field of view
    assert vessels.any()


def test_exported_from_the_package():
    assert hp.data.synthetic_retina is synthetic_retina
    assert hp.data.RetinaData is RetinaData


def test_deterministic_and_each_patient_independent_of_n(small):
    again = synthetic_retina(3, seed=5, size=SMALL)
    np.testing.assert_array_equal(again.images, small.images)
    np.testing.assert_array_equal(again.vessels, small.vessels)
    two = synthetic_retina(2, seed=5, size=SMALL)  # patient 1 is the same patient whatever n is
    np.testing.assert_array_equal(two.images[1], small.images[1])
    np.testing.assert_array_equal(two.fov[1], small.fov[1])
    other = synthetic_retina(1, seed=6, size=SMALL)
    assert not np.array_equal(other.vessels[0], small.vessels[0])
    assert not np.array_equal(small.vessels[0], small.vessels[1])


def test_fov_is_a_centred_disc_on_a_dark_surround(full):
    images, _, fov, _ = full
    h, w = fov.shape[1:]
    rows, cols = np.nonzero(fov[0])
    assert abs(rows.mean() - h / 2) < 0.02 * h and abs(cols.mean() - w / 2) < 0.02 * w
    radius = np.sqrt(fov[0].sum() / np.pi)
    assert 0.46 * w < radius < 0.48 * w  # DRIVE: a FOV about 540 px across in 565 px
    outside = images[0][:, ~fov[0]]
    assert outside.mean() < 0.05 < images[0][1, fov[0]].mean()


def test_drive_like_vessels(full):
    images, vessels, fov, _ = full
    v, f = vessels[0].astype(bool), fov[0]
    fraction = v[f].mean()
    assert 0.08 < fraction < 0.17, fraction  # DRIVE: about 12 % of the FOV
    # vessels darken the green channel much more (relatively) than the red one
    ring = f & ~v
    green_contrast = 1 - images[0, 1][v].mean() / images[0, 1][ring].mean()
    red_contrast = 1 - images[0, 0][v].mean() / images[0, 0][ring].mean()
    assert green_contrast > 0.08 and green_contrast > 2 * red_contrast
    # widths from 1-2 px to about 10-12 px: thin vessels exist, and wide ones
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(v)  # 1 on one-pixel-wide vessels, about half the width in the middle
    assert 4.0 <= np.percentile(depth[v], 99.5) <= 7.0  # (crossings and the disc, where vessels overlap, go wider)
    thin = v & (ndimage.maximum_filter(depth, 5) <= 1)
    assert thin.sum() > 0.05 * v.sum()


def test_green_channel_threshold_is_far_from_perfect(full):
    from handprop.metrics import roc_auc

    images, vessels, fov, _ = full
    auc = roc_auc(-images[0, 1], vessels[0], fov[0])  # darker = vessel
    assert 0.55 < auc < 0.85, auc  # DRIVE: 0.70 on average


def test_pathology_changes_only_the_lesions():
    """The vessels, the FOV and every image of a healthy patient are the same whatever ``pathology``
    asks for: the lesions are drawn from their own random stream."""
    healthy = synthetic_retina(6, seed=1, size=SMALL, pathology="none")
    sick = synthetic_retina(6, seed=1, size=SMALL, pathology="all")
    default = synthetic_retina(6, seed=1, size=SMALL)
    np.testing.assert_array_equal(healthy.vessels, sick.vessels)
    np.testing.assert_array_equal(healthy.fov, sick.fov)
    changed = [not np.array_equal(healthy.images[i], sick.images[i]) for i in range(6)]
    assert all(changed)  # every patient is diseased with pathology="all"
    for i in range(6):  # the default is healthy or diseased per patient, exactly as one of the two
        assert (np.array_equal(default.images[i], healthy.images[i])
                or np.array_equal(default.images[i], sick.images[i]))
    np.testing.assert_array_equal(synthetic_retina(6, seed=1, size=SMALL, pathology=False).images, healthy.images)
    np.testing.assert_array_equal(synthetic_retina(6, seed=1, size=SMALL, pathology=1.0).images, sick.images)
    for bad in ("some", -0.1, 1.5, None):
        with pytest.raises(ValueError, match="pathology"):
            synthetic_retina(1, size=SMALL, pathology=bad)


def test_drive_share_of_diseased_patients():
    """pathology="drive" (the default): about one patient in five has lesions (DRIVE: 7 of 40)."""
    size = (48, 48)
    default, healthy = synthetic_retina(100, seed=2, size=size), synthetic_retina(100, seed=2, size=size, pathology=0)
    share = np.mean([not np.array_equal(a, b) for a, b in zip(default.images, healthy.images)])
    assert 0.1 <= share <= 0.3, share


# -- RetinaData ------------------------------------------------------------------------------

def test_retina_data_indexing_and_unpacking(small):
    assert len(small) == 3 and small.shape == SMALL
    images, vessels, fov, ids = small
    assert images is small.images and ids == small.ids
    sub = small[1:]
    assert isinstance(sub, RetinaData) and sub.ids == ["synthetic_001", "synthetic_002"]
    np.testing.assert_array_equal(sub.images, small.images[1:])
    one = small[-1]
    assert one.images.shape == (1, 3, *SMALL) and one.ids == ["synthetic_002"]
    picked = small[[2, 0]]
    assert picked.ids == ["synthetic_002", "synthetic_000"]
    np.testing.assert_array_equal(picked.vessels[1], small.vessels[0])
    masked = small[np.array([True, False, True])]
    assert masked.ids == ["synthetic_000", "synthetic_002"]
    assert small[np.array([], dtype=np.int64)].images.shape[0] == 0
    assert "3 images of 96x100" in repr(small)
    with pytest.raises(IndexError):
        small[3]
    with pytest.raises(IndexError, match="boolean"):
        small[np.array([True, False])]


def test_retina_data_checks_shapes():
    images = np.zeros((2, 3, 8, 8), np.float32)
    fov = np.ones((2, 8, 8), bool)
    data = RetinaData(images, None, fov, ("a", "b"))
    assert data.vessels is None and data[0].vessels is None and data.ids == ["a", "b"]
    assert "no vessel annotations" in repr(data)
    with pytest.raises(ValueError, match=r"images must be \(n, 3, H, W\)"):
        RetinaData(images[:, :1], None, fov, ["a", "b"])
    with pytest.raises(ValueError, match="fov"):
        RetinaData(images, None, fov[:, :4], ["a", "b"])
    with pytest.raises(ValueError, match="vessels"):
        RetinaData(images, np.zeros((2, 8, 9), np.uint8), fov, ["a", "b"])
    with pytest.raises(ValueError, match="ids"):
        RetinaData(images, None, fov, ["a"])


# -- as hard as DRIVE --------------------------------------------------------------------------

def test_statistics_within_15_percent_of_drive():
    """Every statistic of the realism table (tests/retina_statistics.py: colour, vessel widths and
    length, green-channel AUC, contrast, background structure, noise), averaged over 8 DRIVE-size
    patients, is within 15 % of DRIVE's (the mean of its training and test sets)."""
    pytest.importorskip("skimage")
    from retina_statistics import DRIVE, drive_reference, mean_statistics

    ours = mean_statistics(synthetic_retina(8, seed=0))
    off = {}
    for name in DRIVE:
        reference = drive_reference(name)
        relative = np.abs(ours[name] - reference) / np.abs(reference)
        if np.any(relative > 0.15):
            off[name] = (np.round(ours[name], 4).tolist(), np.round(reference, 4).tolist())
    assert not off, f"statistics more than 15 % from DRIVE's (ours, DRIVE): {off}"
