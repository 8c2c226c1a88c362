//! The witness rule, alone and without I/O: does a member's offered
//! checkpoint extend the one this node holds of it?
//!
//! Calls nothing.

/// A checkpoint's place in its chain: how many entries, and the head hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The head's sequence number: the number of entries.
    pub seq: u64,
    /// The head's hash.
    pub hash: [u8; 32],
}

/// How an offered checkpoint relates to the one held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Nothing is held of this member yet: hold it (trust on first sight).
    First,
    /// More entries than held: it replaces the held one.
    Newer,
    /// The same count and the same head: nothing to do.
    Same,
    /// It does not extend the held one: an alarm.
    Conflict(Conflict),
}

/// Why an offered checkpoint does not extend the held one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// Fewer entries than held: entries were removed (or the log restarted).
    Fewer,
    /// The same count with another head: the log was rewritten.
    OtherHead,
}

impl Conflict {
    /// In words, for the log line, the alarm and Status.
    pub fn describe(self, member: &str, held: Head, offered: Head) -> String {
        match self {
            Conflict::Fewer => format!(
                "member {member} signed a checkpoint of {} entries, but this node holds its checkpoint of {} entries: entries were removed from its audit log, or it started a new one",
                offered.seq, held.seq
            ),
            Conflict::OtherHead => format!(
                "member {member} signed two different heads for entry {}: its audit log was rewritten",
                held.seq
            ),
        }
    }
}

/// Judges `offered` against `held` (none: nothing held yet).
pub fn judge(held: Option<Head>, offered: Head) -> Judgement {
    let Some(held) = held else {
        return Judgement::First;
    };
    match offered.seq.cmp(&held.seq) {
        std::cmp::Ordering::Greater => Judgement::Newer,
        std::cmp::Ordering::Less => Judgement::Conflict(Conflict::Fewer),
        std::cmp::Ordering::Equal if offered.hash == held.hash => Judgement::Same,
        std::cmp::Ordering::Equal => Judgement::Conflict(Conflict::OtherHead),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(seq: u64, h: u8) -> Head {
        Head { seq, hash: [h; 32] }
    }

    #[test]
    fn a_checkpoint_extends_the_held_one_only_with_more_entries_or_the_same_head() {
        assert_eq!(judge(None, head(5, 1)), Judgement::First);
        assert_eq!(judge(Some(head(5, 1)), head(6, 2)), Judgement::Newer);
        // A higher count is accepted whatever its hash: a witness holds
        // heads only and cannot see the entries between them.
        assert_eq!(judge(Some(head(5, 1)), head(6, 1)), Judgement::Newer);
        assert_eq!(judge(Some(head(5, 1)), head(5, 1)), Judgement::Same);
        assert_eq!(
            judge(Some(head(5, 1)), head(5, 2)),
            Judgement::Conflict(Conflict::OtherHead)
        );
        assert_eq!(
            judge(Some(head(5, 1)), head(4, 1)),
            Judgement::Conflict(Conflict::Fewer)
        );
        assert_eq!(
            judge(Some(head(u64::MAX, 1)), head(1, 1)),
            Judgement::Conflict(Conflict::Fewer)
        );
        assert_eq!(
            judge(Some(head(u64::MAX - 1, 1)), head(u64::MAX, 9)),
            Judgement::Newer
        );
    }

    #[test]
    fn a_conflict_names_the_member_and_both_counts() {
        let text = Conflict::Fewer.describe("00000001001234567000", head(9, 1), head(4, 2));
        assert!(text.contains("00000001001234567000"), "{text}");
        assert!(
            text.contains("4 entries") && text.contains("9 entries"),
            "{text}"
        );
        let text = Conflict::OtherHead.describe("00000001001234567000", head(9, 1), head(9, 2));
        assert!(
            text.contains("entry 9") && text.contains("rewritten"),
            "{text}"
        );
    }
}
