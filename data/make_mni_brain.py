"""Write ``src/handprop/data/mni_brain.npz``: a 1 mm crop of the MNI ICBM152 2009a template.

Not a runtime dependency: run once by hand, the package only reads the ``.npz`` it writes
(``hp.data.mni_brain()``). The source is the copy of the template that the ``nilearn`` wheel
carries in ``nilearn/datasets/data/`` (T1 and the grey- and white-matter probability maps of the
ICBM 2009a nonlinear symmetric template, rescaled by nilearn to uint8, 197 x 233 x 189 voxels of
1 mm, RAS+ axes with the origin at voxel (98, 134, 72))::

    pip download nilearn --no-deps -d /tmp/nl          # one wheel, nothing installed
    python data/make_mni_brain.py /tmp/nl/nilearn-*.whl

No nibabel: a NIfTI-1 file is a fixed 348-byte header followed (at ``vox_offset``) by the raw
voxels, x fastest; :func:`read_nifti1` parses the few fields we need with numpy and checks them.
Licence: the template's notice, copied next to the data as ``MNI_BRAIN_LICENSE.md``.
"""

from __future__ import annotations

import argparse
import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np

FILES = {name: f"nilearn/datasets/data/mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
         for name in ("t1", "gm", "wm")}
NIFTI_DTYPES = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 512: np.uint16}
# The crop, in voxel indices of the 1 mm template (z, y, x): 64 x 96 x 96 voxels from 2 mm below
# to 62 mm above the anterior commissure, 64 mm behind to 32 mm in front of it, 48 mm to either
# side of the midline -- basal ganglia, thalamus, ventricles, the central white matter and cortex.
CROP = (slice(70, 134), slice(70, 166), slice(50, 146))
OUT = Path(__file__).resolve().parents[1] / "src" / "handprop" / "data" / "mni_brain.npz"


def read_nifti1(raw):
    """``(array, affine)`` from the bytes of an uncompressed single-file NIfTI-1 (``.nii``).

    The array is indexed ``[z, y, x]`` (the file stores x fastest), scaled by ``scl_slope`` /
    ``scl_inter`` only when they ask for it; ``affine`` is the 4x4 ``srow`` voxel-to-mm matrix.
    """
    if struct.unpack("<i", raw[:4])[0] != 348:
        raise ValueError("read_nifti1: not a little-endian NIfTI-1 file (sizeof_hdr != 348)")
    if raw[344:348] != b"n+1\x00":
        raise ValueError(f"read_nifti1: magic {raw[344:348]!r}, expected b'n+1\\0' (single-file NIfTI-1)")
    dim = struct.unpack("<8h", raw[40:56])
    datatype = struct.unpack("<h", raw[70:72])[0]
    vox_offset = int(struct.unpack("<f", raw[108:112])[0])
    slope, inter = struct.unpack("<2f", raw[112:120])
    if dim[0] != 3:
        raise ValueError(f"read_nifti1: expected a 3-D image, dim = {dim}")
    if datatype not in NIFTI_DTYPES:
        raise ValueError(f"read_nifti1: datatype code {datatype} not handled ({sorted(NIFTI_DTYPES)})")
    nx, ny, nz = dim[1:4]
    data = np.frombuffer(raw, dtype=np.dtype(NIFTI_DTYPES[datatype]).newbyteorder("<"), count=nx * ny * nz,
                         offset=vox_offset).reshape(nz, ny, nx)
    if slope not in (0.0, 1.0) or inter != 0.0:
        data = data * slope + inter
    affine = np.eye(4)
    affine[:3] = np.array(struct.unpack("<12f", raw[280:328])).reshape(3, 4)
    return data, affine


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="the nilearn wheel (pip download nilearn --no-deps -d DIR)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    arrays, affine = {}, None
    with zipfile.ZipFile(args.wheel) as wheel:
        for name, member in FILES.items():
            data, this_affine = read_nifti1(gzip.decompress(wheel.read(member)))
            if affine is not None and not np.allclose(affine, this_affine):
                raise ValueError(f"{member}: its voxel grid differs from the T1's")
            affine = this_affine
            arrays[name] = np.ascontiguousarray(data[CROP]).astype(np.uint8)
    origin = np.array([s.start for s in CROP][::-1], dtype=np.float64)  # (x, y, z) voxel of the crop's corner
    crop_affine = affine.copy()
    crop_affine[:3, 3] = affine[:3, :3] @ origin + affine[:3, 3]
    np.savez_compressed(args.out, t1=arrays["t1"], gm=arrays["gm"], wm=arrays["wm"], affine=crop_affine)
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out}: {arrays['t1'].shape} (z, y, x) voxels of 1 mm, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
