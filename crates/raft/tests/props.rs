//! Property tests: whatever a peer sends, `step` answers with `Ok` or a typed
//! error and never panics; the conf-change encoding round-trips and rejects garbage.

use proptest::prelude::*;
use synod_raft::*;

/// Mostly small numbers, sometimes at or beyond the accepted range.
fn big() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(MAX_TERM_OR_INDEX - 1),
        Just(MAX_TERM_OR_INDEX)
    ]
}

fn idx() -> impl Strategy<Value = u64> {
    prop_oneof![19 => 0u64..12, 1 => big()]
}

fn term() -> impl Strategy<Value = u64> {
    prop_oneof![19 => 0u64..6, 1 => big()]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        term(),
        idx(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(term, index, cc, data)| Entry {
            term,
            index,
            kind: if cc {
                EntryKind::ConfChange
            } else {
                EntryKind::Normal
            },
            data,
        })
}

fn meta() -> impl Strategy<Value = SnapshotMeta> {
    (
        idx(),
        term(),
        proptest::collection::btree_set(1u64..5, 0..4),
    )
        .prop_map(|(index, term, voters)| SnapshotMeta {
            index,
            term,
            conf_state: ConfState {
                voters,
                ..ConfState::default()
            },
        })
}

fn body() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        (
            idx(),
            term(),
            proptest::collection::vec(entry(), 0..4),
            idx()
        )
            .prop_map(|(index, log_term, entries, commit)| MessageBody::Append {
                index,
                log_term,
                entries,
                commit
            }),
        (idx(), any::<bool>(), idx(), term()).prop_map(
            |(index, reject, reject_hint, hint_term)| {
                MessageBody::AppendResponse {
                    index,
                    reject,
                    reject_hint,
                    hint_term,
                }
            }
        ),
        (idx(), term(), any::<bool>()).prop_map(|(last_index, last_term, transfer)| {
            MessageBody::Vote {
                last_index,
                last_term,
                transfer,
            }
        }),
        any::<bool>().prop_map(|reject| MessageBody::VoteResponse { reject }),
        (idx(), term()).prop_map(|(last_index, last_term)| MessageBody::PreVote {
            last_index,
            last_term
        }),
        any::<bool>().prop_map(|reject| MessageBody::PreVoteResponse { reject }),
        (idx(), idx()).prop_map(|(commit, ctx)| MessageBody::Heartbeat { commit, ctx }),
        (idx()).prop_map(|ctx| MessageBody::HeartbeatResponse { ctx }),
        (
            meta(),
            0u64..8,
            proptest::collection::vec(any::<u8>(), 0..8),
            any::<bool>()
        )
            .prop_map(|(meta, offset, data, done)| MessageBody::SnapshotChunk {
                meta,
                offset,
                data,
                done
            }),
        (idx(), idx())
            .prop_map(|(index, next_offset)| MessageBody::SnapshotResponse { index, next_offset }),
        Just(MessageBody::TimeoutNow),
        (idx()).prop_map(|ctx| MessageBody::ReadIndex { ctx }),
        (idx(), proptest::option::of(idx()))
            .prop_map(|(ctx, index)| MessageBody::ReadIndexResponse { ctx, index }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (0u64..5, 0u64..5, term(), body()).prop_map(|(from, to, term, body)| Message {
        from,
        to,
        term,
        body,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn step_never_panics(msgs in proptest::collection::vec(message(), 1..40), lead in any::<bool>(), ticks in 0u32..30) {
        let mut r = Raft::new(
            Config { id: 1, pre_vote: false, ..Config::default() },
            Init::Bootstrap { voters: vec![1, 2, 3], learners: vec![4] },
        )
        .unwrap();
        let rd = r.ready();
        r.advance(rd.token);
        if lead {
            // Become leader quickly with two granted votes.
            r.campaign();
            for from in [2, 3] {
                let _ = r.step(Message { from, to: 1, term: r.term(), body: MessageBody::VoteResponse { reject: false } });
            }
        }
        for m in msgs {
            let _ = r.step(m);
            if r.has_ready() {
                let rd = r.ready();
                r.advance(rd.token);
            }
        }
        for _ in 0..ticks {
            r.tick();
        }
        // Internal invariants the owner relies on.
        prop_assert!(r.commit() <= r.last_index());
        prop_assert!(r.applied() <= r.commit());
        prop_assert!(r.first_index() <= r.last_index() + 1);
    }

    #[test]
    fn conf_change_round_trips(changes in proptest::collection::vec((0u8..3, 1u64..1000), 0..10), t in 0u8..3) {
        let cc = ConfChange {
            changes: changes
                .into_iter()
                .map(|(k, id)| match k {
                    0 => ConfChangeSingle::AddVoter(id),
                    1 => ConfChangeSingle::AddLearner(id),
                    _ => ConfChangeSingle::Remove(id),
                })
                .collect(),
            transition: match t {
                0 => ConfChangeTransition::Auto,
                1 => ConfChangeTransition::JointImplicit,
                _ => ConfChangeTransition::JointExplicit,
            },
        };
        prop_assert_eq!(ConfChange::decode(&cc.encode()), Ok(cc));
    }

    #[test]
    fn conf_change_decode_rejects_or_accepts_garbage_without_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(cc) = ConfChange::decode(&data) {
            prop_assert_eq!(cc.encode(), data);
        }
    }
}
