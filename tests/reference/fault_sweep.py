"""A sweep of the faults a user's machine throws at the command line, each try in its own process
(run in part by tests/cli/test_fault_sweep.py; the whole sweep by hand, in a few minutes).

    python tests/reference/fault_sweep.py [--budget 240] [--tries 4] [--seed 0] [--classes kill,args]
                                          [--work DIR] [--json]

Classes of tries (each a reproducible list drawn from the seed; the classes take turns until the
time budget is spent, and the tries left are reported as not run):

- ``kill``: a tiny ``train`` sent SIGKILL, SIGINT or SIGTERM at a random moment, then resumed; the
  finished run must equal an uninterrupted one bit for bit.
- ``damaged``: bit flips and truncations of a checkpoint, a cache shard and a decoder file.
- ``photos``: hostile photos (truncated, a huge declared size, several frames, empty).
- ``folders``: odd data folders (empty, only unreadable files, a symlink loop, files that are no photos).
- ``args``: argument fuzzing of every command (a hostile value for an option or argument, an
  unknown option, a missing argument).
- ``outputs``: unwritable outputs (a missing folder, a read-only folder, a folder as a file --out,
  a file as a folder --out).
- ``sizes``: size options (``--width 64``, ``--image-size 1048576``, ``--crops 100000``) under
  a limit on the address space.
- ``concurrent``: two runs started together on one run folder.

Each try ends as ``clean`` (exit status 0, or 1 or 2 with exactly one ``Error:`` line, and no
"Traceback"; after a signal the sweep sent, also death by it, status 130, or click's "Aborted!"),
``traceback`` (a traceback, or death by a signal the sweep did not send), ``hang``
(over its time limit), ``data lost`` (a good checkpoint that was there before is damaged or
gone, or two runs both trained into one folder) or ``wrong`` (no traceback, but an unclear
failure: another exit status, no or several ``Error:`` lines; or a resumed run that differs from an
uninterrupted one). Read and write permissions mean nothing to root: where the sweep runs as root,
the tries about them run without the capabilities that override them (CAP_DAC_OVERRIDE,
CAP_DAC_READ_SEARCH), as a user's command would.
Prints the table; with --json also one JSON line of counts and the first examples of each bad outcome.
"""
import argparse
import ctypes
import glob
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
CLI = os.path.join(ROOT, "cli.py")
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))
CAFFEMODEL = os.path.join(ROOT, "tests", "fixtures", "weights", "caffenet_layer.caffemodel")
TINY = ["--iters", "6", "--batch-size", "2", "--width", "0.0625", "--image-size", "64", "--workers", "1",
        "--crops", "0", "--seed", "0"]  # a run of seconds, checkpointed at its end


def tiny(iters):
    """TINY with another number of steps."""
    return ["--iters", str(iters)] + TINY[2:]
MEMORY_MB = 3072  # address-space limit of every try
TIMEOUT_S = 60
LIBC = ctypes.CDLL(None, use_errno=True)
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2  # linux/prctl.h, linux/capability.h
ROUND = {"args": 4}  # tries of a class in each round (default 1): args has a command per try, and 15 commands
OUTCOMES = ("clean", "traceback", "hang", "data lost", "wrong")
CLASSES = ("kill", "damaged", "photos", "folders", "args", "outputs", "sizes", "concurrent")
HOSTILE_VALUES = ["0", "-1", "1", "3", "nan", "inf", "-inf", "1e309", "-0", "abc", "", "/nonexistent/x", "{folder}",
                  "{textfile}", "\u00e9\u00e8", "x" * 3000, "64", "1048576", "0x10", "1,2", "--", "-"]


class Result:
    """One finished (or timed-out) command: exit status, output (stdout and stderr together)."""

    def __init__(self, code, output, timed_out, elapsed):
        self.code, self.output, self.timed_out, self.elapsed = code, output, timed_out, elapsed

    def outcome(self, sent_signal=None):
        """The try's outcome from the command alone (the classes add data checks)."""
        if self.timed_out:
            return "hang"
        if "Traceback" in self.output:
            return "traceback"
        if self.code < 0:
            return "clean" if sent_signal is not None and -self.code == sent_signal else "traceback"
        if self.code == 0 or (sent_signal is not None and self.code == 130):
            return "clean"
        if sent_signal is not None and self.code == 1 and self.output.strip().splitlines()[-1:] == ["Aborted!"]:
            return "clean"  # click's answer to Ctrl-C outside a command's work
        errors = [line for line in self.output.splitlines() if line.startswith("Error:")]
        return "clean" if self.code in (1, 2) and len(errors) == 1 else "wrong"

    def tail(self):
        return " | ".join(self.output.strip().splitlines()[-2:])[:300]


