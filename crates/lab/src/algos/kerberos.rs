//! Kerberos V5 (Neuman & Ts'o 1994; RFC 4120): tickets from an
//! authentication server and a ticket-granting server, authenticators that
//! prove a ticket's holder knows its session key, a replay cache, and
//! lifetimes. An eavesdropper replays what she overheard.
//!
//! Encryption is modelled, not computed: a [`Sealed`] value names the key it
//! is sealed under, and a process opens it only with that key.

use std::collections::BTreeSet;

use synod_simnet::{ClockConfig, Ctx, Fault, NetConfig, ProcId, Process, Sim, Time, MILLIS};

use crate::harness::net_for;
use crate::registry::{Algorithm, FaultModel};
use crate::report::{Check, Cost, LabOptions, LabReport, LabRun};

/// The registry entry.
pub const ALGORITHM: Algorithm = Algorithm {
    name: "kerberos",
    family: "coordination and security",
    summary: "AS, TGS and service tickets; replayed authenticators and expired tickets refused",
    description: "Kerberos V5 (Neuman & Ts'o 1994, RFC 4120). P0 is the KDC (authentication\n\
server and ticket-granting server), P1 a service V, P2..P(N-1) clients; the last\n\
lane is Eve, who overhears. Keys: each client shares K_c with the KDC, the TGS\n\
key K_tgs and the service key K_v are known to the KDC (and K_v to V).\n\
1. C→AS: C, TGS. AS→C: {K_c,tgs, expiry}K_c and TGT = {C, K_c,tgs, expiry}K_tgs.\n\
2. C→TGS: V, TGT, {C, t}K_c,tgs. TGS→C: {K_c,v, expiry}K_c,tgs and\n\
   ticket = {C, K_c,v, expiry}K_v (lifetime 100 ms).\n\
3. C→V: ticket, authenticator {C, t}K_c,v. V accepts when the ticket opens with\n\
   K_v and has not expired, the authenticator opens with its session key, names\n\
   the ticket's client, t is within 100 ms of V's clock, and (C, t) is not in the\n\
   replay cache; V answers {t}K_c,v (mutual authentication).\n\
Each client makes three requests with the ticket, a fourth after it expired\n\
(refused), renews the ticket at the TGS and retries. Eve overhears each client's\n\
first request and replays it 55 ms later (the replay cache refuses it) and 250 ms\n\
later (the ticket has expired).\n\
Guarantee: V accepts only genuine, fresh requests: each accepted authenticator\n\
was sent by the client it names, once, under an unexpired ticket.\n\
Outside the model: `clock-skew` moves V's clock 200 ms ahead: genuine\n\
authenticators fall outside the window and tickets look expired (Kerberos needs\n\
loosely synchronised clocks). Planted bugs: `planted-no-replay-cache`,\n\
`planted-ignore-expiry`.\n\
Cost per client: AS 2 + TGS 2 × 2 (first ticket, renewal) + AP 5 × 2 = 16; Eve\n\
adds 1 overheard copy, 2 replays and 2 refusals: 21 per client.",
    variants: &[
        (
            "clock-skew",
            "V's clock runs 200 ms ahead: genuine requests refused",
        ),
        (
            "planted-no-replay-cache",
            "planted bug: V keeps no replay cache",
        ),
        (
            "planted-ignore-expiry",
            "planted bug: V does not check a ticket's expiry",
        ),
    ],
    default_nodes: 4,
    nodes: (3, 32),
    faults: FaultModel {
        tolerates: &[Fault::Duplicate, Fault::Reorder],
        outside: &[],
        refused: "the clients do not retry lost requests, partitions and crashes stop the exchange, and clock faults are scripted by the `clock-skew` variant",
    },
    run,
};

const K_TGS: u64 = 1;
const K_V: u64 = 2;
const TGT_LIFE: Time = 1_000 * MILLIS;
const TICKET_LIFE: Time = 100 * MILLIS;
/// Eve replays this long after she overheard: after the genuine request arrived, even late.
const REPLAY_SOON: Time = 55 * MILLIS;
const WINDOW: Time = 100 * MILLIS;

