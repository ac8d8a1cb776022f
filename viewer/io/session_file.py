"""Session files: a small versioned JSON document that reopens the same view later.

A session file records *where things are* (scan, model, mask) and *how they were
shown* (explanation panels, target, window, cursor, zoom), never the data itself, so
it stays small, diff-able and free of patient data. The headless session
(``viewer.session``) turns its live state into a :class:`SessionState` and back; this
module only reads and writes the file, so it never imports the layers above ``io``.

Paths below the session file's folder are stored relative to it, so a study folder
with its session file can be moved or shared as a whole; other paths are stored
absolute. The model's trust flag is deliberately not stored: reopening a model that
executes code asks again.

Example (version 1)::

    {
      "format": "lrp-viewer-session",
      "version": 1,
      "software": "lrp-viewer 0.1.0",
      "scan": {"path": "case_001.nii.gz", "series_uid": null},
      "model": {"path": "/models/demo3d.toml"},
      "mask": {"path": "case_001_mask.nii.gz"},
      "panels": [{"method": "lrp", "params": {"preset": "epsilon-plus", "epsilon": 1e-6},
                  "overlay": {"colormap": "bwr", "opacity": 0.6}}],
      "target": {"kind": "class", "index": 1},
      "device": "cpu", "precision": "float32",
      "window": {"centre": 40.0, "width": 80.0},
      "view": {"radiological": true, "layout": "grid"},
      "cursor": [12, 20, 8],
      "views": {"axial": {"zoom": 2.0, "pan": [3.5, -1.0]}},
      "comparison_open": false,
      "compare_model": {"path": "/models/demo3d_revised.toml"},
      "graph": {"open": true, "layers": null, "width": [6, 3], "keep": false,
                "selected": ["features.3:27"], "ablations": [["features.3:4", 1]]}
    }

``graph`` (optional; files without it open with the graph closed) holds the attribution
graph's settings and choices as plain values; the session layer checks them on restore.
``compare_model`` (optional) is the second model ("B") the comparison panels may explain
with; each panel's ``"model"`` says which one it uses (``"A"``, the default, or ``"B"``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from viewer.io.atomic import atomic_write
from viewer.io.errors import ExportError, SessionFileError

FORMAT = "lrp-viewer-session"
VERSION = 1
SUFFIX = ".lrpsession"

TargetSpec = None | int | tuple[int, int] | Mapping[str, Any]


@dataclass(frozen=True)
class PanelSpec:
    """One explanation panel: the method, its parameters and how its overlay is drawn.

    ``params`` holds the method's keyword arguments (for LRP also ``preset``), and
    ``overlay`` the overlay settings as plain values (the session layer's
    ``OverlaySettings`` fields), so this module needs nothing from the layers above.
    Values must be JSON-representable (str, int, float, bool, None, lists, dicts).
    """

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    overlay: Mapping[str, Any] = field(default_factory=dict)
    model: str = "A"  # "A": the session's model, "B": the second model (compare_model_path)


@dataclass(frozen=True)
class SessionState:
    """Everything needed to reopen the same view; all fields have neutral defaults.

    Paths are plain strings (absolute after :func:`load_session`). ``target`` is None
    (the predicted class), a class index, ``(a, b)`` (a contrast "a rather than b"), or
    a mapping ``{"kind": "region", "index": channel}`` meaning the channel inside the
    loaded mask. ``window`` is ``(centre, width)`` or None (the scan's default).
    ``view`` holds the view settings (``radiological``, ``layout``, ...), ``views``
    optional zoom/pan per view name (``{"axial": {"zoom": 2.0, "pan": [x, y]}}``).
    ``cursor`` is the crosshair voxel ``(i, j, k)`` or None (the scan's centre).
    ``graph`` is the attribution graph's part (settings, selected nodes, switched-off
    features) as a plain mapping, or None when the file has none. ``compare_model_path``
    is the second model for comparison panels (None: none open).
    """

    scan_path: str | None = None
    series_uid: str | None = None
    model_path: str | None = None
    mask_path: str | None = None
    panels: tuple[PanelSpec, ...] = ()
    target: TargetSpec = None
    device: str = "cpu"
    precision: str = "float32"
    window: tuple[float, float] | None = None
    view: Mapping[str, Any] = field(default_factory=lambda: {"radiological": True, "layout": "grid"})
    cursor: tuple[int, int, int] | None = None
    views: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    comparison_open: bool = False
    graph: Mapping[str, Any] | None = None
    compare_model_path: str | None = None


# -- writing ----------------------------------------------------------------------------


def save_session(state: SessionState, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``state`` as a session file at ``path`` atomically; returns the path.

    Raises :class:`ExportError` when ``path`` exists and ``overwrite`` is False, or when
    a value in the state cannot be written as JSON.
    """
    path = Path(path).absolute()
    doc = to_document(state, base=path.parent)
    try:
        text = json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ExportError(f"The session cannot be saved: a setting is not a plain value ({exc}).") from exc
    with atomic_write(path, "w", overwrite=overwrite) as fh:
        fh.write(text)
    return path


def to_document(state: SessionState, base: Path) -> dict[str, Any]:
    """The JSON document for ``state``, with paths relative to ``base`` where below it."""
    from viewer import __version__ as software_version

    return {
        "format": FORMAT,
        "version": VERSION,
        "software": f"lrp-viewer {software_version}",
        "scan": {"path": _store_path(state.scan_path, base), "series_uid": state.series_uid},
        "model": {"path": _store_path(state.model_path, base)},
        "mask": {"path": _store_path(state.mask_path, base)},
        "panels": [
            {"method": p.method, "params": _plain(dict(p.params)), "overlay": _plain(dict(p.overlay)),
             **({"model": p.model} if p.model != "A" else {})}
            for p in state.panels
        ],
        "target": _target_to_json(state.target),
        "device": state.device,
        "precision": state.precision,
        "window": None if state.window is None else {"centre": float(state.window[0]), "width": float(state.window[1])},
        "view": _plain(dict(state.view)),
        "cursor": None if state.cursor is None else [int(v) for v in state.cursor],
        "views": _plain({str(k): dict(v) for k, v in state.views.items()}),
        "comparison_open": bool(state.comparison_open),
        **({} if state.graph is None else {"graph": _plain(dict(state.graph))}),
        **({} if state.compare_model_path is None else
           {"compare_model": {"path": _store_path(state.compare_model_path, base)}}),
    }


def _store_path(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    p = Path(value).absolute()
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return str(p)


def _plain(value: Any) -> Any:
    """Tuples become lists and numpy scalars Python numbers, so JSON can hold them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _target_to_json(target: TargetSpec) -> Any:
    if target is None:
        return None
    if isinstance(target, bool):
        raise ExportError(f"Unsupported target {target!r}.")
    if isinstance(target, Mapping):
        return _plain(dict(target))
    if isinstance(target, (tuple, list)):
        a, b = target
        return {"kind": "contrast", "index": int(a), "other": int(b)}
    return {"kind": "class", "index": int(target)}


# -- reading ----------------------------------------------------------------------------


def load_session(path: str | os.PathLike) -> SessionState:
    """Read a session file; paths in the result are absolute.

    Raises :class:`SessionFileError` when the file is missing, not JSON, not a session
    file, from a newer lrp-viewer (unknown version) or has malformed entries. Unknown
    extra keys are ignored, so files from later minor releases still open.
    """
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SessionFileError(f"Session file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionFileError(f"Session file {path} cannot be read ({exc}).") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionFileError(
            f"{path.name} is not a valid session file (broken JSON at line {exc.lineno}); "
            "it may be truncated. Open the scan and model again and save a new session."
        ) from exc
    return from_document(doc, base=path.parent, name=path.name)


def from_document(doc: Any, base: Path, name: str = "session file") -> SessionState:
    """Validate a parsed document and build the state; relative paths resolve against ``base``."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SessionFileError(f"{name} is not an lrp-viewer session file (no \"format\": \"{FORMAT}\").")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SessionFileError(f"{name} has no valid format version; it cannot be opened.")
    if version > VERSION:
        raise SessionFileError(
            f"{name} uses session format version {version}, newer than this lrp-viewer reads "
            f"(version {VERSION}); update lrp-viewer to open it."
        )
    if version < 1:
        raise SessionFileError(f"{name} has unsupported session format version {version}.")
    r = _Reader(doc, name)
    scan = r.section("scan")
    window = r.get("window", dict, None)
    cursor = r.get("cursor", list, None)
    if cursor is not None and (len(cursor) != 3 or not all(_is_int(v) for v in cursor)):
        r.fail("cursor", "three voxel indices")
    return SessionState(
        scan_path=_load_path(r.field(scan, "scan", "path", str), base),
        series_uid=r.field(scan, "scan", "series_uid", str),
        model_path=_load_path(r.field(r.section("model"), "model", "path", str), base),
        mask_path=_load_path(r.field(r.section("mask"), "mask", "path", str), base),
        panels=tuple(_panel(r, i, p) for i, p in enumerate(r.get("panels", list, []))),
        target=_target_from_json(r, doc.get("target")),
        device=r.get("device", str, "cpu"),
        precision=r.get("precision", str, "float32"),
        window=None if window is None else (
            _number(r, window, "window", "centre"), _number(r, window, "window", "width")
        ),
        view=r.get("view", dict, {"radiological": True, "layout": "grid"}),
        cursor=None if cursor is None else tuple(int(v) for v in cursor),  # type: ignore[arg-type]
        views=r.get("views", dict, {}),
        comparison_open=r.get("comparison_open", bool, False),
        graph=r.get("graph", dict, None),
        compare_model_path=_load_path(r.field(r.section("compare_model"), "compare_model", "path", str), base),
    )


class _Reader:
    """Type-checked access to the document with messages that name the bad entry."""

    def __init__(self, doc: dict, name: str) -> None:
        self.doc, self.name = doc, name

    def fail(self, key: str, expected: str) -> None:
        raise SessionFileError(f"{self.name} is malformed: \"{key}\" should be {expected}.")

    def get(self, key: str, kind: type, default: Any) -> Any:
        value = self.doc.get(key)
        if value is None:
            return default
        if not isinstance(value, kind):
            self.fail(key, f"a {kind.__name__}")
        return value

    def section(self, key: str) -> dict:
        value = self.get(key, dict, {})
        return value if value is not None else {}

    def field(self, section: dict, key: str, sub: str, kind: type) -> Any:
        value = section.get(sub)
        if value is not None and not isinstance(value, kind):
            self.fail(f"{key}.{sub}", f"a {kind.__name__}")
        return value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(r: _Reader, section: dict, key: str, sub: str) -> float:
    v = section.get(sub)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        r.fail(f"{key}.{sub}", "a number")
    return float(v)


def _panel(r: _Reader, i: int, p: Any) -> PanelSpec:
    if not isinstance(p, dict) or not isinstance(p.get("method"), str):
        r.fail(f"panels[{i}]", "an object with a \"method\" name")
    params, overlay = p.get("params", {}), p.get("overlay", {})
    if not isinstance(params, dict) or not isinstance(overlay, dict):
        r.fail(f"panels[{i}]", "an object whose params and overlay are objects")
    model = p.get("model", "A")
    if model not in ("A", "B"):
        r.fail(f"panels[{i}].model", "\"A\" (the session's model) or \"B\" (the second model)")
    return PanelSpec(method=p["method"], params=params, overlay=overlay, model=model)


def _target_from_json(r: _Reader, value: Any) -> TargetSpec:
    if value is None:
        return None
    if not isinstance(value, dict) or not _is_int(value.get("index")):
        r.fail("target", "null or an object with \"kind\" and \"index\"")
    kind = value.get("kind")
    if kind == "class":
        return int(value["index"])
    if kind == "contrast":
        if not _is_int(value.get("other")):
            r.fail("target.other", "a class index")
        return (int(value["index"]), int(value["other"]))
    if kind == "region":
        return dict(value)
    r.fail("target.kind", "\"class\", \"contrast\" or \"region\"")
    return None  # unreachable: fail raises


def _load_path(value: str | None, base: Path) -> str | None:
    if value is None or value == "":
        return None
    p = Path(value)
    return str(p if p.is_absolute() else (base / p))


# -- checking ---------------------------------------------------------------------------


def missing_files(state: SessionState) -> list[str]:
    """One message per referenced file that is gone, e.g. ``"Scan not found: /a/b.nii.gz"``.

    The caller restores everything else and shows these messages, so a moved mask does
    not prevent reopening the scan and its explanations.
    """
    problems = []
    for role, value in (("Scan", state.scan_path), ("Model", state.model_path), ("Mask", state.mask_path),
                        ("Model B", state.compare_model_path)):
        if value is not None and not Path(value).exists():
            problems.append(f"{role} not found: {value}")
    return problems
