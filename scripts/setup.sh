#!/usr/bin/env bash
# Set up (or bring up to date) the project's virtual environment: the pinned stack, the core and every
# plugin under plugins/, plus the Debian packages plugins declare. Idempotent: when nothing that
# defines the environment changed since the last successful run, it only verifies and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.kdhub-setup"

plugin_dirs=$(find plugins -mindepth 2 -maxdepth 2 -name pyproject.toml -printf '%h\n' 2>/dev/null | sort)
state=$(cat constraints.txt pyproject.toml scripts/setup.sh $(for d in $plugin_dirs; do echo "$d/pyproject.toml"; ls "$d"/debian-packages.txt 2>/dev/null; done) | sha256sum | cut -d' ' -f1)

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$state" ] \
   && "$VENV/bin/python" -c "import kdhub" 2>/dev/null; then
  echo "setup: $VENV is up to date"
  exit 0
fi

# Debian packages that plugins need (e.g. voices for the speech plugin's embedded data).
need=()
for d in $plugin_dirs; do
  [ -f "$d/debian-packages.txt" ] || continue
  for pkg in $(grep -v '^#' "$d/debian-packages.txt"); do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || echo "setup: apt-get update failed; trying the package lists already on this machine"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

[ -x "$VENV/bin/python" ] || { echo "setup: creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q -c constraints.txt --upgrade pip "setuptools>=77,<81" wheel
echo "setup: installing the pinned stack (first run downloads torch, a few minutes)"
"${PIP[@]}" install -q -c constraints.txt torch torchvision torchaudio
# mmcv with its compiled ops, for the OpenMMLab plugins: its setup.py imports torch, so it builds without
# isolation after torch (about 9 minutes on 2 cores the first time; pip caches the wheel afterwards).
if grep -qs '"mmcv' $(for d in $plugin_dirs; do echo "$d/pyproject.toml"; done) \
   && ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  echo "setup: building mmcv with compiled ops (first run: about 10 minutes on 2 cores)"
  "${PIP[@]}" install -q -c constraints.txt ninja numpy
  if ! MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) "${PIP[@]}" install -c constraints.txt --no-build-isolation mmcv \
       >"$VENV/.kdhub-mmcv.log" 2>&1; then
    tail -40 "$VENV/.kdhub-mmcv.log"; echo "setup: building mmcv failed (log: $VENV/.kdhub-mmcv.log)" >&2; exit 1
  fi
fi
editable=(-e ".[test]")
for d in $plugin_dirs; do editable+=(-e "$d"); done
echo "setup: installing kdhub and plugins: . $plugin_dirs"
log="$VENV/.kdhub-install.log"  # the build backend is chatty: show its output only when the install fails
if ! "${PIP[@]}" install -q -c constraints.txt --no-build-isolation "${editable[@]}" >"$log" 2>&1; then
  cat "$log"; echo "setup: installing kdhub and its plugins failed (log: $log)" >&2; exit 1
fi
"$VENV/bin/kdhub" doctor >/dev/null || { "$VENV/bin/kdhub" doctor; exit 1; }
echo "$state" > "$STAMP"
echo "setup: done ($VENV)"
