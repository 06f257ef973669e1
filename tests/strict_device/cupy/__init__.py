"""A strict stand-in for CuPy, backed by NumPy: the project's GPU code paths, run without a GPU.

Where no real CuPy works, ``tests/conftest.py`` puts ``tests/strict_device`` first on the import
path, so ``import cupy`` finds this module; the GPU test variants and every ``--device gpu`` /
``FEATINV_DEVICE=gpu`` command in ``tests/cli/test_device_paths.py`` then run on it. It has CuPy's
surface for what the project calls, and CuPy's refusals:

* ``numpy.asarray(a)`` (``__array__``, and the array interfaces) raises TypeError: a device array
  reaches the host only through ``a.get()``, ``cupy.asnumpy(a)`` or ``a.item()``;
* a NumPy array as an operand (``a + host``, ``cupy.maximum(a, host)``), as an index, or as the
  value of an assignment (``a[...] = host``) raises TypeError; only ``cupy.asarray`` /
  ``cupy.array`` copy host data to the device. NumPy and Python scalars are fine, as in CuPy.

It also counts what a GPU would pay for (read with :func:`counts`, zeroed by :func:`reset_counts`):

* ``launches``: kernel launches, one per operation that computes or copies (an operator, a
  function, a method, an advanced index, an assignment, a fused function); views (reshape,
  transpose, basic slicing) and ``empty`` launch nothing;
* ``syncs``: the host waiting for the device: ``get``, ``item``, ``float``/``int``/``bool`` of an
  array, ``asnumpy``, a boolean-mask index or assignment (its size depends on the data), and
  explicit ``synchronize`` calls;
* ``host_to_device``: copies made by ``asarray``/``array`` from host data.

This is a test double, not a GPU: no streams run concurrently and nothing is faster.
"""
import functools
import os
import sys
import threading

import numpy

__version__ = "0.0-strict-stand-in"

_COUNTS = {"launches": 0, "syncs": 0, "host_to_device": 0}
_FUSING = threading.local()


def counts():
    """A copy of the counters: launches, syncs, host_to_device."""
    return dict(_COUNTS)


def reset_counts():
    for key in _COUNTS:
        _COUNTS[key] = 0


def _count(kind, n=1):
    if not getattr(_FUSING, "depth", 0):
        _COUNTS[kind] += n


HOST_OPERAND = ("Unsupported type {} : a host (NumPy) array was given to a device operation; "
                "copy it with cupy.asarray() first")
IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
            "a NumPy array explicitly.")


def _unwrap(value):
    """Stand-in arrays -> their NumPy arrays; host arrays refused; containers walked."""
    if isinstance(value, ndarray):
        return value._host
    if isinstance(value, numpy.ndarray):
        raise TypeError(HOST_OPERAND.format(type(value)))
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    return value


def _wrap(value):
    if isinstance(value, numpy.ndarray):
        return ndarray(value)
    if isinstance(value, numpy.generic) and not isinstance(value, (numpy.str_, numpy.bytes_)):
        return ndarray(numpy.asarray(value))  # CuPy's reductions give 0-d arrays, not scalars
    if isinstance(value, (list, tuple)) and any(isinstance(v, numpy.ndarray) for v in value):
        return type(value)(_wrap(v) for v in value)
    return value


def _arrays(values):
    found = []
    for v in values:
        if isinstance(v, numpy.ndarray):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            found.extend(_arrays(v))
    return found


def _launches(result, inputs):
    """One launch unless the result is a view of an input (or no array at all)."""
    results = _arrays([result]) if isinstance(result, (list, tuple)) else (
        [result] if isinstance(result, numpy.ndarray) else [])
    if result is None:
        return 1  # an in-place method (fill) or a function writing into out=
    if not results:
        return 1 if isinstance(result, numpy.generic) else 0
    return 0 if all(any(numpy.may_share_memory(r, a) for a in inputs) for r in results) else 1


def _call(function, args, kwargs, owner=None):
    """``function`` (a NumPy function, or a method of the NumPy array ``owner``) on unwrapped
    arguments, counted, its result wrapped."""
    host_args, host_kwargs = _unwrap(list(args)), {k: _unwrap(v) for k, v in kwargs.items()}
    result = function(*host_args, **host_kwargs)
    inputs = _arrays(host_args) + _arrays(list(host_kwargs.values())) + ([owner] if owner is not None else [])
    if "out" in host_kwargs:
        _count("launches")
    else:
        _count("launches", _launches(result, inputs))
    return _wrap(result)


