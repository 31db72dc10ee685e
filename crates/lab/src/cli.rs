//! `synod lab`: list, describe and run algorithms; print checks and costs;
//! write diagrams.

use std::path::PathBuf;

use synod_simnet::Fault;

use crate::diagram::{
    render_html, render_mermaid, render_svg, render_tour, DiagramOptions, TourEntry,
    DEFAULT_MAX_EVENTS, DEFAULT_MAX_LANES,
};
use crate::output::{create_dir, figure_path, write_file};
use crate::registry::{algorithms, find, Algorithm};
use crate::report::{LabOptions, LabReport};

/// Arguments of `synod lab`.
#[derive(clap::Args, Debug)]
pub struct LabArgs {
    /// `list`, `describe ALGORITHM`, `tour --html DIR` (every algorithm, one
    /// index page), or an algorithm's name.
    #[arg(required = true, num_args = 1..=2)]
    pub args: Vec<String>,
    /// Number of processes (default: the algorithm's own).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// The seed of the run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Faults to switch on: loss, duplicate, reorder, partition, oneway, clog, crash, skew, all, none.
    #[arg(long, default_value = "none")]
    pub faults: String,
    /// A variant of the algorithm (see `synod lab describe`).
    #[arg(long)]
    pub variant: Option<String>,
    /// Output format.
    #[arg(short = 'w', long = "write-out", default_value = "simple", value_parser = ["simple", "json"])]
    pub write_out: String,
    /// Write the space-time diagram as SVG; a run's extra figures (φ-accrual's
    /// suspicion plot) go beside it as FILE-NAME.svg (run.svg → run-phi.svg).
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Write a self-contained HTML page (diagram, extra figures, legend, checks,
    /// costs); with `tour`, the directory for the index and one page per algorithm.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write a Mermaid sequence diagram.
    #[arg(long)]
    pub mermaid: Option<PathBuf>,
    /// Draw at most this many events.
    #[arg(long, default_value_t = DEFAULT_MAX_EVENTS)]
    pub max_events: usize,
    /// Draw lanes for at most this many processes (the first ones); the
    /// drawing names how many more were left out.
    #[arg(long, default_value_t = DEFAULT_MAX_LANES)]
    pub max_lanes: usize,
}

/// Exit code: every check held.
pub const EXIT_OK: u8 = 0;
/// Exit code: a check did not hold.
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Exit code: bad arguments or an output file could not be written.
pub const EXIT_USAGE: u8 = 2;

/// Runs `synod lab`; returns the process exit code.
pub fn run(args: LabArgs) -> u8 {
    match args.args.first().map(String::as_str) {
        Some("list") => {
            print!("{}", list_text());
            EXIT_OK
        }
        Some("describe") => match args.args.get(1).map(|n| find(n)) {
            Some(Ok(a)) => {
                print!("{}", describe_text(a));
                EXIT_OK
            }
            Some(Err(e)) => usage(&e.to_string()),
            None => usage("describe needs an algorithm name"),
        },
        Some("tour") if args.args.len() == 1 => match &args.html {
            Some(dir) => tour(dir, &args),
            None => usage("tour needs --html DIR"),
        },
        Some(name) if args.args.len() == 1 => run_algorithm(name, &args),
        _ => usage("expected `list`, `describe ALGORITHM` or an algorithm name"),
    }
}

fn usage(msg: &str) -> u8 {
    eprintln!("synod lab: {msg}");
    EXIT_USAGE
}

/// The text of `synod lab list`: the algorithms grouped by family, the
/// families in the order their first algorithm is registered.
pub fn list_text() -> String {
    let width = algorithms().iter().map(|a| a.name.len()).max().unwrap_or(0);
    let mut families: Vec<&str> = vec![];
    for a in algorithms() {
        if !families.contains(&a.family) {
            families.push(a.family);
        }
    }
    let mut s = String::new();
    for (i, fam) in families.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&format!("{fam}:\n"));
        for a in algorithms().iter().filter(|a| a.family == *fam) {
            s.push_str(&format!("  {:width$}  {}\n", a.name, a.summary));
        }
    }
    s
}

/// The text of `synod lab describe ALGORITHM`.
pub fn describe_text(a: &Algorithm) -> String {
    let mut s = format!(
        "{} ({})\n\n{}\n\nnodes: {} by default, {}..={}\n",
        a.name, a.family, a.description, a.default_nodes, a.nodes.0, a.nodes.1
    );
    let names = |fs: &[synod_simnet::Fault]| {
        if fs.is_empty() {
            "none".to_string()
        } else {
            fs.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
        }
    };
    s.push_str(&format!(
        "faults tolerated (checks hold): {}\nfaults outside the model (applied; checks may fail): {}\n",
        names(a.faults.tolerates),
        names(a.faults.outside)
    ));
    let refused = a.faults.refuses();
    if !refused.is_empty() {
        s.push_str(&format!(
            "faults refused: {} ({})\n",
            names(&refused),
            a.faults.refused
        ));
    }
    if a.variants.is_empty() {
        s.push_str("variants: none\n");
    } else {
        s.push_str("variants:\n");
        for (v, what) in a.variants {
            s.push_str(&format!("  {v}: {what}\n"));
        }
    }
    s
}

