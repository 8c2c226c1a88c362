#!/usr/bin/env bash
# Installs the pinned packages in a virtual environment, generates the
# client from proto/ and runs the back-office example against a node.
#
#   examples/python/run-example.sh CONFIG [MEMBER]
#   examples/python/run-example.sh dev-net/gemeente/handbereik.toml
#
# CONFIG is the node's handbereik.toml; MEMBER the member id to inspect
# (default: Veilig Thuis of the dev network). VENV names the virtual
# environment to use (made if missing; default examples/python/.venv, which
# git ignores), PYTHON the interpreter that makes it (3.11 or newer).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 CONFIG [MEMBER]   (CONFIG: the node's handbereik.toml)" >&2
  exit 2
fi
config="$1"

python="${PYTHON:-python3}"
venv="${VENV:-$here/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: $python is missing or older than 3.11 (tomllib); set PYTHON to a newer one" >&2
    exit 2
  fi
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/python" "$here/generate.py" >/dev/null

if [ $# -eq 2 ]; then
  exec "$venv/bin/python" "$here/backoffice.py" --config "$config" --member "$2"
fi
exec "$venv/bin/python" "$here/backoffice.py" --config "$config"
