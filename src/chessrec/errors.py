"""User-facing errors: each becomes one line on stderr and exit code 2, never a traceback."""


class UserError(Exception):
    """A mistake in the user's input (file, parameter, photo) that they can fix."""