/// The simple (human) rendering of a report.
pub fn simple_text(r: &LabReport, faults: &str) -> String {
    let mut s = format!(
        "{}: {} nodes, seed {}, faults {}\n",
        r.algorithm, r.nodes, r.seed, faults
    );
    for c in &r.checks {
        s.push_str(&format!(
            "  [{}] {}: {}\n",
            if c.held { " ok " } else { "FAIL" },
            c.name,
            c.detail
        ));
    }
    for c in &r.costs {
        let mut expected = c
            .expected
            .map_or(String::new(), |e| format!(", expected {e}"));
        if let Some(b) = c.bound {
            match (b.min, b.max) {
                (Some(lo), Some(hi)) => expected.push_str(&format!(", bound {lo}..={hi}")),
                (Some(lo), None) => expected.push_str(&format!(", bound ≥ {lo}")),
                (None, Some(hi)) => expected.push_str(&format!(", bound ≤ {hi}")),
                (None, None) => {}
            }
        }
        if let Some(a) = c.approx {
            expected.push_str(&format!(", about {a:.2}"));
        }
        s.push_str(&format!(
            "  cost {}: measured {}{expected} ({})\n",
            c.name, c.measured, c.formula
        ));
    }
    s
}

/// `synod lab tour --html DIR`: runs every algorithm on its defaults (the
/// seed of `--seed`, no faults), writes `DIR/NAME.html` for each and
/// `DIR/index.html` with every diagram and its checks; prints one line per
/// algorithm. Exits 1 when a check failed anywhere.
fn tour(dir: &std::path::Path, args: &LabArgs) -> u8 {
    if let Err(e) = create_dir(dir) {
        return usage(&format!("cannot create {}: {e}", dir.display()));
    }
    let mut entries = vec![];
    for a in algorithms() {
        let opts = LabOptions::new(a.default_nodes, args.seed);
        let lab = match a.execute(&opts) {
            Ok(r) => r,
            Err(e) => return usage(&e.to_string()),
        };
        let dopts = DiagramOptions {
            nodes: opts.nodes + lab.clients,
            max_events: args.max_events,
            max_lanes: args.max_lanes,
            title: format!("{} · {} nodes · seed {}", a.name, opts.nodes, opts.seed),
        };
        let page = format!("{}.html", a.name);
        let html = render_html(&lab.trace, &lab.report, &lab.figures, a.description, &dopts);
        if let Err(e) = write_file(&dir.join(&page), &html) {
            return usage(&format!("cannot write {}: {e}", dir.join(&page).display()));
        }
        let held = lab.report.checks.iter().filter(|c| c.held).count();
        println!(
            "{:24} {} of {} checks held",
            a.name,
            held,
            lab.report.checks.len()
        );
        entries.push(TourEntry {
            name: a.name.to_string(),
            family: a.family.to_string(),
            summary: a.summary.to_string(),
            svg: render_svg(&lab.trace, &dopts),
            report: lab.report,
            page,
        });
    }
    let index = dir.join("index.html");
    if let Err(e) = write_file(&index, &render_tour(&entries, args.seed)) {
        return usage(&format!("cannot write {}: {e}", index.display()));
    }
    println!("wrote {}", index.display());
    if entries.iter().all(|e| e.report.passed()) {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    }
}

fn run_algorithm(name: &str, args: &LabArgs) -> u8 {
    let alg = match find(name) {
        Ok(a) => a,
        Err(e) => return usage(&e.to_string()),
    };
    let faults = match Fault::parse_list(&args.faults) {
        Ok(f) => f,
        Err(e) => return usage(&e.to_string()),
    };
    let opts = LabOptions {
        nodes: args.nodes.unwrap_or(alg.default_nodes),
        seed: args.seed,
        faults,
        variant: args.variant.clone(),
    };
    let lab = match alg.execute(&opts) {
        Ok(r) => r,
        Err(e) => return usage(&e.to_string()),
    };
    if args.write_out == "json" {
        println!("{}", lab.report.to_json());
    } else {
        print!("{}", simple_text(&lab.report, &opts.faults.to_string()));
        for f in opts
            .faults
            .iter()
            .filter(|f| alg.faults.outside.contains(f))
        {
            println!(
                "  note: {} is outside {}'s model: its checks may fail",
                f.name(),
                alg.name
            );
        }
    }
    let dopts = DiagramOptions {
        nodes: opts.nodes + lab.clients,
        max_events: args.max_events,
        max_lanes: args.max_lanes,
        title: format!(
            "{} · {} nodes · seed {} · faults {}",
            alg.name, opts.nodes, opts.seed, opts.faults
        ),
    };
    let mut files: Vec<(PathBuf, String)> = vec![];
    if let Some(p) = &args.svg {
        files.push((p.clone(), render_svg(&lab.trace, &dopts)));
        for f in &lab.figures {
            files.push((figure_path(p, &f.name), f.svg.clone()));
        }
    }
    if let Some(p) = &args.html {
        let page = render_html(
            &lab.trace,
            &lab.report,
            &lab.figures,
            alg.description,
            &dopts,
        );
        files.push((p.clone(), page));
    }
    if let Some(p) = &args.mermaid {
        files.push((p.clone(), render_mermaid(&lab.trace, &dopts)));
    }
    for (path, contents) in &files {
        if let Err(e) = write_file(path, contents) {
            return usage(&format!("cannot write {}: {e}", path.display()));
        }
    }
    if lab.report.passed() {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    }
}
