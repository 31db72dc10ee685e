//! The gRPC method paths the generated clients and servers use, and the
//! streaming shape of every RPC, checked against etcd's service definitions.

use prost::Message;
use prost_types::FileDescriptorSet;
use synod_proto::service_names;

/// Every RPC of etcd's API: (service, method, client streams, server streams).
const RPCS: &[(&str, &str, bool, bool)] = &[
    ("etcdserverpb.KV", "Range", false, false),
    ("etcdserverpb.KV", "Put", false, false),
    ("etcdserverpb.KV", "DeleteRange", false, false),
    ("etcdserverpb.KV", "Txn", false, false),
    ("etcdserverpb.KV", "Compact", false, false),
    ("etcdserverpb.Watch", "Watch", true, true),
    ("etcdserverpb.Lease", "LeaseGrant", false, false),
    ("etcdserverpb.Lease", "LeaseRevoke", false, false),
    ("etcdserverpb.Lease", "LeaseKeepAlive", true, true),
    ("etcdserverpb.Lease", "LeaseTimeToLive", false, false),
    ("etcdserverpb.Lease", "LeaseLeases", false, false),
    ("etcdserverpb.Cluster", "MemberAdd", false, false),
    ("etcdserverpb.Cluster", "MemberRemove", false, false),
    ("etcdserverpb.Cluster", "MemberUpdate", false, false),
    ("etcdserverpb.Cluster", "MemberList", false, false),
    ("etcdserverpb.Cluster", "MemberPromote", false, false),
    ("etcdserverpb.Maintenance", "Alarm", false, false),
    ("etcdserverpb.Maintenance", "Status", false, false),
    ("etcdserverpb.Maintenance", "Defragment", false, false),
    ("etcdserverpb.Maintenance", "Hash", false, false),
    ("etcdserverpb.Maintenance", "HashKV", false, false),
    ("etcdserverpb.Maintenance", "Snapshot", false, true),
    ("etcdserverpb.Maintenance", "MoveLeader", false, false),
    ("etcdserverpb.Maintenance", "Downgrade", false, false),
    ("etcdserverpb.Auth", "AuthEnable", false, false),
    ("etcdserverpb.Auth", "AuthDisable", false, false),
    ("etcdserverpb.Auth", "AuthStatus", false, false),
    ("etcdserverpb.Auth", "Authenticate", false, false),
    ("etcdserverpb.Auth", "UserAdd", false, false),
    ("etcdserverpb.Auth", "UserGet", false, false),
    ("etcdserverpb.Auth", "UserList", false, false),
    ("etcdserverpb.Auth", "UserDelete", false, false),
    ("etcdserverpb.Auth", "UserChangePassword", false, false),
    ("etcdserverpb.Auth", "UserGrantRole", false, false),
    ("etcdserverpb.Auth", "UserRevokeRole", false, false),
    ("etcdserverpb.Auth", "RoleAdd", false, false),
    ("etcdserverpb.Auth", "RoleGet", false, false),
    ("etcdserverpb.Auth", "RoleList", false, false),
    ("etcdserverpb.Auth", "RoleDelete", false, false),
    ("etcdserverpb.Auth", "RoleGrantPermission", false, false),
    ("etcdserverpb.Auth", "RoleRevokePermission", false, false),
    ("v3lockpb.Lock", "Lock", false, false),
    ("v3lockpb.Lock", "Unlock", false, false),
    ("v3electionpb.Election", "Campaign", false, false),
    ("v3electionpb.Election", "Proclaim", false, false),
    ("v3electionpb.Election", "Leader", false, false),
    ("v3electionpb.Election", "Observe", false, true),
    ("v3electionpb.Election", "Resign", false, false),
    // synod's own, beside etcd's.
    ("synodpb.Ranges", "List", false, false),
];

/// The generated Rust sources, as tonic-prost-build wrote them.
fn generated() -> String {
    [
        include_str!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs")),
        include_str!(concat!(env!("OUT_DIR"), "/v3lockpb.rs")),
        include_str!(concat!(env!("OUT_DIR"), "/v3electionpb.rs")),
        include_str!(concat!(env!("OUT_DIR"), "/mvccpb.rs")),
        include_str!(concat!(env!("OUT_DIR"), "/authpb.rs")),
        include_str!(concat!(env!("OUT_DIR"), "/synodpb.rs")),
    ]
    .concat()
}

