//! The client subcommands of `synod`, in the spirit of etcdctl:
//! `put`, `get`, `del`, `txn`, `watch`, `lease`, `lock`, `elect`, `member`,
//! `status`, `endpoint` and `bench`.
//!
//! The `synod` binary flattens [`ClientCommand`] into its own subcommands and
//! [`ConnArgs`] (`--endpoints` before the subcommand) into its top-level
//! flags, then calls [`run`]; each client command takes `--endpoints` after
//! its name too. Every command prints etcdctl's `simple` text by default,
//! `-w json` for etcd's JSON shapes and `-w table` where a table fits.
//! Errors go to stderr as `Error: …` with exit status 1, like etcdctl.
//!
//! Each command family has its own module: `kv` (put, get, del, txn), [`txn`]
//! (the text form of a transaction), `watch`, `lease`, `member`, `recipes`
//! (lock, elect) and `maintenance` (status, snapshot save). Their flag types
//! are re-exported here; this module keeps the top-level arguments, the
//! dispatch, and the output sink every command writes to.

mod endpoint;
mod kv;
mod lease;
mod maintenance;
mod member;
mod ranges;
mod recipes;
pub mod txn;
mod watch;

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::client::{Client, ClientOptions};
use crate::error::{Error, Result};
use crate::output::Format;

pub use endpoint::{go_duration, EndpointCmd, EndpointOp};
pub use kv::{DelCmd, GetCmd, Order, PutCmd, SortBy, TxnCmd};
pub use lease::{LeaseCmd, LeaseOp};
pub use maintenance::{snapshot_save, SnapshotSaveCmd, StatusCmd};
pub use member::{MemberCmd, MemberOp};
pub use recipes::{ElectCmd, LockCmd};
pub use watch::WatchCmd;

/// The endpoints given before the subcommand (`synod --endpoints … get k`).
/// Client commands take `--endpoints` after their name too (through
/// [`OutArgs`]), which wins; the other subcommands (`server`, `sim`, …)
/// neither take nor show it.
#[derive(Args, Clone, Debug)]
pub struct ConnArgs {
    /// Cluster endpoints, comma-separated HOST:PORT (or http://HOST:PORT).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
}

impl ConnArgs {
    /// These endpoints, or `given` after the subcommand's name.
    pub fn or(&self, given: &Option<Vec<String>>) -> ConnArgs {
        match given {
            Some(e) => ConnArgs {
                endpoints: e.clone(),
            },
            None => self.clone(),
        }
    }
}

/// Output and timing flags of one command.
#[derive(Args, Clone, Debug)]
pub struct OutArgs {
    /// Cluster endpoints, comma-separated HOST:PORT (or http://HOST:PORT);
    /// default 127.0.0.1:2379.
    #[arg(
        long = "endpoints",
        id = "command_endpoints",
        value_name = "ENDPOINTS",
        value_delimiter = ',',
        global = true
    )]
    pub endpoints: Option<Vec<String>>,
    /// Output format.
    #[arg(short = 'w', long = "write-out", value_enum, default_value_t = Format::Simple, global = true)]
    pub write_out: Format,
    /// Time allowed to reach an endpoint, e.g. 2s or 500ms.
    #[arg(long, default_value = "2s", value_parser = parse_duration, global = true)]
    pub dial_timeout: Duration,
    /// Time allowed for each request, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = parse_duration, global = true)]
    pub command_timeout: Duration,
    /// TLS: the CA (PEM) that signs the servers' certificates.
    #[arg(long = "cacert", id = "tls_cacert", value_name = "FILE", global = true)]
    pub cacert: Option<std::path::PathBuf>,
    /// TLS: a client certificate (PEM), for servers with --client-cert-auth.
    #[arg(long = "cert", id = "tls_cert", value_name = "FILE", global = true)]
    pub cert: Option<std::path::PathBuf>,
    /// TLS: the key (PEM) of --cert.
    #[arg(long = "key", id = "tls_key", value_name = "FILE", global = true)]
    pub key: Option<std::path::PathBuf>,
    /// TLS: do not verify the server's certificate (e.g. an --auto-tls server).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
}

