//! Behaviour of the engine seen from outside: network, faults, clocks, determinism.

use synod_simnet::*;

/// Replies to every `Ping(k)` with `Pong(k)`; process 0 starts `count` pings to 1.
#[derive(Debug, Default)]
struct PingPong {
    count: u64,
    pongs: Vec<u64>,
    pings: Vec<u64>,
}

#[derive(Clone, Debug)]
enum Pp {
    Ping(u64),
    Pong(u64),
}

impl Process for PingPong {
    type Msg = Pp;
    fn on_start(&mut self, ctx: &mut Ctx<'_, Pp>) {
        for k in 0..self.count {
            ctx.send(1, Pp::Ping(k));
        }
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Pp>, from: ProcId, msg: Pp) {
        match msg {
            Pp::Ping(k) => {
                self.pings.push(k);
                if from != EXTERNAL {
                    ctx.send(from, Pp::Pong(k));
                }
            }
            Pp::Pong(k) => self.pongs.push(k),
        }
    }
    fn msg_bytes(_: &Pp) -> usize {
        8
    }
}

fn pp(seed: u64, count: u64, net: NetConfig) -> Sim<PingPong> {
    let procs = vec![
        PingPong {
            count,
            ..Default::default()
        },
        PingPong::default(),
    ];
    Sim::new(seed, procs, net, ClockConfig::perfect())
}

fn jittery() -> NetConfig {
    NetConfig {
        fifo: false,
        latency_min: 1_000,
        latency_max: 20_000,
        ..NetConfig::reliable()
    }
}

#[test]
fn ping_pong_round_trips() {
    let mut sim = pp(1, 3, NetConfig::reliable());
    sim.run_until(SECONDS);
    assert_eq!(sim.proc(0).pongs, vec![0, 1, 2]);
    assert_eq!(sim.proc(1).pings, vec![0, 1, 2]);
    let s = sim.stats();
    assert_eq!((s.sent, s.delivered, s.dropped_total()), (6, 6, 0));
    assert_eq!((s.sent_of("Ping"), s.sent_of("Pong"), s.bytes), (3, 3, 48));
    // Every delivery in the trace has its send earlier.
    let t = sim.trace();
    for (i, e) in t.events.iter().enumerate() {
        if let TraceKind::Deliver { msg_id, .. } = e.kind {
            assert!(t.events[..i]
                .iter()
                .any(|s| matches!(s.kind, TraceKind::Send { msg_id: m, .. } if m == msg_id)));
        }
    }
}

#[test]
fn loss_rate_is_close_to_configured() {
    let n = 20_000;
    let mut sim = pp(
        7,
        n,
        NetConfig {
            loss: 0.3,
            ..NetConfig::reliable()
        },
    );
    sim.set_tracing(false);
    sim.run_until(10 * SECONDS);
    let lost = sim.stats().dropped(DropReason::Loss) as f64;
    let sent = sim.stats().sent as f64;
    let rate = lost / sent;
    assert!((rate - 0.3).abs() < 0.02, "loss rate {rate}");
    assert_eq!(
        sim.stats().sent,
        sim.stats().delivered + sim.stats().dropped_total()
    );
}

#[test]
fn duplicates_are_delivered_twice() {
    let mut sim = pp(
        3,
        2_000,
        NetConfig {
            duplicate: 0.25,
            ..NetConfig::reliable()
        },
    );
    sim.run_until(10 * SECONDS);
    let s = sim.stats();
    let rate = s.duplicated as f64 / s.sent as f64;
    assert!(
        (rate - 0.25).abs() < 0.03,
        "duplicated {} of {}",
        s.duplicated,
        s.sent
    );
    assert_eq!(s.delivered, s.sent + s.duplicated);
    assert!(sim.proc(1).pings.len() > 2_000);
}

