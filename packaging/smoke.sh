#!/usr/bin/env bash
# Smoke test of a built artifact, installed into a throw-away root (no container, no root
# rights needed, nothing on the system changed):
#
#   packaging/smoke.sh [--deb dist/lrp-viewer_*_amd64.deb | --tar dist/lrp-viewer-*.tar.gz] [--keep]
#
# .deb: unpacked with dpkg-deb -x into a temporary root, checked (control fields, /usr/bin
# link, desktop entry, icons, MIME type). .tar.gz: unpacked and installed with its
# install.sh --prefix into a temporary prefix. Then the installed program must: print its
# version; run `batch --help`; decode a JPEG-lossless, a JPEG-LS, a JPEG 2000 and a 12-bit
# JPEG Extended DICOM (from pydicom-data, via `batch` with the 2D demo model), with the
# same predictions as the pip install in .venv; and, under Xvfb, open the demo and show its
# LRP overlay (--benchmark-first-overlay). Prints the unpacked size and the start time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
kind=""
artifact=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --deb) kind=deb; artifact="$2"; shift ;;
        --tar) kind=tar; artifact="$2"; shift ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "smoke.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$artifact" ]; then
    kind=deb
    artifact=$(ls -t dist/lrp-viewer_*_amd64.deb 2>/dev/null | head -1 || true)
fi
[ -f "$artifact" ] || { echo "smoke.sh: no artifact (build one with packaging/build.sh)" >&2; exit 2; }
tmp=$(mktemp -d /tmp/lrp-viewer-smoke.XXXXXX)
[ "$keep" = 1 ] || trap 'rm -rf "$tmp"' EXIT
failures=0
check() {  # check "what" command...
    local what=$1; shift
    if "$@" >/dev/null 2>"$tmp/last.err"; then echo "ok    $what"; else
        echo "FAIL  $what"; sed 's/^/      /' "$tmp/last.err" | tail -5; failures=$((failures + 1)); fi
}

echo "artifact: $artifact ($(du -h "$artifact" | cut -f1))"
if [ "$kind" = deb ]; then
    dpkg-deb -x "$artifact" "$tmp/root"
    dpkg-deb -e "$artifact" "$tmp/DEBIAN"
    app_dir="$tmp/root/opt/lrp-viewer"
    app="$app_dir/lrp-viewer"
    check "control: package and version" grep -q "^Version: " "$tmp/DEBIAN/control"
    check "/usr/bin/lrp-viewer -> /opt/lrp-viewer/lrp-viewer" \
        test "$(readlink "$tmp/root/usr/bin/lrp-viewer")" = /opt/lrp-viewer/lrp-viewer
    desktop="$tmp/root/usr/share/applications/lrp-viewer.desktop"
    check "hicolor icons" test -f "$tmp/root/usr/share/icons/hicolor/48x48/apps/lrp-viewer.png"
    check "MIME type" test -f "$tmp/root/usr/share/mime/packages/lrp-viewer.xml"
    check "copyright" test -f "$tmp/root/usr/share/doc/$(sed -n 's/^Package: //p' "$tmp/DEBIAN/control")/copyright"
