//! A registry entry as stored, its kind, and the category catalogue that
//! gives every category its kind and classification.
//!
//! Calls nothing else in the node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use handbereik_keys::text::excerpt;

use crate::error::{Error, Result};

/// Largest content of one entry.
pub const MAX_CONTENT: usize = 64 * 1024;

/// Whether a category is that-information or substance.
pub use crate::types::CategoryKind as Kind;

/// A category's fixed attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoryInfo {
    /// dat or wat.
    pub kind: Kind,
    /// As configured.
    pub classification: String,
}

/// Names of categories and classifications: `[a-z][a-z0-9-]{0,63}`, the
/// alphabet of purposes.
pub fn check_name(text: &str, what: &str) -> std::result::Result<(), String> {
    if handbereik_keys::is_name(text) {
        Ok(())
    } else {
        Err(format!(
            "{what} {} must be 1 to 64 characters: lowercase letters, digits and '-', starting with a letter",
            excerpt(text)
        ))
    }
}

/// The categories this source holds.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    categories: BTreeMap<String, CategoryInfo>,
}

impl Catalogue {
    /// The catalogue of `categories`: (name, kind, classification), as the
    /// configuration validated them.
    pub fn new(categories: impl IntoIterator<Item = (String, Kind, String)>) -> Self {
        Catalogue {
            categories: categories
                .into_iter()
                .map(|(name, kind, classification)| {
                    (
                        name,
                        CategoryInfo {
                            kind,
                            classification,
                        },
                    )
                })
                .collect(),
        }
    }

    /// A category's attributes.
    pub fn get(&self, name: &str) -> Option<&CategoryInfo> {
        self.categories.get(name)
    }

    /// A category's attributes, or a message that says how to add it.
    pub fn require(&self, name: &str) -> Result<&CategoryInfo> {
        self.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.categories.keys().map(String::as_str).collect();
            Error::InvalidRequest(format!(
                "category {} is not in this node's catalogue ({}); add it under [registry.categories] in handbereik.toml",
                excerpt(name),
                if known.is_empty() { "which is empty".to_string() } else { format!("known: {}", known.join(", ")) }
            ))
        })
    }

    /// Every category of a kind, in name order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = (&str, &CategoryInfo)> {
        self.categories
            .iter()
            .filter(move |(_, info)| info.kind == kind)
            .map(|(name, info)| (name.as_str(), info))
    }
}

/// An entry as stored in the registry tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The category.
    pub category: String,
    /// dat or wat, from the catalogue when registered.
    pub kind: Kind,
    /// From the catalogue when registered.
    pub classification: String,
    /// The legal basis (grondslag).
    pub legal_basis: String,
    /// Seconds since the Unix epoch after which the entry is removed.
    pub retain_until: u64,
    /// Media type of `content`.
    pub content_type: String,
    /// The content.
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
    /// When first registered (seconds).
    pub registered_at: u64,
    /// When last changed (seconds).
    pub updated_at: u64,
}

impl Entry {
    /// Encodes for the store.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(128 + self.content.len());
        ciborium::into_writer(self, &mut out)
            .map_err(|_| Error::Internal("a registry entry cannot be encoded"))?;
        Ok(out)
    }

    /// Decodes what the store holds.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        ciborium::from_reader(bytes).map_err(|_| {
            Error::Store(crate::store::StoreError::Damaged {
                what: "registry entry",
            })
        })
    }

    /// Whether it may still be kept and disclosed at `now`.
    pub fn is_current(&self, now: u64) -> bool {
        self.retain_until >= now
    }
}
