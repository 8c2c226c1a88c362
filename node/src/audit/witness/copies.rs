//! The member's side of witnessing: judging the countersigned copies of its
//! own checkpoints that witnesses hand back, against its own chain.
//!
//! A copy agrees when the witness's countersignature verifies by that
//! witness's current key, the checkpoint inside it verifies by a key that is
//! or was this node's ([`KeyHistory`]), and the local chain has exactly that
//! hash at that sequence. A copy signed by this node that the chain does not
//! have, or one signed by a key this node never ran with, is a disagreement,
//! which fails verification. CPU work (signature checks): call it off the
//! async workers. Calls `handbereik-keys` only.

use handbereik_keys::{Domain, MemberId, PublicKey, SingleSigned, canonical};

use super::HeldCopy;
use super::format::{self, Countersignature, MAX_COUNTERSIGNATURE_BYTES};
use crate::audit::{Checkpoint, KeyHistory};

/// How one witness's copy compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyOutcome {
    /// It holds what the local chain has.
    Agrees,
    /// It holds a checkpoint signed by this node that the chain does not
    /// have (or one by a key that was never this node's).
    Disagrees,
    /// No answer, or an answer that does not verify.
    Unreachable,
    /// It holds no checkpoint of this node.
    None,
}

impl CopyOutcome {
    /// `agrees`, `disagrees`, `unreachable` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyOutcome::Agrees => "agrees",
            CopyOutcome::Disagrees => "disagrees",
            CopyOutcome::Unreachable => "unreachable",
            CopyOutcome::None => "none",
        }
    }
}

/// One witness asked, and what it answered.
#[derive(Clone, Debug)]
pub struct Asked {
    /// The witness.
    pub witness: MemberId,
    /// Its current key in the list held.
    pub key: PublicKey,
    /// Its copy (`None`: it holds none), or why there is no answer.
    pub answer: Result<Option<HeldCopy>, String>,
}

/// One witness's copy, judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessCopy {
    /// The witness.
    pub witness: MemberId,
    /// How it compared.
    pub outcome: CopyOutcome,
    /// The sequence number of the checkpoint it holds (0 if none).
    pub seq: u64,
    /// Its head hash (zeroes if none).
    pub hash: [u8; 32],
    /// Why, for disagrees and unreachable.
    pub reason: String,
}

/// Every witness asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WitnessReport {
    /// One per witness asked.
    pub copies: Vec<WitnessCopy>,
}

