"""The DRIVE data set on disk: ``load_drive`` reads it, ``save_drive_layout`` writes one like it.

DRIVE (Staal et al. 2004, "Ridge-based vessel segmentation in color images of the retina") has
40 RGB fundus photographs of 565×584 pixels, split into a training and a test set of 20 each.
It may not be redistributed; after registering, its layout is::

    DRIVE/
      training/images/21_training.tif ... 40_training.tif      RGB photographs
      training/1st_manual/21_manual1.gif ... 40_manual1.gif    vessel annotations (0 / 255)
      training/mask/21_training_mask.gif ...                   field-of-view masks (0 / 255)
      test/images/01_test.tif ... 20_test.tif
      test/1st_manual/01_manual1.gif ...                       (2nd_manual/ too: a second observer)
      test/mask/01_test_mask.gif ...

Copies found in the wild differ a little, and the loader accepts them: ``.tif`` or ``.tiff`` (or
``.png`` / ``.jpg``) images, RGB, RGBA, grayscale (copied to the three channels), 16-bit grey
(scaled by 65535; by 255 when no value exceeds 255, i.e. 8-bit data in a 16-bit file) or 32-bit
float grey (as it is when in [0, 1]); ``.gif``, ``.png``, ``.tif`` or ``.jpg`` masks, stored as
0/255, 0/1, RGB or any two levels (the brighter one is the mask; two levels both above 127, a
white mask with 254/255 noise, are all inside), with compression noise (then above 127 counts);
masks named ``21_training_mask`` or ``21_mask``. Hidden files (``.DS_Store``, macOS's ``._*``)
are skipped. Ids are the image file names without extension, in natural order
(``"21_training"``, ..., ``"01_test"``, ...). Each of these is an error that names the file: two
images with one name (``21_training.tif`` and ``.png``), unreadable or truncated files, an image
over :data:`MAX_PIXELS` (checked from the header, before decoding), NaN pixels, an empty FOV mask,
and a vessel annotation without a vessel (or without background) inside the FOV.

A test split without ``1st_manual/`` (some copies hold back the test annotations) loads with
``require_vessels=False`` and then has ``vessels=None``; by default it is an error that says so.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError, DataNotFoundError
from .dataset import RetinaData

__all__ = ["load_drive", "save_drive_layout"]

SPLITS = ("training", "test")
_IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
_MASK_EXTENSIONS = (".gif", ".png", ".tif", ".tiff", ".jpg", ".jpeg")


def _natural_key(name):
    """``"9_test" < "10_test"``: compare digit runs as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _find(folder, stems, extensions, what):
    """The first ``folder/stem.ext`` that exists, trying stems and extensions in order (case-insensitive)."""
    present = {p.name.lower(): p for p in folder.iterdir()}
    for stem in stems:
        for ext in extensions:
            path = present.get((stem + ext).lower())
            if path is not None:
                return path
    tried = ", ".join(stem + "{" + ",".join(extensions) + "}" for stem in stems)
    raise DataNotFoundError(f"load_drive: no {what} file in {folder} (looked for {tried})")


MAX_PIXELS = 40_000_000
"""The largest image (width x height, read from the file's header before decoding) the loaders
accept: 40 MP, e.g. 7300 x 5500, far above any fundus camera's. DRIVE's are 0.33 MP; the loaders
hold an image as float32 RGB (12 bytes a pixel, 480 MB at the cap), so a 93 KB PNG that declares
9800 x 9800 is refused before it is decoded into 1.9 GB."""


@contextlib.contextmanager
def _quiet_pil():
    """PIL's warnings about a damaged file ("Corrupt EXIF data", a decompression bomb) silenced:
    the file either decodes or becomes a DataError that names it, and the size is checked here."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL\.")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _open(path, what, caller="load_drive"):
    """``PIL.Image.open`` (which reads only the header) with an error that names the caller, the
    file and what it should have been; images over :data:`MAX_PIXELS` are refused here, before
    any pixel is decoded (PIL's own decompression-bomb warning and error included)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with _quiet_pil():
            image = Image.open(path)
    except Image.DecompressionBombError as e:
        raise DataError(f"{caller}: {path} declares more than {MAX_PIXELS:,} pixels ({e}); downscale it") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{caller}: {path} is not a readable image ({what}); remove it or convert it "
                         f"to PNG ({e})") from e
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise DataError(f"{caller}: {path} is {width}x{height} pixels ({what}), more than the {MAX_PIXELS:,} "
                         "the loader decodes (it would need gigabytes of memory); downscale it first")
    return image


