//! etcd's authentication rules as the state machine applies them: users,
//! roles, permissions over keys and ranges, the root rules, the auth
//! revision, simple tokens, and the state surviving snapshots and commits.

use synod_kv::*;

fn auth(
    kv: &mut KvStore,
    from: Option<&AuthInfo>,
    cmd: AuthCommand,
) -> Result<AuthResponse, KvError> {
    let c = match from {
        Some(info) => Command::from_user(info.clone(), Command::Auth(cmd)),
        None => Command::Auth(cmd),
    };
    match kv.apply(&c).0? {
        Response::Auth { resp, .. } => Ok(resp),
        r => panic!("not an auth response: {r:?}"),
    }
}

fn ok(kv: &mut KvStore, cmd: AuthCommand) {
    auth(kv, None, cmd).unwrap();
}

fn user_add(kv: &mut KvStore, name: &str) {
    ok(
        kv,
        AuthCommand::UserAdd {
            name: name.into(),
            password: b"$2b$10$hash".to_vec(),
            no_password: false,
        },
    );
}

fn grant(kv: &mut KvStore, role: &str, kind: PermKind, key: &str, end: &[u8]) {
    ok(
        kv,
        AuthCommand::RoleGrantPermission {
            role: role.into(),
            perm: Permission {
                kind,
                key: key.into(),
                range_end: end.to_vec(),
            },
        },
    );
}

fn revision(kv: &KvStore) -> u64 {
    kv.auth().revision()
}

fn me(kv: &KvStore, user: &str) -> AuthInfo {
    AuthInfo {
        user: user.into(),
        revision: revision(kv),
    }
}

/// root (root role) and alice (role `app`), authentication on.
fn enabled() -> KvStore {
    let mut kv = KvStore::new();
    user_add(&mut kv, "root");
    ok(
        &mut kv,
        AuthCommand::UserGrantRole {
            user: "root".into(),
            role: ROOT_ROLE.into(),
        },
    );
    user_add(&mut kv, "alice");
    ok(&mut kv, AuthCommand::RoleAdd { name: "app".into() });
    ok(
        &mut kv,
        AuthCommand::UserGrantRole {
            user: "alice".into(),
            role: "app".into(),
        },
    );
    ok(&mut kv, AuthCommand::Enable);
    kv
}

fn put_as(kv: &mut KvStore, info: &AuthInfo, key: &str) -> Result<Response, KvError> {
    kv.apply(&Command::from_user(
        info.clone(),
        Command::Put(PutRequest::new(key, "v")),
    ))
    .0
}

fn read(kv: &KvStore, info: &AuthInfo, key: &str, end: &[u8]) -> Result<(), KvError> {
    kv.check_range(
        info,
        &RangeRequest {
            key: key.into(),
            range_end: end.to_vec(),
            ..Default::default()
        },
    )
}

#[test]
fn enable_needs_a_root_user_holding_the_root_role() {
    let mut kv = KvStore::new();
    assert_eq!(
        auth(&mut kv, None, AuthCommand::Enable),
        Err(KvError::RootUserNotExist)
    );
    user_add(&mut kv, "root");
    assert_eq!(
        auth(&mut kv, None, AuthCommand::Enable),
        Err(KvError::RootRoleNotExist)
    );
    // The root role need not exist as a role to be granted.
    ok(
        &mut kv,
        AuthCommand::UserGrantRole {
            user: "root".into(),
            role: ROOT_ROLE.into(),
        },
    );
    ok(&mut kv, AuthCommand::Enable);
    assert!(kv.auth().enabled());
    assert_eq!(
        auth(&mut kv, None, AuthCommand::Status),
        Ok(AuthResponse::Status {
            enabled: true,
            revision: 3
        })
    );
}