def _limits(memory_mb, unprivileged):
    def apply():
        os.setsid()  # its own process group: a timeout ends its workers too
        limit = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if unprivileged:  # root without the capabilities that override file permissions, for what it runs
            for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
                if LIBC.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
    return apply


def start(args, cwd, memory_mb=MEMORY_MB, permissions=False):
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("FEATINV_DEVICE", None)
    return subprocess.Popen([sys.executable, CLI] + list(args), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=_limits(memory_mb, permissions and os.getuid() == 0))


def finish(process, began, timeout=TIMEOUT_S):
    try:
        output, _ = process.communicate(timeout=max(0.1, timeout - (time.time() - began)))
        return Result(process.returncode, output.decode(errors="replace"), False, time.time() - began)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return Result(process.returncode, output.decode(errors="replace"), True, time.time() - began)


def run(args, cwd, timeout=TIMEOUT_S, **kwargs):
    began = time.time()
    return finish(start(args, cwd, **kwargs), began, timeout)


def loads(path):
    """Whether ``path`` is a complete featinv file (sealed, checksum verified)."""
    from nn.serialization import open_h5
    try:
        open_h5(path).close()
        return True
    except (ValueError, OSError):
        return False


def arrays(path):
    """Every dataset of an HDF5 file by name (a finished run's weights and optimiser state)."""
    import h5py
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


