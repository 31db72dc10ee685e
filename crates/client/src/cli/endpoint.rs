//! `endpoint status|health|hashkv [--cluster]`, with etcdctl 3.4's names
//! and output: one answer per endpoint, each asked on its own; `--cluster`
//! asks every member's advertised client URLs instead of the given
//! endpoints.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::{emit, OutArgs, Sink};
use crate::client::{Client, ClientOptions};
use crate::error::{Error, Result};
use crate::output::{self, Format};

/// `endpoint`.
#[derive(Args, Debug)]
pub struct EndpointCmd {
    #[command(subcommand)]
    #[allow(missing_docs)]
    pub op: EndpointOp,
    /// Ask every member of the cluster (by the client URLs in its member
    /// list) rather than the given endpoints.
    #[arg(long, global = true)]
    pub cluster: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// What to ask each endpoint.
#[derive(Subcommand, Debug, Clone, Copy)]
pub enum EndpointOp {
    /// Status of each endpoint (as `synod status`).
    Status,
    /// Whether each endpoint commits a read through consensus, and how fast.
    Health,
    /// The hash of each endpoint's key-value history at its latest revision.
    Hashkv,
}

/// Go's `time.Duration` text (`1.598129ms`, `5.000608889s`, `1m30s`), as
/// etcdctl prints a time taken.
pub fn go_duration(d: Duration) -> String {
    fn frac(v: u128, unit: u128, digits: usize, suffix: &str) -> String {
        let (whole, rest) = (v / unit, v % unit);
        if rest == 0 {
            return format!("{whole}{suffix}");
        }
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}{suffix}", f.trim_end_matches('0'))
    }
    let ns = d.as_nanos();
    match ns {
        0 => "0s".into(),
        1..=999 => format!("{ns}ns"),
        1_000..=999_999 => frac(ns, 1_000, 3, "µs"),
        1_000_000..=999_999_999 => frac(ns, 1_000_000, 6, "ms"),
        _ => {
            let secs = ns / 1_000_000_000;
            let (h, m) = (secs / 3600, (secs % 3600) / 60);
            let s = frac(ns % 60_000_000_000, 1_000_000_000, 9, "s");
            match (h, m) {
                (0, 0) => s,
                (0, m) => format!("{m}m{s}"),
                (h, m) => format!("{h}h{m}m{s}"),
            }
        }
    }
}

/// The endpoints to ask: the given ones, or with `--cluster` every
/// member's client URLs (in member-list order, without repeats).
async fn targets(endpoints: &[String], cluster: bool, opts: &ClientOptions) -> Result<Vec<String>> {
    if !cluster {
        return Ok(endpoints.to_vec());
    }
    let client = Client::connect(endpoints, opts.clone()).await?;
    let ml = client.member_list().await.map_err(|e| {
        Error::InvalidArgument(format!(
            "failed to fetch endpoints from etcd cluster member list: {e}"
        ))
    })?;
    let mut out: Vec<String> = Vec::new();
    for m in &ml.members {
        for u in &m.client_ur_ls {
            if !out.contains(u) {
                out.push(u.clone());
            }
        }
    }
    Ok(out)
}

/// Runs `endpoint …`; the exit status is 1 when any endpoint failed.
pub async fn endpoint(endpoints: &[String], cmd: EndpointCmd, sink: Sink<'_>) -> Result<u8> {
    let opts = ClientOptions {
        dial_timeout: cmd.out.dial_timeout,
        request_timeout: cmd.out.command_timeout,
        probe: false,
        tls: cmd.out.tls(),
        ..ClientOptions::default()
    };
    let eps = targets(endpoints, cmd.cluster, &opts).await?;
    let client = Client::connect(&eps, opts).await?;
    let fmt = cmd.out.write_out;
    let timeout = cmd.out.command_timeout;
    match cmd.op {
        EndpointOp::Status => super::maintenance::status(&client, fmt, sink).await,
        EndpointOp::Health => health(&client, &eps, fmt, timeout, sink).await,
        EndpointOp::Hashkv => hashkv(&client, &eps, fmt, timeout, sink).await,
    }
}

