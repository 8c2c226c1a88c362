#!/usr/bin/env python3
"""Verify a signed handbereik member list, independently of the Rust code.

This script exists to show that docs/formats.md is enough to verify a member
list in another language. It was written from that document alone, not from
the Rust sources. It uses only the Python 3.11 standard library and the
`cryptography` package. It has its own strict CBOR decoder and canonical
encoder for the small subset the formats use.

It performs docs/formats.md section 6.2, steps 1 to 9: size limit, strict
canonical decoding of the envelope, counting distinct anchor keys whose
signatures verify over "handbereik/member-list/v1\\0" || body, the threshold,
strict decoding and consistency checks of the body, the issued_at clock-skew
limit and expiry.

Decoding follows section 1.3: the CBOR item is parsed, decoded into typed
values with every field required (a role only as its text string), and the
typed value is encoded again by section 1.2; any difference from the input
bytes is refused. Consistency follows section 5.5, including the bound on
every time (9999-12-31T23:59:59Z), the strictly ascending order of
governance keys, members, revoked keys, and every member's roles (afnemer
before bronhouder), purposes and regions, the region code rule and the port
rule of section 2.2 (ASCII digits, no leading zero, 1 to 65535). A member's
optional `regions` (section 5.3) and the list's optional `profile` with its
`actor_roles` (section 5.7) may be absent, and are refused when written while
empty.

It does not do steps 7, 10, 11 and 12 (held version, network, revocation
carry-over, rotation), because it holds no previous list.

Usage:
    verify_member_list.py LIST_FILE --anchor HEX [--anchor HEX ...] \\
        --threshold K [--now UNIX_SECONDS]

It prints "ok: network N version V members M" and exits 0, or prints
"refused: <reason>" and exits 1.

Signature checks follow verify_strict (formats.md section 3.3). S < l, R not
of small order and the key not of small order are checked here. The
cofactorless equation itself is checked by `cryptography` (OpenSSL), which
compares encodings of R as the document requires. One limitation: for a key
whose encoding is non-canonical (y >= p), OpenSSL may read the key
differently. Nobody can sign with such a key, because its discrete log is
unknown. Such keys are decoded here exactly as formats.md section 2.1 says.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# --- constants from docs/formats.md -----------------------------------------

MEMBER_LIST_PREFIX = b"handbereik/member-list/v1\x00"
LIST_LIMIT = 32 * 1024 * 1024
MAX_DEPTH = 16
CLOCK_SKEW_SECS = 300
MAX_GOVERNANCE_KEYS = 32
MAX_PURPOSES = 64
MAX_ADDRESSES = 16
MAX_NAME = 200
MAX_ADDRESS = 256
MAX_HOST = 253
MAX_REGIONS = 512
MAX_ACTOR_ROLES = 64
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
# Section 2: every time is at most 9999-12-31T23:59:59Z.
MAX_SECS = 253_402_300_799

# Unicode White_Space and general category Cc, as listed in section 2.2.
WHITE_SPACE = (
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)


def is_control(ch: str) -> bool:
    o = ord(ch)
    return o <= 0x1F or 0x7F <= o <= 0x9F


def is_white_space(ch: str) -> bool:
    return ch in WHITE_SPACE


class Refused(Exception):
    """The list is refused; the message says why."""


# --- CBOR: strict decoder for the subset (section 1) -----------------------


class CborMap:
    """A decoded map: its pairs in input order, duplicates kept."""

    def __init__(self, pairs: list[tuple[object, object]]):
        self.pairs = pairs


def _head(data: bytes, pos: int) -> tuple[int, int, int]:
    """Returns (major type, argument, new position); refuses indefinite lengths."""
    if pos >= len(data):
        raise Refused("CBOR data ends too early")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        return major, info, pos
    if info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise Refused("CBOR data ends too early")
        return major, int.from_bytes(data[pos : pos + size], "big"), pos + size
    if info == 31:
        raise Refused("indefinite-length CBOR items are not used in this format")
    raise Refused(f"malformed CBOR (reserved additional info {info})")


def _item(data: bytes, pos: int, depth: int) -> tuple[object, int]:
    if depth > MAX_DEPTH:
        raise Refused("CBOR nested too deeply")
    initial = data[pos] if pos < len(data) else None
    if initial is not None and initial >> 5 == 7:
        info = initial & 0x1F
        if info == 20:
            return False, pos + 1
        if info == 21:
            return True, pos + 1
        if info == 22:
            return None, pos + 1
        if info in (25, 26, 27):
            raise Refused("floats are not used in this format")
        raise Refused("CBOR simple value other than false/true/null")
    major, arg, pos = _head(data, pos)
    if major == 0:
        return arg, pos
    if major == 1:
        raise Refused("negative integers are not used in this format")
    if major in (2, 3):
        end = pos + arg
        if end > len(data):
            raise Refused("CBOR data ends too early")
        raw = data[pos:end]
        if major == 2:
            return bytes(raw), end
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError:
            raise Refused("text string is not valid UTF-8") from None
    if major == 4:
        items = []
        for _ in range(arg):
            value, pos = _item(data, pos, depth + 1)
            items.append(value)
        return items, pos
    if major == 5:
        pairs = []
        for _ in range(arg):
            key, pos = _item(data, pos, depth + 1)
            value, pos = _item(data, pos, depth + 1)
            pairs.append((key, value))
        return CborMap(pairs), pos
    if major == 6:
        raise Refused("tags are not used in this format")
    raise Refused("malformed CBOR")  # unreachable: major 7 handled above


def _encode_head(major: int, arg: int) -> bytes:
    if arg < 24:
        return bytes([(major << 5) | arg])
    if arg <= 0xFF:
        return bytes([(major << 5) | 24]) + arg.to_bytes(1, "big")
    if arg <= 0xFFFF:
        return bytes([(major << 5) | 25]) + arg.to_bytes(2, "big")
    if arg <= 0xFFFFFFFF:
        return bytes([(major << 5) | 26]) + arg.to_bytes(4, "big")
    return bytes([(major << 5) | 27]) + arg.to_bytes(8, "big")


def encode(value: object) -> bytes:
    """Canonical encoding, section 1.2: shortest heads, definite lengths, sorted maps."""
    if value is False:
        return b"\xf4"
    if value is True:
        return b"\xf5"
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        return _encode_head(0, value)
    if isinstance(value, bytes):
        return _encode_head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _encode_head(3, len(raw)) + raw
    if isinstance(value, list):
        return _encode_head(4, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, CborMap):
        entries = sorted(((encode(k), encode(v)) for k, v in value.pairs), key=lambda e: e[0])
        return _encode_head(5, len(entries)) + b"".join(k + v for k, v in entries)
    raise TypeError(type(value))


def decode_item(data: bytes, what: str) -> object:
    """Section 1.3 rules 1-2: exactly one well-formed item of the subset."""
    value, end = _item(data, 0, 0)
    if end != len(data):
        raise Refused(f"{what}: {len(data) - end} unexpected bytes after the CBOR item")
    return value


def require_canonical(typed_encoding: bytes, data: bytes, what: str) -> None:
    """Section 1.3 rule 4: the typed value must re-encode to the input bytes."""
    if typed_encoding != data:
        raise Refused(f"{what} is not in canonical CBOR encoding")


# --- ed25519 point arithmetic, only for the checks in sections 2.1 and 3.3 ---

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _decompress(raw: bytes):
    """Section 2.1 steps 1-3 (lenient as curve25519-dalek): a point or None."""
    n = int.from_bytes(raw, "little")
    sign = n >> 255
    y = (n & ((1 << 255) - 1)) % P
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x2 = u * pow(v, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if x & 1:
        x = P - x
    if sign:
        x = (P - x) % P
    return (x, y, 1, x * y % P)


def _double(pt):
    x1, y1, z1, _ = pt
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = (a + b) % P
    e = (h - (x1 + y1) * (x1 + y1)) % P
    g = (a - b) % P
    f = (c + g) % P
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _small_order(pt) -> bool:
    """[8]P is the neutral element (x = 0, y = z)."""
    q = _double(_double(_double(pt)))
    return q[0] % P == 0 and (q[1] - q[2]) % P == 0


def key_problem(raw: bytes) -> str | None:
    """Why 32 bytes are not a usable public key (section 2.1), or None."""
    if len(raw) != 32:
        return f"must be 32 bytes, got {len(raw)}"
    pt = _decompress(raw)
    if pt is None:
        return "not a valid ed25519 point"
    if _small_order(pt):
        return "a weak (small-order) ed25519 key"
    return None


def verify_strict(key: bytes, message: bytes, sig: bytes) -> bool:
    """Section 3.3."""
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    r = _decompress(sig[:32])
    if r is None or _small_order(r):
        return False
    a = _decompress(key)
    if a is None or _small_order(a):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- schema (sections 2, 3.1, 5) --------------------------------------------


def fields(value: object, what: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    """A map with exactly these text keys: none unknown, none twice, none of
    `required` missing. Keys in `optional` may be absent (section 1.3)."""
    if not isinstance(value, CborMap):
        raise Refused(f"{what} must be a map")
    out: dict[str, object] = {}
    for key, item in value.pairs:
        if not isinstance(key, str):
            raise Refused(f"{what}: map keys must be text strings")
        if key in out:
            raise Refused(f"{what}: duplicate field {key!r}")
        if key not in required and key not in optional:
            raise Refused(f"{what}: unknown field {key!r}")
        out[key] = item
    for key in required:
        if key not in out:
            raise Refused(f"{what}: missing field {key!r}")
    return out


def uint(value: object, what: str, maximum: int = U64_MAX) -> int:
    if type(value) is not int or not 0 <= value <= maximum:
        raise Refused(f"{what} must be an unsigned integer up to {maximum}")
    return value


def text(value: object, what: str) -> str:
    if type(value) is not str:
        raise Refused(f"{what} must be a text string")
    return value


def boolean(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise Refused(f"{what} must be true or false")
    return value


def array(value: object, what: str) -> list:
    if type(value) is not list:
        raise Refused(f"{what} must be an array")
    return value


def byte_string(value: object, what: str, length: int) -> bytes:
    if type(value) is not bytes:
        raise Refused(f"{what} must be a byte string")
    if len(value) != length:
        raise Refused(f"{what} must be {length} bytes, got {len(value)}")
    return value


def public_key(value: object, what: str) -> bytes:
    raw = byte_string(value, what, 32)
    problem = key_problem(raw)
    if problem:
        raise Refused(f"{what} {raw.hex()} is {problem}")
    return raw


NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")


def purpose(value: object, what: str) -> str:
    t = text(value, what)
    if not NAME_RE.fullmatch(t):
        raise Refused(f"{what} {t!r}: use 1 to 64 of a-z, 0-9, '-', starting with a letter")
    return t


def member_id(value: object, what: str) -> str:
    t = text(value, what)
    if len(t) != 20 or not all("0" <= c <= "9" for c in t) or t == "0" * 20:
        raise Refused(f"{what} {t!r} is not an OIN (20 digits, not all zeros)")
    return t


# Section 2: roles sort by the bytes of their text: afnemer before bronhouder.
ROLES = ("afnemer", "bronhouder")
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}


def role(value: object, what: str) -> str:
    # Section 1.3: a role is its text string and nothing else.
    t = text(value, what)
    if t not in ROLES:
        raise Refused(f"{what} {t!r} is not bronhouder or afnemer")
    return t


ENVELOPE_FIELDS = ("body", "signatures")
SIGNATURE_FIELDS = ("key", "sig")


def decode_envelope(value: object) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    env = fields(value, "envelope", ENVELOPE_FIELDS)
    if type(env["body"]) is not bytes:
        raise Refused("envelope body must be a byte string")
    signatures = []
    for i, item in enumerate(array(env["signatures"], "signatures")):
        sig = fields(item, f"signatures[{i}]", SIGNATURE_FIELDS)
        signatures.append(
            (public_key(sig["key"], f"signatures[{i}].key"), byte_string(sig["sig"], f"signatures[{i}].sig", 64))
        )
    return env["body"], signatures


def encode_envelope(body: bytes, signatures: list[tuple[bytes, bytes]]) -> bytes:
    return encode(CborMap([
        ("body", body),
        ("signatures", [CborMap([("key", k), ("sig", s)]) for k, s in signatures]),
    ]))


GOVERNANCE_FIELDS = ("keys", "threshold")


def decode_governance(value: object, what: str) -> dict:
    g = fields(value, what, GOVERNANCE_FIELDS)
    return {
        "keys": [public_key(k, f"{what}.keys[{i}]") for i, k in enumerate(array(g["keys"], f"{what}.keys"))],
        "threshold": uint(g["threshold"], f"{what}.threshold", U32_MAX),
    }


MEMBER_FIELDS = (
    "member_id", "name", "roles", "purposes", "node_key",
    "p2p_addresses", "grpc_endpoint", "valid_from", "valid_until", "maintenance",
)
# Section 5.3: optional, absent exactly when empty.
MEMBER_OPTIONAL = ("regions",)
REVOCATION_FIELDS = ("key", "member_id", "revoked_at", "reason")
LIST_FIELDS = ("network", "version", "issued_at", "expires_at", "governance", "members", "revoked")
# Section 5.1 and 5.7: optional, absent exactly when empty.
LIST_OPTIONAL = ("profile",)
PROFILE_OPTIONAL = ("actor_roles",)


def decode_member(value: object, what: str) -> dict:
    m = fields(value, what, MEMBER_FIELDS, MEMBER_OPTIONAL)
    regions = array(m.get("regions", []), f"{what}.regions")
    return {
        "regions": [text(r, f"{what}.regions[{i}]") for i, r in enumerate(regions)],
        "member_id": member_id(m["member_id"], f"{what}.member_id"),
        "name": text(m["name"], f"{what}.name"),
        "roles": [role(r, f"{what}.roles[{i}]") for i, r in enumerate(array(m["roles"], f"{what}.roles"))],
        "purposes": [purpose(p, f"{what}.purposes[{i}]") for i, p in enumerate(array(m["purposes"], f"{what}.purposes"))],
        "node_key": public_key(m["node_key"], f"{what}.node_key"),
        "p2p_addresses": [text(a, f"{what}.p2p_addresses[{i}]") for i, a in enumerate(array(m["p2p_addresses"], f"{what}.p2p_addresses"))],
        "grpc_endpoint": text(m["grpc_endpoint"], f"{what}.grpc_endpoint"),
        "valid_from": uint(m["valid_from"], f"{what}.valid_from"),
        "valid_until": None if m["valid_until"] is None else uint(m["valid_until"], f"{what}.valid_until"),
        "maintenance": boolean(m["maintenance"], f"{what}.maintenance"),
    }


def decode_revocation(value: object, what: str) -> dict:
    r = fields(value, what, REVOCATION_FIELDS)
    return {
        "key": public_key(r["key"], f"{what}.key"),
        "member_id": member_id(r["member_id"], f"{what}.member_id"),
        "revoked_at": uint(r["revoked_at"], f"{what}.revoked_at"),
        "reason": text(r["reason"], f"{what}.reason"),
    }


def decode_profile(value: object) -> dict:
    p = fields(value, "profile", (), PROFILE_OPTIONAL)
    roles = array(p.get("actor_roles", []), "profile.actor_roles")
    # An actor role has the alphabet of a purpose (section 5.7).
    return {"actor_roles": [purpose(r, f"profile.actor_roles[{i}]") for i, r in enumerate(roles)]}


def decode_list(value: object) -> dict:
    f = fields(value, "member list", LIST_FIELDS, LIST_OPTIONAL)
    return {
        "profile": decode_profile(f.get("profile", CborMap([]))),
        "network": text(f["network"], "network"),
        "version": uint(f["version"], "version"),
        "issued_at": uint(f["issued_at"], "issued_at"),
        "expires_at": uint(f["expires_at"], "expires_at"),
        "governance": decode_governance(f["governance"], "governance"),
        "members": [decode_member(m, f"members[{i}]") for i, m in enumerate(array(f["members"], "members"))],
        "revoked": [decode_revocation(r, f"revoked[{i}]") for i, r in enumerate(array(f["revoked"], "revoked"))],
    }


def typed_map(d: dict, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> CborMap:
    """The map of a typed value: every required field, and each optional one
    only when it is not empty (section 1.3)."""
    pairs = [(n, d[n]) for n in names]
    pairs += [(n, d[n]) for n in optional if d[n]]
    return CborMap(pairs)


def encode_list(lst: dict) -> bytes:
    """The canonical encoding of a decoded (typed) member list, section 1.2."""
    members = [typed_map(m, MEMBER_FIELDS, MEMBER_OPTIONAL) for m in lst["members"]]
    revoked = [typed_map(r, REVOCATION_FIELDS) for r in lst["revoked"]]
    profile = typed_map(lst["profile"], (), PROFILE_OPTIONAL)
    value = typed_map(
        {
            **lst,
            "governance": typed_map(lst["governance"], GOVERNANCE_FIELDS),
            "members": members,
            "revoked": revoked,
            # The profile is left out when nothing in it is set.
            "profile": profile if profile.pairs else None,
        },
        LIST_FIELDS,
        LIST_OPTIONAL,
    )
    return encode(value)


# --- consistency (sections 2.2, 5.2, 5.5) -----------------------------------


def strictly_ascending(items: list, key=lambda x: x) -> bool:
    """Sorted with no repeats (section 1.2)."""
    return all(key(a) < key(b) for a, b in zip(items, items[1:]))


def check_governance(keys: list[bytes], threshold: int, what: str) -> None:
    if len(set(keys)) != len(keys):
        raise Refused(f"{what}: a key is named twice")
    if not strictly_ascending(keys):
        raise Refused(f"{what}: keys must be sorted and without repeats")
    if not 1 <= len(keys) <= MAX_GOVERNANCE_KEYS:
        raise Refused(f"{what}: give 1 to {MAX_GOVERNANCE_KEYS} keys")
    if not 1 <= threshold <= len(keys):
        raise Refused(f"{what}: threshold must be between 1 and {len(keys)}, got {threshold}")


def check_profile(m: dict) -> None:
    name = m["name"]
    if not name.strip(WHITE_SPACE) or len(name) > MAX_NAME:
        raise Refused(f"name: give a name of 1 to {MAX_NAME} characters")
    if any(is_control(c) for c in name):
        raise Refused("name: control characters are not allowed")
    if not strictly_ascending(m["roles"], key=ROLE_RANK.__getitem__):
        raise Refused("roles: must be sorted (afnemer before bronhouder) and without repeats")
    if not strictly_ascending(m["purposes"], key=lambda p: p.encode("utf-8")):
        raise Refused("purposes: must be sorted and without repeats")
    if not m["roles"]:
        raise Refused("roles: at least one role is needed")
    if not 1 <= len(m["purposes"]) <= MAX_PURPOSES:
        raise Refused(f"purposes: give 1 to {MAX_PURPOSES} purposes")
    if not 1 <= len(m["p2p_addresses"]) <= MAX_ADDRESSES:
        raise Refused(f"p2p_addresses: give 1 to {MAX_ADDRESSES} addresses")
    for a in m["p2p_addresses"]:
        size = len(a.encode("utf-8"))
        if not (
            a.startswith("/")
            and 1 < size <= MAX_ADDRESS
            and not any(is_white_space(c) or is_control(c) for c in a)
            and "//" not in a
        ):
            raise Refused(f"p2p_addresses: {a!r} is not a multiaddress")
    endpoint = m["grpc_endpoint"]
    host, colon, port = endpoint.rpartition(":")
    # Section 2.2: ASCII digits only, no leading zero, 1 to 65535.
    port_ok = bool(colon) and re.fullmatch(r"[1-9][0-9]*", port, re.ASCII) is not None and int(port) <= 65535
    host_ok = (
        1 <= len(host.encode("utf-8")) <= MAX_HOST
        and "://" not in host
        and not any(is_white_space(c) or is_control(c) or c == "/" for c in host)
    )
    if not (port_ok and host_ok):
        raise Refused(f"grpc_endpoint: {endpoint!r} is not host:port")
    check_regions(m["regions"])


REGION_RE = re.compile(r"[A-Z]{2}[0-9]{2,4}", re.ASCII)


def check_regions(regions: list[str]) -> None:
    """Section 2.2: count, then each code, then the strict order."""
    if len(regions) > MAX_REGIONS:
        raise Refused(f"regions: give at most {MAX_REGIONS} regions")
    for r in regions:
        if not REGION_RE.fullmatch(r):
            raise Refused(f"regions: {r[:24]!r} is not a region code")
    if not strictly_ascending(regions, key=lambda r: r.encode("ascii")):
        raise Refused("regions: must be sorted and without repeats")


def check_times(lst: dict) -> None:
    """Section 5.5 step 3: every time at most MAX_SECS, in the order given there."""
    times = [("issued_at", lst["issued_at"]), ("expires_at", lst["expires_at"])]
    for m in lst["members"]:
        times.append((f"member {m['member_id']}: valid_from", m["valid_from"]))
        if m["valid_until"] is not None:
            times.append((f"member {m['member_id']}: valid_until", m["valid_until"]))
    for r in lst["revoked"]:
        times.append((f"revocation of key {r['key'].hex()}: revoked_at", r["revoked_at"]))
    for name, secs in times:
        if secs > MAX_SECS:
            raise Refused(f"inconsistent: {name} is past 9999-12-31T23:59:59Z")


def check_list(lst: dict) -> None:
    if not NAME_RE.fullmatch(lst["network"]):
        raise Refused(f"network {lst['network']!r} is not valid")
    if lst["version"] == 0:
        raise Refused("inconsistent: version must be 1 or higher")
    check_times(lst)
    if lst["expires_at"] <= lst["issued_at"]:
        raise Refused("inconsistent: expires_at must be after issued_at")
    gov = lst["governance"]
    check_governance(gov["keys"], gov["threshold"], "governance")
    if not strictly_ascending(lst["members"], key=lambda m: m["member_id"].encode("ascii")):
        raise Refused("inconsistent: members must be sorted by member id and without repeats")
    if not strictly_ascending(lst["revoked"], key=lambda r: r["key"]):
        raise Refused("inconsistent: revoked must be sorted by key and without repeats")
    revoked = {r["key"] for r in lst["revoked"]}
    if len(revoked) != len(lst["revoked"]):
        raise Refused("inconsistent: a key is revoked twice")
    if any(k in revoked for k in gov["keys"]):
        raise Refused("inconsistent: a governance key is revoked")
    ids: set[str] = set()
    keys = set(gov["keys"])
    for m in lst["members"]:
        try:
            check_profile(m)
        except Refused as e:
            raise Refused(f"inconsistent: member {m['member_id']}: {e}") from None
        if m["member_id"] in ids:
            raise Refused(f"inconsistent: member id {m['member_id']} is listed twice")
        ids.add(m["member_id"])
        if m["node_key"] in revoked:
            raise Refused(f"inconsistent: member {m['member_id']} uses a revoked key")
        if m["node_key"] in keys:
            raise Refused(f"inconsistent: key {m['node_key'].hex()} is used twice")
        keys.add(m["node_key"])
        if m["valid_until"] is not None and m["valid_until"] <= m["valid_from"]:
            raise Refused(f"inconsistent: member {m['member_id']}: valid_until is not after valid_from")
    actor_roles = lst["profile"]["actor_roles"]
    if len(actor_roles) > MAX_ACTOR_ROLES:
        raise Refused(f"inconsistent: profile: actor_roles: give at most {MAX_ACTOR_ROLES} actor roles")
    if not strictly_ascending(actor_roles, key=lambda r: r.encode("ascii")):
        raise Refused("inconsistent: profile: actor_roles: must be sorted and without repeats")


# --- the procedure (section 6.2, steps 1-9) ---------------------------------


def verify(data: bytes, anchor: list[bytes], threshold: int, now: int) -> dict:
    if len(data) > LIST_LIMIT:
        raise Refused(f"member list is {len(data)} bytes, more than {LIST_LIMIT}")
    body, signatures = decode_envelope(decode_item(data, "member list"))
    require_canonical(encode_envelope(body, signatures), data, "member list")
    allowed = set(anchor)
    message = MEMBER_LIST_PREFIX + body
    valid: set[bytes] = set()
    invalid = 0
    for key, sig in signatures:
        if key not in allowed or key in valid:
            continue
        if verify_strict(key, message, sig):
            valid.add(key)
        else:
            invalid += 1
    if len(valid) < threshold:
        hint = f"; {invalid} signature(s) by anchor keys do not verify" if invalid else ""
        raise Refused(f"{len(valid)} valid signature(s) from distinct anchor keys, {threshold} required{hint}")
    lst = decode_list(decode_item(body, "member list body"))
    require_canonical(encode_list(lst), body, "member list body")
    check_list(lst)
    if lst["issued_at"] > now + CLOCK_SKEW_SECS:
        raise Refused(f"version {lst['version']} is issued at {lst['issued_at']}, in the future")
    if now >= lst["expires_at"]:
        raise Refused(f"version {lst['version']} expired at {lst['expires_at']}")
    return lst


def parse_anchor(hex_keys: list[str], threshold: int) -> list[bytes]:
    keys = []
    for h in hex_keys:
        if not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", h.strip()):
            raise Refused(f"anchor key {h!r} is not hex")
        raw = bytes.fromhex(h.strip())
        problem = key_problem(raw)
        if problem:
            raise Refused(f"anchor key {h.strip()} is {problem}")
        keys.append(raw)
    # Section 6.1: the anchor is a set; its keys may be given in any order.
    keys.sort()
    check_governance(keys, threshold, "anchor")
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a signed handbereik member list (docs/formats.md).")
    parser.add_argument("list_file", metavar="LIST_FILE")
    parser.add_argument("--anchor", action="append", required=True, metavar="HEX", help="a trusted governance public key, 64 hex digits; repeat")
    parser.add_argument("--threshold", type=int, required=True, metavar="K", help="how many distinct anchor keys must have signed")
    parser.add_argument("--now", type=int, default=None, metavar="UNIX_SECONDS", help="the time to check validity at (default: now)")
    args = parser.parse_args(argv)
    now = int(time.time()) if args.now is None else args.now
    try:
        anchor = parse_anchor(args.anchor, args.threshold)
        try:
            with open(args.list_file, "rb") as f:
                data = f.read(LIST_LIMIT + 1)
        except OSError as e:
            raise Refused(f"cannot read {args.list_file}: {e.strerror}") from None
        lst = verify(data, anchor, args.threshold, now)
    except Refused as e:
        print(f"refused: {e}")
        return 1
    print(f"ok: network {lst['network']} version {lst['version']} members {len(lst['members'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
