//! Real-browser rendering: one HTML diagram per family (logical clocks,
//! physical clocks, global state, mutual exclusion, deadlock detection,
//! broadcast, gossip, failure detection, consensus and election, byzantine
//! agreement, transactions, partitioning and overlays, replication,
//! coordination and security, and the φ-accrual plot) is opened
//! in headless Chromium, which writes a screenshot; the PNG must decode and
//! show many colours and a fair share of non-white pixels. A test checks
//! that the list below covers every family in the registry.
//!
//! Skips with a notice when no `chromium` is installed (CI's script installs
//! it: `apt-get install -y chromium`). Set `SYNOD_KEEP_SCREENSHOTS=1` to keep
//! the files and print where they are.
//!
//! The PNG decoder (zlib inflate and scanline filters) is written here, so the
//! test needs no extra dependency.

use std::path::PathBuf;
use std::process::Command;

use synod_lab::diagram::{render_html, DiagramOptions};
use synod_lab::{find, LabOptions};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synod-lab-browser-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Headless Chromium (under a 60 s timeout, fresh profile, nothing fetched
/// in the background) about to open `html`, written to a fresh directory;
/// also the directory and the page's path. `None`, with a notice, when no
/// browser is installed.
fn headless(name: &str, html: &str) -> Option<(Command, PathBuf, PathBuf)> {
    let Some(bin) = chromium() else {
        eprintln!("browser test `{name}` skipped: chromium is not installed (apt-get install -y chromium)");
        return None;
    };
    let dir = workdir(name);
    let page = dir.join("page.html");
    std::fs::write(&page, html).unwrap();
    let mut chrome = Command::new("timeout");
    chrome.arg("60").arg(bin).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]);
    chrome.arg(format!("--user-data-dir={}", dir.join("profile").display()));
    Some((chrome, dir, page))
}

