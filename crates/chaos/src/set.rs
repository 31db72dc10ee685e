//! The set workload: adders that each put fresh keys under one prefix, one
//! after another, through every fault. At the end every acknowledged add
//! must be present, and nothing may be present that no adder tried to add.
//! (The register workload's final reads see only each key's last write;
//! this sees every write that was ever acknowledged.)

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use synod_client::{prefix_end, Client};
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};
use tokio::task::JoinHandle;

/// What the adders tried, and how each try ended.
#[derive(Debug, Default)]
struct Tries {
    acked: BTreeSet<String>,
    unknown: BTreeSet<String>,
}

/// What the set check found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SetReport {
    /// Adds acknowledged.
    pub acked: usize,
    /// Adds whose outcome is unknown.
    pub unknown: usize,
    /// Keys present at the end.
    pub present: usize,
    /// What went wrong, in words (empty: the check passed).
    pub problems: Vec<String>,
}

/// The running adders.
pub struct Adders {
    tasks: Vec<JoinHandle<Tries>>,
    stop: Arc<AtomicBool>,
    prefix: String,
}

async fn add(endpoints: Vec<String>, prefix: String, who: usize, stop: Arc<AtomicBool>) -> Tries {
    let c = crate::client(&endpoints, Duration::from_secs(2), 3).await;
    let mut tries = Tries::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{prefix}{who}-{n:08}");
        n += 1;
        let r = c
            .put(PutRequest {
                key: key.clone().into_bytes(),
                value: b"x".to_vec(),
                ..Default::default()
            })
            .await;
        if r.is_ok() {
            tries.acked.insert(key);
        } else {
            tries.unknown.insert(key);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tries
}

impl Adders {
    /// Starts `n` adders under `prefix`, adder `i` preferring member `i`.
    pub fn start(endpoints: &[String], prefix: &str, n: usize) -> Adders {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n)
            .map(|i| {
                let mut eps = endpoints.to_vec();
                eps.rotate_left(i % endpoints.len());
                tokio::spawn(add(eps, prefix.to_string(), i, stop.clone()))
            })
            .collect();
        Adders {
            tasks,
            stop,
            prefix: prefix.to_string(),
        }
    }

    /// Stops adding and waits for the adds in flight.
    pub async fn stop(self) -> StoppedAdders {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tries::default();
        for t in self.tasks {
            let tries = t.await.expect("an adder never panics");
            all.acked.extend(tries.acked);
            all.unknown.extend(tries.unknown);
        }
        StoppedAdders {
            tries: all,
            prefix: self.prefix,
        }
    }
}

/// Adders that stopped, waiting for the final read.
pub struct StoppedAdders {
    tries: Tries,
    prefix: String,
}

impl StoppedAdders {
    /// Reads every key under the prefix through `reader` and checks it.
    pub async fn check(self, reader: &Client) -> SetReport {
        let r = reader
            .range(RangeRequest {
                key: self.prefix.clone().into_bytes(),
                range_end: prefix_end(self.prefix.as_bytes()),
                keys_only: true,
                ..Default::default()
            })
            .await;
        let present: BTreeSet<String> = match r {
            Ok(r) => r
                .kvs
                .iter()
                .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                .collect(),
            Err(e) => {
                return SetReport {
                    problems: vec![format!("the final read failed: {e}")],
                    ..SetReport::default()
                }
            }
        };
        SetReport {
            acked: self.tries.acked.len(),
            unknown: self.tries.unknown.len(),
            present: present.len(),
            problems: check(&self.tries.acked, &self.tries.unknown, &present),
        }
    }
}

/// Every acknowledged add present; nothing present that was not tried.
fn check(
    acked: &BTreeSet<String>,
    unknown: &BTreeSet<String>,
    present: &BTreeSet<String>,
) -> Vec<String> {
    let lost: Vec<&String> = acked.difference(present).collect();
    let stray: Vec<&String> = present
        .iter()
        .filter(|k| !acked.contains(*k) && !unknown.contains(*k))
        .collect();
    let mut out = Vec::new();
    if !lost.is_empty() {
        out.push(format!(
            "{} acknowledged adds missing at the end, first {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ));
    }
    if !stray.is_empty() {
        out.push(format!(
            "{} keys present that no adder tried, first {:?}",
            stray.len(),
            &stray[..stray.len().min(5)]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn lost_and_stray_adds_are_found() {
        let acked = set(&["a", "b"]);
        let unknown = set(&["c"]);
        assert!(check(&acked, &unknown, &set(&["a", "b"])).is_empty());
        assert!(check(&acked, &unknown, &set(&["a", "b", "c"])).is_empty());
        let p = check(&acked, &unknown, &set(&["a", "c"]));
        assert!(
            p[0].contains("1 acknowledged adds missing") && p[0].contains("\"b\""),
            "{p:?}"
        );
        let p = check(&acked, &unknown, &set(&["a", "b", "z"]));
        assert!(
            p[0].contains("no adder tried") && p[0].contains("\"z\""),
            "{p:?}"
        );
    }
}
