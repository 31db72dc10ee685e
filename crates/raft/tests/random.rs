//! Randomized cluster runs: a seeded loop of ticks, proposals, crashes,
//! compactions and partitions over a network that reorders, drops and
//! duplicates messages. Checks election safety (Raft §5.2), log matching
//! (§5.3), state-machine safety (§5.4.3) and, after healing, liveness.
//!
//! `RAFT_SEEDS=N` runs seeds 0..N (default 300), `RAFT_SEED_FROM=S` starts at S
//! (a replay: coverage thresholds are skipped), `RAFT_DEBUG=1` prints traces.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Net;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use synod_raft::*;

struct Outcome {
    leaders_by_term: BTreeMap<u64, u64>,
    joint_seen: bool,
}

fn check_election_safety(net: &Net, o: &mut Outcome, seed: u64) -> Result<(), String> {
    for (id, n) in &net.nodes {
        if n.raft.role() == Role::Leader {
            let prev = o.leaders_by_term.entry(n.raft.term()).or_insert(*id);
            if *prev != *id {
                return Err(format!(
                    "seed {seed}: two leaders in term {}: {prev} and {id}",
                    n.raft.term()
                ));
            }
        }
    }
    Ok(())
}

fn check_log_matching(net: &Net, seed: u64) -> Result<(), String> {
    let ids: Vec<u64> = net.nodes.keys().copied().collect();
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            let (ra, rb) = (&net.nodes[a].raft, &net.nodes[b].raft);
            let lo = ra.first_index().max(rb.first_index());
            let hi = ra.last_index().min(rb.last_index());
            // Find the highest index with equal terms; everything from lo up to it must be identical.
            let mut top = None;
            for idx in (lo..=hi).rev() {
                if ra.term_at(idx) == rb.term_at(idx) {
                    top = Some(idx);
                    break;
                }
            }
            if let Some(top) = top {
                for idx in lo..=top {
                    if ra.entry(idx) != rb.entry(idx) {
                        return Err(format!(
                            "seed {seed}: log matching broken between {a} and {b} at {idx}"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_state_machine(net: &Net, seed: u64) -> Result<(), String> {
    if let Some(c) = &net.image_conflict {
        return Err(format!("seed {seed}: {c}"));
    }
    let mut seen: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for (id, n) in &net.nodes {
        for (i, d) in &n.applied {
            if let Some(prev) = seen.insert(*i, d.clone()) {
                if prev != *d {
                    return Err(format!(
                        "seed {seed}: node {id} applied a different entry at {i}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// ReadIndex safety (thesis §6.4): a read's index covers everything committed before it was requested.
fn check_reads(net: &mut Net, read_floor: &BTreeMap<u64, u64>, seed: u64) -> Result<u64, String> {
    let mut served = 0;
    for (id, nd) in net.nodes.iter_mut() {
        for r in nd.reads.drain(..) {
            served += 1;
            let floor = read_floor.get(&r.ctx).copied().unwrap_or(0);
            if r.index < floor {
                return Err(format!(
                    "seed {seed}: node {id} read ctx {} at index {} < {floor} committed before it",
                    r.ctx, r.index
                ));
            }
        }
    }
    Ok(served)
}

/// Ticks the members of the most advanced configuration only: like a real
/// owner, the harness shuts down members that were removed (without pre-vote
/// they would otherwise keep bumping terms, thesis §4.2.3).
fn tick_members(net: &mut Net) {
    let newest = net
        .nodes
        .values()
        .max_by_key(|nd| (nd.raft.commit(), nd.raft.term()))
        .map(|nd| nd.raft.conf_state().members())
        .unwrap_or_default();
    for (id, nd) in net.nodes.iter_mut() {
        if newest.contains(id) {
            nd.raft.tick();
        }
    }
}

fn leader(net: &Net) -> Option<u64> {
    net.nodes
        .iter()
        .filter(|(_, n)| n.raft.role() == Role::Leader)
        .max_by_key(|(_, n)| n.raft.term())
        .map(|(id, _)| *id)
}

/// Runs one seeded scenario; `bug` plants a protocol bug.
/// What a run exercised, so the generator's coverage can be checked.
#[derive(Default, Debug)]
struct Coverage {
    reads: u64,
    leaders: u64,
    conf_changed: u64,
    joined: u64,
    compacted: u64,
    issued: u64,
    /// Steps during which two members both believed they led (different terms).
    two_leaders: u64,
    /// Runs in which some member was in a joint configuration.
    joint_seen: u64,
}

/// `tiny_msgs`: one entry per append, so old-term entries replicate separately (figure 8).
fn run_seed(
    seed: u64,
    steps: usize,
    bug: Option<PlantedBug>,
    tiny_msgs: bool,
) -> Result<Coverage, String> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let n: u64 = if rng.random_bool(0.5) { 3 } else { 5 };
    let pre_vote = rng.random_bool(0.5);
    let check_quorum = rng.random_bool(0.5);
    // Lease reads rely on bounded clock drift: in those runs every member ticks together.
    let lease = check_quorum && rng.random_bool(0.5);
    let mut net = Net::new();
    let voters: Vec<u64> = (1..=n).collect();
    // Node n+1 starts outside the group (joins through membership changes).
    let all = n + 1;
    for id in 1..=all {
        let cfg = Config {
            id,
            seed: seed * 31 + id,
            election_tick: 10,
            heartbeat_tick: 2,
            pre_vote,
            check_quorum,
            max_inflight_msgs: 4,
            max_msg_bytes: if tiny_msgs { 1 } else { 64 },
            snapshot_chunk_bytes: 16,
            planted_bug: bug,
            read_only: if lease {
                ReadOnlyOption::LeaseBased
            } else {
                ReadOnlyOption::Safe
            },
            ..Config::default()
        };
        let v = if id <= n { voters.clone() } else { Vec::new() };
        net.add_node(cfg, v, Vec::new());
    }
    // ReadIndex safety: a read's index covers everything committed before it was requested.
    let mut read_floor: BTreeMap<u64, u64> = BTreeMap::new();
    let mut next_ctx = 0u64;
    let mut cov = Coverage::default();
    let mut o = Outcome {
        leaders_by_term: BTreeMap::new(),
        joint_seen: false,
    };
    let mut proposals = 0u64;
    for step in 0..steps {
        let roll = rng.random_range(0..110);
        let pick = rng.random_range(1..=all);
        match roll {
            0..=44 => {
                if !net.inflight.is_empty() {
                    let i = rng.random_range(0..net.inflight.len());
                    let m = net.inflight.swap_remove(i);
                    let fate = rng.random_range(0..100);
                    if fate < 8 {
                        // dropped
                    } else if fate < 11 {
                        net.inflight.push(m.clone());
                        net.deliver(m, false);
                    } else {
                        net.deliver(m, false);
                    }
                }
            }
            45..=56 if lease => {
                for nd in net.nodes.values_mut() {
                    nd.raft.tick();
                }
            }
            45..=56 => net.nodes.get_mut(&pick).unwrap().raft.tick(),
            57..=84 => {
                net.process_ready(pick, false);
            }
            85..=93 => {
                if let Some(l) = leader(&net) {
                    proposals += 1;
                    let _ = net
                        .nodes
                        .get_mut(&l)
                        .unwrap()
                        .raft
                        .propose(format!("s{seed}p{proposals}").into_bytes());
                }
            }
            94..=95 => {
                // Crashes are rarer than other events, so leaders live long enough to matter.
                if rng.random_bool(0.1)
                    && (!net.nodes[&pick].raft.has_ready() || rng.random_bool(0.5))
                {
                    net.restart(pick);
                }
            }
            96..=97 => {
                let applied = net.nodes[&pick].raft.applied();
                let _ = net.compact(pick, applied);
            }
            100..=103 => {
                if let Some(l) = leader(&net) {
                    let other = rng.random_range(1..=n);
                    let changes = match rng.random_range(0..5) {
                        0 => vec![ConfChangeSingle::AddLearner(all)],
                        1 => vec![ConfChangeSingle::AddVoter(all)],
                        2 => vec![ConfChangeSingle::Remove(all)],
                        3 => vec![
                            ConfChangeSingle::AddVoter(all),
                            ConfChangeSingle::Remove(other),
                        ],
                        _ => vec![ConfChangeSingle::AddVoter(other)],
                    };
                    let cc = ConfChange {
                        changes,
                        transition: ConfChangeTransition::Auto,
                    };
                    let _ = net.nodes.get_mut(&l).unwrap().raft.propose_conf_change(cc);
                }
            }
            104..=105 => {
                if let Some(l) = leader(&net) {
                    net.nodes.get_mut(&l).unwrap().raft.transfer_leader(pick);
                }
            }
            106..=109 => {
                next_ctx += 1;
                let floor = net
                    .nodes
                    .values()
                    .map(|nd| nd.raft.commit())
                    .max()
                    .unwrap_or(0);
                if net
                    .nodes
                    .get_mut(&pick)
                    .unwrap()
                    .raft
                    .read_index(next_ctx)
                    .is_ok()
                {
                    read_floor.insert(next_ctx, floor);
                    cov.issued += 1;
                }
            }
            _ => {
                // Partitions last a few hundred steps: long enough for elections on both sides.
                if net.groups.is_some() {
                    if rng.random_bool(0.1) {
                        net.groups = None;
                    }
                } else {
                    // Half the time isolate the leader: the interesting case for reads and terms.
                    let cut = match leader(&net) {
                        Some(l) if rng.random_bool(0.5) => l,
                        _ => rng.random_range(1..=all),
                    };
                    let rest: BTreeSet<u64> = (1..=all).filter(|&i| i != cut).collect();
                    net.groups = Some(vec![[cut].into_iter().collect(), rest]);
                }
            }
        }
        check_election_safety(&net, &mut o, seed)?;
        if std::env::var("RAFT_DEBUG").is_ok() && step % 100 == 0 {
            let roles: Vec<String> = net
                .nodes
                .values()
                .map(|nd| {
                    format!(
                        "{:?}/{}/e{}",
                        nd.raft.role(),
                        nd.raft.term(),
                        nd.raft.commit()
                    )
                })
                .collect();
            println!(
                "step {step} groups={:?} cq={check_quorum} pv={pre_vote} {}",
                net.groups,
                roles.join(" ")
            );
        }
        o.joint_seen |= net.nodes.values().any(|nd| nd.raft.conf_state().is_joint());
        if net
            .nodes
            .values()
            .filter(|nd| nd.raft.role() == Role::Leader)
            .count()
            > 1
        {
            cov.two_leaders += 1;
        }
        cov.reads += check_reads(&mut net, &read_floor, seed)?;
        if step % 50 == 0 {
            check_log_matching(&net, seed)?;
            check_state_machine(&net, seed)?;
        }
    }
    if std::env::var("RAFT_DEBUG").is_ok() {
        println!(
            "seed {seed}: inflight at end of fault phase: {}",
            net.inflight.len()
        );
    }
    // Liveness: heal everything and expect a leader to commit a fresh proposal.
    net.groups = None;
    let mut committed = false;
    let mut target: Option<(u64, (u64, u64))> = None;
    let mut last_err = String::new();
    for _ in 0..400 {
        tick_members(&mut net);
        next_ctx += 1;
        let pick = rng.random_range(1..=all);
        let floor = net
            .nodes
            .values()
            .map(|nd| nd.raft.commit())
            .max()
            .unwrap_or(0);
        if net
            .nodes
            .get_mut(&pick)
            .unwrap()
            .raft
            .read_index(next_ctx)
            .is_ok()
        {
            read_floor.insert(next_ctx, floor);
            cov.issued += 1;
        }
        let trace = std::env::var("RAFT_DEBUG").is_ok();
        if !net.try_stabilize(trace) {
            return Err(format!("seed {seed}: messages never quiesce"));
        }
        cov.reads += check_reads(&mut net, &read_floor, seed)?;
        check_election_safety(&net, &mut o, seed)?;
        let now = leader(&net).map(|l| (l, net.nodes[&l].raft.term()));
        if target.is_some_and(|(_, lt)| Some(lt) != now) {
            // Leadership changed: the proposal may have been dropped; propose again.
            target = None;
        }
        if let (None, Some((l, t))) = (target, now) {
            match net
                .nodes
                .get_mut(&l)
                .unwrap()
                .raft
                .propose(b"final".to_vec())
            {
                Ok(i) => target = Some((i, (l, t))),
                Err(e) => last_err = format!("{e:?}"),
            }
        }
        if let Some((i, (l, _))) = target {
            let members = net.nodes[&l].raft.conf_state().members();
            if members.iter().all(|m| net.nodes[m].raft.commit() >= i) {
                committed = true;
                break;
            }
        }
    }
    if std::env::var("RAFT_DEBUG").is_ok() {
        let lines: Vec<&str> = net.out.lines().collect();
        let tail = lines.len().saturating_sub(4000);
        println!("{}", lines[tail..].join("\n"));
    }
    check_log_matching(&net, seed)?;
    check_state_machine(&net, seed)?;
    if !committed {
        return Err(format!(
            "seed {seed}: no progress after healing (target {target:?}, {last_err})\n{}",
            {
                let ids: Vec<u64> = net.nodes.keys().copied().collect();
                ids.iter()
                    .map(|i| net.status(*i))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        ));
    }
    // Thesis §4.3: an auto-leave joint configuration is always left once things calm down.
    for _ in 0..50 {
        tick_members(&mut net);
        if !net.try_stabilize(std::env::var("RAFT_DEBUG").is_ok()) {
            return Err(format!("seed {seed}: messages never quiesce"));
        }
    }
    if let Some(l) = leader(&net) {
        let cs = net.nodes[&l].raft.conf_state();
        if cs.is_joint() && cs.auto_leave && std::env::var("RAFT_DEBUG").is_ok() {
            let lines: Vec<&str> = net.out.lines().collect();
            println!("{}", lines[lines.len().saturating_sub(80)..].join("\n"));
        }
        if cs.is_joint() && cs.auto_leave {
            return Err(format!(
                "seed {seed}: stuck in joint configuration\n{}",
                net.nodes
                    .keys()
                    .map(|i| net.status(*i))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        cov.joint_seen += u64::from(o.joint_seen);
    }
    cov.leaders = o.leaders_by_term.len() as u64;
    let last = &net.nodes[&all].raft;
    cov.joined = u64::from(last.conf_state().members().contains(&all));
    cov.conf_changed =
        u64::from(net.nodes[&1].raft.conf_state().voters.len() as u64 != n || cov.joined == 1);
    cov.compacted = u64::from(net.nodes.values().any(|nd| nd.raft.first_index() > 1));
    Ok(cov)
}

#[test]
fn random_clusters_are_safe_and_live() {
    let seeds: u64 = std::env::var("RAFT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let from: u64 = std::env::var("RAFT_SEED_FROM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut failures = Vec::new();
    let mut total = Coverage::default();
    for seed in from..seeds {
        match run_seed(seed, 4000, None, seed % 5 == 0) {
            Ok(c) => {
                total.reads += c.reads;
                total.leaders += c.leaders;
                total.conf_changed += c.conf_changed;
                total.joined += c.joined;
                total.compacted += c.compacted;
                total.issued += c.issued;
                total.two_leaders += c.two_leaders;
                total.joint_seen += c.joint_seen;
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("coverage over {seeds} seeds: {total:?}");
    if from > 0 {
        return; // a replay of chosen seeds: coverage thresholds do not apply
    }
    // The generator must actually exercise reads, elections, membership and compaction.
    assert!(total.reads >= seeds, "{total:?}");
    assert!(total.leaders >= 2 * seeds, "{total:?}");
    assert!(total.conf_changed >= seeds / 4, "{total:?}");
    assert!(total.joined >= seeds / 10, "{total:?}");
    assert!(total.compacted >= seeds / 2, "{total:?}");
    assert!(total.joint_seen >= seeds / 10, "{total:?}");
}

#[test]
fn planted_vote_bug_is_caught() {
    // The checkers must be able to fail: without the §5.4.1 log check some seed breaks safety.
    let caught = (0..300)
        .any(|seed| run_seed(seed, 4000, Some(PlantedBug::VoteWithoutLogCheck), true).is_err());
    assert!(caught, "no seed exposed VoteWithoutLogCheck");
}

#[test]
fn planted_commit_bug_is_caught() {
    // Committing an old-term entry by counting (figure 8) needs a rare schedule;
    // these seeds (found with `planted_bug_report`) produce one. If the generator
    // changes, rerun the report and update the list.
    let seeds = [446u64, 1054, 1692];
    let caught = seeds.iter().any(|&seed| {
        run_seed(seed, 4000, Some(PlantedBug::CommitOldTermByCounting), true)
            .is_err_and(|e| e.contains("applied a different entry"))
    });
    assert!(caught, "none of {seeds:?} exposed CommitOldTermByCounting");
    // The same seeds are fine without the bug.
    for seed in seeds {
        assert!(run_seed(seed, 4000, None, true).is_ok(), "seed {seed}");
    }
}

#[test]
#[ignore = "diagnostic: prints which seeds expose each planted bug"]
fn planted_bug_report() {
    for bug in [
        PlantedBug::VoteWithoutLogCheck,
        PlantedBug::CommitOldTermByCounting,
    ] {
        let n: u64 = std::env::var("RAFT_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300);
        let errs: Vec<String> = (0..n)
            .filter_map(|s| run_seed(s, 4000, Some(bug), true).err())
            .collect();
        println!("{bug:?}: {} seeds fail", errs.len());
        for e in errs.iter().take(12) {
            println!("  {}", e.lines().next().unwrap_or(""));
        }
    }
}
