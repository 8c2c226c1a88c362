"""An example back-office integration of handbereik, in Python.

What a partner's case-management system does through its own node's local
API, with the client generated from proto/ by grpcio-tools (generate.py):

1. register what it holds about a subject (by BSN; the node answers with
   the network pseudonym, and the BSN never leaves the node),
2. publish a notification about it (by pseudonym),
3. read its durable subscription for a few seconds, acknowledging each
   notification after handling it,
4. locate a subject: which sources admitted for the purpose know it,
5. inspect one source for an allowed and a refused category,
6. read its own audit report for that subject.

Run it with run-example.sh against `handbereik dev`:

    examples/python/run-example.sh dev-net/gemeente/handbereik.toml

Any refusal ends the program with one line that says what to do, exit 1.
"""

import argparse
import datetime
import pathlib
import sys
import threading
import time
import tomllib

import grpc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "generated"))

from handbereik.v1 import (  # noqa: E402  (generated code, path set above)
    audit_pb2,
    audit_pb2_grpc,
    inspections_pb2,
    inspections_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
    notifications_pb2,
    notifications_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

SUBSCRIPTION = "python-example"
# A client-side limit on every unary call; inspections also give the node
# their own deadline (deadline_ms) for asking the other members.
CALL_TIMEOUT = 15.0


class Node:
    """The local API of one node: the address and token from its config."""

    def __init__(self, config_file: pathlib.Path):
        self.config_file = config_file
        with open(config_file, "rb") as f:
            config = tomllib.load(f)
        local_api = config.get("local_api", {})
        self.address = local_api.get("listen", "127.0.0.1:7400")
        # Relative paths in handbereik.toml are relative to the file's directory.
        self.token_file = config_file.parent / local_api.get("token_file", "api-token")
        token = self.token_file.read_text().strip()
        self.metadata = (("authorization", f"Bearer {token}"),)
        # Plaintext HTTP/2: the local API listens on loopback only, no TLS.
        channel = grpc.insecure_channel(self.address)
        self.node = node_pb2_grpc.NodeStub(channel)
        self.registry = registry_pb2_grpc.RegistryStub(channel)
        self.notifications = notifications_pb2_grpc.NotificationsStub(channel)
        self.inspections = inspections_pb2_grpc.InspectionsStub(channel)
        self.audit = audit_pb2_grpc.AuditStub(channel)
        self.answered = False  # whether the node answered any call yet


def bsn(number: str) -> registry_pb2.Subject:
    """A subject by BSN; the node turns it into the network pseudonym."""
    return registry_pb2.Subject(bsn=number)


def when(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d")


def status(node: Node) -> None:
    s = node.node.Status(node_pb2.StatusRequest(), metadata=node.metadata, timeout=CALL_TIMEOUT)
    node.answered = True
    print(
        f"connected to the local API at {node.address}: member {s.member_id} in network {s.network}, "
        f"member list version {s.member_list_version}, {len(s.connected_peers)} peers, state {s.state}"
    )


def register(node: Node, number: str) -> str:
    """Registers a report of concern, or updates it on a second run, and
    returns the subject's pseudonym from the node's answer."""
    entry = registry_pb2.EntryInput(
        category="melding",
        legal_basis="Jeugdwet art. 2.3",
        retain_until=int(time.time()) + 365 * 86400,
        content_type="application/json",
        content=b'{"ontvangen":"2026-11-22","zorg":"signalen uit de wijk"}',
    )
    try:
        response = node.registry.Register(
            registry_pb2.RegisterRequest(subject=bsn(number), entry=entry),
            metadata=node.metadata,
            timeout=CALL_TIMEOUT,
        )
        verb = "registered"
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        response = node.registry.Update(
            registry_pb2.UpdateRequest(subject=bsn(number), entry=entry),
            metadata=node.metadata,
            timeout=CALL_TIMEOUT,
        )
        verb = "updated"
    e = response.entry
    # The answer names the subject by its network pseudonym; the BSN stays here.
    print(f"{verb} {e.category} ({e.kind}, {e.classification}) for subject {e.subject} (kept until {when(e.retain_until)})")
    return e.subject


def publish(node: Node, pseudonym: str, purpose: str) -> None:
    response = node.notifications.Publish(
        notifications_pb2.PublishRequest(
            type="nl.samenonderhandbereik.melding.ontvangen",
            purpose=purpose,
            subject=pseudonym,  # a pseudonym, never a BSN
            dataref="melding",
            datacontenttype="application/json",
            data=b'{"urgentie":"normaal"}',
        ),
        metadata=node.metadata,
        timeout=CALL_TIMEOUT,
    )
    n = response.notification
    print(f"published {n.type} purpose {n.purpose} sequence {n.sequence} id {n.id}")


def read_subscription(node: Node, seconds: float, count: int) -> None:
    """Reads the durable subscription for at most `seconds` or `count`
    deliveries, acknowledging each one after handling it (delivery is at
    least once: what is not acknowledged comes again next time)."""
    stream = node.notifications.Subscribe(
        notifications_pb2.SubscribeRequest(name=SUBSCRIPTION), metadata=node.metadata
    )
    # Subscribe stays open for live deliveries; this example stops after a while.
    timer = threading.Timer(seconds, stream.cancel)
    timer.start()
    handled = 0
    try:
        for delivery in stream:
            n = delivery.notification
            print(
                f"received {n.type} from {n.source_member_id} about {n.subject} "
                f"purpose {n.purpose} (position {delivery.position})"
            )
            # Handled (printed): now acknowledge it, and all before it.
            node.notifications.Ack(
                notifications_pb2.AckRequest(name=SUBSCRIPTION, position=delivery.position),
                metadata=node.metadata,
                timeout=CALL_TIMEOUT,
            )
            handled += 1
            if handled >= count:
                break
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            raise
    finally:
        timer.cancel()
        stream.cancel()
    print(f"subscription {SUBSCRIPTION}: {handled} notifications handled and acknowledged")


# The acting professional: every request that reaches another member names
# the back office's pseudonymous user id and a role from the network's role
# vocabulary (the member list); both audit logs record it.
ACTOR = registry_pb2.Actor(user="example-user-1", role="casusregisseur")


def locate(node: Node, number: str, purpose: str) -> None:
    response = node.inspections.Locate(
        inspections_pb2.LocateRequest(subject=bsn(number), purpose=purpose, deadline_ms=2000, actor=ACTOR),
        metadata=node.metadata,
        timeout=CALL_TIMEOUT,
    )
    print(f"locate {response.subject} for {purpose}: {len(response.answers)} sources asked (request {response.request_id})")
    for a in response.answers:
        line = f"locate: {a.name} ({a.member_id}) {inspections_pb2.Answer.Name(a.answer)}"
        if a.records:
            line += f" [{', '.join(r.category for r in a.records)}]"
        if a.reason:
            line += f": {a.reason}"
        print(line)


def inspect(node: Node, member: str, number: str, purpose: str) -> None:
    response = node.inspections.Inspect(
        inspections_pb2.InspectRequest(
            member_id=member,
            subject=bsn(number),
            purpose=purpose,
            categories=["melding", "veiligheidsplan"],
            deadline_ms=2000,
            actor=ACTOR,
        ),
        metadata=node.metadata,
        timeout=CALL_TIMEOUT,
    )
    if not response.categories:
        print(f"inspect: {member} {inspections_pb2.Answer.Name(response.reachability)} ({response.reason})")
    for c in response.categories:
        decision = inspections_pb2.CategoryDecision.Name(c.decision)
        print(f"inspect {c.category}: {decision} by {', '.join(c.policies) or 'the default deny'}")
        for r in c.records:
            print(
                f"  {r.category} ({r.kind}, {r.classification}, {r.legal_basis}, "
                f"kept until {when(r.retain_until)}): {r.content.decode('utf-8', 'replace')}"
            )
    p = response.provenance
    if p.source_member_id:
        print(
            f"answer signed by {p.source_member_id} key {p.source_key[:16]}... at {when(p.answered_at)} "
            f"({len(p.signed_answer)} bytes kept as proof)"
        )


def report(node: Node, number: str) -> None:
    response = node.audit.SubjectReport(
        audit_pb2.SubjectReportRequest(subject=bsn(number)), metadata=node.metadata, timeout=CALL_TIMEOUT
    )
    for e in response.obtained:
        print(f"audit: obtained {', '.join(e.categories_given)} from {e.peer} for {e.purpose}")
    print(
        f"audit: {len(response.disclosures)} disclosures, {len(response.obtained)} obtained, "
        f"{response.refused} refused or unanswered"
    )


def explain(node: Node, e: grpc.RpcError) -> str:
    """One line for a refused call: what it means and what to do."""
    code = e.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        hint = f"wrong API token for {node.address}: use the content of the node's token file (read {node.token_file})"
    elif code == grpc.StatusCode.UNAVAILABLE and not node.answered:
        hint = f"no node answers at {node.address}: is it running? (handbereik run --config {node.config_file})"
    elif code == grpc.StatusCode.UNAVAILABLE:
        hint = f"the node at {node.address} refused: it is shutting down or cannot write its audit log; retry later"
    elif code == grpc.StatusCode.FAILED_PRECONDITION:
        hint = "the node's member list is missing or expired (see handbereik status); governance must publish a current one"
    elif code == grpc.StatusCode.PERMISSION_DENIED:
        hint = "this node is not admitted for that purpose in the member list"
    elif code == grpc.StatusCode.INVALID_ARGUMENT:
        hint = "a field is wrong"
    elif code == grpc.StatusCode.NOT_FOUND:
        hint = "no such entry, or no such member in the member list"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        hint = f"no answer within {CALL_TIMEOUT:.0f} s"
    elif code == grpc.StatusCode.INTERNAL:
        hint = "a fault inside the node; the operator checks its log"
    else:
        hint = "the node refused the call"
    return f"error: {hint}: {e.details()} ({code.name})"


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Register, publish, subscribe, locate and inspect through a handbereik node's local API.",
        epilog="Example: backoffice.py --config dev-net/gemeente/handbereik.toml",
    )
    parser.add_argument("--config", required=True, type=pathlib.Path, help="the node's handbereik.toml")
    parser.add_argument(
        "--member", default="00000001002345678000", help="the member to inspect (default: Veilig Thuis of the dev network)"
    )
    parser.add_argument("--bsn", default="999999990", help="the BSN this back office registers (default: %(default)s)")
    parser.add_argument("--ask-bsn", default="111222333", help="the BSN to locate and inspect (default: %(default)s)")
    parser.add_argument("--purpose", default="jeugdbescherming", help="the purpose (doelbinding) of every request")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to read the subscription (default: 3)")
    parser.add_argument("--count", type=int, default=10, help="stop reading after this many deliveries (default: 10)")
    args = parser.parse_args()
    try:
        node = Node(args.config)
    except (OSError, tomllib.TOMLDecodeError) as e:
        print(f"error: cannot read the node's config or token: {e}", file=sys.stderr)
        return 1
    try:
        status(node)
        pseudonym = register(node, args.bsn)
        publish(node, pseudonym, args.purpose)
        read_subscription(node, args.seconds, args.count)
        locate(node, args.ask_bsn, args.purpose)
        inspect(node, args.member, args.ask_bsn, args.purpose)
        report(node, args.ask_bsn)
    except grpc.RpcError as e:
        print(explain(node, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
