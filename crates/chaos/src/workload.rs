//! The register workload: a few clients reading, writing,
//! comparing-and-setting and deleting a handful of shared keys through the
//! etcd API, every operation recorded in the history format `synod check`
//! reads (one monotonic clock of this process; an unknown outcome retires
//! the client id). The crash loop test and `synod chaos` both run it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use synod_check::{MonotonicClock, Op, OpKind, Recorder};
use synod_client::{Client, ClientOptions, Error as ClientError};
use synod_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use synod_proto::etcdserverpb::{
    request_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

/// A small seeded generator (SplitMix64): schedules are functions of a seed.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the bias is negligible for small n).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// How the workload runs.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Concurrent clients.
    pub workers: usize,
    /// Keys they share (few, so operations contend).
    pub keys: usize,
    /// Prefix of every key.
    pub prefix: String,
    /// Time allowed for one operation; past it the outcome is unknown.
    pub op_timeout: Duration,
}

/// What the clients share: the recorder and a few counters.
pub struct Shared {
    rec: Mutex<Recorder>,
    /// The clock of every recorded time.
    pub clock: MonotonicClock,
    stop: AtomicBool,
    acked_writes: AtomicU64,
}

impl Shared {
    fn rec(&self) -> MutexGuard<'_, Recorder> {
        self.rec
            .lock()
            .expect("no worker panicked holding the recorder")
    }

    /// Writes acknowledged so far.
    pub fn acked_writes(&self) -> u64 {
        self.acked_writes.load(Ordering::Relaxed)
    }
}

/// A running workload.
pub struct Workload {
    cfg: WorkloadConfig,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The key of index `k`.
fn key_name(prefix: &str, k: usize) -> String {
    format!("{prefix}{k}")
}

fn value_of(kvs: &[synod_proto::mvccpb::KeyValue]) -> Option<String> {
    kvs.first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

/// A worker's pause after a failed or unknown operation: with every member
/// down, errors come back at once, and thousands of unknown writes a second
/// would say nothing more and slow the linearizability check.
const BACKOFF: Duration = Duration::from_millis(50);

/// The outcome of one write as recorded: `Some(())` known, `None` unknown.
/// Every error of a write is an unknown outcome: a timeout or a lost
/// connection may hide a write that was taken in, and even a refusal such as
/// "no leader" can come after an earlier attempt inside the server was
/// proposed, so no refusal is certain enough for `ok:false`.
fn write_outcome<T>(r: &Result<T, ClientError>) -> Option<()> {
    r.as_ref().ok().map(|_| ())
}

impl Workload {
    /// Starts `cfg.workers` clients over `endpoints` on the current tokio
    /// runtime, their choices drawn from `seed`.
    pub fn start(endpoints: &[String], cfg: WorkloadConfig, seed: u64) -> Workload {
        let shared = Arc::new(Shared {
            rec: Mutex::new(Recorder::new()),
            clock: MonotonicClock::new(),
            stop: AtomicBool::new(false),
            acked_writes: AtomicU64::new(0),
        });
        let tasks = (0..cfg.workers)
            .map(|w| {
                tokio::spawn(worker(
                    w,
                    endpoints.to_vec(),
                    cfg.clone(),
                    seed,
                    shared.clone(),
                ))
            })
            .collect();
        Workload { cfg, shared, tasks }
    }

    /// What the clients share.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Stops the clients and waits for them.
    pub async fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            t.await.expect("a workload client panicked");
        }
    }

    /// After [`Workload::stop`]: reads every key linearizably through
    /// `client` (recorded too). Answers the final values, or the first key
    /// that could not be read.
    pub async fn final_reads(
        &self,
        client: &Client,
    ) -> Result<BTreeMap<String, Option<String>>, String> {
        let sh = &self.shared;
        let me = sh.rec().fresh_client();
        let mut finals = BTreeMap::new();
        for k in 0..self.cfg.keys {
            let key = key_name(&self.cfg.prefix, k);
            let p = sh
                .rec()
                .invoke(me, OpKind::Get, &key, None, None, sh.clock.now());
            let res = client
                .range(RangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                })
                .await;
            match res {
                Ok(resp) => {
                    let v = value_of(&resp.kvs);
                    sh.rec().complete(p, true, v.clone(), sh.clock.now());
                    finals.insert(key, v);
                }
                Err(e) => {
                    sh.rec().complete(p, false, None, sh.clock.now());
                    return Err(format!("final read of {key:?} failed: {e}"));
                }
            }
        }
        Ok(finals)
    }

    /// The history recorded so far (operations still running as unknown).
    pub fn history(&self) -> Vec<Op> {
        self.shared.rec().history()
    }
}

