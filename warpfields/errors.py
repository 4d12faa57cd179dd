"""The exceptions of warpfields: bad input (its message names the input and what was expected), termination
by a signal (raised in the main thread so that cleanup runs as it does for Ctrl-C), and a distributed job that a
rank ended."""


class InputError(ValueError):
    """Raised for bad user input (files, points, parameters). The CLI prints it without a traceback."""


class InputWarning(UserWarning):
    """Input that works but may not mean what it seems (an open mesh's inside and outside). The CLI prints it on
    one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM received by the ``warpfields`` command: handled as an interruption (outputs left unchanged)."""


class JobError(RuntimeError):
    """Raised on every rank of a distributed job when a rank failed or stopped answering (see
    ``warpfields.distributed``). The CLI prints it without a traceback."""


class JobInputError(InputError, JobError):
    """A ``JobError`` whose cause was bad input on the failing ranks (the CLI exits 2, as for any bad input)."""
