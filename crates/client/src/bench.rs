//! `synod bench`: a load generator speaking the etcd v3 API, so one run can
//! target synod or etcd alike.
//!
//! Many logical clients (tokio tasks) share a few HTTP/2 connections
//! (`--conns`, spread round-robin over the endpoints), each client issuing
//! one request at a time (closed loop) or at its share of `--rate` requests
//! per second (open loop, where latency is measured from the moment a request
//! was *due*, so a stalled server cannot hide its queueing delay). Latencies
//! go into one HDR histogram per client, merged at the end. A progress line
//! goes to stderr each second, and the generator reports the CPU time it used
//! itself (getrusage), so a reader can tell whether it was the bottleneck.
//!
//! Workloads: `put` (over `--keys` keys, or always-new keys with
//! `--new-keys`), `get` (linearizable), `sget` (serializable), `txn`
//! (compare-and-set: value equals, then put), `mixed` (`--read-ratio` gets,
//! the rest puts), `lease` (grant then revoke, as one operation) and `watch`
//! (`--watchers` watchers on one prefix, puts at `--rate`; every event's
//! delay from the put's start is measured and every expected event must
//! arrive).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::lease_client::LeaseClient;
use synod_proto::etcdserverpb::{
    compare, request_op, Compare, LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest, WatchCreateRequest,
};
use tonic::transport::Channel;

use crate::cli::parse_duration;
use crate::client::{prefix_end, Client, ClientOptions};
use crate::error::{Error, Result};
use crate::output::Format;

/// Most logical clients.
pub const MAX_CLIENTS: usize = 100_000;
/// Most connections.
pub const MAX_CONNS: usize = 1_024;
/// Most watchers.
pub const MAX_WATCHERS: usize = 1_000_000;
/// Largest key or value.
pub const MAX_ITEM_SIZE: usize = 16 * 1024 * 1024;
/// Highest latency the histograms track (longer ones are clamped), in µs.
const MAX_LATENCY_US: u64 = 120_000_000;
/// Bytes of a watch workload value that carry the put's start time.
const STAMP_BYTES: usize = 20;
/// Clients used to load keys before read workloads.
const PREFILL_CLIENTS: usize = 64;
/// How long the watch workload waits for late events after the last put.
const WATCH_DRAIN: Duration = Duration::from_secs(10);

/// What `synod bench` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Puts.
    Put,
    /// Linearizable single-key gets.
    Get,
    /// Serializable single-key gets.
    Sget,
    /// Compare-and-set transactions.
    Txn,
    /// Watch fan-out.
    Watch,
    /// Gets and puts.
    Mixed,
    /// Lease grant and revoke.
    Lease,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::Sget => "sget",
            Workload::Txn => "txn",
            Workload::Watch => "watch",
            Workload::Mixed => "mixed",
            Workload::Lease => "lease",
        }
    }
}

/// `synod bench` flags.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Cluster endpoints, comma-separated HOST:PORT (default 127.0.0.1:2379).
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Option<Vec<String>>,
    /// What to run.
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    pub workload: Workload,
    /// Logical clients (each has one request in flight).
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// How long to run, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many operations (whichever of this and --duration comes first).
    #[arg(long)]
    pub total: Option<u64>,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub value_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Write a never-written key each time (put workload).
    #[arg(long)]
    pub new_keys: bool,
    /// Target operations per second over all clients (open loop); 0: as fast as answered.
    /// The watch workload defaults to 100 puts/s.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Watchers (watch workload).
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Watchers per watch stream (watch workload).
    #[arg(long, default_value_t = 100)]
    pub watchers_per_stream: usize,
    /// Share of gets in the mixed workload.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Skip writing the keys before read and txn workloads.
    #[arg(long)]
    pub no_prefill: bool,
    /// Time allowed for one request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Output format (simple or json).
    #[arg(short = 'w', long = "write-out", value_enum, default_value_t = Format::Simple)]
    pub write_out: Format,
}

/// A validated plan.
#[derive(Clone, Debug)]
struct Plan {
    args: BenchArgs,
    key_digits: usize,
    prefix: u8,
}

