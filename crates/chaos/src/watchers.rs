//! The watch workload: watchers on the register workload's prefix, each
//! preferring a different member, that follow the cluster through every
//! fault (a broken stream is watched again from the revision after the
//! last event seen, as etcd's clients resume). At the end each watcher's
//! events are checked: in revision order with none twice, the same
//! sequence as a fresh watch over the whole run after the heal, and holding
//! every acknowledged write.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use synod_check::{Op, OpKind};
use synod_client::{prefix_end, Client, ClientOptions};
use synod_proto::etcdserverpb::WatchCreateRequest;
use tokio::task::JoinHandle;

/// One event as a watcher saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The event's revision (the key's mod revision).
    pub rev: i64,
    /// The key.
    pub key: String,
    /// The value written; `None` for a delete.
    pub value: Option<String>,
}

/// What the watchers found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WatchReport {
    /// Watchers run.
    pub watchers: usize,
    /// Events in the reference sequence.
    pub events: usize,
    /// Times a watcher's stream broke and was watched again.
    pub resumed: u64,
    /// What went wrong, in words (empty: every check passed).
    pub problems: Vec<String>,
}

/// The running watchers.
pub struct Watchers {
    tasks: Vec<JoinHandle<Result<Vec<Seen>, String>>>,
    /// The revision every watcher must reach before it stops (0: not yet
    /// known).
    until: Arc<AtomicI64>,
    resumed: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    endpoints: Vec<String>,
    prefix: String,
    from: i64,
}

async fn client(endpoints: &[String]) -> Client {
    Client::connect(
        endpoints,
        ClientOptions {
            dial_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            max_attempts: 1,
            probe: false,
            ..ClientOptions::default()
        },
    )
    .await
    .expect("endpoints parse")
}

