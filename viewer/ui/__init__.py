"""Qt widgets and windows: the only layer that imports PySide6 and pyqtgraph."""
