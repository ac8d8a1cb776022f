"""A loaded model together with everything needed to feed and explain it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from viewer.io.scan import Scan
from viewer.models.card import ModelCard
from viewer.models.prepare import ToScan, prepare_scan

PREDICT_BATCH = 32  # 2D models on a volume see one batch element per slice; keep memory bounded


@dataclass(eq=False)
class LoadedModel:
    """A model in eval mode on the CPU, its card, and how to prepare scans for it.

    ``structured`` is False for TorchScript: the module graph is compiled, so methods
    that need to rewrite layers (LRP) or hook a named layer (Grad-CAM) cannot run, and
    ``unavailable_reason`` says so; gradient-based methods still work.
    ``warnings`` collects everything worth telling the user that did not stop loading
    (unknown card fields, guessed labels, guessed input specification, ...).
    """

    module: nn.Module
    card: ModelCard
    kind: str  # "card", "bundle", "torchscript", "pickle"
    structured: bool = True
    unavailable_reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    source: Path | None = None

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def labels(self) -> list[str]:
        return list(self.card.labels)

    @property
    def task(self) -> str:
        return self.card.task

    @property
    def spatial_dims(self) -> int:
        return self.card.input.spatial_dims

    @property
    def input_range(self) -> tuple[float, float] | None:
        return self.card.input.input_range

    @property
    def gradcam_layer(self) -> str | None:
        return self.card.gradcam_layer if self.structured else None

    @property
    def preset(self) -> str:
        return self.card.preset

    def prepare(self, scan: Scan) -> tuple[torch.Tensor, ToScan]:
        """The model input for ``scan`` (B, C, *spatial) and the way back to the scan grid.

        See :func:`viewer.models.prepare.prepare_scan`; ``to_scan.notes`` tells how the
        scan was adapted (resampled, run per axial slice).
        """
        return prepare_scan(scan, self.card.input)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax over dim 1), computed in batches of 32.

        For segmentation the softmax is over the channel dimension (a sigmoid when the
        model has one output channel), giving per-voxel probabilities.
        """
        outs = [self.module(x[i : i + PREDICT_BATCH]) for i in range(0, x.shape[0], PREDICT_BATCH)]
        out = torch.cat(outs).float()
        if out.shape[1] == 1 and self.task == "segmentation":
            return torch.sigmoid(out)
        return torch.softmax(out, dim=1)

    def describe(self) -> str:
        """A few lines for the UI's model panel."""
        spec = self.card.input
        lines = [
            f"{self.name} ({self.kind}{'' if self.structured else ', TorchScript'})",
            f"Task: {self.task}; labels: {', '.join(self.labels) if self.labels else 'unknown'}",
            f"Input: {spec.describe()}",
            f"Input range (ZBox): {list(spec.input_range) if spec.input_range else 'from the input'}",
            f"Grad-CAM layer: {self.gradcam_layer or 'none'}; recommended LRP preset: {self.preset}",
        ]
        if not self.structured and self.unavailable_reason:
            lines.append(f"Unavailable: {self.unavailable_reason}")
        if self.card.description:
            lines.insert(1, self.card.description)
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)
