//! The subcommands of `handbereik-keys`: argument types and what each does.
//!
//! Calls the `handbereik_keys` library only; every rule lives there, so that
//! the node applies exactly the checks governance applies here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use handbereik_keys::{
    ActorRole, Admission, Anchor, DRAFT_FORMAT, Draft, GovernanceSet, KeysError, LIST_LIMIT,
    MemberId, MemberList, NodeKey, Purpose, REQUEST_LIMIT, SignOutcome, SignedEnvelope, canonical,
    files::{self, Overwrite, Visibility},
    parse_public_key_arg,
    text::excerpt,
    time, verify_member_list, verify_signatures, write_public_key,
};

use crate::show;

/// Governance tool of a handbereik network: make governance keys, admit
/// partners, sign and publish the member list, verify a list.
///
/// Example: a typical round, with 2 of 3 governance holders:
///
///   handbereik-keys init --out gov-a.key          (each holder, on their own machine)
///   handbereik-keys new --draft draft.cbor --network demo \
///       --governance gov-a.key.pub,gov-b.key.pub,gov-c.key.pub --threshold 2
///   handbereik-keys admit partner/membership-request.cbor --draft draft.cbor
///   handbereik-keys sign --draft draft.cbor --key gov-a.key   (then holder B)
///   handbereik-keys publish --draft draft.cbor --out member-list.cbor
///   handbereik-keys verify member-list.cbor --anchor gov-a.key.pub,gov-b.key.pub,gov-c.key.pub --threshold 2
#[derive(Parser, Debug)]
#[command(name = "handbereik-keys", version, verbatim_doc_comment)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a governance key: a private key file (mode 0600) and FILE.pub.
    ///
    /// Example: handbereik-keys init --out gov-a.key
    Init {
        /// Where to write the private key; FILE.pub gets the public key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },

    /// Start a draft: the first list of a network, or the next version of a published list.
    ///
    /// Examples:
    ///   handbereik-keys new --draft draft.cbor --network demo --governance a.pub,b.pub,c.pub --threshold 2 \
    ///       --actor-roles melder,deelnemer,procesregisseur,casusregisseur,burgerportaal
    ///   handbereik-keys new --draft draft.cbor --from member-list.cbor
    #[command(verbatim_doc_comment)]
    New {
        /// The draft file to create.
        #[arg(long, value_name = "FILE")]
        draft: PathBuf,
        /// Network id of a new network (a-z, 0-9, '-').
        #[arg(long, conflicts_with = "from", required_unless_present = "from")]
        network: Option<String>,
        /// Governance keys of a new network: hex, or files holding hex, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            requires = "threshold",
            conflicts_with = "from"
        )]
        governance: Vec<String>,
        /// How many of the governance keys must sign (k of n).
        #[arg(long, value_name = "K")]
        threshold: Option<u32>,
        /// A published list to continue: the draft gets its members and the next version.
        #[arg(long, value_name = "LIST")]
        from: Option<PathBuf>,
        /// Rotate: the governance keys that must sign the list after this one.
        #[arg(long, value_delimiter = ',', requires = "next_threshold")]
        next_governance: Vec<String>,
        /// Threshold of the next governance set.
        #[arg(long, value_name = "K", requires = "next_governance")]
        next_threshold: Option<u32>,
        /// How long the list is valid once dated, such as 30days or 12h.
        #[arg(long, value_name = "DURATION", default_value = "30days", value_parser = humantime::parse_duration)]
        valid_for: Duration,
        /// The network's actor roles, the roles a professional acting through
        /// a node may name (a-z, 0-9, '-'), comma-separated. With --from the
        /// published list's are kept unless this is given.
        #[arg(long, value_delimiter = ',', value_name = "ROLES")]
        actor_roles: Option<Vec<ActorRole>>,
    },

    /// Admit a partner from its membership request (checks its proof of possession).
    ///
    /// Example: handbereik-keys admit membership-request.cbor --draft draft.cbor --purposes jeugdbescherming --regions GM0344,GM0363
    Admit {
        /// The request that `handbereik init` wrote.
        request: PathBuf,
        /// The draft to add the member to.
        #[arg(long, value_name = "FILE")]
        draft: PathBuf,
        /// Admit only these of the requested purposes (default: all requested).
        #[arg(long, value_delimiter = ',')]
        purposes: Option<Vec<Purpose>>,
        /// End of the membership, RFC 3339 (default: none).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        valid_until: Option<u64>,
        /// Regions the partner serves: region codes (two capital letters and
        /// 2 to 4 digits, such as GM0363 or VR13), comma-separated (default: none).
        #[arg(long, value_delimiter = ',', value_name = "CODES")]
        regions: Vec<String>,
    },

    /// Set, add, remove or clear the network's actor roles (its network profile).
    ///
    /// Actor roles name what a professional acting through a node does
    /// (melder, casusregisseur, ...); they are not the member roles
    /// bronhouder and afnemer.
    ///
    /// Examples:
    ///   handbereik-keys actor-roles --draft draft.cbor --set melder,deelnemer,casusregisseur
    ///   handbereik-keys actor-roles --draft draft.cbor --add burgerportaal
    ///   handbereik-keys actor-roles --draft draft.cbor --remove deelnemer
    #[command(verbatim_doc_comment)]
    #[command(group(clap::ArgGroup::new("change").required(true).args(["set", "add", "remove", "clear"])))]
    ActorRoles {
        /// The draft to change.
        #[arg(long, value_name = "FILE")]
        draft: PathBuf,
        /// Replace the actor roles with these, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "ROLES")]
        set: Vec<ActorRole>,
        /// Add these actor roles.
        #[arg(long, value_delimiter = ',', value_name = "ROLES")]
        add: Vec<ActorRole>,
        /// Remove these actor roles.
        #[arg(long, value_delimiter = ',', value_name = "ROLES")]
        remove: Vec<ActorRole>,
        /// Remove all actor roles.
        #[arg(long)]
        clear: bool,
    },

    /// Set, add, remove or clear the regions an admitted member serves.
    ///
    /// Examples:
    ///   handbereik-keys regions 00000001234567890000 --draft draft.cbor --set GM0344,GM0363
    ///   handbereik-keys regions 00000001234567890000 --draft draft.cbor --add VR13
    ///   handbereik-keys regions 00000001234567890000 --draft draft.cbor --clear
    #[command(verbatim_doc_comment)]
    #[command(group(clap::ArgGroup::new("change").required(true).args(["set", "add", "remove", "clear"])))]
    Regions {
        /// The member id (OIN).
        member: MemberId,
        /// The draft to change.
        #[arg(long, value_name = "FILE")]
        draft: PathBuf,
        /// Replace the member's regions with these codes, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "CODES")]
        set: Vec<String>,
        /// Add these codes to the member's regions.
        #[arg(long, value_delimiter = ',', value_name = "CODES")]
        add: Vec<String>,
        /// Remove these codes from the member's regions.
        #[arg(long, value_delimiter = ',', value_name = "CODES")]
        remove: Vec<String>,
        /// Remove all of the member's regions.
        #[arg(long)]
        clear: bool,
    },

    /// Remove a member and revoke its key for good.
    ///
    /// Example: handbereik-keys revoke 00000001234567890000 --draft draft.cbor --reason "key lost"
    Revoke {
        /// The member id (OIN).
        member: MemberId,
        /// The draft to change.
        #[arg(long, value_name = "FILE")]
        draft: PathBuf,
        /// Why, for the record in the list.
        #[arg(long, default_value = "revoked by governance")]
        reason: String,
    },

    /// Put a member in maintenance (listed, but not asked) or take it out.
    ///
    /// Example: handbereik-keys maintenance 00000001234567890000 --draft draft.cbor --off
    Maintenance {
        /// The member id (OIN).
        member: MemberId,
        /// The draft to change.
        #[arg(long, value_name = "FILE")]
        draft: PathBuf,
        /// Take the member out of maintenance instead.
        #[arg(long)]
        off: bool,
    },

    /// Add your governance signature to a draft; pass the file to the next holder.
    ///
    /// Example: handbereik-keys sign --draft draft.cbor --key gov-a.key
    Sign {
        /// The draft to sign.
        #[arg(long, value_name = "FILE")]
        draft: PathBuf,
        /// Your governance private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },

    /// Check a draft's signatures, version and validity, and write the signed list.
    ///
    /// Example: handbereik-keys publish --draft draft.cbor --out member-list.cbor
    Publish {
        /// The signed draft.
        #[arg(long, value_name = "FILE")]
        draft: PathBuf,
        /// Where to write the signed member list.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },

    /// Show a draft, a signed member list or a membership request.
    ///
    /// Example: handbereik-keys show member-list.cbor --json
    Show {
        /// The file to show.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Verify a signed member list against governance keys (exit 0 when valid).
    ///
    /// Example: handbereik-keys verify member-list.cbor --anchor a.pub,b.pub,c.pub --threshold 2
    Verify {
        /// The signed member list.
        list: PathBuf,
        /// Trusted governance keys: hex, or files holding hex, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        anchor: Vec<String>,
        /// How many distinct anchor keys must have signed.
        #[arg(long, value_name = "K")]
        threshold: usize,
        /// The network the list must be for.
        #[arg(long)]
        network: Option<String>,
        /// The list held before this one: LIST must be newer and signed by the
        /// governance set that PREVIOUS names (which the anchor must have signed).
        #[arg(long, value_name = "PREVIOUS")]
        previous: Option<PathBuf>,
    },
}

/// Runs one subcommand.
pub fn run(cli: Cli) -> Result<()> {
    let now = time::now();
    match cli.command {
        Command::Init { out } => init(&out),
        Command::New {
            draft,
            network,
            governance,
            threshold,
            from,
            next_governance,
            next_threshold,
            valid_for,
            actor_roles,
        } => {
            let validity = valid_for.as_secs();
            let mut new = match (from, network) {
                (Some(from), _) => {
                    let bytes = files::read_file(&from, "member list", LIST_LIMIT)?;
                    let envelope = SignedEnvelope::decode(&bytes, "member list", LIST_LIMIT)
                        .with_context(|| format!("reading {}", from.display()))?;
                    let list: MemberList = canonical::from_slice(&envelope.body, "member list")?;
                    Draft::continue_from(&list, validity, now)?
                }
                (None, Some(network)) => {
                    let set = governance_set(&governance, threshold)?;
                    Draft::first(&network, set, validity, now)?
                }
                (None, None) => {
                    bail!("give --network for a new network, or --from LIST to continue one")
                }
            };
            if !next_governance.is_empty() {
                new.set_next_governance(governance_set(&next_governance, next_threshold)?, now)?;
            }
            if let Some(roles) = actor_roles {
                new.set_actor_roles(roles, now)?;
            }
            write_draft(&draft, &new, Overwrite::Refuse)?;
            println!(
                "draft {}: network {} version {}, to be signed by {} of {} governance keys",
                draft.display(),
                new.list.network,
                new.list.version,
                new.signers.threshold,
                new.signers.keys.len()
            );
            print_actor_roles(&new.list);
            Ok(())
        }
        Command::Admit {
            request,
            draft: path,
            purposes,
            valid_until,
            regions,
        } => {
            let mut draft = read_draft(&path)?;
            let bytes = files::read_file(&request, "membership request", REQUEST_LIMIT)?;
            let terms = Admission {
                purposes,
                valid_until,
                regions,
            };
            let (member, dropped) = draft
                .admit_with(&bytes, terms, now)
                .with_context(|| format!("admitting {}", request.display()))?;
            write_draft(&path, &draft, Overwrite::Replace)?;
            println!(
                "admitted {} ({}) with roles {} for purposes {}{}",
                member.member_id,
                member.name,
                join(&member.roles),
                join(&member.purposes),
                regions_note(&member.regions)
            );
            report_dropped(dropped);
            Ok(())
        }
        Command::ActorRoles {
            draft: path,
            set,
            add,
            remove,
            clear,
        } => {
            let mut draft = read_draft(&path)?;
            let current = draft.list.profile.actor_roles.clone();
            let roles = if clear {
                Vec::new()
            } else if !set.is_empty() {
                set
            } else if !add.is_empty() {
                current.into_iter().chain(add).collect()
            } else {
                if let Some(r) = remove.iter().find(|r| !current.contains(r)) {
                    bail!(
                        "{r} is not among the network's actor roles; `handbereik-keys show {}` lists them",
                        path.display()
                    );
                }
                current
                    .into_iter()
                    .filter(|r| !remove.contains(r))
                    .collect()
            };
            let dropped = draft.set_actor_roles(roles, now)?;
            write_draft(&path, &draft, Overwrite::Replace)?;
            print_actor_roles(&draft.list);
            report_dropped(dropped);
            Ok(())
        }
        Command::Regions {
            member,
            draft: path,
            set,
            add,
            remove,
            clear,
        } => {
            let mut draft = read_draft(&path)?;
            let current = draft
                .list
                .member(&member)
                .ok_or_else(|| KeysError::UnknownMember(member.to_string()))?
                .regions
                .clone();
            let regions = if clear {
                Vec::new()
            } else if !set.is_empty() {
                set
            } else if !add.is_empty() {
                current.into_iter().chain(add).collect()
            } else {
                if let Some(r) = remove.iter().find(|r| !current.contains(r)) {
                    bail!(
                        "{} is not among the regions of {member}; `handbereik-keys show {}` lists them",
                        excerpt(r),
                        path.display()
                    );
                }
                current
                    .into_iter()
                    .filter(|r| !remove.contains(r))
                    .collect()
            };
            let dropped = draft.set_regions(&member, regions, now)?;
            write_draft(&path, &draft, Overwrite::Replace)?;
            let regions = draft
                .list
                .member(&member)
                .map(|m| m.regions.as_slice())
                .unwrap_or_default();
            if regions.is_empty() {
                println!("{member} names no regions");
            } else {
                println!("{member} serves regions {}", regions.join(","));
            }
            report_dropped(dropped);
            Ok(())
        }
        Command::Revoke {
            member,
            draft: path,
            reason,
        } => {
            let mut draft = read_draft(&path)?;
            let (revocation, dropped) = draft.revoke(&member, &reason, now)?;
            write_draft(&path, &draft, Overwrite::Replace)?;
            println!("revoked {} (key {})", revocation.member_id, revocation.key);
            report_dropped(dropped);
            Ok(())
        }
        Command::Maintenance {
            member,
            draft: path,
            off,
        } => {
            let mut draft = read_draft(&path)?;
            let dropped = draft.set_maintenance(&member, !off, now)?;
            write_draft(&path, &draft, Overwrite::Replace)?;
            println!(
                "{member} is {} maintenance",
                if off { "out of" } else { "in" }
            );
            report_dropped(dropped);
            Ok(())
        }
        Command::Sign { draft: path, key } => {
            let mut draft = read_draft(&path)?;
            let key = NodeKey::load(&key)?;
            let outcome = draft.sign(&key)?;
            if outcome == SignOutcome::Added {
                write_draft(&path, &draft, Overwrite::Replace)?;
            }
            let have = draft.valid_signers()?.len();
            let need = draft.signers.threshold as usize;
            let verb = match outcome {
                SignOutcome::Added => "signed",
                SignOutcome::AlreadySigned => "already signed by this key",
            };
            println!(
                "{verb}: version {} now has {have} of {need} required signatures{}",
                draft.list.version,
                if have >= need {
                    "; ready to publish"
                } else {
                    ""
                }
            );
            Ok(())
        }
        Command::Publish { draft, out } => {
            let draft = read_draft(&draft)?;
            let verified = draft.publish(now)?;
            files::write_file(
                &out,
                &verified.signed_bytes,
                Visibility::Public,
                Overwrite::Replace,
            )?;
            println!(
                "published {}: network {} version {}, {} members, expires {}",
                out.display(),
                verified.list.network,
                verified.list.version,
                verified.list.members.len(),
                time::rfc3339(verified.list.expires_at)
            );
            Ok(())
        }
        Command::Show { file, json } => show::show(&file, json),
        Command::Verify {
            list,
            anchor,
            threshold,
            network,
            previous,
        } => {
            let keys = anchor
                .iter()
                .map(|k| {
                    parse_public_key_arg(k).with_context(|| format!("--anchor {}", excerpt(k)))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut anchor = Anchor::new(keys, threshold).context("--anchor/--threshold")?;
            let mut held = None;
            if let Some(previous) = previous {
                let bytes = files::read_file(&previous, "member list", LIST_LIMIT)?;
                let prev = verify_signatures(&bytes, &anchor, None)
                    .with_context(|| format!("previous list {}", previous.display()))?;
                anchor = Anchor::from_governance(&prev.list.governance);
                held = Some(prev.list.version);
            }
            let bytes = files::read_file(&list, "member list", LIST_LIMIT)?;
            let verified = verify_member_list(&bytes, &anchor, held, now)
                .with_context(|| format!("{} refused", list.display()))?;
            if let Some(network) = network
                && verified.list.network != network
            {
                bail!(
                    "{} is for network {}, not {}",
                    list.display(),
                    excerpt(&verified.list.network),
                    excerpt(&network)
                );
            }
            println!(
                "valid: network {} version {}, {} members, signed by {} of {} required governance keys, expires {}",
                verified.list.network,
                verified.list.version,
                verified.list.members.len(),
                verified.signers.len(),
                anchor.threshold(),
                time::rfc3339(verified.list.expires_at)
            );
            Ok(())
        }
    }
}

fn init(out: &Path) -> Result<()> {
    let public_path = pub_path(out);
    if public_path.exists() {
        bail!(
            "{} already exists; refusing to overwrite it",
            public_path.display()
        );
    }
    let key = NodeKey::create(out)?;
    write_public_key(&public_path, &key.public_key())?;
    println!("governance key written to {} (mode 0600)", out.display());
    println!(
        "public key {} written to {}",
        key.public_key(),
        public_path.display()
    );
    Ok(())
}

fn pub_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn governance_set(keys: &[String], threshold: Option<u32>) -> Result<GovernanceSet> {
    let keys = keys
        .iter()
        .map(|k| parse_public_key_arg(k).with_context(|| format!("governance key {}", excerpt(k))))
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        bail!("give the governance keys with --governance KEY,KEY,...");
    }
    let threshold = threshold.context("give the threshold with --threshold K")?;
    Ok(GovernanceSet::new(keys, threshold)?)
}

fn read_draft(path: &Path) -> Result<Draft> {
    let bytes = files::read_file(path, "member list draft", LIST_LIMIT)?;
    Draft::decode(&bytes).with_context(|| {
        format!(
            "{} is not a member list draft ({DRAFT_FORMAT}); start one with `handbereik-keys new`",
            path.display()
        )
    })
}

fn write_draft(path: &Path, draft: &Draft, overwrite: Overwrite) -> Result<()> {
    files::write_file(path, &draft.encode()?, Visibility::Public, overwrite)?;
    Ok(())
}

fn report_dropped(dropped: usize) {
    if dropped > 0 {
        println!(
            "note: the draft changed, so its {dropped} signature(s) were dropped; it must be signed again"
        );
    }
}

fn print_actor_roles(list: &MemberList) {
    if list.profile.actor_roles.is_empty() {
        println!("the network names no actor roles");
    } else {
        println!(
            "actor roles of the network: {}",
            join(&list.profile.actor_roles)
        );
    }
}

fn regions_note(regions: &[String]) -> String {
    if regions.is_empty() {
        String::new()
    } else {
        format!(", serving regions {}", regions.join(","))
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

fn parse_time(text: &str) -> Result<u64, String> {
    time::parse(text)
}
