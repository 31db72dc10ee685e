//! Token-ring mutual exclusion, with token-loss detection by timeout and
//! regeneration by a ring election whose epochs fence off stale tokens.

use std::collections::BTreeMap;

use synod_simnet::{Ctx, Fault, NetConfig, ProcId, Time, TraceKind};

use crate::algos::mutex_common::{
    all_done, build, outcome, rounds, run_with_faults, Demand, Protocol, Site,
};
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "token-ring",
    family: "mutual exclusion",
    summary: "a token circulates on a ring; lost tokens are regenerated under a new epoch",
    description: "Token ring with token regeneration.\n\
Rules: one TOKEN(epoch, hop) circulates P0 → P1 → … → P0; only its holder may enter\n\
the CS, and passes it on when done (or after a short hold if it does not want it).\n\
A site accepts a token only if (epoch, hop) exceeds the highest it has seen, so\n\
duplicates and stale tokens are discarded. A site that has not seen the token for a\n\
timeout longer than a rotation suspects it lost and sends CLAIM(epoch+1, id) round the\n\
ring (Chang–Roberts: a better claim or the token's holder swallows it); a forwarder\n\
raises its floor to the claim's epoch, so once a claim returns to its initiator no\n\
older token can be accepted anywhere, and the initiator creates TOKEN(epoch, 1). A\n\
holder that swallows a higher claim moves its token to that epoch.\n\
Guarantee: never two sites in the CS; never two tokens accepted in one epoch; every\n\
request served once faults heal (loss, duplication, reordering, crash-restart with the\n\
epoch kept durable, partitions). Variant lose-token drops the token once; variant\n\
no-epoch regenerates on a short timeout without election or epochs (planted bug).\n\
Cost: 1 token message per entry when every site waits, N when one site waits (the token\n\
travels the whole ring), more when idle sites keep it moving; N claims per regeneration.",
    variants: &[
        ("lose-token", "P1 loses the token the first time it gets it: detected and regenerated"),
        ("no-epoch", "planted bug: on a short timeout a site just creates a new token, no election, no epochs"),
    ],
    default_nodes: 4,
    nodes: (2, 64),
    faults: FaultModel {
        tolerates: &[Fault::Loss, Fault::Duplicate, Fault::Reorder, Fault::Partition, Fault::OneWay, Fault::Clog, Fault::Crash, Fault::Skew],
        outside: &[],
        refused: "every fault kind applies",
    },
    run,
};

const TAG_WATCH: u64 = 1;
const TAG_PASS: u64 = 2;
/// How long an idle holder keeps the token before passing it on (µs).
const HOLD: Time = 1_000;

/// Token-ring messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// The token: its epoch and hop count.
    Token(u64, u64),
    /// A regeneration claim: epoch and initiator.
    Claim(u64, ProcId),
}

/// One site on the ring.
#[derive(Clone, Debug, Default)]
pub struct Ring {
    /// Highest (epoch, hop) accepted, or (claim epoch, 0) forwarded. Durable.
    pub seen: (u64, u64),
    holding: Option<(u64, u64)>,
    wants: bool,
    in_cs: bool,
    candidate: Option<u64>,
    last_token: Time,
    timeout: Time,
    starts_with_token: bool,
    lose_once: bool,
    no_epoch: bool,
}

impl Ring {
    fn next(ctx: &Ctx<'_, Msg>) -> ProcId {
        (ctx.id() + 1) % ctx.n()
    }

    /// Takes the token; returns true if the site enters the CS now.
    fn take(&mut self, ctx: &mut Ctx<'_, Msg>, tok: (u64, u64)) -> bool {
        self.holding = Some(tok);
        self.seen = self.seen.max(tok);
        self.candidate = None;
        self.last_token = ctx.now();
        ctx.stamp(&format!("e{}.{}", tok.0, tok.1));
        if self.wants {
            self.wants = false;
            self.in_cs = true;
            return true;
        }
        ctx.set_timer(HOLD, TAG_PASS);
        false
    }

    fn pass(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some((e, h)) = self.holding.take() {
            ctx.send(Self::next(ctx), Msg::Token(e, h + 1));
        }
    }
}