fn in_order(v: &[u64]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn fifo_holds_when_set_and_breaks_sometimes_when_not() {
    let fifo = NetConfig {
        fifo: true,
        ..jittery()
    };
    let mut broken = 0;
    for seed in 0..20 {
        let mut a = pp(seed, 50, fifo.clone());
        a.run_until(SECONDS);
        assert!(in_order(&a.proc(1).pings), "FIFO violated for seed {seed}");
        let mut b = pp(seed, 50, jittery());
        b.run_until(SECONDS);
        assert_eq!(b.proc(1).pings.len(), 50);
        broken += usize::from(!in_order(&b.proc(1).pings));
    }
    assert!(
        broken >= 10,
        "non-FIFO links reordered only {broken}/20 runs"
    );
}

#[test]
fn partition_blocks_and_heal_restores() {
    let mut sim = pp(5, 0, NetConfig::reliable());
    sim.partition(&[vec![0], vec![1]]);
    sim.with_ctx(0, |_, ctx| ctx.send(1, Pp::Ping(1)));
    sim.run_until(SECONDS);
    assert!(sim.proc(1).pings.is_empty());
    assert_eq!(sim.stats().dropped(DropReason::Partition), 1);
    sim.heal();
    sim.with_ctx(0, |_, ctx| ctx.send(1, Pp::Ping(2)));
    sim.run_until(2 * SECONDS);
    assert_eq!(sim.proc(1).pings, vec![2]);
    assert_eq!(sim.proc(0).pongs, vec![2]);
}

#[test]
fn one_way_block_drops_one_direction_only() {
    let mut sim = pp(5, 0, NetConfig::reliable());
    sim.block(1, 0);
    sim.with_ctx(0, |_, ctx| ctx.send(1, Pp::Ping(1)));
    sim.run_until(SECONDS);
    assert_eq!(sim.proc(1).pings, vec![1], "0->1 still works");
    assert!(sim.proc(0).pongs.is_empty(), "1->0 is blocked");
    sim.unblock(1, 0);
    sim.with_ctx(0, |_, ctx| ctx.send(1, Pp::Ping(2)));
    sim.run_until(2 * SECONDS);
    assert_eq!(sim.proc(0).pongs, vec![2]);
}

#[test]
fn clog_holds_then_delivers_in_order() {
    let mut sim = pp(9, 0, NetConfig::reliable());
    sim.clog(0, 1);
    for k in 0..5 {
        sim.with_ctx(0, |_, ctx| ctx.send(1, Pp::Ping(k)));
    }
    sim.run_until(10 * SECONDS);
    assert!(sim.proc(1).pings.is_empty());
    assert_eq!(sim.in_flight(), 5);
    sim.unclog(0, 1);
    sim.run_until(11 * SECONDS);
    assert_eq!(sim.proc(1).pings, vec![0, 1, 2, 3, 4]);
    assert_eq!(sim.in_flight(), 0);
    assert_eq!(sim.stats().dropped_total(), 0);
}

/// Counts timer firings; re-arms every 10 ms of local time.
#[derive(Debug, Default)]
struct Ticker {
    fired: Vec<Time>,
    cancel_first: bool,
}

impl Process for Ticker {
    type Msg = ();
    fn on_start(&mut self, ctx: &mut Ctx<'_, ()>) {
        let id = ctx.set_timer(10_000, 1);
        if self.cancel_first {
            assert!(ctx.cancel_timer(id));
            assert!(!ctx.cancel_timer(id));
            ctx.set_timer(10_000, 2);
        }
    }
    fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ProcId, _: ()) {}
    fn on_timer(&mut self, ctx: &mut Ctx<'_, ()>, tag: u64) {
        self.fired.push(ctx.now());
        ctx.set_timer(10_000, tag);
    }
}