/// Follows `prefix` from revision `from` until it has seen `until` (once
/// that is set) or `stop` is raised; a broken stream is watched again from
/// after the last event.
async fn follow(
    endpoints: Vec<String>,
    prefix: String,
    from: i64,
    until: Arc<AtomicI64>,
    resumed: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Seen>, String> {
    let mut seen = Vec::new();
    let mut next = from;
    let done = |next: i64| {
        let u = until.load(Ordering::Relaxed);
        u > 0 && next > u
    };
    let mut first = true;
    while !done(next) && !stop.load(Ordering::Relaxed) {
        if !first {
            resumed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        first = false;
        let c = client(&endpoints).await;
        let create = WatchCreateRequest {
            key: prefix.clone().into_bytes(),
            range_end: prefix_end(prefix.as_bytes()),
            start_revision: next,
            ..Default::default()
        };
        let Ok((mut ws, _)) = c.watch(create).await else {
            continue;
        };
        loop {
            if done(next) || stop.load(Ordering::Relaxed) {
                return Ok(seen);
            }
            let r = match tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
                Err(_) => continue,
                Ok(Ok(Some(r))) => r,
                Ok(Ok(None)) | Ok(Err(_)) => break,
            };
            if r.canceled {
                if r.compact_revision > 0 {
                    return Err(format!(
                        "watch from {next} refused: compacted at {}",
                        r.compact_revision
                    ));
                }
                break;
            }
            for ev in r.events {
                let Some(kv) = ev.kv else {
                    return Err("an event without its key".into());
                };
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                let value =
                    (ev.r#type == 0).then(|| String::from_utf8_lossy(&kv.value).into_owned());
                next = next.max(kv.mod_revision + 1);
                seen.push(Seen {
                    rev: kv.mod_revision,
                    key,
                    value,
                });
            }
        }
    }
    Ok(seen)
}

impl Watchers {
    /// Starts `n` watchers of `prefix` from revision `from`, watcher `i`
    /// preferring member `i` (its endpoint listed first).
    pub fn start(endpoints: &[String], prefix: &str, from: i64, n: usize) -> Watchers {
        let until = Arc::new(AtomicI64::new(0));
        let resumed = Arc::new(AtomicI64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n)
            .map(|i| {
                let mut eps = endpoints.to_vec();
                eps.rotate_left(i % endpoints.len());
                tokio::spawn(follow(
                    eps,
                    prefix.to_string(),
                    from,
                    until.clone(),
                    resumed.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        Watchers {
            tasks,
            until,
            resumed,
            stop,
            endpoints: endpoints.to_vec(),
            prefix: prefix.to_string(),
            from,
        }
    }

    /// Lets every watcher run until it has seen revision `until` (at most
    /// `limit`), then checks what they saw against a fresh watch over the
    /// whole run and against `ops`' acknowledged writes.
    pub async fn finish(self, until: i64, limit: Duration, ops: &[Op]) -> WatchReport {
        self.until.store(until, Ordering::Relaxed);
        let t0 = Instant::now();
        let mut seqs = Vec::new();
        let mut problems = Vec::new();
        for (i, mut t) in self.tasks.into_iter().enumerate() {
            let left = limit.saturating_sub(t0.elapsed());
            match tokio::time::timeout(left, &mut t).await {
                Ok(Ok(Ok(s))) => seqs.push(s),
                Ok(Ok(Err(e))) => problems.push(format!("watcher {i}: {e}")),
                Ok(Err(e)) => problems.push(format!("watcher {i} panicked: {e}")),
                Err(_) => {
                    self.stop.store(true, Ordering::Relaxed);
                    let got = t.await.ok().and_then(|r| r.ok()).unwrap_or_default();
                    problems.push(format!(
                        "watcher {i} did not reach revision {until} within {limit:?} (last seen {})",
                        got.last().map_or(0, |s| s.rev)
                    ));
                }
            }
        }
        // The reference: one watch over the whole run, after the heal.
        let stop = Arc::new(AtomicBool::new(false));
        let until = Arc::new(AtomicI64::new(until));
        let reference = tokio::time::timeout(
            limit,
            follow(
                self.endpoints.clone(),
                self.prefix.clone(),
                self.from,
                until,
                Arc::new(AtomicI64::new(0)),
                stop,
            ),
        )
        .await;
        let reference = match reference {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                problems.push(format!("reference watch: {e}"));
                Vec::new()
            }
            Err(_) => {
                problems.push(format!("reference watch did not finish within {limit:?}"));
                Vec::new()
            }
        };
        problems.extend(check(&seqs, &reference, ops));
        problems.truncate(20);
        WatchReport {
            watchers: seqs.len(),
            events: reference.len(),
            resumed: self.resumed.load(Ordering::Relaxed) as u64,
            problems,
        }
    }
}

/// The checks: each watcher's events strictly in revision order (none
/// twice, none out of order), each the same sequence as `reference` up to
/// the last revision both reached, and every acknowledged put (or swap) in
/// `ops` present in `reference` with its value.
pub fn check(seqs: &[Vec<Seen>], reference: &[Seen], ops: &[Op]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, s) in seqs.iter().enumerate() {
        if let Some(w) = s.windows(2).find(|w| w[1].rev <= w[0].rev) {
            out.push(format!(
                "watcher {i}: revision {} ({}) after {} ({}): an event twice or out of order",
                w[1].rev, w[1].key, w[0].rev, w[0].key
            ));
            continue;
        }
        if let Some(k) = (0..s.len().max(reference.len())).find(|&k| s.get(k) != reference.get(k)) {
            let show = |e: Option<&Seen>| {
                e.map_or("nothing".to_string(), |e| {
                    format!("{} {} = {:?}", e.rev, e.key, e.value)
                })
            };
            out.push(format!(
                "watcher {i}: event {k} is {}, where a fresh watch saw {}",
                show(s.get(k)),
                show(reference.get(k))
            ));
        }
    }
    let written: BTreeSet<(&str, &str)> = reference
        .iter()
        .filter_map(|e| e.value.as_deref().map(|v| (e.key.as_str(), v)))
        .collect();
    for op in ops {
        let acked = op.ok == Some(true) && matches!(op.op, OpKind::Put | OpKind::Cas);
        if let (true, Some(v)) = (acked, op.value.as_deref()) {
            if !written.contains(&(op.key.as_str(), v)) {
                out.push(format!(
                    "acknowledged {:?} of {} = {v:?} never reached a watcher",
                    op.op, op.key
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(rev: i64, key: &str, value: Option<&str>) -> Seen {
        Seen {
            rev,
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    fn put(key: &str, value: &str) -> Op {
        Op {
            client: 0,
            op: OpKind::Put,
            key: key.into(),
            value: Some(value.into()),
            expected: None,
            ok: Some(true),
            call: 0,
            ret: Some(1),
        }
    }

    #[test]
    fn each_check_fires() {
        let reference = vec![
            ev(2, "a", Some("1")),
            ev(3, "b", None),
            ev(4, "a", Some("2")),
        ];
        let ops = vec![put("a", "1"), put("a", "2")];
        assert!(check(&[reference.clone(), reference.clone()], &reference, &ops).is_empty());
        // An event twice.
        let twice = vec![
            ev(2, "a", Some("1")),
            ev(2, "a", Some("1")),
            ev(4, "a", Some("2")),
        ];
        let p = check(&[twice], &reference, &ops);
        assert!(p[0].contains("twice or out of order"), "{p:?}");
        // An event missed.
        let missed = vec![ev(2, "a", Some("1")), ev(4, "a", Some("2"))];
        let p = check(&[missed], &reference, &ops);
        assert!(p[0].contains("event 1 is 4 a"), "{p:?}");
        // A different value at the same revision.
        let other = vec![
            ev(2, "a", Some("1")),
            ev(3, "b", None),
            ev(4, "a", Some("3")),
        ];
        let p = check(&[other], &reference, &ops);
        assert!(p[0].contains("event 2"), "{p:?}");
        // An acknowledged write that no watcher saw.
        let p = check(&[], &reference, &[put("a", "9")]);
        assert!(p[0].contains("never reached a watcher"), "{p:?}");
    }
}
