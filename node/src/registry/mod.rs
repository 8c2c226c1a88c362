//! The source registration (bronregistratie): what this partner holds about
//! a subject, by category, with legal basis, classification and retention;
//! erasure; and the sweeper that removes what expired.
//!
//! Owns the rules on entries; calls `store` for every read and write (writes
//! are durable before they are answered) and nothing above it.

mod entry;
mod subject;
mod sweeper;

use std::sync::Arc;

pub use entry::{Catalogue, CategoryInfo, Entry, Kind, MAX_CONTENT, check_name};
pub use subject::{Subjects, check_bsn, parse_pseudonym, pseudonym_text};
pub use sweeper::sweep_every;

use handbereik_keys::text::excerpt;

use crate::error::{Error, Result};
use crate::store::{RegistryWrite, Store, StoreError};
pub use crate::types::Pseudonym;

/// The longest page token this node gives out: a hex key of a pseudonym and
/// a category name.
const MAX_PAGE_TOKEN: usize = 2 * (32 + 64);

/// What the back office gives for one entry.
#[derive(Clone, Debug)]
pub struct EntryInput {
    /// A category of the catalogue.
    pub category: String,
    /// The legal basis.
    pub legal_basis: String,
    /// Seconds since the Unix epoch.
    pub retain_until: u64,
    /// Media type; empty means application/json.
    pub content_type: String,
    /// The content.
    pub content: Vec<u8>,
}

/// The source registration. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    store: Store,
    catalogue: Arc<Catalogue>,
    subjects: Subjects,
}

impl Registry {
    /// Over `store`, with the node's catalogue and pseudonym key.
    pub fn new(store: Store, catalogue: Catalogue, subjects: Subjects) -> Self {
        Registry {
            store,
            catalogue: Arc::new(catalogue),
            subjects,
        }
    }