#[test]
fn every_path_is_used_by_client_and_server() {
    let code = generated();
    for (service, method, _, _) in RPCS {
        let quoted = format!("\"/{service}/{method}\"");
        let uses = code.matches(&quoted).count();
        // Once in the client (the request path) and once in the server (the route).
        assert_eq!(
            uses, 2,
            "{quoted} appears {uses} times in the generated code"
        );
    }
}

#[test]
fn no_other_paths_exist() {
    let code = generated();
    // Every method path in generated code is a string literal `"/pkg.Svc/Method"`.
    let mut found = std::collections::BTreeSet::new();
    for piece in code.split("\"/").skip(1) {
        let literal = piece.split('"').next().unwrap_or_default();
        if literal.contains('.') && literal.matches('/').count() == 1 && !literal.contains(' ') {
            found.insert(format!("/{literal}"));
        }
    }
    let expected: std::collections::BTreeSet<String> = RPCS
        .iter()
        .map(|(s, m, _, _)| format!("/{s}/{m}"))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn service_name_constants_match_generated_servers() {
    use synod_proto::etcdserverpb as pb;
    let pairs = [
        (service_names::KV, pb::kv_server::SERVICE_NAME),
        (service_names::WATCH, pb::watch_server::SERVICE_NAME),
        (service_names::LEASE, pb::lease_server::SERVICE_NAME),
        (service_names::CLUSTER, pb::cluster_server::SERVICE_NAME),
        (
            service_names::MAINTENANCE,
            pb::maintenance_server::SERVICE_NAME,
        ),
        (service_names::AUTH, pb::auth_server::SERVICE_NAME),
        (
            service_names::LOCK,
            synod_proto::v3lockpb::lock_server::SERVICE_NAME,
        ),
        (
            service_names::ELECTION,
            synod_proto::v3electionpb::election_server::SERVICE_NAME,
        ),
        (
            service_names::RANGES,
            synod_proto::synodpb::ranges_server::SERVICE_NAME,
        ),
    ];
    for (ours, generated) in pairs {
        assert_eq!(ours, generated);
    }
    let names: std::collections::BTreeSet<&str> = RPCS.iter().map(|r| r.0).collect();
    let ours: std::collections::BTreeSet<&str> = pairs.iter().map(|p| p.0).collect();
    assert_eq!(names, ours);
}

#[test]
fn descriptor_set_has_every_rpc_with_etcds_streaming_shape() {
    let fds =
        FileDescriptorSet::decode(synod_proto::FILE_DESCRIPTOR_SET).expect("valid descriptor set");
    let mut seen = Vec::new();
    for file in &fds.file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                seen.push((
                    format!("{package}.{}", service.name()),
                    method.name().to_string(),
                    method.client_streaming(),
                    method.server_streaming(),
                ));
            }
        }
    }
    seen.sort();
    let mut want: Vec<(String, String, bool, bool)> = RPCS
        .iter()
        .map(|(s, m, c, v)| (s.to_string(), m.to_string(), *c, *v))
        .collect();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn descriptor_set_keeps_etcds_field_names() {
    // The JSON gateway and reflection see these names; check the odd ones.
    let fds = FileDescriptorSet::decode(synod_proto::FILE_DESCRIPTOR_SET).unwrap();
    let field = |msg: &str, number: i32| -> String {
        for file in &fds.file {
            for m in &file.message_type {
                if format!("{}.{}", file.package(), m.name()) == msg {
                    for f in &m.field {
                        if f.number() == number {
                            return f.name().to_string();
                        }
                    }
                }
            }
        }
        panic!("{msg} field {number} not found");
    };
    assert_eq!(field("etcdserverpb.LeaseGrantRequest", 1), "TTL");
    assert_eq!(field("etcdserverpb.LeaseGrantRequest", 2), "ID");
    assert_eq!(
        field("etcdserverpb.LeaseTimeToLiveResponse", 4),
        "grantedTTL"
    );
    assert_eq!(field("etcdserverpb.Member", 3), "peerURLs");
    assert_eq!(field("etcdserverpb.Member", 4), "clientURLs");
    assert_eq!(field("etcdserverpb.StatusResponse", 9), "dbSizeInUse");
    assert_eq!(field("etcdserverpb.StatusResponse", 13), "downgradeInfo");
    assert_eq!(field("etcdserverpb.WatchResponse", 11), "events");
    assert_eq!(field("etcdserverpb.Compare", 64), "range_end");
    assert_eq!(field("authpb.Permission", 1), "permType");
    assert_eq!(field("mvccpb.KeyValue", 6), "lease");
}
