"""Turn the engine's ParamSpecs into pyqtgraph parametertree entries and back.

A method declares its knobs once (viewer.explain ParamSpec); the panels are built from
those declarations, so a new method or preset parameter appears in the UI without UI code.
"""

from __future__ import annotations

import ast
from typing import Any, Iterable

import shiboken6
from pyqtgraph.parametertree import Parameter, ParameterTree
from PySide6 import QtWidgets


def parameter_tree(root: Parameter) -> ParameterTree:
    """A header-less tree showing ``root``'s children, safe to delete with its window.

    pyqtgraph's tree keeps the Python wrapper of its invisible root item, an item Qt makes
    and deletes itself. It is not a QObject, so nothing tells the binding layer when Qt
    deletes it with the tree: the wrapper stays registered at a freed address, and the
    next object Qt makes there is handed this wrapper (a spin box's line edit came back as
    a QTreeWidgetItem) or, once the wrapper is collected, another object's registration is
    removed and the process crashes later. The wrapper is invalidated with the tree.
    """
    tree = ParameterTree(showHeader=False)
    tree.setParameters(root, showTop=False)
    item = QtWidgets.QTreeWidget.invisibleRootItem(tree)
    tree.destroyed.connect(lambda *_args, item=item: shiboken6.invalidate(item))
    return tree


def spec_to_param(spec: Any, value: Any = None, auto: Any = None) -> dict[str, Any]:
    """A ``Parameter.create`` dict for one ParamSpec, showing ``value`` (default if None).

    ``auto`` is what an automatic (None) value resolves to on the current input, shown in
    the title so an empty field never hides the number actually in use.
    """
    v = spec.default if value is None else value
    title = spec.label or spec.name
    opts: dict[str, Any] = {"name": spec.name, "title": title}
    if spec.choices:
        opts.update(type="list", limits=[str(c) if not isinstance(c, (int, float)) else c for c in spec.choices],
                    value=v)
    elif v is None:
        # "automatic" values (None, e.g. ZBox bounds from the input range): free text, empty = auto
        opts.update(type="str", value="", tip="empty = automatic")
        opts["title"] = f"{title} (auto: {auto:.4g})" if isinstance(auto, (int, float)) else f"{title} (auto)"
    elif spec.type is bool:
        opts.update(type="bool", value=bool(v))
    elif spec.type is int and not isinstance(v, (tuple, list)):
        opts.update(type="int", value=int(v if v is not None else 0))
        lim = (spec.min, spec.max)
        if any(x is not None for x in lim):
            opts["limits"] = lim
    elif spec.type is float and not isinstance(v, (tuple, list)):
        opts.update(type="float", value=float(v if v is not None else 0.0), dec=True, step=0.1, minStep=1e-9,
                    decimals=4)
        lim = (spec.min, spec.max)
        if any(x is not None for x in lim):
            opts["limits"] = lim
    else:
        # free text: None shows as empty, tuples as Python literals
        opts.update(type="str", value="" if v is None else (v if isinstance(v, str) else repr(v)))
    return opts


def param_value(spec: Any, raw: Any) -> Any:
    """The Python value of a tree entry edited by the user (text entries parsed)."""
    if spec.choices or spec.type in (bool, int, float) and not isinstance(raw, str):
        return raw
    text = str(raw).strip()
    if text == "":
        return None if spec.default is None else spec.default
    if spec.type is str:
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def specs_by_name(specs: Iterable[Any]) -> dict[str, Any]:
    return {s.name: s for s in specs}
