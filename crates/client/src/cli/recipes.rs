//! `lock` and `elect`: the recipes built on sessions (see
//! [`crate::concurrency`]) — their flags, and holding a lock or leadership
//! until Ctrl-C (or, for `lock`, while a command runs), closing the session
//! when the wait is interrupted or fails.

use clap::Args;

use super::{emit, OutArgs, Sink};
use crate::client::Client;
use crate::concurrency::{self, Session};
use crate::error::{Error, Result};
use crate::output;

/// `lock`.
#[derive(Args, Debug)]
pub struct LockCmd {
    /// The lock's name.
    pub name: String,
    /// A command to run while holding the lock (env ETCD_LOCK_KEY, ETCD_LOCK_REV).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Session TTL in seconds.
    #[arg(long, default_value_t = 10)]
    pub ttl: i64,
    /// Hand the command a fencing token: SYNOD_LOCK_KEY and
    /// SYNOD_FENCING_TOKEN (the lock key's create revision), which
    /// `synod put --fenced` / `synod del --fenced` use to guard their writes,
    /// so that a write made after the lock was lost (a pause past the
    /// session's TTL) is refused by the store.
    #[arg(long)]
    pub fenced: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// `elect`.
#[derive(Args, Debug)]
pub struct ElectCmd {
    /// The election's name.
    pub name: String,
    /// The value to announce once leader.
    pub proposal: Option<String>,
    /// Print each new leader instead of campaigning.
    #[arg(short, long)]
    pub listen: bool,
    /// Session TTL in seconds.
    #[arg(long, default_value_t = 10)]
    pub ttl: i64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// Runs `wait` (taking a lock, campaigning) until it ends or the user
/// presses Ctrl-C (`None`).
async fn interruptible<T>(wait: impl std::future::Future<Output = Result<T>>) -> Option<Result<T>> {
    tokio::select! {
        r = wait => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    }
}

/// After waiting in `session`: hands back the session and what was won, or
/// closes the session when the wait was interrupted (`None`) or failed.
async fn settle<T>(session: Session, got: Option<Result<T>>) -> Result<Option<(Session, T)>> {
    match got {
        Some(Ok(t)) => Ok(Some((session, t))),
        None => session.close().await.map(|()| None),
        Some(Err(e)) => {
            // The wait's error is the one to report; closing is best effort.
            let _ = session.close().await;
            Err(e)
        }
    }
}

/// Runs `lock`.
pub(crate) async fn lock(client: &Client, c: LockCmd, sink: Sink<'_>) -> Result<u8> {
    let session = Session::new(client, c.ttl).await?;
    let got = interruptible(concurrency::lock(client, &session, c.name.as_bytes())).await;
    let Some((session, guard)) = settle(session, got).await? else {
        return Ok(0);
    };
    let code = if let Some((prog, args)) = c.command.split_first() {
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(args)
            .env("ETCD_LOCK_KEY", output::text(&guard.key))
            .env("ETCD_LOCK_REV", guard.revision.to_string());
        if c.fenced {
            cmd.env("SYNOD_LOCK_KEY", output::text(&guard.key))
                .env("SYNOD_FENCING_TOKEN", guard.revision.to_string());
        }
        let status = cmd.status().await;
        match status {
            Ok(s) => s.code().map_or(1, |c| c.clamp(0, 255) as u8),
            Err(e) => {
                eprintln!("Error: cannot run {prog:?}: {e}");
                1
            }
        }
    } else {
        let mut line = guard.key.clone();
        if c.fenced {
            line.extend_from_slice(format!(" {}", guard.revision).as_bytes());
        }
        line.push(b'\n');
        emit(sink, &line)?;
        tokio::signal::ctrl_c().await?;
        0
    };
    concurrency::unlock(client, &guard).await?;
    session.close().await?;
    Ok(code)
}

/// Runs `elect`, or follows the leaders with `--listen`.
pub(crate) async fn elect(client: &Client, c: ElectCmd, sink: Sink<'_>) -> Result<u8> {
    if c.listen {
        let res = tokio::select! {
            r = concurrency::observe(client, c.name.as_bytes(), |kv| {
                let mut o = Vec::new();
                output::kvs_simple(&mut o, std::slice::from_ref(kv), false);
                emit(&mut *sink, &o).is_ok()
            }) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        };
        return res.map(|_| 0);
    }
    let Some(proposal) = c.proposal else {
        return Err(Error::InvalidArgument(
            "elect needs a proposal, or --listen".into(),
        ));
    };
    let session = Session::new(client, c.ttl).await?;
    let got = interruptible(concurrency::campaign(
        client,
        &session,
        c.name.as_bytes(),
        proposal.as_bytes(),
    ))
    .await;
    let Some((session, won)) = settle(session, got).await? else {
        return Ok(0);
    };
    let mut o = Vec::new();
    o.extend_from_slice(&won.key);
    o.push(b'\n');
    o.extend_from_slice(&won.value);
    o.push(b'\n');
    emit(sink, &o)?;
    tokio::signal::ctrl_c().await?;
    concurrency::resign(client, &won).await?;
    session.close().await?;
    Ok(0)
}
