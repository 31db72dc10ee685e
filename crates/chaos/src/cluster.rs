//! The members: `synod server` processes (or `etcd`, for the side-by-side
//! run), one per namespace, each with its own data dir, started, killed,
//! paused and resumed from outside.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::net::{run, Net};
use crate::ChaosError;

/// Which database the members run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// `synod server`.
    Synod,
    /// A real `etcd` (Debian's etcd-server), with the same flags.
    Etcd,
}

/// The running members.
pub struct Cluster {
    target: Target,
    binary: PathBuf,
    dir: PathBuf,
    children: Vec<Option<Child>>,
    paused: Vec<bool>,
    initial: String,
    extra: Vec<String>,
    /// libfaketime, preloaded into every member so its clock can be moved
    /// from outside (through the file [`Cluster::clock_file`] names).
    faketime: Option<PathBuf>,
    /// Each data dir is a tmpfs of this many bytes, so that one can be
    /// filled up without touching the machine's disk (the disk-full fault).
    quota: Option<u64>,
}

/// The file that fills a member's data dir.
const BALLAST: &str = "chaos-ballast";

/// Where Debian's `faketime` package puts the multi-threaded library.
const FAKETIME_LIBS: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
];

/// The multi-threaded libfaketime, if installed.
pub fn faketime_lib() -> Result<PathBuf, ChaosError> {
    FAKETIME_LIBS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| {
            ChaosError::Setup("clock faults need libfaketime (Debian's faketime package)".into())
        })
}

/// The client port of every member.
pub const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;

