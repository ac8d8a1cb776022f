"""Cursor clamping and the per-slice relevance profile."""

import numpy as np
import pytest

from viewer.io.scan import Scan
from viewer.session.cursor import Cursor
from viewer.session.profile import relevance_profile


def test_cursor_is_clamped_and_rounded() -> None:
    shape = (10, 20, 5)
    assert Cursor.clamped((-3, 25, 2.6), shape).ijk == (0, 19, 3)
    assert Cursor.clamped((9.4, 0, float("nan")), shape).ijk == (9, 0, 0)
    assert Cursor.centre(shape).ijk == (5, 10, 2)
    c = Cursor.centre(shape)
    assert c.moved(2, 10, shape).ijk == (5, 10, 4)
    assert c.moved(0, -1, shape).ijk == (4, 10, 2)
    with pytest.raises(ValueError):
        Cursor.clamped((1, 2), shape)


def test_cursor_world_position() -> None:
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = (-10, 5, 1)
    scan = Scan(np.zeros((4, 4, 4), np.float32), affine, (2, 3, 4))
    assert Cursor((1, 2, 3)).world(scan) == pytest.approx([-8.0, 11.0, 13.0])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_profile_sums_equal_numpy_sums(axis: int) -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=(7, 6, 5)).astype(np.float32)
    p = relevance_profile(r, axis)
    for k in range(r.shape[axis]):
        sl = np.take(r, k, axis=axis).astype(np.float64)
        assert p.positive[k] == pytest.approx(sl[sl > 0].sum())
        assert p.negative[k] == pytest.approx(sl[sl < 0].sum())
    assert p.positive.shape == (r.shape[axis],)
    assert p.total.sum() == pytest.approx(r.astype(np.float64).sum())
    assert (p.negative <= 0).all() and (p.positive >= 0).all()


def test_profile_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        relevance_profile(np.zeros((3, 3)), 0)
    with pytest.raises(ValueError):
        relevance_profile(np.zeros((3, 3, 3)), 3)
