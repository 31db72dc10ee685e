//! etcd's Auth service on synod: one etcdctl script (users, roles,
//! permission grants and revokes, reads and writes inside and outside the
//! grants, txns that mix them, password changes, maintenance calls, auth
//! disable) run step by step against a 3-member synod cluster and a real
//! etcd 3.4, every step's exit status, stdout and `Error:` line compared;
//! then auth surviving a restart, and stale tokens, over gRPC.
//!
//! Normalised: only the endpoint address, which etcdctl prints in
//! `defrag`'s line. Skipped, with a notice, without etcd and etcdctl.

mod common;

use std::time::Duration;

use common::*;
use synod_proto::authpb;
use synod_proto::etcdserverpb as pb;
use tonic::metadata::MetadataValue;

struct Side {
    ep: String,
    obs: Vec<(String, String)>,
    etcd: bool,
}

impl Side {
    fn step(&mut self, name: &str, args: &[&str], stdin: Option<&str>, expect_ok: bool) {
        let c = ctl_stdin(&self.ep, args, stdin);
        if self.etcd {
            assert_eq!(c.ok, expect_ok, "etcd, step {name:?}: {c:?}");
        }
        let errs: String = c
            .err
            .lines()
            .filter(|l| l.starts_with("Error:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let shown = if c.ok {
            c.out.clone()
        } else {
            format!("{}[failed]\n{errs}", c.out)
        };
        self.obs
            .push((name.to_string(), shown.replace(&self.ep, "<ep>")));
    }

    fn ok(&mut self, name: &str, args: &[&str]) {
        self.step(name, args, None, true);
    }

    fn fails(&mut self, name: &str, args: &[&str]) {
        self.step(name, args, None, false);
    }
}

const ROOT: &str = "--user=root:rootpw";
const ALICE: &str = "--user=alice:alicepw";
const ALICE2: &str = "--user=alice:newpw";

fn script(s: &mut Side) {
    // --- before authentication: users, roles, permissions -----------------
    s.ok("no users", &["user", "list"]);
    s.ok("no roles", &["role", "list"]);
    s.fails("enable without root", &["auth", "enable"]);
    s.ok(
        "add root",
        &["user", "add", "root:rootpw", "--interactive=false"],
    );
    // etcdctl answers "root user does not have root role" by adding the
    // root role, granting it to root and enabling again.
    s.ok("enable without root role", &["auth", "enable"]);
    s.ok("disable at once", &["auth", "disable", ROOT]);
    s.ok("roles with root", &["role", "list"]);
    s.ok("add role", &["role", "add", "app"]);
    s.fails("add role twice", &["role", "add", "app"]);
    s.fails("add empty role", &["role", "add", ""]);
    s.ok(
        "add alice",
        &["user", "add", "alice:alicepw", "--interactive=false"],
    );
    s.fails(
        "add alice twice",
        &["user", "add", "alice:other", "--interactive=false"],
    );
    s.ok("alice gets app", &["user", "grant-role", "alice", "app"]);
    s.fails(
        "grant a missing role",
        &["user", "grant-role", "alice", "nope"],
    );
    s.fails(
        "grant to a missing user",
        &["user", "grant-role", "bob", "app"],
    );
    s.ok(
        "grant prefix",
        &[
            "role",
            "grant-permission",
            "app",
            "readwrite",
            "app/",
            "--prefix",
        ],
    );
    s.ok(
        "grant key",
        &["role", "grant-permission", "app", "read", "shared"],
    );
    s.ok(
        "grant range",
        &["role", "grant-permission", "app", "write", "logs/", "logs0"],
    );
    s.ok(
        "grant from key",
        &[
            "role",
            "grant-permission",
            "app",
            "read",
            "zone/",
            "--from-key",
        ],
    );
    s.ok(
        "regrant changes the kind",
        &["role", "grant-permission", "app", "readwrite", "shared"],
    );
    s.ok("role get", &["role", "get", "app"]);
    s.fails("role get missing", &["role", "get", "nope"]);
    s.ok("user get", &["user", "get", "alice"]);
    s.ok("user get detail", &["user", "get", "alice", "--detail"]);
    s.fails("user get missing", &["user", "get", "bob"]);
    s.ok("users", &["user", "list"]);
    s.ok("roles", &["role", "list"]);
    s.ok("put before enable", &["put", "app/1", "one"]);
    s.ok("put secret", &["put", "secret", "s"]);

    // --- on ---------------------------------------------------------------
    s.ok("enable", &["auth", "enable"]);
    s.ok("enable again", &["auth", "enable", ROOT]);
    s.fails("get without a user", &["get", "app/1"]);
    s.fails("put without a user", &["put", "app/1", "x"]);
    s.fails("wrong password", &["get", "app/1", "--user=alice:wrong"]);
    s.fails("unknown user", &["get", "app/1", "--user=bob:pw"]);
    s.ok("get inside", &["get", "app/1", ALICE]);
    s.ok("get prefix inside", &["get", "app/", "--prefix", ALICE]);
    s.ok("put inside", &["put", "app/2", "two", ALICE]);
    s.fails("put outside", &["put", "other", "x", ALICE]);
    s.fails("get outside", &["get", "secret", ALICE]);
    s.fails("get everything", &["get", "", "--prefix", ALICE]);
    s.fails(
        "get a prefix wider than the grant",
        &["get", "app", "--prefix", ALICE],
    );
    s.ok("put the granted key", &["put", "shared", "s", ALICE]);
    s.ok("get the granted key", &["get", "shared", ALICE]);
    s.ok("put in the write range", &["put", "logs/a", "1", ALICE]);
    s.fails("get in the write range", &["get", "logs/a", ALICE]);
    s.fails("put past the range", &["put", "logs0", "1", ALICE]);
    s.ok("root writes anywhere", &["put", "zone/b", "b", ROOT]);
    s.ok("get from key", &["get", "zone/b", ALICE]);
    s.ok("get far past from key", &["get", "zzz", ALICE]);
    s.ok("get range from key", &["get", "zone/", "--from-key", ALICE]);
    s.fails(
        "put in the read-only from-key",
        &["put", "zone/c", "c", ALICE],
    );
    s.ok("del inside", &["del", "app/2", ALICE]);
    s.fails("del outside", &["del", "secret", ALICE]);
    s.fails(
        "del prev-kv in the write range",
        &["del", "logs/a", "--prev-kv", ALICE],
    );
    s.ok("del in the write range", &["del", "logs/a", ALICE]);
    s.step(
        "txn inside",
        &["txn", ALICE],
        Some("value(\"app/1\") = \"one\"\n\nput app/3 three\n\nput app/4 four\n\n"),
        true,
    );
    s.step(
        "txn whose failure branch writes outside",
        &["txn", ALICE],
        Some("value(\"app/1\") = \"one\"\n\nput app/5 five\n\nput secret x\n\n"),
        false,
    );
    s.step(
        "txn comparing outside",
        &["txn", ALICE],
        Some("value(\"secret\") = \"s\"\n\nput app/5 five\n\n\n"),
        false,
    );
    s.ok(
        "txn left nothing",
        &["get", "app/", "--prefix", "--keys-only", ALICE],
    );

    // --- management needs root; users see themselves -----------------------
    s.fails("alice lists users", &["user", "list", ALICE]);
    s.fails("alice adds a role", &["role", "add", "x", ALICE]);
    s.fails(
        "alice grants herself",
        &[
            "role",
            "grant-permission",
            "app",
            "readwrite",
            "secret",
            ALICE,
        ],
    );
    s.ok("alice reads herself", &["user", "get", "alice", ALICE]);
    s.fails("alice reads root", &["user", "get", "root", ALICE]);
    s.ok("alice reads her role", &["role", "get", "app", ALICE]);
    s.fails("alice defrags", &["defrag", ALICE]);
    s.ok("root defrags", &["defrag", ROOT]);
    s.fails("alice disables", &["auth", "disable", ALICE]);
    s.fails("root cannot go", &["user", "delete", "root", ROOT]);
    s.fails(
        "root keeps root",
        &["user", "revoke-role", "root", "root", ROOT],
    );

    // --- password change, revokes ----------------------------------------
    s.step(
        "change alice's password",
        &["user", "passwd", "alice", "--interactive=false", ROOT],
        Some("newpw\n"),
        true,
    );
    s.fails("the old password", &["get", "app/1", ALICE]);
    s.ok("the new password", &["get", "app/1", ALICE2]);
    s.ok(
        "revoke the prefix",
        &["role", "revoke-permission", "app", "app/", "--prefix", ROOT],
    );
    s.fails(
        "revoke it twice",
        &["role", "revoke-permission", "app", "app/", "--prefix", ROOT],
    );
    s.fails("revoked", &["get", "app/1", ALICE2]);
    s.ok("still the key", &["get", "shared", ALICE2]);
    s.ok(
        "revoke the role",
        &["user", "revoke-role", "alice", "app", ROOT],
    );
    s.fails(
        "revoke the role twice",
        &["user", "revoke-role", "alice", "app", ROOT],
    );
    s.fails("no role, no key", &["get", "shared", ALICE2]);
    s.ok("delete the role", &["role", "delete", "app", ROOT]);
    s.ok("roles after", &["role", "list", ROOT]);

    // --- off ----------------------------------------------------------------
    s.ok("disable", &["auth", "disable", ROOT]);
    s.ok("get without a user again", &["get", "secret"]);
    s.ok("users after", &["user", "list"]);
    s.ok("delete alice", &["user", "delete", "alice"]);
    s.fails("delete alice twice", &["user", "delete", "alice"]);
    s.ok("root may go now", &["user", "delete", "root"]);
}

#[test]
fn etcdctl_auth_same_results_on_synod_and_etcd() {
    if !have_etcdctl() || !have_etcd() {
        return;
    }
    let etcd = Etcd3::start(1);
    let cl = Cluster::start(3);
    cl.wait_leader(Duration::from_secs(10))
        .expect("synod elects a leader");
    let mut e = Side {
        ep: etcd.clients[0].clone(),
        obs: Vec::new(),
        etcd: true,
    };
    // A member that may well be a follower: writes are forwarded.
    let mut s = Side {
        ep: cl.endpoint(1),
        obs: Vec::new(),
        etcd: false,
    };
    std::thread::scope(|sc| {
        sc.spawn(|| script(&mut e));
        sc.spawn(|| script(&mut s));
    });
    let mut report = String::new();
    for ((step, eo), (_, so)) in e.obs.iter().zip(&s.obs) {
        if std::env::var_os("SYNOD_COMPAT_DUMP").is_some() {
            eprintln!("--- {step}\netcd:  {eo:?}\nsynod: {so:?}");
        }
        if eo != so {
            report.push_str(&format!(
                "step {step:?} differs\n  etcd:  {eo:?}\n  synod: {so:?}\n"
            ));
        }
    }
    assert_eq!(e.obs.len(), s.obs.len());
    assert!(report.is_empty(), "synod differs from etcd:\n{report}");
}

/// Sets up root, alice with `app` over `app/` and authentication on.
fn setup(ep: &str) {
    for args in [
        &["user", "add", "root:rootpw", "--interactive=false"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "alice:alicepw", "--interactive=false"],
        &["role", "add", "app"],
        &["user", "grant-role", "alice", "app"],
        &[
            "role",
            "grant-permission",
            "app",
            "readwrite",
            "app/",
            "--prefix",
        ],
        &["put", "app/1", "one"],
        &["auth", "enable"],
    ] {
        ctl_ok(ep, args);
    }
}

#[test]
fn users_roles_and_authentication_survive_a_restart() {
    if !have_etcdctl() {
        return;
    }
    // Frequent snapshots and store commits, so the restart reads the auth
    // state from the store, not only from the log.
    let mut cl = Cluster::start_with(1, |c| {
        c.snapshot_every = 4;
        c.backend_batch_interval = Duration::from_millis(20);
    });
    cl.wait_leader(Duration::from_secs(10)).unwrap();
    let ep = cl.endpoint(0);
    setup(&ep);
    for i in 0..10 {
        ctl_ok(&ep, &["put", &format!("app/{i}"), "v", ALICE]);
    }
    let before = ctl_ok(&ep, &["user", "get", "alice", "--detail", ROOT]);
    let role_before = ctl_ok(&ep, &["role", "get", "app", ROOT]);
    assert!(role_before.contains("[app/, app0)"), "{role_before}");
    std::thread::sleep(Duration::from_millis(300));
    cl.stop(0);
    cl.boot(0);
    cl.wait_leader(Duration::from_secs(10)).unwrap();
    assert_eq!(
        ctl_ok(&ep, &["user", "get", "alice", "--detail", ROOT]),
        before
    );
    let r = ctl(&ep, &["get", "app/1"]);
    assert!(!r.ok && r.err.contains("user name is empty"), "{r:?}");
    assert_eq!(
        ctl_ok(&ep, &["get", "app/1", "--print-value-only", ALICE]),
        "v\n"
    );
    let r = ctl(&ep, &["put", "secret", "x", ALICE]);
    assert!(!r.ok && r.err.contains("permission denied"), "{r:?}");
    let r = ctl(&ep, &["get", "app/1", "--user=alice:wrong"]);
    assert!(!r.ok && r.err.contains("authentication failed"), "{r:?}");
    assert_eq!(ctl_ok(&ep, &["role", "get", "app", ROOT]), role_before);
}

fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("token", MetadataValue::try_from(token).unwrap());
    r
}

