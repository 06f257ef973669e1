"""minifeat's HOG and LBP against the real VLFeat 0.9.21 (libvl through ctypes), input checks,
and the descriptor registry with its parallel ``extract``.

Accuracy is measured as ``max |ours - vlfeat| / max |vlfeat|`` over the whole feature map, on the
sample photos of ``models/data/sample`` and on synthetic images (noise, ramps, step edges, ties, a
constant image) whose sizes are not multiples of the cell size and not square. The differential
tests skip, with the reason printed by ``pytest -rs``, where libvl is not installed.
"""
import functools
import glob
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

import minifeat
from minifeat.image import to_grey
from minifeat.lbp import UNIFORM_PATTERN_BINS
from tests.reference.vlfeat_ref import (LIBVL, SKIP_REASON, vl_hog_reference, vl_hog_render_reference,
                              vl_lbp_reference)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHOTOS = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))[::5]  # 6 of the 29
HOG_TOLERANCE = 1e-4
LBP_TOLERANCE = 1e-5
RENDER_TOLERANCE = 1e-5

requires_libvl = pytest.mark.skipif(LIBVL is None, reason=SKIP_REASON)


def relative_error(ours, reference):
    assert ours.shape == reference.shape
    assert ours.dtype == np.float32
    return np.abs(ours.astype(np.float64) - reference).max() / np.abs(reference).max()


@functools.lru_cache(maxsize=None)
def photo(path):
    return iio.imread(path).astype(np.float32)


def synthetic(kind):
    """Colour float test images on the 0..255 scale, of awkward sizes."""
    rng = np.random.default_rng(sum(map(ord, kind)))
    if kind == "noise_61x45":
        return rng.uniform(0, 255, (61, 45, 3)).astype(np.float32)
    if kind == "ramps_37x100":
        rows, columns = np.mgrid[0:37, 0:100].astype(np.float32)
        return np.stack([2 * columns, 5 * rows, columns + rows], axis=2)
    if kind == "steps_100x37":
        rows, columns = np.mgrid[0:100, 0:37]
        steps = 200.0 * ((columns > 17) ^ (rows > 40)) + 30.0 * (rows + columns > 70)
        return np.repeat(steps[:, :, None], 3, axis=2).astype(np.float32)
    if kind == "ties_50x64":  # few grey levels: many equal neighbours and equal gradients
        return rng.integers(0, 3, (50, 64, 3)).astype(np.float32)
    if kind == "constant_20x27":
        return np.full((20, 27, 3), 128.0, dtype=np.float32)
    raise KeyError(kind)


SYNTHETIC = ["noise_61x45", "ramps_37x100", "steps_100x37", "ties_50x64", "constant_20x27"]
IMAGES = ([pytest.param(path, id=os.path.basename(path)[:-4]) for path in PHOTOS]
          + [pytest.param(kind, id=kind) for kind in SYNTHETIC])


def load(name):
    return photo(name) if name.endswith(".jpg") else synthetic(name)


# ---------------------------------------------------------------- HOG against vl_hog

@requires_libvl
@pytest.mark.parametrize("variant", ["uoctti", "dalaltriggs"])
@pytest.mark.parametrize("colour", [False, True], ids=["grey", "colour"])
@pytest.mark.parametrize("name", IMAGES)
def test_hog_matches_vlfeat(name, colour, variant):
    image = load(name) if colour else to_grey(load(name))
    for cell_size in (8, 5):
        ours = minifeat.hog(image, cell_size, 9, variant)
        reference = vl_hog_reference(image, cell_size, variant)
        assert ours.shape == reference.shape
        if np.abs(reference).max() == 0:  # the constant image
            assert np.abs(ours).max() == 0
        else:
            assert relative_error(ours, reference) < HOG_TOLERANCE


@requires_libvl
@pytest.mark.parametrize("num_orientations", [4, 7, 12])
def test_hog_other_orientation_counts_match_vlfeat(num_orientations):
    image = load("noise_61x45")
    for variant in ("uoctti", "dalaltriggs"):
        ours = minifeat.hog(image, 6, num_orientations, variant)
        reference = vl_hog_reference(image, 6, variant, num_orientations)
        assert relative_error(ours, reference) < HOG_TOLERANCE


@requires_libvl
@pytest.mark.parametrize("size", [(4, 4), (5, 9), (12, 7), (256, 256), (61, 45), (100, 37)])
def test_hog_cell_grid_is_vlfeats(size):
    image = np.random.default_rng(0).uniform(0, 255, size).astype(np.float32)
    expected = vl_hog_reference(image, 8, "uoctti").shape
    assert minifeat.hog(image).shape == expected
    assert minifeat.feature_shape("hog", size) == expected


