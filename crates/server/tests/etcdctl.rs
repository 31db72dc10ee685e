//! A 3-member synod cluster driven by the real `etcdctl` (ETCDCTL_API=3).
//! Skipped, with a notice, when etcdctl is not installed.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn put_and_get_through_every_member() {
    if !have_etcdctl() {
        return;
    }
    let cl = Cluster::start(3);
    assert!(
        cl.wait_leader(Duration::from_secs(10)).is_some(),
        "a leader is elected"
    );
    for i in 0..3 {
        let ep = cl.endpoint(i);
        let key = format!("k{i}");
        let val = format!("v{i}");
        assert_eq!(ctl_ok(&ep, &["put", &key, &val]).trim(), "OK");
    }
    for i in 0..3 {
        let ep = cl.endpoint(i);
        let out = ctl_ok(&ep, &["get", "k", "--prefix"]);
        assert_eq!(out, "k0\nv0\nk1\nv1\nk2\nv2\n", "member {i}");
    }
}