def _is_mask(key):
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, ndarray) and k.dtype == numpy.bool_ for k in keys)


def _binary(name):
    def method(self, other):
        result = getattr(self._host, name)(_unwrap(other))
        if result is NotImplemented:
            return result
        _count("launches")
        return _wrap(result)
    method.__name__ = name
    return method


def _inplace(name):
    def method(self, other):
        getattr(self._host, name)(_unwrap(other))
        _count("launches")
        return self
    method.__name__ = name
    return method


def _unary(name):
    def method(self):
        _count("launches")
        return _wrap(getattr(self._host, name)())
    method.__name__ = name
    return method


def _sync_scalar(convert):
    def method(self):
        _count("syncs")
        return convert(self._host)
    return method


class _Pointer:
    """``array.data``: its memory; ``.ptr`` the raw address (of contiguous arrays only)."""

    def __init__(self, host):
        self._host = host

    @property
    def ptr(self):
        if not self._host.flags.c_contiguous:
            raise ValueError("strict stand-in: a raw pointer of a non-contiguous array")
        return self._host.ctypes.data


class ndarray:
    """A device array: a NumPy array that refuses to meet host arrays."""

    __slots__ = ("_host",)
    __array_ufunc__ = None  # NumPy's operators defer to ours, which refuse host operands
    __array_priority__ = 1000

    def __init__(self, host):
        self._host = host

    # the host boundary
    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT)

    def get(self, stream=None, out=None):
        _count("syncs")
        if out is not None:
            out[...] = self._host
            return out
        return self._host.copy()

    def item(self):
        _count("syncs")
        return self._host.item()

    def tolist(self):
        _count("syncs")
        return self._host.tolist()

    __float__ = _sync_scalar(float)
    __int__ = _sync_scalar(int)
    __bool__ = _sync_scalar(bool)
    __complex__ = _sync_scalar(complex)

    def __repr__(self):
        return f"strict-cupy {self._host!r}"

    # shape and type
    shape = property(lambda self: self._host.shape)
    dtype = property(lambda self: self._host.dtype)
    ndim = property(lambda self: self._host.ndim)
    size = property(lambda self: self._host.size)
    itemsize = property(lambda self: self._host.itemsize)
    nbytes = property(lambda self: self._host.nbytes)
    strides = property(lambda self: self._host.strides)
    flags = property(lambda self: self._host.flags)
    T = property(lambda self: ndarray(self._host.T))
    data = property(lambda self: _Pointer(self._host))  # device memory, as a raw pointer for NCCL
    device = property(lambda self: cuda.Device(0))

    def __len__(self):
        return len(self._host)

    def __iter__(self):
        return (_wrap(row) for row in self._host)

    # indexing
    def __getitem__(self, key):
        if _is_mask(key):
            _count("syncs")
        host_key = _unwrap(key)
        result = self._host[host_key]
        _count("launches", _launches(result, [self._host]))
        return _wrap(result)

    def __setitem__(self, key, value):
        if _is_mask(key):
            _count("syncs")
        self._host[_unwrap(key)] = _unwrap(value)
        _count("launches")

    # every other method and attribute of numpy.ndarray, with the same refusals
    def __getattr__(self, name):
        if name.startswith("__"):  # never the array interfaces: they would let NumPy in
            raise AttributeError(name)
        value = getattr(self._host, name)
        if callable(value):
            return lambda *args, **kwargs: _call(value, args, kwargs, self._host)
        return _wrap(value)


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift"):
    setattr(ndarray, f"__{_name}__", _binary(f"__{_name}__"))
    setattr(ndarray, f"__r{_name}__", _binary(f"__r{_name}__"))
    setattr(ndarray, f"__i{_name}__", _inplace(f"__i{_name}__"))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_name}__", _binary(f"__{_name}__"))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", _unary(f"__{_name}__"))
ndarray.__hash__ = None


# --- the module's functions -------------------------------------------------------------------

