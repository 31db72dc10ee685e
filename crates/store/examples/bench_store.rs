//! MVCC throughput of the two engines side by side: puts (batched into one
//! transaction per `--batch` puts, durable every `--durable-ms`), 1000-key
//! ranges, and compaction.
//!
//! `cargo run -p synod-store --release --example bench_store -- --keys 200000`
//!
//! Options: `--keys N` (200000), `--value-size B` (256), `--batch N` (256),
//! `--durable-ms MS` (100), `--ranges N` (200), `--cache-mb MB` (64),
//! `--dir PATH` (a temporary directory), `--engine mem|redb|both` (both).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use synod_kv::{Command, KvConfig, KvStore, MvccEngine, PutRequest, RangeRequest};
use synod_store::{commit, open, RedbEngine, StoreConfig};

struct Args {
    keys: u64,
    value_size: usize,
    batch: u64,
    durable_ms: u64,
    ranges: u64,
    cache_mb: usize,
    dir: Option<PathBuf>,
    engine: String,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        keys: 200_000,
        value_size: 256,
        batch: 256,
        durable_ms: 100,
        ranges: 200,
        cache_mb: 64,
        dir: None,
        engine: "both".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--keys" => a.keys = num()?.max(1000),
            "--value-size" => a.value_size = num()? as usize,
            "--batch" => a.batch = num()?.max(1),
            "--durable-ms" => a.durable_ms = num()?,
            "--ranges" => a.ranges = num()?.max(1),
            "--cache-mb" => a.cache_mb = num()? as usize,
            "--dir" => a.dir = Some(PathBuf::from(v)),
            "--engine" => a.engine = v,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

/// The i-th key of a fixed permutation of `0..n`, so puts do not arrive in key order.
fn key_of(i: u64, n: u64) -> Vec<u8> {
    let k = (i.wrapping_mul(2_654_435_761)) % n;
    format!("key{k:010}").into_bytes()
}

/// What one engine needs besides the store: commits, for the disk engine.
trait Committer<E: MvccEngine> {
    fn batch_done(&mut self, kv: &mut KvStore<E>, applied: u64);
    fn finish(&mut self, kv: &mut KvStore<E>, applied: u64);
}

struct NoCommit;
impl Committer<synod_kv::Mvcc> for NoCommit {
    fn batch_done(&mut self, _: &mut KvStore<synod_kv::Mvcc>, _: u64) {}
    fn finish(&mut self, _: &mut KvStore<synod_kv::Mvcc>, _: u64) {}
}

struct DiskCommit {
    every: Duration,
    last_durable: Instant,
    durable_commits: u64,
    commits: u64,
}

impl Committer<RedbEngine> for DiskCommit {
    fn batch_done(&mut self, kv: &mut KvStore<RedbEngine>, applied: u64) {
        let durable = self.last_durable.elapsed() >= self.every;
        commit(kv, applied, b"", durable).expect("commit");
        self.commits += 1;
        if durable {
            self.durable_commits += 1;
            self.last_durable = Instant::now();
        }
    }
    fn finish(&mut self, kv: &mut KvStore<RedbEngine>, applied: u64) {
        commit(kv, applied, b"", true).expect("commit");
        self.durable_commits += 1;
        self.last_durable = Instant::now();
    }
}

struct Row {
    engine: &'static str,
    put_per_s: f64,
    overwrite_per_s: f64,
    range_keys_per_s: f64,
    compact_revs_per_s: f64,
    note: String,
}

fn run<E: MvccEngine, C: Committer<E>>(
    name: &'static str,
    kv: &mut KvStore<E>,
    c: &mut C,
    a: &Args,
) -> Row {
    let value = vec![b'x'; a.value_size];
    let mut applied = 0u64;
    let phase = |kv: &mut KvStore<E>, c: &mut C, applied: &mut u64| {
        let t = Instant::now();
        for i in 0..a.keys {
            let p = PutRequest::new(key_of(i, a.keys), value.clone());
            kv.apply(&Command::Put(p)).0.expect("put");
            *applied += 1;
            if (*applied).is_multiple_of(a.batch) {
                c.batch_done(kv, *applied);
            }
        }
        c.finish(kv, *applied);
        a.keys as f64 / t.elapsed().as_secs_f64()
    };
    let put_per_s = phase(kv, c, &mut applied);
    let overwrite_per_s = phase(kv, c, &mut applied);

    // Ranges of 1000 consecutive keys from pseudo-random starting keys.
    let t = Instant::now();
    let mut seen = 0u64;
    for i in 0..a.ranges {
        let first = i.wrapping_mul(7919) % (a.keys - 1000);
        let r = kv
            .range(&RangeRequest {
                key: format!("key{first:010}").into_bytes(),
                range_end: format!("key{:010}", first + 1000).into_bytes(),
                ..Default::default()
            })
            .expect("range");
        assert_eq!(r.kvs.len(), 1000);
        seen += r.kvs.len() as u64;
    }
    let range_keys_per_s = seen as f64 / t.elapsed().as_secs_f64();

    // The first round of puts is now superseded: compaction removes it.
    let before = kv.engine().len();
    let t = Instant::now();
    let rev = kv.revision();
    kv.apply(&Command::Compact { revision: rev })
        .0
        .expect("compact");
    applied += 1;
    c.finish(kv, applied);
    let removed = before - kv.engine().len();
    let compact_revs_per_s = removed as f64 / t.elapsed().as_secs_f64();
    Row {
        engine: name,
        put_per_s,
        overwrite_per_s,
        range_keys_per_s,
        compact_revs_per_s,
        note: format!("{removed} revisions compacted"),
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_store: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "keys {} x {} B values, {} puts per transaction, durable every {} ms, cache {} MiB",
        a.keys, a.value_size, a.batch, a.durable_ms, a.cache_mb
    );
    let mut rows = Vec::new();
    if a.engine == "redb" || a.engine == "both" {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
        let path = dir.join("bench.redb");
        let _ = std::fs::remove_file(&path);
        let cfg = StoreConfig {
            cache_bytes: a.cache_mb << 20,
            verify_on_open: false,
        };
        let mut kv = open(&path, &cfg, KvConfig::default()).expect("open").kv;
        let mut c = DiskCommit {
            every: Duration::from_millis(a.durable_ms),
            last_durable: Instant::now(),
            durable_commits: 0,
            commits: 0,
        };
        let mut row = run("redb", &mut kv, &mut c, &a);
        let size = kv.engine().file_size().unwrap_or(0);
        row.note = format!(
            "{}; {} commits, {} durable; file {} MiB",
            row.note,
            c.commits,
            c.durable_commits,
            size >> 20
        );
        rows.push(row);
        drop(kv);
        let _ = std::fs::remove_file(&path);
    }
    let rss_after_redb = rss_kib();
    if a.engine == "mem" || a.engine == "both" {
        let mut kv = KvStore::new();
        rows.push(run("memory", &mut kv, &mut NoCommit, &a));
    }
    println!();
    println!(
        "| engine | put/s (new keys) | put/s (overwrites) | range keys/s (1000-key ranges) | compaction revisions/s | notes |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            r.engine,
            r.put_per_s,
            r.overwrite_per_s,
            r.range_keys_per_s,
            r.compact_revs_per_s,
            r.note
        );
    }
    println!();
    println!(
        "peak RSS after the redb run: {} MiB; at the end: {} MiB",
        rss_after_redb >> 10,
        rss_kib() >> 10
    );
}
