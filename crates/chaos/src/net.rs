//! The network the harness builds and breaks: one Linux network namespace
//! per member, each joined by a veth pair to a bridge in the host's
//! namespace, on a /24 of its own. Clients reach the members from the host
//! side through the bridge. A cut between two members is an nftables rule
//! in the receiver's namespace that drops every packet from the sender on
//! arrival (as Jepsen's iptables DROP does: the sender's TCP sees plain
//! loss, never an error), so it drops one direction only; a partition cuts
//! both.

use std::collections::BTreeSet;
use std::process::Command;

use crate::ChaosError;

/// The bridge, the namespaces and the routes a run added; everything is
/// removed on drop.
pub struct Net {
    tag: u32,
    nodes: usize,
    /// Directed cuts in force: (from, to).
    cuts: BTreeSet<(usize, usize)>,
    /// Members whose outgoing link is slowed or whose packets are doubled.
    degraded: BTreeSet<usize>,
}

/// Runs `ip` with `args`; an error carries its output.
pub(crate) fn ip(args: &[&str]) -> Result<(), ChaosError> {
    run("ip", args)
}

pub(crate) fn run(cmd: &str, args: &[&str]) -> Result<(), ChaosError> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| ChaosError::Setup(format!("{cmd} {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(ChaosError::Setup(format!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl Net {
    /// Builds the network of `nodes` members. `tag` (1..=250) names the
    /// bridge and namespaces and picks the subnet, so runs with different
    /// tags do not meet; leftovers of an earlier run with the same tag are
    /// removed first.
    pub fn create(tag: u32, nodes: usize) -> Result<Net, ChaosError> {
        assert!((1..=250).contains(&tag), "a tag names a /24: 1..=250");
        assert!((1..=9).contains(&nodes), "one to nine members");
        if !cfg!(target_os = "linux") {
            return Err(ChaosError::Setup("network namespaces need Linux".into()));
        }
        let net = Net {
            tag,
            nodes,
            cuts: BTreeSet::new(),
            degraded: BTreeSet::new(),
        };
        net.remove();
        let br = net.bridge();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.host_addr()),
            "dev",
            &br,
        ])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 0..nodes {
            let ns = net.ns(i);
            let (host_end, node_end) = (format!("sch{tag}x{i}"), format!("scn{tag}x{i}"));
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
            ])?;
            ip(&["link", "set", &node_end, "netns", &ns])?;
            ip(&["link", "set", &host_end, "master", &br])?;
            ip(&["link", "set", &host_end, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.addr(i)),
                "dev",
                &node_end,
            ])?;
            ip(&["-n", &ns, "link", "set", &node_end, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            net.nft(i, "add table inet chaos")?;
            net.nft(
                i,
                "add chain inet chaos cut { type filter hook input priority 0; policy accept; }",
            )?;
            // nftables' dup works in the ip family only.
            net.nft(i, "add table ip chaosdup")?;
            net.nft(
                i,
                "add chain ip chaosdup out { type filter hook output priority 0; policy accept; }",
            )?;
        }
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("synbr{}", self.tag)
    }

    /// Member `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("synod-{}-n{i}", self.tag)
    }

    /// Member `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.tag, 11 + i)
    }

    /// The host's address on the bridge (where clients come from).
    pub fn host_addr(&self) -> String {
        format!("10.77.{}.1", self.tag)
    }

    /// Number of members.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Runs `nft` in member `i`'s namespace.
    fn nft(&self, i: usize, rule: &str) -> Result<(), ChaosError> {
        ip(&["netns", "exec", &self.ns(i), "nft", rule])
    }

    /// Drops what `from` sends to `to` (one direction).
    pub fn cut(&mut self, from: usize, to: usize) -> Result<(), ChaosError> {
        assert!(from != to && from < self.nodes && to < self.nodes);
        if self.cuts.insert((from, to)) {
            self.nft(
                to,
                &format!("add rule inet chaos cut ip saddr {} drop", self.addr(from)),
            )?;
        }
        Ok(())
    }

    /// Drops `percent` of the packets every other member sends to `to`, at
    /// random (loss, not a cut: TCP retransmits through it).
    pub fn lossy(&mut self, to: usize, percent: u32) -> Result<(), ChaosError> {
        assert!(to < self.nodes && (1..100).contains(&percent));
        for from in (0..self.nodes).filter(|&f| f != to) {
            // Recorded as a cut so that heal flushes the receiver's chain.
            self.cuts.insert((from, to));
            self.nft(
                to,
                &format!(
                    "add rule inet chaos cut ip saddr {} numgen random mod 100 < {percent} drop",
                    self.addr(from)
                ),
            )?;
        }
        Ok(())
    }

    /// Member `i`'s end of its veth pair.
    fn link(&self, i: usize) -> String {
        format!("scn{}x{i}", self.tag)
    }

    /// Slows everything member `i` sends (to members and clients alike) to
    /// `kbit` kilobits a second through a token bucket that queues up to
    /// `queue_ms` of it: a slow or congested link, whose queue delays
    /// packets by up to that much and drops what overflows. (This kernel has
    /// no netem to add a fixed delay; a token bucket filter is what it has.)
    pub fn slow(&mut self, i: usize, kbit: u32, queue_ms: u32) -> Result<(), ChaosError> {
        assert!(i < self.nodes && kbit > 0 && queue_ms > 0);
        self.degraded.insert(i);
        ip(&[
            "netns",
            "exec",
            &self.ns(i),
            "tc",
            "qdisc",
            "replace",
            "dev",
            &self.link(i),
            "root",
            "tbf",
            "rate",
            &format!("{kbit}kbit"),
            "burst",
            "16kbit",
            "latency",
            &format!("{queue_ms}ms"),
        ])
    }

    /// Sends a second copy of `percent`% of what member `i` sends to the
    /// other members (nftables `dup`, chosen at random per packet).
    pub fn duplicate(&mut self, i: usize, percent: u32) -> Result<(), ChaosError> {
        assert!(i < self.nodes && (1..=100).contains(&percent));
        self.degraded.insert(i);
        let pick = if percent == 100 {
            String::new()
        } else {
            format!("numgen random mod 100 < {percent} ")
        };
        for to in (0..self.nodes).filter(|&t| t != i) {
            let a = self.addr(to);
            self.nft(
                i,
                &format!("add rule ip chaosdup out ip daddr {a} {pick}dup to {a}"),
            )?;
        }
        Ok(())
    }

    /// Cuts both directions between every member of `a` and every member of `b`.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) -> Result<(), ChaosError> {
        for &x in a {
            for &y in b {
                self.cut(x, y)?;
                self.cut(y, x)?;
            }
        }
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&mut self) -> Result<(), ChaosError> {
        let receivers: BTreeSet<usize> = self.cuts.iter().map(|&(_, t)| t).collect();
        for to in receivers {
            self.nft(to, "flush chain inet chaos cut")?;
        }
        self.cuts.clear();
        for i in std::mem::take(&mut self.degraded) {
            self.nft(i, "flush chain ip chaosdup out")?;
            // No qdisc to delete (only duplicated) is not an error worth stopping for.
            let _ = ip(&[
                "netns",
                "exec",
                &self.ns(i),
                "tc",
                "qdisc",
                "del",
                "dev",
                &self.link(i),
                "root",
            ]);
        }
        Ok(())
    }

    /// The directed cuts in force.
    pub fn cuts(&self) -> &BTreeSet<(usize, usize)> {
        &self.cuts
    }

    /// Best-effort removal of everything this tag names.
    fn remove(&self) {
        for i in 0..9 {
            // The host end first: a namespace's own interfaces go only when
            // the kernel gets round to destroying it.
            let _ = Command::new("ip")
                .args(["link", "del", &format!("sch{}x{i}", self.tag)])
                .output();
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(i)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .output();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}
