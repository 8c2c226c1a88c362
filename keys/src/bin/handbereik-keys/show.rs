//! `handbereik-keys show`: a draft, a signed list or a request, for people or as JSON.

use std::path::Path;

use anyhow::{Result, bail};
use handbereik_keys::{
    Draft, KeysError, LIST_LIMIT, Member, MemberList, MembershipRequest, Signature, SignedEnvelope,
    canonical, files, time,
};
use serde_json::json;

/// Shows `file`, whichever of the three kinds it is.
pub fn show(file: &Path, as_json: bool) -> Result<()> {
    let bytes = files::read_file(file, "file", LIST_LIMIT)?;
    if let Ok(draft) = Draft::decode(&bytes) {
        let signed = draft.valid_signers()?;
        if as_json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "kind": "draft", "draft": draft }))?
            );
            return Ok(());
        }
        println!(
            "member list draft, version {} (follows version {})",
            draft.list.version, draft.base_version
        );
        println!(
            "signatures: {} of {} required from these governance keys:",
            signed.len(),
            draft.signers.threshold
        );
        for key in &draft.signers.keys {
            let mark = if signed.contains(key) {
                "signed"
            } else {
                "not yet"
            };
            println!("  {key}  {mark}");
        }
        print_list(&draft.list);
        return Ok(());
    }
    let envelope = match SignedEnvelope::decode(&bytes, "file", LIST_LIMIT) {
        Ok(envelope) => envelope,
        Err(e) => bail!(
            "{} is neither a draft, a signed member list nor a membership request: {e}",
            file.display()
        ),
    };
    if let Ok(list) = canonical::from_slice::<MemberList>(&envelope.body, "member list") {
        if as_json {
            let doc =
                json!({ "kind": "member-list", "list": list, "signatures": envelope.signatures });
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(());
        }
        println!("signed member list (signatures not checked here: use `handbereik-keys verify`)");
        print_signatures(&envelope.signatures);
        print_list(&list);
        return Ok(());
    }
    match MembershipRequest::verify(&bytes) {
        Ok(request) => {
            if as_json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({ "kind": "membership-request", "request": request })
                    )?
                );
                return Ok(());
            }
            println!("membership request (proof of possession: valid)");
            println!("  member id      {}", request.member_id);
            println!("  name           {}", request.name);
            println!("  roles          {}", join(&request.roles));
            println!("  purposes       {}", join(&request.purposes));
            println!("  node key       {}", request.node_key);
            println!("  p2p addresses  {}", request.p2p_addresses.join(" "));
            println!("  grpc endpoint  {}", request.grpc_endpoint);
            println!("  created at     {}", time::rfc3339(request.created_at));
            Ok(())
        }
        Err(e @ KeysError::RequestNotSelfSigned { .. }) => Err(e.into()),
        Err(e) => bail!(
            "{} holds a signed object of unknown kind: {e}",
            file.display()
        ),
    }
}

fn print_signatures(signatures: &[Signature]) {
    println!("signatures ({}):", signatures.len());
    for s in signatures {
        println!("  {}", s.key);
    }
}

fn print_list(list: &MemberList) {
    let now = time::now();
    println!("network        {}", list.network);
    println!("version        {}", list.version);
    println!("issued at      {}", time::rfc3339(list.issued_at));
    let state = if list.is_expired(now) {
        "  EXPIRED"
    } else {
        ""
    };
    println!("expires at     {}{state}", time::rfc3339(list.expires_at));
    if !list.profile.actor_roles.is_empty() {
        println!("actor roles    {}", join(&list.profile.actor_roles));
    }
    println!(
        "next list must be signed by {} of:",
        list.governance.threshold
    );
    for key in &list.governance.keys {
        println!("  {key}");
    }
    println!("members ({}):", list.members.len());
    for m in &list.members {
        print_member(m);
    }
    println!("revoked keys ({}):", list.revoked.len());
    for r in &list.revoked {
        println!(
            "  {}  member {}  at {}  ({})",
            r.key,
            r.member_id,
            time::rfc3339(r.revoked_at),
            r.reason
        );
    }
}

fn print_member(m: &Member) {
    let maintenance = if m.maintenance { "  [maintenance]" } else { "" };
    println!("  {}  {}{maintenance}", m.member_id, m.name);
    println!(
        "      roles {}; purposes {}",
        join(&m.roles),
        join(&m.purposes)
    );
    println!("      key {}", m.node_key);
    println!(
        "      grpc {}; p2p {}",
        m.grpc_endpoint,
        m.p2p_addresses.join(" ")
    );
    let until = m
        .valid_until
        .map(time::rfc3339)
        .unwrap_or_else(|| "open-ended".into());
    println!(
        "      valid from {} until {until}",
        time::rfc3339(m.valid_from)
    );
    if !m.regions.is_empty() {
        println!("      regions {}", m.regions.join(","));
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}
