"""Benchmark: import a full-size CaffeNet .caffemodel (~233 MB) to HDF5; time and peak memory.

    python bench/bench_import.py [--keep DIR]

Writes a caffemodel with random weights and CaffeNet's full shapes (written here with a few lines
of protobuf wire format: NetParameter.layer -> LayerParameter{name, type, blobs} -> BlobProto
{shape, packed data}), then runs ``import_weights(caffemodel, out=h5)`` in a fresh Python process. That process imports
the modules, resets the peak counter (bench/memory.py) and, after the import, reads the peak: the
difference from the resident set before is the memory the import itself needed (the pages of the
mapped file it touched included), compared with 2x the file size.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAFFENET_SHAPES = [("conv1", "Convolution", (96, 3, 11, 11)), ("conv2", "Convolution", (256, 48, 5, 5)),
                   ("conv3", "Convolution", (384, 256, 3, 3)), ("conv4", "Convolution", (384, 192, 3, 3)),
                   ("conv5", "Convolution", (256, 192, 3, 3)), ("fc6", "InnerProduct", (4096, 9216)),
                   ("fc7", "InnerProduct", (4096, 4096)), ("fc8", "InnerProduct", (1000, 4096))]
LEN, VARINT = 2, 0
MODULES = "import numpy, h5py, weights_import, nn.serialization"
CHILD = """
import json, time
{modules}
from bench.memory import reset_peak, peak_since_reset  # the repository is on PYTHONPATH (run_child)

before = reset_peak()
start = time.perf_counter()
{work}
print(json.dumps({{"seconds": time.perf_counter() - start, "rss_before": before, "peak": peak_since_reset()}}))
"""


def varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number, payload):
    return varint(number << 3 | LEN) + varint(len(payload)) + payload


def blob(array):
    dims = b"".join(varint(d) for d in array.shape)
    return field(7, field(1, dims)) + field(5, array.astype("<f4").tobytes())


def write_caffenet(path, rng):
    with open(path, "wb") as f:
        f.write(field(1, b"CaffeNet"))
        for name, layer_type, shape in CAFFENET_SHAPES:
            weight = (rng.standard_normal(shape, dtype=np.float32) * 0.01)
            bias = rng.standard_normal(shape[0], dtype=np.float32)
            layer = field(1, name.encode()) + field(2, layer_type.encode()) + field(7, blob(weight)) \
                + field(7, blob(bias))
            f.write(field(100, layer))


def run_child(work):
    code = CHILD.format(modules=MODULES, work=work)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": ROOT})
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="folder to write the files to (kept); default: a temporary folder")
    args = parser.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="bench_import_")
    os.makedirs(folder, exist_ok=True)
    caffemodel, h5 = os.path.join(folder, "caffenet_full.caffemodel"), os.path.join(folder, "caffenet_full.h5")
    started = time.perf_counter()
    write_caffenet(caffemodel, np.random.default_rng(0))
    size = os.path.getsize(caffemodel)
    print(f"wrote {caffemodel}: {size / 2**20:.1f} MiB in {time.perf_counter() - started:.1f} s")
    imported = run_child(f"from weights_import import import_weights\n"
                         f"import_weights({caffemodel!r}, out={h5!r})")
    net = imported["peak"] - imported["rss_before"]
    print(f"import to HDF5: {imported['seconds']:.2f} s ({size / 2**20 / imported['seconds']:.0f} MiB/s)")
    print(f"resident memory: {imported['rss_before'] / 2**20:.0f} MiB after importing the modules, "
          f"peak {imported['peak'] / 2**20:.0f} MiB during the import: the import needed {net / 2**20:.0f} MiB "
          f"= {net / size:.2f}x the file (limit 2x: {'ok' if net < 2 * size else 'EXCEEDED'})")
    print(f"HDF5 file: {os.path.getsize(h5) / 2**20:.1f} MiB")
    if not args.keep:
        for path in (caffemodel, h5):
            os.remove(path)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
