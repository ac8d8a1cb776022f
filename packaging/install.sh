#!/bin/sh
# Install lrp-viewer from this unpacked tarball, for systems without dpkg/apt.
#
#   ./install.sh                   as root: into /opt/lrp-viewer, link /usr/local/bin/lrp-viewer,
#                                  desktop entry, icons and MIME type under /usr/local/share
#   ./install.sh --user            into ~/.local (no root needed)
#   ./install.sh --prefix DIR      into DIR/lib/lrp-viewer, DIR/bin, DIR/share
#   ./install.sh --uninstall [--user | --prefix DIR]   removes what the same options installed
#
# Nothing else on the system is changed. The program needs glibc >= GLIBC_FLOOR and the
# X11/Wayland client libraries any desktop has (see README.txt).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mode=install
prefix=""
while [ $# -gt 0 ]; do
    case "$1" in
        --user) prefix="$HOME/.local" ;;
        --prefix) prefix="$2"; shift ;;
        --uninstall) mode=uninstall ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$prefix" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install.sh: run as root for a system-wide install, or use --user / --prefix DIR" >&2
        exit 2
    fi
    prefix=/usr/local
    app=/opt/lrp-viewer
else
    app="$prefix/lib/lrp-viewer"
fi
share="$prefix/share"

refresh() {  # the desktop's caches; each tool is optional
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$share/applications" || true
    command -v update-mime-database >/dev/null 2>&1 && update-mime-database "$share/mime" || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
}

if [ "$mode" = uninstall ]; then
    rm -rf "$app"
    rm -f "$prefix/bin/lrp-viewer" "$share/applications/lrp-viewer.desktop" "$share/mime/packages/lrp-viewer.xml"
    find "$share/icons/hicolor" -name 'lrp-viewer.*' -path '*/apps/*' -delete 2>/dev/null || true
    refresh
    echo "lrp-viewer removed from $app"
    exit 0
fi

rm -rf "$app"
mkdir -p "$app" "$prefix/bin" "$share/applications" "$share/mime/packages"
cp -R "$here/lrp-viewer/." "$app/"
ln -sf "$app/lrp-viewer" "$prefix/bin/lrp-viewer"
sed "s|^Exec=lrp-viewer|Exec=$app/lrp-viewer|; s|^TryExec=lrp-viewer|TryExec=$app/lrp-viewer|" \
    "$here/share/applications/lrp-viewer.desktop" > "$share/applications/lrp-viewer.desktop"
cp "$here/share/mime/packages/lrp-viewer.xml" "$share/mime/packages/"
(cd "$here/share/icons" && find hicolor -type f) | while read -r f; do
    mkdir -p "$share/icons/$(dirname "$f")"
    cp "$here/share/icons/$f" "$share/icons/$f"
done
refresh
echo "lrp-viewer installed in $app; run $prefix/bin/lrp-viewer or start it from the desktop menu"
