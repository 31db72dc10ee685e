//! One huge delete range on a fault-free cluster (issue 13, item 7: "a big
//! apply never stalls the heartbeat"). The servers charge apply time
//! ([`ServerTiming::apply_op_nanos`]): a node busy applying processes no
//! tick, message or finished sync, and its Ready's output waits, as in the
//! runtime's one actor. A node that applies a delete of many keys in one go
//! therefore stops heartbeating, and its followers elect another leader;
//! with [`NodeConfig::apply_budget`] bounding the work of each Ready, ticks
//! and heartbeats go on between chunks and the term never moves.

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use synod_kv::{Command, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};
use synod_node::{ClientOp, ClientRequest, HostConfig, KeyRange, NodeConfig};
use synod_raft::{Config as RaftConfig, NodeId, Role};
use synod_simnet::{ClockConfig, NetConfig, Sim, Time, MILLIS, SECONDS};

use crate::cluster::Storage;
use crate::cluster::{Proc, Server, ServerTiming, SHARD};
use crate::run::APPLY_OP_NANOS;

/// A bulk-delete scenario.
#[derive(Clone, Debug)]
pub struct BulkConfig {
    /// The simulation's seed.
    pub seed: u64,
    /// Servers (voters).
    pub nodes: usize,
    /// Keys loaded, then deleted by one request.
    pub keys: u32,
    /// Each node's apply budget ([`NodeConfig::apply_budget`]; `u64::MAX`:
    /// unbounded, the behaviour before it existed).
    pub apply_budget: u64,
    /// What one key operation costs to apply.
    pub apply_op_nanos: u64,
}

impl BulkConfig {
    /// 3 nodes, 20 000 keys, the default budget and cost.
    pub fn new(seed: u64) -> Self {
        BulkConfig {
            seed,
            nodes: 3,
            keys: 20_000,
            apply_budget: NodeConfig::default().apply_budget,
            apply_op_nanos: APPLY_OP_NANOS,
        }
    }
}

/// What a bulk-delete run saw.
#[derive(Clone, Debug, Default)]
pub struct BulkReport {
    /// Term and leader when the delete was proposed.
    pub term_before: u64,
    /// The leader then.
    pub leader_before: NodeId,
    /// Highest term any node reached until a second after every node applied it.
    pub term_after: u64,
    /// The leader then.
    pub leader_after: NodeId,
    /// Store revision on every node before the delete.
    pub revision_before: i64,
    /// Store revision of each node after it.
    pub revisions_after: Vec<i64>,
    /// Keys left on each node after it.
    pub left: Vec<usize>,
    /// Virtual time from the proposal until every node applied it.
    pub apply_time: Time,
    /// Longest time one node was busy applying, over the whole run.
    pub busiest: Time,
    /// What went wrong (empty: it passed).
    pub violations: Vec<String>,
}

impl BulkReport {
    /// Whether the delete applied everywhere, as one revision, with no election.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("bulk/{i:08}").into_bytes()
}

fn leader(sim: &Sim<Proc>) -> Option<usize> {
    (0..sim.len()).find(|&p| {
        sim.is_up(p)
            && sim
                .proc(p)
                .server()
                .and_then(|s| s.node().raft(SHARD))
                .is_some_and(|r| r.role() == Role::Leader)
    })
}

fn max_term(sim: &Sim<Proc>) -> u64 {
    (0..sim.len())
        .filter_map(|p| sim.proc(p).server())
        .filter_map(|s| s.node().raft(SHARD).map(|r| r.term()))
        .max()
        .unwrap_or(0)
}

fn count(s: &Server) -> usize {
    let sm = s.node().state_machine(SHARD).expect("the group is hosted");
    let r = sm
        .kv()
        .range(&RangeRequest {
            key: b"bulk/".to_vec(),
            range_end: b"bulk0".to_vec(),
            count_only: true,
            ..RangeRequest::default()
        })
        .expect("a memory store answers");
    r.count as usize
}

fn revision(s: &Server) -> i64 {
    s.node()
        .state_machine(SHARD)
        .expect("the group is hosted")
        .kv()
        .revision()
}

