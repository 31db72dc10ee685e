//! Generates a random linearizable history and checks it, printing the
//! checker's throughput.
//!
//! `cargo run -p synod-check --release --example bench_check -- --ops 100000`
//! Options: `--keys N --clients N --unknown P --cas P --latency NS --seed S
//! --plant` (plant a read of a never-written value: the check must fail)
//! `--time-limit SECS --threads N --out FILE` (also write the history).

use std::time::{Duration, Instant};

use synod_check::generate::{linearizable, plant_impossible_read, Shape};
use synod_check::{check, Config, Verdict};

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("bad value for {flag}: {value}"))
}

fn main() {
    let mut shape = Shape {
        ops: 100_000,
        keys: 100,
        clients: 10,
        unknown: 0.01,
        cas: 0.2,
        max_latency: 1_000_000,
        seed: 1,
    };
    let mut plant = false;
    let mut config = Config {
        time_limit: Some(Duration::from_secs(60)),
        ..Config::default()
    };
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--plant" {
            plant = true;
            continue;
        }
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--ops" => shape.ops = parse(&flag, &value),
            "--keys" => shape.keys = parse(&flag, &value),
            "--clients" => shape.clients = parse(&flag, &value),
            "--unknown" => shape.unknown = parse(&flag, &value),
            "--cas" => shape.cas = parse(&flag, &value),
            "--latency" => shape.max_latency = parse(&flag, &value),
            "--seed" => shape.seed = parse(&flag, &value),
            "--threads" => config.threads = parse(&flag, &value),
            "--time-limit" => {
                config.time_limit = Some(Duration::from_secs_f64(parse(&flag, &value)))
            }
            "--out" => out = Some(value),
            _ => panic!("unknown flag {flag}"),
        }
    }
    let t0 = Instant::now();
    let mut generated = linearizable(&shape);
    if plant {
        plant_impossible_read(&mut generated.ops, shape.seed).expect("a read to plant");
    }
    let gen_time = t0.elapsed();
    if let Some(path) = out {
        let file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create --out"));
        synod_check::write_jsonl(file, &generated.ops).expect("write --out");
    }
    let unknown = generated.ops.iter().filter(|o| o.is_unknown()).count();
    let t1 = Instant::now();
    let report = check(&generated.ops, &config);
    let secs = t1.elapsed().as_secs_f64();
    let verdict = match &report.verdict {
        Verdict::Linearizable => "linearizable".to_string(),
        Verdict::NotLinearizable { key, .. } => format!("NOT linearizable (key {key})"),
        Verdict::Undecided { key } => format!("undecided (key {key})"),
    };
    println!(
        "{} ops ({} unknown outcome) over {} keys, {} clients, seed {}: generated in {:.2}s",
        report.ops,
        unknown,
        report.keys,
        shape.clients,
        shape.seed,
        gen_time.as_secs_f64()
    );
    println!(
        "checked in {secs:.3}s with {} threads: {verdict}; {} search states; {:.0} ops/s",
        config.threads,
        report.states,
        report.ops as f64 / secs
    );
    let expected_ok = !plant;
    let ok = matches!(report.verdict, Verdict::Linearizable) == expected_ok;
    std::process::exit(if ok { 0 } else { 1 });
}
