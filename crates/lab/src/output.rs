//! The lab CLI's file output: the diagrams and figures a user asked for with
//! `--svg`, `--html` and `--mermaid`, and the tour's directory of pages.
//!
//! This is the only module of the lab that touches the file system, and the
//! determinism rule in `crates/style/tests/rules.rs` exempts exactly this
//! file from its `std::fs` ban: writing what a finished run drew is the
//! driver's job and cannot change a run. The algorithms, the simulator
//! and the renderers never do IO.

use std::path::{Path, PathBuf};

/// Writes `contents` to `path`, creating or truncating the file.
pub fn write_file(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Creates the directory `path` and its parents (`synod lab tour --html DIR`).
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

/// Where `--svg PATH` puts the figure named `name`: beside `PATH`, as
/// `STEM-NAME.svg` (`out/run.svg` → `out/run-phi.svg`; `out/run` →
/// `out/run-phi.svg`).
pub fn figure_path(svg: &Path, name: &str) -> PathBuf {
    let stem = match svg.extension() {
        Some(ext) if ext.eq_ignore_ascii_case("svg") => svg.with_extension(""),
        _ => svg.to_path_buf(),
    };
    let mut file = stem.file_name().unwrap_or_default().to_os_string();
    file.push(format!("-{name}.svg"));
    stem.with_file_name(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_go_beside_the_diagram() {
        let p = |s: &str| figure_path(Path::new(s), "phi");
        assert_eq!(p("out/run.svg"), Path::new("out/run-phi.svg"));
        assert_eq!(p("run.SVG"), Path::new("run-phi.svg"));
        assert_eq!(p("out/run"), Path::new("out/run-phi.svg"));
        assert_eq!(p("a.b/run.v1.svg"), Path::new("a.b/run.v1-phi.svg"));
    }
}
