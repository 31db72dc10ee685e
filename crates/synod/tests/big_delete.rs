//! Issue 13, item 7, with real processes: a 3-member cluster takes many
//! keys (transactions of 128 puts, from several tasks at once), then one
//! delete range removes them all. The delete must answer the count of every
//! key, and no member may see an election while it applies (the term and
//! leader before and after agree). Before the apply was bounded per Ready,
//! the delete ran inside one Ready for seconds, the leader's heartbeats
//! stopped and the followers elected another leader.
//!
//! `SYNOD_BIG_DELETE_KEYS` sets the number of keys (default 250 000; the
//! issue saw the stall at 358 762).

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, ScratchDir};
use synod_client::{Client, ClientOptions};
use synod_proto::etcdserverpb::{
    request_op, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest,
};

const DEFAULT_KEYS: u64 = 250_000;
const BATCH: u64 = 128;
const LOADERS: u64 = 8;

fn key(i: u64) -> Vec<u8> {
    format!("big/{i:09}").into_bytes()
}

/// (highest term, leaders) as every member reports them.
async fn terms(client: &Client) -> (u64, Vec<u64>) {
    let mut term = 0;
    let mut leaders = Vec::new();
    for (ep, st) in client.status_all().await {
        let st = st.unwrap_or_else(|e| panic!("status of {ep}: {e}"));
        let h = st.header.expect("a header");
        term = term.max(h.raft_term);
        leaders.push(st.leader);
    }
    (term, leaders)
}

#[test]
fn one_delete_of_many_keys_costs_no_election() {
    let n: u64 = std::env::var("SYNOD_BIG_DELETE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KEYS);
    let scratch = ScratchDir::new("synod-big-delete");
    let cl = Cluster::start_fresh(3, &scratch.0);
    let endpoints: Vec<String> = cl.endpoints().split(',').map(String::from).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let opts = ClientOptions {
        request_timeout: Duration::from_secs(120),
        max_attempts: 1,
        probe: false,
        ..ClientOptions::default()
    };
    let client = rt
        .block_on(Client::connect(&endpoints, opts.clone()))
        .expect("endpoints parse");

    let t0 = Instant::now();
    let loaders: Vec<_> = (0..LOADERS)
        .map(|w| {
            let c = rt
                .block_on(Client::connect(
                    &endpoints,
                    ClientOptions {
                        start_at: w as usize,
                        ..opts.clone()
                    },
                ))
                .expect("endpoints parse");
            rt.spawn(async move {
                let mut start = w * BATCH;
                while start < n {
                    let success = (start..(start + BATCH).min(n))
                        .map(|i| RequestOp {
                            request: Some(request_op::Request::RequestPut(PutRequest {
                                key: key(i),
                                value: format!("value of key {i}, some bytes").into_bytes(),
                                ..Default::default()
                            })),
                        })
                        .collect();
                    c.txn(TxnRequest {
                        success,
                        ..Default::default()
                    })
                    .await
                    .expect("a load transaction");
                    start += LOADERS * BATCH;
                }
            })
        })
        .collect();
    for l in loaders {
        rt.block_on(l).expect("a loader");
    }
    let load_time = t0.elapsed();
    // Let every member apply the load.
    std::thread::sleep(Duration::from_secs(2));
    let (term_before, leaders_before) = rt.block_on(terms(&client));

    let t1 = Instant::now();
    let resp = rt
        .block_on(client.delete_range(DeleteRangeRequest {
            key: b"big/".to_vec(),
            range_end: b"big0".to_vec(),
            ..Default::default()
        }))
        .unwrap_or_else(|e| panic!("the delete: {e}\n{}", cl.member_logs()));
    let delete_time = t1.elapsed();
    // Followers apply it too: give them the time the leader took, and more.
    std::thread::sleep(delete_time + Duration::from_secs(2));
    let (term_after, leaders_after) = rt.block_on(terms(&client));
    eprintln!(
        "{n} keys: loaded in {load_time:?}, deleted in {delete_time:?}; \
         term {term_before} -> {term_after}, leaders {leaders_before:?} -> {leaders_after:?}"
    );
    assert_eq!(resp.deleted, n as i64, "the delete counts every key");
    assert_eq!(
        (term_after, &leaders_after),
        (term_before, &leaders_before),
        "an election while the delete applied\n{}",
        cl.member_logs()
    );
}