def _decode(image, path, what, caller, mode=None, dtype=None):
    """The pixels of an opened image (converted to ``mode`` when given) as an array; a truncated or
    corrupt file becomes a DataError naming it, not PIL's bare ``OSError``."""
    try:
        with _quiet_pil():
            return np.asarray(image.convert(mode) if mode else image, dtype=dtype)
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{caller}: {path} ({what}) cannot be decoded: {e}. The file is truncated or corrupt; "
                         "copy it again or remove it") from None


def _read_rgb(path, caller="load_drive"):
    """An image file as (H, W, 3) float32 in [0, 1]: 8-bit RGB(A) or grey (/ 255); 16-bit or
    integer grey: / 65535, or / 255 when no value exceeds 255; float grey already in [0, 1] as it
    is (else as the integers). NaN or infinite pixels are a DataError naming the file; ``caller``
    names the function in errors."""
    what = "a fundus photograph"
    with _open(path, what, caller) as image:
        if image.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            return _decode(image, path, what, caller, "RGB", np.float32) / np.float32(255)
        gray = _decode(image, path, what, caller, None, np.float32)  # 16-bit (or wider, or float) gray
    if not np.isfinite(gray).all():
        raise DataError(f"{caller}: {path} has {np.count_nonzero(~np.isfinite(gray))} NaN or infinite pixels; "
                         "fill them (e.g. with 0) or re-export the image")
    if image.mode == "F" and gray.min() >= 0 and gray.max() <= 1:
        scale = 1.0  # a float image already in [0, 1]
    else:
        scale = 255.0 if gray.max() <= 255 else 65535.0
    return np.repeat(np.clip(gray / np.float32(scale), 0, 1)[:, :, None], 3, axis=2)


def _read_binary(path, shape, what):
    """A mask file as a bool array. Two levels (0/255, 0/1, or a palette's two colours): the
    brighter one, or everything when both are above 127 (a white mask with 254/255 noise); more
    (compression noise): above 127 of 255."""
    with _open(path, what) as image:
        array = _decode(image, path, what, "load_drive", "L")
    if array.shape != shape:
        raise DataError(f"load_drive: {what} {path} is {array.shape[1]}x{array.shape[0]} pixels but its "
                         f"image is {shape[1]}x{shape[0]}")
    levels = np.unique(array)
    if levels[0] > 127:
        return np.ones(shape, bool)  # all white, with noise: two bright levels are one
    if len(levels) <= 2:
        return array == levels[-1] if levels[-1] > 0 else np.zeros(shape, bool)
    if levels[-1] <= 127:
        raise DataError(f"load_drive: {what} {path} has {len(levels)} grey levels, all at most {levels[-1]}: "
                         "expected a binary mask (0 and 255, or 0 and 1)")
    return array > 127


