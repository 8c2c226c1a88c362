#!/bin/sh
# The one-shot governance step: make the governance key (first run), admit
# the membership request of every expected partner from SHARED/requests/,
# sign and publish the member list into the shared directory, with the
# governance public key and the network's pseudonym key beside it.
#
#   governance.sh PARTNER...
#
# Every PARTNER must have handed in SHARED/requests/PARTNER.cbor, or nothing
# is published and the script fails. On a later run (the list exists) it
# publishes the next version of the same list, valid for another 30 days, so
# `docker compose up` again renews it; the nodes pick it up from the file.
# Environment (HB_, never HANDBEREIK_):
#   HB_STATE_DIR   governance's private directory (/var/lib/handbereik)
#   HB_SHARED_DIR  the shared directory            (/var/lib/handbereik-shared)
#   HB_NETWORK     the network id                  (compose)
set -eu
if [ $# -lt 1 ]; then
  echo "usage: governance.sh PARTNER..." >&2
  exit 64
fi
gov=${HB_STATE_DIR:-/var/lib/handbereik}
shared=${HB_SHARED_DIR:-/var/lib/handbereik-shared}
network=${HB_NETWORK:-compose}
umask 077
mkdir -p "$gov" "$shared"

for partner in "$@"; do
  if [ ! -f "$shared/requests/$partner.cbor" ]; then
    echo "governance: no membership request from $partner in $shared/requests" >&2
    exit 1
  fi
done

if [ ! -f "$gov/governance.key" ]; then
  handbereik-keys init --out "$gov/governance.key"
fi
if [ ! -f "$shared/pseudonym.key" ]; then
  # 32 random bytes as 64 hex digits, mode 0600: the network's pseudonym key.
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$shared/pseudonym.key.tmp"
  mv "$shared/pseudonym.key.tmp" "$shared/pseudonym.key"
fi

rm -f "$gov/draft.cbor"
if [ -f "$shared/member-list.cbor" ]; then
  handbereik-keys new --draft "$gov/draft.cbor" --from "$shared/member-list.cbor" --valid-for 30days
else
  handbereik-keys new --draft "$gov/draft.cbor" --network "$network" \
    --governance "$gov/governance.key.pub" --threshold 1 --valid-for 30days
  for partner in "$@"; do
    handbereik-keys admit "$shared/requests/$partner.cbor" --draft "$gov/draft.cbor"
  done
fi
handbereik-keys sign --draft "$gov/draft.cbor" --key "$gov/governance.key"
handbereik-keys publish --draft "$gov/draft.cbor" --out "$gov/member-list.cbor"
handbereik-keys verify "$gov/member-list.cbor" --anchor "$gov/governance.key.pub" --threshold 1

# Publish: the anchor first, the list last, each by rename so that a node
# never reads half a file.
cp "$gov/governance.key.pub" "$shared/governance.key.pub.tmp"
chmod 0644 "$shared/governance.key.pub.tmp"
mv "$shared/governance.key.pub.tmp" "$shared/governance.key.pub"
cp "$gov/member-list.cbor" "$shared/member-list.cbor.tmp"
chmod 0644 "$shared/member-list.cbor.tmp"
mv "$shared/member-list.cbor.tmp" "$shared/member-list.cbor"
handbereik-keys show "$shared/member-list.cbor"
