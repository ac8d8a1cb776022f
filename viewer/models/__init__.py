"""Loading models safely and preparing scans for them. Never imports Qt."""

from viewer.models.errors import ModelLoadError
from viewer.models.loaded import LoadedModel
from viewer.models.load import load_model

__all__ = ["load_model", "LoadedModel", "ModelLoadError"]
