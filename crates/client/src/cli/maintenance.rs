//! The maintenance commands: `status` (every endpoint's status, each asked
//! on its own) and `snapshot save` (a consistent image of one member,
//! streamed to a file and checked against its SHA-256 trailer).

use clap::Args;

use super::{emit, ConnArgs, OutArgs, Sink};
use crate::client::{Client, ClientOptions};
use crate::error::{Error, Result};
use crate::output::{self, Format};

/// `snapshot save`: a consistent image of one member's state, to a file.
#[derive(Args, Debug, Clone)]
pub struct SnapshotSaveCmd {
    /// The file to write (written beside as FILE.part, then renamed).
    pub file: std::path::PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// `status`.
#[derive(Args, Debug)]
pub struct StatusCmd {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// The largest snapshot `snapshot save` accepts (etcd's default quota is
/// 2 GiB; a bigger stream is refused rather than filling the disk).
const MAX_SNAPSHOT_BYTES: u64 = 8 << 30;

/// Streams Maintenance.Snapshot from the first endpoint into `cmd.file`:
/// written to `FILE.part`, checked against the SHA-256 trailer etcd's format
/// ends with, synced, then renamed into place.
pub async fn snapshot_save(conn: &ConnArgs, cmd: SnapshotSaveCmd, sink: Sink<'_>) -> Result<u8> {
    use sha2::Digest;
    use std::io::Write as _;
    let conn = &conn.or(&cmd.out.endpoints);
    if conn.endpoints.len() != 1 {
        return Err(Error::InvalidArgument(
            "snapshot must be requested to one selected node, not multiple".into(),
        ));
    }
    let opts = ClientOptions {
        dial_timeout: cmd.out.dial_timeout,
        request_timeout: cmd.out.command_timeout,
        probe: false,
        tls: cmd.out.tls(),
        ..ClientOptions::default()
    };
    let client = Client::connect(&conn.endpoints, opts).await?;
    let mut stream = client.snapshot().await?;
    let part = {
        let mut p = cmd.file.clone().into_os_string();
        p.push(".part");
        std::path::PathBuf::from(p)
    };
    let mut f = std::fs::File::create(&part)?;
    let mut hasher = sha2::Sha256::new();
    // The last 32 bytes seen: the trailer, once the stream ends.
    let mut tail: Vec<u8> = Vec::with_capacity(64);
    let mut total: u64 = 0;
    let res: Result<()> = async {
        while let Some(chunk) = stream.message().await.map_err(Error::Status)? {
            total += chunk.blob.len() as u64;
            if total > MAX_SNAPSHOT_BYTES {
                return Err(Error::InvalidArgument(format!(
                    "snapshot larger than {MAX_SNAPSHOT_BYTES} bytes"
                )));
            }
            f.write_all(&chunk.blob)?;
            tail.extend_from_slice(&chunk.blob);
            if tail.len() > 32 {
                let cut = tail.len() - 32;
                hasher.update(&tail[..cut]);
                tail.drain(..cut);
            }
        }
        if total % 512 != 32 || tail.len() != 32 {
            return Err(Error::InvalidArgument(format!(
                "snapshot of {total} bytes has no SHA-256 trailer"
            )));
        }
        if hasher.finalize().as_slice() != tail.as_slice() {
            return Err(Error::InvalidArgument(
                "snapshot's SHA-256 does not match its content".into(),
            ));
        }
        f.sync_all()?;
        Ok(())
    }
    .await;
    if let Err(e) = res {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    drop(f);
    std::fs::rename(&part, &cmd.file)?;
    emit(
        sink,
        format!("Snapshot saved at {}\n", cmd.file.display()).as_bytes(),
    )?;
    Ok(0)
}

/// Runs `status`: one line (or row) per endpoint that answered; exit status 1
/// when any did not.
pub(crate) async fn status(client: &Client, fmt: Format, sink: Sink<'_>) -> Result<u8> {
    let all = client.status_all().await;
    let mut failed = false;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (ep, r) in &all {
        match r {
            Ok(s) => {
                rows.push(output::status_row(ep, s));
                let mut o = output::Json::obj();
                o.insert("Endpoint", ep.as_str());
                o.insert("Status", output::status_json(s));
                json.push(o);
            }
            Err(e) => {
                failed = true;
                eprintln!("Failed to get the status of endpoint {ep} ({e})");
            }
        }
    }
    emit(
        sink,
        &match fmt {
            Format::Json => output::json_line(&output::Json::Arr(json)),
            Format::Table => output::table(&output::STATUS_HEADERS, &rows).into_bytes(),
            Format::Simple => rows
                .iter()
                .map(|r| r.join(", ") + "\n")
                .collect::<String>()
                .into_bytes(),
        },
    )?;
    Ok(u8::from(failed))
}