#[test]
fn the_auth_revision_moves_on_every_change_but_enable() {
    let mut kv = KvStore::new();
    assert_eq!(revision(&kv), 1);
    user_add(&mut kv, "root");
    assert_eq!(revision(&kv), 2);
    ok(&mut kv, AuthCommand::RoleAdd { name: "r".into() });
    assert_eq!(revision(&kv), 3);
    let g = AuthCommand::UserGrantRole {
        user: "root".into(),
        role: ROOT_ROLE.into(),
    };
    ok(&mut kv, g.clone());
    assert_eq!(revision(&kv), 4);
    ok(&mut kv, g);
    assert_eq!(revision(&kv), 4, "a grant the user has is ignored");
    ok(&mut kv, AuthCommand::Enable);
    assert_eq!(revision(&kv), 4, "enable does not move it");
    ok(&mut kv, AuthCommand::Disable);
    assert_eq!(revision(&kv), 5, "disable does");
    ok(&mut kv, AuthCommand::Disable);
    assert_eq!(revision(&kv), 5, "disabling twice is nothing");
    // Lookups change nothing, and no key revision moves.
    auth(&mut kv, None, AuthCommand::UserList).unwrap();
    assert_eq!((revision(&kv), kv.revision()), (5, 1));
}

#[test]
fn names_and_existence_are_checked_with_etcds_errors() {
    let mut kv = KvStore::new();
    let add = |name: &str| AuthCommand::UserAdd {
        name: name.into(),
        password: vec![],
        no_password: false,
    };
    assert_eq!(auth(&mut kv, None, add("")), Err(KvError::UserEmpty));
    ok(&mut kv, add("bob"));
    assert_eq!(
        auth(&mut kv, None, add("bob")),
        Err(KvError::UserAlreadyExists)
    );
    assert!(matches!(
        auth(&mut kv, None, add(&"x".repeat(MAX_NAME_BYTES + 1))),
        Err(KvError::AuthLimit(_))
    ));
    assert_eq!(
        auth(&mut kv, None, AuthCommand::RoleAdd { name: "".into() }),
        Err(KvError::RoleEmpty)
    );
    ok(&mut kv, AuthCommand::RoleAdd { name: "r".into() });
    assert_eq!(
        auth(&mut kv, None, AuthCommand::RoleAdd { name: "r".into() }),
        Err(KvError::RoleAlreadyExists)
    );
    let grant = |user: &str, role: &str| AuthCommand::UserGrantRole {
        user: user.into(),
        role: role.into(),
    };
    assert_eq!(
        auth(&mut kv, None, grant("nobody", "r")),
        Err(KvError::UserNotFound)
    );
    assert_eq!(
        auth(&mut kv, None, grant("bob", "nothing")),
        Err(KvError::RoleNotFound)
    );
    assert_eq!(
        auth(
            &mut kv,
            None,
            AuthCommand::UserRevokeRole {
                user: "bob".into(),
                role: "r".into()
            }
        ),
        Err(KvError::RoleNotGranted)
    );
    assert_eq!(
        auth(
            &mut kv,
            None,
            AuthCommand::RoleRevokePermission {
                role: "r".into(),
                key: b"k".to_vec(),
                range_end: vec![]
            }
        ),
        Err(KvError::PermissionNotGranted)
    );
    assert_eq!(
        auth(&mut kv, None, AuthCommand::UserGet { name: "x".into() }),
        Err(KvError::UserNotFound)
    );
    assert_eq!(
        auth(&mut kv, None, AuthCommand::RoleDelete { name: "x".into() }),
        Err(KvError::RoleNotFound)
    );
}

#[test]
fn deleting_a_role_takes_it_from_its_users_and_lists_are_in_order() {
    let mut kv = KvStore::new();
    for u in ["carol", "alice", "bob"] {
        user_add(&mut kv, u);
    }
    ok(&mut kv, AuthCommand::RoleAdd { name: "w".into() });
    ok(&mut kv, AuthCommand::RoleAdd { name: "a".into() });
    for r in ["w", "a"] {
        ok(
            &mut kv,
            AuthCommand::UserGrantRole {
                user: "bob".into(),
                role: r.into(),
            },
        );
    }
    assert_eq!(
        auth(&mut kv, None, AuthCommand::UserList),
        Ok(AuthResponse::Users(vec![
            "alice".into(),
            "bob".into(),
            "carol".into()
        ]))
    );
    assert_eq!(
        auth(&mut kv, None, AuthCommand::UserGet { name: "bob".into() }),
        Ok(AuthResponse::User(vec!["a".into(), "w".into()]))
    );
    ok(&mut kv, AuthCommand::RoleDelete { name: "w".into() });
    assert_eq!(
        auth(&mut kv, None, AuthCommand::UserGet { name: "bob".into() }),
        Ok(AuthResponse::User(vec!["a".into()]))
    );
    assert_eq!(
        auth(&mut kv, None, AuthCommand::RoleList),
        Ok(AuthResponse::Roles(vec!["a".into()]))
    );
}