/// Loads `cfg.keys` keys into a fresh cluster, deletes them all with one
/// delete range, and reports what the cluster did meanwhile.
pub fn bulk_delete(cfg: BulkConfig) -> BulkReport {
    assert!(cfg.nodes >= 1 && cfg.keys >= 1);
    let timing = ServerTiming {
        tick: 10 * MILLIS,
        sync_min: 100,
        sync_max: 2 * MILLIS,
        sync_every_ready: false,
        apply_op_nanos: cfg.apply_op_nanos,
    };
    let mut net = NetConfig::reliable();
    net.latency_min = 200;
    net.latency_max = 3 * MILLIS;
    let clocks = ClockConfig {
        max_skew: 50 * MILLIS,
        max_drift_ppm: 200,
    };
    let mut seeds = Pcg64Mcg::seed_from_u64(cfg.seed);
    let voters: Vec<NodeId> = (1..=cfg.nodes as NodeId).collect();
    let ranges = vec![(KeyRange::all(), SHARD)];
    let procs = (0..cfg.nodes)
        .map(|i| {
            let node = NodeConfig {
                id: i as NodeId + 1,
                raft: RaftConfig {
                    election_tick: 10,
                    heartbeat_tick: 2,
                    ..RaftConfig::default()
                },
                seed: rand::Rng::random(&mut seeds),
                snapshot_every: 100_000,
                ticks_per_second: 100,
                apply_budget: cfg.apply_budget,
                ..NodeConfig::default()
            };
            let host = HostConfig {
                name: format!("s{}", i + 1),
                ..HostConfig::default()
            };
            Proc::Server(Box::new(Server::boot(
                node,
                host,
                voters.clone(),
                &ranges,
                Storage::new(NodeConfig::default().max_sessions),
                timing.clone(),
            )))
        })
        .collect();
    let mut sim = Sim::new(cfg.seed, procs, net, clocks);
    let mut r = BulkReport::default();

    // A leader, then the keys in transactions of 100 puts.
    sim.run_while(10 * SECONDS, |s| leader(s).is_none());
    let mut seq = 0;
    let mut next = 0u32;
    let load_until = sim.now() + 120 * SECONDS;
    while next < cfg.keys && sim.now() < load_until {
        let Some(l) = leader(&sim) else {
            sim.run_until(sim.now() + 10 * MILLIS);
            continue;
        };
        let server = sim.proc_mut(l).server_mut().expect("a server");
        for _ in 0..20 {
            if next >= cfg.keys {
                break;
            }
            let end = (next + 100).min(cfg.keys);
            let success = (next..end)
                .map(|i| RequestOp::Put(PutRequest::new(key(i), format!("value {i}"))))
                .collect();
            seq += 1;
            server.host.client(
                0,
                ClientRequest {
                    client: 77,
                    seq,
                    op: ClientOp::Write(Command::Txn(TxnRequest {
                        compare: Vec::new(),
                        success,
                        failure: Vec::new(),
                    })),
                },
            );
            next = end;
        }
        sim.run_until(sim.now() + 50 * MILLIS);
    }
    let all = cfg.keys as usize;
    let loaded = sim.run_while(sim.now() + 60 * SECONDS, |s| {
        (0..s.len()).any(|p| s.proc(p).server().is_none_or(|sv| count(sv) < all))
    });
    if !loaded {
        r.violations.push("the keys did not load".into());
        return r;
    }
    // Settle: every node at the same revision.
    sim.run_until(sim.now() + SECONDS);
    let Some(l) = leader(&sim) else {
        r.violations.push("no leader after the load".into());
        return r;
    };
    r.leader_before = l as NodeId + 1;
    r.term_before = max_term(&sim);
    r.revision_before = revision(sim.proc(l).server().expect("a server"));

    // One delete range over every key.
    let t0 = sim.now();
    sim.proc_mut(l).server_mut().expect("a server").host.client(
        0,
        ClientRequest {
            client: 78,
            seq: 1,
            op: ClientOp::Write(Command::DeleteRange(DeleteRangeRequest {
                key: b"bulk/".to_vec(),
                range_end: b"bulk0".to_vec(),
                prev_kv: false,
            })),
        },
    );
    let done = sim.run_while(t0 + 120 * SECONDS, |s| {
        (0..s.len()).any(|p| s.proc(p).server().is_none_or(|sv| count(sv) > 0))
    });
    r.apply_time = sim.now() - t0;
    sim.run_until(sim.now() + SECONDS);
    r.term_after = max_term(&sim);
    r.leader_after = leader(&sim).map_or(0, |p| p as NodeId + 1);
    for p in 0..sim.len() {
        let s = sim.proc(p).server().expect("a server");
        r.left.push(count(s));
        r.revisions_after.push(revision(s));
        r.busiest = r.busiest.max(s.busy_time);
    }
    if !done {
        r.violations.push(format!(
            "the delete did not apply everywhere: left {:?}",
            r.left
        ));
    }
    if r.term_after != r.term_before || r.leader_after != r.leader_before {
        r.violations.push(format!(
            "an election while the delete applied: term {} (leader {}) became {} (leader {})",
            r.term_before, r.leader_before, r.term_after, r.leader_after
        ));
    }
    if r.revisions_after
        .iter()
        .any(|&v| v != r.revision_before + 1)
    {
        r.violations.push(format!(
            "the delete is not one revision after {}: {:?}",
            r.revision_before, r.revisions_after
        ));
    }
    r
}