impl BenchArgs {
    fn validate(&self) -> Result<Plan> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            return bad(format!("--clients must be 1..={MAX_CLIENTS}"));
        }
        if self.conns == 0 || self.conns > MAX_CONNS {
            return bad(format!("--conns must be 1..={MAX_CONNS}"));
        }
        if self.keys == 0 {
            return bad("--keys must be at least 1".into());
        }
        if self.key_size > MAX_ITEM_SIZE || self.value_size > MAX_ITEM_SIZE {
            return bad(format!(
                "keys and values are limited to {MAX_ITEM_SIZE} bytes"
            ));
        }
        let key_digits = self.key_size.saturating_sub(1);
        let needed = (self.keys - 1).to_string().len();
        if key_digits < needed {
            return bad(format!(
                "--key-size {} is too small for {} keys (needs {})",
                self.key_size,
                self.keys,
                needed + 1
            ));
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return bad("--rate must be a non-negative number".into());
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return bad("--read-ratio must be between 0 and 1".into());
        }
        if self.workload == Workload::Watch
            && (self.watchers == 0
                || self.watchers > MAX_WATCHERS
                || self.watchers_per_stream == 0
                || self.watchers.div_ceil(self.watchers_per_stream) > MAX_CONNS)
        {
            return bad(format!(
                "--watchers must be 1..={MAX_WATCHERS}, spread over at most {MAX_CONNS} streams (--watchers-per-stream)"
            ));
        }
        if self.duration.is_zero() && self.total.is_none() {
            return bad("give a non-zero --duration or a --total".into());
        }
        Ok(Plan {
            args: self.clone(),
            key_digits,
            prefix: if self.workload == Workload::Watch {
                b'w'
            } else {
                b'b'
            },
        })
    }
}

impl Plan {
    /// Key number `i` (wrapping when it has more digits than the key holds).
    fn key(&self, i: u64) -> Vec<u8> {
        let width = self.key_digits;
        let i = if width < 20 {
            i % 10u64.pow(width as u32)
        } else {
            i
        };
        let mut k = Vec::with_capacity(width + 1);
        k.push(self.prefix);
        k.extend_from_slice(format!("{i:0width$}").as_bytes());
        k
    }

    fn value(&self) -> Vec<u8> {
        vec![b'v'; self.args.value_size]
    }
}

/// splitmix64: a tiny seeded generator for key choice (one per client).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Counters shared by the clients and the progress line.
#[derive(Default)]
struct Shared {
    ops: AtomicU64,
    errors: AtomicU64,
    issued: AtomicU64,
    fresh: AtomicU64,
    stop: AtomicBool,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, e: &tonic::Status) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_error.lock().expect("not poisoned");
        if f.is_none() {
            *f = Some(format!("{:?}: {}", e.code(), e.message()));
        }
    }
}

/// Process CPU time (user + system) so far, from getrusage.
pub fn cpu_seconds() -> f64 {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => f64::NAN,
    }
}

fn percentiles_ms(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    if h.is_empty() {
        return json!({"p50": null, "p90": null, "p99": null, "p999": null, "max": null, "mean": null});
    }
    json!({
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
    })
}

async fn connect_all(endpoints: &[String], plan: &Plan) -> Result<Vec<Client>> {
    let mut conns = Vec::with_capacity(plan.args.conns);
    for i in 0..plan.args.conns {
        let opts = ClientOptions {
            request_timeout: plan.args.request_timeout,
            max_attempts: 1,
            start_at: i,
            ..ClientOptions::default()
        };
        conns.push(Client::connect(endpoints, opts).await?);
    }
    Ok(conns)
}

/// Writes every key once (before read and txn workloads).
async fn prefill(conns: &[Client], plan: &Plan) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..PREFILL_CLIENTS.min(plan.args.keys as usize) {
        let mut kv = conns[c % conns.len()].kv();
        let next = next.clone();
        let plan = plan.clone();
        tasks.push(tokio::spawn(async move {
            let value = plan.value();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.args.keys {
                    return Ok::<(), tonic::Status>(());
                }
                kv.put(PutRequest {
                    key: plan.key(i),
                    value: value.clone(),
                    ..Default::default()
                })
                .await?;
            }
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| Error::InvalidArgument(format!("prefill task failed: {e}")))??;
    }
    Ok(())
}