def load_drive(root, split="training", require_vessels=True):
    """Read one split of DRIVE (or a folder with its layout, see the module doc).

    Parameters
    ----------
    root : str or Path
        The folder that holds ``training/`` and ``test/`` (the unpacked ``DRIVE/``).
    split : "training" or "test"
    require_vessels : bool
        ``True``: a missing ``1st_manual/`` folder is an error. ``False``: the split loads without
        annotations and ``vessels`` is ``None`` (for qualitative inference only).

    Returns
    -------
    RetinaData
        As :func:`handprop.data.synthetic_retina`: ``images`` (n, 3, H, W) float32 in [0, 1]
        (8-bit values / 255, 16-bit / 65535), ``vessels`` (n, H, W) uint8 {0, 1} from ``1st_manual``, ``fov``
        (n, H, W) bool from ``mask``, ``ids`` the image names (``"21_training"``, ...).
        Unpacks as ``images, vessels, fov, ids = load_drive(root)``.
    """
    if split not in SPLITS:
        raise ValueError(f"load_drive: split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"load_drive: the DRIVE folder {root} does not exist")
    base = root / split
    image_dir, manual_dir, mask_dir = base / "images", base / "1st_manual", base / "mask"
    for folder in (base, image_dir, mask_dir):
        if not folder.is_dir():
            raise DataNotFoundError(f"load_drive: missing folder {folder} (DRIVE layout: {split}/images, "
                                    f"{split}/1st_manual, {split}/mask)")
    has_manual = manual_dir.is_dir()
    if not has_manual and require_vessels:
        raise DataNotFoundError(f"load_drive: missing folder {manual_dir} with the vessel annotations "
                                "(*_manual1.gif); pass require_vessels=False to load the images without them")
    files = sorted((p for p in image_dir.iterdir()
                    if p.suffix.lower() in _IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")),
                   key=lambda p: _natural_key(p.stem))  # fmt: skip
    if not files:
        raise DataNotFoundError(f"load_drive: no images ({', '.join(_IMAGE_EXTENSIONS)}) in {image_dir}")
    for a, b in zip(files, files[1:]):
        if a.stem.lower() == b.stem.lower():
            raise DataError(f"load_drive: {a.name} and {b.name} in {image_dir} are one image id twice; keep one")
    images, vessels, fov, ids = [], [], [], []
    for path in files:
        stem = path.stem
        number = stem[: -len(split) - 1] if stem.lower().endswith("_" + split) else stem
        rgb = _read_rgb(path)
        if images and rgb.shape != images[0].shape:
            raise DataError(f"load_drive: {path} is {rgb.shape[1]}x{rgb.shape[0]} pixels but {files[0]} is "
                             f"{images[0].shape[1]}x{images[0].shape[0]}; all images of a split must be one size")
        shape = rgb.shape[:2]
        images.append(rgb)
        mask_path = _find(mask_dir, [stem + "_mask", number + "_mask"], _MASK_EXTENSIONS, f"FOV mask for {path.name}")
        fov.append(_read_binary(mask_path, shape, "FOV mask"))
        if fov[-1].sum() < 2:
            raise DataError(f"load_drive: the FOV mask {mask_path} has {int(fov[-1].sum())} pixel(s) inside; "
                             "expected 255 (or 1) inside the field of view and 0 outside")
        if has_manual:
            manual_path = _find(manual_dir, [number + "_manual1", stem + "_manual1"], _MASK_EXTENSIONS,
                                f"vessel annotation for {path.name}")
            vessels.append(_read_binary(manual_path, shape, "vessel annotation").astype(np.uint8))
            _check_annotation(manual_path, vessels[-1], fov[-1])
        ids.append(stem)
    images = np.stack(images).transpose(0, 3, 1, 2)
    return RetinaData(images, np.stack(vessels) if has_manual else None, np.stack(fov), ids)


def _check_annotation(path, vessels, fov):
    """A vessel annotation must mark vessel and background pixels inside the FOV: an all-black one
    (an export gone wrong) makes the AUC undefined and the Dice of any threshold 0 or 1."""
    inside = vessels[fov].astype(bool)
    if not inside.any() or inside.all():
        kind = "no vessel" if not inside.any() else "no background"
        raise DataError(f"load_drive: the vessel annotation {path} has {kind} pixel inside the FOV "
                         f"({int(inside.sum())} of {inside.size} marked); expected 255 (or 1) on the vessels and 0 "
                         "elsewhere. Replace the file, or move the image and its masks out of the folder")


def save_drive_layout(data, root, split="training", first=None):
    """Write ``data`` as one split of a DRIVE-layout folder that :func:`load_drive` reads back.

    Images become ``{split}/images/NN_{split}.tif`` (8-bit RGB: values are rounded to k/255, which
    the synthetic retina's images already are), annotations ``{split}/1st_manual/NN_manual1.gif``
    and FOV masks ``{split}/mask/NN_{split}_mask.gif`` (0 / 255), with DRIVE's numbering: ``NN``
    counts from ``first`` (21 for "training", 1 for "test", as DRIVE), two digits. Existing files of
    the same names are overwritten. ``data.vessels = None`` writes no ``1st_manual/``.

    Returns the list of ids written (``["21_training", ...]``), in ``data``'s order.
    """
    from PIL import Image

    if split not in SPLITS:
        raise ValueError(f"save_drive_layout: split must be one of {SPLITS}, got {split!r}")
    images, vessels, fov, _ = data
    first = (21 if split == "training" else 1) if first is None else int(first)
    base = Path(root) / split
    folders = ["images", "mask"] + (["1st_manual"] if vessels is not None else [])
    for name in folders:
        (base / name).mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(len(images)):
        number = f"{first + i:02d}"
        stem = f"{number}_{split}"
        rgb = np.round(np.clip(np.asarray(images[i], np.float32), 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
        Image.fromarray(np.ascontiguousarray(rgb)).save(base / "images" / f"{stem}.tif")
        Image.fromarray((np.asarray(fov[i]) > 0).astype(np.uint8) * 255).save(base / "mask" / f"{stem}_mask.gif")
        if vessels is not None:
            Image.fromarray((np.asarray(vessels[i]) > 0).astype(np.uint8) * 255).save(
                base / "1st_manual" / f"{number}_manual1.gif")
        ids.append(stem)
    return ids