#[test]
fn permissions_are_kept_by_key_and_a_regrant_changes_the_kind() {
    let mut kv = KvStore::new();
    ok(&mut kv, AuthCommand::RoleAdd { name: "r".into() });
    grant(&mut kv, "r", PermKind::Read, "m", b"");
    grant(&mut kv, "r", PermKind::Write, "a", b"b");
    grant(&mut kv, "r", PermKind::Read, "z", &[0]);
    grant(&mut kv, "r", PermKind::ReadWrite, "a", b"b");
    let Ok(AuthResponse::Role(perms)) =
        auth(&mut kv, None, AuthCommand::RoleGet { name: "r".into() })
    else {
        panic!("role expected")
    };
    let got: Vec<(PermKind, &[u8], &[u8])> = perms
        .iter()
        .map(|p| (p.kind, p.key.as_slice(), p.range_end.as_slice()))
        .collect();
    assert_eq!(
        got,
        vec![
            (PermKind::ReadWrite, &b"a"[..], &b"b"[..]),
            (PermKind::Read, b"m", b""),
            (PermKind::Read, b"z", &[0][..]),
        ]
    );
    ok(
        &mut kv,
        AuthCommand::RoleRevokePermission {
            role: "r".into(),
            key: b"m".to_vec(),
            range_end: vec![],
        },
    );
    let Ok(AuthResponse::Role(perms)) =
        auth(&mut kv, None, AuthCommand::RoleGet { name: "r".into() })
    else {
        panic!("role expected")
    };
    assert_eq!(perms.len(), 2);
}

#[test]
fn management_needs_the_root_role_but_users_may_read_themselves() {
    let mut kv = enabled();
    let root = me(&kv, "root");
    let alice = me(&kv, "alice");
    let nobody = AuthInfo::default();
    let ghost = me(&kv, "ghost");
    let add = AuthCommand::RoleAdd { name: "x".into() };
    assert_eq!(
        auth(&mut kv, Some(&alice), add.clone()),
        Err(KvError::PermissionDenied)
    );
    assert_eq!(
        auth(&mut kv, Some(&nobody), add.clone()),
        Err(KvError::UserEmpty)
    );
    assert_eq!(
        auth(&mut kv, Some(&ghost), add.clone()),
        Err(KvError::UserNotFound)
    );
    assert_eq!(
        auth(&mut kv, Some(&alice), AuthCommand::UserList),
        Err(KvError::PermissionDenied)
    );
    auth(&mut kv, Some(&root), add).unwrap();
    // Herself and her own role, nothing else.
    let alice = me(&kv, "alice");
    assert!(auth(
        &mut kv,
        Some(&alice),
        AuthCommand::UserGet {
            name: "alice".into()
        }
    )
    .is_ok());
    assert_eq!(
        auth(
            &mut kv,
            Some(&alice),
            AuthCommand::UserGet {
                name: "root".into()
            }
        ),
        Err(KvError::PermissionDenied)
    );
    assert!(auth(
        &mut kv,
        Some(&alice),
        AuthCommand::RoleGet { name: "app".into() }
    )
    .is_ok());
    assert_eq!(
        auth(
            &mut kv,
            Some(&alice),
            AuthCommand::RoleGet { name: "x".into() }
        ),
        Err(KvError::PermissionDenied)
    );
    // Status is the root role's too, as etcd's applier has it (3.4.31 on,
    // and 3.5).
    assert_eq!(
        auth(&mut kv, Some(&nobody), AuthCommand::Status),
        Err(KvError::UserEmpty)
    );
    let alice = me(&kv, "alice");
    assert_eq!(
        auth(&mut kv, Some(&alice), AuthCommand::Status),
        Err(KvError::PermissionDenied)
    );
    let root = me(&kv, "root");
    assert!(matches!(
        auth(&mut kv, Some(&root), AuthCommand::Status),
        Ok(AuthResponse::Status { enabled: true, .. })
    ));
}

#[test]
fn status_is_anyones_while_authentication_is_off() {
    let mut kv = KvStore::new();
    assert_eq!(
        auth(&mut kv, Some(&AuthInfo::default()), AuthCommand::Status),
        Ok(AuthResponse::Status {
            enabled: false,
            revision: 1
        })
    );
}

