//! Measures the disk under a directory: raw fdatasync rate (write 4 KiB, then
//! fdatasync, in a loop) and WAL throughput with group commit (N records of
//! 256 bytes per sync, for several N), through the same `RealVfs` the server
//! uses.
//!
//! `cargo run -p synod-storage --release --example wal_bench -- --dir /tmp/x
//!  [--seconds S] [--record-size B] [--batches 1,8,64,512]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use synod_storage::{RealVfs, Vfs, VfsFile, Wal, WalConfig};

struct Args {
    dir: PathBuf,
    seconds: f64,
    record_size: usize,
    batches: Vec<usize>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::new(),
        seconds: 2.0,
        record_size: 256,
        batches: vec![1, 8, 64, 512],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value()?),
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--record-size" => {
                args.record_size = value()?
                    .parse()
                    .map_err(|e| format!("--record-size: {e}"))?
            }
            "--batches" => {
                args.batches = value()?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--batches: {e}"))?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.dir.as_os_str().is_empty() {
        return Err("--dir DIR is required".into());
    }
    if args.batches.iter().any(|&b| b == 0 || b > 100_000) || args.seconds <= 0.0 {
        return Err("batches must be in 1..=100000 and seconds > 0".into());
    }
    Ok(args)
}

fn raw_fdatasync(dir: &Path, seconds: f64) -> Result<f64, Box<dyn std::error::Error>> {
    const SLOTS: u64 = 1024;
    let vfs = RealVfs::new();
    let path = dir.join("raw-fdatasync.bin");
    if vfs.exists(&path)? {
        vfs.remove(&path)?;
    }
    let mut f = vfs.create(&path)?;
    // Allocate the blocks first so the loop measures overwrite + fdatasync.
    f.write_at(0, &vec![0u8; (SLOTS * 4096) as usize])?;
    f.sync_data()?;
    let block = vec![0xa5u8; 4096];
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let mut n = 0u64;
    while start.elapsed() < limit {
        f.write_at((n % SLOTS) * 4096, &block)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(f);
    vfs.remove(&path)?;
    Ok(rate)
}

struct WalRun {
    records_per_s: f64,
    mb_per_s: f64,
    syncs_per_s: f64,
    recovered: usize,
    recovery_ms: f64,
}

fn wal_run(
    dir: &Path,
    batch: usize,
    record_size: usize,
    seconds: f64,
) -> Result<WalRun, Box<dyn std::error::Error>> {
    let vfs = RealVfs::new();
    let wal_dir = dir.join(format!("wal-bench-{batch}"));
    if vfs.exists(&wal_dir)? {
        for name in vfs.list(&wal_dir)? {
            vfs.remove(&wal_dir.join(name))?;
        }
    }
    let cfg = WalConfig::default();
    let (mut wal, _) = Wal::open(vfs.clone(), &wal_dir, cfg)?;
    let payload = vec![0x5au8; record_size];
    let batch_refs: Vec<(u8, &[u8])> = (0..batch).map(|_| (1u8, &payload[..])).collect();
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let (mut records, mut syncs) = (0u64, 0u64);
    while start.elapsed() < limit {
        wal.append(&batch_refs)?;
        wal.sync()?;
        records += batch as u64;
        syncs += 1;
        // Keep the disk footprint bounded: drop sealed segments.
        if wal.segments().len() > 2 {
            wal.truncate_prefix(wal.durable_lsn())?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(wal);
    // Recovery: reopen and read back everything still on disk.
    let t = Instant::now();
    let (wal, recs) = Wal::open(vfs.clone(), &wal_dir, cfg)?;
    let recovery_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(wal);
    for name in vfs.list(&wal_dir)? {
        vfs.remove(&wal_dir.join(name))?;
    }
    Ok(WalRun {
        records_per_s: records as f64 / secs,
        mb_per_s: records as f64 * record_size as f64 / secs / 1e6,
        syncs_per_s: syncs as f64 / secs,
        recovered: recs.len(),
        recovery_ms,
    })
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wal_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("wal_bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    RealVfs::new().create_dir_all(&args.dir)?;
    let raw = raw_fdatasync(&args.dir, args.seconds)?;
    println!("dir {}", args.dir.display());
    println!("raw 4 KiB write + fdatasync: {raw:.0} syncs/s");
    println!(
        "{:>7} {:>12} {:>9} {:>9} {:>12} {:>14} {:>22}",
        "batch", "records/s", "MB/s", "syncs/s", "sync ratio", "records/raw", "recovery"
    );
    for &batch in &args.batches {
        let r = wal_run(&args.dir, batch, args.record_size, args.seconds)?;
        println!(
            "{:>7} {:>12.0} {:>9.2} {:>9.0} {:>12.2} {:>14.1} {:>10} recs {:>5.0} ms",
            batch,
            r.records_per_s,
            r.mb_per_s,
            r.syncs_per_s,
            r.syncs_per_s / raw,
            r.records_per_s / raw,
            r.recovered,
            r.recovery_ms
        );
    }
    Ok(())
}
