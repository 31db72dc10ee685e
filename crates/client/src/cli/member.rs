//! `member list|add|remove|update|promote`: their flags, parsing member ids
//! and peer URLs, and running them with etcdctl's output (lines, JSON or a
//! table).

use clap::{Args, Subcommand};

use super::{emit, OutArgs, Sink};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::output::{self, Format};

/// `member`.
#[derive(Args, Debug)]
pub struct MemberCmd {
    #[command(subcommand)]
    #[allow(missing_docs)]
    pub op: MemberOp,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// Member operations.
#[derive(Subcommand, Debug)]
pub enum MemberOp {
    /// List the cluster's members.
    List,
    /// Add a member (it then starts with `--initial-cluster-state existing`).
    Add {
        /// The new member's name.
        name: String,
        /// Its peer URLs, comma-separated.
        #[arg(long)]
        peer_urls: String,
        /// Add it as a learner (a non-voting member, promoted later).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member.
    Remove {
        /// The member's id (hex).
        id: String,
    },
    /// Change a member's peer URLs.
    Update {
        /// The member's id (hex).
        id: String,
        /// Its new peer URLs, comma-separated.
        #[arg(long)]
        peer_urls: String,
    },
    /// Promote a learner to a voting member.
    Promote {
        /// The learner's id (hex).
        id: String,
    },
}

fn split_urls(s: &str) -> Result<Vec<String>> {
    let urls: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    if urls.is_empty() {
        return Err(Error::InvalidArgument(
            "member peer urls not provided".into(),
        ));
    }
    Ok(urls)
}

fn parse_member_id(s: &str) -> Result<u64> {
    u64::from_str_radix(s, 16).map_err(|e| {
        Error::InvalidArgument(format!("bad member ID arg ({e}), expecting ID in Hex"))
    })
}

/// etcdctl's line after remove, update and promote (`Member ID VERB cluster
/// CLUSTER`), or the response as JSON.
fn member_changed(
    fmt: Format,
    verb: &str,
    id: u64,
    header: &Option<synod_proto::etcdserverpb::ResponseHeader>,
    members: &[synod_proto::etcdserverpb::Member],
) -> Vec<u8> {
    let cluster = header.as_ref().map_or(0, |h| h.cluster_id);
    match fmt {
        Format::Json => output::json_line(&output::members_json(header, members)),
        _ => format!("Member {id:16x} {verb} cluster {cluster:16x}\n").into_bytes(),
    }
}

/// Runs one `member` operation.
pub(crate) async fn member(
    client: &Client,
    op: MemberOp,
    fmt: Format,
    sink: Sink<'_>,
) -> Result<u8> {
    match op {
        MemberOp::Add {
            name,
            peer_urls,
            learner,
        } => {
            let urls = split_urls(&peer_urls)?;
            let r = client.member_add(urls.clone(), learner).await?;
            let text = match fmt {
                Format::Json => output::json_line(&output::member_add_json(&r)),
                _ => output::member_added(&r, &name, &urls).into_bytes(),
            };
            emit(sink, &text)?;
        }
        MemberOp::Remove { id } => {
            let id = parse_member_id(&id)?;
            let r = client.member_remove(id).await?;
            emit(
                sink,
                &member_changed(fmt, "removed from", id, &r.header, &r.members),
            )?;
        }
        MemberOp::Update { id, peer_urls } => {
            let id = parse_member_id(&id)?;
            let r = client.member_update(id, split_urls(&peer_urls)?).await?;
            emit(
                sink,
                &member_changed(fmt, "updated in", id, &r.header, &r.members),
            )?;
        }
        MemberOp::Promote { id } => {
            let id = parse_member_id(&id)?;
            let r = client.member_promote(id).await?;
            emit(
                sink,
                &member_changed(fmt, "promoted in", id, &r.header, &r.members),
            )?;
        }
        MemberOp::List => {
            let r = client.member_list().await?;
            emit(
                sink,
                &match fmt {
                    Format::Json => output::json_line(&output::member_list_json(&r)),
                    Format::Table => output::table(
                        &[
                            "ID",
                            "STATUS",
                            "NAME",
                            "PEER ADDRS",
                            "CLIENT ADDRS",
                            "IS LEARNER",
                        ],
                        &r.members.iter().map(output::member_row).collect::<Vec<_>>(),
                    )
                    .into_bytes(),
                    Format::Simple => r
                        .members
                        .iter()
                        .map(|m| output::member_simple(m) + "\n")
                        .collect::<String>()
                        .into_bytes(),
                },
            )?;
        }
    }
    Ok(0)
}
