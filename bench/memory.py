"""Peak resident memory of one stretch of work in this process, for the benchmarks' child processes.

    from bench.memory import reset_peak, peak_since_reset
    before = reset_peak()          # bytes resident now; the peak counter starts again from here
    work()
    used = peak_since_reset() - before

On Linux the kernel keeps the peak resident set (``VmHWM`` in /proc/self/status) and resets it to the
resident set now when "5" is written to /proc/self/clear_refs (proc(5), Linux >= 4.0). ``ru_maxrss``
would not do: it cannot be reset, so a build that peaked higher than the work hides it, and after
fork + exec it keeps the parent's peak. Elsewhere ``ru_maxrss`` is the fallback, with that caveat.
"""
import resource
import sys

_ON_LINUX = sys.platform.startswith("linux")


def _status_bytes(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _max_rss_bytes():  # kB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def reset_peak():
    """Start the peak counter again from the resident set now; returns that resident set in bytes."""
    if not _ON_LINUX:
        return _max_rss_bytes()
    before = _status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return before


def peak_since_reset():
    """The largest resident set since ``reset_peak()``, in bytes."""
    return _status_bytes("VmHWM") if _ON_LINUX else _max_rss_bytes()