impl WitnessReport {
    /// How many had `outcome`.
    pub fn count(&self, outcome: CopyOutcome) -> u32 {
        let n = self.copies.iter().filter(|c| c.outcome == outcome).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The first disagreement: (sequence, what it says).
    pub fn problem(&self) -> Option<(u64, String)> {
        self.copies
            .iter()
            .find(|c| c.outcome == CopyOutcome::Disagrees)
            .map(|c| (c.seq, c.reason.clone()))
    }
}

/// The local chain, as verification found it.
pub trait Chain {
    /// Entries in the chain.
    fn entries(&self) -> u64;
    /// The hash of entry `seq`, if the chain has it.
    fn hash_at(&self, seq: u64) -> Option<[u8; 32]>;
}

/// Judges every answer of `asked` for `own`.
pub fn judge_copies(
    own: &MemberId,
    history: &KeyHistory,
    chain: &dyn Chain,
    asked: Vec<Asked>,
) -> WitnessReport {
    WitnessReport {
        copies: asked
            .into_iter()
            .map(|a| judge_one(own, history, chain, a))
            .collect(),
    }
}

fn judge_one(own: &MemberId, history: &KeyHistory, chain: &dyn Chain, asked: Asked) -> WitnessCopy {
    let mut copy = WitnessCopy {
        witness: asked.witness.clone(),
        outcome: CopyOutcome::Unreachable,
        seq: 0,
        hash: [0; 32],
        reason: String::new(),
    };
    let held = match asked.answer {
        Err(reason) => {
            copy.reason = reason;
            return copy;
        }
        Ok(None) => {
            copy.outcome = CopyOutcome::None;
            return copy;
        }
        Ok(Some(held)) => held,
    };
    let checkpoint = match countersigned(own, &asked.witness, &asked.key, &held) {
        Ok(c) => c,
        Err(reason) => {
            copy.reason = format!("its answer does not verify: {reason}");
            return copy;
        }
    };
    copy.seq = checkpoint.seq;
    copy.hash = checkpoint.hash;
    let w = &asked.witness;
    match signed_by_us(own, history, &held.checkpoint) {
        Err(reason) => {
            copy.reason = format!("its answer does not verify: {reason}");
            return copy;
        }
        Ok(Err(foreign)) => {
            copy.outcome = CopyOutcome::Disagrees;
            copy.reason = format!(
                "witness {w} holds a checkpoint of this member's entry {} signed by key {foreign}, which this node never ran with",
                checkpoint.seq
            );
            return copy;
        }
        Ok(Ok(_)) => {}
    }
    if let Some(reason) = mismatch(w, chain, checkpoint.seq, checkpoint.hash) {
        copy.outcome = CopyOutcome::Disagrees;
        copy.reason = reason;
        return copy;
    }
    // The conflicting checkpoints the witness keeps: one signed by this
    // node that the chain does not have is a disagreement too.
    for bytes in &held.conflicting {
        let Ok(Ok(other)) = signed_by_us(own, history, bytes) else {
            continue;
        };
        if let Some(reason) = mismatch(w, chain, other.seq, other.hash) {
            copy.outcome = CopyOutcome::Disagrees;
            copy.seq = other.seq;
            copy.hash = other.hash;
            copy.reason = format!("witness {w} raised an audit alarm about this node: {reason}");
            return copy;
        }
    }
    copy.outcome = CopyOutcome::Agrees;
    copy
}

/// Whether the chain lacks `hash` at `seq`, in words.
fn mismatch(witness: &MemberId, chain: &dyn Chain, seq: u64, hash: [u8; 32]) -> Option<String> {
    if seq > chain.entries() {
        return Some(format!(
            "witness {witness} holds this node's signed checkpoint of entry {seq}, but the local chain ends at entry {}: entries were removed",
            chain.entries()
        ));
    }
    match chain.hash_at(seq) {
        Some(local) if local == hash => None,
        Some(local) => Some(format!(
            "witness {witness} holds this node's signed checkpoint of entry {seq} with head {}, but the local chain has {} there: the log was rewritten up to entry {seq}",
            hex::encode(hash),
            hex::encode(local)
        )),
        None => Some(format!(
            "witness {witness} holds this node's signed checkpoint of entry {seq}, which the local chain does not have"
        )),
    }
}

/// The countersignature: by the witness's current key, over exactly these
/// checkpoint bytes, naming the witness and this member; answers the
/// checkpoint's body, whose head must be the countersigned one.
fn countersigned(
    own: &MemberId,
    witness: &MemberId,
    key: &PublicKey,
    held: &HeldCopy,
) -> Result<Checkpoint, String> {
    let envelope = SingleSigned::decode(
        &held.countersignature,
        "audit countersignature",
        MAX_COUNTERSIGNATURE_BYTES,
    )
    .map_err(|e| e.to_string())?;
    if &envelope.key != key.as_bytes() {
        return Err(format!(
            "the countersignature is by key {}, not by the witness's key in the list held",
            hex::encode(envelope.key)
        ));
    }
    let verifying = key.verifying_key().map_err(|e| e.to_string())?;
    envelope
        .verify(Domain::AuditWitness, &verifying)
        .map_err(|e| e.to_string())?;
    let body: Countersignature = canonical::from_slice(&envelope.body, "audit countersignature")
        .map_err(|e| e.to_string())?;
    if body.witness != witness.as_str() || body.member != own.as_str() {
        return Err("the countersignature names another witness or member".into());
    }
    if body.checkpoint != format::digest(&held.checkpoint) {
        return Err("the countersignature covers other checkpoint bytes".into());
    }
    let (checkpoint, _) = format::read_stored(&held.checkpoint).map_err(|e| e.to_string())?;
    if checkpoint.member != own.as_str()
        || checkpoint.seq != body.seq
        || checkpoint.hash != body.hash
    {
        return Err("the checkpoint is not the one countersigned".into());
    }
    Ok(checkpoint)
}

/// Whether `bytes` is a checkpoint of `own` whose signature verifies by a
/// key of `history` (`Ok(Ok)`), verifies by a key never this node's
/// (`Ok(Err(key))`), or does not verify at all (`Err`).
fn signed_by_us(
    own: &MemberId,
    history: &KeyHistory,
    bytes: &[u8],
) -> Result<Result<Checkpoint, PublicKey>, String> {
    let envelope = format::peek(bytes).map_err(|e| e.to_string())?;
    let key = PublicKey::from_bytes(&envelope.key).map_err(|e| e.to_string())?;
    let verifying = key.verifying_key().map_err(|e| e.to_string())?;
    envelope
        .verify(Domain::AuditCheckpoint, &verifying)
        .map_err(|e| e.to_string())?;
    let body: Checkpoint =
        canonical::from_slice(&envelope.body, "audit checkpoint").map_err(|e| e.to_string())?;
    if body.member != own.as_str() {
        return Err("a checkpoint of another member".into());
    }
    Ok(if history.contains(&key) {
        Ok(body)
    } else {
        Err(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::witness::format::tests::{member_id, signed};
    use crate::audit::witness::rule::Head;
    use handbereik_keys::NodeKey;

    struct Fixed(Vec<[u8; 32]>);

    impl Chain for Fixed {
        fn entries(&self) -> u64 {
            self.0.len() as u64
        }
        fn hash_at(&self, seq: u64) -> Option<[u8; 32]> {
            self.0
                .get(usize::try_from(seq).ok()?.checked_sub(1)?)
                .copied()
        }
    }

    fn copy(witness: &NodeKey, n: u32, checkpoint: Vec<u8>, seq: u64, hash: u8) -> HeldCopy {
        let countersignature = format::countersign(
            witness,
            &member_id(n),
            &member_id(1),
            Head {
                seq,
                hash: [hash; 32],
            },
            &checkpoint,
            5,
        )
        .unwrap();
        HeldCopy {
            checkpoint,
            countersignature,
            conflicting: Vec::new(),
        }
    }

    #[test]
    fn copies_agree_only_with_the_chain_and_a_key_of_this_node() {
        let old = NodeKey::from_seed([1; 32]);
        let new = NodeKey::from_seed([11; 32]);
        let stranger = NodeKey::from_seed([3; 32]);
        let w = NodeKey::from_seed([2; 32]);
        let own = member_id(1);
        let history = KeyHistory::of([old.public_key(), new.public_key()]);
        let chain = Fixed(vec![[7; 32], [8; 32], [9; 32]]);
        let ask = |held: HeldCopy| Asked {
            witness: member_id(2),
            key: w.public_key(),
            answer: Ok(Some(held)),
        };
        let judged = |held: HeldCopy| judge_copies(&own, &history, &chain, vec![ask(held)]);

        // Signed by the old key and by the new one: both agree.
        for key in [&old, &new] {
            let r = judged(copy(&w, 2, signed(key, &own, 2, 8), 2, 8));
            assert_eq!(r.copies[0].outcome, CopyOutcome::Agrees, "{r:?}");
            assert_eq!(r.copies[0].seq, 2);
        }
        // A head the chain does not have at that entry.
        let r = judged(copy(&w, 2, signed(&new, &own, 3, 1), 3, 1));
        assert_eq!(r.copies[0].outcome, CopyOutcome::Disagrees);
        assert!(r.problem().unwrap().1.contains("rewritten"), "{r:?}");
        assert_eq!(r.problem().unwrap().0, 3);
        // Beyond the end of the chain.
        let r = judged(copy(&w, 2, signed(&new, &own, 5, 1), 5, 1));
        assert!(r.problem().unwrap().1.contains("removed"), "{r:?}");
        // Signed by a key this node never had.
        let r = judged(copy(&w, 2, signed(&stranger, &own, 2, 8), 2, 8));
        assert_eq!(r.copies[0].outcome, CopyOutcome::Disagrees);
        assert!(
            r.problem()
                .unwrap()
                .1
                .contains(&stranger.public_key().to_hex()),
            "{r:?}"
        );
        // A countersignature by another key than the witness's: not trusted.
        let r = judged(copy(&stranger, 2, signed(&new, &own, 2, 8), 2, 8));
        assert_eq!(r.copies[0].outcome, CopyOutcome::Unreachable, "{r:?}");
        // A countersignature over other bytes than the checkpoint handed back.
        let mut swapped = copy(&w, 2, signed(&new, &own, 2, 8), 2, 8);
        swapped.checkpoint = signed(&new, &own, 3, 9);
        let r = judged(swapped);
        assert_eq!(r.copies[0].outcome, CopyOutcome::Unreachable, "{r:?}");
        // A conflicting checkpoint this node signed that the chain lacks.
        let mut alarmed = copy(&w, 2, signed(&new, &own, 3, 9), 3, 9);
        alarmed.conflicting.push(signed(&new, &own, 3, 4));
        let r = judged(alarmed);
        assert_eq!(r.copies[0].outcome, CopyOutcome::Disagrees, "{r:?}");
        assert!(r.copies[0].reason.contains("alarm"), "{r:?}");
        // No copy, no answer.
        let r = judge_copies(
            &own,
            &history,
            &chain,
            vec![
                Asked {
                    witness: member_id(2),
                    key: w.public_key(),
                    answer: Ok(None),
                },
                Asked {
                    witness: member_id(3),
                    key: w.public_key(),
                    answer: Err("no answer within 5000 ms".into()),
                },
            ],
        );
        assert_eq!(r.count(CopyOutcome::None), 1);
        assert_eq!(r.count(CopyOutcome::Unreachable), 1);
        assert_eq!(r.problem(), None);
    }
}
