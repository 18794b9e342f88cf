#!/usr/bin/env bash
# Desktop bundle test: makes the .deb with cpack from an existing build, installs
# it with apt, checks files, binaries, desktop entry and AppStream metainfo,
# (GUI smoke test: see the hook below), then removes the package. Run as root.
#   packaging/tests/test_deb.sh [BUILD_DIR] [MODEL]
#   BUILD_DIR  a configured and built CMake build folder (default: build)
#   MODEL      a GGUF file (default: $GLASSBOX_MODEL, else models/gemma-3-270m-q4_k_m.gguf)
#   GLASSBOX_DEB_REQUIRE_GUI=1  fail (instead of skipping) when the package has no /usr/bin/glassbox
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$repo/build}" && pwd)"
model="${2:-${GLASSBOX_MODEL:-$repo/models/gemma-3-270m-q4_k_m.gguf}}"
model="$(realpath "$model")"
require_gui="${GLASSBOX_DEB_REQUIRE_GUI:-0}"
app_id=io.glassbox.Glassbox

step() { printf '\n== deb: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
ok()   { printf 'ok: %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs and removes the package with apt)"
[ -f "$build/CMakeCache.txt" ] || fail "$build is not a CMake build folder"
[ -f "$model" ] || fail "model not found: $model"

step "tools"
tools=(dpkg-dev desktop-file-utils appstream xvfb xauth)
missing=()
for p in "${tools[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
ok "dpkg-dev desktop-file-utils appstream xvfb present"

# Leave the machine as we found it: remove the package on any exit once installed.
installed=0
cleanup() {
    if [ "$installed" -eq 1 ]; then apt-get purge -y -qq glassbox >/dev/null 2>&1 || true; fi
    [ -n "${tmp:-}" ] && rm -rf "$tmp"
}
trap cleanup EXIT
tmp="$(mktemp -d)"

if dpkg -s glassbox >/dev/null 2>&1; then
    step "purging an earlier glassbox package"
    apt-get purge -y -qq glassbox
fi

step "cpack -G DEB in $build"
version="$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$build/CMakeCache.txt")"
arch="$(dpkg --print-architecture)"
[ -n "$version" ] || fail "no CMAKE_PROJECT_VERSION in $build/CMakeCache.txt"
rm -f "$build"/glassbox_*.deb
(cd "$build" && cpack -G DEB)
deb="$build/glassbox_${version}_${arch}.deb"
[ -f "$deb" ] || fail "expected $deb; got: $(ls "$build"/*.deb 2>/dev/null || echo none)"
ok "built $(basename "$deb") ($(du -h "$deb" | cut -f1))"
dpkg-deb --field "$deb" Package Version Architecture Maintainer Section Depends Recommends Suggests
depends="$(dpkg-deb --field "$deb" Depends)"
[[ "$depends" == *libc6* && "$depends" == *libstdc++6* ]] || fail "Depends lacks shlibdeps output (libc6, libstdc++6): $depends"
contents="$(dpkg-deb --contents "$deb")"
has_gui=0
if grep -qE '\./usr/bin/glassbox$' <<<"$contents"; then has_gui=1; fi
if [ "$has_gui" -eq 1 ]; then
    for p in libqt6core6 libqt6widgets6 libqt6sql6-sqlite qt6-qpa-plugins libgl1-mesa-dri; do
        [[ "$depends" == *"$p"* ]] || fail "Depends lacks $p: $depends"
    done
fi
if dpkg-deb --info "$deb" | grep -q 'libcudart'; then fail "package depends on a CUDA runtime package"; fi
ok "Depends: $depends"

step "AppStream validate-tree on the unpacked package"
dpkg-deb -x "$deb" "$tmp/root"
appstreamcli validate-tree --no-net "$tmp/root"
ok "validate-tree"

step "apt-get install ./$(basename "$deb")"
installed=1
# Without Recommends: Depends alone must make the app work.
apt-get install -y -qq --no-install-recommends "$deb"
dpkg -s glassbox | grep -q '^Status: install ok installed' || fail "glassbox not installed"
ok "installed $(dpkg-query -W -f='${Package} ${Version}' glassbox)"

step "files (dpkg -L)"
files="$(dpkg -L glassbox)"
expect=(/usr/bin/glassbox-cli
        /usr/share/applications/$app_id.desktop
        /usr/share/metainfo/$app_id.metainfo.xml
        /usr/share/mime/packages/$app_id.xml
        /usr/share/icons/hicolor/scalable/apps/$app_id.svg)
for s in 16 24 32 48 64 128 256 512; do expect+=("/usr/share/icons/hicolor/${s}x${s}/apps/$app_id.png"); done
[ "$has_gui" -eq 1 ] && expect+=(/usr/bin/glassbox)
for f in "${expect[@]}"; do
    grep -qxF "$f" <<<"$files" || fail "dpkg -L glassbox lacks $f"
    [ -f "$f" ] || fail "$f listed but not on disk"
done
for s in 16 24 32 48 64 128 256 512; do
    dims="$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print("%dx%d" % struct.unpack(">II", d[16:24]))' \
            "/usr/share/icons/hicolor/${s}x${s}/apps/$app_id.png")"
    [ "$dims" = "${s}x${s}" ] || fail "${s}x${s} icon is $dims"
done
ok "${#expect[@]} files in place, icon sizes right"

step "binaries from /usr/bin"
cd "$tmp"   # nothing from the source or build tree
[ "$(command -v glassbox-cli)" = /usr/bin/glassbox-cli ] || fail "glassbox-cli resolves to $(command -v glassbox-cli)"
if ldd /usr/bin/glassbox-cli | grep -q 'not found'; then ldd /usr/bin/glassbox-cli; fail "unresolved libraries"; fi
glassbox-cli --help > "$tmp/help.txt" 2>&1 || { cat "$tmp/help.txt"; fail "glassbox-cli --help failed"; }
grep -q 'info' "$tmp/help.txt" || { cat "$tmp/help.txt"; fail "--help does not list the info command"; }
ok "glassbox-cli --help"
glassbox-cli info -m "$model" > "$tmp/info.txt" 2>&1 || { cat "$tmp/info.txt"; fail "glassbox-cli info failed"; }
grep -qi 'gemma3' "$tmp/info.txt" || { head -40 "$tmp/info.txt"; fail "info output does not name the architecture gemma3"; }
head -12 "$tmp/info.txt"
ok "glassbox-cli info -m $(basename "$model")"

step "desktop entry and metainfo"
desktop-file-validate /usr/share/applications/$app_id.desktop
ok "desktop-file-validate"
appstreamcli validate --no-net /usr/share/metainfo/$app_id.metainfo.xml
grep -q "<release version=\"$version\"" /usr/share/metainfo/$app_id.metainfo.xml \
    || fail "metainfo has no <release version=\"$version\">"
ok "appstreamcli validate; release $version listed"
if [ -x /usr/bin/update-mime-database ]; then
    [ -f /usr/share/mime/application/x-gguf.xml ] || fail "MIME database lacks application/x-gguf after install"
    ok "application/x-gguf registered"
fi

step "GUI smoke test"
# ---------------------------------------------------------------------------
# GUI smoke test of the installed app (issue 7): start /usr/bin/glassbox under
# xvfb-run with the default model, send one message, check that a reply
# arrives (--quit-after-reply exits 0 and prints it), quit. Fresh HOME and
# data folder, so no user state is touched.
# ---------------------------------------------------------------------------
if [ "$has_gui" -eq 1 ]; then
    [ "$(command -v glassbox)" = /usr/bin/glassbox ] || fail "glassbox resolves to $(command -v glassbox)"
    if ldd /usr/bin/glassbox | grep -q 'not found'; then ldd /usr/bin/glassbox; fail "unresolved libraries"; fi
    mkdir -p "$tmp/home"
    HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" XDG_DATA_HOME="$tmp/home/.local/share" \
        XDG_CACHE_HOME="$tmp/home/.cache" QT_QPA_PLATFORM=xcb \
        xvfb-run -a -s "-screen 0 1280x800x24" timeout -k 5 600 /usr/bin/glassbox --model "$model" \
        --data-dir "$tmp/home/data" --send "Say hello." --quit-after-reply \
        > "$tmp/reply.txt" 2> "$tmp/gui.log" && rc=0 || rc=$?
    [ "$rc" -eq 0 ] || { cat "$tmp/gui.log"; fail "glassbox --send ... --quit-after-reply exited with $rc"; }
    [ -s "$tmp/reply.txt" ] || { cat "$tmp/gui.log"; fail "glassbox printed no reply"; }
    [ -s "$tmp/home/data/glassbox.sqlite" ] || fail "glassbox wrote no history"
    ok "glassbox under xvfb-run: sent a message and got a reply ($(wc -c < "$tmp/reply.txt") bytes)"
elif [ "$require_gui" = 1 ]; then
    fail "package has no /usr/bin/glassbox (GLASSBOX_DEB_REQUIRE_GUI=1)"
else
    echo "SKIP: package has no /usr/bin/glassbox (the build has no glassbox target yet)"
fi

step "apt-get remove glassbox"
apt-get remove -y -qq glassbox
installed=0
if dpkg -s glassbox 2>/dev/null | grep -q '^Status: install ok installed'; then fail "glassbox still installed"; fi
for f in "${expect[@]}"; do [ ! -e "$f" ] || fail "$f left after remove"; done
if [ -x /usr/bin/update-mime-database ] && [ -f /usr/share/mime/application/x-gguf.xml ]; then
    fail "application/x-gguf still in the MIME database after remove"
fi
ok "removed, files gone"
dpkg --purge glassbox >/dev/null   # postrm keeps a "config-files" entry until purged

printf '\nPASS: deb test (%s)\n' "$(basename "$deb")"
