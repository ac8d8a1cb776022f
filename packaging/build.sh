#!/usr/bin/env bash
# Build the installable desktop program: a one-folder PyInstaller bundle, a .deb and a
# .tar.gz with install.sh. Needs no display and no Python on the target machine.
#
#   packaging/build.sh [--cpu | --cuda] [--no-deb] [--no-tar] [--update-lock] [--clean]
#
#   --cpu   (default) CPU-only torch: about 1 GB unpacked, runs on any x86-64 workstation
#   --cuda  torch with CUDA (NVIDIA libraries bundled, several GB; NVIDIA licences apply)
#   --clean PyInstaller without its analysis cache (packaging/build/pyinstaller-<variant>)
#
# Reproducible: the build environment is a fresh venv under packaging/build/ pinned by
# packaging/requirements-<variant>.lock (written by --update-lock from what was installed);
# timestamps come from the last commit (SOURCE_DATE_EPOCH), archives are sorted with
# fixed owners. Outputs in dist/: lrp-viewer_<version>_amd64.deb (CPU) or
# lrp-viewer-cuda_<version>_amd64.deb, and lrp-viewer-<version>-linux-x86_64[-cuda].tar.gz.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

variant=cpu
make_deb=1
make_tar=1
update_lock=0
clean=""
for arg in "$@"; do
    case "$arg" in
        --cpu) variant=cpu ;;
        --cuda) variant=cuda ;;
        --no-deb) make_deb=0 ;;
        --no-tar) make_tar=0 ;;
        --update-lock) update_lock=1 ;;
        --clean) clean=--clean ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done

started=$(date +%s)
work="$root/packaging/build/$variant"
venv="$root/packaging/build/venv-$variant"
lock="$root/packaging/requirements-$variant.lock"
dist="$root/dist"
PYTHON=${PYTHON:-python3}
# CPU torch: this pin resolves to the +cpu wheel where one is offered (here: /opt/wheels);
# elsewhere pass e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_PIP_ARGS=${TORCH_PIP_ARGS:-}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export PYTHONHASHSEED=0 LRP_BUILD_VARIANT=$variant QT_QPA_PLATFORM=offscreen PIP_DISABLE_PIP_VERSION_CHECK=1
unset DISPLAY WAYLAND_DISPLAY || true

step() { printf '\n== %s (%ds)\n' "$1" $(( $(date +%s) - started )); }

step "build environment $venv"
if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
fi
constraints=()
[ -f "$lock" ] && [ "$update_lock" = 0 ] && constraints=(-c "$lock")
# shellcheck disable=SC2086
"$venv/bin/pip" install -q "${constraints[@]}" $TORCH_PIP_ARGS "$TORCH_SPEC"
"$venv/bin/pip" install -q "${constraints[@]}" "pyinstaller>=6.10" "pyinstaller-hooks-contrib>=2024.8" "$root"
"$venv/bin/pip" uninstall -q -y pylibjpeg-libjpeg 2>/dev/null || true
cuda=$("$venv/bin/python" -c "import torch; print(torch.version.cuda or '')")
if [ "$variant" = cpu ] && [ -n "$cuda" ]; then
    echo "build.sh: --cpu but the installed torch is built for CUDA $cuda; set TORCH_PIP_ARGS to a CPU index" >&2
    exit 1
fi
if [ "$variant" = cpu ]; then
    # torch's CPU wheel does not need triton; a resolver may still have brought it
    "$venv/bin/pip" uninstall -q -y triton 2>/dev/null || true
fi
if [ "$update_lock" = 1 ] || [ ! -f "$lock" ]; then
    "$venv/bin/pip" freeze --exclude-editable | grep -v -i '^lrp-viewer' > "$lock"
    echo "pinned $(wc -l < "$lock") packages in ${lock#"$root"/}"
fi
version=$("$venv/bin/python" -c "import viewer; print(viewer.__version__)")
torch_version=$("$venv/bin/python" -c "import torch; print(torch.__version__)")

step "licences"
rm -rf "$work"
mkdir -p "$work/licences" "$dist"
"$venv/bin/python" -m viewer.cli.main notices --check \
    --build "$variant build, torch $torch_version, $(uname -m)" --output "$work/THIRD_PARTY_NOTICES"