async fn health(
    client: &Client,
    eps: &[String],
    fmt: Format,
    timeout: Duration,
    sink: Sink<'_>,
) -> Result<u8> {
    // Every endpoint at once, as etcdctl asks them.
    let asks = eps.iter().enumerate().map(|(i, _)| async move {
        let t0 = Instant::now();
        let r = client.get_on(i, b"health", timeout).await;
        let took = t0.elapsed();
        match r {
            Ok(_) => (took, None),
            // Permission denied still went through consensus (etcdctl's rule).
            Err(Error::Status(s)) if s.code() == tonic::Code::PermissionDenied => (took, None),
            Err(Error::Timeout(_)) => (took, Some("context deadline exceeded".to_owned())),
            Err(Error::Status(s)) => (took, Some(s.message().to_owned())),
            Err(e) => (took, Some(e.to_string())),
        }
    });
    let results = futures_join(asks).await;
    let mut unhealthy = false;
    let mut json = Vec::new();
    let mut rows = Vec::new();
    for (ep, (took, err)) in eps.iter().zip(&results) {
        let took = go_duration(*took);
        unhealthy |= err.is_some();
        let mut o = output::Json::obj();
        o.insert("endpoint", ep.as_str());
        o.insert("health", err.is_none());
        o.insert("took", took.as_str());
        if let Some(e) = err {
            o.insert("error", e.as_str());
        }
        json.push(o);
        rows.push(vec![
            ep.clone(),
            err.is_none().to_string(),
            took.clone(),
            err.clone().unwrap_or_default(),
        ]);
        if matches!(fmt, Format::Simple) {
            // etcdctl 3.4 prints these on stderr.
            match err {
                None => {
                    eprintln!("{ep} is healthy: successfully committed proposal: took = {took}")
                }
                Some(e) => eprintln!("{ep} is unhealthy: failed to commit proposal: {e}"),
            }
        }
    }
    match fmt {
        Format::Json => emit(sink, &output::json_line(&output::Json::Arr(json)))?,
        Format::Table => emit(
            sink,
            output::table(&["ENDPOINT", "HEALTH", "TOOK", "ERROR"], &rows).as_bytes(),
        )?,
        Format::Simple => {}
    }
    if unhealthy {
        return Err(Error::InvalidArgument("unhealthy cluster".into()));
    }
    Ok(0)
}

async fn hashkv(
    client: &Client,
    eps: &[String],
    fmt: Format,
    timeout: Duration,
    sink: Sink<'_>,
) -> Result<u8> {
    let mut json = Vec::new();
    let mut rows = Vec::new();
    let mut failed = None;
    for (i, ep) in eps.iter().enumerate() {
        match client.hash_kv_of(i, timeout).await {
            Ok(h) => {
                rows.push(vec![ep.clone(), h.hash.to_string()]);
                let mut hk = output::Json::obj();
                hk.insert("header", output::header_json(&h.header));
                // Go's omitempty, as etcdctl prints it.
                if h.hash != 0 {
                    hk.insert("hash", i64::from(h.hash));
                }
                if h.compact_revision != 0 {
                    hk.insert("compact_revision", h.compact_revision);
                }
                let mut o = output::Json::obj();
                o.insert("Endpoint", ep.as_str());
                o.insert("HashKV", hk);
                json.push(o);
            }
            Err(e) => {
                let e = match e {
                    Error::Timeout(_) => "context deadline exceeded".to_owned(),
                    Error::Status(s) => s.message().to_owned(),
                    e => e.to_string(),
                };
                eprintln!("Failed to get the hash of endpoint {ep} ({e})");
                failed = Some(e);
            }
        }
    }
    emit(
        sink,
        &match fmt {
            Format::Json => output::json_line(&output::Json::Arr(json)),
            Format::Table => output::table(&["ENDPOINT", "HASH"], &rows).into_bytes(),
            Format::Simple => rows
                .iter()
                .map(|r| r.join(", ") + "\n")
                .collect::<String>()
                .into_bytes(),
        },
    )?;
    match failed {
        Some(e) => Err(Error::InvalidArgument(e)),
        None => Ok(0),
    }
}

/// Awaits every future, in order of the input.
async fn futures_join<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = fs.map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    // Polled together: each is a request in flight on its own connection.
    let mut pending: Vec<Option<std::pin::Pin<Box<F>>>> = handles.into_iter().map(Some).collect();
    let mut done: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (slot, d) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *d = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    for d in done {
        out.push(d.expect("every future finished"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_nanos(1_598_129)), "1.598129ms");
        assert_eq!(
            go_duration(Duration::from_nanos(5_000_608_889)),
            "5.000608889s"
        );
        assert_eq!(go_duration(Duration::from_millis(3)), "3ms");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_nanos(12)), "12ns");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}
