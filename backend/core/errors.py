"""Errors the command line reports in one line (exit code 2) because the user can fix them."""


class ExpectedStartupError(Exception):
    """The service cannot start for a reason the message names (a setting, a file, a port, a process)."""
