//! Session guarantees per member: read-your-writes and monotonic reads.
//!
//! Serializable reads are served from a member's local state, so they are
//! not linearizable; etcd still promises a client that reads from the
//! member which acknowledged its write that it sees that write, and that
//! the member's reads never go back in revision while it runs. This checker
//! takes what each client observed, in the client's own order, and reports
//! every read that breaks either rule.
//!
//! A member's *incarnation* counts its restarts: a restarted member may
//! recover an older applied state than it served before (its last commit
//! index need not have been durable), so observations are compared only
//! within one incarnation, as a client reconnecting would see them.

use std::collections::BTreeMap;

/// What an observation was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObsKind {
    /// An acknowledged write, at the revision it created.
    Write,
    /// A serializable read, served at this revision.
    Read,
}

/// One thing a client saw from one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The client (not its session: a client keeps its writes across sessions).
    pub client: u64,
    /// The member that answered.
    pub member: u64,
    /// The replication group (revisions are per group).
    pub group: u64,
    /// The member's incarnation when it answered.
    pub incarnation: u64,
    /// Write or read.
    pub kind: ObsKind,
    /// The revision written, or the one the read was served at.
    pub revision: i64,
}

/// A broken session guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionViolation {
    /// The observation that broke it, by its position in the input.
    pub at: usize,
    /// What rule, in words.
    pub detail: String,
}

impl std::fmt::Display for SessionViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "observation {}: {}", self.at, self.detail)
    }
}

/// Checks read-your-writes and monotonic reads per (client, member, group,
/// incarnation); `obs` is in each client's own order (interleaving clients
/// is fine).
pub fn check_sessions(obs: &[Observation]) -> Vec<SessionViolation> {
    // (client, member, group, incarnation) → (highest own write, highest read).
    let mut seen: BTreeMap<(u64, u64, u64, u64), (i64, i64)> = BTreeMap::new();
    let mut out = Vec::new();
    for (at, o) in obs.iter().enumerate() {
        let e = seen
            .entry((o.client, o.member, o.group, o.incarnation))
            .or_insert((0, 0));
        match o.kind {
            ObsKind::Write => e.0 = e.0.max(o.revision),
            ObsKind::Read => {
                if o.revision < e.0 {
                    out.push(SessionViolation {
                        at,
                        detail: format!(
                            "client {} read at revision {} from member {} after that member \
                             acknowledged its write at revision {} (read-your-writes)",
                            o.client, o.revision, o.member, e.0
                        ),
                    });
                }
                if o.revision < e.1 {
                    out.push(SessionViolation {
                        at,
                        detail: format!(
                            "client {} read at revision {} from member {} after reading \
                             revision {} there (monotonic reads)",
                            o.client, o.revision, o.member, e.1
                        ),
                    });
                }
                e.1 = e.1.max(o.revision);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(client: u64, member: u64, incarnation: u64, kind: ObsKind, revision: i64) -> Observation {
        Observation {
            client,
            member,
            group: 1,
            incarnation,
            kind,
            revision,
        }
    }

    #[test]
    fn a_read_behind_the_clients_own_write_on_that_member_is_caught() {
        let obs = [o(1, 2, 0, ObsKind::Write, 10), o(1, 2, 0, ObsKind::Read, 9)];
        let v = check_sessions(&obs);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, 1);
        assert!(v[0].detail.contains("read-your-writes"));
    }

    #[test]
    fn a_read_going_back_on_one_member_is_caught() {
        let obs = [o(1, 2, 0, ObsKind::Read, 12), o(1, 2, 0, ObsKind::Read, 11)];
        let v = check_sessions(&obs);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("monotonic reads"));
    }

    #[test]
    fn other_members_other_clients_and_restarts_are_not_compared() {
        let obs = [
            o(1, 2, 0, ObsKind::Write, 10),
            // Another member may lag: not this rule's business.
            o(1, 3, 0, ObsKind::Read, 5),
            // Another client never wrote there.
            o(2, 2, 0, ObsKind::Read, 4),
            // The member restarted and recovered less.
            o(1, 2, 1, ObsKind::Read, 8),
            // At or past the write: fine.
            o(1, 2, 0, ObsKind::Read, 10),
        ];
        assert!(check_sessions(&obs).is_empty());
    }
}