impl OutArgs {
    /// The TLS flags given, if any.
    pub fn tls(&self) -> Option<crate::tls::TlsOptions> {
        crate::tls::TlsOptions::given(
            self.cacert.clone(),
            self.cert.clone(),
            self.key.clone(),
            self.insecure_skip_tls_verify,
        )
    }
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
    /// Every range of the keyspace: replicas, leader, keys, bytes, writes per second.
    Ranges(ranges::RangesCmd),
    /// Status, health or hash of each endpoint, or of every member with --cluster (etcdctl's `endpoint`).
    Endpoint(EndpointCmd),
    /// Load generator speaking the etcd v3 API.
    Bench(crate::bench::BenchArgs),
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
        ClientCommand::Ranges(c) => &c.out,
        ClientCommand::Endpoint(c) => &c.out,
        ClientCommand::Bench(_) => return None,
    })
}

/// Where a command's output goes (stdout for the binary, a buffer in tests).
pub type Sink<'a> = &'a mut (dyn Write + Send);

/// Writes `bytes` to `out` and flushes it (so a long-running command's output
/// shows as it happens).
pub(crate) fn emit(out: &mut (dyn Write + Send), bytes: &[u8]) -> Result<()> {
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
        return crate::bench::run(&conn.or(&b.endpoints).endpoints, b).await;
    };
    let conn = &conn.or(&out.endpoints);
    if let ClientCommand::Endpoint(c) = cmd {
        return endpoint::endpoint(&conn.endpoints, c, sink).await;
    }
    let opts = ClientOptions {
        dial_timeout: out.dial_timeout,
        request_timeout: out.command_timeout,
        tls: out.tls(),
        ..ClientOptions::default()
    };
    // Status answers for each endpoint on its own, reachable or not.
    let probe = !matches!(cmd, ClientCommand::Status(_));
    let client = Client::connect(&conn.endpoints, ClientOptions { probe, ..opts }).await?;
    let fmt = out.write_out;
    match cmd {
        ClientCommand::Put(c) => kv::put(&client, c, fmt, sink).await,
        ClientCommand::Get(c) => kv::get(&client, c, fmt, sink).await,
        ClientCommand::Del(c) => kv::del(&client, c, fmt, sink).await,
        ClientCommand::Txn(c) => kv::txn(&client, c, fmt, sink).await,
        ClientCommand::Watch(c) => watch::watch(&client, c, fmt, sink).await,
        ClientCommand::Lease(c) => lease::lease(&client, c.op, fmt, sink).await,
        ClientCommand::Lock(c) => recipes::lock(&client, c, sink).await,
        ClientCommand::Elect(c) => recipes::elect(&client, c, sink).await,
        ClientCommand::Member(c) => member::member(&client, c.op, fmt, sink).await,
        ClientCommand::Status(_) => maintenance::status(&client, fmt, sink).await,
        ClientCommand::Ranges(_) => ranges::ranges(&client, fmt, sink).await,
        ClientCommand::Bench(_) | ClientCommand::Endpoint(_) => {
            unreachable!("dispatched above")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tls_flags_follow_any_command_as_etcdctls() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct T {
            #[command(subcommand)]
            c: ClientCommand,
        }
        T::command().debug_assert();
        let t = T::try_parse_from([
            "t", "put", "k", "v", "--cacert", "ca.pem", "--cert", "c.pem", "--key", "k.pem",
        ])
        .unwrap();
        let tls = out_args(&t.c).unwrap().tls().unwrap();
        assert_eq!(tls.cacert.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert_eq!(tls.key.as_deref(), Some(std::path::Path::new("k.pem")));
        let t = T::try_parse_from(["t", "get", "k", "--insecure-skip-tls-verify"]).unwrap();
        assert!(out_args(&t.c).unwrap().tls().unwrap().insecure_skip_verify);
        let t = T::try_parse_from(["t", "get", "k"]).unwrap();
        assert!(out_args(&t.c).unwrap().tls().is_none());
    }

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
}