class Sweep:
    """The shared material of the tries (photos, one good run, its decoder file) and the tries."""

    def __init__(self, work, seed):
        self.work, self.seed, self.count = work, seed, 0
        self.photos = os.path.join(work, "photos")
        os.makedirs(self.photos)
        for path in SAMPLES[:8]:
            shutil.copy(path, self.photos)
        self.photo = os.path.join(self.photos, os.path.basename(SAMPLES[0]))
        self.good = os.path.join(work, "good")
        began = time.time()
        made = run(["train", "hog", "--data", self.photos, "--out", self.good] + TINY, work, timeout=600)
        self.train_seconds = time.time() - began
        if made.code != 0:
            raise SystemExit(f"the reference run failed: {made.tail()}")
        self.checkpoint = os.path.join(self.good, "checkpoint.h5")
        self.reference = arrays(self.checkpoint)
        self.decoder = os.path.join(work, "decoder.h5")
        made = run(["export-decoder", self.checkpoint, "--out", self.decoder], work)
        if made.code != 0:
            raise SystemExit(f"export-decoder failed: {made.tail()}")
        self.textfile = os.path.join(work, "notes.txt")
        with open(self.textfile, "w") as f:
            f.write("not a photo\n")

    def folder(self, name):
        """A fresh folder for one try."""
        self.count += 1
        path = os.path.join(self.work, f"try{self.count:04d}-{name}")
        os.makedirs(path)
        return path

    def good_copy(self, into):
        copy = os.path.join(into, "run")
        shutil.copytree(self.good, copy)
        return copy

    # --- the classes: each try returns (outcome, what was tried, what happened) -------------------

    def kill(self, rng, index):
        sig = [signal.SIGKILL, signal.SIGINT, signal.SIGTERM][index % 3]
        at = float(rng.uniform(0.2, 1.2 * self.train_seconds))
        where = self.folder("kill")
        out = os.path.join(where, "run")
        args = ["train", "hog", "--data", self.photos, "--out", out] + TINY
        began = time.time()
        process = start(args, where)
        time.sleep(at)
        if process.poll() is None:
            os.kill(process.pid, sig)
        killed = finish(process, began)
        what = f"{signal.Signals(sig).name} at {at:.2f} s"
        outcome = killed.outcome(sent_signal=sig)
        if outcome != "clean":
            return outcome, what, killed.tail()
        for name in ("checkpoint.h5", "best.h5"):
            if os.path.exists(os.path.join(out, name)) and not loads(os.path.join(out, name)):
                return "data lost", what, f"{name} damaged after the kill"
        resumed = run(args + ["--resume"], where)
        outcome = resumed.outcome()
        if outcome != "clean" or resumed.code != 0:
            return (outcome if outcome != "clean" else "wrong"), what, f"resume: {resumed.tail()}"
        final = arrays(os.path.join(out, "checkpoint.h5"))
        differ = sorted(k for k in self.reference if k not in final or not np.array_equal(final[k], self.reference[k]))
        if differ or set(final) != set(self.reference):
            return "wrong", what, f"resumed run differs from an uninterrupted one in {differ[:3]}"
        return "clean", what, "resumed bit for bit"

    def damaged(self, rng, index):
        target = ["checkpoint", "cache shard", "decoder"][index % 3]
        where = self.folder("damaged")
        run_copy = self.good_copy(where)
        path = {"checkpoint": os.path.join(run_copy, "checkpoint.h5"), "decoder": os.path.join(where, "decoder.h5"),
                "cache shard": os.path.join(run_copy, "cache_train", "shard-00000.h5")}[target]
        if target == "decoder":
            shutil.copy(self.decoder, path)
        data = bytearray(open(path, "rb").read())
        if rng.random() < 0.5:
            flips = rng.integers(0, len(data), rng.integers(1, 17))
            for i in flips:
                data[i] ^= int(rng.integers(1, 256))
            what = f"{target}: {len(flips)} bytes flipped"
        else:
            data = data[:rng.integers(0, len(data))]
            what = f"{target}: cut to {len(data)} bytes"
        with open(path, "wb") as f:
            f.write(bytes(data))
        if target == "cache shard":  # the run's checkpoint must survive a resume over a damaged cache
            result = run(["train", "hog", "--data", self.photos, "--out", run_copy, "--resume", "--iters", "7"], where)
            checkpoint = os.path.join(run_copy, "checkpoint.h5")
            if not (os.path.exists(checkpoint) and loads(checkpoint)):
                return "data lost", what, "the run's checkpoint is damaged or gone"
        else:
            result = run(["reconstruct", "hog", self.photo, "--checkpoint", path, "--no-baselines", "--out",
                          os.path.join(where, "r.png")], where)
        return result.outcome(), what, result.tail()

    def photos_(self, rng, index):
        kind = ["truncated", "huge declared size", "multi-frame", "empty"][index % 4]
        where = self.folder("photo")
        path = hostile_photo(kind, where, rng, self.photo)
        if rng.random() < 0.5:
            what = f"{kind} photo to reconstruct"
            result = run(["reconstruct", "hog", path, "--checkpoint", self.checkpoint, "--no-baselines", "--out",
                          os.path.join(where, "r.png")], where)
        else:
            data = os.path.join(where, "data")
            os.makedirs(data)
            for photo in SAMPLES[:4]:
                shutil.copy(photo, data)
            shutil.move(path, data)
            what = f"{kind} photo among 4 good ones to train on"
            result = run(["train", "hog", "--data", data, "--out", os.path.join(where, "run")] + tiny(1), where)
        return result.outcome(), what, result.tail()

    def folders(self, rng, index):
        kind = ["empty", "only unreadable files", "symlink loop", "no photos"][index % 4]
        where = self.folder("folder")
        data = os.path.join(where, "data")
        os.makedirs(data)
        if kind == "only unreadable files":
            for photo in SAMPLES[:3]:
                shutil.copy(photo, data)
                os.chmod(os.path.join(data, os.path.basename(photo)), 0)
        elif kind == "symlink loop":
            os.symlink(data, os.path.join(data, "loop"))
            os.symlink(os.path.join(data, "self.jpg"), os.path.join(data, "self.jpg"))
        elif kind == "no photos":
            for k in range(3):
                shutil.copy(self.textfile, os.path.join(data, f"photo{k}.jpg"))
        command = ["train", "eval"][rng.integers(2)]
        if command == "train":
            args = ["train", "hog", "--data", data, "--out", os.path.join(where, "run")] + TINY
        else:
            args = ["eval", "hog", "--checkpoint", self.checkpoint, "--data", data]
        result = run(args, where, permissions=kind == "only unreadable files")
        return result.outcome(), f"{command} on a data folder: {kind}", result.tail()

    def args(self, rng, index):
        import cli
        names = sorted(cli.main.commands)
        name = names[index % len(names)]
        where = self.folder("args")
        args = self.base_invocation(name, where)
        command = cli.main.commands[name]
        options = [p for p in command.params if p.opts and p.opts[0].startswith("--")]
        changes = []
        for _ in range(rng.integers(1, 3)):
            value = HOSTILE_VALUES[rng.integers(len(HOSTILE_VALUES))].format(folder=where, textfile=self.textfile)
            mutation = rng.integers(4)
            if mutation == 0 and options:  # a hostile value for an option (the last one given counts)
                option = options[rng.integers(len(options))]
                args += [option.opts[0]] if option.is_flag else [option.opts[0], value]
                changes.append(f"{option.opts[0]} {value[:20]!r}")
            elif mutation == 1 and len(args) > 1:  # a hostile value for one argument of the base invocation
                at = int(rng.integers(1, len(args)))
                changes.append(f"argument {at} ({args[at][:20]!r}) -> {value[:20]!r}")
                args[at] = value
            elif mutation == 2:
                args.append("--no-such-option")
                changes.append("an unknown option")
            elif len(args) > 1:
                at = int(rng.integers(1, len(args)))
                changes.append(f"argument {at} ({args[at][:20]!r}) removed")
                del args[at]
        result = run(args, where)
        return result.outcome(), f"{name}: {'; '.join(changes)}", result.tail()

    def base_invocation(self, name, where):
        """A quick valid call of each command (the fuzzing changes it)."""
        photo, ckpt, new = self.photo, self.checkpoint, os.path.join(where, "out")
        table = {
            "train": ["train", "hog", "--data", self.photos, "--out", new] + tiny(2),
            "reconstruct": ["reconstruct", "hog", photo, "--checkpoint", ckpt, "--no-baselines", "--out", new + ".png"],
            "eval": ["eval", "hog", "--checkpoint", ckpt, "--data", self.photos],
            "features": ["features", "hog", photo, "--out", new + ".h5", "--image-size", "64"],
            "import-weights": ["import-weights", CAFFEMODEL, "--out", new + ".h5"],
            "export-decoder": ["export-decoder", ckpt, "--out", new + ".h5"],
            "report": ["report", "--runs", self.good, "--data", self.photos, "--out", new, "--figure-images", "1"],
            "invert-optimize": ["invert-optimize", "hog", photo, "--iters", "2", "--out", new + ".png"],
            "perturb": ["perturb", "hog", photo, "--checkpoint", ckpt, "--out", new + ".png"],
            "dark-knowledge": ["dark-knowledge", photo, "--checkpoint", ckpt, "--out", new + ".png"],
            "single-neuron": ["single-neuron", "--checkpoint", ckpt, "--index", "0", "--out", new + ".png"],
            "interpolate": ["interpolate", "hog", photo, SAMPLES[1], "--checkpoint", ckpt, "--steps", "2", "--out",
                            new + ".png"],
            "random-features": ["random-features", "hog", "--checkpoint", ckpt, "--data", self.photos, "--count", "2",
                                "--out", new + ".png"],
            "inspect": ["inspect", "hog", "--width", "0.0625", "--image-size", "64"],
            "gradcheck": ["gradcheck", "relu"],
        }
        return list(table.get(name, [name, "--help"]))

    def outputs(self, rng, index):
        kind = ["a missing folder", "a read-only folder", "a folder as the file", "a file as the run folder"][
            index % 4]
        where = self.folder("outputs")
        target = os.path.join(where, "target")
        if kind == "a missing folder":
            target = os.path.join(where, "missing", "deeper", "target")
        elif kind == "a read-only folder":
            os.makedirs(target)
            os.chmod(target, 0o555)
        elif kind == "a folder as the file":
            os.makedirs(target)
        else:
            with open(target, "w") as f:
                f.write("a file\n")
        command = ["reconstruct", "features", "export-decoder", "train"][rng.integers(4)]
        inside = target if kind in ("a folder as the file", "a file as the run folder") else \
            os.path.join(target, "result")
        args = {"reconstruct": ["reconstruct", "hog", self.photo, "--checkpoint", self.checkpoint, "--no-baselines",
                                "--out", inside if kind != "a missing folder" else inside + ".png"],
                "features": ["features", "hog", self.photo, "--image-size", "64", "--out", inside],
                "export-decoder": ["export-decoder", self.checkpoint, "--out", inside],
                "train": ["train", "hog", "--data", self.photos, "--out", inside] + TINY}[command]
        result = run(args, where, permissions=kind == "a read-only folder")
        return result.outcome(), f"{command} --out: {kind}", result.tail()

    def sizes(self, rng, index):
        option = [("--width", "64"), ("--image-size", "1048576"), ("--crops", "100000")][index % 3]
        command = ["train", "inspect", "features"][rng.integers(3)] if option[0] != "--crops" else "train"
        where = self.folder("sizes")
        if command == "train":
            args = ["train", "hog", "--data", self.photos, "--out", os.path.join(where, "run")] + TINY + list(option)
        elif command == "inspect":
            args = ["inspect", "hog", "--width", "0.0625", "--image-size", "64"] + list(option)
        else:
            args = ["features", "hog", self.photo, "--out", os.path.join(where, "f.h5")] + (
                list(option) if option[0] == "--image-size" else ["--image-size", "64"])
        result = run(args, where)
        return result.outcome(), f"{command} {' '.join(option)} (address space {MEMORY_MB} MiB)", result.tail()

    def concurrent(self, rng, index):
        where = self.folder("concurrent")
        if index % 2 == 0:
            out = os.path.join(where, "run")
            first = second = ["train", "hog", "--data", self.photos, "--out", out] + TINY
            what = "two fresh runs on one folder"
        else:
            out = self.good_copy(where)
            first = ["train", "hog", "--data", self.photos, "--out", out, "--resume", "--iters", "8"]
            second = ["train", "hog", "--data", self.photos, "--out", out, "--overwrite"] + TINY
            what = "a resume and an overwrite of one run at once"
        began = time.time()
        processes = [start(first, where), start(second, where)]
        results = [finish(p, began, 2 * TIMEOUT_S) for p in processes]
        outcomes = [r.outcome() for r in results]
        for bad in ("hang", "traceback", "wrong"):
            if bad in outcomes:
                return bad, what, " || ".join(r.tail() for r in results)
        trained = [r for r in results if r.code == 0]
        checkpoint = os.path.join(out, "checkpoint.h5")
        if len(trained) != 1 or not loads(checkpoint):
            return "data lost", what, f"{len(trained)} runs trained; checkpoint loads: {loads(checkpoint)}"
        return "clean", what, [r.tail() for r in results if r.code != 0][0]