/// A value sealed under a key: only a holder of `key` opens it.
#[derive(Clone, Debug)]
pub struct Sealed<T> {
    key: u64,
    body: T,
}

impl<T: Clone> Sealed<T> {
    fn open(&self, key: u64) -> Option<T> {
        (self.key == key).then(|| self.body.clone())
    }
}

/// A ticket's contents.
#[derive(Clone, Debug)]
pub struct Ticket {
    client: ProcId,
    session: u64,
    expiry: Time,
}

/// An authenticator's contents.
#[derive(Clone, Debug)]
pub struct Auth {
    client: ProcId,
    time: Time,
}

/// Kerberos messages.
#[derive(Clone, Debug)]
pub enum KrbMsg {
    /// C→AS.
    AsReq,
    /// AS→C: the TGS session key and expiry for C, and the TGT.
    AsRep(Sealed<(u64, Time)>, Sealed<Ticket>),
    /// C→TGS: the TGT and an authenticator.
    TgsReq(Sealed<Ticket>, Sealed<Auth>),
    /// TGS→C: the service session key for C, and the service ticket.
    TgsRep(Sealed<(u64, Time)>, Sealed<Ticket>),
    /// C→V (or Eve→V): a service ticket and an authenticator.
    ApReq(Sealed<Ticket>, Sealed<Auth>),
    /// V→C: the authenticator's time under the session key.
    ApRep(Sealed<Time>),
    /// A refusal, and why.
    Err(&'static str),
    /// A copy of an AP request that Eve overhears.
    Overheard(Sealed<Ticket>, Sealed<Auth>),
}

/// The KDC, the service, a client or Eve.
#[derive(Clone, Debug)]
pub enum Node {
    /// Authentication server and ticket-granting server.
    Kdc,
    /// The service V.
    Service(Service),
    /// A client.
    Client(Client),
    /// The eavesdropper.
    Eve(Vec<(Sealed<Ticket>, Sealed<Auth>)>),
}

/// The service.
#[derive(Clone, Debug, Default)]
pub struct Service {
    replay_cache: bool,
    check_expiry: bool,
    cache: BTreeSet<(ProcId, Time)>,
    /// Accepted requests: (sender, the client the authenticator names, its time, ticket expiry, V's clock).
    pub accepted: Vec<(ProcId, ProcId, Time, Time, Time)>,
    /// Refusals: (sender, reason).
    pub refused: Vec<(ProcId, &'static str)>,
}

/// A client.
#[derive(Clone, Debug, Default)]
pub struct Client {
    eve: ProcId,
    tgs_key: Option<u64>,
    tgt: Option<Sealed<Ticket>>,
    ticket: Option<(u64, Sealed<Ticket>)>,
    /// AP requests sent.
    pub requests: u32,
    /// Requests V accepted (mutually authenticated).
    pub accepted: u32,
    acknowledged: BTreeSet<Time>,
    keys: Vec<u64>,
    awaiting_ticket: bool,
    /// Times of the authenticators sent to V.
    pub sent: Vec<Time>,
    renewed: bool,
}

const T_START: u64 = 0;
const T_USE: u64 = 1;
/// Eve's replays of her i-th overheard request: `T_REPLAY + 2i` soon, `+ 1` late.
const T_REPLAY: u64 = 2;

impl Client {
    fn ap_request(&mut self, ctx: &mut Ctx<'_, KrbMsg>) {
        let Some((key, ticket)) = self.ticket.clone() else {
            return;
        };
        let time = ctx.now();
        let auth = Sealed {
            key,
            body: Auth {
                client: ctx.id(),
                time,
            },
        };
        self.requests += 1;
        self.sent.push(time);
        if self.requests == 1 {
            ctx.send(self.eve, KrbMsg::Overheard(ticket.clone(), auth.clone()));
        }
        ctx.send(1, KrbMsg::ApReq(ticket, auth));
        match self.requests {
            1 | 2 => {
                ctx.set_timer(20 * MILLIS, T_USE);
            }
            3 => {
                ctx.set_timer(TICKET_LIFE + 50 * MILLIS, T_USE);
            }
            _ => {}
        }
    }