#[test]
fn crash_drops_timers_and_messages_and_restart_starts_afresh() {
    let mut sim = Sim::new(
        1,
        vec![Ticker::default(), Ticker::default()],
        NetConfig::reliable(),
        ClockConfig::perfect(),
    );
    sim.run_until(55_000);
    assert_eq!(sim.proc(0).fired.len(), 5);
    sim.crash(0);
    assert!(!sim.is_up(0));
    sim.run_until(200_000);
    assert_eq!(
        sim.proc(0).fired.len(),
        5,
        "a crashed process's timers must not fire"
    );
    assert_eq!(sim.proc(1).fired.len(), 20);
    sim.send_external(0, (), 0);
    sim.run_until(201_000);
    assert_eq!(sim.stats().dropped(DropReason::Down), 1);
    sim.restart(0, Ticker::default());
    sim.run_until(255_000);
    assert_eq!(
        sim.proc(0).fired.len(),
        5,
        "restarted process's fresh timers run"
    );
    assert!(sim
        .trace()
        .events
        .iter()
        .any(|e| e.proc == 0 && e.kind == TraceKind::Crash));
}

#[test]
fn cancelled_timers_do_not_fire() {
    let mut sim = Sim::new(
        1,
        vec![Ticker {
            cancel_first: true,
            ..Default::default()
        }],
        NetConfig::reliable(),
        ClockConfig::perfect(),
    );
    sim.run_until(35_000);
    assert_eq!(sim.proc(0).fired.len(), 3);
    assert!(sim
        .trace()
        .events
        .iter()
        .all(|e| !matches!(e.kind, TraceKind::Timer { tag: 1 })));
}

#[test]
fn clocks_respect_skew_and_drift_bounds() {
    let clocks = ClockConfig {
        max_skew: 50_000,
        max_drift_ppm: 200,
    };
    let procs = (0..50).map(|_| Ticker::default()).collect();
    let mut sim = Sim::new(3, procs, NetConfig::reliable(), clocks);
    let t = 100 * SECONDS;
    let initial: Vec<Time> = (0..50).map(|i| sim.local_time(i)).collect();
    let spread = initial.iter().max().unwrap() - initial.iter().min().unwrap();
    assert!(
        spread <= 50_000 && spread > 10_000,
        "initial spread {spread}"
    );
    sim.run_until(t);
    let mut drifts = std::collections::BTreeSet::new();
    for (i, &start) in initial.iter().enumerate() {
        let c = sim.clock(i);
        let elapsed = sim.local_time(i) - start;
        let err = elapsed.abs_diff(t);
        assert!(
            err <= t * 200 / 1_000_000 + 1,
            "proc {i} drifted {err} over {t}"
        );
        drifts.insert(c.drift_ppm);
        // Timers measure local time: ~10 ms local per firing, monotone.
        let f = &sim.proc(i).fired;
        assert!(
            f.windows(2)
                .all(|w| w[1] - w[0] >= 10_000 && w[1] - w[0] <= 10_002),
            "proc {i}: {:?}",
            &f[..3]
        );
    }
    assert!(drifts.len() > 10, "drifts not varied: {drifts:?}");
}

#[test]
fn clock_model_deadline_is_exact() {
    for drift_ppm in [-100_000, -37, 0, 1, 999, 100_000] {
        let c = ClockModel {
            offset: 123,
            drift_ppm,
        };
        for now in [0, 7, 1_000_003] {
            for after in [0, 1, 10, 9_999_999] {
                let t = c.true_deadline(now, after);
                assert!(c.local(t) >= c.local(now) + after);
                assert!(t == now || c.local(t - 1) < c.local(now) + after);
            }
        }
    }
}

fn busy(seed: u64) -> Sim<PingPong> {
    let net = NetConfig {
        loss: 0.1,
        duplicate: 0.05,
        tail_prob: 0.1,
        tail_factor: 5,
        ..jittery()
    };
    pp(seed, 200, net)
}

#[test]
fn same_seed_same_hash_different_seed_different_hash() {
    let run = |s: &mut Sim<PingPong>| s.run_until(SECONDS);
    let a = check_determinism(42, busy, run).unwrap();
    let b = check_determinism(43, busy, run).unwrap();
    assert_ne!(a, b);
    // Tracing does not change the hash.
    let net = NetConfig {
        loss: 0.1,
        duplicate: 0.05,
        tail_prob: 0.1,
        tail_factor: 5,
        ..jittery()
    };
    let procs = vec![
        PingPong {
            count: 200,
            ..Default::default()
        },
        PingPong::default(),
    ];
    let opts = SimOptions {
        tracing: false,
        ..SimOptions::default()
    };
    let mut c = Sim::with_options(42, procs, net, ClockConfig::perfect(), opts);
    c.run_until(SECONDS);
    assert_eq!(c.trace_hash(), a);
    assert!(c.trace().events.is_empty());
}

