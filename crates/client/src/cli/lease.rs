//! `lease grant|revoke|timetolive|list|keep-alive`: their flags, the hex
//! lease ids they (and `put --lease`) take, and running them with etcdctl's
//! output, including the renewal loop of `keep-alive`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::{emit, OutArgs, Sink};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::output::{self, Format};

/// `lease`.
#[derive(Args, Debug)]
pub struct LeaseCmd {
    #[command(subcommand)]
    #[allow(missing_docs)]
    pub op: LeaseOp,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// Lease operations.
#[derive(Subcommand, Debug)]
pub enum LeaseOp {
    /// Create a lease of TTL seconds.
    Grant {
        /// Seconds.
        ttl: i64,
    },
    /// Revoke a lease (its keys are deleted).
    Revoke {
        /// Hex lease id.
        id: String,
    },
    /// Remaining time of a lease.
    Timetolive {
        /// Hex lease id.
        id: String,
        /// Also list its keys.
        #[arg(long)]
        keys: bool,
    },
    /// List live leases.
    List,
    /// Keep a lease alive (until Ctrl-C, or once with --once).
    KeepAlive {
        /// Hex lease id.
        id: String,
        /// Renew once and exit.
        #[arg(long)]
        once: bool,
    },
}

/// A lease id as etcdctl prints it (hex, with or without `0x`).
pub(crate) fn parse_lease(s: &str) -> Result<i64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map(|v| v as i64)
        .map_err(|_| Error::InvalidArgument(format!("bad lease id {s:?} (expected hex)")))
}

/// Runs one `lease` operation.
pub(crate) async fn lease(client: &Client, op: LeaseOp, fmt: Format, sink: Sink<'_>) -> Result<u8> {
    match op {
        LeaseOp::Grant { ttl } => {
            let r = client.lease_grant(ttl, 0).await?;
            if !r.error.is_empty() {
                return Err(Error::InvalidArgument(r.error));
            }
            emit(
                sink,
                &match fmt {
                    Format::Json => output::json_line(&output::lease_grant_json(&r)),
                    _ => format!(
                        "lease {} granted with TTL({}s)\n",
                        output::lease_hex(r.id),
                        r.ttl
                    )
                    .into_bytes(),
                },
            )?;
        }
        LeaseOp::Revoke { id } => {
            let id = parse_lease(&id)?;
            let r = client.lease_revoke(id).await?;
            emit(
                sink,
                &match fmt {
                    Format::Json => output::json_line(&output::header_json(&r.header)),
                    _ => format!("lease {} revoked\n", output::lease_hex(id)).into_bytes(),
                },
            )?;
        }
        LeaseOp::Timetolive { id, keys } => {
            let id = parse_lease(&id)?;
            let r = client.lease_time_to_live(id, keys).await?;
            emit(
                sink,
                &match fmt {
                    Format::Json => output::json_line(&output::ttl_json(&r)),
                    _ if r.ttl <= 0 => {
                        format!("lease {} already expired\n", output::lease_hex(id)).into_bytes()
                    }
                    _ => {
                        let mut s = format!(
                            "lease {} granted with TTL({}s), remaining({}s)",
                            output::lease_hex(id),
                            r.granted_ttl,
                            r.ttl
                        );
                        if keys {
                            let names: Vec<String> =
                                r.keys.iter().map(|k| output::text(k)).collect();
                            s.push_str(&format!(", attached keys([{}])", names.join(" ")));
                        }
                        s.push('\n');
                        s.into_bytes()
                    }
                },
            )?;
        }
        LeaseOp::List => {
            let r = client.lease_leases().await?;
            emit(
                sink,
                &match fmt {
                    Format::Json => output::json_line(&output::leases_json(&r)),
                    _ => {
                        let mut s = format!("found {} leases\n", r.leases.len());
                        for l in &r.leases {
                            s.push_str(&output::lease_hex(l.id));
                            s.push('\n');
                        }
                        s.into_bytes()
                    }
                },
            )?;
        }
        LeaseOp::KeepAlive { id, once } => {
            let id = parse_lease(&id)?;
            let print = |r: &synod_proto::etcdserverpb::LeaseKeepAliveResponse| match fmt {
                Format::Json => output::json_line(&output::keepalive_json(r)),
                _ => format!(
                    "lease {} keepalived with TTL({})\n",
                    output::lease_hex(r.id),
                    r.ttl
                )
                .into_bytes(),
            };
            if once {
                let r = client.lease_keep_alive_once(id).await?;
                if r.ttl <= 0 {
                    return Err(Error::InvalidArgument(format!(
                        "lease {} expired or revoked.",
                        output::lease_hex(id)
                    )));
                }
                emit(sink, &print(&r))?;
                return Ok(0);
            }
            loop {
                let r = tokio::select! {
                    r = client.lease_keep_alive_once(id) => r?,
                    _ = tokio::signal::ctrl_c() => return Ok(0),
                };
                if r.ttl <= 0 {
                    emit(
                        sink,
                        format!("lease {} expired or revoked.\n", output::lease_hex(id)).as_bytes(),
                    )?;
                    return Ok(1);
                }
                emit(sink, &print(&r))?;
                let pause = Duration::from_millis((r.ttl as u64 * 1000 / 3).max(500));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(0),
                }
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_are_hex() {
        assert_eq!(parse_lease("390da2274276d112").unwrap(), 0x390da2274276d112);
        assert!(parse_lease("xyz").is_err());
    }
}