    /// The category catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Turns subjects into pseudonyms.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    fn build(&self, input: EntryInput, now: u64) -> Result<Entry> {
        let info = self.catalogue.require(&input.category)?;
        let legal_basis = input.legal_basis.trim().to_string();
        if legal_basis.is_empty() || legal_basis.len() > 200 {
            return Err(Error::InvalidRequest(
                "give the legal basis (grondslag) of the entry, such as \"Jeugdwet art. 7.1.1.1\", at most 200 characters".into(),
            ));
        }
        if input.retain_until <= now {
            return Err(Error::InvalidRequest(
                "retain_until is not in the future; give the moment, in seconds since the Unix epoch, until which the entry may be kept".into(),
            ));
        }
        handbereik_keys::time::check_bounded("retain_until", input.retain_until)
            .map_err(Error::InvalidRequest)?;
        if input.content.len() > MAX_CONTENT {
            return Err(Error::InvalidRequest(format!(
                "the content is {} bytes; at most {MAX_CONTENT} bytes fit in one entry",
                input.content.len()
            )));
        }
        let content_type = if input.content_type.is_empty() {
            "application/json".to_string()
        } else if input.content_type.len() > 100 || !input.content_type.contains('/') {
            return Err(Error::InvalidRequest(format!(
                "content_type {} is not a media type such as application/json (at most 100 characters)",
                excerpt(&input.content_type)
            )));
        } else {
            input.content_type
        };
        Ok(Entry {
            category: input.category,
            kind: info.kind,
            classification: info.classification.clone(),
            legal_basis,
            retain_until: input.retain_until,
            content_type,
            content: input.content,
            registered_at: now,
            updated_at: now,
        })
    }

    /// Adds an entry; refused if the subject has one in that category.
    pub async fn register(&self, subject: Pseudonym, input: EntryInput) -> Result<Entry> {
        let entry = self.build(input, now())?;
        self.store
            .registry_write(RegistryWrite::Insert {
                subject,
                category: entry.category.clone(),
                value: entry.encode()?,
            })
            .await
            .map_err(|e| worded(e, &entry.category))?;
        Ok(entry)
    }

    /// Replaces an entry, keeping when it was first registered.
    pub async fn update(&self, subject: Pseudonym, input: EntryInput) -> Result<Entry> {
        let mut entry = self.build(input, now())?;
        let (tx, rx) = std::sync::mpsc::channel();
        let new = entry.clone();
        self.store
            .registry_write(RegistryWrite::Replace {
                subject,
                category: entry.category.clone(),
                value: Box::new(move |old| {
                    let mut new = new;
                    new.registered_at = Entry::decode(old)?.registered_at;
                    let _ = tx.send(new.registered_at);
                    Ok(new.encode()?)
                }),
            })
            .await
            .map_err(|e| worded(e, &entry.category))?;
        if let Ok(registered_at) = rx.try_recv() {
            entry.registered_at = registered_at;
        }
        Ok(entry)
    }

    /// Removes one entry.
    pub async fn remove(&self, subject: Pseudonym, category: &str) -> Result<()> {
        self.catalogue.require(category)?;
        self.store
            .registry_write(RegistryWrite::Remove {
                subject,
                category: category.to_string(),
            })
            .await
            .map(|_| ())
            .map_err(|e| worded(e, category))
    }

    /// Removes every entry of a subject; answers how many.
    pub async fn erase(&self, subject: Pseudonym) -> Result<u32> {
        Ok(self
            .store
            .registry_write(RegistryWrite::Erase { subject })
            .await?)
    }

    /// One entry, if held and not expired.
    pub fn get(&self, subject: &Pseudonym, category: &str) -> Result<Option<Entry>> {
        self.catalogue.require(category)?;
        let now = now();
        match self.store.registry_get(subject, category)? {
            Some(bytes) => Ok(Some(Entry::decode(&bytes)?).filter(|e| e.is_current(now))),
            None => Ok(None),
        }
    }

    /// Every current entry of a subject, in category order.
    pub fn of_subject(&self, subject: &Pseudonym) -> Result<Vec<Entry>> {
        let now = now();
        let mut out = Vec::new();
        for (_, bytes) in self.store.registry_subject(subject)? {
            let entry = Entry::decode(&bytes)?;
            if entry.is_current(now) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// A page of all entries: after the page token, at most `limit`. Answers
    /// the entries and the next token (empty when done).
    pub fn page(&self, token: &str, limit: usize) -> Result<(Vec<(Pseudonym, Entry)>, String)> {
        let after = if token.is_empty() {
            None
        } else if token.len() > MAX_PAGE_TOKEN {
            return Err(Error::InvalidRequest(
                "page_token is not one this node gave out".into(),
            ));
        } else {
            Some(hex::decode(token).map_err(|_| {
                Error::InvalidRequest("page_token is not one this node gave out".into())
            })?)
        };
        let limit = limit.clamp(1, 1000);
        let rows = self.store.registry_page(after.as_deref(), limit)?;
        let next = if rows.len() == limit {
            rows.last().map(|r| hex::encode(&r.key)).unwrap_or_default()
        } else {
            String::new()
        };
        let now = now();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let entry = Entry::decode(&row.value)?;
            if entry.is_current(now) {
                out.push((row.subject, entry));
            }
        }
        Ok((out, next))
    }

    /// Removes every entry whose retention ended before `now`; answers how many.
    pub async fn sweep(&self, now: u64) -> Result<u32> {
        let mut removed = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = self.store.registry_page(after.as_deref(), 1000)?;
            let Some(last) = rows.last() else { break };
            after = Some(last.key.clone());
            for row in rows {
                let expired = Entry::decode(&row.value)
                    .map(|e| !e.is_current(now))
                    .unwrap_or(false);
                if expired {
                    removed += self
                        .store
                        .registry_write(RegistryWrite::Expire {
                            key: row.key,
                            expected: row.value,
                        })
                        .await?;
                }
            }
        }
        Ok(removed)
    }
}

/// The store's conditional refusals in the words of the registry.
fn worded(e: StoreError, category: &str) -> Error {
    match e {
        StoreError::KeyExists => Error::AlreadyExists(format!(
            "the subject already has an entry in category {}; use Update to change it",
            excerpt(category)
        )),
        StoreError::KeyMissing => Error::NotFound(format!(
            "the subject has no entry in category {}; use Register to add one",
            excerpt(category)
        )),
        other => Error::Store(other),
    }
}

fn now() -> u64 {
    handbereik_keys::time::now()
}
