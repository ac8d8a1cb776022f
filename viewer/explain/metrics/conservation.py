"""How well a map conserves the explained output (LRP's defining property)."""

from __future__ import annotations

from dataclasses import dataclass

from viewer.explain.result import Relevance


@dataclass(frozen=True)
class Conservation:
    """explained = input_sum + absorbed + error; relative_error = |error| / |explained|.

    ``absorbed`` is what biases and stabilisers took on the way (0 when the method
    does not report it); a large relative error points at a layer the rules mishandle.
    """

    explained: float
    input_sum: float
    absorbed: float
    error: float
    relative_error: float


def conservation(result: Relevance) -> Conservation:
    """Summary of the engine's own figures; ValueError when the result lacks them."""
    if result.explained is None:
        raise ValueError(f"The {result.method} result does not report the explained value.")
    input_sum = result.input_sum if result.input_sum is not None else float(result.relevance.sum())
    absorbed = result.absorbed if result.absorbed is not None else 0.0
    error = result.explained - input_sum - absorbed
    scale = abs(result.explained)
    relative = abs(error) / scale if scale > 0 else (0.0 if error == 0 else float("inf"))
    return Conservation(float(result.explained), float(input_sum), float(absorbed), float(error), float(relative))
