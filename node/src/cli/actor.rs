//! The acting professional on the command line: `--user`, `--role` and
//! `--on-behalf-of`, for every client command that reaches another member
//! (locate, inspect, audit report --network). Calls nothing.

use clap::Args;
use handbereik_proto::v1 as pb;

/// Who acts, in what role, for whom.
#[derive(Args, Debug, Clone, Default)]
pub struct ActorArgs {
    /// The acting professional: the back office's pseudonymous user id
    /// (never a name or a BSN). Required when the member list names actor roles.
    #[arg(long, env = "HANDBEREIK_USER", value_name = "ID")]
    pub user: Option<String>,
    /// Their role, from the network's role vocabulary (`handbereik members`
    /// shows it as the list's actor roles), such as casusregisseur.
    #[arg(long, env = "HANDBEREIK_ROLE", value_name = "ROLE")]
    pub role: Option<String>,
    /// The user on whose behalf they act, if any.
    #[arg(long, value_name = "ID")]
    pub on_behalf_of: Option<String>,
}

impl ActorArgs {
    /// The protobuf form; none when nothing was given.
    pub fn to_proto(&self) -> Option<pb::Actor> {
        if self.user.is_none() && self.role.is_none() && self.on_behalf_of.is_none() {
            return None;
        }
        Some(pb::Actor {
            user: self.user.clone().unwrap_or_default(),
            role: self.role.clone().unwrap_or_default(),
            on_behalf_of: self.on_behalf_of.clone().unwrap_or_default(),
        })
    }
}