/// One operation of a closed or open loop workload.
async fn one_op(
    plan: &Plan,
    kv: &mut KvClient<Channel>,
    lease: &mut LeaseClient<Channel>,
    rng: &mut Rng,
    shared: &Shared,
    value: &[u8],
) -> std::result::Result<(), tonic::Status> {
    let a = &plan.args;
    let pick = |rng: &mut Rng| {
        if a.new_keys {
            plan.key(shared.fresh.fetch_add(1, Ordering::Relaxed))
        } else {
            plan.key(rng.below(a.keys))
        }
    };
    let put = |key: Vec<u8>| PutRequest {
        key,
        value: value.to_vec(),
        ..Default::default()
    };
    let get = |key: Vec<u8>, serializable: bool| RangeRequest {
        key,
        serializable,
        ..Default::default()
    };
    match a.workload {
        Workload::Put | Workload::Watch => {
            kv.put(put(pick(rng))).await?;
        }
        Workload::Get => {
            kv.range(get(pick(rng), false)).await?;
        }
        Workload::Sget => {
            kv.range(get(pick(rng), true)).await?;
        }
        Workload::Mixed => {
            if rng.unit() < a.read_ratio {
                kv.range(get(pick(rng), false)).await?;
            } else {
                kv.put(put(pick(rng))).await?;
            }
        }
        Workload::Txn => {
            let key = pick(rng);
            kv.txn(TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Value as i32,
                    key: key.clone(),
                    target_union: Some(compare::TargetUnion::Value(value.to_vec())),
                    range_end: vec![],
                }],
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(put(key.clone()))),
                }],
                failure: vec![RequestOp {
                    request: Some(request_op::Request::RequestRange(get(key, false))),
                }],
            })
            .await?;
        }
        Workload::Lease => {
            let g = lease
                .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
                .await?
                .into_inner();
            lease.lease_revoke(LeaseRevokeRequest { id: g.id }).await?;
        }
    }
    Ok(())
}

struct ClientResult {
    hist: Histogram<u64>,
}

/// Runs the closed or open loop clients until the deadline or the total.
async fn run_clients(
    conns: &[Client],
    plan: &Plan,
    shared: &Arc<Shared>,
    start: Instant,
) -> Result<Histogram<u64>> {
    let a = &plan.args;
    let deadline = start + a.duration;
    let per_client_interval = if a.rate > 0.0 {
        Some(Duration::from_secs_f64(a.clients as f64 / a.rate))
    } else {
        None
    };
    let mut tasks = Vec::with_capacity(a.clients);
    for c in 0..a.clients {
        let client = conns[c % conns.len()].clone();
        let plan = plan.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut kv = client.kv();
            let mut lease = LeaseClient::new(client.current_channel());
            let mut rng = Rng(0x5eed_0000 + c as u64);
            let mut hist = histogram();
            let value = if plan.args.workload == Workload::Watch {
                Vec::new()
            } else {
                plan.value()
            };
            // Open loop: client c's k-th request is due at start + offset + k·interval.
            let offset =
                per_client_interval.map(|iv| iv.mul_f64(c as f64 / plan.args.clients as f64));
            let mut k: u32 = 0;
            loop {
                if shared.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    break;
                }
                if let Some(total) = plan.args.total {
                    if shared.issued.fetch_add(1, Ordering::Relaxed) >= total {
                        break;
                    }
                }
                let due = match (per_client_interval, offset) {
                    (Some(iv), Some(off)) => {
                        let due = start + off + iv * k;
                        k = k.saturating_add(1);
                        if due >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    _ => Instant::now(),
                };
                let timeout = plan.args.request_timeout;
                let r = tokio::time::timeout(
                    timeout,
                    one_op(&plan, &mut kv, &mut lease, &mut rng, &shared, &value),
                )
                .await;
                match r {
                    Ok(Ok(())) => {
                        let us = due.elapsed().as_micros().max(1) as u64;
                        hist.saturating_record(us.min(MAX_LATENCY_US));
                        shared.ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(s)) => shared.error(&s),
                    Err(_) => shared.error(&tonic::Status::deadline_exceeded("client timeout")),
                }
            }
            ClientResult { hist }
        }));
    }
    let mut merged = histogram();
    for t in tasks {
        let r = t
            .await
            .map_err(|e| Error::InvalidArgument(format!("bench client failed: {e}")))?;
        merged
            .add(&r.hist)
            .map_err(|e| Error::InvalidArgument(format!("histogram merge: {e}")))?;
    }
    Ok(merged)
}

