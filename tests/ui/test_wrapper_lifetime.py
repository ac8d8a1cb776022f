"""Wrappers of items Qt deletes itself die with them.

A parameter tree's invisible root item is made and deleted by Qt and is not a QObject, so
the binding layer is not told when it goes. Its wrapper, kept by pyqtgraph, used to stay
registered at the freed address: a later object made there was handed it (a spin box's
line edit came back as a ``QTreeWidgetItem``) and collecting it crashed the UI tests.
"""

from __future__ import annotations

import shiboken6
from pyqtgraph.parametertree import Parameter
from PySide6 import QtWidgets

from tests.ui.conftest import _flush_deletions
from viewer.ui.param_specs import parameter_tree


def _delete(widget: QtWidgets.QWidget) -> None:
    widget.deleteLater()
    _flush_deletions()


def _root(tree: QtWidgets.QTreeWidget) -> QtWidgets.QTreeWidgetItem:
    return QtWidgets.QTreeWidget.invisibleRootItem(tree)


def test_the_root_item_wrapper_is_invalid_once_its_tree_is_deleted(qapp: QtWidgets.QApplication) -> None:
    params = Parameter.create(name="p", type="group", children=[
        {"name": "eps", "type": "float", "value": 0.25}, {"name": "rule", "type": "list", "limits": ["a", "b"]}])
    holder = QtWidgets.QWidget()
    QtWidgets.QVBoxLayout(holder).addWidget(tree := parameter_tree(params))
    root = _root(tree)
    assert root is tree.invisibleRootItem()._real_item  # the one pyqtgraph keeps
    assert shiboken6.isValid(root) and root.childCount() == 1  # the hidden group
    params.child("eps").setValue(0.5)  # the tree works as a ParameterTree does
    assert [root.child(0).child(i).param.value() for i in range(2)] == [0.5, "a"]

    _delete(holder)
    assert not shiboken6.isValid(tree)
    assert not shiboken6.isValid(root)
    assert all(o is not root for o in shiboken6.getAllValidWrappers())


def test_panels_leave_no_registered_root_item_behind(qapp: QtWidgets.QApplication) -> None:
    from viewer.session.session import Session
    from viewer.ui.explain_panel import ExplainPanel
    from viewer.ui.overlay_panel import OverlayPanel

    session = Session()
    try:
        panels = [ExplainPanel(session), OverlayPanel(session)]
        roots = [_root(p.tree) for p in panels]
        assert all(shiboken6.isValid(r) for r in roots)
        for p in panels:
            _delete(p)
        assert not any(shiboken6.isValid(r) for r in roots)
    finally:
        session.close()
