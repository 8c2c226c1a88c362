#!/usr/bin/env bash
# Installs the pinned packages in a virtual environment, generates the
# client from proto/ and runs the back-office example against a node.
#   examples/python/run-example.sh dev-net/gemeente/handbereik.toml [MEMBER]
# VENV names the virtual environment to use (made if missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 1 ]; then
  echo "usage: $0 CONFIG [MEMBER]   (CONFIG: the node's handbereik.toml)" >&2
  exit 2
fi
config="$1"
shift
venv="${VENV:-$here/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/python" "$here/generate.py" >/dev/null
member_args=()
if [ $# -ge 1 ]; then member_args=(--member "$1"); fi
exec "$venv/bin/python" "$here/backoffice.py" --config "$config" "${member_args[@]}"