impl Protocol for Ring {
    type Msg = Msg;

    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.last_token = ctx.now();
        ctx.set_timer(self.timeout / 2, TAG_WATCH);
        if self.starts_with_token {
            self.starts_with_token = false;
            ctx.mark("token created");
            self.take(ctx, (1, 1));
        }
    }

    fn request(&mut self, _ctx: &mut Ctx<'_, Msg>) -> bool {
        if self.holding.is_some() {
            self.in_cs = true;
            return true;
        }
        self.wants = true;
        false
    }

    fn release(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.in_cs = false;
        self.pass(ctx);
    }

    fn message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcId, msg: Msg) -> bool {
        let me = ctx.id();
        match msg {
            Msg::Token(e, h) => {
                if self.lose_once {
                    self.lose_once = false;
                    ctx.mark("token lost");
                    return false;
                }
                let fresh = (e, h) > self.seen || (self.no_epoch && self.holding.is_none());
                if !fresh {
                    ctx.mark("stale token");
                    return false;
                }
                return self.take(ctx, (e, h));
            }
            Msg::Claim(e, id) => {
                if let Some(held) = self.holding {
                    if e > held.0 {
                        let moved = (e, 1);
                        self.holding = Some(moved);
                        self.seen = self.seen.max(moved);
                        ctx.stamp(&format!("e{e}.1"));
                    }
                } else if e <= self.seen.0 {
                    // An old claim: a newer epoch exists.
                } else if id == me {
                    if self.candidate == Some(e) {
                        ctx.mark("token regenerated");
                        return self.take(ctx, (e, 1));
                    }
                } else if self.candidate.is_some_and(|c| (c, me) > (e, id)) {
                    // Our own claim is better; swallow this one.
                } else {
                    self.candidate = None;
                    self.seen = (e, 0);
                    self.last_token = ctx.now();
                    ctx.send(Self::next(ctx), Msg::Claim(e, id));
                }
            }
        }
        false
    }

    fn timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) -> bool {
        match tag {
            TAG_PASS if !self.in_cs => self.pass(ctx),
            TAG_WATCH => {
                ctx.set_timer(self.timeout / 2, TAG_WATCH);
                let quiet = ctx.now().saturating_sub(self.last_token) >= self.timeout;
                if quiet && self.holding.is_none() {
                    self.last_token = ctx.now();
                    ctx.mark("suspect token lost");
                    if self.no_epoch {
                        ctx.mark("token regenerated");
                        return self.take(ctx, (0, 0));
                    }
                    let e = self.seen.0 + 1;
                    self.candidate = Some(e);
                    ctx.send(Self::next(ctx), Msg::Claim(e, ctx.id()));
                }
            }
            _ => {}
        }
        false
    }

    fn label(msg: &Msg) -> String {
        match msg {
            Msg::Token(e, h) => format!("Token(e{e}.{h})"),
            Msg::Claim(e, id) => format!("Claim(e{e},P{id})"),
        }
    }

    fn bytes(_msg: &Msg) -> usize {
        17
    }
}

fn demand(r: u32) -> impl Fn(ProcId) -> Demand + Copy {
    move |_p: ProcId| Demand {
        requests: r,
        think: (1_000, 20_000),
        cs: 2_000,
    }
}

/// Token acceptances read from the trace's stamps: the first epoch in which two
/// tokens were accepted (hop numbers not strictly increasing), if any.
fn two_tokens_in_an_epoch(trace: &synod_simnet::Trace) -> (u64, Option<String>) {
    let mut last: BTreeMap<u64, (u64, ProcId)> = BTreeMap::new();
    let mut accepted = 0;
    for ev in &trace.events {
        let (TraceKind::Deliver { label, .. }, Some(stamp)) = (&ev.kind, &ev.stamp) else {
            continue;
        };
        if !label.starts_with("Token") {
            continue;
        }
        let Some((e, h)) = stamp.trim_start_matches('e').split_once('.') else {
            continue;
        };
        let (Ok(e), Ok(h)) = (e.parse::<u64>(), h.parse::<u64>()) else {
            continue;
        };
        accepted += 1;
        if let Some(&(prev, p)) = last.get(&e) {
            if h <= prev {
                let what = format!(
                    "epoch {e}: P{} accepted hop {h} after P{p} accepted hop {prev}",
                    ev.proc
                );
                return (accepted, Some(what));
            }
        }
        last.insert(e, (h, ev.proc));
    }
    (accepted, None)
}