async fn login(ep: &str, name: &str, password: &str) -> Result<String, tonic::Status> {
    let mut a = pb::auth_client::AuthClient::connect(format!("http://{ep}"))
        .await
        .unwrap();
    a.authenticate(pb::AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    })
    .await
    .map(|r| r.into_inner().token)
}

fn get(key: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.into(),
        ..Default::default()
    }
}

#[test]
fn simple_tokens_work_on_every_member_and_die_with_a_password_change() {
    if !have_etcdctl() {
        return;
    }
    let cl = Cluster::start(3);
    cl.wait_leader(Duration::from_secs(10)).unwrap();
    setup(&cl.endpoint(0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let token = login(&cl.endpoint(0), "alice", "alicepw").await.unwrap();
        let (prefix, index) = token.split_once('.').expect("prefix.index");
        assert_eq!(prefix.len(), 16);
        assert!(index.parse::<u64>().is_ok(), "{token}");
        let e = login(&cl.endpoint(0), "alice", "bad").await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            e.message(),
            "etcdserver: authentication failed, invalid user ID or password"
        );
        // The token was issued through the log: every member knows it.
        for i in 0..3 {
            let mut kv = pb::kv_client::KvClient::connect(format!("http://{}", cl.endpoint(i)))
                .await
                .unwrap();
            let mut ok = false;
            for _ in 0..50 {
                match kv.range(with_token(get("app/1"), &token)).await {
                    Ok(r) => {
                        assert_eq!(r.into_inner().kvs[0].value, b"one");
                        ok = true;
                        break;
                    }
                    // A member that has not applied the token yet.
                    Err(e) if e.code() == tonic::Code::Unauthenticated => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Err(e) => panic!("member {i}: {e:?}"),
                }
            }
            assert!(ok, "member {i} never took the token");
            let e = kv
                .range(with_token(get("secret"), &token))
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied);
            assert_eq!(e.message(), "etcdserver: permission denied");
            let e = kv
                .range(with_token(get("app/1"), "forged.1"))
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
            assert_eq!(e.message(), "etcdserver: invalid auth token");
        }
        let root = login(&cl.endpoint(0), "root", "rootpw").await.unwrap();
        let mut a = pb::auth_client::AuthClient::connect(format!("http://{}", cl.endpoint(0)))
            .await
            .unwrap();
        a.user_change_password(with_token(
            pb::AuthUserChangePasswordRequest {
                name: "alice".into(),
                password: "newpw".into(),
                hashed_password: String::new(),
            },
            &root,
        ))
        .await
        .unwrap();
        let mut kv = pb::kv_client::KvClient::connect(format!("http://{}", cl.endpoint(0)))
            .await
            .unwrap();
        let e = kv
            .range(with_token(get("app/1"), &token))
            .await
            .unwrap_err();
        assert_eq!(e.message(), "etcdserver: invalid auth token");

        // Watches are checked when created; maintenance needs root.
        let mut w = pb::watch_client::WatchClient::connect(format!("http://{}", cl.endpoint(0)))
            .await
            .unwrap();
        let token = login(&cl.endpoint(0), "alice", "newpw").await.unwrap();
        let create = |key: &str| pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: key.into(),
                    ..Default::default()
                },
            )),
        };
        let reqs = tokio_stream::iter(vec![create("secret"), create("app/1")]);
        let mut out = w
            .watch(with_token(reqs, &token))
            .await
            .unwrap()
            .into_inner();
        let denied = out.message().await.unwrap().unwrap();
        assert!(denied.created && denied.canceled, "{denied:?}");
        assert_eq!(denied.cancel_reason, "etcdserver: permission denied");
        let allowed = out.message().await.unwrap().unwrap();
        assert!(allowed.created && !allowed.canceled, "{allowed:?}");
        let mut m = pb::maintenance_client::MaintenanceClient::connect(format!(
            "http://{}",
            cl.endpoint(0)
        ))
        .await
        .unwrap();
        let e = m
            .hash_kv(with_token(pb::HashKvRequest { revision: 0 }, &token))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        m.hash_kv(with_token(pb::HashKvRequest { revision: 0 }, &root))
            .await
            .unwrap();
        m.status(with_token(pb::StatusRequest {}, &token))
            .await
            .unwrap();
        let mut c =
            pb::cluster_client::ClusterClient::connect(format!("http://{}", cl.endpoint(0)))
                .await
                .unwrap();
        let e = c
            .member_remove(with_token(pb::MemberRemoveRequest { id: 1 }, &token))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
    });
}