#[test]
fn root_cannot_be_deleted_nor_demoted_while_enabled() {
    let mut kv = enabled();
    let del_user = AuthCommand::UserDelete {
        name: "root".into(),
    };
    let demote = AuthCommand::UserRevokeRole {
        user: "root".into(),
        role: ROOT_ROLE.into(),
    };
    assert_eq!(
        auth(&mut kv, None, del_user.clone()),
        Err(KvError::InvalidAuthMgmt)
    );
    assert_eq!(
        auth(&mut kv, None, demote.clone()),
        Err(KvError::InvalidAuthMgmt)
    );
    ok(
        &mut kv,
        AuthCommand::RoleAdd {
            name: ROOT_ROLE.into(),
        },
    );
    assert_eq!(
        auth(
            &mut kv,
            None,
            AuthCommand::RoleDelete {
                name: ROOT_ROLE.into()
            }
        ),
        Err(KvError::InvalidAuthMgmt)
    );
    ok(&mut kv, AuthCommand::Disable);
    ok(&mut kv, demote);
    ok(&mut kv, del_user);
}

#[test]
fn a_key_operation_needs_a_user_a_fresh_revision_and_a_covering_permission() {
    let mut kv = enabled();
    grant(&mut kv, "app", PermKind::ReadWrite, "app/", b"app0");
    let alice = me(&kv, "alice");
    assert_eq!(
        put_as(&mut kv, &AuthInfo::default(), "app/x"),
        Err(KvError::UserEmpty)
    );
    assert_eq!(
        put_as(&mut kv, &alice, "other"),
        Err(KvError::PermissionDenied)
    );
    assert!(put_as(&mut kv, &alice, "app/x").is_ok());
    let (root, ghost) = (me(&kv, "root"), me(&kv, "ghost"));
    assert!(
        put_as(&mut kv, &root, "other").is_ok(),
        "root may do anything"
    );
    assert_eq!(
        put_as(&mut kv, &ghost, "app/x"),
        Err(KvError::PermissionDenied)
    );
    // Any change to the auth state makes alice's token stale.
    let stale = alice.clone();
    ok(
        &mut kv,
        AuthCommand::RoleAdd {
            name: "unrelated".into(),
        },
    );
    let before = kv.revision();
    assert_eq!(
        put_as(&mut kv, &stale, "app/x"),
        Err(KvError::AuthOldRevision)
    );
    assert_eq!(
        read(&kv, &stale, "app/x", b""),
        Err(KvError::AuthOldRevision)
    );
    assert_eq!(kv.revision(), before, "a refused put writes nothing");
    let fresh = me(&kv, "alice");
    assert!(put_as(&mut kv, &fresh, "app/x").is_ok());
    // Commands the node makes itself are not wrapped, and trusted.
    assert!(kv
        .apply(&Command::Put(PutRequest::new("other", "v")))
        .0
        .is_ok());
    // With authentication off, nobody is checked.
    ok(&mut kv, AuthCommand::Disable);
    assert!(put_as(&mut kv, &AuthInfo::default(), "other").is_ok());
}

#[test]
fn ranges_are_allowed_when_the_union_of_permissions_covers_them() {
    let mut kv = enabled();
    grant(&mut kv, "app", PermKind::Read, "a", b"c");
    grant(&mut kv, "app", PermKind::Read, "c", b"e");
    grant(&mut kv, "app", PermKind::Read, "k", b"");
    grant(&mut kv, "app", PermKind::Read, "x", &[0]);
    grant(&mut kv, "app", PermKind::Write, "w", b"");
    let a = me(&kv, "alice");
    // Adjacent permissions cover a range across both.
    assert_eq!(read(&kv, &a, "a", b"e"), Ok(()));
    assert_eq!(read(&kv, &a, "b", b"d"), Ok(()));
    // Past their end, or before their start, is not covered.
    assert_eq!(read(&kv, &a, "a", b"e\0"), Err(KvError::PermissionDenied));
    assert_eq!(read(&kv, &a, "0", b"b"), Err(KvError::PermissionDenied));
    // A single-key permission holds that key only, and a range of just it.
    assert_eq!(read(&kv, &a, "k", b""), Ok(()));
    assert_eq!(read(&kv, &a, "k", b"k\0"), Ok(()));
    assert_eq!(read(&kv, &a, "k", b"l"), Err(KvError::PermissionDenied));
    assert_eq!(read(&kv, &a, "ka", b""), Err(KvError::PermissionDenied));
    // "\0" as range end: every key from x on, and a read from x on.
    assert_eq!(read(&kv, &a, "zzz", b""), Ok(()));
    assert_eq!(read(&kv, &a, "x", &[0]), Ok(()));
    assert_eq!(read(&kv, &a, "w", &[0]), Err(KvError::PermissionDenied));
    // A write permission is no read permission, nor the other way.
    assert_eq!(read(&kv, &a, "w", b""), Err(KvError::PermissionDenied));
    assert_eq!(put_as(&mut kv, &a, "k"), Err(KvError::PermissionDenied));
    assert!(put_as(&mut kv, &a, "w").is_ok());
    // An empty range is covered by nothing.
    assert_eq!(read(&kv, &a, "b", b"a"), Err(KvError::PermissionDenied));
}

