"""hp.data.mni_brain: the shipped MNI152 crop, its labels, and the simulated scan."""

import numpy as np
import pytest

import handprop as hp


def test_clean_template_shapes_labels_and_anatomy():
    brain = hp.data.mni_brain()
    assert brain.t1.shape == (1, 64, 96, 96) and brain.t1.dtype == np.float32
    assert brain.gm.shape == brain.wm.shape == brain.tissue.shape == brain.white.shape == (64, 96, 96)
    assert 0 <= brain.t1.min() and brain.t1.max() <= 1
    np.testing.assert_array_equal(brain.tissue, brain.gm + brain.wm >= 0.5)
    np.testing.assert_array_equal(brain.white, brain.wm > brain.gm)
    # a T1 image: white matter brighter than grey matter, both brighter than CSF / outside
    t1 = brain.t1[0]
    white, grey = t1[brain.tissue & (brain.white == 1)], t1[brain.tissue & (brain.white == 0)]
    assert white.mean() > grey.mean() > t1[~brain.tissue].mean()
    # the noise-free average separates the two tissues almost perfectly by intensity
    assert hp.metrics.roc_auc(t1[brain.tissue], brain.white[brain.tissue]) > 0.99
    # the affine puts the crop in MNI millimetres: voxel (x, y, z) = (48, 64, 2) is the origin
    np.testing.assert_allclose(brain.affine @ [48, 64, 2, 1], [0, 0, 0, 1])


def test_simulated_scan_is_seeded_and_noisier():
    a, b = hp.data.mni_brain(noise=0.15, bias=0.1, seed=0), hp.data.mni_brain(noise=0.15, bias=0.1, seed=0)
    c = hp.data.mni_brain(noise=0.15, bias=0.1, seed=1)
    np.testing.assert_array_equal(a.t1, b.t1)
    assert not np.array_equal(a.t1, c.t1)
    np.testing.assert_array_equal(a.white, c.white)  # another scan, the same anatomy
    m = a.tissue
    clean = hp.data.mni_brain().t1[0]
    assert hp.metrics.roc_auc(a.t1[0][m], a.white[m]) < hp.metrics.roc_auc(clean[m], a.white[m]) - 0.05


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mni_brain: noise"):
        hp.data.mni_brain(noise=-1)


def test_licence_notice_ships_next_to_the_data():
    from importlib import resources

    notice = resources.files("handprop.data").joinpath("MNI_BRAIN_LICENSE.md").read_text()
    assert "Louis Collins" in notice and "McGill University" in notice