/// Renders `html` in headless Chromium and returns the decoded screenshot, or
/// `None` (with a notice) when no browser is installed.
fn screenshot(name: &str, html: &str) -> Option<Image> {
    let (mut chrome, dir, page) = headless(name, html)?;
    let png = dir.join("shot.png");
    let out = chrome
        .arg("--hide-scrollbars")
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,800")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        png.exists(),
        "chromium wrote no screenshot for {name}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let img = decode_png(&std::fs::read(&png).unwrap()).expect("a valid PNG");
    if std::env::var_os("SYNOD_KEEP_SCREENSHOTS").is_some() {
        eprintln!("screenshot of {name}: {}", png.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Some(img)
}

fn assert_rendered(name: &str, img: &Image) {
    assert_eq!(
        (img.width, img.height),
        (1200, 800),
        "{name}: unexpected size"
    );
    let mut colours = std::collections::BTreeSet::new();
    let mut non_white = 0usize;
    for px in img.rgb.chunks(3) {
        colours.insert((px[0], px[1], px[2]));
        if px.iter().any(|&c| c < 235) {
            non_white += 1;
        }
    }
    let share = non_white as f64 / (img.width * img.height) as f64;
    assert!(
        colours.len() >= 20,
        "{name}: only {} colours: blank page?",
        colours.len()
    );
    assert!(
        share > 0.005,
        "{name}: only {:.3} % of pixels are drawn",
        share * 100.0
    );
}

fn family_page(alg: &str, nodes: usize, variant: Option<&str>) -> String {
    let a = find(alg).unwrap();
    let mut o = LabOptions::new(nodes, 3);
    o.variant = variant.map(str::to_string);
    let run = a.execute(&o).unwrap();
    let d = DiagramOptions {
        nodes,
        max_events: 400,
        max_lanes: 32,
        title: format!("{alg} · browser test"),
    };
    render_html(&run.trace, &run.report, &run.figures, a.description, &d)
}

/// The algorithm drawn for each family in the tests below.
const FAMILY_PAGES: &[(&str, &str)] = &[
    ("logical clocks", "lamport-clock"),
    ("physical clocks", "cristian"),
    ("global state", "chandy-lamport"),
    ("mutual exclusion", "ricart-agrawala"),
    ("deadlock detection", "chandy-misra-haas"),
    ("broadcast", "echo"),
    ("gossip", "anti-entropy"),
    ("failure detection", "swim"),
    ("consensus and election", "paxos"),
    ("byzantine agreement", "byzantine-generals"),
    ("transactions", "three-phase-commit"),
    ("partitioning and overlays", "consistent-hashing"),
    ("replication", "crdt"),
    ("coordination and security", "rpc-semantics"),
    ("consistency models", "consistency-models"),
];

#[test]
fn every_family_has_a_browser_test() {
    for a in synod_lab::algorithms() {
        let drawn = FAMILY_PAGES.iter().find(|(f, _)| *f == a.family);
        let (_, alg) = drawn.unwrap_or_else(|| panic!("family {:?} has no browser test", a.family));
        assert_eq!(find(alg).unwrap().family, a.family);
    }
}

#[test]
fn consensus_diagram_renders() {
    let html = family_page("paxos", 5, None);
    if let Some(img) = screenshot("paxos", &html) {
        assert_rendered("paxos", &img);
    }
}

#[test]
fn transactions_diagram_renders() {
    let html = family_page("three-phase-commit", 4, Some("partition"));
    if let Some(img) = screenshot("three-phase-commit", &html) {
        assert_rendered("three-phase-commit", &img);
    }
}

#[test]
fn overlays_diagram_renders() {
    let html = family_page("consistent-hashing", 6, None);
    if let Some(img) = screenshot("consistent-hashing", &html) {
        assert_rendered("consistent-hashing", &img);
    }
}

#[test]
fn replication_diagram_renders() {
    let html = family_page("crdt", 4, None);
    if let Some(img) = screenshot("crdt", &html) {
        assert_rendered("crdt", &img);
    }
}

#[test]
fn coordination_diagram_renders() {
    let html = family_page("rpc-semantics", 3, None);
    if let Some(img) = screenshot("rpc-semantics", &html) {
        assert_rendered("rpc-semantics", &img);
    }
}

#[test]
fn consistency_models_diagram_renders() {
    let html = family_page("consistency-models", 3, None);
    if let Some(img) = screenshot("consistency-models", &html) {
        assert_rendered("consistency-models", &img);
    }
}

#[test]
fn byzantine_diagram_renders() {
    let html = family_page("byzantine-generals", 4, None);
    if let Some(img) = screenshot("byzantine-generals", &html) {
        assert_rendered("byzantine-generals", &img);
    }
}

#[test]
fn physical_clocks_diagram_renders() {
    let html = family_page("cristian", 4, None);
    if let Some(img) = screenshot("cristian", &html) {
        assert_rendered("cristian", &img);
    }
}

#[test]
fn global_state_diagram_renders() {
    let html = family_page("chandy-lamport", 4, None);
    if let Some(img) = screenshot("chandy-lamport", &html) {
        assert_rendered("chandy-lamport", &img);
    }
}

#[test]
fn mutual_exclusion_diagram_renders() {
    let html = family_page("ricart-agrawala", 4, None);
    if let Some(img) = screenshot("ricart-agrawala", &html) {
        assert_rendered("ricart-agrawala", &img);
    }
}

#[test]
fn deadlock_detection_diagram_renders() {
    let html = family_page("chandy-misra-haas", 4, None);
    if let Some(img) = screenshot("chandy-misra-haas", &html) {
        assert_rendered("chandy-misra-haas", &img);
    }
}

#[test]
fn logical_clocks_diagram_renders() {
    let html = family_page("lamport-clock", 3, None);
    if let Some(img) = screenshot("lamport-clock", &html) {
        assert_rendered("lamport-clock", &img);
    }
}

#[test]
fn broadcast_diagram_renders() {
    let html = family_page("echo", 6, None);
    if let Some(img) = screenshot("echo", &html) {
        assert_rendered("echo", &img);
    }
}

#[test]
fn gossip_diagram_renders() {
    let html = family_page("anti-entropy", 8, Some("push-pull"));
    if let Some(img) = screenshot("anti-entropy", &html) {
        assert_rendered("anti-entropy", &img);
    }
}

#[test]
fn failure_detection_diagram_renders() {
    let html = family_page("swim", 5, None);
    if let Some(img) = screenshot("swim", &html) {
        assert_rendered("swim", &img);
    }
}

/// The φ-accrual run carries its suspicion plot as a figure; the page puts
/// it beside the diagram, and the plot on its own renders.
#[test]
fn phi_plot_renders() {
    let page = family_page("phi-accrual", 4, None);
    assert!(page.contains("id=\"figure-phi\"") && page.matches("<svg").count() == 2);
    let run = find("phi-accrual")
        .unwrap()
        .execute(&LabOptions::new(4, 1))
        .unwrap();
    let svg = &run.figures[0].svg;
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>{svg}</body></html>"
    );
    if let Some(img) = screenshot("phi-plot", &html) {
        assert_rendered("phi-plot", &img);
    }
    if let Some(img) = screenshot("phi-page", &page) {
        assert_rendered("phi-page", &img);
    }
}

/// Loads `html` in headless Chromium at `fragment` (`#select=K`), lets its
/// script run, and returns the DOM it ends with; `None` without a browser.
fn dump_dom(name: &str, html: &str, fragment: &str) -> Option<String> {
    let (mut chrome, dir, page) = headless(name, html)?;
    let out = chrome
        .arg("--virtual-time-budget=3000")
        .arg("--dump-dom")
        .arg(format!("file://{}{fragment}", page.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("</html>"),
        "chromium dumped no DOM for {name}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Some(dom)
}

/// The attributes of every element of `dom` that carries `attr`, as
/// (value of `attr`, whole tag).
fn tags_with<'a>(dom: &'a str, attr: &str) -> Vec<(String, &'a str)> {
    let key = format!("{attr}=\"");
    dom.split('<')
        .filter_map(|tag| {
            let tag = tag.split('>').next()?;
            let at = tag.find(&key)? + key.len();
            let value = tag[at..].split('"').next()?.to_string();
            Some((value, tag))
        })
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    tag[at..].split('"').next()
}

/// A click on an event (the page's `#select=K` hook calls the same
/// function as a click) highlights exactly its causal past and future, as
/// the trace's true happens-before has them, and greys every concurrent
/// event. The page loads nothing from the network.
#[test]
fn a_click_highlights_the_causal_past_and_future() {
    use synod_lab::causality::Causality;
    use synod_simnet::TraceKind;
    let a = find("ricart-agrawala").unwrap();
    let run = a.execute(&LabOptions::new(3, 2)).unwrap();
    let d = DiagramOptions {
        nodes: 3,
        max_events: 100_000,
        max_lanes: 32,
        title: "click test".into(),
    };
    let html = render_html(&run.trace, &run.report, &run.figures, a.description, &d);
    let urls: Vec<&str> = html
        .match_indices("http")
        .map(|(i, _)| &html[i..(i + 40).min(html.len())])
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .filter(|u| !u.starts_with("http://www.w3.org/2000/svg"))
        .collect();
    assert!(urls.is_empty(), "the page refers to the network: {urls:?}");
    let events = &run.trace.events;
    let hb = Causality::from_trace(&run.trace, 3);
    let k = (events.len() / 2..events.len())
        .find(|&i| matches!(events[i].kind, TraceKind::Deliver { .. }))
        .expect("a delivery in the second half");
    let Some(dom) = dump_dom("click", &html, &format!("#select={k}")) else {
        return;
    };
    assert!(
        dom.contains(&format!("data-selected=\"{k}\"")),
        "the hook did not select {k}"
    );
    let (mut past, mut future, mut concurrent) = (0, 0, 0);
    let drawn = tags_with(&dom, "data-i");
    assert!(drawn.len() > 20, "too few events drawn: {}", drawn.len());
    for (i, tag) in drawn {
        let j: usize = i.parse().unwrap();
        let class = attr(tag, "class").unwrap_or("");
        let want = if j == k {
            "selected"
        } else if hb.vector(j).is_none() {
            ""
        } else if hb.happens_before(j, k) {
            past += 1;
            "past"
        } else if hb.happens_before(k, j) {
            future += 1;
            "future"
        } else {
            concurrent += 1;
            "concurrent"
        };
        assert_eq!(
            class.split(' ').nth(1).unwrap_or(""),
            want,
            "event {j} ({:?}) after a click on {k}: class {class:?}",
            events[j].kind
        );
    }
    assert!(
        past > 0 && future > 0 && concurrent > 0,
        "{past} {future} {concurrent}"
    );
}

/// In a dense run, message labels are drawn only where they fit: some are
/// hidden, the rest shown.
#[test]
fn dense_runs_show_labels_only_where_they_fit() {
    let a = find("ricart-agrawala").unwrap();
    let run = a.execute(&LabOptions::new(8, 1)).unwrap();
    let d = DiagramOptions::new(8, "dense");
    let html = render_html(&run.trace, &run.report, &run.figures, a.description, &d);
    let Some(dom) = dump_dom("dense", &html, "") else {
        return;
    };
    let view = &dom[dom.find("id=\"lab-svg\"").expect("the interactive view")..];
    let labels = tags_with(view, "font-size")
        .into_iter()
        .filter(|(size, t)| size == "8" && t.starts_with("text"))
        .collect::<Vec<_>>();
    let hidden = labels
        .iter()
        .filter(|(_, t)| t.contains("display: none"))
        .count();
    assert!(
        hidden > 0 && hidden < labels.len(),
        "{hidden} of {} labels hidden",
        labels.len()
    );
}

#[test]
fn png_decoder_reads_a_stored_block_image() {
    // 2×1 RGB image, filter 0, zlib with one stored block.
    let raw = [0u8, 255, 0, 0, 0, 0, 255];
    let mut z = vec![0x78, 0x01, 1, raw.len() as u8, 0, !(raw.len() as u8), 0xff];
    z.extend_from_slice(&raw);
    z.extend_from_slice(&[0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        png.extend_from_slice(&[0, 0, 0, 0]);
    };
    let mut ihdr = vec![];
    ihdr.extend_from_slice(&2u32.to_be_bytes());
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    let img = decode_png(&png).unwrap();
    assert_eq!(img.rgb, vec![255, 0, 0, 0, 0, 255]);
    assert!(decode_png(b"not a png").is_none());
}

// ---- a small PNG decoder: 8-bit RGB/RGBA/grey, non-interlaced ----

struct Image {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

fn decode_png(data: &[u8]) -> Option<Image> {
    if data.len() < 8 || &data[..8] != b"\x89PNG\r\n\x1a\n" {
        return None;
    }
    let (mut pos, mut idat, mut hdr) = (8, vec![], None);
    while pos + 8 <= data.len() {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().ok()?) as usize;
        let kind = &data[pos + 4..pos + 8];
        let body = data.get(pos + 8..pos + 8 + len)?;
        match kind {
            b"IHDR" => hdr = Some(body.to_vec()),
            b"IDAT" => idat.extend_from_slice(body),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    let h = hdr?;
    let width = u32::from_be_bytes(h[0..4].try_into().ok()?) as usize;
    let height = u32::from_be_bytes(h[4..8].try_into().ok()?) as usize;
    let (depth, colour, interlace) = (h[8], h[9], h[12]);
    let channels = match colour {
        0 => 1,
        2 => 3,
        4 => 2,
        6 => 4,
        _ => return None,
    };
    if depth != 8 || interlace != 0 {
        return None;
    }
    let raw = inflate(idat.get(2..)?)?;
    let stride = width * channels;
    if raw.len() < height * (stride + 1) {
        return None;
    }
    let mut out = vec![0u8; height * stride];
    for y in 0..height {
        let filter = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels {
                out[y * stride + x - channels] as i32
            } else {
                0
            };
            let b = if y > 0 {
                out[(y - 1) * stride + x] as i32
            } else {
                0
            };
            let c = if x >= channels && y > 0 {
                out[(y - 1) * stride + x - channels] as i32
            } else {
                0
            };
            let pred = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                _ => return None,
            };
            out[y * stride + x] = (line[x] as i32 + pred) as u8;
        }
    }
    let rgb = out
        .chunks(channels)
        .flat_map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    Some(Image { width, height, rgb })
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let b = (self.data.get(self.pos / 8)? >> (self.pos % 8)) & 1;
        self.pos += 1;
        Some(b as u32)
    }
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for i in 0..n {
            v |= self.bit()? << i;
        }
        Some(v)
    }
}

/// A canonical Huffman code: symbols sorted by (length, value).
struct Huffman {
    counts: [u16; 16],
    symbols: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Huffman {
        let mut counts = [0u16; 16];
        for &l in lengths {
            counts[l as usize] += 1;
        }
        counts[0] = 0;
        let mut symbols = vec![];
        for len in 1..16 {
            for (s, &l) in lengths.iter().enumerate() {
                if l as usize == len {
                    symbols.push(s as u16);
                }
            }
        }
        Huffman { counts, symbols }
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Option<u16> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.bit()? as i32;
            let count = self.counts[len] as i32;
            if code - first < count {
                return self.symbols.get((index + code - first) as usize).copied();
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        None
    }
}

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// Raw DEFLATE (RFC 1951) decoder.
fn inflate(data: &[u8]) -> Option<Vec<u8>> {
    let mut bits = Bits { data, pos: 0 };
    let mut out: Vec<u8> = vec![];
    loop {
        let last = bits.bit()?;
        match bits.bits(2)? {
            0 => {
                let start = bits.pos.div_ceil(8);
                let len = u16::from_le_bytes([*data.get(start)?, *data.get(start + 1)?]) as usize;
                out.extend_from_slice(data.get(start + 4..start + 4 + len)?);
                bits.pos = (start + 4 + len) * 8;
            }
            kind @ (1 | 2) => {
                let (lit, dist) = if kind == 1 {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    (Huffman::new(&l), Huffman::new(&[5u8; 30]))
                } else {
                    dynamic_tables(&mut bits)?
                };
                loop {
                    let sym = lit.decode(&mut bits)? as usize;
                    if sym < 256 {
                        out.push(sym as u8);
                    } else if sym == 256 {
                        break;
                    } else {
                        let i = sym - 257;
                        let len =
                            *LEN_BASE.get(i)? as usize + bits.bits(LEN_EXTRA[i] as u32)? as usize;
                        let d = dist.decode(&mut bits)? as usize;
                        let dist =
                            *DIST_BASE.get(d)? as usize + bits.bits(DIST_EXTRA[d] as u32)? as usize;
                        if dist > out.len() {
                            return None;
                        }
                        let from = out.len() - dist;
                        for k in 0..len {
                            out.push(out[from + k]);
                        }
                    }
                }
            }
            _ => return None,
        }
        if last == 1 {
            return Some(out);
        }
    }
}

fn dynamic_tables(bits: &mut Bits<'_>) -> Option<(Huffman, Huffman)> {
    let hlit = bits.bits(5)? as usize + 257;
    let hdist = bits.bits(5)? as usize + 1;
    let hclen = bits.bits(4)? as usize + 4;
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];
    let mut cl = [0u8; 19];
    for &o in ORDER.iter().take(hclen) {
        cl[o] = bits.bits(3)? as u8;
    }
    let clh = Huffman::new(&cl);
    let mut lengths = vec![];
    while lengths.len() < hlit + hdist {
        match clh.decode(bits)? {
            s @ 0..=15 => lengths.push(s as u8),
            16 => {
                let prev = *lengths.last()?;
                let r = 3 + bits.bits(2)?;
                lengths.extend(std::iter::repeat_n(prev, r as usize));
            }
            17 => {
                let r = 3 + bits.bits(3)?;
                lengths.extend(std::iter::repeat_n(0, r as usize));
            }
            _ => {
                let r = 11 + bits.bits(7)?;
                lengths.extend(std::iter::repeat_n(0, r as usize));
            }
        }
    }
    Some((
        Huffman::new(&lengths[..hlit]),
        Huffman::new(&lengths[hlit..hlit + hdist]),
    ))
}