#[test]
fn returning_previous_values_needs_read_permission_too() {
    let mut kv = enabled();
    grant(&mut kv, "app", PermKind::Write, "w", b"");
    let a = me(&kv, "alice");
    let mut p = PutRequest::new("w", "1");
    p.prev_kv = true;
    let put = Command::from_user(a.clone(), Command::Put(p));
    assert_eq!(kv.apply(&put).0, Err(KvError::PermissionDenied));
    let mut d = DeleteRangeRequest::key("w");
    d.prev_kv = true;
    let del = Command::from_user(a.clone(), Command::DeleteRange(d));
    assert_eq!(kv.apply(&del).0, Err(KvError::PermissionDenied));
    let del = Command::from_user(a, Command::DeleteRange(DeleteRangeRequest::key("w")));
    assert!(kv.apply(&del).0.is_ok());
}

#[test]
fn a_txn_is_checked_whole_whichever_branch_runs() {
    let mut kv = enabled();
    grant(&mut kv, "app", PermKind::ReadWrite, "ok/", b"ok0");
    let a = me(&kv, "alice");
    let cmp = |key: &str| Compare {
        key: key.into(),
        range_end: vec![],
        target: CompareTarget::Version(0),
        result: CompareResult::Equal,
    };
    let txn = |compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>| {
        Command::from_user(
            a.clone(),
            Command::Txn(TxnRequest {
                compare,
                success,
                failure,
            }),
        )
    };
    let put = |k: &str| RequestOp::Put(PutRequest::new(k, "v"));
    let allowed = txn(vec![cmp("ok/a")], vec![put("ok/b")], vec![]);
    assert!(kv.apply(&allowed).0.is_ok());
    // The compare reads outside the grant.
    let t = txn(vec![cmp("secret")], vec![put("ok/b")], vec![]);
    assert_eq!(kv.apply(&t).0, Err(KvError::PermissionDenied));
    // The failure branch, which will not run, writes outside it.
    let t = txn(vec![cmp("ok/zz")], vec![put("ok/c")], vec![put("secret")]);
    assert_eq!(kv.apply(&t).0, Err(KvError::PermissionDenied));
    // A range in a nested txn reads outside it.
    let nested = RequestOp::Txn(TxnRequest {
        compare: vec![],
        success: vec![RequestOp::Range(RangeRequest::prefix("sec"))],
        failure: vec![],
    });
    let t = txn(vec![], vec![put("ok/d"), nested], vec![]);
    assert_eq!(kv.apply(&t).0, Err(KvError::PermissionDenied));
    assert_eq!(kv.range(&RangeRequest::key("ok/c")).unwrap().kvs.len(), 0);
}

