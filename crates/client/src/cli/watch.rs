//! `watch`: its flags, and streaming a key's or a range's events to the
//! output until Ctrl-C, `--max-events`, or the server cancels the watch
//! (a compacted start revision, for one).

use clap::Args;
use synod_proto::etcdserverpb::WatchCreateRequest;

use super::kv::key_range;
use super::{emit, OutArgs, Sink};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::output::{self, Format};

/// `watch`.
#[derive(Args, Debug)]
pub struct WatchCmd {
    /// The key (or prefix with --prefix).
    pub key: String,
    /// The end of the range (exclusive).
    pub range_end: Option<String>,
    /// Every key starting with KEY.
    #[arg(long)]
    pub prefix: bool,
    /// Start from this revision (0: now).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Include the previous pair in each event.
    #[arg(long)]
    pub prev_kv: bool,
    /// Exit after this many events (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub max_events: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// Runs `watch`.
pub(crate) async fn watch(client: &Client, c: WatchCmd, fmt: Format, sink: Sink<'_>) -> Result<u8> {
    let (key, range_end) = key_range(&c.key, &c.range_end, c.prefix, false)?;
    let (mut ws, _) = client
        .watch(WatchCreateRequest {
            key,
            range_end,
            start_revision: c.rev,
            prev_kv: c.prev_kv,
            ..Default::default()
        })
        .await?;
    let mut seen = 0u64;
    loop {
        let r = tokio::select! {
            r = ws.next() => r?,
            _ = tokio::signal::ctrl_c() => return Ok(0),
        };
        let Some(r) = r else {
            return Err(Error::StreamClosed("watch".into()));
        };
        if r.canceled {
            let why = if r.compact_revision > 0 {
                format!(
                    "watch is canceled by the server: required revision has been compacted (compact revision {})",
                    r.compact_revision
                )
            } else {
                format!("watch is canceled by the server: {}", r.cancel_reason)
            };
            return Err(Error::StreamClosed(why));
        }
        if r.events.is_empty() {
            continue;
        }
        emit(
            sink,
            &match fmt {
                Format::Json => output::json_line(&output::watch_json(&r)),
                _ => output::watch_simple(&r),
            },
        )?;
        seen += r.events.len() as u64;
        if c.max_events > 0 && seen >= c.max_events {
            return Ok(0);
        }
    }
}
