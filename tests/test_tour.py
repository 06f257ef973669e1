"""The guided tour (docs/tour/) runs: each script exits 0, prints what it shows, and writes its figures."""
import os
import subprocess
import sys

import imageio.v3 as iio
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOUR = os.path.join(ROOT, "docs", "tour")

# script: (lines it must print, figures it must write)
EXPECTED = {
    "01_autodiff.py": (["largest difference between backward and finite differences", "graph drawn:"], ["graph.png"]),
    "02_function.py": (["Softplus: gradcheck passes", "WrongSoftplus: worst relative error",
                        "gradcheck raised AssertionError: gradcheck failed"], []),
    "03_convolution.py": (["W @ im2col(x) equals F.conv2d(x, w): largest difference",
                           "<x, conv_transpose2d(y, w)> ="], ["im2col.png"]),
    "04_training.py": (["the resumed run's losses equal the uninterrupted run's exactly: True"],
                       ["training.png", "fit.png", "checkpoint.h5"]),
    "05_inside_decoder.py": (["hog.h5: 5.20 M parameters, 64 px", " upconvJ6     (3, 64, 64) "],
                             ["activations.png", "gradients.png"]),
    "06_what_features_keep.py": (["hog (64 px, features (31, 8, 8)): normalised error", "sift (128 px",
                                  "lbp (128 px"], ["features.png"]),
    "07_gpu.py": (["model on "], []),
}


def run(script, out, env=None):
    result = subprocess.run([sys.executable, os.path.join(TOUR, script), str(out)], capture_output=True, text=True,
                            cwd=ROOT, env=env or os.environ, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_tour_script_runs(script, tmp_path):
    lines, figures = EXPECTED[script]
    output = run(script, tmp_path)
    for line in lines:
        assert line in output, output
    for name in figures:
        path = tmp_path / name
        assert path.exists(), f"{script} did not write {name}"
        if name.endswith(".png"):
            height, width, _ = iio.imread(path).shape
            assert height >= 150 and width >= 300, (name, height, width)


def test_every_tour_script_is_listed_and_tested():
    scripts = sorted(f for f in os.listdir(TOUR) if f[:2].isdigit() and f.endswith(".py"))
    assert scripts == sorted(EXPECTED)
    with open(os.path.join(TOUR, "README.md")) as f:
        readme = f.read()
    assert all(f"({s})" in readme for s in scripts)


def test_the_graph_is_printed_as_dot_text_without_graphviz(tmp_path):
    output = run("01_autodiff.py", tmp_path, env=dict(os.environ, PATH=str(tmp_path)))  # no dot on this PATH
    assert output.startswith("digraph graph_of_tensor {") and "apt-get install graphviz" in output
    assert not (tmp_path / "graph.png").exists()


def test_the_gpu_script_runs_the_device_path_or_says_why_not(tmp_path):
    """Under the suite, cupy is a real GPU's or the strict stand-in's (tests/conftest.py); without
    the stand-in on the path and no CuPy, the script says there is no GPU and runs on the CPU."""
    import cupy
    output = run("07_gpu.py", tmp_path)
    assert "model on gpu: first parameter cupy.ndarray" in output, output
    if "stand-in" in cupy.__version__:
        assert "the strict NumPy-backed stand-in" in output and "kernel launches" in output
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and "strict_device" not in p]
    probe = subprocess.run([sys.executable, "-c", "import cupy"], capture_output=True,
                           env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)))
    if probe.returncode == 0:
        pytest.skip("a real CuPy is installed: the no-GPU message cannot be shown")
    output = run("07_gpu.py", tmp_path, env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)))
    assert "No GPU here (the GPU needs CuPy" in output and "running on the CPU instead" in output
    assert "model on cpu" in output
