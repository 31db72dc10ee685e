//! Time to recover a node with a large store and a WAL tail: builds a data
//! dir (a store of `--store-mib` MiB at applied index A, and a WAL holding a
//! snapshot marker at A followed by `--wal-mib` MiB of put entries), then
//! times what a boot does: open the store and the WAL, start the node from
//! the store, and apply the WAL tail.
//!
//! `cargo run -p synod-server --release --example recovery_time -- --store-mib 1024 --wal-mib 64`
//!
//! Options: `--dir PATH` (a temporary directory; an existing data dir built
//! by an earlier run is reused), `--store-mib N` (1024), `--wal-mib N` (64),
//! `--value-size B` (256), `--snapshot-every N` (100000, the server's
//! `--snapshot-count`: the node takes its local snapshots during the replay
//! as it would after a real boot), `--verify` (verify every page checksum on
//! open, as the server does by default).

use std::path::{Path, PathBuf};
use std::time::Instant;

use synod_kv::{Command, KvConfig, PutRequest};
use synod_node::{Node, NodeConfig, Proposal};
use synod_raft::ConfState;
use synod_server::disk::{open as open_disk, store_path};
use synod_storage::{HardState, LogEntry, RaftLogStore, RealVfs, SnapshotMarker, WalConfig};
use synod_store::{commit, open, StoreConfig};

struct Args {
    dir: Option<PathBuf>,
    store_mib: u64,
    wal_mib: u64,
    value_size: usize,
    verify: bool,
    snapshot_every: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        dir: None,
        store_mib: 1024,
        wal_mib: 64,
        value_size: 256,
        verify: false,
        snapshot_every: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--verify" {
            a.verify = true;
            continue;
        }
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--dir" => a.dir = Some(PathBuf::from(&v)),
            "--store-mib" => a.store_mib = num()?,
            "--wal-mib" => a.wal_mib = num()?,
            "--value-size" => a.value_size = num()? as usize,
            "--snapshot-every" => a.snapshot_every = num()?.max(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

fn put(i: u64, value: &[u8]) -> Command {
    Command::Put(PutRequest::new(format!("key{i:012}"), value.to_vec()))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Builds the data dir; returns the applied index of the store and the last WAL index.
fn build(dir: &Path, a: &Args) -> (u64, u64) {
    let value = vec![b'v'; a.value_size];
    std::fs::create_dir_all(dir.join("member")).expect("data dir");
    let cfg = StoreConfig {
        cache_bytes: 64 << 20,
        verify_on_open: false,
    };
    let mut applied = 0u64;
    let t = Instant::now();
    // redb trims free pages when it closes: grow until the closed file is big enough.
    loop {
        let mut kv = open(&store_path(dir, 1), &cfg, KvConfig::default())
            .expect("store")
            .kv;
        loop {
            for _ in 0..20_000 {
                applied += 1;
                kv.apply(&put(applied, &value)).0.expect("put");
            }
            commit(&mut kv, applied, b"", true).expect("commit");
            if kv.engine().file_size().expect("size") >= a.store_mib << 20 {
                break;
            }
        }
        drop(kv);
        let closed = std::fs::metadata(store_path(dir, 1)).expect("size").len();
        if closed >= a.store_mib << 20 {
            break;
        }
    }
    let kv = open(&store_path(dir, 1), &cfg, KvConfig::default())
        .expect("store")
        .kv;
    let store_bytes = kv.engine().file_size().expect("size");
    drop(kv);
    eprintln!(
        "built a store of {} MiB ({applied} puts) in {:.1} s",
        store_bytes >> 20,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let (mut log, _) =
        RaftLogStore::open_with_config(RealVfs::new(), &dir.join("wal"), WalConfig::default())
            .expect("wal");
    let conf = ConfState {
        voters: [1u64].into_iter().collect(),
        ..ConfState::default()
    };
    log.install_snapshot(SnapshotMarker {
        index: applied,
        term: 1,
        conf: postcard::to_allocvec(&conf).expect("encode"),
    })
    .expect("marker");
    let mut last = applied;
    let mut bytes = 0u64;
    while bytes < a.wal_mib << 20 {
        let batch: Vec<LogEntry> = (0..1000)
            .map(|_| {
                last += 1;
                let p = Proposal {
                    client: 0,
                    seq: 0,
                    cmd: put(last, &value),
                };
                let data = p.encode();
                bytes += data.len() as u64 + 32;
                LogEntry {
                    index: last,
                    term: 1,
                    kind: 0,
                    data,
                }
            })
            .collect();
        log.append(&batch).expect("append");
        log.sync().expect("sync");
    }
    log.set_hard_state(HardState {
        term: 1,
        vote: 1,
        commit: last,
    })
    .expect("hard state");
    log.sync().expect("sync");
    drop(log);
    eprintln!(
        "built a WAL tail of {} entries ({} MiB) in {:.1} s",
        last - applied,
        bytes >> 20,
        t.elapsed().as_secs_f64()
    );
    (applied, last)
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("recovery_time: {e}");
            std::process::exit(2);
        }
    };
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let (store_applied, last) = if store_path(&dir, 1).exists() {
        (0, 0)
    } else {
        build(&dir, &a)
    };

    let t0 = Instant::now();
    let cfg = StoreConfig {
        verify_on_open: a.verify,
        ..StoreConfig::default()
    };
    let mut opened = open_disk(
        &dir,
        &[(1, synod_node::KeyRange::all())],
        WalConfig::default().segment_size,
        &cfg,
        10_000,
    )
    .expect("recovery");
    let t_open = t0.elapsed();
    let group = opened.groups.remove(0);
    let (sm, applied) = group.state;
    let init = group.init.expect("a data dir with a log");
    let target = match &init.raft {
        synod_raft::Init::Restore { hard_state, .. } => hard_state.commit,
        _ => unreachable!("a restored log"),
    };
    let mut node = Node::with_state_machines(
        NodeConfig {
            id: 1,
            snapshot_every: a.snapshot_every,
            // As the server runs over its durable store: snapshot images
            // are built only when a follower needs one.
            raft: synod_raft::Config {
                lazy_snapshot_data: true,
                ..synod_raft::Config::default()
            },
            ..NodeConfig::default()
        },
        vec![(init, Some((sm, applied)))],
    )
    .expect("node");
    let t1 = Instant::now();
    while node.applied(1).unwrap_or(0) < target {
        assert!(node.has_ready(), "committed entries left to apply");
        let rd = node.ready();
        node.advance(rd);
    }
    node.commit_state_machines(true).expect("store commit");
    let t_replay = t1.elapsed();
    let total = t0.elapsed();
    let store_bytes = std::fs::metadata(store_path(&dir, 1))
        .map(|m| m.len())
        .unwrap_or(0);
    let wal_bytes = dir_bytes(&dir.join("wal"));
    assert!(store_applied == 0 || applied == store_applied);
    assert!(last == 0 || target == last);
    println!(
        "| store | WAL dir | entries replayed | open store + WAL{} | replay + durable commit | total |",
        if a.verify { " (verified)" } else { "" }
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} MiB | {} MiB | {} | {:.2} s | {:.2} s | {:.2} s |",
        store_bytes >> 20,
        wal_bytes >> 20,
        target - applied,
        t_open.as_secs_f64(),
        t_replay.as_secs_f64(),
        total.as_secs_f64()
    );
}