else
    mkdir -p "$tmp/unpacked"
    tar -xzf "$artifact" -C "$tmp/unpacked"
    sh "$tmp"/unpacked/*/install.sh --prefix "$tmp/prefix" >/dev/null
    app_dir="$tmp/prefix/lib/lrp-viewer"
    app="$tmp/prefix/bin/lrp-viewer"
    desktop="$tmp/prefix/share/applications/lrp-viewer.desktop"
fi
check "desktop entry installed" test -f "$desktop"
if command -v desktop-file-validate >/dev/null; then check "desktop-file-validate" desktop-file-validate "$desktop"; fi
check "LICENSE and THIRD_PARTY_NOTICES inside" test -s "$app_dir/LICENSE" -a -s "$app_dir/THIRD_PARTY_NOTICES"
check "no GPL code inside (libjpeg decoder, GNU readline)" \
    test -z "$(find "$app_dir" -name '_libjpeg*' -o -name 'libjpeg' -type d -o -name 'libreadline*')"
check "notices of the host's system libraries" grep -q "System libraries copied from the build host" \
    "$app_dir/THIRD_PARTY_NOTICES"
check "no triton package, torch tests, headers or pyqtgraph examples inside" test ! -e "$app_dir/_internal/triton" \
    -a ! -e "$app_dir/_internal/torch/test" -a ! -e "$app_dir/_internal/torch/include" \
    -a ! -e "$app_dir/_internal/pyqtgraph/examples"

version=$("$app" --version)
check "--version ($version)" test "$version" = "lrp-viewer $(.venv/bin/python -c 'import viewer; print(viewer.__version__)' 2>/dev/null || echo "${version#lrp-viewer }")"
check "batch --help" "$app" batch --help
"$app" notices > "$tmp/notices.txt"
check "notices (Qt LGPL, patent note)" grep -q "LRP is reported by its inventors to be patented" "$tmp/notices.txt"

# Compressed DICOMs through the installed decoders, predictions compared with the pip install.
py=.venv/bin/python
if [ -x "$py" ] && "$py" -c "import data_store" 2>/dev/null; then
    mapfile -t dicoms < <("$py" - <<'PY'
from pathlib import Path
import data_store, pydicom.data
dirs = [Path(data_store.__file__).parent / "data", Path(pydicom.data.__file__).parent / "test_files"]
for name in ("JPEG-LL.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "JPGExtended.dcm"):
    print(next(str(d / name) for d in dirs if (d / name).is_file()))
PY
)
    demo_card="$app_dir/_internal/viewer/resources/demo/demo2d.toml"
    "$app" batch --model "$demo_card" --out "$tmp/batch-installed" "${dicoms[@]}" >"$tmp/batch.log" 2>&1 || true
    .venv/bin/lrp-viewer batch --model resources/demo/demo2d.toml --out "$tmp/batch-pip" "${dicoms[@]}" \
        >"$tmp/batch-pip.log" 2>&1 || true
    check "JPEG-lossless, JPEG-LS, JPEG 2000, 12-bit JPEG DICOMs decode and predict as with pip" "$py" - \
        "$tmp/batch-installed/summary.csv" "$tmp/batch-pip/summary.csv" <<'PY'
import csv, sys
def rows(path):
    with open(path, newline="") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}
mine, ref = rows(sys.argv[1]), rows(sys.argv[2])
assert len(mine) == 4 and all(r["status"] == "ok" for r in mine.values()), [(k, r["status"], r["error"]) for k, r in mine.items()]
for case, r in ref.items():
    assert mine[case]["prediction"] == r["prediction"], case
    for col in (c for c in r if c.startswith("p.")):
        assert abs(float(mine[case][col]) - float(r[col])) < 1e-3, (case, col, mine[case][col], r[col])
PY
else
    echo "skip  DICOM decoding (no .venv with pydicom-data here)"
fi

# The demo with its overlay, in a real X server.
if command -v xvfb-run >/dev/null; then
    t0=$(date +%s.%N)
    out=$(timeout 600 xvfb-run -a -s "-screen 0 1600x1000x24" "$app" --benchmark-first-overlay 2>"$tmp/gui.err" || true)
    t1=$(date +%s.%N)
    first=$(printf '%s\n' "$out" | sed -n 's/^first_overlay_s=//p')
    final=$(printf '%s\n' "$out" | sed -n 's/^final_overlay_s=//p')
    check "demo overlay appears under Xvfb (first ${first:-none} s, final ${final:-none} s)" \
        test -n "$final" -a "$first" != timeout
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "      start to exit incl. Xvfb: %.1f s\n", b - a }'
else
    echo "skip  GUI (xvfb-run is not installed: apt-get install xvfb)"
fi

echo "unpacked size: $(du -sh "$app_dir" | cut -f1) ($(du -sb "$app_dir" | cut -f1) bytes)"
if [ "$failures" = 0 ]; then echo "smoke test passed"; else echo "smoke test: $failures check(s) failed"; exit 1; fi
