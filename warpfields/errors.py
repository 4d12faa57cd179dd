"""The one exception type for bad input: its message names the input and what was expected."""


class InputError(ValueError):
    """Raised for bad user input (files, points, parameters). The CLI prints it without a traceback."""
