//! Membership changes: turning a configuration and a [`ConfChange`] into the
//! next configuration (simple change, entering or leaving joint consensus).

use crate::types::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfState, MAX_CONF_CHANGES,
};

fn apply_single(cs: &mut ConfState, c: ConfChangeSingle) -> Result<(), &'static str> {
    match c {
        ConfChangeSingle::AddVoter(id) => {
            if id == 0 {
                return Err("node id 0");
            }
            cs.learners.remove(&id);
            cs.learners_next.remove(&id);
            cs.voters.insert(id);
        }
        ConfChangeSingle::AddLearner(id) => {
            if id == 0 {
                return Err("node id 0");
            }
            cs.voters.remove(&id);
            if cs.voters_outgoing.contains(&id) {
                // Still votes in the outgoing half: becomes a learner on leaving joint.
                cs.learners_next.insert(id);
            } else {
                cs.learners.insert(id);
            }
        }
        ConfChangeSingle::Remove(id) => {
            cs.voters.remove(&id);
            cs.learners.remove(&id);
            cs.learners_next.remove(&id);
        }
    }
    Ok(())
}

/// The configuration that results from applying `cc` to `cs`, or why it is not allowed.
///
/// Thesis §4.3: a change of more than one voter goes through a joint
/// configuration in which decisions need a majority of both halves.
pub(crate) fn next_conf(cs: &ConfState, cc: &ConfChange) -> Result<ConfState, &'static str> {
    if cc.changes.is_empty() {
        if !cs.is_joint() {
            return Err("leaving joint while not joint");
        }
        let mut next = cs.clone();
        next.voters_outgoing.clear();
        let moved: Vec<_> = next.learners_next.iter().copied().collect();
        next.learners.extend(moved);
        next.learners_next.clear();
        next.auto_leave = false;
        return Ok(next);
    }
    if cs.is_joint() {
        return Err("already joint: leave it first");
    }
    if cc.changes.len() > MAX_CONF_CHANGES {
        return Err("too many changes");
    }
    // Count voter changes on a simple application first.
    let mut simple = cs.clone();
    for &c in &cc.changes {
        apply_single(&mut simple, c)?;
    }
    let diff = simple.voters.symmetric_difference(&cs.voters).count();
    // The bootstrap entry builds the first configuration from nothing: never joint.
    let joint = !cs.voters.is_empty()
        && match cc.transition {
            ConfChangeTransition::Auto => diff > 1,
            _ => true,
        };
    let next = if joint {
        let mut next = cs.clone();
        next.voters_outgoing = cs.voters.clone();
        next.auto_leave = cc.transition != ConfChangeTransition::JointExplicit;
        for &c in &cc.changes {
            apply_single(&mut next, c)?;
        }
        next
    } else {
        simple
    };
    if next.voters.is_empty() {
        return Err("no voters left");
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(ids: &[u64]) -> ConfState {
        ConfState {
            voters: ids.iter().copied().collect(),
            ..ConfState::default()
        }
    }

    #[test]
    fn two_voter_changes_go_joint_and_leave() {
        let cs = voters(&[1, 2, 3]);
        let cc = ConfChange {
            changes: vec![
                ConfChangeSingle::AddVoter(4),
                ConfChangeSingle::AddLearner(3),
            ],
            transition: ConfChangeTransition::Auto,
        };
        let j = next_conf(&cs, &cc).unwrap();
        assert!(j.is_joint() && j.auto_leave);
        assert_eq!(j.voters, [1, 2, 4].into_iter().collect());
        assert_eq!(j.learners_next, [3].into_iter().collect());
        assert!(next_conf(&j, &cc).is_err(), "cannot change while joint");
        let left = next_conf(&j, &ConfChange::default()).unwrap();
        assert!(!left.is_joint());
        assert_eq!(left.learners, [3].into_iter().collect());
    }

    #[test]
    fn single_change_is_direct_and_explicit_is_joint() {
        let cs = voters(&[1, 2, 3]);
        let add = ConfChange {
            changes: vec![ConfChangeSingle::AddVoter(4)],
            transition: ConfChangeTransition::Auto,
        };
        assert!(!next_conf(&cs, &add).unwrap().is_joint());
        let explicit = ConfChange {
            transition: ConfChangeTransition::JointExplicit,
            ..add
        };
        let j = next_conf(&cs, &explicit).unwrap();
        assert!(j.is_joint() && !j.auto_leave);
        assert!(next_conf(&cs, &ConfChange::default()).is_err());
        let remove_all = ConfChange {
            changes: vec![
                ConfChangeSingle::Remove(1),
                ConfChangeSingle::Remove(2),
                ConfChangeSingle::Remove(3),
            ],
            transition: ConfChangeTransition::Auto,
        };
        assert!(next_conf(&cs, &remove_all).is_err());
    }

    #[test]
    fn a_context_rides_along_and_bad_trailers_are_refused() {
        let cc = ConfChange {
            changes: vec![ConfChangeSingle::AddLearner(7)],
            transition: ConfChangeTransition::Auto,
        };
        assert_eq!(cc.encode_with_context(&[]), cc.encode());
        let with = cc.encode_with_context(b"member 7");
        let (back, ctx) = ConfChange::decode_with_context(&with).unwrap();
        assert_eq!((back, ctx), (cc.clone(), &b"member 7"[..]));
        assert_eq!(ConfChange::decode(&with).unwrap(), cc);
        let mut cut = with.clone();
        cut.pop();
        assert!(ConfChange::decode(&cut).is_err());
        let mut odd = cc.encode();
        odd.extend_from_slice(&[0, 0]);
        assert!(ConfChange::decode(&odd).is_err());
        let cs = voters(&[1, 2]);
        assert_eq!(
            cs.apply_change(&cc).unwrap().learners,
            [7].into_iter().collect()
        );
    }
}