cp LICENSE "$work/LICENSE"
cp resources/LICENSES/* "$work/licences/"
for f in LGPL-3 GPL-3; do  # LGPL-3.0 (Qt, PySide6) is GPL-3.0 plus permissions: both texts go along
    [ -f "/usr/share/common-licenses/$f" ] && cp "/usr/share/common-licenses/$f" "$work/licences/$f.0.txt"
done

step "PyInstaller ($variant)"
# shellcheck disable=SC2086
"$venv/bin/pyinstaller" --noconfirm $clean --log-level WARN \
    --distpath "$work/dist" --workpath "$root/packaging/build/pyinstaller-$variant" packaging/lrp-viewer.spec
app="$work/dist/lrp-viewer"
if command -v dpkg >/dev/null; then
    "$venv/bin/python" packaging/host_notices.py "$app" "$work/THIRD_PARTY_NOTICES"
fi
cp "$work/LICENSE" "$work/THIRD_PARTY_NOTICES" "$app/"
cp -R "$work/licences" "$app/licences"
mkdir -p "$app/share/applications" "$app/share/mime/packages" "$app/share/icons"
cp packaging/lrp-viewer.desktop "$app/share/applications/"
cp packaging/lrp-viewer-mime.xml "$app/share/mime/packages/lrp-viewer.xml"
cp -R resources/icons/hicolor "$app/share/icons/"
mkdir -p "$app/share/icons/hicolor/scalable/apps"
cp resources/icons/lrp-viewer.svg "$app/share/icons/hicolor/scalable/apps/"
find "$app" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# The oldest glibc the bundle runs on: the newest GLIBC_x.y symbol version any bundled
# binary asks for (PyInstaller bundles the build host's libstdc++/libexpat/... too).
glibc_floor=$(find "$app" -type f \( -name '*.so*' -o -name lrp-viewer \) -exec objdump -T {} + 2>/dev/null \
    | grep -o 'GLIBC_[0-9][0-9.]*' | sort -u -V | tail -1 | sed 's/GLIBC_//')
printf '%s\n' "$glibc_floor" > "$app/GLIBC_FLOOR"
size_bytes=$(du -sb "$app" | cut -f1)
size_human=$(du -sh "$app" | cut -f1)

name=lrp-viewer
[ "$variant" = cuda ] && name=lrp-viewer-cuda
if [ "$make_deb" = 1 ]; then
    step ".deb"
    deb="$work/deb"
    rm -rf "$deb"
    mkdir -p "$deb/DEBIAN" "$deb/opt" "$deb/usr/bin" "$deb/usr/share/applications" "$deb/usr/share/mime/packages" \
        "$deb/usr/share/icons" "$deb/usr/share/doc/$name"
    cp -R "$app" "$deb/opt/lrp-viewer"
    ln -s /opt/lrp-viewer/lrp-viewer "$deb/usr/bin/lrp-viewer"
    cp packaging/lrp-viewer.desktop "$deb/usr/share/applications/"
    cp packaging/lrp-viewer-mime.xml "$deb/usr/share/mime/packages/lrp-viewer.xml"
    cp -R "$app/share/icons/hicolor" "$deb/usr/share/icons/"
    { echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
      echo "Upstream-Name: lrp-viewer"; echo; echo "Files: *"; echo "License: BSD-3-Clause"; echo
      echo "Comment: bundled third-party software and its licences: /opt/lrp-viewer/THIRD_PARTY_NOTICES";
      echo; sed 's/^$/./; s/^/ /' LICENSE; } > "$deb/usr/share/doc/$name/copyright"
    installed_kb=$(du -sk --exclude=DEBIAN "$deb" | cut -f1)
    # Libraries Qt's xcb platform plugin and the bundled Python modules load from the system
    # (PyInstaller leaves graphics/X11 libraries to the host); glibc from the floor above.
    cat > "$deb/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: amd64
Maintainer: lrp-viewer developers <lrp-viewer@users.noreply.github.com>
Installed-Size: $installed_kb
Depends: libc6 (>= $glibc_floor), libgl1, libegl1, libfontconfig1, libfreetype6, libglib2.0-0, libdbus-1-3, libxkbcommon0, libxkbcommon-x11-0, libx11-xcb1, libxcb1, libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, libxcb-shape0, libxcb-xinerama0, libxcb-xkb1, libxcb-shm0, libxcb-sync1, libxcb-xfixes0, libxcb-render0
Recommends: desktop-file-utils, shared-mime-info, hicolor-icon-theme
Conflicts: $( [ "$name" = lrp-viewer ] && echo lrp-viewer-cuda || echo lrp-viewer )
Section: science
Priority: optional
Homepage: https://github.com/lrp-viewer/lrp-viewer
Description: explain medical-imaging neural networks with LRP, slice by slice
 Opens NIfTI/DICOM/PNG/TIFF scans and PyTorch models, explains predictions with
 Layer-wise Relevance Propagation and other attribution methods, and shows the
 relevance as overlays. Self-contained ($variant build of torch $torch_version); includes the
 batch command line (lrp-viewer batch). LRP is reported by its inventors to be
 patented (free for research use).
CONTROL
    deb_file="$dist/${name}_${version}_amd64.deb"
    dpkg-deb --root-owner-group -Zzstd -z9 --build "$deb" "$deb_file" >/dev/null
    rm -rf "$deb"
    echo "built ${deb_file#"$root"/} ($(du -h "$deb_file" | cut -f1))"
fi

if [ "$make_tar" = 1 ]; then
    step ".tar.gz"
    suffix=""
    [ "$variant" = cuda ] && suffix="-cuda"
    tar_dir="$work/tar/lrp-viewer-$version-linux-x86_64$suffix"
    rm -rf "$work/tar"
    mkdir -p "$tar_dir"
    cp -R "$app" "$tar_dir/lrp-viewer"
    cp -R "$app/share" "$tar_dir/share"
    sed "s/GLIBC_FLOOR/$glibc_floor/" packaging/install.sh > "$tar_dir/install.sh"
    chmod 755 "$tar_dir/install.sh"
    cp LICENSE "$app/THIRD_PARTY_NOTICES" "$tar_dir/"
    printf 'lrp-viewer %s (%s build, torch %s)\n\nInstall: ./install.sh (root) or ./install.sh --user\nNeeds: x86-64 Linux, glibc >= %s, an X11 or Wayland desktop (Qt loads the system libxcb/libGL/fontconfig).\nOr run it in place: ./lrp-viewer/lrp-viewer\n' \
        "$version" "$variant" "$torch_version" "$glibc_floor" > "$tar_dir/README.txt"
    find "$work/tar" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    tar_file="$dist/$(basename "$tar_dir").tar.gz"
    tar -C "$work/tar" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        -cf - "$(basename "$tar_dir")" | gzip -n -6 > "$tar_file"
    rm -rf "$work/tar"
    echo "built ${tar_file#"$root"/} ($(du -h "$tar_file" | cut -f1))"
fi

step "done"
echo "bundle:      ${app#"$root"/}  $size_human unpacked ($size_bytes bytes)"
echo "glibc floor: $glibc_floor"
echo "version:     $version ($variant, torch $torch_version)"
echo "build time:  $(( $(date +%s) - started )) s"
