//! The Lock and Election services through synod-proto's tonic clients, on a
//! 3-member cluster (each client talks to a different member): mutual
//! exclusion, hand-off on unlock and on lease expiry, a waiter that gives up
//! leaves no key behind; campaign, leader, proclaim, observe and resign.

mod common;

use std::time::Duration;

use common::Cluster;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::lease_client::LeaseClient;
use synod_proto::etcdserverpb::{LeaseGrantRequest, RangeRequest};
use synod_proto::v3electionpb::election_client::ElectionClient;
use synod_proto::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
};
use synod_proto::v3lockpb::lock_client::LockClient;
use synod_proto::v3lockpb::{LockRequest, UnlockRequest};
use tokio::time::timeout;

fn url(cl: &Cluster, i: usize) -> String {
    format!("http://{}", cl.endpoint(i))
}

async fn grant(ep: &str, ttl: i64) -> i64 {
    let mut l = LeaseClient::connect(ep.to_owned()).await.unwrap();
    l.lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn count(ep: &str, prefix: &[u8]) -> i64 {
    let mut kv = KvClient::connect(ep.to_owned()).await.unwrap();
    let mut end = prefix.to_vec();
    *end.last_mut().unwrap() += 1;
    kv.range(RangeRequest {
        key: prefix.to_vec(),
        range_end: end,
        count_only: true,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .count
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn lock_excludes_and_hands_over() {
    let cl = Cluster::start(3);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let (e0, e1, e2) = (url(&cl, 0), url(&cl, 1), url(&cl, 2));
    runtime().block_on(async move {
        let a = grant(&e0, 30).await;
        let b = grant(&e1, 30).await;
        let mut l0 = LockClient::connect(e0.clone()).await.unwrap();
        let mut l1 = LockClient::connect(e1.clone()).await.unwrap();
        let lock = |lease| LockRequest {
            name: b"job".to_vec(),
            lease,
        };
        let held = l0.lock(lock(a)).await.unwrap().into_inner();
        assert_eq!(held.key, format!("job/{a:x}").into_bytes());
        // The second locker waits while the first holds the lock.
        let waiter = tokio::spawn(async move { l1.lock(lock(b)).await });
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!waiter.is_finished(), "two holders at once");
        assert_eq!(count(&e2, b"job/").await, 2);
        l0.unlock(UnlockRequest { key: held.key }).await.unwrap();
        let got = timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter proceeds after unlock")
            .unwrap()
            .unwrap()
            .into_inner();
        assert_eq!(got.key, format!("job/{b:x}").into_bytes());
        assert!(got.header.unwrap().revision > 0);

        // A holder whose lease expires (nobody keeps it alive) lets the next one in.
        let short = grant(&e0, 2).await;
        let mut l2 = LockClient::connect(e2.clone()).await.unwrap();
        let mut l0b = LockClient::connect(e0.clone()).await.unwrap();
        l2.lock(LockRequest {
            name: b"exp".to_vec(),
            lease: short,
        })
        .await
        .unwrap();
        let waiter = tokio::spawn(async move {
            l0b.lock(LockRequest {
                name: b"exp".to_vec(),
                lease: a,
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !waiter.is_finished(),
            "acquired before the holder's lease ended"
        );
        let got = timeout(Duration::from_secs(8), waiter)
            .await
            .expect("the waiter proceeds after the holder's lease expires")
            .unwrap()
            .unwrap()
            .into_inner();
        assert_eq!(got.key, format!("exp/{a:x}").into_bytes());

        // A waiter that gives up leaves no key in the queue.
        let mut l1b = LockClient::connect(e1.clone()).await.unwrap();
        let c = grant(&e1, 30).await;
        let r = timeout(
            Duration::from_millis(500),
            l1b.lock(LockRequest {
                name: b"job".to_vec(),
                lease: c,
            }),
        )
        .await;
        assert!(r.is_err(), "job is still held by lease b");
        let mut left = 0;
        for _ in 0..50 {
            left = count(&e0, b"job/").await;
            if left == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(left, 1, "the abandoned waiter's key stays");

        // A lock on a lease that does not exist is refused with etcd's error.
        let e = l2
            .lock(LockRequest {
                name: b"job".to_vec(),
                lease: 0x7777,
            })
            .await
            .unwrap_err();
        assert_eq!(e.message(), "etcdserver: requested lease not found");
    });
}

#[test]
fn election_campaign_observe_proclaim_resign() {
    let cl = Cluster::start(3);
    cl.wait_leader(Duration::from_secs(10)).expect("a leader");
    let (e0, e1, e2) = (url(&cl, 0), url(&cl, 1), url(&cl, 2));
    runtime().block_on(async move {
        let a = grant(&e0, 30).await;
        let b = grant(&e1, 30).await;
        let mut c0 = ElectionClient::connect(e0.clone()).await.unwrap();
        let mut c1 = ElectionClient::connect(e1.clone()).await.unwrap();
        let mut c2 = ElectionClient::connect(e2.clone()).await.unwrap();
        let e = c2
            .leader(LeaderRequest {
                name: b"el".to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.message(), "election: no leader");

        let campaign = |lease, value: &str| CampaignRequest {
            name: b"el".to_vec(),
            lease,
            value: value.as_bytes().to_vec(),
        };
        let la = c0
            .campaign(campaign(a, "a"))
            .await
            .unwrap()
            .into_inner()
            .leader
            .unwrap();
        assert_eq!(la.key, format!("el/{a:x}").into_bytes());
        assert_eq!(la.lease, a);
        let mut obs = c2
            .observe(LeaderRequest {
                name: b"el".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        let next_value = |m: Option<synod_proto::v3electionpb::LeaderResponse>| {
            String::from_utf8(m.expect("observe goes on").kv.unwrap().value).unwrap()
        };
        let first = timeout(Duration::from_secs(5), obs.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next_value(first), "a");

        let waiter = tokio::spawn(async move { c1.campaign(campaign(b, "b")).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiter.is_finished(), "two leaders at once");

        c0.proclaim(ProclaimRequest {
            leader: Some(la.clone()),
            value: b"a2".to_vec(),
        })
        .await
        .unwrap();
        let m = timeout(Duration::from_secs(5), obs.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next_value(m), "a2");
        let now = c2
            .leader(LeaderRequest {
                name: b"el".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(now.kv.unwrap().value, b"a2");

        // A stale leader key is refused.
        let stale = LeaderKey {
            rev: la.rev + 1000,
            ..la.clone()
        };
        let e = c0
            .proclaim(ProclaimRequest {
                leader: Some(stale),
                value: b"x".to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.message(), "election: not leader");

        c0.resign(ResignRequest {
            leader: Some(la.clone()),
        })
        .await
        .unwrap();
        let lb = timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the second candidate wins after the resignation")
            .unwrap()
            .unwrap()
            .into_inner()
            .leader
            .unwrap();
        assert_eq!(lb.key, format!("el/{b:x}").into_bytes());
        let m = timeout(Duration::from_secs(5), obs.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next_value(m), "b");
        // Resigning again with the old key changes nothing.
        c0.resign(ResignRequest { leader: Some(la) }).await.unwrap();
        let now = c2
            .leader(LeaderRequest {
                name: b"el".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(now.kv.unwrap().value, b"b");
    });
}
