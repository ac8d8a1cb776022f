"""Stand-ins for the session tests: a tiny 3D classifier, scans on disk, a counting explain.

The fake model follows the LoadedModel interface (module, labels, task, prepare,
predict, ...) with the scan grid as the model grid, so maps need no resampling and
expected values can be computed directly.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

SHAPE = (12, 10, 8)


@pytest.fixture(autouse=True)
def config_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config folder, so the user's recent files are never touched."""
    d = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("LRP_VIEWER_CONFIG_DIR", str(d))
    return d


class TinyNet(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


class TinySegNet(nn.Module):
    def __init__(self, channels: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(1, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FakeModel:
    """What the session needs of a LoadedModel; model grid = scan grid."""

    def __init__(self, task: str = "classification", structured: bool = True) -> None:
        self.module = (TinySegNet() if task == "segmentation" else TinyNet()).eval()
        self.labels = ["background", "lesion"] if task == "segmentation" else ["normal", "lesion left", "lesion right"]
        self.task = task
        self.spatial_dims = 3
        self.structured = structured
        self.unavailable_reason = "" if structured else "TorchScript hides the layers"
        self.preset = "epsilon-plus"
        self.gradcam_layer = "conv"
        self.input_range = (0.0, 1.0)
        self.name = "tiny"
        self.forward_calls = 0

    def prepare(self, scan: Any) -> tuple[torch.Tensor, Any]:
        x = torch.from_numpy(np.ascontiguousarray(scan.data))[None, None]

        def to_scan(t: Any) -> np.ndarray:
            t = torch.as_tensor(t).detach().float().sum(1)
            return t[0].numpy().astype(np.float32)

        return x, to_scan

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        with torch.no_grad():
            return torch.softmax(self.module(x), dim=1)


SCALE = {"epsilon-plus": 1.0, "epsilon-gamma-box": 2.0, "epsilon-alpha2-beta1": 3.0}


class FakeExplain:
    """Counts calls; input × gradient scaled per preset/method so results differ.

    ``gates[method]``: an Event the call waits on (to hold a job on the worker).
    Method "occlusion": 200 progress steps of 10 ms, honouring cancel; stride=999 fails.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.gates: dict[str, threading.Event] = {}
        self.started = threading.Event()
        self.threads: set[str] = set()

    def count(self, method: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, _ in self.calls if method is None or m == method)

    def __call__(self, module: nn.Module, x: torch.Tensor, method: str = "lrp", target: Any = None,
                 progress: Any = None, **params: Any) -> Any:
        from viewer.explain.result import Relevance
        from viewer.explain.target import Target

        with self.lock:
            self.calls.append((method, dict(params)))
            self.threads.add(threading.current_thread().name)
        self.started.set()
        gate = self.gates.get(method)
        if gate is not None:
            gate.wait(10)
        if params.get("stride") == 999:
            raise ValueError("fake failure: stride too large")
        if method == "occlusion":  # a long multi-pass method that honours cancel
            for step in range(200):
                progress.step(step, 200)
                threading.Event().wait(0.01)
        x = x.detach().clone().requires_grad_(True)
        out = module(x)
        t = Target.resolve(target, out)
        (grad,) = torch.autograd.grad(t.value(out).sum(), x)
        factor = SCALE.get(params.get("preset", ""), 1.0) * (0.5 if method == "gradcam" else 1.0)
        rel = (grad * x).detach() * factor
        explained = float(t.value(out.detach())[0])
        return Relevance(rel, out.detach(), t, method, params.get("preset"), dict(params),
                         explained, float(rel.sum()), explained - float(rel.sum()))


def write_nifti(path: Path, data: np.ndarray, spacing: float = 2.0) -> Path:
    affine = np.diag([spacing, spacing, spacing, 1.0])
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
    return path


@pytest.fixture
def scan_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    return write_nifti(tmp_path / "scan.nii.gz", rng.random(SHAPE, dtype=np.float32))


@pytest.fixture
def mask_file(tmp_path: Path) -> Path:
    m = np.zeros(SHAPE, np.uint8)
    m[2:6, 3:7, 2:5] = 1
    return write_nifti(tmp_path / "mask.nii.gz", m)


@pytest.fixture
def fake_explain() -> FakeExplain:
    return FakeExplain()


@pytest.fixture
def session(fake_explain: FakeExplain):
    from viewer.session import Session

    s = Session(explain_fn=fake_explain)
    yield s
    s.close()


@pytest.fixture
def loaded(session, scan_file: Path):
    """A session with the scan on disk and the fake model, after the first results."""
    session.open_scan(scan_file)
    session.set_model(FakeModel(), path=None)
    assert session.wait_idle(10)
    return session
