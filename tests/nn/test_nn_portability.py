"""Static check that ``nn/`` calls only array-module functions that both NumPy and CuPy provide.

Every op reaches its array module as ``xp = get_array_module(...)`` (or ``np``/``numpy`` in host
code) and must stay within the common API so that one code path serves both devices. This test
parses every file of ``nn/`` (ast), collects each dotted name used on an array module — attribute
chains rooted at ``xp``/``np``/``numpy``/``cp``/``cupy``, at a direct ``get_array_module(...)``
call, or at a local variable assigned from ``get_array_module(...)``/``cupy()`` — and checks it
against the explicit allow-list below. Names that only make sense on the host (the library's
random stream, HDF5 conversion, backend detection) are allowed only in the files listed for them.
Where CuPy is importable, each allowed name is also looked up in CuPy.
"""
import ast
import os

import numpy as np
import pytest

NN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "nn")
ROOTS = {"xp", "np", "numpy", "cp", "cupy"}
MODULE_FACTORIES = {"get_array_module", "cupy"}

# Functions and constants that NumPy and CuPy both provide with the same meaning (checked below
# to exist in NumPy, and in CuPy where it is importable). Extend this list deliberately.
COMMON = {
    # creation
    "array", "asarray", "ascontiguousarray", "empty", "empty_like", "zeros", "zeros_like", "ones", "ones_like",
    "full", "full_like", "arange", "linspace", "eye",
    # shape and joining
    "reshape", "transpose", "moveaxis", "swapaxes", "expand_dims", "squeeze", "broadcast_to", "broadcast_arrays",
    "concatenate", "stack", "split", "pad", "flip", "roll", "tile", "repeat",
    # indexing (cupy.nonzero, as numpy.nonzero, returns one index array per axis); bincount with
    # weights is the scatter-add of gradients at repeated indices
    "nonzero", "take_along_axis", "bincount",
    # elementwise math
    "abs", "absolute", "sign", "sqrt", "square", "exp", "log", "log1p", "expm1", "power", "maximum", "minimum",
    "clip", "where", "isfinite", "isnan", "isinf", "logical_and", "logical_or", "logical_not", "floor", "ceil",
    "add", "subtract", "multiply", "divide", "negative", "tanh",
    # reductions and linear algebra
    "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "prod", "cumsum", "all", "any", "dot",
    "matmul", "tensordot", "allclose", "array_equal",
    # dtypes and constants
    "float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool_", "dtype", "inf", "nan", "pi",
    "ndarray", "result_type", "can_cast", "finfo",
}

# Host-only names: allowed only in the files that deliberately work on NumPy arrays on the host.
HOST_ONLY = {
    "random.default_rng": {"random.py", "gradcheck.py"},   # the library's one seedable stream
    "random.Generator": {"random.py"},
    "cuda.runtime.getDeviceCount": {"backend.py"},          # probing for a GPU
    # the conv engine's index tables for gathering (built once per shape on the host, then copied over)
    "ix_": {"gather.py"}, "flatnonzero": {"gather.py"}, "argsort": {"gather.py"},
}
# CuPy-only names: allowed only where the GPU kernel sits beside its portable twin.
GPU_ONLY = {"fuse": {"fused.py"}}

# Never allowed, with the reason (CuPy lacks them, or they silently run on the host).
FORBIDDEN = {
    "lib": "numpy.lib (stride_tricks etc.) has no CuPy equivalent",
    "add.at": "ufunc.at is NumPy-only in older CuPy (use cupyx.scatter_add or a loop over offsets)",
    "at": "ufunc.at is NumPy-only in older CuPy",
    "reduceat": "ufunc.reduceat is not in CuPy",
    "vectorize": "runs Python per element; CuPy's vectorize is a different thing",
    "frompyfunc": "not in CuPy",
    "apply_along_axis": "Python loop on the host",
    "nditer": "not in CuPy",
    "einsum": "use matmul/tensordot: einsum's optimize= path search is NumPy-only",
    "put_along_axis": "missing from older CuPy",
    "matrix": "not in CuPy",
    "asmatrix": "not in CuPy",
    "char": "not in CuPy",
    "ma": "masked arrays are not in CuPy",
    "save": "file I/O: convert to NumPy on the host first",
    "load": "file I/O: convert to NumPy on the host first",
}


