//! `synod check HISTORY.jsonl [--time-limit SECS] [--final FINAL.json] [-w json]`:
//! reads a recorded history, checks it, prints the verdict and exits 0
//! (linearizable), 1 (not, or an acknowledged write lost), 2 (undecided within
//! the time limit) or 3 (bad input: the line and what is wrong with it).
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::history::read_jsonl;
use crate::linear::{check, Config, Verdict};
use crate::lost::check_lost;

/// Exit code: the history is linearizable (and nothing was lost).
pub const EXIT_OK: u8 = 0;
/// Exit code: the history is not linearizable, or a write was lost.
pub const EXIT_VIOLATION: u8 = 1;
/// Exit code: no verdict within the time (or memory) limit.
pub const EXIT_UNDECIDED: u8 = 2;
/// Exit code: the input could not be read or breaks the format.
pub const EXIT_BAD_INPUT: u8 = 3;

/// How to print the result.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Sentences for people.
    #[default]
    Simple,
    /// One JSON object.
    Json,
}

/// Arguments of `synod check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The history: one JSON object per line.
    pub history: PathBuf,
    /// Give up after this many seconds (exit 2).
    #[arg(long, default_value_t = 60.0)]
    pub time_limit: f64,
    /// Final values read after healing, as one JSON object `{"key": "value" or
    /// null, ...}`: also check that no acknowledged write was lost.
    #[arg(long = "final")]
    pub final_values: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'w', long = "write-out", value_enum, default_value_t = Output::Simple)]
    pub write_out: Output,
}

/// Runs `synod check`; returns the process exit code.
pub fn run(args: CheckArgs) -> u8 {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_to(&args, &mut out)
}

fn bad_input(args: &CheckArgs, out: &mut dyn Write, line: Option<usize>, error: String) -> u8 {
    let r = if args.write_out == Output::Json {
        let v = serde_json::json!({
            "verdict": "bad_input",
            "line": line,
            "error": error,
        });
        writeln!(out, "{v}")
    } else {
        writeln!(out, "bad input: {error}")
    };
    r.ok();
    EXIT_BAD_INPUT
}

