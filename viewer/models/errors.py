"""Errors a user can cause while loading a model."""


class ModelLoadError(Exception):
    """A model could not be loaded or does not fit the scan; the message says what to do."""


class UntrustedModelError(ModelLoadError):
    """Loading would execute code from a file; needs ``trust=True`` (``--trust`` / a confirmation)."""
