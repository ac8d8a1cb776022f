"""What is being explained: a class logit, a contrast of two classes, or a region."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch


def primary_output(out: Any) -> tuple[torch.Tensor | None, str | None]:
    """The tensor that is explained when a model returns several, and a note saying which:
    the first element of a tuple or list, the first tensor of a dict (torchvision's
    segmentation models: ``"out"``; MONAI's HoVerNet: ``"nucleus_prediction"``).
    ``(None, None)`` when there is no such tensor."""
    note = None
    while isinstance(out, (tuple, list)) and out:
        out, note = out[0], "the model returned a tuple; its first element was explained"
    if isinstance(out, Mapping):
        key = next((k for k, v in out.items() if isinstance(v, torch.Tensor)), None)
        if key is None:
            return None, None
        out, note = out[key], f"the model returned a dict; its first tensor, {key!r}, was explained"
    return (out, note) if isinstance(out, torch.Tensor) else (None, None)


@dataclass(frozen=True, eq=False)
class Target:
    """One scalar objective computed from the model output, per batch element.

    * ``kind="class"``: the output of class ``index`` (a logit for classifiers).
    * ``kind="contrast"``: class ``index`` minus class ``other`` ("why a rather than b").
    * ``kind="region"``: for segmentation outputs ``(B, C, *spatial)``, the sum of
      channel ``index`` inside ``mask`` (a boolean/float array of the spatial shape).
    """

    kind: str
    index: int
    other: int | None = None
    mask: Any = field(default=None, repr=False)

    # -- construction -------------------------------------------------------------
    @staticmethod
    def cls(index: int) -> "Target":
        return Target("class", int(index))

    @staticmethod
    def contrast(index: int, other: int) -> "Target":
        return Target("contrast", int(index), int(other))

    @staticmethod
    def region(channel: int, mask: Any) -> "Target":
        return Target("region", int(channel), None, mask)

    @staticmethod
    def resolve(spec: "Target | int | Sequence[int] | None", output: torch.Tensor) -> "Target":
        """Turn a user's target (None, an index, ``(a, b)`` or a Target) into a Target.

        None means the predicted class for classifiers (argmax of the first batch
        element). For segmentation outputs it means the most frequently predicted
        foreground channel inside its own predicted mask.
        """
        if isinstance(spec, Target):
            spec._check(output)
            return spec
        if spec is None:
            if output.ndim <= 2:
                return Target.cls(int(output.reshape(output.shape[0], -1)[0].argmax()))
            labels = output[0].argmax(0)
            counts = torch.bincount(labels.flatten(), minlength=output.shape[1])
            if output.shape[1] > 1:
                counts[0] = -1
            channel = int(counts.argmax())
            return Target.region(channel, (labels == channel).cpu().numpy())
        if isinstance(spec, (int, np.integer)):
            t = Target.cls(int(spec))
        elif isinstance(spec, (tuple, list)) and len(spec) == 2:
            t = Target.contrast(int(spec[0]), int(spec[1]))
        else:
            raise ValueError(f"Target must be None, a class index, (class, other class) or a Target; got {spec!r}")
        t._check(output)
        return t

    def _check(self, output: torch.Tensor) -> None:
        n = output.shape[1] if output.ndim >= 2 else output.shape[0]
        for i in (self.index, self.other):
            if i is not None and not (0 <= i < n):
                raise ValueError(f"Target class {i} is out of range: the model has {n} outputs.")
        if self.kind == "region":
            if output.ndim < 3:
                raise ValueError("A region target needs a segmentation output (B, C, *spatial).")
            if self.mask is not None and tuple(np.shape(self.mask)) != tuple(output.shape[2:]):
                raise ValueError(
                    f"Region mask shape {tuple(np.shape(self.mask))} does not match the output's spatial shape "
                    f"{tuple(output.shape[2:])}."
                )

    # -- maths ----------------------------------------------------------------------
    def seed(self, output: torch.Tensor) -> torch.Tensor:
        """d(objective)/d(output): the tensor a backward pass starts from."""
        g = torch.zeros_like(output)
        if self.kind == "class":
            g.reshape(g.shape[0], g.shape[1], -1)[:, self.index] = 1
        elif self.kind == "contrast":
            g.reshape(g.shape[0], g.shape[1], -1)[:, self.index] = 1
            g.reshape(g.shape[0], g.shape[1], -1)[:, self.other] = -1
        elif self.kind == "region":
            if self.mask is None:
                g[:, self.index] = 1
            else:
                m = torch.as_tensor(np.asarray(self.mask), dtype=output.dtype, device=output.device)
                g[:, self.index] = m
        else:  # pragma: no cover - constructor guards this
            raise ValueError(self.kind)
        return g

    def value(self, output: torch.Tensor) -> torch.Tensor:
        """The objective per batch element, shape (B,)."""
        return (output * self.seed(output)).reshape(output.shape[0], -1).sum(1)

    # -- identity / display -------------------------------------------------------------
    @property
    def key(self) -> tuple:
        """Hashable identity, used for caching results by request."""
        digest = None
        if self.mask is not None:
            digest = hashlib.sha1(np.ascontiguousarray(np.asarray(self.mask, dtype=np.float32)).tobytes()).hexdigest()
        return (self.kind, self.index, self.other, digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def describe(self, labels: Sequence[str] | None = None) -> str:
        def name(i: int) -> str:
            return labels[i] if labels is not None and i < len(labels) else f"class {i}"

        if self.kind == "class":
            return name(self.index)
        if self.kind == "contrast":
            return f"{name(self.index)} vs {name(self.other)}"  # type: ignore[arg-type]
        return f"{name(self.index)} in region"
