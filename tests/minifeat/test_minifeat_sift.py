"""minifeat's SIFT against the real VLFeat 0.9.21 (libvl via ctypes); the SIFT map; input checks.

A VLFeat frame is *matched* when one of ours, not matched before, lies within 0.01 px in x and y,
1e-3 relative in sigma and 1e-3 rad in angle; its descriptor must then agree within 1e-3 (max
absolute difference). Every comparison requires at least 99% of VLFeat's frames matched, at most
1% extra frames of ours, and the matched frames in VLFeat's order. (On the images here the
re-implementation is in fact bit-identical; the tolerances leave room for other builds of libvl.)
The differential tests skip, with the reason printed by ``pytest -rs``, where libvl is not
installed.
"""
import functools
import glob
import os

import imageio.v3 as iio
import numpy as np
import pytest

from minifeat.image import to_grey
from minifeat.sift import (MAP_CHANNELS, ScaleSpace, fast_atan2, fast_expn, fast_sqrt, sift,
                           sift_map, sift_map_from_frames)
from tests.reference.vlfeat_sift_ref import (LIBVL, SKIP_REASON, vl_sift_gaussian_scale_space,
                                   vl_sift_reference)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHOTOS = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))[::5]  # 6 of the 29
POSITION_TOLERANCE = 0.01
SCALE_TOLERANCE = 1e-3
ANGLE_TOLERANCE = 1e-3
DESCRIPTOR_TOLERANCE = 1e-3
MIN_MATCHED = 0.99
MAX_EXTRA = 0.01

requires_libvl = pytest.mark.skipif(LIBVL is None, reason=SKIP_REASON)


@functools.lru_cache(maxsize=None)
def grey_photo(path):
    """A sample photo as the float32 greyscale 0..255 image both implementations receive."""
    return to_grey(iio.imread(path).astype(np.float32))


