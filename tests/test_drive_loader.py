"""The DRIVE loader reads back what save_drive_layout writes, accepts the variants found in real copies,
and names what is missing."""

import numpy as np
import pytest
from PIL import Image

from handprop.data import load_drive, save_drive_layout, synthetic_retina

SIZE = (40, 44)  # (H, W): tiny images keep these tests fast


@pytest.fixture(scope="module")
def data():
    return synthetic_retina(3, seed=1, size=SIZE)


def test_round_trip_training_and_test(tmp_path, data):
    ids = save_drive_layout(data, tmp_path, "training")
    assert ids == ["21_training", "22_training", "23_training"]
    assert (tmp_path / "training/images/21_training.tif").is_file()
    assert (tmp_path / "training/1st_manual/21_manual1.gif").is_file()
    assert (tmp_path / "training/mask/21_training_mask.gif").is_file()
    loaded = load_drive(tmp_path, "training")
    assert loaded.ids == ids
    np.testing.assert_array_equal(loaded.images, data.images)  # the generator's images are 8-bit exact
    np.testing.assert_array_equal(loaded.vessels, data.vessels)
    np.testing.assert_array_equal(loaded.fov, data.fov)
    assert loaded.images.dtype == np.float32 and loaded.vessels.dtype == np.uint8 and loaded.fov.dtype == bool

    assert save_drive_layout(data[:2], tmp_path, "test") == ["01_test", "02_test"]
    test = load_drive(tmp_path, split="test")
    assert test.ids == ["01_test", "02_test"]
    np.testing.assert_array_equal(test.vessels, data.vessels[:2])


def test_ids_in_natural_order(tmp_path, data):
    save_drive_layout(data[:2], tmp_path, "test", first=9)
    assert load_drive(tmp_path, "test").ids == ["09_test", "10_test"]
    for name in ("09_test.tif", "10_test.tif"):  # unpadded names: 9 before 10 all the same
        path = tmp_path / "test/images" / name
        path.rename(path.with_name(name.lstrip("0")))
    for name in ("09_test_mask.gif",):
        path = tmp_path / "test/mask" / name
        path.rename(path.with_name(name.lstrip("0")))
    (tmp_path / "test/1st_manual/09_manual1.gif").rename(tmp_path / "test/1st_manual/9_manual1.gif")
    loaded = load_drive(tmp_path, "test")
    assert loaded.ids == ["9_test", "10_test"]
    np.testing.assert_array_equal(loaded.vessels, data.vessels[:2])


