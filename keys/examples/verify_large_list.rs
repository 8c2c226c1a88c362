//! Measures how long a node takes to verify a 20,000-member list.
//!
//! Builds a realistic list (20-digit OINs, names of about 40 characters, two
//! roles, two to four purposes, one p2p address, an endpoint and a few
//! regions per member), signs it with 2 of 3 governance keys, and times
//! `verify_member_list` and `TrustState::accept`, both for a node that holds
//! no list yet and for one that holds the previous version (which repeats
//! almost every member). Prints min and median over several runs.
//!
//!     cargo run --release -p handbereik-keys --example verify_large_list [MEMBERS] [RUNS]
//!
//! With a third argument `once` it builds the list and verifies it once, for
//! a profiler; `build` only builds it, so that the difference of the two is
//! one verification; `once-held` accepts the previous version first (and with
//! a fourth argument `build` stops there):
//!
//!     valgrind --tool=callgrind target/release/examples/verify_large_list 20000 1 once
//!     valgrind --tool=callgrind target/release/examples/verify_large_list 20000 1 build
//!
//! "cpu" is the CPU time of one run on all threads; "min" the wall time.
//!
//! Not a test: nothing is asserted about the figures. Calls the public API of
//! `handbereik_keys` only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use handbereik_keys::{
    ActorRole, Anchor, Domain, GovernanceSet, Member, MemberId, MemberList, NetworkProfile,
    NodeKey, Purpose, Role, Signature, SignedEnvelope, TrustState, canonical, verify_member_list,
};

const NOW: u64 = 1_800_000_000;
const PURPOSES: [&str; 6] = [
    "huiselijk-geweld",
    "jeugdbescherming",
    "multiprobleem",
    "schuldhulp",
    "veiligheid",
    "zorg-en-veiligheid",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let members: usize = args.next().map_or(20_000, |a| a.parse().unwrap());
    let runs: usize = args.next().map_or(9, |a| a.parse().unwrap());
    let gov: Vec<NodeKey> = (1u8..=3).map(|n| NodeKey::from_seed([n; 32])).collect();
    let set = GovernanceSet::new(gov.iter().map(NodeKey::public_key).collect(), 2).unwrap();
    let anchor = Anchor::from_governance(&set);

    let started = Instant::now();
    let v1 = list(members, 1, &set);
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.issued_at += 60;
    v2.expires_at += 60;
    // The next version changes a few members, as governance does week to week.
    for m in v2.members.iter_mut().step_by(1000) {
        m.maintenance = !m.maintenance;
    }
    let v1_bytes = sign(&v1, &gov[..2]);
    let v2_bytes = sign(&v2, &gov[1..]);
    println!(
        "{members} members, signed list {} bytes ({:.0} bytes a member), built in {:.1?}",
        v2_bytes.len(),
        v2_bytes.len() as f64 / members.max(1) as f64,
        started.elapsed()
    );
    println!(
        "machine: {} cores, {runs} runs each",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    match std::env::args().nth(3).as_deref() {
        // For counting instructions: `once` minus `build` is one verification,
        // on every thread it uses.
        Some("build") => return,
        Some("once") => {
            verify_member_list(&v2_bytes, &anchor, None, NOW).unwrap();
            return;
        }
        Some("once-held") => {
            let mut held = TrustState::new("bench", anchor.clone());
            held.accept(&v1_bytes, NOW).unwrap();
            if std::env::args().nth(4).as_deref() != Some("build") {
                held.check_next(&v2_bytes, NOW).unwrap();
            }
            return;
        }
        _ => {}
    }
    report("verify_member_list, no list held", runs, || {
        verify_member_list(&v2_bytes, &anchor, None, NOW).unwrap();
    });
    report("TrustState::accept, no list held", runs, || {
        let mut state = TrustState::new("bench", anchor.clone());
        state.accept(&v2_bytes, NOW).unwrap();
    });
    let mut held = TrustState::new("bench", anchor.clone());
    held.accept(&v1_bytes, NOW).unwrap();
    report(
        "TrustState::check_next, previous version held",
        runs,
        || {
            held.check_next(&v2_bytes, NOW).unwrap();
        },
    );
}

fn report(what: &str, runs: usize, mut f: impl FnMut()) {
    f(); // warm-up: page in the allocator and caches
    let cpu_before = cpu_time();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    let cpu = cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| format!("  cpu {:>7.2} ms", ms(after - before) / runs as f64))
        .unwrap_or_default();
    times.sort();
    println!(
        "{what:<48} min {:>8.2} ms  median {:>8.2} ms{cpu}",
        ms(times[0]),
        ms(times[times.len() / 2])
    );
}

/// CPU time of this process on all its threads (Linux: /proc/self/stat, in
/// clock ticks of 10 ms, so only a sum over many runs says much).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn list(members: usize, version: u64, set: &GovernanceSet) -> MemberList {
    MemberList {
        network: "bench".into(),
        version,
        issued_at: NOW - 60,
        expires_at: NOW + 30 * 24 * 3600,
        governance: set.clone(),
        members: (0..members).map(member).collect(),
        revoked: Vec::new(),
        profile: NetworkProfile {
            actor_roles: ["burgerportaal", "casusregisseur", "deelnemer", "melder"]
                .iter()
                .map(|r| ActorRole::parse(r).unwrap())
                .collect(),
        },
    }
}

fn member(i: usize) -> Member {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    seed[31] = 0xa5;
    let key = NodeKey::from_seed(seed);
    let count = 2 + i % 3;
    let mut purposes: Vec<Purpose> = (0..count)
        .map(|k| Purpose::parse(PURPOSES[(i + k) % PURPOSES.len()]).unwrap())
        .collect();
    purposes.sort();
    Member {
        member_id: MemberId::parse(&format!("00000001{i:012}")).unwrap(),
        name: format!("Stichting Jeugd en Gezin Regio Noord {i:05}"),
        roles: vec![Role::Afnemer, Role::Bronhouder],
        purposes,
        node_key: key.public_key(),
        p2p_addresses: vec![format!("/dns4/node{i}.partners.example.nl/tcp/4001")],
        grpc_endpoint: format!("node{i}.partners.example.nl:7443"),
        valid_from: NOW - 3600,
        valid_until: None,
        maintenance: false,
        regions: regions(i),
    }
}

/// Two or three region codes: two municipalities and sometimes a safety region.
fn regions(i: usize) -> Vec<String> {
    let mut codes = vec![
        format!("GM{:04}", i % 400),
        format!("GM{:04}", (i * 7 + 1) % 400),
    ];
    if i.is_multiple_of(2) {
        codes.push(format!("VR{:02}", i % 25 + 1));
    }
    codes.sort();
    codes.dedup();
    codes
}

fn sign(list: &MemberList, signers: &[NodeKey]) -> Vec<u8> {
    let body = canonical::to_vec(list, "member list").unwrap();
    let signatures = signers
        .iter()
        .map(|k| Signature {
            key: k.public_key(),
            sig: k.sign(Domain::MemberList, &body),
        })
        .collect();
    SignedEnvelope { body, signatures }.encode().unwrap()
}
