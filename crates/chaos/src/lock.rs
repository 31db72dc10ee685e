//! The lock workload: lockers contend for one lock (etcd's lock recipe,
//! through synod's client, on sessions with a short TTL) and, while they
//! hold it, write fresh keys guarded by their fencing token (the lock key's
//! create revision: a Txn that compares it, so the store refuses a write
//! whose holder lost the lock). Now and then a holder freezes past its TTL
//! before writing, as a paused process would: its lock expires and another
//! takes it. The check reads every key written at the end and orders them
//! by the revision the store gave them: tokens must never go back (no
//! write under a lost lock landed after one under a newer), and each token
//! is one holder's. The planted bug `unfenced-lock` writes without the
//! guard, which is what etcd's lock alone gives, and the check catches it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use synod_client::concurrency::{self, Session};
use synod_client::{prefix_end, Client, Error};
use synod_proto::etcdserverpb::{request_op, PutRequest, RangeRequest, RequestOp, TxnRequest};
use tokio::task::JoinHandle;

use crate::workload::Rng;

/// The lock's name.
const LOCK: &[u8] = b"chaos-lock";
/// Where the guarded writes go.
const DATA: &str = "chaos-lock-data/";
/// Session TTL, in seconds: short, so a frozen holder loses the lock soon.
const TTL: i64 = 2;
/// How long a frozen holder sleeps before its late write (past the TTL).
const FREEZE: Duration = Duration::from_millis(3500);
/// Writes per holding.
const WRITES: u64 = 3;

/// What one locker saw.
#[derive(Debug, Default)]
struct Tally {
    acquired: usize,
    acked: usize,
    refused: usize,
    unknown: usize,
    frozen: usize,
}

/// What the lock check found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LockReport {
    /// Whether the writes were guarded by the fencing token.
    pub fenced: bool,
    /// Times the lock was taken.
    pub acquired: usize,
    /// Holders that froze past their TTL before writing.
    pub frozen: usize,
    /// Guarded writes acknowledged.
    pub acked: usize,
    /// Writes the store refused as fenced off.
    pub refused: usize,
    /// Writes whose outcome is unknown.
    pub unknown: usize,
    /// Writes found at the end.
    pub present: usize,
    /// What went wrong, in words (empty: the check passed).
    pub problems: Vec<String>,
}

/// The running lockers.
pub struct Lockers {
    tasks: Vec<JoinHandle<Tally>>,
    stop: Arc<AtomicBool>,
    fenced: bool,
}

