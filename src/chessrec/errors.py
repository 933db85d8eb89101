"""User-facing errors: each becomes one line on stderr and exit code 2, never a traceback."""

#: the exit status of every chessrec command and stage that stops on a user mistake
USER_ERROR_EXIT = 2


class UserError(Exception):
    """A mistake in the user's input (file, parameter, photo) that they can fix."""
