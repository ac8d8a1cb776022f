"""The 900³ int16 NIfTI with a scale slope: refused by the default budget, loaded within its real peak when allowed.

Each case runs in a subprocess whose address space is limited (``RLIMIT_AS``) to what it
has after its imports plus a stated headroom, so a reader that needs more than the result
and one slab fails there with MemoryError instead of swapping the test machine.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

N = 900
SLOPE, INTER = 0.5, -10.0
RESULT_BYTES = N**3 * 4  # the float32 scan: 2.7 GiB
MARKED = (0, 450, 899)  # planes that hold a pattern; all others are zeros


def marked_plane(k: int) -> np.ndarray:
    i, j = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    return ((i + 2 * j + k) % 1000).astype(np.int16)


@pytest.fixture(scope="module")
def big_nifti(tmp_path_factory) -> Path:
    """900³ int16 with slope 0.5, intercept −10, ~1.4 MB on disk, written in a second.

    A gzip file may hold several members, read back as one stream; the identical
    compressed zero plane is repeated instead of compressing 1.4 GB of zeros.
    """
    path = tmp_path_factory.mktemp("big") / "big.nii.gz"
    header = nib.Nifti1Header()
    header.set_data_shape((N, N, N))
    header.set_data_dtype(np.int16)
    header.set_slope_inter(SLOPE, INTER)
    header.set_sform(np.eye(4), code=1)
    header["vox_offset"] = 352
    zero_member = gzip.compress(bytes(N * N * 2), compresslevel=9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(header.binaryblock + b"\x00" * 4))
        for k in range(N):
            fh.write(gzip.compress(marked_plane(k).tobytes(order="F")) if k in MARKED else zero_member)
    assert path.stat().st_size < 2_000_000
    return path


CHILD = r"""
import json, resource, sys
import numpy as np
from viewer.io import ScanLoadError, load_scan
import nibabel as nib, tempfile, os

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

# warm up every import and code path on a tiny file before the limit is set
tiny = os.path.join(tempfile.mkdtemp(), "t.nii.gz")
img = nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.eye(4)); img.header.set_slope_inter(0.5, 1.0)
nib.save(img, tiny); load_scan(tiny)

path, max_voxels, headroom = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
limit = status("VmSize") + headroom
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
rss_before = status("VmRSS")
try:
    scan = load_scan(path, max_voxels=max_voxels or None)  # 0: the default budget
except ScanLoadError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(0)
d = scan.data
points = [[0, 0, 0], [1, 2, 0], [899, 899, 0], [17, 30, 450], [899, 0, 899], [5, 5, 5], [600, 300, 898]]
print(json.dumps({
    "shape": list(scan.shape),
    "values": [float(d[i, j, k]) for i, j, k in points],
    "points": points,
    # VmHWM belongs to this process's address space; ru_maxrss can carry the peak of the
    # (large) test process this child was forked from
    "peak_rss_growth": status("VmHWM") - rss_before,
    "notes": scan.meta["notes"],
}))
"""


def run_child(path: Path, max_voxels: int, headroom: int) -> dict:
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.pop("LRP_VIEWER_MAX_VOXELS", None)
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(max_voxels), str(headroom)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_default_budget_refuses_it_cleanly_before_reading(big_nifti):
    out = run_child(big_nifti, 0, 256 * 2**20)
    assert out["error"] == "ScanTooLargeError"
    assert "big.nii.gz is 900 × 900 × 900 = 729,000,000 voxels, more than the limit of 536,870,912" in out["message"]


def test_with_a_raised_budget_it_loads_within_result_plus_a_slab(big_nifti):
    out = run_child(big_nifti, 10**9, RESULT_BYTES + 512 * 2**20)  # address space: imports + result + 0.5 GiB
    assert out.get("error") is None, out
    assert out["shape"] == [N, N, N]
    for (i, j, k), value in zip(out["points"], out["values"]):
        stored = (i + 2 * j + k) % 1000 if k in MARKED else 0
        assert value == stored * SLOPE + INTER, (i, j, k)
    assert out["peak_rss_growth"] < RESULT_BYTES + 400 * 2**20


def test_real_out_of_memory_is_reported_as_such(big_nifti):
    out = run_child(big_nifti, 10**9, 2**30)  # budget allows it, the address space does not
    assert out["error"] == "ScanLoadError"
    assert out["message"].startswith("big.nii.gz does not fit in the memory this program may use (900 × 900 × 900 = "
                                      "729,000,000 voxels, 2.7 GiB as 32-bit values)")
    assert "ran out of memory" in out["message"] and "truncated" not in out["message"]