async fn worker(w: usize, endpoints: Vec<String>, cfg: WorkloadConfig, seed: u64, sh: Arc<Shared>) {
    let opts = ClientOptions {
        dial_timeout: Duration::from_millis(500),
        request_timeout: cfg.op_timeout,
        // One attempt: the history must say exactly what was sent, and a
        // repeated cas could report a comparison failure for a swap that
        // took effect the first time.
        max_attempts: 1,
        start_at: w,
        probe: false,
        ..ClientOptions::default()
    };
    let client = Client::connect(&endpoints, opts)
        .await
        .expect("endpoints parse");
    let mut rng = Rng(seed ^ (w as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut me = sh.rec().fresh_client();
    // What this worker last saw in each key (a guess for cas).
    let mut seen: BTreeMap<usize, Option<String>> = BTreeMap::new();
    let mut n = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        n += 1;
        let k = rng.below(cfg.keys as u64) as usize;
        let key = key_name(&cfg.prefix, k);
        let roll = rng.below(100);
        if roll < 30 {
            // Linearizable get.
            let p = sh
                .rec()
                .invoke(me, OpKind::Get, &key, None, None, sh.clock.now());
            let res = client
                .range(RangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                })
                .await;
            let failed = {
                let mut r = sh.rec();
                match res {
                    Ok(resp) => {
                        let v = value_of(&resp.kvs);
                        seen.insert(k, v.clone());
                        r.complete(p, true, v, sh.clock.now());
                        false
                    }
                    // A failed read constrains nothing; the client goes on.
                    Err(_) => {
                        r.complete(p, false, None, sh.clock.now());
                        true
                    }
                }
            };
            if failed {
                tokio::time::sleep(BACKOFF).await;
            }
            continue;
        }
        let value = format!("w{w}-{n}");
        let put = |key: &str, value: &str| PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        };
        let (p, res) = if roll < 65 {
            let p = sh.rec().invoke(
                me,
                OpKind::Put,
                &key,
                Some(value.clone()),
                None,
                sh.clock.now(),
            );
            let res = client.put(put(&key, &value)).await;
            (p, write_outcome(&res).map(|()| true))
        } else if roll < 95 {
            // Compare-and-set on what this worker last saw (or "absent").
            let expected = if rng.below(5) == 0 {
                None
            } else {
                seen.get(&k).cloned().flatten()
            };
            let p = sh.rec().invoke(
                me,
                OpKind::Cas,
                &key,
                Some(value.clone()),
                expected.clone(),
                sh.clock.now(),
            );
            let compare = match &expected {
                Some(v) => Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Value as i32,
                    key: key.clone().into_bytes(),
                    target_union: Some(TargetUnion::Value(v.clone().into_bytes())),
                    range_end: Vec::new(),
                },
                None => Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Create as i32,
                    key: key.clone().into_bytes(),
                    target_union: Some(TargetUnion::CreateRevision(0)),
                    range_end: Vec::new(),
                },
            };
            let res = client
                .txn(TxnRequest {
                    compare: vec![compare],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(put(&key, &value))),
                    }],
                    failure: Vec::new(),
                })
                .await;
            (p, res.ok().map(|t| t.succeeded))
        } else {
            let p = sh
                .rec()
                .invoke(me, OpKind::Delete, &key, None, None, sh.clock.now());
            let res = client
                .delete_range(DeleteRangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                })
                .await;
            (p, write_outcome(&res).map(|()| true))
        };
        let unknown = {
            let mut r = sh.rec();
            match res {
                Some(ok) => {
                    r.complete(p, ok, None, sh.clock.now());
                    if ok {
                        sh.acked_writes.fetch_add(1, Ordering::Relaxed);
                        let written = if roll >= 95 { None } else { Some(value) };
                        seen.insert(k, written);
                    }
                    false
                }
                None => {
                    r.complete_unknown(p);
                    me = r.fresh_client();
                    true
                }
            }
        };
        if unknown {
            tokio::time::sleep(BACKOFF).await;
        }
    }
}
