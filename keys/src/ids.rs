//! Names that the network agrees on: member ids (OIN), purposes, member roles
//! and actor roles.
//!
//! Owns their validation, so that a malformed id or purpose is refused where it
//! enters (CLI argument, request, list) and every other module can trust them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};

use crate::error::{KeysError, Result};
use crate::text::excerpt;

/// A member id: the OIN (organisatie-identificatienummer), 20 digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MemberId(String);

impl MemberId {
    /// Checks that `text` is 20 ASCII digits and not all zeros.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason| KeysError::BadMemberId {
            value: excerpt(text),
            reason,
        };
        if text.len() != 20 {
            return Err(bad("an OIN has exactly 20 digits"));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("an OIN has digits only"));
        }
        if text.bytes().all(|b| b == b'0') {
            return Err(bad("an OIN cannot be all zeros"));
        }
        Ok(MemberId(text.to_string()))
    }

    /// The 20 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({})", self.0)
    }
}

impl std::str::FromStr for MemberId {
    type Err = KeysError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for MemberId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_str(ParseText("an OIN (text)", MemberId::parse))
    }
}

/// A purpose (doelbinding): a lowercase name that also appears in topic names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Purpose(String);

/// 1 to 64 characters `a-z`, `0-9`, `-`, starting with a letter: the
/// alphabet of purposes, network ids and actor roles (and of the node's
/// category names and classifications).
pub fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.as_bytes()[0].is_ascii_lowercase()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Purpose {
    /// Checks 1 to 64 characters `a-z`, `0-9`, `-`, starting with a letter.
    pub fn parse(text: &str) -> Result<Self> {
        if is_name(text) {
            Ok(Purpose(text.to_string()))
        } else {
            Err(KeysError::BadPurpose {
                value: excerpt(text),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The purpose of a node's local stream ([`Purpose::LOCAL`]): what a node
    /// announces to its own back office only. Governance never admits a
    /// member for it.
    pub fn local() -> Self {
        Purpose(Purpose::LOCAL.to_string())
    }

    /// The name of the reserved local purpose.
    pub const LOCAL: &'static str = "handbereik-local";

    /// Whether this is the reserved local purpose.
    pub fn is_local(&self) -> bool {
        self.0 == Purpose::LOCAL
    }

    /// Names no member is admitted for: the local purpose, and the names of
    /// the network's own gossip topics (`/handbereik/<network>/<name>/1`),
    /// which a purpose of that name would share.
    pub const RESERVED: [&'static str; 3] = [Purpose::LOCAL, "audit", "governance"];

    /// Whether governance must refuse to admit a member for this purpose.
    pub fn is_reserved(&self) -> bool {
        Purpose::RESERVED.contains(&self.0.as_str())
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Purpose({})", self.0)
    }
}

impl std::str::FromStr for Purpose {
    type Err = KeysError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_str(ParseText("a purpose name (text)", Purpose::parse))
    }
}

/// An actor role: what a professional acting through a member's node does,
/// such as `melder` or `casusregisseur`, from the vocabulary the network
/// profile of the member list publishes. Not a member [`Role`], which says
/// what an organisation does (`bronhouder`, `afnemer`). Same alphabet as
/// purposes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ActorRole(String);

impl ActorRole {
    /// Checks 1 to 64 characters `a-z`, `0-9`, `-`, starting with a letter.
    pub fn parse(text: &str) -> Result<Self> {
        if is_name(text) {
            Ok(ActorRole(text.to_string()))
        } else {
            Err(KeysError::field(
                "actor role",
                format!(
                    "{} is not valid: use 1 to 64 characters a-z, 0-9 and '-', starting with a letter",
                    excerpt(text)
                ),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ActorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ActorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorRole({})", self.0)
    }
}

impl std::str::FromStr for ActorRole {
    type Err = KeysError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for ActorRole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_str(ParseText("an actor role name (text)", ActorRole::parse))
    }
}

/// What a member does in the network.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    // Declared in the byte order of their names, so that the derived order
    // (which sorts roles in signed lists) is plain string order.
    /// Consumer: asks sources for a purpose.
    Afnemer,
    /// Source holder: holds a source registration and offers inspection of it.
    Bronhouder,
}

impl Role {
    /// The name on the wire and in the CLIs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Bronhouder => "bronhouder",
            Role::Afnemer => "afnemer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = KeysError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bronhouder" => Ok(Role::Bronhouder),
            "afnemer" => Ok(Role::Afnemer),
            other => Err(KeysError::field(
                "role",
                format!(
                    "{} is not a role; use bronhouder or afnemer",
                    excerpt(other)
                ),
            )),
        }
    }
}

/// Reads text and checks it with its parse function, without copying it into
/// a `String` first (a member list holds tens of thousands of these).
struct ParseText<T>(&'static str, fn(&str) -> Result<T>);

impl<T> de::Visitor<'_> for ParseText<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<T, E> {
        (self.1)(v).map_err(de::Error::custom)
    }
}

/// Sorts and de-duplicates a list, so that the same set always encodes alike.
pub(crate) fn normalized<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items.dedup();
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oin_must_be_twenty_digits() {
        assert!(MemberId::parse("00000001234567890000").is_ok());
        for bad in [
            "",
            "123",
            "0000000123456789000",
            "000000012345678900001",
            "0000000123456789000a",
            "00000000000000000000",
            " 0000000123456789000",
        ] {
            let err = MemberId::parse(bad).unwrap_err();
            assert!(
                matches!(err, KeysError::BadMemberId { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn purpose_names_are_restricted() {
        assert!(Purpose::parse("jeugdbescherming").is_ok());
        assert!(Purpose::parse("huiselijk-geweld-2").is_ok());
        for bad in ["", "Jeugd", "1abc", "a b", "a/b", &"a".repeat(65)] {
            assert!(Purpose::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn actor_roles_use_the_purpose_alphabet() {
        for good in ["melder", "casusregisseur", "burgerportaal", "a-1"] {
            assert_eq!(ActorRole::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "Melder",
            "1melder",
            "mel der",
            "bronhouder/x",
            &"a".repeat(65),
        ] {
            let err = ActorRole::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("actor role:"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn roles_parse() {
        assert_eq!("bronhouder".parse::<Role>().unwrap(), Role::Bronhouder);
        assert!("admin".parse::<Role>().is_err());
    }
}
