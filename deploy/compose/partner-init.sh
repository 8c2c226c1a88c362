#!/bin/sh
# A partner's first step (one-shot init container): its node key, membership
# request, API token and config, in its own state directory; the example
# policy and category catalogue; and the request handed to governance through
# the shared directory. In a real network every partner runs `handbereik init`
# on its own machine and sends membership-request.cbor to governance.
#
#   partner-init.sh PARTNER OIN NAME PURPOSES HOST [P2P_PORT] [GRPC_PORT]
#
# PARTNER names the request file (SHARED/requests/PARTNER.cbor); HOST is the
# name or IPv4 address at which the other nodes reach this one. Environment
# (HB_, never HANDBEREIK_: the node reads every HANDBEREIK_* variable as a
# configuration key and refuses unknown ones):
#   HB_STATE_DIR   the partner's state directory   (/var/lib/handbereik)
#   HB_SHARED_DIR  the directory shared with governance (/var/lib/handbereik-shared)
#   HB_NETWORK     the network id                   (compose)
#   HB_SHARE_DIR   where policy.cedar is            (/usr/share/handbereik)
# Running it again on an initialised directory changes nothing in it (it only
# hands the request over again).
set -eu
if [ $# -lt 5 ] || [ $# -gt 7 ]; then
  echo "usage: partner-init.sh PARTNER OIN NAME PURPOSES HOST [P2P_PORT] [GRPC_PORT]" >&2
  exit 64
fi
partner=$1 oin=$2 name=$3 purposes=$4 host=$5
p2p_port=${6:-4001}
grpc_port=${7:-7443}
dir=${HB_STATE_DIR:-/var/lib/handbereik}
shared=${HB_SHARED_DIR:-/var/lib/handbereik-shared}
network=${HB_NETWORK:-compose}
share=${HB_SHARE_DIR:-/usr/share/handbereik}

if [ -f "$dir/node.key" ]; then
  echo "$partner: already initialised in $dir"
else
  case $host in
    *[!0-9.]*) p2p="/dns4/$host/tcp/$p2p_port" ;;
    *) p2p="/ip4/$host/tcp/$p2p_port" ;;
  esac
  handbereik init --dir "$dir" --network "$network" --member-id "$oin" --name "$name" \
    --roles afnemer,bronhouder --purposes "$purposes" \
    --p2p-address "$p2p" --grpc-endpoint "$host:$grpc_port"
  cp "$share/policy.cedar" "$dir/policy.cedar"
  # The member list governance publishes in the shared directory (the node
  # re-reads it when it changes), and the example catalogue that the example
  # policy decides on. The anchor key is filled in by node.sh at the first
  # start, once governance has made it.
  sed -i "s|^member_list_file = .*|member_list_file = \"$shared/member-list.cbor\"|" "$dir/handbereik.toml"
  cat >>"$dir/handbereik.toml" <<TOML

[registry]
# The network's pseudonym key, handed out by governance.
pseudonym_key_file = "$shared/pseudonym.key"

[registry.categories]
betrokkenheid = { kind = "dat", classification = "vertrouwelijk" }
contactpersoon = { kind = "dat", classification = "vertrouwelijk" }
melding = { kind = "wat", classification = "vertrouwelijk" }
plan = { kind = "wat", classification = "vertrouwelijk" }
risicotaxatie = { kind = "wat", classification = "vertrouwelijk" }
veiligheidsplan = { kind = "wat", classification = "strikt-vertrouwelijk" }
TOML
fi
mkdir -p "$shared/requests"
cp "$dir/membership-request.cbor" "$shared/requests/$partner.cbor.tmp"
mv "$shared/requests/$partner.cbor.tmp" "$shared/requests/$partner.cbor"
echo "$partner: membership request handed to governance in $shared/requests/$partner.cbor"
