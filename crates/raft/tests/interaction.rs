//! Golden interaction tests in the data-driven style: each file in
//! `testdata/*.txt` holds commands, each followed by `----` and the expected
//! trace, then a blank line. `UPDATE_GOLDEN=1 cargo test -p synod-raft`
//! rewrites the expected traces.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::PathBuf;

use common::{fmt_cc, fmt_ents, Net, Store};
use synod_raft::*;

struct Block {
    comments: Vec<String>,
    cmd: String,
    expected: String,
}

fn parse(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().peekable();
    let mut comments = Vec::new();
    while let Some(line) = lines.next() {
        if line.starts_with('#') || line.trim().is_empty() {
            comments.push(line.to_string());
            continue;
        }
        let cmd = line.to_string();
        assert_eq!(lines.next(), Some("----"), "expected ---- after {cmd}");
        let mut expected = String::new();
        for l in lines.by_ref() {
            if l.is_empty() {
                break;
            }
            expected.push_str(l);
            expected.push('\n');
        }
        blocks.push(Block {
            comments: std::mem::take(&mut comments),
            cmd,
            expected,
        });
    }
    blocks
}

fn list(v: &str) -> Vec<u64> {
    let v = v.trim_start_matches('(').trim_end_matches(')');
    if v.is_empty() {
        return Vec::new();
    }
    v.split(',')
        .map(|x| x.trim().parse().expect("number"))
        .collect()
}

struct Args<'a> {
    pos: Vec<&'a str>,
    kv: Vec<(&'a str, &'a str)>,
}

impl<'a> Args<'a> {
    fn new(toks: &[&'a str]) -> Args<'a> {
        let mut pos = Vec::new();
        let mut kv = Vec::new();
        for t in toks {
            match t.split_once('=') {
                Some((k, v)) => kv.push((k, v)),
                None => pos.push(*t),
            }
        }
        Args { pos, kv }
    }
    fn get(&self, k: &str) -> Option<&'a str> {
        self.kv.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v)
    }
    fn id(&self, i: usize) -> u64 {
        self.pos[i].parse().expect("node id")
    }
}

fn config(id: u64, a: &Args) -> Config {
    let mut c = Config {
        id,
        seed: id,
        ..Config::default()
    };
    if let Some(v) = a.get("pre-vote") {
        c.pre_vote = v == "true";
    }
    if let Some(v) = a.get("check-quorum") {
        c.check_quorum = v == "true";
    }
    if a.get("read-only") == Some("lease") {
        c.read_only = ReadOnlyOption::LeaseBased;
    }
    if let Some(v) = a.get("max-msg-bytes") {
        c.max_msg_bytes = v.parse().unwrap();
    }
    if let Some(v) = a.get("inflight") {
        c.max_inflight_msgs = v.parse().unwrap();
    }
    if let Some(v) = a.get("chunk") {
        c.snapshot_chunk_bytes = v.parse().unwrap();
    }
    if let Some(v) = a.get("bug") {
        c.planted_bug = Some(match v {
            "vote-without-log-check" => PlantedBug::VoteWithoutLogCheck,
            "commit-old-term" => PlantedBug::CommitOldTermByCounting,
            _ => panic!("unknown bug {v}"),
        });
    }
    c
}

