//! Micro benchmark: events per second of the engine with many processes.
//!
//! `cargo run --release -p synod-simnet --example bench -- [PROCS] [SECONDS]`

use synod_simnet::*;

/// Every 10 ms each process sends a small message to a random peer.
struct Chatter;

impl Process for Chatter {
    type Msg = u64;
    fn on_start(&mut self, ctx: &mut Ctx<'_, u64>) {
        ctx.set_timer(10_000, 0);
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, u64>, _from: ProcId, _msg: u64) {}
    fn on_timer(&mut self, ctx: &mut Ctx<'_, u64>, _tag: u64) {
        use rand::Rng;
        let n = ctx.n();
        let to = ctx.rng().random_range(0..n);
        let now = ctx.now();
        ctx.send(to, now);
        ctx.set_timer(10_000, 0);
    }
    fn msg_bytes(_: &u64) -> usize {
        8
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(10_000, |a| a.parse().expect("PROCS"));
    let secs: u64 = args.next().map_or(5, |a| a.parse().expect("SECONDS"));
    let opts = SimOptions {
        tracing: false,
        label_counts: false,
        ..SimOptions::default()
    };
    let net = NetConfig {
        fifo: false,
        loss: 0.01,
        ..NetConfig::reliable()
    };
    let clocks = ClockConfig {
        max_skew: 1_000,
        max_drift_ppm: 100,
    };
    let start = std::time::Instant::now();
    let mut sim = Sim::with_options(1, (0..n).map(|_| Chatter).collect(), net, clocks, opts);
    sim.run_until(secs * SECONDS);
    let wall = start.elapsed().as_secs_f64();
    let s = sim.stats();
    println!(
        "procs={n} virtual_s={secs} events={} sent={} delivered={} wall_s={wall:.3} events_per_s={:.0} hash={:#x}",
        s.events,
        s.sent,
        s.delivered,
        s.events as f64 / wall,
        sim.trace_hash()
    );
}
