"""The synthetic 3-D vessel volume and its patch extraction (triplanar planes and cubes)."""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp


def test_volume_shapes_ranges_and_seeds():
    volume, mask = hp.data.synthetic_vessel_volume((20, 24, 28), n_tubes=4, seed=3)
    assert volume.shape == (1, 20, 24, 28) and volume.dtype == np.float32
    assert mask.shape == (20, 24, 28) and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert 0.0 <= volume.min() and volume.max() <= 1.0
    assert 0.01 < mask.mean() < 0.3  # tubes, not a filled box
    again, mask_again = hp.data.synthetic_vessel_volume((20, 24, 28), n_tubes=4, seed=3)
    np.testing.assert_array_equal(volume, again)
    np.testing.assert_array_equal(mask, mask_again)
    assert not np.array_equal(mask, hp.data.synthetic_vessel_volume((20, 24, 28), n_tubes=4, seed=4)[1])


def test_tubes_are_brighter_than_the_background_and_thin():
    volume, mask = hp.data.synthetic_vessel_volume(seed=0)
    v = volume[0]
    assert v[mask == 1].mean() > v[mask == 0].mean() + 0.2
    # a radius of 1-3 voxels: no 7 x 7 x 7 cube is all vessel
    from numpy.lib.stride_tricks import sliding_window_view
    assert sliding_window_view(mask, (7, 7, 7)).min(axis=(-3, -2, -1)).max() == 0
    with pytest.raises(ValueError, match="radius"):
        hp.data.synthetic_vessel_volume(radius=(3, 1))


def test_sample_centres_balances_the_classes():
    _, mask = hp.data.synthetic_vessel_volume((24, 24, 24), seed=1)
    centres = hp.data.sample_voxel_centres(mask, 101, margin=3, seed=0)
    assert centres.shape == (101, 3) and centres.dtype == np.int64
    assert mask[tuple(centres.T)].sum() == 50  # round(101 * 0.5) vessel voxels
    assert centres.min() >= 3 and (centres.max(axis=0) < 21).all()
    assert len({tuple(c) for c in centres}) == 101  # without replacement


def test_planes_and_cubes_are_the_right_slices():
    rng = np.random.default_rng(0)
    volume = rng.standard_normal((2, 6, 7, 8)).astype(np.float32)  # two channels
    mask = (rng.uniform(size=(6, 7, 8)) > 0.5).astype(np.uint8)
    centres = np.array([[2, 3, 4], [0, 6, 7]])
    (axial, coronal, sagittal), labels = hp.data.extract_triplanar_patches(volume, mask, centres, 3)
    assert axial.shape == coronal.shape == sagittal.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(labels, mask[tuple(centres.T)])
    np.testing.assert_array_equal(axial[0], volume[:, 2, 2:5, 3:6])  # rows y, columns x
    np.testing.assert_array_equal(coronal[0], volume[:, 1:4, 3, 3:6])  # rows z, columns x
    np.testing.assert_array_equal(sagittal[0], volume[:, 1:4, 2:5, 4])  # rows z, columns y
    assert axial[1, 0, 1, 1] == volume[0, 0, 6, 7] and axial[1, 0, 2, 2] == 0  # zero padding outside
    cubes, cube_labels = hp.data.extract_cubes(volume, mask, centres, 3)
    assert cubes.shape == (2, 2, 3, 3, 3) and cubes.dtype == np.float32
    np.testing.assert_array_equal(cubes[0], volume[:, 1:4, 2:5, 3:6])
    np.testing.assert_array_equal(cube_labels, labels)
    np.testing.assert_array_equal(cubes[:, :, 1], axial)  # the middle slice of a cube is the axial plane
    even, _ = hp.data.extract_triplanar_patches(volume[0], mask, centres, 4)  # (D, H, W) works; even size
    np.testing.assert_array_equal(even[0][0, 0], np.pad(volume[0], 2)[4, 3:7, 4:8])
    with pytest.raises(ValueError, match="centres must lie inside"):
        hp.data.extract_cubes(volume, mask, [[6, 0, 0]], 3)
