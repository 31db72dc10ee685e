//! The client subcommands of `synod`, in the spirit of etcdctl:
//! `put`, `get`, `del`, `txn`, `watch`, `lease`, `lock`, `elect`, `member`,
//! `status` and `bench`.
//!
//! The `synod` binary flattens [`ClientCommand`] into its own subcommands and
//! [`ConnArgs`] (the global `--endpoints`) into its top-level flags, then
//! calls [`run`]. Every command prints etcdctl's `simple` text by default,
//! `-w json` for etcd's JSON shapes and `-w table` where a table fits.
//! Errors go to stderr as `Error: …` with exit status 1, like etcdctl.

pub mod txn;

use std::io::{Read, Write};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use synod_proto::etcdserverpb::{
    range_request, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, WatchCreateRequest,
};

use crate::client::{prefix_end, Client, ClientOptions};
use crate::concurrency::{self, Session};
use crate::error::{Error, Result};
use crate::output::{self, Format};

/// Flags shared by every client command (global: accepted before or after it).
#[derive(Args, Clone, Debug)]
pub struct ConnArgs {
    /// Cluster endpoints, comma-separated HOST:PORT (or http://HOST:PORT).
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
}

/// Output and timing flags of one command.
#[derive(Args, Clone, Debug)]
pub struct OutArgs {
    /// Output format.
    #[arg(short = 'w', long = "write-out", value_enum, default_value_t = Format::Simple, global = true)]
    pub write_out: Format,
    /// Time allowed to reach an endpoint, e.g. 2s or 500ms.
    #[arg(long, default_value = "2s", value_parser = parse_duration, global = true)]
    pub dial_timeout: Duration,
    /// Time allowed for each request, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = parse_duration, global = true)]
    pub command_timeout: Duration,
}

/// Parses `1.5s`, `200ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (try 10s or 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m or h)")),
    };
    if !secs.is_finite() || !(0.0..=1e7).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The client subcommands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Put a key (value from the argument, or from stdin when omitted).
    Put(PutCmd),
    /// Get a key or a range of keys.
    Get(GetCmd),
    /// Delete a key or a range of keys.
    Del(DelCmd),
    /// Run a transaction (etcdctl's text form on stdin, or --compare/--success/--failure flags).
    Txn(TxnCmd),
    /// Watch a key or prefix and print its events.
    Watch(WatchCmd),
    /// Lease commands: grant, revoke, timetolive, list, keep-alive.
    Lease(LeaseCmd),
    /// Acquire a named lock; hold it until Ctrl-C, or while running a command.
    Lock(LockCmd),
    /// Campaign in an election (hold leadership until Ctrl-C), or --listen to leaders.
    Elect(ElectCmd),
    /// Member commands: list, add, remove, update, promote.
    Member(MemberCmd),
    /// Status of every endpoint.
    Status(StatusCmd),
    /// Load generator speaking the etcd v3 API.
    Bench(crate::bench::BenchArgs),
}

/// `put`.
#[derive(Args, Debug, Clone)]
pub struct PutCmd {
    /// The key.
    pub key: String,
    /// The value (read from stdin when omitted).
    pub value: Option<String>,
    /// Attach the key to this lease (hex id, as lease grant prints it).
    #[arg(long)]
    pub lease: Option<String>,
    /// Print the previous key-value pair.
    #[arg(long)]
    pub prev_kv: bool,
    /// Keep the current value (update the lease only).
    #[arg(long)]
    pub ignore_value: bool,
    /// Keep the current lease.
    #[arg(long)]
    pub ignore_lease: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

fn parse_lease(s: &str) -> Result<i64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map(|v| v as i64)
        .map_err(|_| Error::InvalidArgument(format!("bad lease id {s:?} (expected hex)")))
}