impl Cluster {
    /// Starts every member of `net` under `dir` (one data dir and one log
    /// per member). `binary` is synod's or etcd's executable; `extra`
    /// flags go to every member.
    pub fn start(
        net: &Net,
        target: Target,
        binary: &Path,
        dir: &Path,
        extra: &[String],
        faketime: Option<PathBuf>,
        quota: Option<u64>,
    ) -> Result<Cluster, ChaosError> {
        let initial = (0..net.nodes())
            .map(|i| format!("m{i}=http://{}:{PEER_PORT}", net.addr(i)))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            target,
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            children: (0..net.nodes()).map(|_| None).collect(),
            paused: vec![false; net.nodes()],
            initial,
            extra: extra.to_vec(),
            faketime,
            quota,
        };
        if let Some(bytes) = quota {
            for i in 0..net.nodes() {
                let d = c.data_dir(i);
                std::fs::create_dir_all(&d)
                    .map_err(|e| ChaosError::Setup(format!("{}: {e}", d.display())))?;
                let d = d.to_string_lossy().into_owned();
                run(
                    "mount",
                    &["-t", "tmpfs", "-o", &format!("size={bytes}"), "chaos", &d],
                )?;
            }
        }
        for i in 0..net.nodes() {
            c.spawn(net, i, "new")?;
        }
        Ok(c)
    }

    /// Fills member `i`'s data dir (a tmpfs of the quota's size) to the
    /// last byte with a ballast file; returns the bytes it took.
    pub fn fill(&self, i: usize) -> Result<u64, ChaosError> {
        use std::io::Write;
        assert!(self.quota.is_some(), "a disk-full fault needs a quota");
        let path = self.data_dir(i).join(BALLAST);
        let mut f = File::create(&path)
            .map_err(|e| ChaosError::Setup(format!("{}: {e}", path.display())))?;
        let chunk = vec![0xa5u8; 1 << 20];
        let mut written = 0u64;
        // Megabytes until the file system is full, then what fits byte-wise.
        for size in [chunk.len(), 4096, 1] {
            loop {
                match f.write(&chunk[..size]) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                    Err(e) => return Err(ChaosError::Setup(format!("{}: {e}", path.display()))),
                }
            }
        }
        Ok(written)
    }

    /// Removes member `i`'s ballast (heal of a disk-full fault).
    pub fn unfill(&self, i: usize) -> Result<(), ChaosError> {
        let path = self.data_dir(i).join(BALLAST);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ChaosError::Setup(format!("{}: {e}", path.display()))),
        }
    }

    /// If member `i` exited on its own: its exit status, and it is marked stopped.
    pub fn exited_one(&mut self, i: usize) -> Option<String> {
        let st = self.children[i].as_mut()?.try_wait().ok()??;
        self.children[i] = None;
        Some(st.to_string())
    }

    fn spawn(&mut self, net: &Net, i: usize, state: &str) -> Result<(), ChaosError> {
        assert!(self.children[i].is_none(), "member {i} is running");
        let addr = net.addr(i);
        let log_path = self.dir.join(format!("m{i}.log"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| ChaosError::Setup(format!("{}: {e}", log_path.display())))?;
        let err = log
            .try_clone()
            .map_err(|e| ChaosError::Setup(format!("{}: {e}", log_path.display())))?;
        let data = self.data_dir(i);
        let client = format!("http://{addr}:{CLIENT_PORT}");
        let peer = format!("http://{addr}:{PEER_PORT}");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &net.ns(i)]).arg(&self.binary);
        if let Some(lib) = &self.faketime {
            let clock = self.clock_file(i);
            set_clock(&clock, 0)?;
            // Read at every call: a change lands at once. Only the wall
            // clock moves: a machine's monotonic clock never steps (NTP
            // slews it), while its wall clock is stepped back and forth.
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME_TIMESTAMP_FILE", &clock)
                .env("FAKETIME_NO_CACHE", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        if self.target == Target::Synod {
            cmd.arg("server");
        }
        cmd.args(["--name", &format!("m{i}")])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-state", state])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| ChaosError::Setup(format!("start member {i}: {e}")))?;
        self.children[i] = Some(child);
        self.paused[i] = false;
        Ok(())
    }

    /// The client endpoints, member by member.
    pub fn endpoints(net: &Net) -> Vec<String> {
        (0..net.nodes())
            .map(|i| format!("{}:{CLIENT_PORT}", net.addr(i)))
            .collect()
    }

    /// Kills member `i` with SIGKILL (its data dir stays).
    pub fn kill(&mut self, i: usize) -> Result<(), ChaosError> {
        if let Some(mut c) = self.children[i].take() {
            if self.paused[i] {
                let _ = run("kill", &["-CONT", &c.id().to_string()]);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused[i] = false;
        Ok(())
    }

    /// Starts member `i` again from its data dir.
    pub fn restart(&mut self, net: &Net, i: usize) -> Result<(), ChaosError> {
        self.spawn(net, i, "new")
    }

    /// Starts member `i`, stopped and its data dir emptied, as a new member
    /// joining the running cluster (after a `member add` of its peer URL).
    pub fn join(&mut self, net: &Net, i: usize) -> Result<(), ChaosError> {
        self.spawn(net, i, "existing")
    }

    /// The file holding member `i`'s clock offset (libfaketime's format).
    pub fn clock_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("m{i}.clock"))
    }

    /// Member `i`'s data dir.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("m{i}"))
    }

    /// Empties the data dir of stopped member `i`.
    pub fn wipe(&mut self, i: usize) -> Result<(), ChaosError> {
        assert!(self.children[i].is_none(), "member {i} is running");
        let d = self.data_dir(i);
        let err = |e: std::io::Error| ChaosError::Setup(format!("{}: {e}", d.display()));
        if self.quota.is_some() {
            // A mount point: empty it, keep it.
            for entry in std::fs::read_dir(&d).map_err(err)? {
                let p = entry.map_err(err)?.path();
                if p.is_dir() {
                    std::fs::remove_dir_all(&p).map_err(err)?;
                } else {
                    std::fs::remove_file(&p).map_err(err)?;
                }
            }
            return Ok(());
        }
        match std::fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    /// The peer URL of member `i`.
    pub fn peer_url(net: &Net, i: usize) -> String {
        format!("http://{}:{PEER_PORT}", net.addr(i))
    }

    /// Whether member `i` runs (it may be paused).
    pub fn running(&self, i: usize) -> bool {
        self.children[i].is_some()
    }

    /// Stops member `i` with SIGSTOP.
    pub fn pause(&mut self, i: usize) -> Result<(), ChaosError> {
        if let Some(c) = &self.children[i] {
            run("kill", &["-STOP", &c.id().to_string()])?;
            self.paused[i] = true;
        }
        Ok(())
    }

    /// Resumes member `i` with SIGCONT.
    pub fn resume(&mut self, i: usize) -> Result<(), ChaosError> {
        if let Some(c) = &self.children[i] {
            run("kill", &["-CONT", &c.id().to_string()])?;
            self.paused[i] = false;
        }
        Ok(())
    }

    /// Members that exited on their own: (member, exit status).
    pub fn exited(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Some(ch) = c {
                if let Ok(Some(st)) = ch.try_wait() {
                    out.push((i, st.to_string()));
                    *c = None;
                }
            }
        }
        out
    }

    /// The last lines of member `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join(format!("m{i}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Sets the offset of the wall clock that reads `file` to `secs` seconds,
/// replacing the file whole so that a
/// reader never sees it half written.
pub fn set_clock(file: &Path, secs: i64) -> Result<(), ChaosError> {
    let tmp = file.with_extension("clock-next");
    let io = |e: std::io::Error| ChaosError::Setup(format!("{}: {e}", file.display()));
    std::fs::write(&tmp, format!("{secs:+}\n")).map_err(io)?;
    std::fs::rename(&tmp, file).map_err(io)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            let _ = self.kill(i);
            if self.quota.is_some() {
                // The run's files go with it; the report, history and logs
                // sit beside the data dirs and stay.
                let _ = run("umount", &[&self.data_dir(i).to_string_lossy()]);
            }
        }
    }
}