def asarray(a, dtype=None, order=None):
    """To the device: host data is copied (counted), a device array passes through."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    _count("host_to_device")
    return ndarray(numpy.array(a, dtype=dtype, order=order or "K"))


def array(a, dtype=None, copy=True, order="K"):
    if isinstance(a, ndarray):
        return a.astype(dtype or a.dtype, copy=copy)
    _count("host_to_device")
    return ndarray(numpy.array(a, dtype=dtype, order=order))


def asnumpy(a, stream=None):
    return a.get() if isinstance(a, ndarray) else numpy.asarray(a)


def get_array_module(*args):
    import sys
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else numpy


def empty(shape, dtype=float, order="C"):
    return ndarray(numpy.empty(shape, dtype, order))  # an allocation, no kernel


def empty_like(a, dtype=None, order="K", shape=None):
    return ndarray(numpy.empty_like(_unwrap(a), dtype=dtype, order=order, shape=shape))


def fuse(*args, **kwargs):
    """``cupy.fuse``: the function runs on the arrays as written, and counts as one launch."""
    def decorate(function):
        @functools.wraps(function)
        def fused(*call_args):
            _FUSING.depth = getattr(_FUSING, "depth", 0) + 1
            try:
                result = function(*call_args)
            finally:
                _FUSING.depth -= 1
            _count("launches")
            return result
        return fused
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_POOL = _MemoryPool()


def get_default_memory_pool():
    return _POOL


class _Stream:
    """A CUDA stream: work is synchronous here, so waiting is only counted."""

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.null = null
        self.ptr = 0 if null else id(self)

    def synchronize(self):
        _count("syncs")

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Device:
    def __init__(self, device=0):
        self.id = device

    def use(self):
        return self

    def synchronize(self):
        _count("syncs")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def runtimeGetVersion():
        return 0

    @staticmethod
    def getDeviceProperties(device):
        return {"name": b"strict NumPy stand-in", "totalGlobalMem": 0}


class _Nccl:
    """NCCL's all-reduce over the processes of mpirun, on the stand-in's host memory (through MPI)."""
    NCCL_FLOAT32, NCCL_SUM = 7, 0

    @staticmethod
    def get_unique_id():
        return tuple(range(128))

    class NcclCommunicator:
        def __init__(self, ndev, commId, rank):
            from mpi4py import MPI
            self.comm, self.mpi = MPI.COMM_WORLD, MPI
            assert self.comm.Get_size() == ndev and self.comm.Get_rank() == rank and len(commId) == 128

        def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
            import ctypes
            assert datatype == _Nccl.NCCL_FLOAT32 and op == _Nccl.NCCL_SUM and isinstance(stream, int)
            send = numpy.ctypeslib.as_array((ctypes.c_float * count).from_address(sendbuf))
            total = numpy.empty(count, numpy.float32)
            self.comm.Allreduce(send.copy(), total, op=self.mpi.SUM)
            numpy.ctypeslib.as_array((ctypes.c_float * count).from_address(recvbuf))[...] = total
            _count("launches")
            if os.environ.get("STRICT_CUPY_NCCL_LOG"):  # lets a test see that NCCL did the all-reduce
                with open(os.environ["STRICT_CUPY_NCCL_LOG"], "a") as log:
                    log.write(f"allReduce rank {self.comm.Get_rank()} count {count}\n")


class _Cuda:
    runtime = _Runtime()
    Stream = _Stream
    Device = _Device
    nccl = _Nccl

    @staticmethod
    def get_current_stream():
        return _Stream(null=True)


cuda = _Cuda()
sys.modules[__name__ + ".cuda"] = cuda  # "from cupy.cuda import nccl" as with the real package

_PASS_THROUGH = (type, numpy.dtype)


@functools.lru_cache(maxsize=None)
def _function(name):
    value = getattr(numpy, name)
    if isinstance(value, type) or not callable(value):
        return value  # dtypes (cupy.float32 is numpy.float32), constants

    @functools.wraps(value)
    def device_function(*args, **kwargs):
        return _call(value, args, kwargs)
    return device_function


def __getattr__(name):
    if name.startswith("__") or not hasattr(numpy, name):
        raise AttributeError(f"module 'cupy' (strict stand-in) has no attribute {name!r}")
    return _function(name)
