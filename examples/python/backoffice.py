"""An example back-office integration of handbereik, in Python.

What a partner's case-management system does through its own node's local
API, with the client generated from proto/ by grpcio-tools (generate.py):
register what it holds about a subject, announce it, read its durable
subscription, locate a subject at the other sources, and inspect one of
them. Run it with run-example.sh against `handbereik dev`:

    examples/python/run-example.sh dev-net/gemeente/handbereik.toml

Any refusal ends the program with one line that says what to do, exit 1.
"""

import argparse
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
    notifications_pb2,
    notifications_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

HINTS = {
    grpc.StatusCode.UNAUTHENTICATED: "wrong API token: use the node's local_api.token_file",
    grpc.StatusCode.UNAVAILABLE: "the node is not reachable or is shutting down; is it running?",
    grpc.StatusCode.FAILED_PRECONDITION: "the node has no valid member list: ask governance for a current one",
    grpc.StatusCode.PERMISSION_DENIED: "this node is not admitted for that purpose",
    grpc.StatusCode.INVALID_ARGUMENT: "a field is wrong",
    grpc.StatusCode.NOT_FOUND: "no such entry or member",
}


class Node:
    """The local API of one node: the address and token from its config."""

    def __init__(self, config_file: pathlib.Path):
        with open(config_file, "rb") as f:
            config = tomllib.load(f)
        local_api = config.get("local_api", {})
        self.address = local_api.get("listen", "127.0.0.1:7400")
        # Relative paths in handbereik.toml are relative to the file's directory.
        token_file = config_file.parent / local_api.get("token_file", "api-token")
        token = token_file.read_text().strip()
        self.metadata = (("authorization", f"Bearer {token}"),)
        channel = grpc.insecure_channel(self.address)  # plaintext on loopback only
        self.registry = registry_pb2_grpc.RegistryStub(channel)
        self.notifications = notifications_pb2_grpc.NotificationsStub(channel)
        self.inspections = inspections_pb2_grpc.InspectionsStub(channel)
        self.audit = audit_pb2_grpc.AuditStub(channel)


def bsn(number: str) -> registry_pb2.Subject:
    return registry_pb2.Subject(bsn=number)


def register(node: Node, number: str) -> str:
    """Registers a report of concern, or updates it on a second run."""
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
        )
        verb = "registered"
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        response = node.registry.Update(
            registry_pb2.UpdateRequest(subject=bsn(number), entry=entry),
            metadata=node.metadata,
        )
        verb = "updated"
    # The node answers with the network pseudonym; the BSN stays here.
    print(f"{verb} {response.entry.category} for subject {response.entry.subject}")
    return response.entry.subject


def publish(node: Node, pseudonym: str, purpose: str) -> None:
    response = node.notifications.Publish(
        notifications_pb2.PublishRequest(
            type="nl.samenonderhandbereik.melding.ontvangen",
            purpose=purpose,
            subject=pseudonym,
            dataref="melding",
            datacontenttype="application/json",
            data=b'{"urgentie":"normaal"}',
        ),
        metadata=node.metadata,
    )
    n = response.notification
    print(f"published {n.type} sequence {n.sequence} id {n.id}")


def read_subscription(node: Node, seconds: float = 3.0) -> None:
    """Reads the durable subscription for a while, acknowledging each
    notification after handling it (delivery is at least once)."""
    name = "python-example"
    stream = node.notifications.Subscribe(
        notifications_pb2.SubscribeRequest(name=name), metadata=node.metadata
    )
    # Subscribe stays open for live deliveries; an example stops after a while.
    timer = threading.Timer(seconds, stream.cancel)
    timer.start()
    handled = 0
    try:
        for delivery in stream:
            n = delivery.notification
            print(
                f"received {n.type} from {n.source_member_id} about {n.subject} "
                f"(position {delivery.position})"
            )
            node.notifications.Ack(
                notifications_pb2.AckRequest(name=name, position=delivery.position),
                metadata=node.metadata,
            )
            handled += 1
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            raise
    finally:
        timer.cancel()
    print(f"subscription {name}: {handled} notifications handled")


def locate(node: Node, number: str, purpose: str) -> None:
    response = node.inspections.Locate(
        inspections_pb2.LocateRequest(subject=bsn(number), purpose=purpose, deadline_ms=2000),
        metadata=node.metadata,
    )
    for a in response.answers:
        print(f"locate: {a.name} ({a.member_id}) {inspections_pb2.Answer.Name(a.answer)}")


def inspect(node: Node, member: str, number: str, purpose: str) -> None:
    response = node.inspections.Inspect(
        inspections_pb2.InspectRequest(
            member_id=member,
            subject=bsn(number),
            purpose=purpose,
            categories=["melding", "veiligheidsplan"],
            deadline_ms=2000,
        ),
        metadata=node.metadata,
    )
    if not response.categories:
        print(f"inspect: {member} {inspections_pb2.Answer.Name(response.reachability)} ({response.reason})")
    for c in response.categories:
        decision = inspections_pb2.CategoryDecision.Name(c.decision)
        print(f"inspect {c.category}: {decision} by {', '.join(c.policies)}")
        for r in c.records:
            print(f"  {r.category} ({r.legal_basis}): {r.content.decode('utf-8', 'replace')}")
    p = response.provenance
    if p.source_member_id:
        print(f"answer signed by {p.source_member_id} ({len(p.signed_answer)} bytes kept as proof)")


def report(node: Node, number: str) -> None:
    response = node.audit.SubjectReport(
        audit_pb2.SubjectReportRequest(subject=bsn(number)), metadata=node.metadata
    )
    for e in response.obtained:
        print(f"audit: obtained {', '.join(e.categories_given)} from {e.peer} for {e.purpose}")
    print(
        f"audit: {len(response.disclosures)} disclosures, {len(response.obtained)} obtained, "
        f"{response.refused} refused or unanswered"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Register, publish, subscribe, locate and inspect through a handbereik node.",
        epilog="Example: backoffice.py --config dev-net/gemeente/handbereik.toml",
    )
    parser.add_argument("--config", required=True, type=pathlib.Path, help="the node's handbereik.toml")
    parser.add_argument(
        "--member", default="00000001002345678000", help="the member to inspect (default: Veilig Thuis of the dev network)"
    )
    parser.add_argument("--bsn", default="999999990", help="the BSN this back office registers")
    parser.add_argument("--ask-bsn", default="111222333", help="the BSN to locate and inspect")
    parser.add_argument("--purpose", default="jeugdbescherming", help="the purpose (doelbinding) of every request")
    args = parser.parse_args()
    try:
        node = Node(args.config)
        print(f"connected to the local API at {node.address}")
        pseudonym = register(node, args.bsn)
        publish(node, pseudonym, args.purpose)
        read_subscription(node)
        locate(node, args.ask_bsn, args.purpose)
        inspect(node, args.member, args.ask_bsn, args.purpose)
        report(node, args.ask_bsn)
    except grpc.RpcError as e:
        hint = HINTS.get(e.code(), "the node refused the call")
        print(f"error: {hint}: {e.details()} ({e.code().name})", file=sys.stderr)
        return 1
    except (OSError, tomllib.TOMLDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
