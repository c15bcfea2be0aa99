"""Joint augmentation: image, vessel mask and FOV mask move together; masks stay binary; images stay in [0, 1]."""

import numpy as np
import pytest

from handprop.data import Affine, Augmenter, Elastic, Flip, Intensity, Rotate90, default_augmenter, synthetic_retina

TRANSFORMS = [Flip(), Rotate90(), Affine(rotation=30, scale=(0.8, 1.25)), Elastic(alpha=2.0, sigma=6.0),
              Intensity(brightness=0.2, contrast=0.3, gamma=0.3), default_augmenter()]


@pytest.fixture(scope="module")
def sample():
    images, vessels, fov, _ = synthetic_retina(1, seed=3, size=(48, 48))
    return images[0], vessels[0], fov[0]


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: type(t).__name__)
def test_shapes_dtypes_ranges(sample, transform):
    image, vessels, fov = sample
    for seed in range(3):
        out, v, f = transform(image, vessels, fov, np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 1
        assert v.shape == vessels.shape and v.dtype == np.uint8 and set(np.unique(v)) <= {0, 1}
        assert f.shape == fov.shape and f.dtype == bool
    # the inputs are never modified
    again = synthetic_retina(1, seed=3, size=(48, 48))
    np.testing.assert_array_equal(again.images[0], image)


@pytest.mark.parametrize("transform", TRANSFORMS[:4], ids=lambda t: type(t).__name__)
def test_masks_move_with_the_image(sample, transform):
    """A channel equal to the mask, transformed as image, thresholded, equals the transformed mask."""
    _, vessels, fov = sample
    image = np.stack([vessels, fov, vessels]).astype(np.float32)
    for seed in range(3):
        out, v, f = transform(image, vessels, fov, np.random.default_rng(seed))
        np.testing.assert_array_equal(out[0] >= 0.5, v.astype(bool))
        np.testing.assert_array_equal(out[1] >= 0.5, f)


def test_seeded_and_random(sample):
    image, vessels, fov = sample
    aug = default_augmenter()
    a = aug(image, vessels, fov, np.random.default_rng(7))
    b = aug(image, vessels, fov, np.random.default_rng(7))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = aug(image, vessels, fov, np.random.default_rng(8))
    assert not np.array_equal(a[0], c[0])
    rng = np.random.default_rng(0)  # one generator, successive draws differ
    assert not np.array_equal(aug(image, vessels, fov, rng)[0], aug(image, vessels, fov, rng)[0])


def test_exact_geometric_transforms(sample):
    image, vessels, fov = sample
    identity = Affine(rotation=0, scale=1.0)(image, vessels, fov, np.random.default_rng(0))
    np.testing.assert_allclose(identity[0], image, atol=1e-6)
    np.testing.assert_array_equal(identity[1], vessels)
    quarter = Affine(rotation=(90, 90), scale=1.0)(image, vessels, fov, np.random.default_rng(0))
    np.testing.assert_allclose(quarter[0], np.rot90(image, -1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_array_equal(quarter[1], np.rot90(vessels, -1))
    # Rotate90 and Flip are exact rearrangements of the pixels
    out, v, f = Rotate90()(image, vessels, fov, np.random.default_rng(1))
    k = next(k for k in range(4) if np.array_equal(np.rot90(vessels, k), v))
    np.testing.assert_array_equal(out, np.rot90(image, k, axes=(1, 2)))
    np.testing.assert_array_equal(f, np.rot90(fov, k))
    seen = set()
    for seed in range(12):
        out, v, _ = Flip()(image, vessels, fov, np.random.default_rng(seed))
        for axes in ((), (-1,), (-2,), (-2, -1)):
            if np.array_equal(out, np.flip(image, axes) if axes else image):
                np.testing.assert_array_equal(v, np.flip(vessels, axes) if axes else vessels)
                seen.add(axes)
    assert len(seen) == 4


def test_zoom_in_enlarges(sample):
    image, vessels, fov = sample
    out, v, _ = Affine(rotation=0, scale=(2.0, 2.0))(image, vessels, fov, np.random.default_rng(0))
    # the middle half of the image, twice as large: the centre pixel block stays, the border comes from the middle
    np.testing.assert_allclose(out[:, 1::2, 1::2][:, 6:18, 6:18], image[:, 18:30, 18:30], atol=0.3)
    assert v.mean() == pytest.approx(vessels[12:36, 12:36].mean(), abs=0.05)


def test_elastic_moves_pixels_by_about_alpha(sample):
    image, vessels, fov = sample
    small = Elastic(alpha=0.01, sigma=5.0)(image, vessels, fov, np.random.default_rng(0))[0]
    large = Elastic(alpha=3.0, sigma=5.0)(image, vessels, fov, np.random.default_rng(0))[0]
    assert np.abs(small - image).max() < 0.03  # displacements of about 0.01 px
    assert np.abs(large - image).mean() > 10 * np.abs(small - image).mean()


def test_intensity_changes_only_the_image(sample):
    image, vessels, fov = sample
    out, v, f = Intensity(brightness=0.3, contrast=0.0, gamma=(1.0, 1.0))(image, vessels, fov, np.random.default_rng(0))
    assert v is vessels and f is fov
    shift = (out - image)[(image > 0.35) & (image < 0.65)]  # away from clipping: a constant shift
    assert np.ptp(shift) < 1e-5 and abs(shift.mean()) > 1e-3
    dark = Intensity(brightness=0, contrast=0, gamma=(2.0, 2.0))(image, None, None, np.random.default_rng(0))[0]
    np.testing.assert_allclose(dark, image**2, atol=1e-6)


def test_augmenter_probabilities_and_errors(sample):
    image, vessels, fov = sample
    never = Augmenter([Affine(rotation=45, p=0.0), Intensity(brightness=0.5, p=0.0)])
    out, v, f = never(image, vessels, fov, np.random.default_rng(0))
    assert out is image and v is vessels and f is fov
    out, v, f = Augmenter([Flip()])(image, None, None, rng=3)  # masks are optional, seeds accepted
    assert v is None and f is None
    assert "Affine(rotation=(-45, 45)" in repr(never)
    with pytest.raises(TypeError, match="not a transform"):
        Augmenter([3])
    with pytest.raises(ValueError, match=r"image must be \(C, H, W\)"):
        Flip()(image[0], None, None, np.random.default_rng(0))
    with pytest.raises(ValueError, match="vessels must be"):
        Flip()(image, vessels[:5], None, np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive"):
        Affine(scale=(0, 1))


def test_intensity_refuses_standardized_images():
    """Clipping standardized images to [0, 1] would silently destroy them: an error says why."""
    import handprop as hp

    rng = np.random.default_rng(0)
    image = rng.standard_normal((3, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"expects images in \[0, 1\].*augment before standardizing"):
        hp.data.Intensity()(image, None, np.ones((8, 8), bool), rng)