impl PutCmd {
    /// The request; `stdin_value` is used when no value was given.
    pub fn request(&self, stdin_value: Option<Vec<u8>>) -> Result<PutRequest> {
        let value = match (&self.value, stdin_value) {
            (Some(v), _) => v.clone().into_bytes(),
            (None, Some(v)) => v,
            (None, None) if self.ignore_value => Vec::new(),
            (None, None) => {
                return Err(Error::InvalidArgument("put needs a key and a value".into()))
            }
        };
        if self.key.is_empty() {
            return Err(Error::InvalidArgument("put needs a non-empty key".into()));
        }
        Ok(PutRequest {
            key: self.key.clone().into_bytes(),
            value,
            lease: self
                .lease
                .as_deref()
                .map(parse_lease)
                .transpose()?
                .unwrap_or(0),
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        })
    }
}

/// Sort target names accepted by `--sort-by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[allow(missing_docs)]
#[clap(rename_all = "UPPER")]
pub enum SortBy {
    Create,
    Key,
    Modify,
    Value,
    Version,
}

/// Sort order names accepted by `--order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[allow(missing_docs)]
#[clap(rename_all = "UPPER")]
pub enum Order {
    Ascend,
    Descend,
}

/// `get`.
#[derive(Args, Debug, Clone)]
pub struct GetCmd {
    /// The key (or the start of the range).
    pub key: String,
    /// The end of the range (exclusive).
    pub range_end: Option<String>,
    /// Every key starting with KEY.
    #[arg(long)]
    pub prefix: bool,
    /// Every key from KEY on (byte order).
    #[arg(long)]
    pub from_key: bool,
    /// Read at this revision (0: latest).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// At most this many keys (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Sort by this field.
    #[arg(long, value_enum, ignore_case = true)]
    pub sort_by: Option<SortBy>,
    /// Sort order (ASCEND by default when sorting).
    #[arg(long, value_enum, ignore_case = true)]
    pub order: Option<Order>,
    /// Keys only.
    #[arg(long)]
    pub keys_only: bool,
    /// The number of keys only.
    #[arg(long)]
    pub count_only: bool,
    /// Values only (simple output).
    #[arg(long)]
    pub print_value_only: bool,
    /// Linearizable (l) or serializable (s).
    #[arg(long, default_value = "l", value_parser = ["l", "s"])]
    pub consistency: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// The key and range end selected by a key, an optional end and the
/// `--prefix`/`--from-key` flags (etcdctl's rules).
fn key_range(
    key: &str,
    end: &Option<String>,
    prefix: bool,
    from_key: bool,
) -> Result<(Vec<u8>, Vec<u8>)> {
    if prefix && from_key {
        return Err(Error::InvalidArgument(
            "--prefix and --from-key cannot be used together".into(),
        ));
    }
    if (prefix || from_key) && end.is_some() {
        return Err(Error::InvalidArgument(
            "a range end cannot be given with --prefix or --from-key".into(),
        ));
    }
    let mut k = key.as_bytes().to_vec();
    let e = if prefix {
        if k.is_empty() {
            k = vec![0];
            vec![0]
        } else {
            prefix_end(&k)
        }
    } else if from_key {
        if k.is_empty() {
            k = vec![0];
        }
        vec![0]
    } else {
        end.clone().unwrap_or_default().into_bytes()
    };
    if k.is_empty() {
        return Err(Error::InvalidArgument("a key is required".into()));
    }
    Ok((k, e))
}

impl GetCmd {
    /// The Range request these flags describe.
    pub fn request(&self) -> Result<RangeRequest> {
        let (key, range_end) = key_range(&self.key, &self.range_end, self.prefix, self.from_key)?;
        let sort_target = match self.sort_by {
            None | Some(SortBy::Key) => range_request::SortTarget::Key,
            Some(SortBy::Create) => range_request::SortTarget::Create,
            Some(SortBy::Modify) => range_request::SortTarget::Mod,
            Some(SortBy::Value) => range_request::SortTarget::Value,
            Some(SortBy::Version) => range_request::SortTarget::Version,
        };
        let sort_order = match (self.order, self.sort_by) {
            (Some(Order::Descend), _) => range_request::SortOrder::Descend,
            (Some(Order::Ascend), _) | (None, Some(_)) => range_request::SortOrder::Ascend,
            (None, None) => range_request::SortOrder::None,
        };
        if self.limit < 0 || self.rev < 0 {
            return Err(Error::InvalidArgument(
                "--limit and --rev must not be negative".into(),
            ));
        }
        Ok(RangeRequest {
            key,
            range_end,
            limit: self.limit,
            revision: self.rev,
            sort_order: sort_order as i32,
            sort_target: sort_target as i32,
            serializable: self.consistency == "s",
            keys_only: self.keys_only,
            count_only: self.count_only,
            ..Default::default()
        })
    }
}

/// `del`.
#[derive(Args, Debug, Clone)]
pub struct DelCmd {
    /// The key (or the start of the range).
    pub key: String,
    /// The end of the range (exclusive).
    pub range_end: Option<String>,
    /// Every key starting with KEY.
    #[arg(long)]
    pub prefix: bool,
    /// Every key from KEY on.
    #[arg(long)]
    pub from_key: bool,
    /// Print the deleted pairs.
    #[arg(long)]
    pub prev_kv: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

impl DelCmd {
    /// The DeleteRange request these flags describe.
    pub fn request(&self) -> Result<DeleteRangeRequest> {
        let (key, range_end) = key_range(&self.key, &self.range_end, self.prefix, self.from_key)?;
        Ok(DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        })
    }
}

/// The operation lines of a transaction, parsed with the commands' own flags.
#[derive(Parser, Debug)]
#[command(no_binary_name = false, disable_help_subcommand = true)]
pub(crate) enum OpLine {
    Put(PutCmd),
    Get(GetCmd),
    Del(DelCmd),
}

/// `txn`.
#[derive(Args, Debug)]
pub struct TxnCmd {
    /// Prompt for each section on stderr (reading from stdin as usual).
    #[arg(short, long)]
    pub interactive: bool,
    /// A compare, e.g. 'value("k") = "v"' (repeatable; flag form instead of stdin).
    #[arg(long = "compare")]
    pub compares: Vec<String>,
    /// An operation run when every compare holds, e.g. 'put k v' (repeatable).
    #[arg(long = "success")]
    pub success: Vec<String>,
    /// An operation run otherwise, e.g. 'get k' (repeatable).
    #[arg(long = "failure")]
    pub failure: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

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

/// Runs one client command; returns the process exit status.
pub fn run(conn: &ConnArgs, cmd: ClientCommand) -> u8 {
    let mut stdout = std::io::stdout();
    block_on(execute(conn, cmd, &mut stdout))
}

/// Runs `synod snapshot save` and returns the process exit code.
pub fn run_snapshot_save(conn: &ConnArgs, cmd: SnapshotSaveCmd) -> u8 {
    let mut stdout = std::io::stdout();
    block_on(snapshot_save(conn, cmd, &mut stdout))
}

fn block_on(f: impl std::future::Future<Output = Result<u8>>) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(f) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
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
    if conn.endpoints.len() != 1 {
        return Err(Error::InvalidArgument(
            "snapshot must be requested to one selected node, not multiple".into(),
        ));
    }
    let opts = ClientOptions {
        dial_timeout: cmd.out.dial_timeout,
        request_timeout: cmd.out.command_timeout,
        probe: false,
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

fn out_args(cmd: &ClientCommand) -> Option<&OutArgs> {
    Some(match cmd {
        ClientCommand::Put(c) => &c.out,
        ClientCommand::Get(c) => &c.out,
        ClientCommand::Del(c) => &c.out,
        ClientCommand::Txn(c) => &c.out,
        ClientCommand::Watch(c) => &c.out,
        ClientCommand::Lease(c) => &c.out,
        ClientCommand::Lock(c) => &c.out,
        ClientCommand::Elect(c) => &c.out,
        ClientCommand::Member(c) => &c.out,
        ClientCommand::Status(c) => &c.out,
        ClientCommand::Bench(_) => return None,
    })
}

/// Where a command's output goes (stdout for the binary, a buffer in tests).
pub type Sink<'a> = &'a mut (dyn Write + Send);

fn emit(out: &mut (dyn Write + Send), bytes: &[u8]) -> Result<()> {
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Runs one client command, writing what it prints to `out`; returns the exit status.
pub async fn execute(conn: &ConnArgs, cmd: ClientCommand, out: Sink<'_>) -> Result<u8> {
    let sink = out;
    let Some(out) = out_args(&cmd).cloned() else {
        let ClientCommand::Bench(b) = cmd else {
            return Err(Error::InvalidArgument("no output flags".into()));
        };
        return crate::bench::run(&conn.endpoints, b).await;
    };
    let opts = ClientOptions {
        dial_timeout: out.dial_timeout,
        request_timeout: out.command_timeout,
        ..ClientOptions::default()
    };
    // Status answers for each endpoint on its own, reachable or not.
    let probe = !matches!(cmd, ClientCommand::Status(_));
    let client = Client::connect(&conn.endpoints, ClientOptions { probe, ..opts }).await?;
    let fmt = out.write_out;
    match cmd {
        ClientCommand::Put(c) => {
            let stdin_value = if c.value.is_none() && !c.ignore_value {
                let mut v = Vec::new();
                std::io::stdin().read_to_end(&mut v)?;
                Some(v)
            } else {
                None
            };
            let r = client.put(c.request(stdin_value)?).await?;
            emit(
                sink,
                &match fmt {
                    Format::Json => output::json_line(&output::put_json(&r)),
                    _ => output::put_simple(&r),
                },
            )?;
        }
        ClientCommand::Get(c) => {
            let r = client.range(c.request()?).await?;
            emit(
                sink,
                &match fmt {
                    Format::Json => output::json_line(&output::range_json(&r)),
                    Format::Table => {
                        let rows: Vec<Vec<String>> = r
                            .kvs
                            .iter()
                            .map(|kv| {
                                vec![
                                    output::text(&kv.key),
                                    output::text(&kv.value),
                                    kv.create_revision.to_string(),
                                    kv.mod_revision.to_string(),
                                    kv.version.to_string(),
                                    if kv.lease == 0 {
                                        String::new()
                                    } else {
                                        output::lease_hex(kv.lease)
                                    },
                                ]
                            })
                            .collect();
                        output::table(
                            &["KEY", "VALUE", "CREATE", "MOD", "VERSION", "LEASE"],
                            &rows,
                        )
                        .into_bytes()
                    }
                    Format::Simple if c.count_only => format!("{}\n", r.count).into_bytes(),
                    Format::Simple if c.print_value_only => {
                        let mut o = Vec::new();
                        for kv in &r.kvs {
                            o.extend_from_slice(&kv.value);
                            o.push(b'\n');
                        }
                        o
                    }
                    Format::Simple => {
                        let mut o = Vec::new();
                        output::kvs_simple(&mut o, &r.kvs, c.keys_only);
                        o
                    }
                },
            )?;
        }
        ClientCommand::Del(c) => {
            let r = client.delete_range(c.request()?).await?;
            emit(
                sink,
                &match fmt {
                    Format::Json => output::json_line(&output::delete_json(&r)),
                    _ => output::delete_simple(&r),
                },
            )?;
        }
        ClientCommand::Txn(c) => {
            let (compare, success, failure) = if c.compares.is_empty()
                && c.success.is_empty()
                && c.failure.is_empty()
            {
                if c.interactive {
                    eprintln!("compares (one per line, empty line to finish), then success operations, then failure operations:");
                }
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                txn::parse_text(&text)?
            } else {
                (
                    c.compares
                        .iter()
                        .map(|l| txn::parse_compare(l))
                        .collect::<Result<_>>()?,
                    c.success
                        .iter()
                        .map(|l| txn::parse_op(l))
                        .collect::<Result<_>>()?,
                    c.failure
                        .iter()
                        .map(|l| txn::parse_op(l))
                        .collect::<Result<_>>()?,
                )
            };
            let r = client
                .txn(TxnRequest {
                    compare,
                    success,
                    failure,
                })
                .await?;
            emit(
                sink,
                &match fmt {
                    Format::Json => output::json_line(&output::txn_json(&r)),
                    _ => output::txn_simple(&r),
                },
            )?;
        }
        ClientCommand::Watch(c) => return watch(&client, c, fmt, sink).await,
        ClientCommand::Lease(c) => return lease(&client, c.op, fmt, sink).await,
        ClientCommand::Lock(c) => return lock(&client, c, sink).await,
        ClientCommand::Elect(c) => return elect(&client, c, sink).await,
        ClientCommand::Member(c) => match c.op {
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
        },
        ClientCommand::Status(_) => {
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
            return Ok(u8::from(failed));
        }
        ClientCommand::Bench(_) => unreachable!("bench was dispatched above"),
    }
    Ok(0)
}

async fn watch(client: &Client, c: WatchCmd, fmt: Format, sink: Sink<'_>) -> Result<u8> {
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

async fn lease(client: &Client, op: LeaseOp, fmt: Format, sink: Sink<'_>) -> Result<u8> {
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

async fn lock(client: &Client, c: LockCmd, sink: Sink<'_>) -> Result<u8> {
    let session = Session::new(client, c.ttl).await?;
    let got = interruptible(concurrency::lock(client, &session, c.name.as_bytes())).await;
    let Some((session, guard)) = settle(session, got).await? else {
        return Ok(0);
    };
    let code = if let Some((prog, args)) = c.command.split_first() {
        let status = tokio::process::Command::new(prog)
            .args(args)
            .env("ETCD_LOCK_KEY", output::text(&guard.key))
            .env("ETCD_LOCK_REV", guard.revision.to_string())
            .status()
            .await;
        match status {
            Ok(s) => s.code().map_or(1, |c| c.clamp(0, 255) as u8),
            Err(e) => {
                eprintln!("Error: cannot run {prog:?}: {e}");
                1
            }
        }
    } else {
        emit(sink, &[guard.key.as_slice(), b"\n"].concat())?;
        tokio::signal::ctrl_c().await?;
        0
    };
    concurrency::unlock(client, &guard).await?;
    session.close().await?;
    Ok(code)
}

async fn elect(client: &Client, c: ElectCmd, sink: Sink<'_>) -> Result<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn ranges_follow_etcdctl() {
        assert_eq!(
            key_range("foo", &None, true, false).unwrap(),
            (b"foo".to_vec(), b"fop".to_vec())
        );
        assert_eq!(
            key_range("", &None, true, false).unwrap(),
            (vec![0], vec![0])
        );
        assert_eq!(
            key_range("a", &None, false, true).unwrap(),
            (b"a".to_vec(), vec![0])
        );
        assert_eq!(
            key_range("a", &Some("c".into()), false, false).unwrap(),
            (b"a".to_vec(), b"c".to_vec())
        );
        assert!(key_range("a", &None, true, true).is_err());
        assert!(key_range("", &None, false, false).is_err());
        assert!(key_range("a", &Some("c".into()), true, false).is_err());
    }

    #[test]
    fn lease_ids_are_hex() {
        assert_eq!(parse_lease("390da2274276d112").unwrap(), 0x390da2274276d112);
        assert!(parse_lease("xyz").is_err());
    }
}
