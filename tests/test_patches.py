"""Patches, tiles, samplers, patient splits and standardization."""

import numpy as np
import pytest

from handprop.data import (
    PatchSampler,
    Standardizer,
    TileSampler,
    default_augmenter,
    extract_patches,
    extract_tiles,
    sample_centres,
    split_patients,
    synthetic_retina,
)


@pytest.fixture(scope="module")
def data():
    return synthetic_retina(3, seed=2, size=(64, 72))


# -- patches -----------------------------------------------------------------------------------

def test_patches_are_centred_on_fov_pixels_with_their_labels(data):
    images, vessels, fov, _ = data
    patches, labels, centres = extract_patches(images, vessels, fov, 7, 50, seed=0, return_centres=True)
    assert patches.shape == (150, 3, 7, 7) and patches.dtype == np.float32
    assert labels.shape == (150,) and labels.dtype == np.int64
    np.testing.assert_array_equal(centres[:, 0], np.repeat([0, 1, 2], 50))
    i, r, c = centres.T
    assert fov[i, r, c].all()
    np.testing.assert_array_equal(labels, vessels[i, r, c])
    np.testing.assert_array_equal(patches[:, :, 3, 3], images[i, :, r, c])  # the centre pixel
    # a pixel away from the centre, where the patch lies inside the image
    inside = (r >= 3) & (r < 61) & (c >= 3) & (c < 69)
    np.testing.assert_array_equal(patches[inside, :, 1, 5], images[i[inside], :, r[inside] - 2, c[inside] + 2])
    again, _ = extract_patches(images, vessels, fov, 7, 50, seed=0)
    np.testing.assert_array_equal(again, patches)
    assert not np.array_equal(extract_patches(images, vessels, fov, 7, 50, seed=1)[0], patches)


def test_even_sizes_and_border_padding(data):
    images, vessels, fov, _ = data
    centres = np.array([[0, 0, 0], [1, 63, 71], [2, 10, 20]])
    patches, labels = extract_patches(images, vessels, fov, 4, None, centres=centres)
    assert patches.shape == (3, 3, 4, 4)
    np.testing.assert_array_equal(patches[:, :, 2, 2], images[centres[:, 0], :, centres[:, 1], centres[:, 2]])
    np.testing.assert_array_equal(patches[0, :, 2, 3], images[0, :, 0, 1])
    np.testing.assert_array_equal(patches[0, :, 1, 2], images[0, :, 1, 0])  # reflected above row 0
    zero, _ = extract_patches(images, vessels, fov, 4, None, centres=centres, pad_mode="constant")
    assert (zero[0, :, :2, :] == 0).all()


def test_balance_gives_the_asked_fraction_of_vessel_centres(data):
    images, vessels, fov, _ = data
    _, labels = extract_patches(images, vessels, fov, 5, 40, balance=0.25, seed=3)
    assert labels.reshape(3, 40).sum(axis=1).tolist() == [10, 10, 10]
    _, labels = extract_patches(images, vessels, fov, 5, 40, balance=1.0)
    assert labels.all()
    _, natural = extract_patches(images, vessels, fov, 5, 2000, seed=0)
    assert 0.03 < natural.mean() < 0.3  # without balance: the FOV's own vessel fraction
    with pytest.raises(ValueError, match="balance"):
        extract_patches(images, vessels, fov, 5, 10, balance=1.5)
    with pytest.raises(ValueError, match="no vessel pixel"):
        extract_patches(images, np.zeros_like(vessels), fov, 5, 10, balance=0.5)


def test_multi_scale_patches_share_their_centre(data):
    images, vessels, fov, _ = data
    (small, large), labels, centres = extract_patches(images, vessels, fov, [5, 11], 20, seed=0, return_centres=True)
    assert small.shape == (60, 3, 5, 5) and large.shape == (60, 3, 11, 11)
    np.testing.assert_array_equal(large[:, :, 3:8, 3:8], small)
    (same, coarse), _ = extract_patches(images, vessels, fov, 5, None, scales=[1, 3], centres=centres)
    np.testing.assert_array_equal(same, small)
    assert coarse.shape == (60, 3, 5, 5)
    (wide,), _ = extract_patches(images, vessels, fov, [15], None, centres=centres)
    expected = wide.reshape(60, 3, 5, 3, 5, 3).mean(axis=(3, 5))
    np.testing.assert_allclose(coarse, expected, rtol=1e-6)
    np.testing.assert_allclose(coarse[:, :, 2, 2], wide[:, :, 6:9, 6:9].mean(axis=(2, 3)), rtol=1e-6)
    with pytest.raises(ValueError, match="not both"):
        extract_patches(images, vessels, fov, [5, 7], 2, scales=[1, 3])