def _dotted(node):
    """'a.b.c' for Attribute(Attribute(Name a, b), c) plus the root node; (None, None) otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return list(reversed(parts)), node


def _module_vars(tree):
    """Local names assigned from get_array_module(...) or cupy() anywhere in the file."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_module_call(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _is_module_call(node):
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in MODULE_FACTORIES


def array_module_uses(path):
    """[(dotted name, line, keyword names if called)] for every array-module attribute chain in a file."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    roots = ROOTS | _module_vars(tree)
    calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue  # only the outermost attribute of a chain
        parts, root = _dotted(node)
        if (isinstance(root, ast.Name) and root.id in roots) or _is_module_call(root):
            call = calls.get(id(node))
            keywords = [k.arg for k in call.keywords] if call is not None else []
            uses.append((".".join(parts), node.lineno, keywords))
    return uses


def nn_files():
    for folder, _, files in os.walk(NN):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


ALL_USES = [(os.path.relpath(path, NN), name, line, kw) for path in nn_files()
            for name, line, kw in array_module_uses(path)]


def test_scanner_finds_the_array_module_calls():
    """Guards the scanner itself: known uses in the sources must be found."""
    found = {(os.path.basename(f), name) for f, name, _, _ in ALL_USES}
    for expected in [("gemm.py", "empty"), ("bands.py", "zeros"), ("gemm.py", "ascontiguousarray"),
                     ("pooling.py", "full"), ("pooling.py", "where"), ("fused.py", "where"),
                     ("arithmetic.py", "sign"), ("shape.py", "concatenate"), ("tensor.py", "ones_like")]:
        assert expected in found, f"scanner missed {expected}; found {sorted(found)}"


def test_scanner_flags_forbidden_code(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("import numpy as np\n"
                      "def f(x):\n"
                      "    xp = get_array_module(x)\n"
                      "    xp.add.at(x, [0], 1)\n"
                      "    np.lib.stride_tricks.as_strided(x)\n"
                      "    return get_array_module(x).einsum('ij->i', x, optimize=True)\n")
    names = {(name, tuple(kw)) for name, _, kw in array_module_uses(str(source))}
    assert ("add.at", ()) in names and ("lib.stride_tricks.as_strided", ()) in names
    assert ("einsum", ("optimize",)) in names
    assert all(_violation(os.path.basename(str(source)), n, list(kw)) for n, kw in names)


def _violation(filename, name, keywords):
    """None if allowed, else the reason."""
    head = name.split(".")[0]
    for bad, reason in FORBIDDEN.items():
        if name == bad or name.startswith(bad + ".") or head == bad or name.endswith("." + bad):
            return f"forbidden: {reason}"
    if "optimize" in keywords:
        return "optimize= is NumPy-only"
    for kind, names in (("host-only", HOST_ONLY), ("GPU-only", GPU_ONLY)):
        if name in names:
            allowed = names[name]
            return None if os.path.basename(filename) in allowed else f"{kind} name, allowed only in {sorted(allowed)}"
    if name not in COMMON:
        return "not in the NumPy/CuPy common allow-list (add it there only if CuPy has it with the same meaning)"
    return None


def test_nn_uses_only_the_common_numpy_cupy_api():
    problems = [f"nn/{f}:{line}: {name}: {reason}" for f, name, line, kw in ALL_USES
                if (reason := _violation(f, name, kw))]
    assert not problems, "\n".join(problems)


def test_allow_list_exists_in_numpy():
    missing = sorted(name for name in COMMON | set(HOST_ONLY) - {"cuda.runtime.getDeviceCount"}
                     if not _resolve(np, name))
    assert not missing, missing


def _resolve(module, dotted):
    obj = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def test_used_names_exist_in_cupy():
    cupy = pytest.importorskip("cupy", reason="CuPy/GPU not available: cupy name check skipped")
    used = {name for _, name, _, _ in ALL_USES}
    missing = sorted(name for name in used | COMMON if not _resolve(cupy, name))
    assert not missing, f"names missing from cupy {cupy.__version__}: {missing}"


def test_tensor_imports_no_op():
    """No import circle: nn/tensor.py knows nothing of nn.functional, which installs the operators."""
    tree = ast.parse(open(os.path.join(NN, "tensor.py")).read())
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if "functional" in name], imported


def test_inference_does_not_import_training():
    """Reconstructing with a trained decoder needs nothing of the training code."""
    models = os.path.join(os.path.dirname(NN), "models")
    tree = ast.parse(open(os.path.join(models, "evaluation", "inference.py")).read())
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert "train" not in imported and "models.training.train" not in imported, imported