def test_variants_of_real_copies(tmp_path, data):
    """.tiff images, .png masks stored as 0/1, RGB masks, masks named NN_mask."""
    save_drive_layout(data[:1], tmp_path, "training")
    base = tmp_path / "training"
    (base / "images/21_training.tif").rename(base / "images/21_training.tiff")
    Image.fromarray(data.vessels[0]).save(base / "1st_manual/21_manual1.png")  # 0/1, not 0/255
    (base / "1st_manual/21_manual1.gif").unlink()
    rgb_mask = np.repeat((data.fov[0] * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    Image.fromarray(rgb_mask).save(base / "mask/21_mask.png")
    (base / "mask/21_training_mask.gif").unlink()
    loaded = load_drive(tmp_path, "training")
    assert loaded.ids == ["21_training"]
    np.testing.assert_array_equal(loaded.images, data.images[:1])
    np.testing.assert_array_equal(loaded.vessels, data.vessels[:1])
    np.testing.assert_array_equal(loaded.fov, data.fov[:1])


def test_what_other_generators_write(tmp_path, data):
    """Found by a break-it pass with DRIVE-like folders from other tools: 16-bit grey images,
    annotations in a palette's non-white colour, noisy masks (above 127 counts), .jpg masks, hidden
    files."""
    save_drive_layout(data[:2], tmp_path, "training")
    base = tmp_path / "training"
    green = (data.images[0, 1] * 65535).round().astype(np.uint16)  # 16-bit grey, as I;16
    Image.fromarray(green).save(base / "images/21_training.png")
    (base / "images/21_training.tif").unlink()
    palette = Image.fromarray((data.vessels[1] * 5).astype(np.uint8), mode="P")  # index 5 = red, 0 = black
    palette.putpalette([0, 0, 0] * 5 + [200, 0, 0] + [0, 0, 0] * 250)
    palette.save(base / "1st_manual/22_manual1.gif")
    rng = np.random.default_rng(0)
    noisy = np.where(data.fov[1], 255 - rng.integers(0, 6, SIZE), rng.integers(0, 6, SIZE)).astype(np.uint8)
    Image.fromarray(noisy).save(base / "mask/22_training_mask.jpg", quality=95)
    (base / "mask/22_training_mask.gif").unlink()
    noisy_vessels = np.where(data.vessels[0] > 0, 255 - rng.integers(0, 6, SIZE), rng.integers(0, 6, SIZE))
    Image.fromarray(noisy_vessels.astype(np.uint8)).save(base / "1st_manual/21_manual1.png")
    (base / "1st_manual/21_manual1.gif").unlink()
    for junk in ("images/._21_training.tif", "images/.DS_Store", "mask/._22_training_mask.gif"):
        (base / junk).write_bytes(b"\0\5\x16\x07 not an image")
    loaded = load_drive(tmp_path, "training")
    assert loaded.ids == ["21_training", "22_training"]
    np.testing.assert_allclose(loaded.images[0, 1], data.images[0, 1], atol=1e-4)  # scaled by 65535
    np.testing.assert_array_equal(loaded.images[0, 0], loaded.images[0, 2])  # grey: one value, 3 channels
    np.testing.assert_array_equal(loaded.vessels[0], data.vessels[0])
    np.testing.assert_array_equal(loaded.vessels[1], data.vessels[1])
    np.testing.assert_array_equal(loaded.fov[1], data.fov[1])


def test_ambiguous_or_broken_files_are_errors_naming_the_file(tmp_path, data):
    save_drive_layout(data[:2], tmp_path, "training")
    base = tmp_path / "training"
    Image.fromarray(data.images[0].transpose(1, 2, 0).__mul__(255).astype(np.uint8)).save(
        base / "images/21_training.png")
    with pytest.raises(ValueError, match=r"21_training\.png and 21_training\.tif .* one image id twice"):
        load_drive(tmp_path, "training")
    (base / "images/21_training.png").unlink()
    Image.fromarray(np.zeros(SIZE, np.uint8)).save(base / "mask/21_training_mask.gif")
    with pytest.raises(ValueError, match=r"FOV mask .*21_training_mask\.gif has 0 pixel"):
        load_drive(tmp_path, "training")
    save_drive_layout(data[:2], tmp_path, "training")
    Image.fromarray(np.random.default_rng(1).integers(0, 3, SIZE).astype(np.uint8)).save(
        base / "mask/22_training_mask.gif")
    with pytest.raises(ValueError, match=r"22_training_mask\.gif has 3 grey levels.*binary mask"):
        load_drive(tmp_path, "training")
    save_drive_layout(data[:2], tmp_path, "training")
    (base / "images/22_training.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"22_training\.tif is not a readable image"):
        load_drive(tmp_path, "training")


def test_test_split_without_annotations(tmp_path, data):
    from handprop.data import RetinaData

    unlabeled = RetinaData(data.images[:2], None, data.fov[:2], data.ids[:2])
    save_drive_layout(unlabeled, tmp_path, "test")
    assert not (tmp_path / "test/1st_manual").exists()
    with pytest.raises(FileNotFoundError, match=r"1st_manual.*require_vessels=False"):
        load_drive(tmp_path, "test")
    loaded = load_drive(tmp_path, "test", require_vessels=False)
    assert loaded.vessels is None and loaded.ids == ["01_test", "02_test"]
    np.testing.assert_array_equal(loaded.fov, data.fov[:2])


def test_errors_name_what_is_missing(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_drive(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="training"):
        load_drive(tmp_path, "training")
    with pytest.raises(ValueError, match="split"):
        load_drive(tmp_path, "validation")
    save_drive_layout(data[:2], tmp_path, "training")
    (tmp_path / "training/mask/22_training_mask.gif").unlink()
    with pytest.raises(FileNotFoundError, match=r"FOV mask for 22_training\.tif.*22_training_mask"):
        load_drive(tmp_path, "training")
    save_drive_layout(data[:2], tmp_path, "training")
    (tmp_path / "training/1st_manual/21_manual1.gif").unlink()
    with pytest.raises(FileNotFoundError, match=r"vessel annotation for 21_training\.tif.*21_manual1"):
        load_drive(tmp_path, "training")
    save_drive_layout(data[:2], tmp_path, "training")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "training/mask/21_training_mask.gif")
    with pytest.raises(ValueError, match=r"FOV mask .* is 10x10 pixels but its image is 44x40"):
        load_drive(tmp_path, "training")
    for path in (tmp_path / "training/images").iterdir():
        path.unlink()
    with pytest.raises(FileNotFoundError, match="no images"):
        load_drive(tmp_path, "training")


def test_shipped_fundus_photograph():
    from importlib import resources

    from handprop.data import estimate_fov, load_fundus_photo

    photo = load_fundus_photo()
    assert photo.ids == ["fundus_photo"] and photo.vessels is None
    image, fov = photo.images[0], photo.fov[0]
    assert image.shape == (3, 565, 565) and image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    radius = np.sqrt(fov.sum() / np.pi)
    assert 270 < radius < 285  # the retina fills the square photograph
    assert image[:, ~fov].mean() < 0.05 and image[0, fov].mean() > 0.5  # a dark surround, a red retina
    assert (resources.files("handprop.data") / "FUNDUS_PHOTO_LICENSE.md").read_text().count("CC0") >= 1
    np.testing.assert_array_equal(estimate_fov(image), fov)