def test_sample_centres_stay_in_the_fov():
    fov = np.zeros((2, 6, 6), bool)
    fov[:, 2:4, 2:4] = True  # 4 pixels per image
    centres = sample_centres(None, fov, 10, rng=0)  # more than available: with replacement
    assert len(centres) == 20 and fov[centres[:, 0], centres[:, 1], centres[:, 2]].all()
    with pytest.raises(ValueError, match="empty FOV"):
        sample_centres(None, np.zeros((1, 4, 4), bool), 3)


# -- tiles ---------------------------------------------------------------------------------------

def test_random_tiles_and_their_masks(data):
    images, vessels, fov, _ = data
    x, y, w, corners = extract_tiles(images, vessels, fov, 32, per_image=4, seed=0, return_corners=True)
    assert x.shape == (12, 3, 32, 32) and y.shape == w.shape == (12, 1, 32, 32)
    assert y.dtype == w.dtype == np.float32
    for k, (i, top, left) in enumerate(corners):
        np.testing.assert_array_equal(x[k], images[i, :, top:top + 32, left:left + 32])
        np.testing.assert_array_equal(y[k, 0], vessels[i, top:top + 32, left:left + 32])
        np.testing.assert_array_equal(w[k, 0], fov[i, top:top + 32, left:left + 32])
        assert w[k].any()


def test_grid_tiles_cover_every_pixel(data):
    images, vessels, fov, _ = data
    x, y, w, corners = extract_tiles(images, vessels, fov, 32, stride=24, return_corners=True)
    covered = np.zeros(fov.shape, bool)
    for i, top, left in corners:
        covered[i, top:top + 32, left:left + 32] = True
    assert covered.all()
    assert len(corners) == 3 * 3 * 3  # rows 0, 24, 32; columns 0, 24, 40
    with pytest.raises(ValueError, match="either per_image"):
        extract_tiles(images, vessels, fov, 32)
    with pytest.raises(ValueError, match="larger than the images"):
        extract_tiles(images, vessels, fov, 80, per_image=1)


# -- samplers ------------------------------------------------------------------------------------

def test_patch_sampler_protocol(data):
    images, vessels, fov, _ = data
    sampler = PatchSampler(images, vessels, fov, 9, batch_size=32, patches_per_epoch=100, balance=0.5, seed=4)
    assert len(sampler) == 4
    batches = list(sampler.epoch(0))
    assert [len(b[1]) for b in batches] == [32, 32, 32, 4]
    x, y = batches[0]
    assert x.shape == (32, 3, 9, 9) and x.dtype == np.float32 and y.dtype == np.int64
    assert 49 <= np.concatenate([b[1] for b in batches]).sum() <= 51  # 17 of 34 per image; 2 of the 102 dropped
    np.testing.assert_array_equal(list(sampler.epoch(0))[2][0], batches[2][0])  # the same epoch again
    assert not np.array_equal(list(sampler.epoch(1))[0][0], x)  # fresh patches every epoch
    first, second = list(iter(sampler)), list(iter(sampler))  # iter: epoch 0, then epoch 1
    np.testing.assert_array_equal(first[0][0], x)
    np.testing.assert_array_equal(second[0][0], list(sampler.epoch(1))[0][0])


def test_patch_sampler_with_augmentation_standardization_and_scales(data):
    images, vessels, fov, _ = data
    standardizer = Standardizer().fit(images, fov)
    sampler = PatchSampler(images, vessels, fov, 7, batch_size=16, patches_per_epoch=16, scales=[1, 3],
                           augment=default_augmenter(), standardizer=standardizer, seed=0)
    (x, y), = list(sampler.epoch(0))
    assert isinstance(x, list) and [a.shape for a in x] == [(16, 3, 7, 7), (16, 3, 7, 7)]
    assert x[0].dtype == np.float32 and abs(x[0].mean()) < 3
    # flips about the centre of an odd window keep the centre pixel: labels as without augmentation
    plain = PatchSampler(images, vessels, fov, 7, batch_size=50, patches_per_epoch=50, seed=1)
    flipped = PatchSampler(images, vessels, fov, 7, batch_size=50, patches_per_epoch=50, seed=1,
                           augment=FlipOnly())
    (xp, yp), = list(plain.epoch(0))
    (xf, yf), = list(flipped.epoch(0))
    np.testing.assert_array_equal(yp, yf)
    np.testing.assert_array_equal(xf, xp[:, :, ::-1, :])