def synthetic(kind, height, width, seed=0):
    """Float32 greyscale test images on the 0..255 scale."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.uniform(0, 255, (height, width)).astype(np.float32)
    if kind == "blobs":
        rows, columns = np.mgrid[0:height, 0:width]
        image = np.full((height, width), 128.0)
        for _ in range(12):
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            radius, contrast = rng.uniform(2, 12), rng.uniform(-100, 100)
            squared_distance = (rows - cy) ** 2 + (columns - cx) ** 2
            image += contrast * np.exp(-squared_distance / (2 * radius ** 2))
        return image.astype(np.float32)
    raise KeyError(kind)


def match_frames(ours, reference):
    """For every reference frame, the index of the first not yet matched frame of ours within
    the tolerances, or -1."""
    matches = np.full(len(reference), -1)
    taken = np.zeros(len(ours), dtype=bool)
    for index, (x, y, sigma, angle) in enumerate(reference.astype(np.float64)):
        angle_difference = np.abs(np.angle(np.exp(1j * (ours[:, 3] - angle))))
        close = (~taken & (np.abs(ours[:, 0] - x) <= POSITION_TOLERANCE)
                 & (np.abs(ours[:, 1] - y) <= POSITION_TOLERANCE)
                 & (np.abs(ours[:, 2] / sigma - 1) <= SCALE_TOLERANCE)
                 & (angle_difference <= ANGLE_TOLERANCE))
        candidates = np.flatnonzero(close)
        if len(candidates):
            matches[index] = candidates[0]
            taken[candidates[0]] = True
    return matches


def assert_matches_vlfeat(image, **parameters):
    """Run both implementations and check the matching criteria; return (ours, reference)."""
    frames, descriptors = sift(image, **parameters)
    reference_frames, reference_descriptors = vl_sift_reference(image, **parameters)
    assert frames.dtype == descriptors.dtype == np.float32
    assert frames.shape == (len(frames), 4) and descriptors.shape == (len(frames), 128)
    matches = match_frames(frames, reference_frames)
    matched = matches >= 0
    assert matched.sum() >= MIN_MATCHED * len(reference_frames), \
        f"{matched.sum()} of {len(reference_frames)} VLFeat frames matched"
    assert len(frames) - matched.sum() <= MAX_EXTRA * len(reference_frames), \
        f"{len(frames) - matched.sum()} extra frames beside {len(reference_frames)}"
    assert np.all(np.diff(matches[matched]) > 0), "frames not in VLFeat's order"
    if matched.any():
        difference = np.abs(descriptors[matches[matched]] - reference_descriptors[matched]).max()
        assert difference <= DESCRIPTOR_TOLERANCE, f"descriptors differ by {difference}"
    return (frames, descriptors), (reference_frames, reference_descriptors)


# ------------------------------------------------------------------------ differential tests

@requires_libvl
@pytest.mark.parametrize("first_octave", [-1, 0, 1])
def test_gaussian_scale_space_matches_vlfeat(first_octave):
    for image in (grey_photo(PHOTOS[0]), synthetic("blobs", 97, 61)):
        space = ScaleSpace(*image.shape, first_octave, 3, None)
        reference = vl_sift_gaussian_scale_space(image, first_octave=first_octave)
        ours = list(space.octaves(image))
        assert len(ours) == len(reference)
        for (_, levels), expected in zip(ours, reference):
            assert levels.dtype == np.float32 and levels.shape == expected.shape
            np.testing.assert_allclose(levels, expected, rtol=0, atol=1e-4)


@requires_libvl
@pytest.mark.parametrize("path", PHOTOS, ids=os.path.basename)
def test_sift_matches_vlfeat_on_photos(path):
    (frames, _), _ = assert_matches_vlfeat(grey_photo(path))
    assert len(frames) > 100


@requires_libvl
@pytest.mark.parametrize("kind", ["noise", "blobs"])
@pytest.mark.parametrize("shape", [(97, 61), (61, 97), (256, 256), (33, 200), (12, 15)])
@pytest.mark.parametrize("first_octave", [-1, 0])
def test_sift_matches_vlfeat_on_synthetic_images(kind, shape, first_octave):
    assert_matches_vlfeat(synthetic(kind, *shape), first_octave=first_octave)


@requires_libvl
@pytest.mark.parametrize("parameters", [
    dict(first_octave=-1), dict(first_octave=1), dict(first_octave=-2, num_octaves=2),
    dict(levels_per_octave=1), dict(levels_per_octave=5), dict(num_octaves=2),
    dict(peak_thresh=2.0), dict(edge_thresh=3.0)], ids=str)
def test_sift_parameters_match_vlfeat(parameters):
    assert_matches_vlfeat(grey_photo(PHOTOS[1]), **parameters)


@requires_libvl
def test_keypoint_on_last_row_gets_zero_descriptor_like_vlfeat():
    """VLFeat computes no descriptor for a keypoint whose rounded centre is on the octave's last
    row; on this image (found by search) two frames are such keypoints."""
    image = np.repeat(np.repeat(synthetic("noise", 24, 24, seed=30), 2, axis=0), 2, axis=1)
    (frames, descriptors), (reference_frames, _) = assert_matches_vlfeat(image, first_octave=-1)
    on_last_row = frames[:, 1] >= image.shape[0] - 0.75   # octave -1: y_octave = 2 y >= 2 H - 1.5
    assert on_last_row.sum() == 2
    assert not descriptors[on_last_row].any()
    assert descriptors[~on_last_row].any(axis=1).all()


@requires_libvl
@pytest.mark.parametrize("path", PHOTOS[:3], ids=os.path.basename)
def test_sift_map_matches_map_of_vlfeat_frames(path):
    image = grey_photo(path)
    feature_map = sift_map(image)
    expected = sift_map_from_frames(*vl_sift_reference(image), image.shape)
    assert feature_map.shape == expected.shape == (64, 64, MAP_CHANNELS)
    assert feature_map.dtype == np.float32
    occupied = expected.any(axis=2)
    differing = np.abs(feature_map - expected).max(axis=2) > DESCRIPTOR_TOLERANCE
    assert occupied.sum() > 100
    assert differing.sum() <= (1 - MIN_MATCHED) * occupied.sum()


# ------------------------------------------------------------------------ tests without libvl

def test_sift_map_from_frames_follows_the_paper():
    cell = 4
    frames = np.array([[5.5, 9.25, 2.0, 0.5],    # keypoint A, first orientation: cell (2, 1)
                       [5.5, 9.25, 2.0, 2.5],    # keypoint A, second orientation: ignored
                       [30.0, 1.0, 3.0, 1.0],    # keypoint B: cell (0, 7)
                       [29.0, 2.5, 1.5, 4.0],    # keypoint C: also cell (0, 7), detected last: wins
                       [33.0, 2.0, 1.0, 0.0]],   # keypoint D: column 8 is off the 8-cell grid
                      dtype=np.float32)
    descriptors = np.arange(5 * 128, dtype=np.float32).reshape(5, 128)
    feature_map = sift_map_from_frames(frames, descriptors, (35, 33), cell)
    assert feature_map.shape == (8, 8, MAP_CHANNELS) and feature_map.dtype == np.float32
    np.testing.assert_array_equal(feature_map[2, 1, :128], descriptors[0])
    np.testing.assert_allclose(feature_map[2, 1, 128:],
                               [np.sin(0.5), np.cos(0.5), 1.5, 1.25, np.log(2.0)], rtol=1e-6)
    np.testing.assert_array_equal(feature_map[0, 7, :128], descriptors[3])
    np.testing.assert_allclose(feature_map[0, 7, 128:],
                               [np.sin(4.0), np.cos(4.0), 1.0, 2.5, np.log(1.5)], rtol=1e-6)
    occupied = feature_map.any(axis=2)
    assert occupied.sum() == 2 and occupied[2, 1] and occupied[0, 7]


def test_sift_outputs_and_input_conversions():
    image = grey_photo(PHOTOS[2])
    frames, descriptors = sift(image)
    assert frames.dtype == descriptors.dtype == np.float32
    assert frames.shape[1] == 4 and descriptors.shape == (len(frames), 128)
    assert (frames[:, 0] >= 0).all() and (frames[:, 0] <= image.shape[1] - 1).all()
    assert (frames[:, 1] >= 0).all() and (frames[:, 1] <= image.shape[0] - 1).all()
    assert (frames[:, 3] >= 0).all() and (frames[:, 3] <= 2 * np.pi).all()
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, atol=1e-4)
    assert (descriptors >= 0).all()

    integer_image = np.round(image).astype(np.uint8)
    for ours, expected in zip(sift(integer_image), sift(integer_image.astype(np.float32))):
        np.testing.assert_array_equal(ours, expected)
    colour = iio.imread(PHOTOS[2])
    for ours, expected in zip(sift(colour), sift(to_grey(colour.astype(np.float32)))):
        np.testing.assert_array_equal(ours, expected)
    assert sift_map(colour).shape == (64, 64, MAP_CHANNELS)


def test_sift_finds_a_blob_at_its_centre_and_scale():
    rows, columns = np.mgrid[0:96, 0:80]
    blob_sigma = 5.0
    image = 50 + 150 * np.exp(-((rows - 40.3) ** 2 + (columns - 33.6) ** 2) / (2 * blob_sigma ** 2))
    frames, _ = sift(image)
    distance = np.hypot(frames[:, 0] - 33.6, frames[:, 1] - 40.3)
    closest = frames[np.argmin(distance)]
    assert distance.min() < 0.3
    assert 0.7 * blob_sigma < closest[2] < 1.4 * blob_sigma


def test_fast_approximations_are_close_to_the_functions():
    rng = np.random.default_rng(0)
    y, x = rng.normal(size=(2, 10000)).astype(np.float32)
    assert np.abs(fast_atan2(y, x) - np.arctan2(y, x)).max() < 0.0062
    squares = rng.uniform(0, 1e4, 10000).astype(np.float32)
    np.testing.assert_allclose(fast_sqrt(squares), np.sqrt(squares), rtol=1e-5)
    arguments = np.linspace(0, 30, 1000)
    exact = np.where(arguments > 25, 0, np.exp(-arguments))
    assert np.abs(fast_expn(arguments) - exact).max() < 2e-3


@pytest.mark.parametrize("image", [
    np.zeros((0, 10)), np.zeros((1, 1)), np.zeros((1, 40)), np.zeros(10), np.zeros((4, 4, 3, 2)),
    np.zeros((8, 8, 2)), np.array([[1.0, np.nan], [0.0, 0.0]]), np.full((8, 8), np.inf),
    np.full((8, 8), "a")], ids=["empty", "one_pixel", "one_row", "1d", "4d", "two_channels",
                                "nan", "inf", "strings"])
def test_bad_images_raise_value_error(image):
    with pytest.raises(ValueError):
        sift(image)
    with pytest.raises(ValueError):
        sift_map(image)


@pytest.mark.parametrize("parameters", [
    dict(levels_per_octave=0), dict(levels_per_octave=2.5), dict(num_octaves=0),
    dict(first_octave=0.5), dict(peak_thresh=-1.0), dict(peak_thresh=np.nan), dict(peak_thresh="1"),
    dict(edge_thresh=0.0),
    dict(first_octave=5), dict(num_octaves=10)], ids=str)
def test_bad_parameters_raise_value_error(parameters):
    with pytest.raises(ValueError):
        sift(np.zeros((32, 32), dtype=np.float32), **parameters)


def test_bad_cell_size_raises_value_error():
    with pytest.raises(ValueError):
        sift_map(np.zeros((32, 32)), cell_size=0)
