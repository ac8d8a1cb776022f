"""Headless application state: scan, model, explanation jobs, display settings, cursor.

Plain Python objects with a small observer mechanism; never imports Qt.
"""