@requires_libvl
@pytest.mark.parametrize("variant", ["uoctti", "dalaltriggs"])
@pytest.mark.parametrize("name", [PHOTOS[0], "steps_100x37"])
def test_hog_render_matches_vlfeat(name, variant):
    features = vl_hog_reference(to_grey(load(name)), 8, variant)
    ours = minifeat.hog_render(features, variant=variant)
    reference = vl_hog_render_reference(features, variant)
    assert ours.shape == reference.shape == (features.shape[0] * 21, features.shape[1] * 21)
    assert relative_error(ours, reference) < RENDER_TOLERANCE


# ---------------------------------------------------------------- LBP against vl_lbp

@requires_libvl
@pytest.mark.parametrize("name", IMAGES)
def test_lbp_matches_vlfeat(name):
    grey = to_grey(load(name))
    for cell_size in (16, 5, 7):
        if min(grey.shape) < cell_size:
            continue
        ours = minifeat.lbp(grey, cell_size)
        reference = vl_lbp_reference(grey, cell_size)
        assert ours.shape == reference.shape == (grey.shape[0] // cell_size,
                                                 grey.shape[1] // cell_size, 58)
        assert relative_error(ours, reference) < LBP_TOLERANCE


def test_lbp_uniform_table():
    table = UNIFORM_PATTERN_BINS
    assert sorted(np.bincount(table, minlength=58)) == [1] * 56 + [2] + [256 - 58]
    assert table[0b00000001] == 0 and table[0b00000011] == 1 and table[0b11111110] == 7 * 1 + 6
    assert table[0x00] == table[0xFF] == 56 and table[0b00000101] == 57


# ---------------------------------------------------------------- input conventions

def test_integer_and_float_images_agree_and_keep_the_0_255_scale():
    image = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    for feature in (minifeat.hog, minifeat.lbp):
        np.testing.assert_array_equal(feature(image), feature(image.astype(np.float64)))
        assert feature(image).dtype == np.float32
    assert not np.allclose(minifeat.hog(image), minifeat.hog(image / 255.0))


def test_single_channel_and_grey_conversion():
    image = np.random.default_rng(2).uniform(0, 255, (33, 48, 3))
    grey = to_grey(image.astype(np.float32))
    np.testing.assert_allclose(grey, image @ [0.299, 0.587, 0.114], rtol=1e-5)
    np.testing.assert_array_equal(minifeat.hog(grey[:, :, None]), minifeat.hog(grey))
    np.testing.assert_array_equal(minifeat.lbp(image), minifeat.lbp(grey))


BAD_INPUTS = [
    (np.zeros((0, 0)), "too small"),
    (np.zeros((1, 1)), "too small"),
    (np.zeros((0, 30, 3)), "too small"),
    (np.zeros(64), "shape"),
    (np.zeros((2, 32, 32, 3)), "shape"),
    (np.zeros((32, 32, 4)), "channels"),
    (np.zeros((32, 32, 2)), "channels"),
    (np.full((32, 32), np.nan), "NaN"),
    (np.where(np.eye(32) > 0, np.inf, 0.0), "NaN or infinite"),
    (np.zeros((32, 32), dtype=bool), "dtype"),
    (np.zeros((32, 32), dtype=complex), "dtype"),
    (np.array([["a", "b"], ["c", "d"]]), "dtype"),
]


@pytest.mark.parametrize("feature", [minifeat.hog, minifeat.lbp], ids=["hog", "lbp"])
@pytest.mark.parametrize("image, message", BAD_INPUTS, ids=[m + str(i) for i, (_, m) in
                                                            enumerate(BAD_INPUTS)])
def test_bad_images_raise_value_error_naming_function_and_shape(feature, image, message):
    with pytest.raises(ValueError) as error:
        feature(image)
    text = str(error.value)
    assert f"minifeat.{feature.__name__}" in text
    assert message in text
    assert str(np.shape(image)) in text


@pytest.mark.parametrize("call", [
    lambda: minifeat.hog(np.zeros((3, 50))),          # VLFeat needs more than 3 pixels
    lambda: minifeat.hog(np.zeros((50, 3)), cell_size=8),
    lambda: minifeat.hog(np.zeros((50, 50)), cell_size=120),  # not even half a cell
    lambda: minifeat.lbp(np.zeros((15, 40))),          # smaller than one 16-pixel cell
    lambda: minifeat.hog(np.zeros((50, 50)), cell_size=0),
    lambda: minifeat.hog(np.zeros((50, 50)), variant="felzenszwalb"),
    lambda: minifeat.hog(np.zeros((50, 50)), num_orientations=2.5),
    lambda: minifeat.lbp(np.zeros((50, 50)), cell_size=-16),
    lambda: minifeat.hog_render(np.zeros((4, 4, 30))),
])
def test_bad_sizes_and_parameters_raise_value_error(call):
    with pytest.raises(ValueError, match="minifeat"):
        call()


def test_smallest_images_vlfeat_accepts():
    assert minifeat.hog(np.zeros((4, 4)), cell_size=8).shape == (1, 1, 31)
    assert minifeat.lbp(np.zeros((16, 16))).shape == (1, 1, 58)


# ---------------------------------------------------------------- registry and extract

def test_feature_shapes_of_the_paper():
    assert minifeat.feature_shape("hog", (256, 256)) == (32, 32, 31)
    assert minifeat.feature_shape("lbp", (256, 256)) == (16, 16, 58)
    assert minifeat.feature_shape("sift", (256, 256)) == (64, 64, 133)
    assert set(minifeat.DESCRIPTORS) == {"hog", "lbp", "sift"}
    with pytest.raises(ValueError, match="unknown representation"):
        minifeat.feature_shape("gist", (256, 256))


@pytest.mark.parametrize("name", ["hog", "lbp", "sift"])
def test_extract_in_parallel_equals_inline_and_the_registry_shape(name):
    images = np.random.default_rng(3).integers(0, 256, (5, 61, 45, 3), dtype=np.uint8)
    parallel = minifeat.extract(name, images, workers=2)
    inline = minifeat.extract(name, list(images), workers=1)
    assert parallel.dtype == np.float32
    assert parallel.shape == (5, *minifeat.feature_shape(name, (61, 45)))
    np.testing.assert_array_equal(parallel, inline)


def test_extract_computes_on_the_greyscale_image():
    images = np.random.default_rng(4).uniform(0, 255, (2, 48, 40, 3)).astype(np.float32)
    features = minifeat.extract("hog", images, workers=1)
    np.testing.assert_array_equal(features[1], minifeat.hog(to_grey(images[1])))
    features = minifeat.extract("lbp", images, workers=1)
    np.testing.assert_array_equal(features[0], minifeat.lbp(to_grey(images[0])))


def test_extract_rejects_bad_batches():
    with pytest.raises(ValueError, match="no images"):
        minifeat.extract("hog", [])
    with pytest.raises(ValueError, match="one shape"):
        minifeat.extract("hog", [np.zeros((32, 32)), np.zeros((32, 40))])
    with pytest.raises(ValueError, match="workers"):
        minifeat.extract("hog", [np.zeros((32, 32))], workers=0)
    with pytest.raises(ValueError, match="unknown representation"):
        minifeat.extract("HOG", [np.zeros((32, 32))])


def test_minifeat_does_not_import_nn():
    code = "import sys, minifeat; sys.exit('nn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def _mirror_permutation(name, image):
    """The channel permutation p with feature(mirror(image))[:, :, c] == mirror(feature(image))[:, :, p[c]],
    found channel by channel, and the largest mismatch left."""
    import minifeat
    a = minifeat.extract(name, [image], workers=1)[0][:, ::-1]
    b = minifeat.extract(name, [np.ascontiguousarray(image[:, ::-1])], workers=1)[0]
    perm = [int(np.argmin([np.abs(b[:, :, c] - a[:, :, d]).max() for d in range(a.shape[2])]))
            for c in range(a.shape[2])]
    return perm, float(np.abs(b - a[:, :, perm]).max())


def test_which_maps_a_flip_can_be_made_from():
    """docs/SCALE.md, "Flips": LBP of a mirrored photo is the mirrored LBP map with its patterns
    permuted, exactly (one permutation for every photo and size, the one minifeat.lbp derives), so
    the feature cache makes LBP's flips from the stored map; HOG's (VLFeat's cell grid is not symmetric about the centre) and SIFT's are not, and
    must be computed from the mirrored photo."""
    import glob
    from models.data.images import center_square, read_image
    photos = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(__file__)), "..", "models", "data", "sample", "*.jpg")))[:3]
    perms = set()
    for path in photos:
        for size in (128, 256):
            image = center_square(read_image(path), size)
            perm, mismatch = _mirror_permutation("lbp", image)
            assert mismatch == 0.0 and sorted(perm) == list(range(58))
            perms.add(tuple(perm))
            for name in ("hog", "sift"):
                assert _mirror_permutation(name, image)[1] > 0.01
    assert len(perms) == 1
    from minifeat.lbp import mirror_permutation
    assert list(perms.pop()) == list(mirror_permutation())  # the derived permutation is the one found
