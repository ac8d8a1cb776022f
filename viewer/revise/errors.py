"""Errors a user can cause when revising a model."""


class ReviseError(ValueError):
    """A revision cannot run as asked (no reference cases, a region that matches nothing,
    a fraction outside (0, 1], an unknown layer); the message says what to do."""