/// Runs `synod check`, printing to `out`; returns the exit code.
pub fn run_to(args: &CheckArgs, out: &mut dyn Write) -> u8 {
    let started = Instant::now();
    let path = args.history.display();
    let file = match std::fs::File::open(&args.history) {
        Ok(f) => f,
        Err(e) => return bad_input(args, out, None, format!("{path}: {e}")),
    };
    let ops = match read_jsonl(std::io::BufReader::new(file)) {
        Ok(ops) => ops,
        Err(e) => return bad_input(args, out, Some(e.line()), format!("{path}: {e}")),
    };
    let final_values: Option<BTreeMap<String, Option<String>>> = match &args.final_values {
        None => None,
        Some(p) => {
            let parsed = std::fs::read_to_string(p)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()));
            match parsed {
                Ok(v) => Some(v),
                Err(e) => return bad_input(args, out, None, format!("{}: {e}", p.display())),
            }
        }
    };
    if !(args.time_limit.is_finite() && args.time_limit > 0.0) {
        return bad_input(
            args,
            out,
            None,
            format!(
                "--time-limit must be a positive number of seconds, not {}",
                args.time_limit
            ),
        );
    }
    let config = Config {
        time_limit: Some(Duration::from_secs_f64(args.time_limit)),
        ..Config::default()
    };
    let report = check(&ops, &config);
    let lost = final_values
        .as_ref()
        .map(|f| check_lost(&ops, f))
        .unwrap_or_default();
    let elapsed = started.elapsed().as_secs_f64();
    let code = match (&report.verdict, lost.is_empty()) {
        (Verdict::NotLinearizable { .. }, _) | (_, false) => EXIT_VIOLATION,
        (Verdict::Undecided { .. }, true) => EXIT_UNDECIDED,
        (Verdict::Linearizable, true) => EXIT_OK,
    };
    let r = if args.write_out == Output::Json {
        let (verdict, key, detail) = match &report.verdict {
            Verdict::Linearizable => ("linearizable", None, None),
            Verdict::NotLinearizable { key, detail } => {
                ("not_linearizable", Some(key.clone()), Some(detail.clone()))
            }
            Verdict::Undecided { key } => ("undecided", Some(key.clone()), None),
        };
        let lost_json: Vec<_> = lost
            .iter()
            .map(|l| {
                serde_json::json!({
                    "key": l.key,
                    "final_value": l.final_value,
                    "lost": l.lost,
                    "detail": l.to_string(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "verdict": verdict,
            "key": key,
            "detail": detail,
            "ops": report.ops,
            "keys": report.keys,
            "states": report.states,
            "elapsed_s": elapsed,
            "lost_writes": final_values.as_ref().map(|_| lost_json),
        });
        writeln!(out, "{v}")
    } else {
        let summary = format!(
            "{} operations over {} keys, {:.3}s",
            report.ops, report.keys, elapsed
        );
        let mut text = match &report.verdict {
            Verdict::Linearizable => format!("linearizable ({summary})\n"),
            Verdict::NotLinearizable { key, detail } => {
                format!("NOT linearizable: key {key:?} ({summary})\n{detail}")
            }
            Verdict::Undecided { key } => format!(
                "undecided: key {key:?} was not decided within the time limit of {}s or the \
                 memory limit ({summary})\n",
                args.time_limit
            ),
        };
        if final_values.is_some() {
            if lost.is_empty() {
                text.push_str("no acknowledged write lost\n");
            }
            for l in &lost {
                text.push_str(&format!("LOST WRITE: {l}\n"));
            }
        }
        write!(out, "{text}")
    };
    r.ok();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempFile(PathBuf);
    impl TempFile {
        fn new(name: &str, text: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("synod-check-{}-{name}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            std::fs::remove_file(&self.0).ok();
        }
    }

    fn args(history: &TempFile, json: bool) -> CheckArgs {
        CheckArgs {
            history: history.0.clone(),
            time_limit: 10.0,
            final_values: None,
            write_out: if json { Output::Json } else { Output::Simple },
        }
    }

    fn run_text(a: &CheckArgs) -> (u8, String) {
        let mut out = Vec::new();
        let code = run_to(a, &mut out);
        (code, String::from_utf8(out).unwrap())
    }

    const PUT: &str = r#"{"client":1,"op":"put","key":"x","value":"a","expected":null,"ok":true,"call":0,"return":10}"#;
    const GET_A: &str = r#"{"client":2,"op":"get","key":"x","value":"a","expected":null,"ok":true,"call":20,"return":30}"#;
    const GET_B: &str = r#"{"client":2,"op":"get","key":"x","value":"b","expected":null,"ok":true,"call":20,"return":30}"#;

    #[test]
    fn exit_codes_and_output() {
        let good = TempFile::new("good.jsonl", &format!("{PUT}\n{GET_A}\n"));
        let (code, text) = run_text(&args(&good, false));
        assert_eq!(code, EXIT_OK, "{text}");
        assert!(
            text.starts_with("linearizable (2 operations over 1 keys"),
            "{text}"
        );

        let bad = TempFile::new("bad.jsonl", &format!("{PUT}\n{GET_B}\n"));
        let (code, text) = run_text(&args(&bad, false));
        assert_eq!(code, EXIT_VIOLATION, "{text}");
        assert!(text.contains("NOT linearizable: key \"x\""), "{text}");
        assert!(text.contains("it read \"b\""), "{text}");

        let (code, text) = run_text(&args(&bad, true));
        assert_eq!(code, EXIT_VIOLATION);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["verdict"], "not_linearizable");
        assert_eq!(v["key"], "x");
        assert_eq!(v["ops"], 2);

        let broken = TempFile::new(
            "broken.jsonl",
            &format!(
                "{PUT}\n{}\n",
                GET_A.replace("\"ok\":true", "\"ok\":true,\"x\":1")
            ),
        );
        let (code, text) = run_text(&args(&broken, false));
        assert_eq!(code, EXIT_BAD_INPUT);
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("unknown field `x`"), "{text}");
        let (code, text) = run_text(&args(&broken, true));
        assert_eq!(code, EXIT_BAD_INPUT);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["line"], 2);

        let mut missing = args(&good, false);
        missing.history = PathBuf::from("/nonexistent/history.jsonl");
        assert_eq!(run_text(&missing).0, EXIT_BAD_INPUT);
    }

    #[test]
    fn undecided_exit_code() {
        // A 20 000-operation key needs at least 20 000 search steps; the
        // clock is consulted every 1024, so a 1 ns limit always runs out.
        let g = crate::generate::linearizable(&crate::generate::Shape {
            ops: 20_000,
            keys: 1,
            clients: 10,
            unknown: 0.05,
            max_latency: 5000,
            ..Default::default()
        });
        let mut text = Vec::new();
        crate::history::write_jsonl(&mut text, &g.ops).unwrap();
        let file = TempFile::new("slow.jsonl", std::str::from_utf8(&text).unwrap());
        let mut a = args(&file, true);
        a.time_limit = 1e-9;
        let (code, text) = run_text(&a);
        assert_eq!(code, EXIT_UNDECIDED, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["verdict"], "undecided");
    }

    #[test]
    fn final_values_check_lost_writes() {
        let good = TempFile::new("lost.jsonl", &format!("{PUT}\n{GET_A}\n"));
        let ok_final = TempFile::new("final-ok.json", r#"{"x":"a"}"#);
        let lost_final = TempFile::new("final-lost.json", r#"{"x":null}"#);
        let mut a = args(&good, false);
        a.final_values = Some(ok_final.0.clone());
        let (code, text) = run_text(&a);
        assert_eq!(code, EXIT_OK, "{text}");
        assert!(text.contains("no acknowledged write lost"));
        a.final_values = Some(lost_final.0.clone());
        let (code, text) = run_text(&a);
        assert_eq!(code, EXIT_VIOLATION, "{text}");
        assert!(text.contains("LOST WRITE: key \"x\" ends absent"), "{text}");
        let garbage = TempFile::new("final-bad.json", "[1]");
        a.final_values = Some(garbage.0.clone());
        assert_eq!(run_text(&a).0, EXIT_BAD_INPUT);
    }
}
