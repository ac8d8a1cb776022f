"""Preview then refine: show Grad-CAM at once, replace it by LRP when that is ready.

Grad-CAM costs less than one gradient (its backward stops at one layer), LRP about one
gradient through the whole network plus its bookkeeping; on a 3D volume the user sees
the coarse map first instead of a spinner. Both results go to the same callback, the
coarse one first.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from viewer.explain.gradcam import gradcam
from viewer.explain.passes import sub_progress
from viewer.explain.progress import Progress
from viewer.explain.result import Relevance

PREVIEW_SHARE = 0.2
"""Part of the progress bar given to the preview."""


def preview_then_refine(model: nn.Module, x: torch.Tensor, target: Any = None, *, preset: str = "epsilon-plus",
                        on_result: Callable[[Relevance], None] | None = None, progress: Progress | None = None,
                        layer: str | None = None, **lrp_params: Any) -> tuple[Relevance, Relevance]:
    """Grad-CAM (``layer``), then LRP (``preset``, ``lrp_params``) for the same target.

    The target is resolved by the preview so the refinement explains the same class
    even when ``target`` is None. Cancellation between the two stops before LRP.
    Returns ``(preview, refined)``.
    """
    coarse = gradcam(model, x, target, layer=layer, progress=sub_progress(progress, 0.0, PREVIEW_SHARE))
    if on_result is not None:
        on_result(coarse)
    if progress is not None:
        progress.step(PREVIEW_SHARE, 1.0)
    from viewer.explain.lrp import lrp  # late: keeps the preview importable on its own

    refined = lrp(model, x, target=coarse.target, preset=preset,
                  progress=sub_progress(progress, PREVIEW_SHARE, 1.0), **lrp_params)
    if on_result is not None:
        on_result(refined)
    if progress is not None:
        progress.step(1.0, 1.0)
    return coarse, refined
