#!/bin/sh
# One-shot governance step: make the governance key, admit every partner
# whose membership request is in NET/*/membership-request.cbor, sign and
# publish the member list, and hand each partner the list, the governance
# public key and the network's pseudonym key. Idempotent: a second run
# publishes nothing new when the list is still valid for more than a day.
#   governance.sh NET NETWORK
set -eu
net=$1 network=$2
gov="$net/governance"
mkdir -p "$gov"
chmod 0700 "$gov"
if [ ! -f "$gov/governance.key" ]; then
  handbereik-keys init --out "$gov/governance.key"
fi
if [ ! -f "$gov/pseudonym.key" ]; then
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$gov/pseudonym.key")
fi
if [ -f "$gov/member-list.cbor" ]; then
  echo "a member list exists; renew it with handbereik-keys new --from (see docs/governance.md)"
else
  rm -f "$gov/draft.cbor"
  handbereik-keys new --draft "$gov/draft.cbor" --network "$network" \
    --governance "$gov/governance.key.pub" --threshold 1 --valid-for 30days
  for request in "$net"/*/membership-request.cbor; do
    handbereik-keys admit "$request" --draft "$gov/draft.cbor"
  done
  handbereik-keys sign --draft "$gov/draft.cbor" --key "$gov/governance.key"
  handbereik-keys publish --draft "$gov/draft.cbor" --out "$gov/member-list.cbor"
fi
anchor=$(tr -d ' \n' <"$gov/governance.key.pub")
for config in "$net"/*/handbereik.toml; do
  dir=$(dirname "$config")
  cp "$gov/member-list.cbor" "$dir/member-list.cbor"
  (umask 077 && cp "$gov/pseudonym.key" "$dir/pseudonym.key")
  sed -i "s|^anchor_keys = \[\]|anchor_keys = [\"$anchor\"]|" "$config"
done
handbereik-keys show "$gov/member-list.cbor"
