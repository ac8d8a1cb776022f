"""Test configuration shared by every test module.

Qt runs offscreen here so nobody has to set QT_QPA_PLATFORM by hand; torch uses the
machine's cores without oversubscribing.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
os.environ.setdefault("PYTEST_QT_API", "pyside6")

import tempfile

# Recent-files lists and other settings go to a throwaway folder, never the user's ~/.config.
os.environ.setdefault("LRP_VIEWER_CONFIG_DIR", tempfile.mkdtemp(prefix="lrp-viewer-test-config-"))
