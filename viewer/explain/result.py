"""The one result type every attribution method returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from viewer.explain.target import Target


@dataclass(frozen=True)
class Relevance:
    """A signed attribution map for one input and one target.

    ``relevance`` has the input's shape (``(1, C, *spatial)``), signed, detached.
    ``output`` is the model output for the input (the logits when the model ends in a
    softmax). ``explained`` is the target's value f_target(x). ``input_sum`` is the sum
    of ``relevance``. For LRP, ``absorbed`` is the relevance taken up by biases and
    stabilisers on the way, so that ``input_sum + absorbed == explained`` (up to float
    rounding); methods without a conservation law leave it None.
    """

    relevance: torch.Tensor
    output: torch.Tensor
    target: Target
    method: str
    preset: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    explained: float | None = None
    input_sum: float | None = None
    absorbed: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def conservation_error(self) -> float | None:
        """``explained - input_sum - absorbed``: what is lost to rounding, ideally ~0."""
        if self.explained is None or self.input_sum is None or self.absorbed is None:
            return None
        return self.explained - self.input_sum - self.absorbed

    def summary(self) -> dict[str, Any]:
        """Plain numbers for reports (CSV/JSON)."""
        return {
            "method": self.method,
            "preset": self.preset,
            "params": dict(self.params),
            "target": self.target.describe(),
            "explained": self.explained,
            "input_sum": self.input_sum,
            "absorbed": self.absorbed,
            "conservation_error": self.conservation_error,
        }
