"""Photos as people have them: every hostile or unusual file is made here with Pillow and NumPy, and
read by the one reader every command uses (models.data.images.read_image), in time and, where a
file could take the machine's memory, in a child process under a memory limit."""
import glob
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from models.data.images import ImageError, find_images, header_problem, is_greyscale, read_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))
MEMORY = 2 << 30  # address space of a child command: Python, NumPy and SciPy take about 1 GiB of it


def run_cli(args, memory=MEMORY, timeout=120):
    """``cli.py ARGS`` in a child process with at most ``memory`` bytes of address space."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    start = time.time()
    result = subprocess.run([sys.executable, os.path.join(ROOT, "cli.py")] + args, capture_output=True,
                            preexec_fn=limit, timeout=timeout, cwd=ROOT)
    return result, time.time() - start


def upright_test_image(height=48, width=64):
    """An image whose every turn and mirror differs: random colours with a red top-left corner."""
    image = np.random.default_rng(0).integers(0, 200, (height, width, 3), dtype=np.uint8)
    image[:8, :8] = (255, 0, 0)
    return image


# --- EXIF orientation --------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_as_pillow_does(orientation, tmp_path):
    stored = Image.fromarray(upright_test_image())
    exif = stored.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"  # lossless, so the comparison is exact
    stored.save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    start = time.time()
    assert np.array_equal(read_image(str(path)), expected)
    assert time.time() - start < 5


def test_a_phone_photo_held_upright_is_read_upright(tmp_path):
    """A phone stores a portrait photo as landscape pixels with orientation 6 (turn 90 degrees clockwise)."""
    rows, cols = np.mgrid[0:64, 0:48]
    upright = np.dstack([rows * 3, cols * 4, np.full_like(rows, 60)]).astype(np.uint8)  # smooth: JPEG keeps it
    upright[:8, :8] = (255, 0, 0)  # portrait, red corner top left
    stored = np.rot90(upright, 1)  # what the sensor wrote: the scene turned anticlockwise
    image = Image.fromarray(np.ascontiguousarray(stored))
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif, quality=98, subsampling=0)
    photo = read_image(str(path))
    assert photo.shape == (64, 48, 3)
    assert photo[:8, :8].reshape(-1, 3).mean(axis=0) @ (1, -1, -1) > 200  # red stays top left
    assert np.abs(photo.astype(int) - upright).mean() < 4


def test_a_broken_exif_block_leaves_the_pixels_as_stored(tmp_path):
    path = tmp_path / "broken_exif.jpg"
    Image.fromarray(upright_test_image()).save(path, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff", quality=98)
    assert read_image(str(path)).shape == (48, 64, 3)


# --- greyscale, palette, alpha, 16 bits, CMYK ---------------------------------------------------

def grey_ramp(height=48, width=64):
    return np.tile(np.linspace(0, 255, width).round().astype(np.uint8), (height, 1))


def png_48_bit(path, rgb16):
    """A 16-bit-per-channel RGB PNG written by hand (Pillow writes none)."""
    height, width, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[r].astype(">u2").tobytes() for r in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_greyscale_palette_and_16_bit_photos_read_as_viewers_show_them(tmp_path):
    ramp = grey_ramp()
    Image.fromarray(ramp).save(tmp_path / "grey.jpg", quality=100)
    Image.fromarray(ramp).save(tmp_path / "grey.png")
    Image.fromarray(ramp.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    Image.fromarray(ramp > 127).save(tmp_path / "bilevel.png")
    colour = upright_test_image()
    indexed = Image.fromarray(colour).quantize(256)
    indexed.save(tmp_path / "palette.png")
    Image.fromarray(colour).convert("L").convert("P").save(tmp_path / "grey_palette.png")
    png_48_bit(tmp_path / "rgb48.png", colour.astype(np.uint16) * 257)
    for name in ("grey.png", "grey16.png"):
        photo = read_image(str(tmp_path / name))
        assert photo.shape == (48, 64, 3) and is_greyscale(photo) and np.array_equal(photo[:, :, 0], ramp), name
    grey_jpeg = read_image(str(tmp_path / "grey.jpg"))
    assert is_greyscale(grey_jpeg) and np.abs(grey_jpeg[:, :, 0].astype(int) - ramp).max() <= 2
    assert np.array_equal(read_image(str(tmp_path / "bilevel.png"))[:, :, 1], np.where(ramp > 127, 255, 0))
    palette = read_image(str(tmp_path / "palette.png"))
    assert not is_greyscale(palette) and np.array_equal(palette, np.asarray(indexed.convert("RGB")))
    assert is_greyscale(read_image(str(tmp_path / "grey_palette.png")))
    assert np.array_equal(read_image(str(tmp_path / "rgb48.png")), colour)


def test_transparent_pixels_are_composited_on_white(tmp_path):
    colour = upright_test_image()
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:, 32:] = 255
    alpha[:, 16:32] = 128
    Image.fromarray(np.dstack([colour, alpha])).save(tmp_path / "rgba.png")
    Image.fromarray(np.dstack([grey_ramp(), alpha]), "LA").save(tmp_path / "la.png")
    indexed = Image.fromarray(colour).quantize(255)
    indexed.info["transparency"] = int(np.asarray(indexed)[0, 0])
    indexed.save(tmp_path / "palette_transparent.png", transparency=int(np.asarray(indexed)[0, 0]))
    rgba = read_image(str(tmp_path / "rgba.png"))
    assert rgba.shape == (48, 64, 3)
    assert (rgba[:, :16] == 255).all() and np.array_equal(rgba[:, 32:], colour[:, 32:])
    half = colour[:, 16:32] * (128 / 255) + 255 * (127 / 255)
    assert np.abs(rgba[:, 16:32] - half).max() <= 1
    la = read_image(str(tmp_path / "la.png"))
    assert is_greyscale(la) and (la[:, :16] == 255).all()
    assert (read_image(str(tmp_path / "palette_transparent.png"))[0, 0] == 255).all()


def test_a_cmyk_jpeg_stays_in_its_true_colours(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("RGB", (64, 48), (200, 40, 30)).convert("CMYK").save(path, quality=95)
    assert np.abs(read_image(str(path)).reshape(-1, 3).mean(axis=0) - (200, 40, 30)).max() < 12


def test_features_of_a_greyscale_photo_are_those_of_its_grey_image(tmp_path):
    import h5py
    photo = np.asarray(Image.open(SAMPLES[0]).convert("L"))
    Image.fromarray(photo).save(tmp_path / "grey.png")
    Image.fromarray(np.repeat(photo[:, :, None], 3, axis=2)).save(tmp_path / "rgb.png")
    for name in ("grey", "rgb"):
        result, seconds = run_cli(["features", "hog", str(tmp_path / f"{name}.png"), "--out", str(tmp_path / f"{name}.h5")])
        assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr[-2000:]
        assert seconds < 60
    with h5py.File(tmp_path / "grey.h5") as g, h5py.File(tmp_path / "rgb.h5") as c:
        assert np.array_equal(g["features"][()], c["features"][()])


def test_reconstruct_says_in_one_line_that_a_grey_photo_is_painted_in_colour(tmp_path):
    Image.open(SAMPLES[0]).convert("L").save(tmp_path / "grey.jpg")
    result, _ = run_cli(["reconstruct", "hog", str(tmp_path / "grey.jpg"), SAMPLES[1], "--out", str(tmp_path / "r.png")])
    assert result.returncode == 0, result.stderr[-2000:]
    notes = [line for line in result.stderr.decode().splitlines() if "greyscale" in line]
    assert notes == ["note: grey.jpg: greyscale; the decoder paints colour from a grey input"]


def test_training_keeps_greyscale_photos(tmp_path):
    from models.training.train import TrainConfig, train
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, path in enumerate(SAMPLES[:4]):
        image = Image.open(path)
        (image.convert("L") if i % 2 else image).save(folder / f"p{i}.jpg")
    summary = train(TrainConfig(feature="hog", data=str(folder), out=str(tmp_path / "run"), iters=1, batch_size=2,
                                width=1 / 16, image_size=64, workers=1, crops=0), log=lambda *_: None)
    assert summary["skipped"] == {"train": 0, "val": 0}
    assert summary["photos"]["train"] + summary["photos"]["val"] == 4


# --- multi-frame files: only the first frame is decoded -------------------------------------------

def many_frame_gif(path, frames, side):
    """A GIF of ``frames`` frames of side x side pixels, each one colour (LZW packs it into a few KB):
    one frame made by Pillow, its image block repeated."""
    first = tmp = path.with_suffix(".one.gif")
    Image.new("P", (side, side), 1).save(tmp)
    data = first.read_bytes()
    os.remove(tmp)
    start = 13 + 3 * 2 ** ((data[10] & 7) + 1)  # header, screen descriptor, global colour table
    while data[start] == 0x21:  # extension blocks: label, then sub-blocks up to a zero length
        start += 2
        while data[start]:
            start += data[start] + 1
        start += 1
    assert data[start] == 0x2C and data[-1] == 0x3B
    path.write_bytes(data[:start] + data[start:-1] * frames + b";")


def test_a_gif_of_401_large_frames_named_jpg_is_read_as_its_first_frame_in_little_memory(tmp_path):
    path = tmp_path / "animation.jpg"
    many_frame_gif(path, 401, 2000)
    assert os.path.getsize(path) < 3 << 20
    with Image.open(path) as image:
        assert image.n_frames == 401 and image.size == (2000, 2000)
    result, seconds = run_cli(["features", "sift", str(path), "--out", str(tmp_path / "f.h5")])
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr[-2000:]
    assert seconds < 60


@pytest.mark.parametrize("kind", ["apng", "tiff"])
def test_animated_png_and_multi_page_tiff_decode_their_first_frame_only(kind, tmp_path):
    path = tmp_path / ("animation.png" if kind == "apng" else "pages.tiff")
    frames = [Image.new("L", (2000, 2000), 10 + (i % 2)) for i in range(2)]
    first = Image.new("L", (2000, 2000), 200)
    if kind == "apng":
        first.save(path, save_all=True, append_images=frames * 60)
    else:
        first.save(path, save_all=True, append_images=frames * 60, compression="tiff_deflate")
    script = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({MEMORY}, {MEMORY}))\n"
              "from models.data.images import read_image\n"
              f"photo = read_image({str(path)!r})\n"
              "print(photo.shape, int(photo.min()), int(photo.max()))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["(2000,", "2000,", "3)", "200", "200"]


def test_a_photo_too_large_is_refused_from_its_header_with_the_numbers(tmp_path):
    path = tmp_path / "wide.gif"
    many_frame_gif(path, 1, 7000)  # 49 megapixels declared, a few KB stored
    start = time.time()
    with pytest.raises(ImageError, match="7000x7000 pixels, more than the 40-megapixel limit"):
        read_image(str(path))
    assert time.time() - start < 2


# --- names and special files -------------------------------------------------------------------

def test_a_photo_whose_name_is_not_utf8_is_trained_on_and_named_in_messages(tmp_path):
    from models.training.train import TrainConfig, train
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in SAMPLES[:3]:
        with open(path, "rb") as f:
            (folder / os.path.basename(path)).write_bytes(f.read())
    with open(SAMPLES[3], "rb") as f:
        data = f.read()
    with open(os.path.join(os.fsencode(folder), b"\xff\xfe.jpg"), "wb") as f:
        f.write(data)
    with open(os.path.join(os.fsencode(folder), b"broken\xff.jpg"), "wb") as f:
        f.write(b"not a photo")
    assert any("\udcff" in name for name in os.listdir(folder))
    lines = []
    summary = train(TrainConfig(feature="hog", data=str(folder), out=str(tmp_path / "run"), iters=1, batch_size=2,
                                width=1 / 16, image_size=64, workers=1, crops=0), log=lambda *a: lines.append(str(a[0])))
    assert summary["photos"]["train"] + summary["photos"]["val"] == 4
    assert any("broken\\xff.jpg: unreadable image" in line for line in lines), lines
    result, _ = run_cli(["features", "hog", os.fsdecode(os.path.join(os.fsencode(folder), b"\xff\xfe.jpg")),
                         "--out", str(tmp_path / "f.h5")])
    assert result.returncode == 0, result.stderr[-2000:]
    result, _ = run_cli(["features", "hog", os.fsdecode(os.path.join(os.fsencode(folder), b"broken\xff.jpg")),
                         "--out", str(tmp_path / "f.h5")])
    assert result.returncode == 1 and b"broken\\xff.jpg: unreadable image" in result.stderr
    assert b"Traceback" not in result.stderr


def special_files(tmp_path):
    """A FIFO, a socket, a character device (through a link), a folder and a file without read
    permission, each named like a photo."""
    os.mkfifo(tmp_path / "pipe.jpg")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "socket.jpg"))
    os.symlink("/dev/zero", tmp_path / "zero.jpg")
    (tmp_path / "folder.jpg").mkdir()
    return server, {"pipe.jpg": "a FIFO (named pipe)", "socket.jpg": "a socket", "zero.jpg": "a character device",
                    "folder.jpg": "a folder"}


def test_special_files_are_refused_by_every_reader_at_once(tmp_path):
    server, kinds = special_files(tmp_path)
    try:
        with open(SAMPLES[0], "rb") as f:
            (tmp_path / "good.jpg").write_bytes(f.read())
        assert find_images(str(tmp_path)) == [str(tmp_path / "good.jpg")]
        for name, kind in kinds.items():
            path = str(tmp_path / name)
            start = time.time()
            with pytest.raises(ImageError, match=re.escape(f"{name}: {kind}, not a regular file")):
                read_image(path)
            assert header_problem(path).endswith(f"{name}: {kind}, not a regular file; pass photo files (JPEG or PNG)")
            result, _ = run_cli(["features", "hog", path, "--out", str(tmp_path / "f.h5")], timeout=60)
            assert result.returncode == 1 and f"{name}: {kind}".encode() in result.stderr
            assert b"Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
            assert time.time() - start < 60
        with pytest.raises(ImageError, match="missing.jpg: no such file"):
            read_image(str(tmp_path / "missing.jpg"))
    finally:
        server.close()
