"""The demo's preprocessing (handprop.preprocessing): channels, a smooth surround, CLAHE, gamma,
and the field-of-view estimate used for photographs without a mask."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import handprop as hp
from handprop.preprocessing import DEFAULT_PREPROCESSING, clahe, extend_outside_fov, preprocess_images


def test_clahe_without_clipping_on_one_tile_is_histogram_equalization():
    rng = np.random.default_rng(0)
    x = (rng.random((64, 48)) ** 3).astype(np.float32)  # skewed towards dark
    out = clahe(x, tiles=1, clip_limit=1e9)
    level = np.rint(x * 255).astype(int)
    cdf = np.cumsum(np.bincount(level.ravel(), minlength=256)) / x.size
    np.testing.assert_allclose(out, cdf[level], atol=1e-6)
    assert abs(np.mean(out) - 0.5) < 0.02  # equalized: spread evenly over [0, 1]


def test_clahe_stretches_local_contrast_within_its_limit():
    rng = np.random.default_rng(1)
    H, W = 128, 128
    texture = rng.random((H, W)) * 0.1
    ramp = np.linspace(0.1, 0.8, W)[None, :]  # dark left, bright right
    x = (texture + ramp).astype(np.float32) / 0.9
    out = clahe(x, tiles=8, clip_limit=2.0)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1

    def local_contrast(y):  # the texture's spread around the illumination, in the middle tiles
        return (y - ndimage.uniform_filter(y, 16))[32:96, 32:96].std()

    assert local_contrast(out) > 1.5 * local_contrast(x)
    assert local_contrast(clahe(x, tiles=8, clip_limit=1.0)) < local_contrast(out)  # a lower limit stretches less
    unlimited = clahe(x, tiles=8, clip_limit=1e9)  # adaptive equalization: the illumination ramp is gone
    assert abs(unlimited[:, :32].mean() - unlimited[:, -32:].mean()) < 0.2 * abs(x[:, :32].mean() - x[:, -32:].mean())
    with pytest.raises(ValueError, match="one channel"):
        clahe(np.zeros((2, 8, 8)))


def test_smooth_surround_keeps_the_fov_and_has_no_streaks():
    data = hp.data.synthetic_retina(1, seed=2, size=(120, 112))
    image, fov = data.images[0, 1:2], data.fov[0]
    smooth = extend_outside_fov(image, fov)
    assert np.array_equal(smooth[0][fov], image[0][fov])
    inside = image[0][fov]
    assert inside.min() <= smooth[0][~fov].min() and smooth[0][~fov].max() <= inside.max()
    nearest = preprocess_images(data, channels="green", outside="nearest")[0, 0]
    smoothed = preprocess_images(data, channels="green", outside="smooth")[0, 0]
    away = ndimage.distance_transform_edt(~fov) >= 4
    outside = away[:, 1:] & away[:, :-1]

    def roughness(x):  # mean horizontal step outside the FOV: radial streaks are rough
        return np.abs(np.diff(x, axis=1))[outside].mean()

    assert roughness(smoothed) < 0.5 * roughness(nearest)


def test_preprocessing_standardizes_each_image_alone():
    data = hp.data.synthetic_retina(2, seed=1, size=(80, 72))
    x = preprocess_images(data, **DEFAULT_PREPROCESSING)
    assert x.shape == (2, 1, 80, 72) and x.dtype == np.float32
    for i in range(2):
        np.testing.assert_allclose(x[i, 0][data.fov[i]].mean(), 0, atol=1e-4)
        np.testing.assert_allclose(x[i, 0][data.fov[i]].std(), 1, atol=1e-4)
    np.testing.assert_array_equal(preprocess_images(data[1:], **DEFAULT_PREPROCESSING)[0], x[1])  # no leaks
    assert preprocess_images(data, channels="rgb").shape[1] == 3
    assert preprocess_images(data, channels="luminance").shape[1] == 1
    with pytest.raises(ValueError, match="unknown settings"):
        preprocess_images(data, colour="green")
    old = hp.segmentation.normalize_images(data)  # the old demo's normalization is one of the settings
    np.testing.assert_array_equal(old, preprocess_images(data, channels="rgb", outside="nearest"))


def test_fov_estimate_matches_the_true_fov_and_finds_the_photos_disc():
    data = hp.data.synthetic_retina(3, seed=5, size=(146, 141))
    for image, fov in zip(data.images, data.fov):
        estimate = hp.data.estimate_fov(image)
        assert (estimate & fov).sum() / (estimate | fov).sum() > 0.98
        dim = hp.data.estimate_fov(image * 0.4 + 0.05 * np.random.default_rng(0).random(image.shape))
        assert (dim & fov).sum() / (dim | fov).sum() > 0.95  # darker, noisier, with a lit surround
    photo = hp.data.load_fundus_photo()
    fov = photo.fov[0]
    assert 0.6 < fov.mean() < 0.85  # a disc inside the square frame
    assert not fov[0, 0] and not fov[-1, -1] and fov[fov.shape[0] // 2, fov.shape[1] // 2]
    red = photo.images[0, 0]
    assert red[fov].mean() > 4 * red[~fov].mean()  # the lit retina inside, the dark surround outside