fn spawn_progress(
    shared: Arc<Shared>,
    name: &'static str,
    start: Instant,
    quiet: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return;
        }
        let mut last = 0u64;
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        loop {
            tick.tick().await;
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let ops = shared.ops.load(Ordering::Relaxed);
            eprintln!(
                "bench {name}: {:>4.0}s {ops} ops, {} ops/s, {} errors",
                start.elapsed().as_secs_f64(),
                ops - last,
                shared.errors.load(Ordering::Relaxed)
            );
            last = ops;
        }
    })
}

/// Runs a benchmark and returns its report (the object `-w json` prints).
pub async fn report(endpoints: &[String], args: &BenchArgs) -> Result<Value> {
    let plan = args.validate()?;
    execute(endpoints, &plan).await
}

/// Runs `synod bench`; prints the result; returns the exit status.
pub async fn run(endpoints: &[String], args: BenchArgs) -> Result<u8> {
    let plan = args.validate()?;
    let report = execute(endpoints, &plan).await?;
    let ok = report
        .get("all_delivered")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if plan.args.write_out == Format::Json {
        println!("{report}");
    } else {
        print!("{}", summary(&report));
    }
    Ok(if ok { 0 } else { 1 })
}

/// Runs the benchmark and returns its report (the `-w json` object).
async fn execute(endpoints: &[String], plan: &Plan) -> Result<Value> {
    let a = &plan.args;
    let conns = connect_all(endpoints, plan).await?;
    if !a.no_prefill
        && matches!(
            a.workload,
            Workload::Get | Workload::Sget | Workload::Txn | Workload::Mixed
        )
    {
        prefill(&conns, plan).await?;
    }
    if a.workload == Workload::Watch {
        return watch_bench(endpoints, &conns, plan).await;
    }
    let shared = Arc::new(Shared::default());
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let progress = spawn_progress(shared.clone(), a.workload.name(), start, a.quiet);
    let hist = run_clients(&conns, plan, &shared, start).await?;
    let elapsed = start.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    progress.abort();
    let cpu = cpu_seconds() - cpu0;
    let ops = shared.ops.load(Ordering::Relaxed);
    let mut report = base_report(plan, endpoints, ops, &shared, elapsed, cpu);
    report["latency_ms"] = percentiles_ms(&hist);
    Ok(report)
}

fn base_report(
    plan: &Plan,
    endpoints: &[String],
    ops: u64,
    shared: &Shared,
    elapsed: f64,
    cpu: f64,
) -> Value {
    let a = &plan.args;
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "workload": a.workload.name(),
        "clients": a.clients,
        "conns": a.conns,
        "endpoints": endpoints,
        "ops": ops,
        "errors": shared.errors.load(Ordering::Relaxed),
        "first_error": shared.first_error.lock().expect("not poisoned").clone(),
        "duration_s": round(elapsed),
        "ops_per_sec": round(ops as f64 / elapsed.max(1e-9)),
        "key_size": a.key_size,
        "value_size": if a.workload == Workload::Watch { a.value_size.max(STAMP_BYTES) } else { a.value_size },
        "keys": a.keys,
        "new_keys": a.new_keys,
        "rate": a.rate,
        "bench_cpu_s": round(cpu),
        "bench_cpu_per_1000_ops_s": if ops > 0 { round(cpu * 1000.0 / ops as f64 * 1000.0) / 1000.0 } else { 0.0 },
        "bench_cpu_util": round(cpu / elapsed.max(1e-9)),
    })
}

