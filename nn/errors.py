"""The errors a user can fix, told apart from bugs.

Every error whose cause lies outside the code (a file, an option, the installation) is a
:class:`UserError`, whose message names the thing at fault and the fix; the command line prints
it as one line. Anything else that escapes is a bug in featinv, and the command line shows its
traceback and asks for a report. The subclasses say what is at fault; each lives beside the code
that raises it:

==================  ==================================================================
``UserError``       nn.errors: the base (a ``ValueError``, so ``except ValueError`` keeps working)
``OptionError``     nn.errors: an option's value (out of range, conflicting, too big for memory)
``SetupError``      nn.errors: a missing or broken installation piece (CuPy, mpi4py, NCCL, Graphviz)
``DeviceError``     nn.backend: the GPU was asked for but cannot be used
``WeightFileError`` nn.errors: a weight, checkpoint or decoder file that cannot be read
``ImageError``      models.data.images: a photo or photo folder that cannot be used
``CacheError``      models.data.cache: a feature cache that cannot be built or read
``TrainingError``   models.training.train: a run that cannot go on (NaN loss, too few photos)
``RunFolderError``  models.training.train: a run folder in use or holding another run
``WeightImportError`` weights_import.common: a foreign weight file that cannot be imported
==================  ==================================================================

An ``OSError`` about a path the user gave (no such file, no permission, a full disk, a folder
where a file was expected: :data:`USER_ERRNOS`) is one too: :func:`is_user_error` tells. minifeat
knows nothing of nn and raises plain ``ValueError``\\ s on bad arguments; the models check photos
before they reach it, so one of those at the command line is a bug, and shown as one.
"""
import errno

USER_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EISDIR,
                         errno.ENOTDIR, errno.EROFS, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTEMPTY})


class UserError(ValueError):
    """Something the user can fix; the message names the file or option at fault and the fix."""


class OptionError(UserError):
    """An option whose value cannot be used (out of range, conflicting with another, too big for
    the memory); the message names the option."""


class SetupError(UserError, RuntimeError):
    """A piece of the installation that is missing or unusable; the message says what to install."""


class WeightFileError(UserError):
    """A weight or checkpoint file that cannot be read; the message names the file and the fix."""


def is_user_error(exc):
    """Whether ``exc`` is a mistake the user can fix (printed as one line) rather than a bug."""
    if isinstance(exc, UserError):
        return True
    return isinstance(exc, OSError) and exc.errno in USER_ERRNOS and exc.filename is not None