fn run(opts: &LabOptions) -> LabRun {
    let demand = demand(rounds(opts));
    let n = opts.nodes;
    let no_epoch = opts.is_variant("no-epoch");
    let lose = opts.is_variant("lose-token");
    let timeout = if no_epoch {
        8_000
    } else {
        n as Time * 25_000 + 50_000
    };
    let make = move |p: ProcId| Ring {
        timeout,
        starts_with_token: p == 0,
        lose_once: lose && p == 1,
        no_epoch,
        ..Ring::default()
    };
    let mut sim = build(opts, NetConfig::reliable(), demand, make);
    let rebuild = move |p: ProcId, old: &Site<Ring>| {
        Site::new(
            Ring {
                seen: old.proto.seen,
                starts_with_token: false,
                lose_once: false,
                ..make(p)
            },
            demand(p),
        )
    };
    run_with_faults(&mut sim, opts, 5_000_000, 0, all_done, rebuild);
    let trace = sim.take_trace();
    let o = outcome(&trace, n);
    let mut report = LabReport::new(ALGORITHM.name, opts);
    report.checks.extend(o.checks(&trace));
    let (accepted, dup) = two_tokens_in_an_epoch(&trace);
    report.checks.push(Check::new(
        "never two tokens accepted in the same epoch",
        dup.is_none(),
        dup.unwrap_or_else(|| {
            format!("{accepted} token acceptances, hops increasing within each epoch")
        }),
    ));
    let s = sim.stats();
    let entries = o.entries.max(1) as f64;
    let regens = trace
        .events
        .iter()
        .filter(|e| matches!(&e.kind, TraceKind::Mark { label } if label == "token regenerated"))
        .count();
    report.costs.push(Cost::new(
        "token messages per CS entry",
        s.sent_of("Token") as f64 / entries,
        &format!(
            "between 1 (all waiting) and N = {n} (one waiting), more while idle sites pass it"
        ),
        None,
    ));
    report.costs.push(Cost::new(
        "regenerations",
        regens as f64,
        "0 without token loss",
        None,
    ));
    report.costs.push(Cost::new(
        "claim messages",
        s.sent_of("Claim") as f64,
        "≤ N per claim; N per successful regeneration",
        None,
    ));
    LabRun::new(report, trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_simnet::Fault;

    fn with(n: usize, seed: u64, variant: Option<&str>, faults: &str) -> LabReport {
        let mut o = LabOptions::new(n, seed);
        o.variant = variant.map(String::from);
        o.faults = Fault::parse_list(faults).unwrap();
        run(&o).report
    }

    #[test]
    fn safe_and_live_without_faults_and_within_one_to_n_messages() {
        for seed in 0..4 {
            let r = with(4, seed, None, "");
            assert!(r.passed(), "{r:?}");
            assert_eq!(
                r.costs[1].measured, 0.0,
                "no regeneration without loss: {r:?}"
            );
            let per = r.costs[0].measured;
            assert!(
                (1.0..=4.0).contains(&per),
                "{per} token messages per entry: {r:?}"
            );
        }
    }

    #[test]
    fn a_lost_token_is_regenerated() {
        for seed in 0..3 {
            let r = with(4, seed, Some("lose-token"), "");
            assert!(r.passed(), "{r:?}");
            assert!(r.costs[1].measured >= 1.0, "{r:?}");
        }
    }

    #[test]
    fn survives_message_faults_and_crashes() {
        for (seed, faults) in [
            (0, "loss"),
            (1, "duplicate,reorder"),
            (2, "crash"),
            (3, "loss,duplicate,partition"),
        ] {
            let r = with(4, seed, None, faults);
            assert!(r.passed(), "{faults}: {r:?}");
        }
    }

    #[test]
    fn regeneration_without_epochs_is_caught() {
        let caught = (0..6).any(|seed| {
            let r = with(4, seed, Some("no-epoch"), "");
            !r.checks[0].held && !r.checks[2].held
        });
        assert!(caught, "no-epoch never produced two tokens");
    }
}