def test_patch_sampler_equals_extract_patches_on_standardized_images(data):
    images, vessels, fov, _ = data
    standardizer = Standardizer().fit(images, fov)
    sampler = PatchSampler(images, vessels, fov, 5, batch_size=40, patches_per_epoch=40, scales=[1, 3],
                           standardizer=standardizer, zero_outside_fov=True, seed=9)
    (x, y), = list(sampler.epoch(2))
    centres = sampler._centres(np.random.default_rng([9, 2]))  # the centres epoch 2 draws first
    expected, labels = extract_patches(standardizer.transform(images, fov), vessels, fov, 5, None, scales=[1, 3],
                                       centres=centres)
    np.testing.assert_array_equal(y, labels)
    for got, want in zip(x, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class FlipOnly:
    """An augmentation with no randomness: flip up-down."""

    def __call__(self, image, vessels, fov, rng):
        rng.random()  # draws like a real transform would
        return image[:, ::-1].copy(), vessels[::-1].copy(), fov[::-1].copy()


def test_tile_sampler(data):
    images, vessels, fov, _ = data
    sampler = TileSampler(images, vessels, fov, 24, batch_size=4, tiles_per_epoch=10, seed=0)
    batches = list(sampler.epoch(3))
    assert len(sampler) == 3 and [len(b[0]) for b in batches] == [4, 4, 2]
    x, y, w = batches[0]
    assert x.shape == (4, 3, 24, 24) and y.shape == w.shape == (4, 1, 24, 24)
    assert set(np.unique(y)) <= {0.0, 1.0} and w.any(axis=(1, 2, 3)).all()
    augmented = TileSampler(images, vessels, fov, 24, batch_size=10, tiles_per_epoch=10, augment=default_augmenter(),
                            standardizer=Standardizer().fit(images, fov), zero_outside_fov=True, seed=0)
    (x, y, w), = list(augmented.epoch(0))
    assert set(np.unique(y)) <= {0.0, 1.0} and set(np.unique(w)) <= {0.0, 1.0}
    assert (x[np.broadcast_to(w == 0, x.shape)] == 0).all()
    with pytest.raises(ValueError, match="vessel masks"):
        TileSampler(images, None, fov, 24)


# -- patient splits --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [3, 10, 20, 41])
def test_split_patients_disjoint_and_complete(n):
    train, val, test = split_patients(n, (0.6, 0.2, 0.2), seed=0)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(n))
    assert len(val) >= 1 and len(test) >= 1
    assert abs(len(train) - 0.6 * n) <= 1
    assert all((np.diff(part) > 0).all() for part in (train, val, test))


def test_split_patients_by_group_and_seed(data):
    ids = [f"p{k // 2}_{'LR'[k % 2]}" for k in range(12)]  # two eyes per person
    groups = [name.split("_")[0] for name in ids]
    parts = split_patients(ids, (0.5, 0.5), seed=3, groups=groups)
    for part in parts:
        persons = {groups[i] for i in part}
        assert all(groups[i] in persons for i in range(12) if groups[i] in persons)
    assert not {groups[i] for i in parts[0]} & {groups[i] for i in parts[1]}
    np.testing.assert_array_equal(split_patients(ids, (0.5, 0.5), seed=3, groups=groups)[0], parts[0])
    assert [len(p) for p in split_patients(data, (2 / 3, 1 / 3))] == [2, 1]  # a RetinaData works too
    with pytest.raises(ValueError, match="sum to 1"):
        split_patients(10, (0.5, 0.2))


# -- standardization ---------------------------------------------------------------------------------

def test_standardizer_uses_fov_pixels_only():
    rng = np.random.default_rng(0)
    images = rng.normal([2.0, -1.0], [3.0, 0.5], size=(4, 10, 10, 2)).transpose(0, 3, 1, 2)
    fov = np.zeros((4, 10, 10), bool)
    fov[:, 2:8, 2:8] = True
    images[:, :, ~fov[0]] = 1000.0  # the surround must not count
    s = Standardizer().fit(images, fov)
    expected_mean = [images[:, c][fov].mean() for c in range(2)]
    np.testing.assert_allclose(s.mean, expected_mean)
    np.testing.assert_allclose(s.std, [images[:, c][fov].std() for c in range(2)])
    out = s.transform(images, fov)
    assert out.dtype == np.float32
    np.testing.assert_allclose([out[:, c][fov].mean() for c in range(2)], 0, atol=1e-6)
    np.testing.assert_allclose([out[:, c][fov].std() for c in range(2)], 1, atol=1e-5)
    assert (out[:, :, ~fov[0]] == 0).all()
    np.testing.assert_allclose(s.inverse_transform(s.transform(images[0])), images[0], rtol=1e-5)
    restored = Standardizer.from_state_dict({k: np.array(v) for k, v in s.state_dict().items()})
    np.testing.assert_array_equal(restored.transform(images), s.transform(images))
    assert "Standardizer(mean=" in repr(s)


def test_standardizer_errors():
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer().transform(np.zeros((3, 4, 4)))
    s = Standardizer().fit(np.random.default_rng(0).random((2, 3, 4, 4)))
    with pytest.raises(ValueError, match="3 channels"):
        s.transform(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="constant"):
        Standardizer().fit(np.ones((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="empty"):
        Standardizer().fit(np.zeros((1, 3, 4, 4)), np.zeros((1, 4, 4), bool))
