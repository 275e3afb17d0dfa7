#!/usr/bin/env bash
# Installs the real peers of the interop and attack tests (tests/common/interop.rs):
#   DIR/venv  Python venv with PyJWT, jwcrypto, cryptography, schemathesis,
#             openapi-spec-validator (tests/interop/requirements.txt)
#   DIR/node  npm jose (tests/interop/package.json + package-lock.json, `npm ci`)
# DIR defaults to ${CARGO_TARGET_DIR:-target}/interop. Idempotent and cheap when nothing
# changed (a stamp holds the hash of what was installed); safe to run from several test
# binaries at once (one flock on DIR/.lock). HAProxy comes from Debian (.ci/run installs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${1:-${CARGO_TARGET_DIR:-$root/target}/interop}
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9

python=${PYTHON:-python3}
want=$(cat "$here/requirements.txt" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$dir/venv/.stamp" 2>/dev/null)" != "$want" ]; then
  echo "interop: installing the Python peers into $dir/venv" >&2
  rm -rf "$dir/venv"
  "$python" -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --only-binary=:all: -r "$here/requirements.txt" >&2
  echo "$want" >"$dir/venv/.stamp"
fi

want=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$dir/node/.stamp" 2>/dev/null)" != "$want" ]; then
  echo "interop: installing npm jose into $dir/node" >&2
  rm -rf "$dir/node"
  mkdir -p "$dir/node"
  cp "$here/package.json" "$here/package-lock.json" "$dir/node/"
  (cd "$dir/node" && npm ci --silent --no-audit --no-fund --ignore-scripts >&2)
  echo "$want" >"$dir/node/.stamp"
fi
