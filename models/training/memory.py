"""The memory a training run will need, estimated from its settings before any work, and the
check that refuses a run that would not fit.

Three parts, in bytes (float32 throughout):

- parameters: the decoder's P weights, their gradients and Adam's two moments (4 P values; 5 P
  with ``--ema``, whose moving average is one more copy);
- activations: per sample, every layer's output A_l, kept for backward after its leaky ReLU, and
  the gradients of both on the way back: about 4 sum_l A_l values, times the batch; the
  validation photos' targets, features and reconstructions beside them;
- the feature cache: one shard is built in memory (models.data.cache), the samples of as many
  photos as fill ``SHARD_BYTES`` (at least one photo's crops), with each crop's input photo.

The budget is the memory available when the run starts (``/proc/meminfo``'s MemAvailable, lowered
to a cgroup's or ``ulimit -v``'s limit), or ``--max-memory`` GiB (environment variable
``FEATINV_MAX_MEMORY``; 0: no check).
"""
import math
import os
import resource

from nn.errors import OptionError

from ..data.cache import SHARD_BYTES
from ..networks import alexnet, decoders
from .options import BY_NAME, OPTIONS, format_value

GIB = 1 << 30
ACTIVATION_COPIES = 4  # a layer's output, its leaky ReLU, and the gradients of both


def decoder_sizes(feature, width, image_size, min_channels=1):
    """(parameters, activation values per sample) of the decoder of ``feature``, counted from its
    layer table (:mod:`models.networks.decoders`) without building it."""
    rep = decoders.representation(feature)
    shape = tuple(rep.feature_shape(image_size))
    shapes, params, activations = {"input": shape}, 0, 0
    previous = "input"
    for i, row in enumerate(rep.table):
        sources = (previous,) if row.input is None else ((row.input,) if isinstance(row.input, str) else row.input)
        c_in = sum(shapes[s][0] for s in sources)
        spatial = shapes[sources[0]][1:]
        out = row.out if i == len(rep.table) - 1 else decoders.scaled(row.out, width, min_channels)
        if row.kind == "conv":
            pad = (row.kernel - 1) // 2
            spatial = tuple((n + 2 * pad - row.kernel) // row.stride + 1 for n in spatial)
            params += c_in * out * row.kernel ** 2 + out
        elif row.kind == "upconv":  # every up-convolution of the tables multiplies the size by its stride
            spatial = tuple(n * row.stride for n in spatial)
            params += c_in * out * row.kernel ** 2 + out
        elif row.kind == "fc":
            params += c_in * out + out
        else:  # reshape to (c, side, side)
            out, spatial = c_in // row.kernel ** 2, (row.kernel, row.kernel)
        shapes[row.name] = (out,) + spatial
        activations += math.prod(shapes[row.name])
        previous = row.name
    return params, activations


def estimate_memory(config, training=True):
    """``{"parameters", "activations", "feature cache"}``: the bytes a run of ``config`` (a dict of
    resolved settings) needs for each; with ``training`` False, what reconstructing one photo needs."""
    feature, image_size = config["feature"], config.get("image_size")
    params, per_sample = decoder_sizes(feature, config.get("width", 1.0), image_size, config.get("min_channels", 1))
    if not training:
        return {"parameters": 4 * params, "activations": 4 * per_sample, "feature cache": 0}
    rep = decoders.representation(feature)
    output = rep.output_size(image_size)
    features = math.prod(rep.feature_shape(image_size))
    copies = 4 + (1 if config.get("ema") else 0)
    validation = min(config.get("max_val_images") or 0, 1 << 20) * (4 * features + 2 * 4 * 3 * output ** 2)
    activations = 4 * config["batch_size"] * (ACTIVATION_COPIES * per_sample + features) + validation
    crops = config.get("crops") or 0
    samples_per_photo = crops or (2 if config.get("flip") else 1)
    photo = 3 * (alexnet.IMAGE_SIZE if not rep.shallow else (image_size or decoders.SHALLOW_IMAGE_SIZE)) ** 2
    sample = 4 * features + 3 * output ** 2 + (photo if config.get("train_encoder") else 0)
    photos_per_shard = max(1, SHARD_BYTES // (sample * samples_per_photo))
    cache = photos_per_shard * samples_per_photo * (sample + photo)
    return {"parameters": 4 * params * copies, "activations": activations, "feature cache": cache}


def available_memory():
    """Bytes this process may still allocate: the system's available memory, lowered to the
    cgroup's limit and to the address-space limit (``ulimit -v``) where those are set."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.split()[1:]}
        limits.append(info.get("MemAvailable", info.get("MemFree")))
    except (OSError, ValueError, IndexError):
        limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            maximum = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            current = int(f.read())
        if maximum != "max":
            limits.append(int(maximum) - current)
    except (OSError, ValueError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft - _address_space())
    return max(0, min(limit for limit in limits if limit is not None))


def _address_space():
    """Bytes of address space this process uses now (what ``ulimit -v`` counts)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def budget(config):
    """The bytes a run may use (None: no check): ``max_memory`` GiB, else FEATINV_MAX_MEMORY, else
    the memory available now."""
    limit = config.get("max_memory")
    if limit is None and os.environ.get("FEATINV_MAX_MEMORY"):
        try:
            limit = float(os.environ["FEATINV_MAX_MEMORY"])
        except ValueError:
            raise OptionError(f"FEATINV_MAX_MEMORY={os.environ['FEATINV_MAX_MEMORY']!r}: expected a number of "
                              "GiB (0: no check)") from None
    if limit is None:
        return available_memory()
    return None if limit == 0 else limit * GIB


def check_memory(config, source=None, training=True):
    """Refuse ``config`` (a dict of resolved settings) with an OptionError when its estimated memory
    (:func:`estimate_memory`) exceeds the budget; the message gives the estimate, names the size
    options and their values, and ``source`` (the file the settings come from) where given."""
    limit = budget(config)
    if limit is None:
        return
    parts = estimate_memory(config, training)
    total = sum(parts.values())
    if total <= limit:
        return
    sizes = [o for o in OPTIONS if o.sizes and o.cli and config.get(o.name) is not None
             and (training or o.name in ("width", "min_channels", "image_size"))]
    settings = ", ".join(f"{o.flag} {format_value(config[o.name], o)}" for o in sizes)
    where = f"{source}: its settings ({settings})" if source else f"the settings {settings}"
    detail = ", ".join(f"{name} {_bytes(value)}" for name, value in parts.items() if value)
    lower = "/".join(o.flag for o in sizes if o.name != "min_channels")
    raise OptionError(f"{where} need an estimated {_bytes(total)} ({detail}), more than the {_bytes(limit)} "
                      f"available; lower {lower}, or raise the limit with {BY_NAME['max_memory'].flag} GIB "
                      "(or the environment variable FEATINV_MAX_MEMORY)")


def _bytes(count):
    """``1.5 GiB``, ``12 TiB``: a byte count for people."""
    count /= 1 << 20
    for unit in ("MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.3g} {unit}" if count < 1000 else f"{count:,.0f} {unit}"
        count /= 1024