    fn tgs_request(&mut self, ctx: &mut Ctx<'_, KrbMsg>) {
        let (Some(key), Some(tgt)) = (self.tgs_key, self.tgt.clone()) else {
            return;
        };
        let auth = Sealed {
            key,
            body: Auth {
                client: ctx.id(),
                time: ctx.now(),
            },
        };
        self.awaiting_ticket = true;
        ctx.send(0, KrbMsg::TgsReq(tgt, auth));
    }
}

impl Process for Node {
    type Msg = KrbMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, KrbMsg>) {
        if let Node::Client(_) = self {
            ctx.set_timer(10 * MILLIS * ctx.id() as Time, T_START);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, KrbMsg>, tag: u64) {
        match (self, tag) {
            (Node::Client(_), T_START) => ctx.send(0, KrbMsg::AsReq),
            (Node::Client(c), T_USE) => c.ap_request(ctx),
            (Node::Eve(heard), tag) if tag >= T_REPLAY => {
                if let Some((t, a)) = heard.get(((tag - T_REPLAY) / 2) as usize).cloned() {
                    ctx.mark("replay");
                    ctx.send(1, KrbMsg::ApReq(t, a));
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, KrbMsg>, from: ProcId, msg: KrbMsg) {
        match (self, msg) {
            (Node::Kdc, KrbMsg::AsReq) => {
                let session: u64 = rand::Rng::random_range(ctx.rng(), 100_000..u64::MAX);
                let expiry = ctx.now() + TGT_LIFE;
                let tgt = Ticket {
                    client: from,
                    session,
                    expiry,
                };
                ctx.send(
                    from,
                    KrbMsg::AsRep(
                        Sealed {
                            key: client_key(from),
                            body: (session, expiry),
                        },
                        Sealed {
                            key: K_TGS,
                            body: tgt,
                        },
                    ),
                );
            }
            (Node::Kdc, KrbMsg::TgsReq(tgt, auth)) => {
                let Some(t) = tgt.open(K_TGS) else { return };
                let ok = auth
                    .open(t.session)
                    .is_some_and(|a| a.client == t.client && t.expiry > ctx.now());
                if !ok {
                    ctx.send(from, KrbMsg::Err("bad TGS request"));
                    return;
                }
                let session: u64 = rand::Rng::random_range(ctx.rng(), 100_000..u64::MAX);
                let expiry = ctx.now() + TICKET_LIFE;
                ctx.send(
                    from,
                    KrbMsg::TgsRep(
                        Sealed {
                            key: t.session,
                            body: (session, expiry),
                        },
                        Sealed {
                            key: K_V,
                            body: Ticket {
                                client: t.client,
                                session,
                                expiry,
                            },
                        },
                    ),
                );
            }
            (Node::Service(v), KrbMsg::ApReq(ticket, auth)) => {
                let now = ctx.now();
                let verdict = match ticket.open(K_V) {
                    None => Err("ticket not for V"),
                    Some(t) if v.check_expiry && t.expiry <= now => Err("ticket expired"),
                    Some(t) => match auth.open(t.session) {
                        None => Err("authenticator under the wrong key"),
                        Some(a) if a.client != t.client => Err("authenticator names another client"),
                        Some(a) if a.time.abs_diff(now) > WINDOW => Err("authenticator outside the clock window"),
                        Some(a) if v.replay_cache && v.cache.contains(&(a.client, a.time)) => {
                            Err("replayed authenticator")
                        }
                        Some(a) => Ok((t, a)),
                    },
                };
                match verdict {
                    Ok((t, a)) => {
                        v.cache.insert((a.client, a.time));
                        v.accepted.push((from, a.client, a.time, t.expiry, now));
                        ctx.send(
                            from,
                            KrbMsg::ApRep(Sealed {
                                key: t.session,
                                body: a.time,
                            }),
                        );
                    }
                    Err(why) => {
                        v.refused.push((from, why));
                        ctx.mark(&format!("refused: {why}"));
                        ctx.send(from, KrbMsg::Err(why));
                    }
                }
            }
            (Node::Client(c), KrbMsg::AsRep(mine, tgt)) if c.tgt.is_none() => {
                if let Some((key, _)) = mine.open(client_key(ctx.id())) {
                    c.tgs_key = Some(key);
                    c.tgt = Some(tgt);
                    c.tgs_request(ctx);
                }
            }
            (Node::Client(c), KrbMsg::TgsRep(mine, ticket)) if c.awaiting_ticket => {
                if let Some((key, _)) = c.tgs_key.and_then(|k| mine.open(k)) {
                    c.awaiting_ticket = false;
                    c.keys.push(key);
                    c.ticket = Some((key, ticket));
                    c.ap_request(ctx);
                }
            }
            (Node::Client(c), KrbMsg::ApRep(proof)) => {
                let time = c.keys.iter().find_map(|&k| proof.open(k));
                if let Some(t) = time.filter(|t| c.sent.contains(t)) {
                    if c.acknowledged.insert(t) {
                        c.accepted += 1;
                    }
                }
            }
            (Node::Client(c), KrbMsg::Err(_)) if from == 1 && !c.renewed && c.requests >= 4 => {
                c.renewed = true;
                ctx.mark("renew ticket");
                c.tgs_request(ctx);
            }
            (Node::Eve(heard), KrbMsg::Overheard(t, a)) => {
                let tag = T_REPLAY + 2 * heard.len() as u64;
                heard.push((t, a));
                ctx.set_timer(REPLAY_SOON, tag);
                ctx.set_timer(250 * MILLIS, tag + 1);
            }
            _ => {}
        }
    }

    fn msg_bytes(msg: &KrbMsg) -> usize {
        match msg {
            KrbMsg::AsReq | KrbMsg::Err(_) => 16,
            KrbMsg::ApRep(_) => 24,
            _ => 96,
        }
    }

    fn msg_label(msg: &KrbMsg) -> String {
        match msg {
            KrbMsg::AsReq => "AS_REQ".into(),
            KrbMsg::AsRep(..) => "AS_REP(TGT)".into(),
            KrbMsg::TgsReq(..) => "TGS_REQ".into(),
            KrbMsg::TgsRep(..) => "TGS_REP(ticket)".into(),
            KrbMsg::ApReq(_, a) => format!("AP_REQ(t={}ms)", a.body.time / MILLIS),
            KrbMsg::ApRep(_) => "AP_REP".into(),
            KrbMsg::Err(why) => format!("KRB_ERR({why})"),
            KrbMsg::Overheard(..) => "Overheard".into(),
        }
    }
}

fn client_key(c: ProcId) -> u64 {
    1_000 + c as u64
}

fn run(opts: &LabOptions) -> LabRun {
    let n = opts.nodes;
    let eve = n;
    let mut procs = vec![
        Node::Kdc,
        Node::Service(Service {
            replay_cache: !opts.is_variant("planted-no-replay-cache"),
            check_expiry: !opts.is_variant("planted-ignore-expiry"),
            ..Service::default()
        }),
    ];
    procs.extend((2..n).map(|_| {
        Node::Client(Client {
            eve,
            ..Client::default()
        })
    }));
    procs.push(Node::Eve(vec![]));
    let mut sim = Sim::new(
        opts.seed,
        procs,
        net_for(&opts.faults, NetConfig::reliable()),
        ClockConfig::perfect(),
    );
    if opts.is_variant("clock-skew") {
        sim.jump_clock(1, 200 * MILLIS);
    }
    sim.run_until(2_000 * MILLIS);
    let trace = sim.take_trace();
    let Node::Service(v) = sim.proc(1) else {
        unreachable!("P1 is the service")
    };
    let clients: Vec<(ProcId, &Client)> = (2..n)
        .filter_map(|p| match sim.proc(p) {
            Node::Client(c) => Some((p, c)),
            _ => None,
        })
        .collect();
    let mut seen = BTreeSet::new();
    let forged: Vec<String> = v
        .accepted
        .iter()
        .filter(|&&(from, named, time, _, _)| from != named || !seen.insert((named, time)))
        .map(|(from, named, time, _, _)| {
            format!("accepted P{named}'s authenticator of {} ms from P{from}", time / MILLIS)
        })
        .collect();
    let expired: Vec<String> = v
        .accepted
        .iter()
        .filter(|&&(_, _, _, expiry, at)| expiry <= at)
        .map(|(from, _, _, expiry, at)| {
            format!(
                "P{from}'s ticket expired at {} ms, accepted at {} ms",
                expiry / MILLIS,
                at / MILLIS
            )
        })
        .collect();
    let served: Vec<String> = clients
        .iter()
        .filter(|(_, c)| c.accepted < 4)
        .map(|(p, c)| format!("P{p} served {} of 4", c.accepted))
        .collect();
    let mut report = LabReport::new(ALGORITHM.name, opts);
    let reasons = |why: &str| v.refused.iter().filter(|(_, w)| *w == why).count();
    report.checks.push(Check::new(
        "V accepts each authenticator once, from the client it names",
        forged.is_empty(),
        if forged.is_empty() {
            format!(
                "{} accepted; {} replays refused by the cache",
                v.accepted.len(),
                reasons("replayed authenticator")
            )
        } else {
            forged.join("; ")
        },
    ));
    report.checks.push(Check::new(
        "V accepts no expired ticket",
        expired.is_empty(),
        if expired.is_empty() {
            format!("{} expired tickets refused", reasons("ticket expired"))
        } else {
            expired.join("; ")
        },
    ));
    report.checks.push(Check::new(
        "every client is served with a valid ticket",
        served.is_empty(),
        if served.is_empty() {
            format!(
                "{} clients, 4 accepted requests each (3 with the first ticket, 1 after renewal)",
                clients.len()
            )
        } else {
            served.join("; ")
        },
    ));
    let c = (n - 2) as f64;
    let plain = opts.faults.is_empty() && opts.variant.is_none();
    let s = sim.stats();
    report.costs.push(Cost::new(
        "messages",
        s.sent as f64,
        "per client AS 2 + TGS 2×2 + AP 5×2, Eve 1 + 2 + 2: 21C",
        plain.then_some(21.0 * c),
    ));
    report.costs.push(Cost::new(
        "KDC messages",
        (s.sent_of("AS_REQ") + s.sent_of("AS_REP") + s.sent_of("TGS_REQ") + s.sent_of("TGS_REP"))
            as f64,
        "one AS and two TGS exchanges per client: 6C",
        plain.then_some(6.0 * c),
    ));
    let mut run = LabRun::new(report, trace);
    run.clients = 1;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(variant: Option<&str>, seed: u64) -> LabReport {
        run(&LabOptions::new(4, seed).with_variant(variant)).report
    }

    #[test]
    fn replays_and_expired_tickets_are_refused() {
        for seed in 1..=4 {
            let r = with(None, seed);
            assert!(r.passed(), "{r:?}");
            assert!(r.checks[0].detail.contains("2 replays refused"), "{r:?}");
            assert!(r.checks[1].detail.starts_with("4 expired"), "{r:?}");
        }
    }

    #[test]
    fn the_checker_catches_an_accepted_replay() {
        let r = with(Some("planted-no-replay-cache"), 1);
        assert!(!r.checks[0].held && r.checks[1].held, "{r:?}");
    }

    #[test]
    fn the_checker_catches_an_accepted_expired_ticket() {
        let r = with(Some("planted-ignore-expiry"), 1);
        assert!(!r.checks[1].held, "{r:?}");
    }

    #[test]
    fn a_skewed_service_clock_refuses_genuine_clients() {
        let r = with(Some("clock-skew"), 1);
        assert!(!r.checks[2].held, "{r:?}");
    }
}
