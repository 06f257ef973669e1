"""Errors a user can fix are one line, exit status 1, no traceback; anything else is a bug, shown with
its traceback and a request to report it (cli.py, nn/errors.py)."""
import errno
import os

import pytest
from click.testing import CliRunner

from cli import main
from models.data.cache import CacheError
from models.data.images import ImageError
from models.training.train import RunFolderError, TrainingError
from nn.backend import DeviceError
from nn.errors import OptionError, SetupError, UserError, WeightFileError, is_user_error
from nn.serialization import DiskFullError
from weights_import.common import WeightImportError


def test_the_error_classes():
    for cls in (OptionError, SetupError, DeviceError, WeightFileError, ImageError, CacheError, TrainingError,
                RunFolderError, WeightImportError):
        assert issubclass(cls, UserError) and issubclass(cls, ValueError), cls
    assert not issubclass(CacheError, WeightFileError) and not issubclass(TrainingError, RuntimeError)
    assert is_user_error(DiskFullError("/x/checkpoint.h5", 0))
    assert is_user_error(FileNotFoundError(errno.ENOENT, "No such file or directory", "photo.jpg"))
    assert not is_user_error(OSError(errno.EIO, "Input/output error"))  # no file of the user's: not theirs to fix
    for bug in (ValueError("bad"), RuntimeError("bad"), NotImplementedError(), RecursionError(), KeyError("k")):
        assert not is_user_error(bug)


def _export_raising(monkeypatch, exc):
    from models.evaluation import pretrained

    def fail(*args, **kwargs):
        raise exc
    monkeypatch.setattr(pretrained, "export_decoder", fail)
    return CliRunner().invoke(main, ["export-decoder", "checkpoint.h5", "--out", "decoder.h5"])


@pytest.mark.parametrize("exc", [NotImplementedError("not yet"), RecursionError("maximum recursion depth exceeded"),
                                 RuntimeError("an internal state went wrong"), ValueError("operands could not be "
                                                                                           "broadcast together"),
                                 KeyError("conv1.weight")])
def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch, exc):
    result = _export_raising(monkeypatch, exc)
    assert result.exit_code == 1
    assert "Traceback" in result.output and type(exc).__name__ in result.output
    assert "please report it with the command you ran" in result.output.strip().splitlines()[-1]


@pytest.mark.parametrize("exc, line", [
    (WeightFileError("checkpoint.h5: not a featinv training checkpoint; pass a file written by 'cli.py train'"),
     "Error: checkpoint.h5: not a featinv training checkpoint; pass a file written by 'cli.py train'"),
    (CacheError("runs/hog/cache_train: is a file; remove it"), "Error: runs/hog/cache_train: is a file; remove it"),
    (FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "checkpoint.h5"),
     "Error: checkpoint.h5: No such file or directory; check the path"),
    (PermissionError(errno.EACCES, os.strerror(errno.EACCES), "decoder.h5"),
     "Error: decoder.h5: Permission denied; check its permissions or choose another path"),
    (IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), "decoder.h5"),
     "Error: decoder.h5: Is a directory; it is a folder: give a file name"),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "decoder.h5"),
     "Error: decoder.h5: the disk is full (No space left on device); free some space (files finished before are "
     "kept; train continues with --resume)")])
def test_a_user_error_is_one_line_naming_the_file(monkeypatch, exc, line):
    result = _export_raising(monkeypatch, exc)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == line
