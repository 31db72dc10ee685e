//! What two- and three-phase commit share: votes, outcomes, the scripted
//! coordinator crash, the participants' longest wait, and the
//! atomic-commitment checker run on the final states of every process.

use synod_simnet::{Process, Sim, Time};

use crate::report::Check;

/// Runs `sim` while `before` holds, crashes the coordinator (P0), keeps it
/// down until `back(now)`, restarts it as `recover` rebuilds it from what it
/// had written, and runs on until `until`.
pub fn crash_coordinator<P: Process>(
    sim: &mut Sim<P>,
    until: Time,
    before: impl FnMut(&Sim<P>) -> bool,
    back: impl FnOnce(Time) -> Time,
    recover: impl FnOnce(&P) -> P,
) {
    sim.run_while(until, before);
    sim.crash(0);
    let back = back(sim.now());
    sim.run_until(back);
    let fresh = recover(sim.proc(0));
    sim.restart(0, fresh);
    sim.run_until(until);
}

/// The longest wait of a participant, from its yes vote to its outcome,
/// given each participant's (voted at, decided at); 0 when none has both.
pub fn longest_wait(waits: impl Iterator<Item = (Option<Time>, Option<Time>)>) -> Time {
    waits
        .filter_map(|(voted, decided)| Some(decided?.saturating_sub(voted?)))
        .max()
        .unwrap_or(0)
}

/// A participant's vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vote {
    /// Ready to commit (and bound to obey the outcome).
    Yes,
    /// Aborts unilaterally.
    No,
}

/// A transaction's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed.
    Commit,
    /// Aborted.
    Abort,
}

/// What one process reports at the end of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Final {
    /// Its vote (none for the coordinator, or a participant never asked).
    pub vote: Option<Vote>,
    /// Its outcome, if it reached one.
    pub outcome: Option<Outcome>,
}

/// The atomic-commitment properties over every process's final state
/// (P0 the coordinator): AC1 no two processes reach different outcomes;
/// AC2 commit only if every participant voted yes; and termination, every
/// process has an outcome by the end of the run.
pub fn atomic_checks(finals: &[Final]) -> Vec<Check> {
    let outcomes: Vec<(usize, Outcome)> = finals
        .iter()
        .enumerate()
        .filter_map(|(p, f)| f.outcome.map(|o| (p, o)))
        .collect();
    let show = |o: &[(usize, Outcome)]| {
        o.iter()
            .map(|(p, o)| format!("P{p} {o:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let commits = outcomes
        .iter()
        .filter(|(_, o)| *o == Outcome::Commit)
        .count();
    let agree = commits == 0 || commits == outcomes.len();
    let all_yes = finals.iter().skip(1).all(|f| f.vote == Some(Vote::Yes));
    let no_voters: Vec<usize> = (1..finals.len())
        .filter(|&p| finals[p].vote != Some(Vote::Yes))
        .collect();
    let undecided: Vec<usize> = (0..finals.len())
        .filter(|&p| finals[p].outcome.is_none())
        .collect();
    vec![
        Check::new(
            "AC1: no two processes reach different outcomes",
            agree,
            show(&outcomes),
        ),
        Check::new(
            "AC2: commit only if every participant voted yes",
            commits == 0 || all_yes,
            if no_voters.is_empty() {
                "every participant voted yes".to_string()
            } else {
                format!("not yes: {no_voters:?}; {commits} committed")
            },
        ),
        Check::new(
            "termination: every process reaches an outcome",
            undecided.is_empty(),
            if undecided.is_empty() {
                format!("{} processes decided", finals.len())
            } else {
                format!("undecided at the end: {undecided:?}")
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(vote: Option<Vote>, outcome: Option<Outcome>) -> Final {
        Final { vote, outcome }
    }

    #[test]
    fn the_checker_fails_on_split_outcomes_and_bad_commits() {
        use Outcome::*;
        use Vote::*;
        let ok = [
            f(None, Some(Commit)),
            f(Some(Yes), Some(Commit)),
            f(Some(Yes), Some(Commit)),
        ];
        assert!(atomic_checks(&ok).iter().all(|c| c.held));
        let split = [
            f(None, Some(Commit)),
            f(Some(Yes), Some(Abort)),
            f(Some(Yes), Some(Commit)),
        ];
        assert!(!atomic_checks(&split)[0].held);
        let bad = [f(None, Some(Commit)), f(Some(No), Some(Commit))];
        assert!(!atomic_checks(&bad)[1].held);
        let open = [f(None, Some(Abort)), f(Some(Yes), None)];
        assert!(!atomic_checks(&open)[2].held);
    }
}