#[test]
fn determinism_check_catches_a_nondeterministic_build() {
    let calls = std::cell::Cell::new(0u64);
    let build = |seed: u64| {
        calls.set(calls.get() + 1);
        busy(seed + calls.get()) // planted bug: depends on something outside the seed
    };
    let err = check_determinism(1, build, |s| s.run_until(SECONDS)).unwrap_err();
    assert!(err.first_difference.is_some(), "{err}");
}

#[test]
fn overflow_drops_beyond_max_in_flight() {
    let mut sim = pp(
        1,
        100,
        NetConfig {
            max_in_flight: 10,
            ..NetConfig::reliable()
        },
    );
    sim.run_until(SECONDS);
    assert_eq!(sim.stats().dropped(DropReason::Overflow), 90);
    assert_eq!(sim.proc(1).pings.len(), 10);
}

#[test]
fn fault_lists_parse_and_swarm_varies() {
    let s = Fault::parse_list("loss, partition,crash").unwrap();
    assert_eq!(s.to_string(), "loss,partition,crash");
    assert!(Fault::parse_list("loss,flood").is_err());
    assert_eq!(Fault::parse_list("all").unwrap(), FaultSet::all());
    assert!(Fault::parse_list("").unwrap().is_empty());
    let mixes: std::collections::BTreeSet<String> =
        (0..40).map(|s| FaultSet::swarm(s).to_string()).collect();
    assert!(mixes.len() > 20, "{mixes:?}");
    assert_eq!(FaultSet::swarm(9), FaultSet::swarm(9));
}

#[test]
fn nemesis_schedule_is_deterministic_bounded_and_undone() {
    let n = 5;
    let cfg = NemesisConfig::new(n, SECONDS, 10 * SECONDS);
    let a = Nemesis::new(4, FaultSet::all(), n, cfg.clone()).schedule();
    assert_eq!(
        a,
        Nemesis::new(4, FaultSet::all(), n, cfg.clone()).schedule()
    );
    assert_ne!(
        a,
        Nemesis::new(5, FaultSet::all(), n, cfg.clone()).schedule()
    );
    assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(a.len() > 5);
    let mut down = std::collections::BTreeSet::new();
    for (_, act) in &a {
        match act {
            NemesisAction::Crash(p) => assert!(down.insert(*p)),
            NemesisAction::Restart(p) => assert!(down.remove(p)),
            _ => {}
        }
        assert!(down.len() <= cfg.max_crashed);
    }
    assert!(down.is_empty(), "crashed processes left down: {down:?}");
    // Applied to a sim: every network fault is healed at the end.
    let mut sim5 = Sim::new(
        1,
        (0..n).map(|_| PingPong::default()).collect(),
        NetConfig::reliable(),
        ClockConfig::perfect(),
    );
    let mut handled = 0;
    sim5.run_schedule(&a, 11 * SECONDS, |s, act| {
        handled += 1;
        match act {
            NemesisAction::Crash(p) => s.crash(*p),
            NemesisAction::Restart(p) => s.restart(*p, PingPong::default()),
            _ => unreachable!(),
        }
    });
    assert_eq!(
        handled,
        a.iter()
            .filter(|(_, x)| matches!(x, NemesisAction::Crash(_) | NemesisAction::Restart(_)))
            .count()
    );
    assert!((0..n).all(|p| sim5.is_up(p)));
    sim5.with_ctx(0, |_, ctx| ctx.send(4, Pp::Ping(9)));
    sim5.run_until(12 * SECONDS);
    assert_eq!(sim5.proc(4).pings, vec![9]);
}
