//! The member list figure: verify and install a 20,000-member list the way
//! the node's membership owner does (`TrustState::check_next`, then
//! `install`, then the node's look-up view), once for a node that holds no
//! list and once for one that holds the version before (which repeats
//! almost every member, as governance's weekly lists do).

use std::time::Instant;

use anyhow::Result;
use handbereik_keys::{
    Anchor, Domain, GovernanceSet, Member, MemberId, MemberList, NodeKey, Purpose, Role,
    SignedEnvelope, TrustState, canonical, time,
};
use handbereik_node::membership::MembershipView;

use crate::report::{Report, Target};

const PURPOSES: [&str; 4] = [
    "huiselijk-geweld",
    "jeugdbescherming",
    "schuldhulp",
    "zorg-en-veiligheid",
];

fn member(i: usize, now: u64) -> Result<Member> {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    seed[31] = 0x5a;
    let count = 1 + i % 3;
    let mut purposes = (0..count)
        .map(|k| Purpose::parse(PURPOSES[(i + k) % PURPOSES.len()]))
        .collect::<Result<Vec<_>, _>>()?;
    purposes.sort();
    Ok(Member {
        member_id: MemberId::parse(&format!("00000001{i:012}"))?,
        name: format!("Stichting Jeugd en Gezin Regio Noord {i:05}"),
        roles: vec![Role::Afnemer, Role::Bronhouder],
        purposes,
        node_key: NodeKey::from_seed(seed).public_key(),
        p2p_addresses: vec![format!("/dns4/node{i}.partners.example.nl/tcp/4001")],
        grpc_endpoint: format!("node{i}.partners.example.nl:7443"),
        valid_from: now - 3600,
        valid_until: None,
        maintenance: false,
        regions: Vec::new(),
    })
}

fn signed(list: &MemberList, gov: &NodeKey) -> Result<Vec<u8>> {
    list.check()?;
    let body = canonical::to_vec(list, "member list")?;
    Ok(SignedEnvelope::signed(Domain::MemberList, body, gov).encode()?)
}

/// Verify + install of an `members`-member list, fresh and with the
/// previous version held.
pub fn list_figures(report: &mut Report, members: usize) -> Result<()> {
    let now = time::now();
    let gov = NodeKey::from_seed([9; 32]);
    let set = GovernanceSet::new(vec![gov.public_key()], 1)?;
    let v1 = MemberList {
        network: "bench".into(),
        version: 1,
        issued_at: now - 60,
        expires_at: now + 30 * 24 * 3600,
        governance: set.clone(),
        members: (0..members)
            .map(|i| member(i, now))
            .collect::<Result<_>>()?,
        revoked: Vec::new(),
        profile: Default::default(),
    };
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.issued_at += 1;
    for m in v2.members.iter_mut().step_by(1000) {
        m.maintenance = !m.maintenance;
    }
    let v1_bytes = signed(&v1, &gov)?;
    let v2_bytes = signed(&v2, &gov)?;
    println!(
        "  ({members} members, signed list {} bytes, {:.0} bytes a member)",
        v2_bytes.len(),
        v2_bytes.len() as f64 / members.max(1) as f64
    );
    let anchor = || Anchor::from_governance(&set);

    // Fresh: a node that holds no list yet (every key is checked).
    let mut best_fresh = f64::INFINITY;
    let mut best_held = f64::INFINITY;
    for _ in 0..3 {
        let mut state = TrustState::new("bench", anchor());
        let started = Instant::now();
        let verified = state.check_next(&v1_bytes, now)?;
        let view = MembershipView::from_list(verified.clone());
        anyhow::ensure!(state.install(verified), "the fresh list was not installed");
        best_fresh = best_fresh.min(started.elapsed().as_secs_f64());
        drop(view);

        let started = Instant::now();
        let verified = state.check_next(&v2_bytes, now)?;
        let view = MembershipView::from_list(verified.clone());
        anyhow::ensure!(state.install(verified), "the next list was not installed");
        best_held = best_held.min(started.elapsed().as_secs_f64());
        drop(view);
    }
    report.against(
        "list",
        "list.fresh_ms",
        &format!(
            "a {members}-member list, verify + install + look-up view, no list held (best of 3)"
        ),
        best_fresh * 1e3,
        "ms",
        Target::AtMost(100.0),
    );
    report.against(
        "list",
        "list.next_ms",
        "the next version of it (1 in 1,000 members changed), verify + install + view (best of 3)",
        best_held * 1e3,
        "ms",
        Target::AtMost(100.0),
    );
    Ok(())
}