/// Watch fan-out: W watchers on the prefix, puts at the rate, every event timed.
async fn watch_bench(endpoints: &[String], conns: &[Client], plan: &Plan) -> Result<Value> {
    let a = &plan.args;
    let base = Instant::now();
    let prefix = vec![plan.prefix];
    let streams = a.watchers.div_ceil(a.watchers_per_stream);
    let created = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let create = WatchCreateRequest {
        key: prefix.clone(),
        range_end: prefix_end(&prefix),
        ..Default::default()
    };
    let mut readers = Vec::with_capacity(streams);
    for s in 0..streams {
        let n = a
            .watchers_per_stream
            .min(a.watchers - s * a.watchers_per_stream);
        // Each watch stream gets a connection of its own (see the window
        // sizes in `client`): a busy stream cannot starve the puts, and its
        // unread events stay within one connection's small-frame budget.
        let client = Client::connect(
            endpoints,
            ClientOptions {
                request_timeout: a.request_timeout,
                max_attempts: 1,
                start_at: s,
                ..ClientOptions::default()
            },
        )
        .await?;
        let mut ws = client.watch_stream(create.clone()).await?;
        for _ in 1..n {
            ws.create(create.clone()).await?;
        }
        let (created, delivered, expected, done) = (
            created.clone(),
            delivered.clone(),
            expected.clone(),
            done.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut bad = 0u64;
            loop {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let r = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                    Err(_) => continue,
                    Ok(Ok(Some(r))) => r,
                    Ok(Ok(None)) | Ok(Err(_)) => break,
                };
                if r.created {
                    created.fetch_add(1, Ordering::Relaxed);
                }
                let now = base.elapsed().as_nanos() as u64;
                for e in &r.events {
                    let stamp =
                        e.kv.as_ref()
                            .and_then(|kv| kv.value.get(..STAMP_BYTES))
                            .and_then(|b| std::str::from_utf8(b).ok())
                            .and_then(|s| s.parse::<u64>().ok());
                    match stamp {
                        Some(t) => {
                            let us = (now.saturating_sub(t) / 1000).max(1);
                            hist.saturating_record(us.min(MAX_LATENCY_US));
                        }
                        None => bad += 1,
                    }
                }
                let total = delivered.fetch_add(r.events.len() as u64, Ordering::Relaxed)
                    + r.events.len() as u64;
                if total >= expected.load(Ordering::Relaxed) {
                    done.store(true, Ordering::Relaxed);
                }
            }
            (hist, bad)
        }));
    }
    // Every watcher must be in place before the first put.
    let wait_until = Instant::now() + Duration::from_secs(60);
    while created.load(Ordering::Relaxed) < a.watchers as u64 {
        if Instant::now() > wait_until {
            done.store(true, Ordering::Relaxed);
            return Err(Error::Timeout(Duration::from_secs(60)));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Puts at the rate; each value starts with its start time (ns since `base`).
    let rate = if a.rate > 0.0 { a.rate } else { 100.0 };
    let shared = Arc::new(Shared::default());
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let deadline = start + a.duration;
    let interval = Duration::from_secs_f64(a.clients as f64 / rate);
    let progress = spawn_progress(shared.clone(), "watch", start, a.quiet);
    let mut putters = Vec::with_capacity(a.clients);
    for c in 0..a.clients {
        let mut kv = conns[c % conns.len()].kv();
        let plan = plan.clone();
        let shared = shared.clone();
        putters.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut rng = Rng(0x3a7c_0000 + c as u64);
            let off = interval.mul_f64(c as f64 / plan.args.clients as f64);
            let mut k = 0u32;
            let size = plan.args.value_size.max(STAMP_BYTES);
            loop {
                let due = start + off + interval * k;
                k = k.saturating_add(1);
                if due >= deadline {
                    break;
                }
                if let Some(total) = plan.args.total {
                    if shared.issued.fetch_add(1, Ordering::Relaxed) >= total {
                        break;
                    }
                }
                tokio::time::sleep_until(due.into()).await;
                let stamp = due.saturating_duration_since(base).as_nanos() as u64;
                let mut value = format!("{stamp:0width$}", width = STAMP_BYTES).into_bytes();
                value.resize(size, b'v');
                let req = PutRequest {
                    key: plan.key(rng.below(plan.args.keys)),
                    value,
                    ..Default::default()
                };
                match tokio::time::timeout(plan.args.request_timeout, kv.put(req)).await {
                    Ok(Ok(_)) => {
                        hist.saturating_record(
                            (due.elapsed().as_micros() as u64).clamp(1, MAX_LATENCY_US),
                        );
                        shared.ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(s)) => shared.error(&s),
                    Err(_) => shared.error(&tonic::Status::deadline_exceeded("client timeout")),
                }
            }
            hist
        }));
    }
    let mut put_hist = histogram();
    for p in putters {
        let h = p
            .await
            .map_err(|e| Error::InvalidArgument(format!("putter failed: {e}")))?;
        put_hist
            .add(&h)
            .map_err(|e| Error::InvalidArgument(format!("histogram merge: {e}")))?;
    }
    let put_elapsed = start.elapsed().as_secs_f64();
    let puts = shared.ops.load(Ordering::Relaxed);
    let want = puts * a.watchers as u64;
    expected.store(want, Ordering::Relaxed);
    if delivered.load(Ordering::Relaxed) >= want {
        done.store(true, Ordering::Relaxed);
    }
    let drain_until = Instant::now() + WATCH_DRAIN;
    while !done.load(Ordering::Relaxed) && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.store(true, Ordering::Relaxed);
    let mut delay = histogram();
    let mut unstamped = 0;
    for r in readers {
        let (h, bad) = r
            .await
            .map_err(|e| Error::InvalidArgument(format!("watch reader failed: {e}")))?;
        delay
            .add(&h)
            .map_err(|e| Error::InvalidArgument(format!("histogram merge: {e}")))?;
        unstamped += bad;
    }
    shared.stop.store(true, Ordering::Relaxed);
    progress.abort();
    let cpu = cpu_seconds() - cpu0;
    let got = delivered.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let mut report = base_report(plan, conns[0].endpoints(), puts, &shared, put_elapsed, cpu);
    report["latency_ms"] = percentiles_ms(&put_hist);
    report["watchers"] = json!(a.watchers);
    report["watch_streams"] = json!(streams);
    report["events_expected"] = json!(want);
    report["events_delivered"] = json!(got);
    report["events_unstamped"] = json!(unstamped);
    // A put that failed with an unknown outcome may still have been applied,
    // so with errors only a lower bound is known.
    report["all_delivered"] = json!(if errors == 0 {
        got == want
    } else {
        got >= want
    });
    report["events_per_sec"] = json!((got as f64 / put_elapsed.max(1e-9)).round());
    report["delay_ms"] = percentiles_ms(&delay);
    report["rate"] = json!(rate);
    Ok(report)
}