async fn locker(
    endpoints: Vec<String>,
    who: usize,
    seed: u64,
    fenced: bool,
    stop: Arc<AtomicBool>,
) -> Tally {
    let c = crate::client(&endpoints, Duration::from_secs(2), 3).await;
    let mut rng = Rng(seed ^ (who as u64).wrapping_mul(0x5851_F42D_4C95_7F2D));
    let mut t = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let Ok(session) = Session::new(&c, TTL).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let guard = match tokio::time::timeout(
            Duration::from_secs(5),
            concurrency::lock(&c, &session, LOCK),
        )
        .await
        {
            Ok(Ok(g)) => g,
            _ => {
                let _ = session.close().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        t.acquired += 1;
        let token = guard.revision;
        let mut session = Some(session);
        if rng.below(5) == 0 {
            // Frozen: no keep-alives, and the write comes late.
            t.frozen += 1;
            if let Some(s) = session.take() {
                s.abandon();
            }
            tokio::time::sleep(FREEZE).await;
        }
        for n in 0..WRITES {
            let put = PutRequest {
                key: format!("{DATA}{token:012}-{who}-{n}").into_bytes(),
                value: format!("{token} {who}").into_bytes(),
                ..Default::default()
            };
            let op = RequestOp {
                request: Some(request_op::Request::RequestPut(put)),
            };
            let r = if fenced {
                concurrency::fenced(&c, &guard.key, token, vec![op]).await
            } else {
                c.txn(TxnRequest {
                    success: vec![op],
                    ..Default::default()
                })
                .await
            };
            match r {
                Ok(_) => t.acked += 1,
                Err(Error::StaleFence { .. }) => {
                    t.refused += 1;
                    break;
                }
                Err(_) => {
                    t.unknown += 1;
                    break;
                }
            }
        }
        // A frozen holder's lease is gone or going, and its key with it.
        if let Some(s) = session {
            let _ = concurrency::unlock(&c, &guard).await;
            let _ = s.close().await;
        }
    }
    t
}

impl Lockers {
    /// Starts `n` lockers, locker `i` preferring member `i`; `fenced`: guard
    /// the writes by the token (false only for the planted bug).
    pub fn start(endpoints: &[String], n: usize, seed: u64, fenced: bool) -> Lockers {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n)
            .map(|i| {
                let mut eps = endpoints.to_vec();
                eps.rotate_left(i % endpoints.len());
                tokio::spawn(locker(eps, i, seed, fenced, stop.clone()))
            })
            .collect();
        Lockers {
            tasks,
            stop,
            fenced,
        }
    }

    /// Stops the lockers, reads what landed through `reader` and checks it.
    pub async fn finish(self, reader: &Client) -> LockReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut r = LockReport {
            fenced: self.fenced,
            ..LockReport::default()
        };
        for task in self.tasks {
            let t = task.await.expect("a locker never panics");
            r.acquired += t.acquired;
            r.acked += t.acked;
            r.refused += t.refused;
            r.unknown += t.unknown;
            r.frozen += t.frozen;
        }
        let got = reader
            .range(RangeRequest {
                key: DATA.as_bytes().to_vec(),
                range_end: prefix_end(DATA.as_bytes()),
                ..Default::default()
            })
            .await;
        match got {
            Err(e) => r.problems.push(format!("the final read failed: {e}")),
            Ok(resp) => {
                let mut writes = Vec::new();
                for kv in &resp.kvs {
                    let v = String::from_utf8_lossy(&kv.value);
                    match v
                        .split_once(' ')
                        .and_then(|(t, w)| Some((t.parse().ok()?, w.parse().ok()?)))
                    {
                        Some((token, who)) => writes.push((kv.mod_revision, token, who)),
                        None => r.problems.push(format!("unreadable value {v:?}")),
                    }
                }
                r.present = writes.len();
                r.problems.extend(check(writes));
                if r.present < r.acked {
                    r.problems.push(format!(
                        "{} guarded writes acknowledged, only {} present",
                        r.acked, r.present
                    ));
                }
            }
        }
        r
    }
}

/// The writes that landed, as (revision, token, locker): in revision
/// order their tokens never go back, and each token is one locker's.
fn check(mut writes: Vec<(i64, i64, usize)>) -> Vec<String> {
    writes.sort_unstable();
    let mut out = Vec::new();
    let mut owner: BTreeMap<i64, usize> = BTreeMap::new();
    for &(_, token, who) in &writes {
        if let Some(&o) = owner.get(&token) {
            if o != who {
                out.push(format!("token {token} used by lockers {o} and {who}"));
            }
        }
        owner.insert(token, who);
    }
    let backwards: Vec<String> = writes
        .windows(2)
        .filter(|w| w[1].1 < w[0].1)
        .map(|w| {
            format!(
                "locker {} wrote under token {} at revision {}, after locker {} under token {} at {}",
                w[1].2, w[1].1, w[1].0, w[0].2, w[0].1, w[0].0
            )
        })
        .collect();
    if !backwards.is_empty() {
        out.push(format!(
            "{} writes under a lost lock landed after a newer holder's, first: {}",
            backwards.len(),
            backwards[0]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_passes_ordered_tokens_and_catches_the_rest() {
        assert!(check(vec![(5, 3, 0), (6, 3, 0), (9, 8, 1), (12, 11, 0)]).is_empty());
        // A frozen holder's write under token 3 landed after token 8's.
        let p = check(vec![(5, 3, 0), (9, 8, 1), (10, 3, 0)]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("under a lost lock"), "{p:?}");
        // Two lockers claiming one token.
        let p = check(vec![(5, 3, 0), (6, 3, 1)]);
        assert!(p[0].contains("used by lockers 0 and 1"), "{p:?}");
        // Unsorted input is ordered by revision first.
        assert!(check(vec![(9, 8, 1), (5, 3, 0)]).is_empty());
    }
}
