#!/bin/sh
# Entrypoint of a partner's node in the compose example: the first time, put
# the governance public key that governance published in the shared
# directory into the config's governance.anchor_keys; then run the node.
#
#   node.sh [--set SECTION.KEY=VALUE]...
#
# The config is HANDBEREIK_CONFIG (/var/lib/handbereik/handbereik.toml); the
# shared directory HB_SHARED_DIR (/var/lib/handbereik-shared). Extra
# arguments go to `handbereik run`.
set -eu
config=${HANDBEREIK_CONFIG:-/var/lib/handbereik/handbereik.toml}
shared=${HB_SHARED_DIR:-/var/lib/handbereik-shared}
if grep -q '^anchor_keys = \[\]' "$config"; then
  anchor=$(tr -d ' \n' <"$shared/governance.key.pub")
  case $anchor in
    *[!0-9a-f]*|'')
      echo "node: $shared/governance.key.pub does not hold a hex key" >&2
      exit 1 ;;
  esac
  sed -i "s|^anchor_keys = \[\]|anchor_keys = [\"$anchor\"]|" "$config"
  echo "node: governance anchor key $anchor written into $config"
fi
exec handbereik run --config "$config" "$@"
