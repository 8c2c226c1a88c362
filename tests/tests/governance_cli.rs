//! The governance flow through the built binaries, as the README tells it:
//! partners run `handbereik init`, three holders make governance keys, the
//! ledenadministrator admits the partners, two of three holders sign, the list
//! is published and verified; then every bad input from the foundation issue
//! gets exit 2 and one clear line.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Result;
use handbereik_tests::run;

const KEYS: &str = "handbereik-keys";
const NODE: &str = "handbereik";

fn init_partner(dir: &Path, name: &str, oin: &str, port: u16) -> Result<()> {
    let p2p = format!("/ip4/127.0.0.1/tcp/{port}");
    let grpc = format!("127.0.0.1:{}", port + 1000);
    run(
        NODE,
        dir,
        &[
            "init",
            "--dir",
            name,
            "--network",
            "demo",
            "--member-id",
            oin,
            "--name",
            name,
            "--roles",
            "afnemer,bronhouder",
            "--purposes",
            "jeugdbescherming,huiselijk-geweld",
            "--p2p-address",
            &p2p,
            "--grpc-endpoint",
            &grpc,
        ],
    )?
    .ok()?;
    Ok(())
}

#[test]
fn two_of_three_governance_flow_and_its_bad_inputs() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();

    init_partner(d, "gemeente", "00000001001234567000", 4101)?;
    init_partner(d, "veilig-thuis", "00000001002345678000", 4102)?;
    assert_eq!(
        fs::metadata(d.join("gemeente/node.key"))?
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    for holder in ["a", "b", "c"] {
        let out = run(KEYS, d, &["init", "--out", &format!("gov-{holder}.key")])?.ok()?;
        assert!(out.stdout.contains("public key"), "{}", out.stdout);
        assert_eq!(
            fs::metadata(d.join(format!("gov-{holder}.key")))?
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let anchor = "gov-a.key.pub,gov-b.key.pub,gov-c.key.pub";

    run(
        KEYS,
        d,
        &[
            "new",
            "--draft",
            "draft.cbor",
            "--network",
            "demo",
            "--governance",
            anchor,
            "--threshold",
            "2",
        ],
    )?
    .ok()?;
    let out = run(
        KEYS,
        d,
        &[
            "admit",
            "gemeente/membership-request.cbor",
            "--draft",
            "draft.cbor",
        ],
    )?
    .ok()?;
    assert!(
        out.stdout.contains("admitted 00000001001234567000"),
        "{}",
        out.stdout
    );
    run(
        KEYS,
        d,
        &[
            "admit",
            "veilig-thuis/membership-request.cbor",
            "--draft",
            "draft.cbor",
            "--purposes",
            "huiselijk-geweld",
        ],
    )?
    .ok()?;

    // Duplicate member id or key.
    run(
        KEYS,
        d,
        &[
            "admit",
            "gemeente/membership-request.cbor",
            "--draft",
            "draft.cbor",
        ],
    )?
    .refused("already admitted")?;

    // One signature is not enough to publish.
    let out = run(
        KEYS,
        d,
        &["sign", "--draft", "draft.cbor", "--key", "gov-a.key"],
    )?
    .ok()?;
    assert!(out.stdout.contains("1 of 2"), "{}", out.stdout);
    fs::copy(d.join("draft.cbor"), d.join("one-signature.cbor"))?;
    run(
        KEYS,
        d,
        &["publish", "--draft", "draft.cbor", "--out", "list.cbor"],
    )?
    .refused("1 valid signature(s)")?;
    // Signing twice with the same key counts once.
    let out = run(
        KEYS,
        d,
        &["sign", "--draft", "draft.cbor", "--key", "gov-a.key"],
    )?
    .ok()?;
    assert!(
        out.stdout.contains("already signed") && out.stdout.contains("1 of 2"),
        "{}",
        out.stdout
    );

    let out = run(
        KEYS,
        d,
        &["sign", "--draft", "draft.cbor", "--key", "gov-c.key"],
    )?
    .ok()?;
    assert!(out.stdout.contains("ready to publish"), "{}", out.stdout);
    let out = run(
        KEYS,
        d,
        &["publish", "--draft", "draft.cbor", "--out", "list.cbor"],
    )?
    .ok()?;
    assert!(
        out.stdout.contains("version 1, 2 members"),
        "{}",
        out.stdout
    );

    let out = run(
        KEYS,
        d,
        &[
            "verify",
            "list.cbor",
            "--anchor",
            anchor,
            "--threshold",
            "2",
            "--network",
            "demo",
        ],
    )?
    .ok()?;
    assert!(
        out.stdout
            .starts_with("valid: network demo version 1, 2 members"),
        "{}",
        out.stdout
    );

    let out = run(KEYS, d, &["show", "list.cbor"])?.ok()?;
    assert!(
        out.stdout.contains("veilig-thuis") && out.stdout.contains("purposes huiselijk-geweld\n"),
        "{}",
        out.stdout
    );
    let out = run(KEYS, d, &["show", "list.cbor", "--json"])?.ok()?;
    assert!(
        out.stdout.contains("\"kind\": \"member-list\""),
        "{}",
        out.stdout
    );
    let out = run(KEYS, d, &["show", "gemeente/membership-request.cbor"])?.ok()?;
    assert!(
        out.stdout.contains("proof of possession: valid"),
        "{}",
        out.stdout
    );

    // A list signed by one key (k-1) is refused.
    let one = fs::read(d.join("one-signature.cbor"))?;
    let draft = handbereik_keys::Draft::decode(&one)?;
    let envelope = handbereik_keys::SignedEnvelope {
        body: draft.body()?,
        signatures: draft.signatures.clone(),
    };
    fs::write(d.join("one-signed-list.cbor"), envelope.encode()?)?;
    run(
        KEYS,
        d,
        &[
            "verify",
            "one-signed-list.cbor",
            "--anchor",
            anchor,
            "--threshold",
            "2",
        ],
    )?
    .refused("1 valid signature(s) from distinct governance keys, 2 are required")?;

    // The same signature twice counts once.
    let mut twice = envelope.clone();
    twice.signatures.push(twice.signatures[0].clone());
    fs::write(d.join("twice.cbor"), twice.encode()?)?;
    run(
        KEYS,
        d,
        &[
            "verify",
            "twice.cbor",
            "--anchor",
            anchor,
            "--threshold",
            "2",
        ],
    )?
    .refused("1 valid signature(s)")?;

    // A tampered body: flip one byte of a member's name inside the signed list.
    let mut tampered = fs::read(d.join("list.cbor"))?;
    let pos = tampered
        .windows(8)
        .position(|w| w == b"gemeente")
        .expect("name in list");
    tampered[pos] = b'G';
    fs::write(d.join("tampered.cbor"), &tampered)?;
    run(
        KEYS,
        d,
        &[
            "verify",
            "tampered.cbor",
            "--anchor",
            anchor,
            "--threshold",
            "2",
        ],
    )?
    .refused("altered after signing")?;

    // A replayed older version: v2 is published, then v1 is offered after it.
    run(
        KEYS,
        d,
        &["new", "--draft", "draft2.cbor", "--from", "list.cbor"],
    )?
    .ok()?;
    run(
        KEYS,
        d,
        &[
            "revoke",
            "00000001002345678000",
            "--draft",
            "draft2.cbor",
            "--reason",
            "left the network",
        ],
    )?
    .ok()?;
    run(
        KEYS,
        d,
        &["sign", "--draft", "draft2.cbor", "--key", "gov-b.key"],
    )?
    .ok()?;
    run(
        KEYS,
        d,
        &["sign", "--draft", "draft2.cbor", "--key", "gov-c.key"],
    )?
    .ok()?;
    run(
        KEYS,
        d,
        &["publish", "--draft", "draft2.cbor", "--out", "list2.cbor"],
    )?
    .ok()?;
    let out = run(
        KEYS,
        d,
        &[
            "verify",
            "list2.cbor",
            "--anchor",
            anchor,
            "--threshold",
            "2",
            "--previous",
            "list.cbor",
        ],
    )?
    .ok()?;
    assert!(
        out.stdout.contains("version 2, 1 members"),
        "{}",
        out.stdout
    );
    run(
        KEYS,
        d,
        &[
            "verify",
            "list.cbor",
            "--anchor",
            anchor,
            "--threshold",
            "2",
            "--previous",
            "list2.cbor",
        ],
    )?
    .refused("not newer")?;
    // The revoked partner cannot be admitted again with the same key.
    run(
        KEYS,
        d,
        &["new", "--draft", "draft3.cbor", "--from", "list2.cbor"],
    )?
    .ok()?;
    run(
        KEYS,
        d,
        &[
            "admit",
            "veilig-thuis/membership-request.cbor",
            "--draft",
            "draft3.cbor",
        ],
    )?
    .refused("revoked")?;

    // A governance key that is not a signer, and a key file others can read.
    run(KEYS, d, &["init", "--out", "stranger.key"])?.ok()?;
    run(
        KEYS,
        d,
        &["sign", "--draft", "draft3.cbor", "--key", "stranger.key"],
    )?
    .refused("is not one of the governance keys")?;
    fs::set_permissions(d.join("gov-a.key"), fs::Permissions::from_mode(0o644))?;
    run(
        KEYS,
        d,
        &["sign", "--draft", "draft3.cbor", "--key", "gov-a.key"],
    )?
    .refused("chmod 600")?;

    // A request whose signature does not match its key.
    let mut request = fs::read(d.join("gemeente/membership-request.cbor"))?;
    let last = request.len() - 1;
    request[last] ^= 0x01;
    fs::write(d.join("forged-request.cbor"), &request)?;
    run(
        KEYS,
        d,
        &["admit", "forged-request.cbor", "--draft", "draft3.cbor"],
    )?
    .refused("on this membership request does not verify")?;

    // Truncated, garbage and missing files.
    let list = fs::read(d.join("list.cbor"))?;
    fs::write(d.join("truncated.cbor"), &list[..list.len() / 2])?;
    run(
        KEYS,
        d,
        &[
            "verify",
            "truncated.cbor",
            "--anchor",
            anchor,
            "--threshold",
            "2",
        ],
    )?
    .refused("truncated")?;
    fs::write(d.join("garbage.cbor"), b"this is not a member list\n")?;
    run(
        KEYS,
        d,
        &[
            "verify",
            "garbage.cbor",
            "--anchor",
            anchor,
            "--threshold",
            "2",
        ],
    )?
    .refused("member list")?;
    run(
        KEYS,
        d,
        &[
            "verify",
            "missing.cbor",
            "--anchor",
            anchor,
            "--threshold",
            "2",
        ],
    )?
    .refused("missing.cbor")?;
    run(
        KEYS,
        d,
        &["admit", "missing-request.cbor", "--draft", "draft3.cbor"],
    )?
    .refused("missing-request.cbor")?;

    // A key of the wrong length and a malformed OIN.
    run(
        KEYS,
        d,
        &[
            "verify",
            "list.cbor",
            "--anchor",
            &"ab".repeat(31),
            "--threshold",
            "1",
        ],
    )?
    .refused("must be 32 bytes, got 31")?;
    run(KEYS, d, &["revoke", "12345", "--draft", "draft3.cbor"])?.refused("not an OIN")?;
    run(
        NODE,
        d,
        &[
            "init",
            "--dir",
            "bad",
            "--network",
            "demo",
            "--member-id",
            "0000000100123456700X",
            "--name",
            "x",
            "--roles",
            "afnemer",
            "--purposes",
            "jeugdbescherming",
            "--p2p-address",
            "/ip4/127.0.0.1/tcp/1",
            "--grpc-endpoint",
            "127.0.0.1:2",
        ],
    )?
    .refused("not an OIN")?;
    assert!(!d.join("bad").exists());
    Ok(())
}

#[test]
fn an_expired_list_is_refused() -> Result<()> {
    // The CLI cannot make an expired list on purpose, so the library makes one
    // that expired an hour ago, and the built binary must refuse it.
    use handbereik_keys::{Draft, GovernanceSet, NodeKey};
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    let gov = NodeKey::generate()?;
    let set = GovernanceSet::new(vec![gov.public_key()], 1)?;
    let now = handbereik_keys::time::now();
    let mut draft = Draft::first("demo", set, 3600, now - 2 * 3600)?;
    draft.sign(&gov)?;
    let list = draft.publish(now - 2 * 3600 + 60)?;
    fs::write(d.join("old.cbor"), &list.signed_bytes)?;
    run(
        KEYS,
        d,
        &[
            "verify",
            "old.cbor",
            "--anchor",
            &gov.public_key().to_hex(),
            "--threshold",
            "1",
        ],
    )?
    .refused("expired at")?;
    Ok(())
}

/// A draft with two admitted partners and three governance keys, in `d`.
fn draft_with_partners(d: &Path) -> Result<()> {
    init_partner(d, "gemeente", "00000001001234567000", 4201)?;
    init_partner(d, "veilig-thuis", "00000001002345678000", 4202)?;
    for holder in ["a", "b", "c"] {
        run(KEYS, d, &["init", "--out", &format!("gov-{holder}.key")])?.ok()?;
    }
    run(
        KEYS,
        d,
        &[
            "new",
            "--draft",
            "draft.cbor",
            "--network",
            "demo",
            "--governance",
            "gov-a.key.pub,gov-b.key.pub,gov-c.key.pub",
            "--threshold",
            "2",
        ],
    )?
    .ok()?;
    Ok(())
}

#[test]
fn regions_are_set_on_admission_changed_in_a_draft_and_shown() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    draft_with_partners(d)?;
    let out = run(
        KEYS,
        d,
        &[
            "admit",
            "gemeente/membership-request.cbor",
            "--draft",
            "draft.cbor",
            "--regions",
            "GM0363,GM0344,GM0363",
        ],
    )?
    .ok()?;
    assert!(
        out.stdout.contains("serving regions GM0344,GM0363"),
        "{}",
        out.stdout
    );
    // A malformed code is refused and the draft keeps one member.
    run(
        KEYS,
        d,
        &[
            "admit",
            "veilig-thuis/membership-request.cbor",
            "--draft",
            "draft.cbor",
            "--regions",
            "gm0363",
        ],
    )?
    .refused("\"gm0363\" is not a region code")?;
    run(
        KEYS,
        d,
        &[
            "admit",
            "veilig-thuis/membership-request.cbor",
            "--draft",
            "draft.cbor",
        ],
    )?
    .ok()?;

    let vt = "00000001002345678000";
    let regions = |args: &[&str]| -> Result<handbereik_tests::Run> {
        let mut all = vec!["regions", vt, "--draft", "draft.cbor"];
        all.extend_from_slice(args);
        run(KEYS, d, &all)
    };
    let out = regions(&["--set", "VR13,GM0344"])?.ok()?;
    assert!(
        out.stdout.contains("serves regions GM0344,VR13"),
        "{}",
        out.stdout
    );
    let out = regions(&["--add", "GM0363"])?.ok()?;
    assert!(
        out.stdout.contains("serves regions GM0344,GM0363,VR13"),
        "{}",
        out.stdout
    );
    let out = regions(&["--remove", "VR13"])?.ok()?;
    assert!(
        out.stdout.contains("serves regions GM0344,GM0363"),
        "{}",
        out.stdout
    );
    regions(&["--remove", "VR13"])?.refused("is not among the regions")?;
    regions(&["--add", "GM12345"])?.refused("not a region code")?;
    regions(&[])?.refused("required")?;
    regions(&["--set", "GM0344", "--clear"])?.refused("cannot be used with")?;
    run(
        KEYS,
        d,
        &[
            "regions",
            "00000009999999999999",
            "--draft",
            "draft.cbor",
            "--clear",
        ],
    )?
    .refused("is not in the list")?;

    for key in ["gov-a.key", "gov-b.key"] {
        run(KEYS, d, &["sign", "--draft", "draft.cbor", "--key", key])?.ok()?;
    }
    run(
        KEYS,
        d,
        &["publish", "--draft", "draft.cbor", "--out", "list.cbor"],
    )?
    .ok()?;
    let out = run(KEYS, d, &["show", "list.cbor"])?.ok()?;
    assert_eq!(
        out.stdout.matches("      regions GM0344,GM0363\n").count(),
        2,
        "{}",
        out.stdout
    );
    let out = run(KEYS, d, &["show", "list.cbor", "--json"])?.ok()?;
    let compact: String = out.stdout.split_whitespace().collect();
    assert_eq!(
        compact.matches(r#""regions":["GM0344","GM0363"]"#).count(),
        2,
        "{}",
        out.stdout
    );

    // The next version carries them; clearing removes them from the list.
    run(
        KEYS,
        d,
        &["new", "--draft", "next.cbor", "--from", "list.cbor"],
    )?
    .ok()?;
    run(KEYS, d, &["regions", vt, "--draft", "next.cbor", "--clear"])?.ok()?;
    let out = run(KEYS, d, &["show", "next.cbor"])?.ok()?;
    assert_eq!(out.stdout.matches("regions GM0344,GM0363").count(), 1);
    Ok(())
}

#[test]
fn actor_roles_are_published_carried_over_and_changed() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    for holder in ["a", "b"] {
        run(KEYS, d, &["init", "--out", &format!("gov-{holder}.key")])?.ok()?;
    }
    let new = |args: &[&str]| -> Result<handbereik_tests::Run> {
        let mut all = vec![
            "new",
            "--network",
            "demo",
            "--governance",
            "gov-a.key.pub,gov-b.key.pub",
            "--threshold",
            "1",
        ];
        all.extend_from_slice(args);
        run(KEYS, d, &all)
    };
    new(&[
        "--draft",
        "bad.cbor",
        "--actor-roles",
        "melder,Casusregisseur",
    ])?
    .refused("\"Casusregisseur\" is not valid")?;
    assert!(!d.join("bad.cbor").exists());
    let out = new(&[
        "--draft",
        "draft.cbor",
        "--actor-roles",
        "melder,deelnemer,casusregisseur,melder",
    ])?
    .ok()?;
    assert!(
        out.stdout
            .contains("actor roles of the network: casusregisseur,deelnemer,melder"),
        "{}",
        out.stdout
    );
    run(
        KEYS,
        d,
        &["sign", "--draft", "draft.cbor", "--key", "gov-a.key"],
    )?
    .ok()?;
    run(
        KEYS,
        d,
        &["publish", "--draft", "draft.cbor", "--out", "list.cbor"],
    )?
    .ok()?;
    let out = run(KEYS, d, &["show", "list.cbor"])?.ok()?;
    assert!(
        out.stdout
            .contains("actor roles    casusregisseur,deelnemer,melder\n"),
        "{}",
        out.stdout
    );
    let out = run(KEYS, d, &["show", "list.cbor", "--json"])?.ok()?;
    let compact: String = out.stdout.split_whitespace().collect();
    assert!(
        compact.contains(r#""profile":{"actor_roles":["casusregisseur","deelnemer","melder"]}"#),
        "{}",
        out.stdout
    );

    // The next version keeps them; a draft changes them.
    let out = run(
        KEYS,
        d,
        &["new", "--draft", "next.cbor", "--from", "list.cbor"],
    )?
    .ok()?;
    assert!(
        out.stdout
            .contains("actor roles of the network: casusregisseur,deelnemer,melder"),
        "{}",
        out.stdout
    );
    let roles = |args: &[&str]| -> Result<handbereik_tests::Run> {
        let mut all = vec!["actor-roles", "--draft", "next.cbor"];
        all.extend_from_slice(args);
        run(KEYS, d, &all)
    };
    let out = roles(&["--add", "burgerportaal,procesregisseur"])?.ok()?;
    assert!(
        out.stdout.contains(
            "actor roles of the network: burgerportaal,casusregisseur,deelnemer,melder,procesregisseur"
        ),
        "{}",
        out.stdout
    );
    let out = roles(&["--remove", "deelnemer"])?.ok()?;
    assert!(!out.stdout.contains("deelnemer"), "{}", out.stdout);
    roles(&["--remove", "deelnemer"])?.refused("not among the network's actor roles")?;
    roles(&["--add", "bronhouder/afnemer"])?.refused("is not valid")?;
    roles(&[])?.refused("required")?;
    let out = roles(&["--set", "melder"])?.ok()?;
    assert!(
        out.stdout.contains("actor roles of the network: melder\n"),
        "{}",
        out.stdout
    );
    let out = roles(&["--clear"])?.ok()?;
    assert!(
        out.stdout.contains("the network names no actor roles"),
        "{}",
        out.stdout
    );
    let out = run(KEYS, d, &["show", "next.cbor"])?.ok()?;
    assert!(!out.stdout.contains("actor roles"), "{}", out.stdout);

    // `new --from --actor-roles` replaces them.
    let out = run(
        KEYS,
        d,
        &[
            "new",
            "--draft",
            "other.cbor",
            "--from",
            "list.cbor",
            "--actor-roles",
            "burgerportaal",
        ],
    )?
    .ok()?;
    assert!(
        out.stdout
            .contains("actor roles of the network: burgerportaal\n"),
        "{}",
        out.stdout
    );
    Ok(())
}

#[test]
fn dates_past_9999_are_refused_on_the_command_line() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    draft_with_partners(d)?;
    run(
        KEYS,
        d,
        &[
            "admit",
            "gemeente/membership-request.cbor",
            "--draft",
            "draft.cbor",
            "--valid-until",
            "10000-01-01T00:00:00Z",
        ],
    )?
    .refused("--valid-until")?;
    run(
        KEYS,
        d,
        &[
            "new",
            "--draft",
            "long.cbor",
            "--network",
            "demo",
            "--governance",
            "gov-a.key.pub",
            "--threshold",
            "1",
            "--valid-for",
            "9999999999999days",
        ],
    )?
    .refused("valid-for: a list must be valid for between 1 hour and 366 days")?;
    run(
        KEYS,
        d,
        &[
            "new",
            "--draft",
            "long.cbor",
            "--network",
            "demo",
            "--governance",
            "gov-a.key.pub",
            "--threshold",
            "1",
            "--valid-for",
            "367days",
        ],
    )?
    .refused("between 1 hour and 366 days")?;
    assert!(!d.join("long.cbor").exists());
    Ok(())
}
