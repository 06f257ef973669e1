"""The run folder's lock is the operating system's (an exclusive flock held for the run's life):
two runs started together on one folder never both take it, and a killed owner leaves a folder the
next run can take."""
import os
import signal
import subprocess
import sys
import time

import pytest

from models.training.train import RunFolder, TrainingError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Takes the run folder argv[1] at the wall-clock time argv[2], with argv[3] seconds of delay injected
# before every step that could race (the lock call, the removal of a lock file), then holds it argv[4] s.
STARTER = r"""
import fcntl, os, sys, time
out, start, delay, hold = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
from models.training.train import RunFolder
real_flock, real_remove = fcntl.flock, os.remove
def slow_flock(fd, operation):
    time.sleep(delay)
    return real_flock(fd, operation)
def slow_remove(path, *args, **kwargs):
    if str(path).endswith("run.lock"):
        time.sleep(delay)
    return real_remove(path, *args, **kwargs)
fcntl.flock, os.remove = slow_flock, slow_remove
time.sleep(max(0.0, start - time.time()))
try:
    folder = RunFolder(out, resume=False, overwrite=False)
except (ValueError, RuntimeError) as exc:  # the errors the command line prints as one line
    print(f"refused: {exc}")
    sys.exit(1)
print("taken", flush=True)
time.sleep(hold)
folder.release()
"""


def starter(out, start, delay=0.3, hold=5.0):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", STARTER, str(out), str(start), str(delay), str(hold)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale-lock-file"])
def test_two_runs_started_together_never_both_take_the_folder(tmp_path, stale):
    out = tmp_path / "run"
    out.mkdir()
    if stale:  # left by a run that was killed: the two starters both see its owner dead
        (out / "run.lock").write_text(f"{dead_pid()}\n")
    start = time.time() + 5.0  # both have imported by then, even on a busy machine
    children = [starter(out, start) for _ in range(2)]
    results = [child.communicate(timeout=60) + (child.returncode,) for child in children]
    taken = [r for r in results if r[2] == 0]
    refused = [r for r in results if r[2] != 0]
    assert len(taken) == 1 and len(refused) == 1, results
    stdout, stderr, code = refused[0]
    assert code == 1 and "Traceback" not in stderr, results
    lines = stdout.strip().splitlines()
    assert len(lines) == 1 and f"{out} is in use by another run" in lines[0], lines
    assert not (out / "run.lock").exists()  # the owner released it


def test_a_killed_owner_leaves_a_folder_the_next_run_can_take(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    owner = starter(out, time.time(), delay=0.0, hold=60.0)
    assert owner.stdout.readline().strip() == "taken"
    with pytest.raises(TrainingError, match=f"in use by another run \\(process {owner.pid}"):
        RunFolder(str(out), resume=False, overwrite=False)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert (out / "run.lock").exists()  # the killed owner could not clean up
    folder = RunFolder(str(out), resume=False, overwrite=False)
    assert (out / "run.lock").read_text().strip() == str(os.getpid())
    folder.release()
    assert not (out / "run.lock").exists()