def hostile_photo(kind, where, rng, good):
    """A photo file a user might meet: cut short, declaring 100000 x 100000 pixels, of several
    frames, or empty."""
    from PIL import Image
    if kind == "truncated":
        data = open(good, "rb").read()
        path = os.path.join(where, "truncated.jpg")
        with open(path, "wb") as f:
            f.write(data[:rng.integers(1, len(data))])
    elif kind == "huge declared size":
        path = os.path.join(where, "huge.png")
        header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
        idat = zlib.compress(b"\0" * 1024)

        def chunk(name, body):
            return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    elif kind == "multi-frame":
        suffix = [".gif", ".tif"][rng.integers(2)]
        path = os.path.join(where, "frames" + suffix)
        frames = [Image.fromarray(rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)) for _ in range(3)]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    else:
        path = os.path.join(where, "empty.jpg")
        open(path, "wb").close()
    return path


def table(counts, planned):
    header = ("class", "tries", "handled cleanly", "tracebacks", "hangs", "data lost", "wrong", "not run")
    rows = [header]
    for name in CLASSES:
        if name not in counts:
            continue
        c = counts[name]
        done = sum(c.values())
        rows.append((name, str(done), str(c["clean"]), str(c["traceback"]), str(c["hang"]), str(c["data lost"]),
                     str(c["wrong"]), str(planned[name] - done)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=240.0, help="Seconds for the tries (after the setup).")
    parser.add_argument("--tries", type=int, default=4, help="Rounds: tries per class (args: 4 per round).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", default=",".join(CLASSES))
    parser.add_argument("--work", help="Folder for the tries (default: a temporary one, removed after).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    classes = [c for c in args.classes.split(",") if c]
    unknown = set(classes) - set(CLASSES)
    if unknown:
        parser.error(f"unknown classes {sorted(unknown)}; choose from {', '.join(CLASSES)}")
    work = args.work or tempfile.mkdtemp(prefix="fault-sweep-")
    os.makedirs(work, exist_ok=True)
    try:
        sweep = Sweep(work, args.seed)
        counts = {name: dict.fromkeys(OUTCOMES, 0) for name in classes}
        examples = {}
        deadline = time.time() + args.budget
        planned = {name: args.tries * ROUND.get(name, 1) for name in classes}
        for round_ in range(args.tries):  # the classes take turns: a short budget still samples each
            for name in classes:
                for index in range(round_ * ROUND.get(name, 1), (round_ + 1) * ROUND.get(name, 1)):
                    if time.time() > deadline:
                        break
                    rng = np.random.default_rng([args.seed, CLASSES.index(name), index])
                    method = getattr(sweep, "photos_" if name == "photos" else name)
                    outcome, what, detail = method(rng, index)
                    counts[name][outcome] += 1
                    if outcome != "clean":
                        examples.setdefault(name, []).append(f"[{outcome}] {what}: {detail}")
                    print(f"{name:10s} {index}: {outcome:9s} {what}", file=sys.stderr, flush=True)
        print(table(counts, planned))
        for name, lines in examples.items():
            print(f"\n{name}:")
            for line in lines[:5]:
                print(f"  {line}")
        if args.json:
            print(json.dumps({"counts": counts, "examples": examples, "planned": planned}))
    finally:
        if not args.work:
            for folder, _, _ in os.walk(work):  # read-only folders the tries made
                os.chmod(folder, 0o755)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