#[test]
fn revoking_or_reusing_a_lease_needs_write_permission_on_its_keys() {
    let mut kv = enabled();
    grant(&mut kv, "app", PermKind::ReadWrite, "mine", b"");
    let a = me(&kv, "alice");
    kv.apply(&Command::LeaseGrant { id: 5, ttl: 60 }).0.unwrap();
    let mut p = PutRequest::new("theirs", "v");
    p.lease = 5;
    kv.apply(&Command::Put(p)).0.unwrap();
    let revoke = Command::from_user(a.clone(), Command::LeaseRevoke { id: 5 });
    assert_eq!(kv.apply(&revoke).0, Err(KvError::PermissionDenied));
    let mut p = PutRequest::new("mine", "v");
    p.lease = 5;
    let put = Command::from_user(a.clone(), Command::Put(p));
    assert_eq!(kv.apply(&put).0, Err(KvError::PermissionDenied));
    kv.apply(&Command::DeleteRange(DeleteRangeRequest::key("theirs")))
        .0
        .unwrap();
    assert!(kv.apply(&put).0.is_ok());
    assert!(kv.apply(&revoke).0.is_ok());
}

/// etcd 3.4.44 closed the bypass (`Fix the 'read via PrevKv' and 'Put with
/// lease' in TXN bypass rbac check issue`): a put inside a txn, nested or
/// not, is checked as a put alone is.
#[test]
fn a_put_inside_a_txn_is_checked_as_one_alone() {
    let mut kv = enabled();
    grant(&mut kv, "app", PermKind::Write, "w", b"");
    let a = me(&kv, "alice");
    kv.apply(&Command::LeaseGrant { id: 7, ttl: 60 }).0.unwrap();
    let mut theirs = PutRequest::new("theirs", "v");
    theirs.lease = 7;
    kv.apply(&Command::Put(theirs)).0.unwrap();
    let txn = |op: RequestOp| {
        Command::from_user(
            a.clone(),
            Command::Txn(TxnRequest {
                compare: vec![],
                success: vec![op],
                failure: vec![],
            }),
        )
    };
    let nested = |op: RequestOp| {
        RequestOp::Txn(TxnRequest {
            compare: vec![],
            success: vec![],
            failure: vec![op],
        })
    };
    // Write-only: the previous value is a read.
    let mut p = PutRequest::new("w", "1");
    p.prev_kv = true;
    for op in [RequestOp::Put(p.clone()), nested(RequestOp::Put(p))] {
        assert_eq!(kv.apply(&txn(op)).0, Err(KvError::PermissionDenied));
    }
    // The lease holds a key she may not write.
    let mut p = PutRequest::new("w", "1");
    p.lease = 7;
    for op in [RequestOp::Put(p.clone()), nested(RequestOp::Put(p.clone()))] {
        assert_eq!(kv.apply(&txn(op)).0, Err(KvError::PermissionDenied));
    }
    assert!(kv.range(&RangeRequest::key("w")).unwrap().kvs.is_empty());
    // Plain, it goes through.
    assert!(kv
        .apply(&txn(RequestOp::Put(PutRequest::new("w", "1"))))
        .0
        .is_ok());
    // The root role passes the lease check at once, even with a token
    // checked at an older auth revision (etcd's `checkLeasePutsKeys`
    // begins with `IsAdminPermitted`, which looks at no revision).
    let stale_root = me(&kv, "root");
    grant(&mut kv, "app", PermKind::Write, "x", b"");
    let revoke = Command::from_user(stale_root, Command::LeaseRevoke { id: 7 });
    assert!(kv.apply(&revoke).0.is_ok());
    assert!(kv
        .range(&RangeRequest::key("theirs"))
        .unwrap()
        .kvs
        .is_empty());
}

#[test]
fn a_delete_applied_in_chunks_is_checked_first() {
    let mut kv = enabled();
    for i in 0..10 {
        kv.apply(&Command::Put(PutRequest::new(format!("k{i}"), "v")))
            .0
            .unwrap();
    }
    let a = me(&kv, "alice");
    let del = Command::from_user(
        a,
        Command::DeleteRange(DeleteRangeRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            prev_kv: false,
        }),
    );
    let mut budget = 3;
    assert_eq!(
        kv.apply_bounded(&del, &mut budget),
        Progress::Done(Err(KvError::PermissionDenied), vec![])
    );
    assert!(!kv.in_progress());
    let root = me(&kv, "root");
    let Command::As { cmd, .. } = del else {
        unreachable!()
    };
    let del = Command::from_user(root, *cmd);
    let mut budget = 3;
    assert_eq!(kv.apply_bounded(&del, &mut budget), Progress::Pending);
    let mut done = None;
    while done.is_none() {
        let mut budget = 3;
        if let Progress::Done(r, _) = kv.resume(&mut budget) {
            done = Some(r);
        }
    }
    assert!(matches!(
        done.unwrap(),
        Ok(Response::DeleteRange { deleted: 10, .. })
    ));
}

