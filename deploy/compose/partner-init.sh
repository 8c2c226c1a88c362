#!/bin/sh
# A partner's first step: its node key, membership request, API token and
# config, in its own directory. In a real network every partner runs this on
# its own machine and sends membership-request.cbor to governance.
#   partner-init.sh DIR NETWORK OIN NAME PURPOSES HOST [P2P_PORT] [GRPC_PORT]
set -eu
dir=$1 network=$2 oin=$3 name=$4 purposes=$5 host=$6
p2p_port=${7:-4001}
grpc_port=${8:-7443}
share=${HANDBEREIK_SHARE:-/usr/share/handbereik}
if [ -f "$dir/node.key" ]; then
  echo "$name: already initialised in $dir"
  exit 0
fi
case $host in
  *[!0-9.]*) p2p="/dns4/$host/tcp/$p2p_port" ;;
  *) p2p="/ip4/$host/tcp/$p2p_port" ;;
esac
handbereik init --dir "$dir" --network "$network" --member-id "$oin" --name "$name" \
  --roles afnemer,bronhouder --purposes "$purposes" \
  --p2p-address "$p2p" --grpc-endpoint "$host:$grpc_port"
cp "$share/policy.cedar" "$dir/policy.cedar"
# The example catalogue that the example policy decides on.
cat >>"$dir/handbereik.toml" <<'TOML'

[registry]
pseudonym_key_file = "pseudonym.key"

[registry.categories]
betrokkenheid = { kind = "dat", classification = "vertrouwelijk" }
contactpersoon = { kind = "dat", classification = "vertrouwelijk" }
melding = { kind = "wat", classification = "vertrouwelijk" }
plan = { kind = "wat", classification = "vertrouwelijk" }
risicotaxatie = { kind = "wat", classification = "vertrouwelijk" }
veiligheidsplan = { kind = "wat", classification = "strikt-vertrouwelijk" }
TOML