/// The human-readable form of a report.
pub fn summary(r: &Value) -> String {
    let lat = |v: &Value| {
        format!(
            "p50 {} p90 {} p99 {} p99.9 {} max {} ms",
            v["p50"], v["p90"], v["p99"], v["p999"], v["max"]
        )
    };
    let mut s = format!(
        "workload {}: {} clients over {} connections, {} s\n\
         ops {} ({} ops/s), errors {}\n\
         latency {}\n\
         bench CPU {} s ({} of a core, {} s per 1000 ops)\n",
        r["workload"].as_str().unwrap_or("?"),
        r["clients"],
        r["conns"],
        r["duration_s"],
        r["ops"],
        r["ops_per_sec"],
        r["errors"],
        lat(&r["latency_ms"]),
        r["bench_cpu_s"],
        r["bench_cpu_util"],
        r["bench_cpu_per_1000_ops_s"],
    );
    if let Some(e) = r["first_error"].as_str() {
        s.push_str(&format!("first error: {e}\n"));
    }
    if r.get("watchers").is_some() {
        s.push_str(&format!(
            "watchers {}: events {} of {} delivered ({}), {} events/s\nput-to-event delay {}\n",
            r["watchers"],
            r["events_delivered"],
            r["events_expected"],
            if r["all_delivered"].as_bool() == Some(true) {
                "all"
            } else {
                "MISSING EVENTS"
            },
            r["events_per_sec"],
            lat(&r["delay_ms"]),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        b: BenchArgs,
    }

    fn args(extra: &[&str]) -> BenchArgs {
        T::try_parse_from(std::iter::once("bench").chain(extra.iter().copied()))
            .unwrap()
            .b
    }

    #[test]
    fn keys_have_the_asked_size_and_stay_distinct() {
        let p = args(&["--key-size", "8", "--keys", "1000"])
            .validate()
            .unwrap();
        assert_eq!(p.key(7), b"b0000007".to_vec());
        assert_eq!(p.key(999).len(), 8);
        assert_ne!(p.key(1), p.key(2));
    }

    #[test]
    fn bad_plans_are_refused() {
        assert!(args(&["--key-size", "3", "--keys", "1000"])
            .validate()
            .is_err());
        assert!(args(&["--clients", "0"]).validate().is_err());
        assert!(args(&["--read-ratio", "1.5"]).validate().is_err());
        assert!(args(&["--rate=-1"]).validate().is_err());
        assert!(args(&["--workload", "watch", "--watchers", "0"])
            .validate()
            .is_err());
        assert!(args(&["--duration", "0s"]).validate().is_err());
        assert!(args(&["--duration", "0s", "--total", "10"])
            .validate()
            .is_ok());
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = percentiles_ms(&h);
        let p50 = p["p50"].as_f64().unwrap();
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        let max = p["max"].as_f64().unwrap();
        assert!((999.0..=1001.0).contains(&max), "{max}");
    }

    #[test]
    fn cpu_time_is_measured() {
        let a = cpu_seconds();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds() > a);
    }
}
