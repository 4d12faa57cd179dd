"""The exception types the CLI prints as one line: bad input, and a distributed job that a rank ended."""


class InputError(ValueError):
    """Raised for bad user input (files, points, parameters). The CLI prints it without a traceback."""


class JobError(RuntimeError):
    """Raised on every rank of a distributed job when a rank failed or stopped answering (see
    ``warpfields.distributed``). The CLI prints it without a traceback."""


class JobInputError(InputError, JobError):
    """A ``JobError`` whose cause was bad input on the failing ranks (the CLI exits 2, as for any bad input)."""
