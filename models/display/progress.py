"""A one-line progress bar on stderr: ``[#####.....] 50/100 loss 12.3 img/s 40 eta 0:12``."""
import sys
import time


class ProgressBar:
    def __init__(self, total, start=0, label="", stream=None, width=28):
        self.total, self.count, self.label, self.width = total, start, label, width
        self.stream = stream or sys.stderr
        self.started, self.start_count = time.time(), start
        self.last_draw, self.closed = 0.0, False

    def update(self, count, **fields):
        self.count = count
        now = time.time()
        if now - self.last_draw < 0.2 and count < self.total:
            return
        self.last_draw = now
        done = count / max(self.total, 1)
        bar = "#" * int(done * self.width) + "." * (self.width - int(done * self.width))
        rate = (count - self.start_count) / max(now - self.started, 1e-9)
        eta = (self.total - count) / rate if rate > 0 else 0
        extra = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
        self.stream.write(f"\r{self.label}[{bar}] {count}/{self.total} {extra} "
                          f"eta {int(eta) // 60}:{int(eta) % 60:02d}  ")
        self.stream.flush()

    def close(self):
        """End the bar's line (once), so that what is printed next starts on a line of its own."""
        if self.last_draw and not self.closed:
            self.stream.write("\n")
            self.stream.flush()
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