#[test]
fn a_jwt_checked_before_a_permission_change_is_refused_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.key");
    std::fs::write(&secret, b"a secret only the cluster knows").unwrap();
    let spec = format!("jwt,priv-key={},sign-method=HS256,ttl=5m", secret.display());
    let auth = synod_server::tokens::AuthConfig::parse(&spec, 4, 300).unwrap();
    let cl = Cluster::start_with(1, move |c| c.auth = auth.clone());
    cl.wait_leader(Duration::from_secs(10)).unwrap();
    let ep = cl.endpoint(0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut a = pb::auth_client::AuthClient::connect(format!("http://{ep}"))
            .await
            .unwrap();
        let e = login(&ep, "root", "rootpw").await.unwrap_err();
        assert_eq!(e.message(), "etcdserver: authentication is not enabled");
        a.user_add(pb::AuthUserAddRequest {
            name: "root".into(),
            password: "rootpw".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let e = a.auth_enable(pb::AuthEnableRequest {}).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert_eq!(e.message(), "etcdserver: root user does not have root role");
        a.user_grant_role(pb::AuthUserGrantRoleRequest {
            user: "root".into(),
            role: "root".into(),
        })
        .await
        .unwrap();
        a.user_add(pb::AuthUserAddRequest {
            name: "alice".into(),
            password: "alicepw".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        a.role_add(pb::AuthRoleAddRequest { name: "app".into() })
            .await
            .unwrap();
        a.role_grant_permission(pb::AuthRoleGrantPermissionRequest {
            name: "app".into(),
            perm: Some(authpb::Permission {
                perm_type: authpb::permission::Type::Readwrite as i32,
                key: b"app/".to_vec(),
                range_end: b"app0".to_vec(),
            }),
        })
        .await
        .unwrap();
        a.user_grant_role(pb::AuthUserGrantRoleRequest {
            user: "alice".into(),
            role: "app".into(),
        })
        .await
        .unwrap();
        a.auth_enable(pb::AuthEnableRequest {}).await.unwrap();
        let token = login(&ep, "alice", "alicepw").await.unwrap();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        let mut kv = pb::kv_client::KvClient::connect(format!("http://{ep}"))
            .await
            .unwrap();
        let put = |k: &str| pb::PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        kv.put(with_token(put("app/1"), &token)).await.unwrap();
        let e = kv.put(with_token(put("other"), &token)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        // Any change to users, roles or permissions makes it stale.
        let root = login(&ep, "root", "rootpw").await.unwrap();
        a.role_add(with_token(
            pb::AuthRoleAddRequest { name: "x".into() },
            &root,
        ))
        .await
        .unwrap();
        let e = kv.put(with_token(put("app/1"), &token)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(e.message(), "etcdserver: revision of auth store is old");
        let e = kv
            .range(with_token(get("app/1"), &token))
            .await
            .unwrap_err();
        assert_eq!(e.message(), "etcdserver: revision of auth store is old");
        let fresh = login(&ep, "alice", "alicepw").await.unwrap();
        kv.put(with_token(put("app/1"), &fresh)).await.unwrap();
        // A token signed with another key is no token.
        let mut forged: Vec<char> = fresh.chars().collect();
        let n = forged.len();
        forged[n - 2] = if forged[n - 2] == 'A' { 'B' } else { 'A' };
        let forged: String = forged.into_iter().collect();
        let e = kv
            .range(with_token(get("app/1"), &forged))
            .await
            .unwrap_err();
        assert_eq!(e.message(), "etcdserver: invalid auth token");
    });
}

/// A JSON gateway call: the HTTP status and the body.
fn curl(ep: &str, path: &str, body: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "-X", "POST"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: {t}")]);
    }
    let out = cmd
        .args(["-d", body, &format!("http://{ep}{path}")])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json, code) = text.rsplit_once('\n').expect("status line");
    (
        code.trim().parse().expect("a status"),
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn the_json_gateway_takes_the_token_in_the_authorization_header_as_etcd_does() {
    if !have_etcdctl() || !have_etcd() || !have("curl", "--version", "curl") {
        return;
    }
    let etcd = Etcd3::start(1);
    let cl = Cluster::start(1);
    cl.wait_leader(Duration::from_secs(10)).unwrap();
    let mut seen = Vec::new();
    for ep in [etcd.clients[0].clone(), cl.endpoint(0)] {
        setup(&ep);
        let (st, login) = curl(
            &ep,
            "/v3/auth/authenticate",
            r#"{"name":"alice","password":"alicepw"}"#,
            None,
        );
        assert_eq!(st, 200, "{login}");
        let token = login["token"].as_str().expect("a token").to_string();
        let put = |key: &str, token: Option<&str>| {
            let body = format!(
                r#"{{"key":"{}","value":"dg=="}}"#,
                base64_of(key.as_bytes())
            );
            let (st, v) = curl(&ep, "/v3/kv/put", &body, token);
            (st, v["code"].clone(), v["message"].clone())
        };
        let allowed = put("app/x", Some(&token));
        assert_eq!(allowed.0, 200, "{allowed:?}");
        seen.push((
            put("secret", Some(&token)),
            put("app/x", None),
            put("app/x", Some("bogus")),
        ));
    }
    assert_eq!(seen[0], seen[1], "etcd, then synod");
    assert_eq!(seen[1].0 .2, "etcdserver: permission denied");
}

fn base64_of(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
