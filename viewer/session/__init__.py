"""Headless application state: scan, model, explanation jobs, display settings, cursor.

Plain Python objects with a small observer mechanism; never imports Qt. The API is
described in /work/notes/SESSION_API.md (and the docstrings).
"""

from viewer.session.cursor import Cursor
from viewer.session.display import WINDOW_PRESETS, OverlaySettings, ViewSettings, WindowLevel
from viewer.session.jobs import Job, JobRunner
from viewer.session.panels import MAX_PANELS, PanelState
from viewer.session.profile import RelevanceProfile, relevance_profile
from viewer.session.recent import RecentFiles
from viewer.session.requests import ExplainRequest, PredictRequest
from viewer.session.results import PanelResult, Prediction
from viewer.session.session import Session
from viewer.session.signals import Signal

__all__ = [
    "Session", "Signal", "Cursor", "OverlaySettings", "ViewSettings", "WindowLevel", "WINDOW_PRESETS",
    "Job", "JobRunner", "PanelState", "MAX_PANELS", "RelevanceProfile", "relevance_profile", "RecentFiles",
    "ExplainRequest", "PredictRequest", "PanelResult", "Prediction",
]