#[test]
fn simple_tokens_name_their_user_until_the_user_changes() {
    let mut kv = KvStore::new();
    let login = |kv: &mut KvStore, name: &str, prefix: &str| {
        auth(
            kv,
            None,
            AuthCommand::Authenticate {
                name: name.into(),
                token_prefix: prefix.into(),
            },
        )
    };
    assert_eq!(login(&mut kv, "root", "abc"), Err(KvError::AuthNotEnabled));
    let mut kv = enabled();
    assert_eq!(login(&mut kv, "ghost", "abc"), Err(KvError::AuthFailed));
    let Ok(AuthResponse::Token(t)) = login(&mut kv, "alice", "abcdef") else {
        panic!("token expected")
    };
    assert_eq!(t, format!("abcdef.{}", kv.revision()));
    assert_eq!(kv.auth().token_user(&t), Some("alice"));
    let Ok(AuthResponse::Token(r)) = login(&mut kv, "root", "rootrootroot") else {
        panic!("token expected")
    };
    ok(
        &mut kv,
        AuthCommand::UserChangePassword {
            name: "alice".into(),
            password: b"$2b$10$new".to_vec(),
        },
    );
    assert_eq!(
        kv.auth().token_user(&t),
        None,
        "a new password ends her tokens"
    );
    assert_eq!(kv.auth().token_user(&r), Some("root"), "not root's");
    ok(&mut kv, AuthCommand::Disable);
    assert_eq!(kv.auth().token_user(&r), None, "disable ends every token");
    // A user without a password cannot log in.
    ok(
        &mut kv,
        AuthCommand::UserAdd {
            name: "cert".into(),
            password: vec![],
            no_password: true,
        },
    );
    ok(&mut kv, AuthCommand::Enable);
    assert_eq!(login(&mut kv, "cert", "abc"), Err(KvError::AuthFailed));
}

#[test]
fn the_token_table_is_bounded() {
    let mut kv = enabled();
    let mut first = None;
    for i in 0..MAX_TOKENS + 5 {
        let Ok(AuthResponse::Token(t)) = auth(
            &mut kv,
            None,
            AuthCommand::Authenticate {
                name: "alice".into(),
                token_prefix: format!("p{i}"),
            },
        ) else {
            panic!("token expected")
        };
        first.get_or_insert(t);
    }
    assert_eq!(kv.auth().token_user(first.as_ref().unwrap()), None);
    assert_eq!(
        kv.auth().token_user(&format!("p{}.1", MAX_TOKENS + 4)),
        Some("alice")
    );
}

#[test]
fn the_auth_state_survives_snapshots_and_commits_and_is_hashed() {
    let pristine = KvStore::new();
    let mut kv = enabled();
    grant(&mut kv, "app", PermKind::ReadWrite, "app/", b"app0");
    assert_ne!(kv.hash(), pristine.hash(), "the auth state is in the hash");
    let mut other = enabled();
    grant(&mut other, "app", PermKind::Read, "app/", b"app0");
    assert_ne!(kv.hash(), other.hash(), "down to a permission's kind");

    let back = KvStore::restore(&kv.snapshot()).unwrap();
    assert_eq!(back.hash(), kv.hash());
    assert!(back.auth().enabled());
    assert_eq!(back.auth().revision(), kv.auth().revision());
    assert_eq!(back.auth().role("app"), kv.auth().role("app"));
    assert_eq!(back.auth().user("alice"), kv.auth().user("alice"));

    let meta = kv.meta_image();
    let opened = KvStore::open(kv.engine().clone(), Some(&meta), KvConfig::default()).unwrap();
    assert_eq!(opened.hash(), kv.hash());
    assert_eq!(opened.auth().user("root"), kv.auth().user("root"));

    // A store that never saw an auth change keeps its former image.
    let plain = KvStore::restore(&pristine.snapshot()).unwrap();
    assert_eq!(plain.snapshot(), pristine.snapshot());
    // Damage in the auth part is refused.
    let mut snap = kv.snapshot();
    let n = snap.len();
    snap[n - 12] ^= 0xff;
    assert!(KvStore::restore(&snap).is_err());
}
