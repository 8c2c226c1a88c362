//! The handbereik node: one partner's daemon beside its back office.
//!
//! The rooms (DESIGN.md section 2, docs/architecture.md): [`api`] and [`p2p`]
//! at the edge; the domain modules [`notify`], [`registry`], [`inspect`],
//! [`audit`] and [`membership`]; [`store`] below them; [`config`] a leaf
//! that only [`node`] and [`cli`] read; [`node`] wires it all and
//! [`supervisor`] owns every task. Everything that decides trust lives in
//! `handbereik-keys`, which this crate calls.

#![deny(missing_docs)]

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod error;
pub mod inspect;
pub mod limits;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod p2p;
pub mod registry;
pub mod store;
pub mod supervisor;
pub mod trace;
pub mod types;
