"""How a scan's voxel axes map onto the screen for each view, as the UI draws them.

Exported figures must look exactly like the app, so the conventions live here, in one
small table, rather than inside the renderer:

* axial: axis 0 horizontal, axis 1 vertical with Anterior at the top;
* coronal: axis 0 horizontal, axis 2 vertical with Superior at the top;
* sagittal: axis 1 horizontal with Anterior on the left, axis 2 vertical;
* radiological convention (the default) puts the patient's Right on the screen's left
  in axial and coronal views; neurological puts it on the right;
* a planar image (no patient geometry) is drawn as the file shows it: axis 0 to the
  right, axis 1 upwards, no orientation letters.

Scans are in RAS+ voxel order (axis 0 towards Right, 1 Anterior, 2 Superior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VIEWS: tuple[str, ...] = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class ViewGeometry:
    """One view: which scan axes run across and down, and how they are flipped.

    ``flip_h`` True means the horizontal axis' index grows towards the screen's left;
    ``flip_v`` True means the vertical axis' index grows upwards (the usual case).
    ``letters`` are the orientation letters at the (left, right, top, bottom) edges,
    empty strings for a planar image.
    """

    name: str
    h_axis: int
    v_axis: int
    slice_axis: int
    flip_h: bool
    flip_v: bool
    letters: tuple[str, str, str, str]


def view_geometry(name: str, radiological: bool = True, planar: bool = False) -> ViewGeometry:
    """The screen mapping of view ``name`` ("axial", "coronal" or "sagittal")."""
    if planar:
        if name != "axial":
            raise ValueError("A planar image has a single view ('axial').")
        return ViewGeometry("axial", 0, 1, 2, flip_h=False, flip_v=True, letters=("", "", "", ""))
    # axis 0 grows towards the patient's Right; radiological shows Right on the left
    lr = ("R", "L") if radiological else ("L", "R")
    if name == "axial":
        return ViewGeometry(name, 0, 1, 2, flip_h=radiological, flip_v=True, letters=(*lr, "A", "P"))
    if name == "coronal":
        return ViewGeometry(name, 0, 2, 1, flip_h=radiological, flip_v=True, letters=(*lr, "S", "I"))
    if name == "sagittal":
        # axis 1 grows towards Anterior, drawn on the left
        return ViewGeometry(name, 1, 2, 0, flip_h=True, flip_v=True, letters=("A", "P", "S", "I"))
    raise ValueError(f"Unknown view {name!r}; choose one of {', '.join(VIEWS)}.")


def screen_slice(volume: np.ndarray, geometry: ViewGeometry, index: int) -> np.ndarray:
    """The 2D slice at ``index`` along the view's slice axis, as ``[row, column]`` on screen.

    Row 0 is the top of the screen and column 0 its left edge; works for any trailing
    channel dimensions (e.g. RGBA).
    """
    plane = np.take(volume, int(index), axis=geometry.slice_axis)
    # remaining axes keep their order; make it (h, v) then transpose to (v=row, h=column)
    axes = [a for a in range(3) if a != geometry.slice_axis]
    order = [axes.index(geometry.h_axis), axes.index(geometry.v_axis)]
    plane = np.moveaxis(plane, order, [0, 1])
    screen = np.swapaxes(plane, 0, 1)
    if geometry.flip_v:
        screen = screen[::-1]
    if geometry.flip_h:
        screen = screen[:, ::-1]
    return screen


def physical_size(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], geometry: ViewGeometry
) -> tuple[float, float]:
    """(width, height) of the view in millimetres, so pixels can be made square."""
    return shape[geometry.h_axis] * spacing[geometry.h_axis], shape[geometry.v_axis] * spacing[geometry.v_axis]


def resample(image: np.ndarray, width: int, height: int, interpolation: str = "nearest") -> np.ndarray:
    """Resize a ``[row, column, ...]`` array to ``(height, width)`` by sampling pixel centres.

    Nearest keeps voxel edges visible (honest about resolution); bilinear is smoother
    for publication figures. Pure numpy so the renderer needs nothing beyond Pillow.
    """
    rows, cols = image.shape[:2]
    r = (np.arange(height) + 0.5) * rows / height - 0.5
    c = (np.arange(width) + 0.5) * cols / width - 0.5
    if interpolation == "nearest":
        ri = np.clip(np.floor(r + 0.5).astype(np.intp), 0, rows - 1)
        ci = np.clip(np.floor(c + 0.5).astype(np.intp), 0, cols - 1)
        return image[ri][:, ci]
    if interpolation != "bilinear":
        raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
    r = np.clip(r, 0, rows - 1)
    c = np.clip(c, 0, cols - 1)
    r0 = np.floor(r).astype(np.intp)
    c0 = np.floor(c).astype(np.intp)
    r1 = np.minimum(r0 + 1, rows - 1)
    c1 = np.minimum(c0 + 1, cols - 1)
    extra = (1,) * (image.ndim - 2)
    wr = (r - r0).reshape((-1, 1) + extra)
    wc = (c - c0).reshape((1, -1) + extra)
    a = image.astype(np.float32)
    top = a[r0][:, c0] * (1 - wc) + a[r0][:, c1] * wc
    bottom = a[r1][:, c0] * (1 - wc) + a[r1][:, c1] * wc
    return top * (1 - wr) + bottom * wr
