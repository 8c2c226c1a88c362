//! The handbereik node: one partner's daemon beside its back office.
//!
//! DESIGN.md section 2 gives the full set of modules. This crate holds, so far:
//!
//! - [`config`]: `handbereik.toml`, its defaults and its validation;
//! - [`cli`]: the `handbereik` subcommands (`init`).
//!
//! The daemon itself (membership, p2p, notify, store, api, ...) comes with the
//! notifications issue; everything that decides trust lives in
//! `handbereik-keys`, which this crate calls.

#![deny(missing_docs)]

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod error;
pub mod inspect;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod p2p;
pub mod registry;
pub mod store;