fn run(net: &mut Net, cmd: &str) -> String {
    net.out.clear();
    let toks: Vec<&str> = cmd.split_whitespace().collect();
    let a = Args::new(&toks[1..]);
    match toks[0] {
        "add-nodes" => {
            let n: u64 = a.pos[0].parse().unwrap();
            let start = net.nodes.keys().last().copied().unwrap_or(0) + 1;
            let ids: Vec<u64> = (start..start + n).collect();
            let voters = a.get("voters").map(list).unwrap_or_else(|| ids.clone());
            let learners = a.get("learners").map(list).unwrap_or_default();
            for id in ids {
                net.add_node(config(id, &a), voters.clone(), learners.clone());
            }
        }
        "restore-node" => {
            // restore-node ID term=T log=(t1,t2,...) voters=(..) [commit=C]
            let id = a.id(0);
            let terms = a.get("log").map(list).unwrap_or_default();
            let entries: Vec<Entry> = terms
                .iter()
                .enumerate()
                .map(|(i, &t)| Entry {
                    term: t,
                    index: i as u64 + 1,
                    kind: EntryKind::Normal,
                    data: Vec::new(),
                })
                .collect();
            let voters: BTreeSet<u64> = a.get("voters").map(list).unwrap().into_iter().collect();
            let store = Store {
                hard: HardState {
                    term: a.get("term").unwrap().parse().unwrap(),
                    vote: 0,
                    commit: a.get("commit").map_or(0, |c| c.parse().unwrap()),
                },
                snap: Some(Snapshot {
                    meta: SnapshotMeta {
                        index: 0,
                        term: 0,
                        conf_state: ConfState {
                            voters,
                            ..ConfState::default()
                        },
                    },
                    data: Vec::new(),
                }),
                entries,
            };
            net.restore_node(config(id, &a), store);
        }
        "campaign" => net.nodes.get_mut(&a.id(0)).unwrap().raft.campaign(),
        "tick" => {
            let n: u32 = a.pos.get(1).map_or(1, |s| s.parse().unwrap());
            for _ in 0..n {
                net.nodes.get_mut(&a.id(0)).unwrap().raft.tick();
            }
        }
        "tick-heartbeat" | "tick-election" => {
            for i in 0..a.pos.len() {
                let node = net.nodes.get_mut(&a.id(i)).unwrap();
                let n = if toks[0] == "tick-heartbeat" {
                    node.cfg.heartbeat_tick
                } else {
                    // Past the largest randomized timeout.
                    2 * node.cfg.election_tick
                };
                for _ in 0..n {
                    node.raft.tick();
                }
            }
        }
        "propose" => {
            let r = net
                .nodes
                .get_mut(&a.id(0))
                .unwrap()
                .raft
                .propose(a.pos[1].as_bytes().to_vec());
            match r {
                Ok(i) => writeln!(net.out, "index {i}").unwrap(),
                Err(e) => writeln!(net.out, "error: {e}").unwrap(),
            }
        }
        "propose-conf-change" | "leave-joint" => {
            let mut cc = ConfChange::default();
            for t in &a.pos[1..] {
                let id: u64 = t[1..].parse().unwrap_or(0);
                match &t[..1] {
                    "v" => cc.changes.push(ConfChangeSingle::AddVoter(id)),
                    "l" => cc.changes.push(ConfChangeSingle::AddLearner(id)),
                    "r" => cc.changes.push(ConfChangeSingle::Remove(id)),
                    _ => panic!("bad change {t}"),
                }
            }
            match a.get("transition") {
                Some("explicit") => cc.transition = ConfChangeTransition::JointExplicit,
                Some("implicit") => cc.transition = ConfChangeTransition::JointImplicit,
                _ => {}
            }
            let r = net
                .nodes
                .get_mut(&a.id(0))
                .unwrap()
                .raft
                .propose_conf_change(cc.clone());
            match r {
                Ok(i) => writeln!(net.out, "index {i}: {}", fmt_cc(&cc)).unwrap(),
                Err(e) => writeln!(net.out, "error: {e}").unwrap(),
            }
        }
        "process-ready" => {
            for i in 0..a.pos.len() {
                net.process_ready(a.id(i), true);
            }
        }
        "deliver-msgs" => {
            let to: Vec<u64> = a.pos.iter().map(|s| s.parse().unwrap()).collect();
            let drop = a.get("drop").map(list).unwrap_or_default();
            net.deliver_msgs(&to, &drop, true);
        }
        "stabilize" => net.stabilize(true),
        "partition" => {
            let mut groups = Vec::new();
            for g in toks[1..].join(" ").split('|') {
                groups.push(g.split_whitespace().map(|s| s.parse().unwrap()).collect());
            }
            net.groups = Some(groups);
        }
        "heal" => net.groups = None,
        "compact" => {
            if let Err(e) = net.compact(a.id(0), a.id(1)) {
                writeln!(net.out, "error: {e}").unwrap();
            }
        }
        "restart" => net.restart(a.id(0)),
        "transfer-leader" => net
            .nodes
            .get_mut(&a.id(0))
            .unwrap()
            .raft
            .transfer_leader(a.id(1)),
        "read-index" => {
            let r = net
                .nodes
                .get_mut(&a.id(0))
                .unwrap()
                .raft
                .read_index(a.id(1));
            if let Err(e) = r {
                writeln!(net.out, "error: {e}").unwrap();
            }
        }
        "status" => {
            for i in 0..a.pos.len() {
                let s = net.status(a.id(i));
                writeln!(net.out, "{s}").unwrap();
            }
        }
        "log" => {
            let r = &net.nodes[&a.id(0)].raft;
            let ents: Vec<Entry> = (r.first_index()..=r.last_index())
                .map(|i| r.entry(i).unwrap().clone())
                .collect();
            writeln!(net.out, "[{}]", fmt_ents(&ents)).unwrap();
        }
        "applied" => {
            let n = &net.nodes[&a.id(0)];
            let v: Vec<String> = n
                .applied
                .iter()
                .map(|(i, d)| format!("{i}:{}", String::from_utf8_lossy(d)))
                .collect();
            writeln!(net.out, "[{}]", v.join(" ")).unwrap();
        }
        other => panic!("unknown command {other}"),
    }
    if net.out.is_empty() {
        "ok\n".to_string()
    } else {
        net.out.clone()
    }
}

fn run_file(path: &PathBuf) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let blocks = parse(&text);
    let mut net = Net::new();
    let mut rewritten = String::new();
    let mut failures = String::new();
    for b in &blocks {
        let got = run(&mut net, &b.cmd);
        for c in &b.comments {
            rewritten.push_str(c);
            rewritten.push('\n');
        }
        write!(rewritten, "{}\n----\n{}\n", b.cmd, got).unwrap();
        if got != b.expected && failures.is_empty() {
            failures = format!(
                "{}: command `{}`\n--- expected\n{}--- got\n{}",
                path.display(),
                b.cmd,
                b.expected,
                got
            );
        }
    }
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(path, rewritten.trim_end().to_string() + "\n").unwrap();
        return Ok(());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

#[test]
fn golden_interactions() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files");
    let mut errors = Vec::new();
    for f in &files {
        if let Err(e) = run_file(f) {
            errors.push(e);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
}
