//! The recorded-history format: one JSON object per client operation, one per
//! line, as fixed by `shared/INTERFACES.md` ("Recorded histories"). This module
//! parses it strictly (every rule of the contract is a typed error naming the
//! line), writes it back, and offers a [`Recorder`] that clients use to record
//! operations as they are invoked and completed.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// The longest line [`read_jsonl`] accepts, in bytes; longer lines are an error
/// rather than an unbounded allocation.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What a client asked the database to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Write `value` to `key`.
    Put,
    /// Read `key`; `value` is what was read (`None`: absent).
    Get,
    /// Compare-and-set: write `value` if the current value equals `expected`
    /// (`None`: the key must be absent).
    Cas,
    /// Remove `key`.
    Delete,
}

impl OpKind {
    /// The name used in the JSON format.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
            OpKind::Cas => "cas",
            OpKind::Delete => "delete",
        }
    }
}

/// One recorded client operation.
///
/// `call` and `ret` are nanoseconds from one monotonic clock of the recording
/// process; the interval `[call, ret]` is closed. `ok == None` together with
/// `ret == None` means the outcome is unknown: the operation may take effect at
/// any time after `call`, or never.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    /// The client (a sequential process) that issued the operation.
    pub client: u64,
    /// What was asked.
    pub op: OpKind,
    /// The key.
    pub key: String,
    /// put/cas: the value written; get: the value read (`None`: absent);
    /// delete: always `None`.
    #[serde(deserialize_with = "required")]
    pub value: Option<String>,
    /// cas only: the value compared against (`None`: must be absent).
    #[serde(deserialize_with = "required")]
    pub expected: Option<String>,
    /// `Some(true)` acknowledged / succeeded, `Some(false)` certainly did not
    /// take effect (cas: the comparison failed), `None` unknown.
    #[serde(deserialize_with = "required")]
    pub ok: Option<bool>,
    /// Invocation time, nanoseconds.
    pub call: u64,
    /// Completion time, nanoseconds; `None` when the outcome is unknown.
    #[serde(rename = "return", deserialize_with = "required")]
    pub ret: Option<u64>,
}

/// Deserializes a nullable field that must nevertheless be present: with
/// `deserialize_with` serde reports a missing field instead of defaulting it.
fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// A rule of the format that an operation (or a client's sequence of
/// operations) breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// put and cas must carry the value they write.
    #[error("{0} needs a \"value\" (the value written)")]
    MissingValue(&'static str),
    /// delete writes no value.
    #[error("delete must have \"value\": null")]
    ValueOnDelete,
    /// A get that did not succeed read nothing.
    #[error("a get whose \"ok\" is not true must have \"value\": null")]
    ValueOnFailedGet,
    /// Only cas compares.
    #[error("\"expected\" must be null for {0} (only cas has one)")]
    ExpectedNotCas(&'static str),
    /// `ok` and `return` are null together or not at all.
    #[error("\"ok\" is null but \"return\" is not: an unknown outcome has no return time")]
    ReturnWithUnknownOutcome,
    /// `ok` and `return` are null together or not at all.
    #[error("\"return\" is null but \"ok\" is not: a known outcome needs its return time")]
    KnownOutcomeWithoutReturn,
    /// Time flows forward.
    #[error("\"return\" ({ret}) is before \"call\" ({call})")]
    ReturnBeforeCall {
        /// The invocation time.
        call: u64,
        /// The completion time.
        ret: u64,
    },
    /// After an unknown outcome a client continues under a fresh id.
    #[error("client {client} issues an operation after its unknown-outcome operation on line {unknown_line}; it must continue under a fresh client id")]
    ClientReusedAfterUnknown {
        /// The client id.
        client: u64,
        /// The line of the unknown-outcome operation.
        unknown_line: usize,
    },
    /// A client is sequential: one operation at a time.
    #[error(
        "client {client} starts an operation before its operation on line {previous_line} returned"
    )]
    ClientOverlap {
        /// The client id.
        client: u64,
        /// The line of the earlier, still running operation.
        previous_line: usize,
    },
}

/// Why a history could not be read. Line numbers start at 1.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Reading failed.
    #[error("line {line}: read error: {source}")]
    Io {
        /// The line being read.
        line: usize,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The line is not valid UTF-8.
    #[error("line {line}: not valid UTF-8")]
    NotUtf8 {
        /// The line.
        line: usize,
    },
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("line {line}: longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong {
        /// The line.
        line: usize,
    },
    /// An empty line (the format has exactly one object per line).
    #[error("line {line}: empty line")]
    EmptyLine {
        /// The line.
        line: usize,
    },
    /// The line is not one JSON object of the expected shape (bad JSON, a
    /// missing or unknown field, a wrong type).
    #[error("line {line}, column {}: {}", .source.column(), json_message(.source))]
    Json {
        /// The line.
        line: usize,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The object is well-formed but breaks a rule of the format.
    #[error("line {line}: {violation}")]
    Invalid {
        /// The line.
        line: usize,
        /// The rule broken.
        violation: Violation,
    },
}

/// serde_json's message without its "at line 1 column N" (a history line is
/// parsed on its own, so that line number would mislead).
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) => message.to_string(),
        None => text,
    }
}

impl HistoryError {
    /// The line the error is about.
    pub fn line(&self) -> usize {
        match self {
            HistoryError::Io { line, .. }
            | HistoryError::NotUtf8 { line }
            | HistoryError::LineTooLong { line }
            | HistoryError::EmptyLine { line }
            | HistoryError::Json { line, .. }
            | HistoryError::Invalid { line, .. } => *line,
        }
    }
}

impl Op {
    /// Whether the outcome is unknown (`ok` and `return` null).
    pub fn is_unknown(&self) -> bool {
        self.ok.is_none()
    }

    /// Checks the rules that concern this operation alone.
    pub fn validate(&self) -> Result<(), Violation> {
        let kind = self.op.name();
        match self.op {
            OpKind::Put | OpKind::Cas if self.value.is_none() => {
                return Err(Violation::MissingValue(kind))
            }
            OpKind::Delete if self.value.is_some() => return Err(Violation::ValueOnDelete),
            OpKind::Get if self.ok != Some(true) && self.value.is_some() => {
                return Err(Violation::ValueOnFailedGet)
            }
            _ => {}
        }
        if self.op != OpKind::Cas && self.expected.is_some() {
            return Err(Violation::ExpectedNotCas(kind));
        }
        match (self.ok, self.ret) {
            (None, Some(_)) => Err(Violation::ReturnWithUnknownOutcome),
            (Some(_), None) => Err(Violation::KnownOutcomeWithoutReturn),
            (_, Some(ret)) if ret < self.call => Err(Violation::ReturnBeforeCall {
                call: self.call,
                ret,
            }),
            _ => Ok(()),
        }
    }

    /// A short human description, e.g. `put(k, "v") ok [10, 20] client 3`.
    pub fn describe(&self) -> String {
        let show = |v: &Option<String>| match v {
            Some(s) => format!("{s:?}"),
            None => "absent".to_string(),
        };
        let what = match self.op {
            OpKind::Put => format!("put({:?}, {})", self.key, show(&self.value)),
            OpKind::Get => format!("get({:?}) -> {}", self.key, show(&self.value)),
            OpKind::Cas => format!(
                "cas({:?}, {} -> {})",
                self.key,
                show(&self.expected),
                show(&self.value)
            ),
            OpKind::Delete => format!("delete({:?})", self.key),
        };
        let outcome = match self.ok {
            Some(true) => "ok",
            Some(false) => "failed",
            None => "unknown",
        };
        let ret = match self.ret {
            Some(r) => r.to_string(),
            None => "never".to_string(),
        };
        format!(
            "{what} {outcome} [{}, {ret}] client {}",
            self.call, self.client
        )
    }
}

/// Checks the rules that span a client's operations: a client runs one
/// operation at a time, and never again after an unknown outcome. `lines[i]` is
/// the line number reported for `ops[i]`.
fn validate_clients(ops: &[Op], lines: &[usize]) -> Result<(), HistoryError> {
    assert_eq!(ops.len(), lines.len());
    let mut by_client: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        by_client.entry(op.client).or_default().push(i);
    }
    // Report the earliest offending line, whatever the client.
    let mut worst: Option<(usize, Violation)> = None;
    for (client, mut idx) in by_client {
        idx.sort_by_key(|&i| (ops[i].call, lines[i]));
        for pair in idx.windows(2) {
            let (a, b) = (&ops[pair[0]], pair[1]);
            let violation = match a.ret {
                None => Violation::ClientReusedAfterUnknown {
                    client,
                    unknown_line: lines[pair[0]],
                },
                Some(ret) if ops[b].call < ret => Violation::ClientOverlap {
                    client,
                    previous_line: lines[pair[0]],
                },
                Some(_) => continue,
            };
            if worst.as_ref().is_none_or(|(l, _)| lines[b] < *l) {
                worst = Some((lines[b], violation));
            }
            break;
        }
    }
    match worst {
        Some((line, violation)) => Err(HistoryError::Invalid { line, violation }),
        None => Ok(()),
    }
}

/// Reads a whole history, checking every rule of the format. Operations are
/// returned in file order.
pub fn read_jsonl(mut reader: impl BufRead) -> Result<Vec<Op>, HistoryError> {
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        line += 1;
        buf.clear();
        let limit = (MAX_LINE_BYTES + 1) as u64;
        let n = std::io::Read::take(&mut reader, limit)
            .read_until(b'\n', &mut buf)
            .map_err(|source| HistoryError::Io { line, source })?;
        if n == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err(HistoryError::LineTooLong { line });
        }
        let text = std::str::from_utf8(&buf).map_err(|_| HistoryError::NotUtf8 { line })?;
        if text.trim().is_empty() {
            return Err(HistoryError::EmptyLine { line });
        }
        let op: Op =
            serde_json::from_str(text).map_err(|source| HistoryError::Json { line, source })?;
        op.validate()
            .map_err(|violation| HistoryError::Invalid { line, violation })?;
        ops.push(op);
        lines.push(line);
    }
    validate_clients(&ops, &lines)?;
    Ok(ops)
}

/// Checks a history built in memory by the same rules as [`read_jsonl`]; line
/// numbers in the error are 1-based positions in `ops`.
pub fn validate(ops: &[Op]) -> Result<(), HistoryError> {
    for (i, op) in ops.iter().enumerate() {
        op.validate().map_err(|violation| HistoryError::Invalid {
            line: i + 1,
            violation,
        })?;
    }
    let lines: Vec<usize> = (1..=ops.len()).collect();
    validate_clients(ops, &lines)
}

/// Writes a history, one JSON object per line, every field present.
pub fn write_jsonl(mut writer: impl Write, ops: &[Op]) -> std::io::Result<()> {
    for op in ops {
        serde_json::to_writer(&mut writer, op)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()
}

/// A handle on an operation that a [`Recorder`] has seen invoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pending(usize);

/// Records client operations as they happen. Time stamps come from the caller
/// (virtual time in the simulator, a monotonic clock in real tests), so the
/// recorder itself reads no clock.
///
/// Misuse (completing twice, going backwards in time, reusing a client after
/// an unknown outcome) is a bug in the caller and panics.
#[derive(Debug, Default)]
pub struct Recorder {
    ops: Vec<Op>,
    done: Vec<bool>,
    /// Per client: index of its running operation, or of its last one if
    /// that ended with an unknown outcome (the client is then retired).
    busy: BTreeMap<u64, (usize, bool)>,
    next_client: u64,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client id never used before in this recorder (neither handed out nor
    /// seen in [`Recorder::invoke`]).
    pub fn fresh_client(&mut self) -> u64 {
        let id = self.next_client;
        self.next_client += 1;
        id
    }

    /// Records the invocation of an operation. `value` is the value written
    /// (put, cas) and `None` for get and delete; `expected` is for cas only.
    pub fn invoke(
        &mut self,
        client: u64,
        op: OpKind,
        key: &str,
        value: Option<String>,
        expected: Option<String>,
        now: u64,
    ) -> Pending {
        assert!(
            matches!(op, OpKind::Put | OpKind::Cas) == value.is_some(),
            "recorder: {op:?} with value {value:?}"
        );
        assert!(
            op == OpKind::Cas || expected.is_none(),
            "recorder: expected on {op:?}"
        );
        if let Some(&(prev, retired)) = self.busy.get(&client) {
            assert!(
                !retired,
                "recorder: client {client} reused after an unknown outcome"
            );
            assert!(
                self.done[prev],
                "recorder: client {client} invoked twice concurrently"
            );
            let prev_ret = self.ops[prev].ret.expect("completed op has a return");
            assert!(now >= prev_ret, "recorder: client {client} time went back");
        }
        self.next_client = self.next_client.max(client + 1);
        let idx = self.ops.len();
        self.ops.push(Op {
            client,
            op,
            key: key.to_string(),
            value,
            expected,
            ok: None,
            call: now,
            ret: None,
        });
        self.done.push(false);
        self.busy.insert(client, (idx, false));
        Pending(idx)
    }

    /// Records a known outcome. `ok` is whether it succeeded (cas: whether it
    /// swapped; put/delete: `false` only if it certainly never takes effect).
    /// For a get, `read` is the value read; it must be `None` otherwise.
    pub fn complete(&mut self, p: Pending, ok: bool, read: Option<String>, now: u64) {
        assert!(!self.done[p.0], "recorder: operation completed twice");
        let op = &mut self.ops[p.0];
        assert!(now >= op.call, "recorder: return before call");
        if op.op == OpKind::Get {
            assert!(ok || read.is_none(), "recorder: failed get with a value");
            op.value = read;
        } else {
            assert!(read.is_none(), "recorder: read value on a {:?}", op.op);
        }
        op.ok = Some(ok);
        op.ret = Some(now);
        self.done[p.0] = true;
    }

    /// Records that the outcome will never be known (timeout, connection
    /// lost). The client is retired: continue under [`Recorder::fresh_client`].
    pub fn complete_unknown(&mut self, p: Pending) {
        assert!(!self.done[p.0], "recorder: operation completed twice");
        let client = self.ops[p.0].client;
        self.done[p.0] = true;
        self.busy.insert(client, (p.0, true));
    }

    /// The operations recorded so far; those still running are reported as
    /// unknown outcomes.
    pub fn history(&self) -> Vec<Op> {
        self.ops.clone()
    }

    /// Consumes the recorder, returning the history (running operations as
    /// unknown outcomes).
    pub fn into_history(self) -> Vec<Op> {
        self.ops
    }
}

/// The recording process's monotonic clock, in nanoseconds since the clock
/// was made, for histories of real processes (the simulator passes virtual
/// time to the [`Recorder`] instead). Never a server's clock.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    start: std::time::Instant,
}

impl MonotonicClock {
    /// A clock reading 0 now.
    pub fn new() -> Self {
        MonotonicClock {
            start: std::time::Instant::now(),
        }
    }

    /// Nanoseconds since [`MonotonicClock::new`].
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).expect("fewer than 584 years")
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"client":1,"op":"put","key":"k","value":"v","expected":null,"ok":true,"call":1,"return":2}"#;

    fn parse(text: &str) -> Result<Vec<Op>, HistoryError> {
        read_jsonl(text.as_bytes())
    }

    /// Parses one line derived from [`GOOD`] by a textual replacement and
    /// returns the violation or JSON error message.
    fn bad(from: &str, to: &str) -> HistoryError {
        let line = GOOD.replace(from, to);
        assert_ne!(line, GOOD, "replacement {from:?} did not apply");
        parse(&line).expect_err(&line)
    }

    fn violation(e: HistoryError) -> Violation {
        match e {
            HistoryError::Invalid { violation, .. } => violation,
            other => panic!("expected a rule violation, got {other}"),
        }
    }

    #[test]
    fn good_line_round_trips() {
        let ops = parse(GOOD).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].ret, Some(2));
        assert_eq!(ops[0].op, OpKind::Put);
        let mut out = Vec::new();
        write_jsonl(&mut out, &ops).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{GOOD}\n"));
    }

    #[test]
    fn all_kinds_parse() {
        let text = [
            r#"{"client":1,"op":"put","key":"k","value":"a","expected":null,"ok":true,"call":1,"return":2}"#,
            r#"{"client":1,"op":"get","key":"k","value":"a","expected":null,"ok":true,"call":3,"return":4}"#,
            r#"{"client":1,"op":"cas","key":"k","value":"b","expected":"a","ok":false,"call":5,"return":6}"#,
            r#"{"client":1,"op":"cas","key":"k","value":"b","expected":null,"ok":true,"call":7,"return":7}"#,
            r#"{"client":1,"op":"delete","key":"k","value":null,"expected":null,"ok":null,"call":8,"return":null}"#,
            r#"{"client":2,"op":"get","key":"k","value":null,"expected":null,"ok":false,"call":8,"return":9}"#,
        ]
        .join("\n");
        let ops = parse(&text).unwrap();
        assert_eq!(ops.len(), 6);
        assert!(ops[4].is_unknown());
        let mut out = Vec::new();
        write_jsonl(&mut out, &ops).unwrap();
        assert_eq!(parse(std::str::from_utf8(&out).unwrap()).unwrap(), ops);
    }

    #[test]
    fn unknown_field_is_an_error() {
        let e = bad(r#""call":1"#, r#""call":1,"extra":0"#);
        assert!(matches!(e, HistoryError::Json { line: 1, .. }), "{e}");
        assert!(e.to_string().starts_with("line 1, column "), "{e}");
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");
        assert!(!e.to_string().contains("at line"), "{e}");
    }

    #[test]
    fn every_field_is_required() {
        for field in [
            r#""client":1,"#,
            r#""op":"put","#,
            r#""key":"k","#,
            r#""value":"v","#,
            r#""expected":null,"#,
            r#""ok":true,"#,
            r#""call":1,"#,
        ] {
            let e = bad(field, "");
            assert!(
                e.to_string().contains("missing field"),
                "{field}: {e} (should name the missing field)"
            );
        }
        let e = bad(r#","return":2"#, "");
        assert!(e.to_string().contains("missing field `return`"), "{e}");
    }

    #[test]
    fn wrong_types_are_errors() {
        for (from, to) in [
            (r#""client":1"#, r#""client":-1"#),
            (r#""client":1"#, r#""client":"1""#),
            (r#""op":"put""#, r#""op":"append""#),
            (r#""key":"k""#, r#""key":null"#),
            (r#""value":"v""#, r#""value":3"#),
            (r#""ok":true"#, r#""ok":"yes""#),
            (r#""call":1"#, r#""call":1.5"#),
            (r#""return":2"#, r#""return":"2""#),
        ] {
            assert!(matches!(bad(from, to), HistoryError::Json { .. }), "{to}");
        }
        assert!(matches!(
            parse("not json"),
            Err(HistoryError::Json { line: 1, .. })
        ));
        assert!(matches!(
            parse(&format!("{GOOD} {GOOD}")),
            Err(HistoryError::Json { line: 1, .. })
        ));
        assert!(matches!(
            parse("[1,2]"),
            Err(HistoryError::Json { line: 1, .. })
        ));
    }

    #[test]
    fn put_and_cas_need_a_value() {
        assert_eq!(
            violation(bad(r#""value":"v""#, r#""value":null"#)),
            Violation::MissingValue("put")
        );
        let cas = GOOD
            .replace(r#""op":"put""#, r#""op":"cas""#)
            .replace(r#""value":"v""#, r#""value":null"#);
        assert_eq!(
            violation(parse(&cas).unwrap_err()),
            Violation::MissingValue("cas")
        );
    }

    #[test]
    fn delete_has_no_value() {
        let e = bad(r#""op":"put""#, r#""op":"delete""#);
        assert_eq!(violation(e), Violation::ValueOnDelete);
    }

    #[test]
    fn failed_get_has_no_value() {
        let get = GOOD.replace(r#""op":"put""#, r#""op":"get""#);
        assert!(parse(&get).is_ok());
        let failed = get.replace(r#""ok":true"#, r#""ok":false"#);
        assert_eq!(
            violation(parse(&failed).unwrap_err()),
            Violation::ValueOnFailedGet
        );
    }

    #[test]
    fn expected_only_for_cas() {
        for kind in ["put", "get", "delete"] {
            let line = GOOD
                .replace(r#""op":"put""#, &format!(r#""op":"{kind}""#))
                .replace(r#""expected":null"#, r#""expected":"x""#);
            let line = if kind == "delete" {
                line.replace(r#""value":"v""#, r#""value":null"#)
            } else {
                line
            };
            let v = violation(parse(&line).unwrap_err());
            assert!(
                matches!(v, Violation::ExpectedNotCas(k) if k == kind),
                "{v}"
            );
        }
    }

    #[test]
    fn ok_null_iff_return_null() {
        assert_eq!(
            violation(bad(r#""ok":true"#, r#""ok":null"#)),
            Violation::ReturnWithUnknownOutcome
        );
        assert_eq!(
            violation(bad(r#""return":2"#, r#""return":null"#)),
            Violation::KnownOutcomeWithoutReturn
        );
        let unknown = GOOD
            .replace(r#""ok":true"#, r#""ok":null"#)
            .replace(r#""return":2"#, r#""return":null"#);
        assert!(parse(&unknown).unwrap()[0].is_unknown());
    }

    #[test]
    fn return_not_before_call() {
        assert_eq!(
            violation(bad(r#""call":1"#, r#""call":3"#)),
            Violation::ReturnBeforeCall { call: 3, ret: 2 }
        );
        // A zero-length interval is fine.
        assert!(parse(&GOOD.replace(r#""call":1"#, r#""call":2"#)).is_ok());
    }

    #[test]
    fn client_is_sequential() {
        let second = GOOD.replace(r#""return":2"#, r#""return":5"#);
        let e = parse(&format!("{GOOD}\n{second}")).unwrap_err();
        assert_eq!(e.line(), 2);
        assert_eq!(
            violation(e),
            Violation::ClientOverlap {
                client: 1,
                previous_line: 1
            }
        );
        // Another client may overlap.
        let other = second.replace(r#""client":1"#, r#""client":2"#);
        assert!(parse(&format!("{GOOD}\n{other}")).is_ok());
        // The next call may come at the very instant of the previous return
        // (as in a discrete-event simulator).
        let touching = second.replace(r#""call":1"#, r#""call":2"#);
        assert!(parse(&format!("{GOOD}\n{touching}")).is_ok());
        // Sequential in time but listed out of order is fine.
        let later = GOOD
            .replace(r#""call":1"#, r#""call":3"#)
            .replace(r#""return":2"#, r#""return":4"#);
        assert!(parse(&format!("{later}\n{GOOD}")).is_ok());
    }

    #[test]
    fn client_retired_after_unknown() {
        let unknown = GOOD
            .replace(r#""ok":true"#, r#""ok":null"#)
            .replace(r#""return":2"#, r#""return":null"#);
        let later = GOOD
            .replace(r#""call":1"#, r#""call":10"#)
            .replace(r#""return":2"#, r#""return":11"#);
        let e = parse(&format!("{unknown}\n{later}")).unwrap_err();
        assert_eq!(e.line(), 2);
        assert_eq!(
            violation(e),
            Violation::ClientReusedAfterUnknown {
                client: 1,
                unknown_line: 1
            }
        );
    }

    #[test]
    fn line_errors() {
        assert!(matches!(
            parse(&format!("{GOOD}\n\n{GOOD}")),
            Err(HistoryError::EmptyLine { line: 2 })
        ));
        let mut bytes = format!("{GOOD}\n").into_bytes();
        bytes.extend_from_slice(b"{\"key\":\"\xff\"}\n");
        assert!(matches!(
            read_jsonl(&bytes[..]),
            Err(HistoryError::NotUtf8 { line: 2 })
        ));
        let long = format!("{GOOD}\n{}", " ".repeat(MAX_LINE_BYTES + 10));
        assert!(matches!(
            parse(&long),
            Err(HistoryError::LineTooLong { line: 2 })
        ));
        // CRLF line ends and a missing final newline are accepted.
        assert_eq!(
            parse(&format!(
                "{GOOD}\r\n{}",
                GOOD.replace("\"client\":1", "\"client\":2")
            ))
            .unwrap()
            .len(),
            2
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn recorder_records() {
        let mut r = Recorder::new();
        let c = r.fresh_client();
        let p = r.invoke(c, OpKind::Put, "k", Some("v".into()), None, 10);
        r.complete(p, true, None, 20);
        let g = r.invoke(c, OpKind::Get, "k", None, None, 21);
        r.complete(g, true, Some("v".into()), 25);
        let w = r.invoke(c, OpKind::Put, "k", Some("w".into()), None, 30);
        r.complete_unknown(w);
        let c2 = r.fresh_client();
        assert_ne!(c, c2);
        let x = r.invoke(c2, OpKind::Cas, "k", Some("x".into()), Some("w".into()), 31);
        r.complete(x, false, None, 40);
        let ops = r.into_history();
        assert!(validate(&ops).is_ok());
        let clock = MonotonicClock::new();
        let (a, b) = (clock.now(), clock.now());
        assert!(b >= a);
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[1].value.as_deref(), Some("v"));
        assert!(ops[2].is_unknown());
        assert_eq!(ops[3].ok, Some(false));
        assert_eq!(ops[3].ret, Some(40));
    }

    #[test]
    #[should_panic(expected = "reused after an unknown outcome")]
    fn recorder_refuses_retired_client() {
        let mut r = Recorder::new();
        let p = r.invoke(1, OpKind::Delete, "k", None, None, 1);
        r.complete_unknown(p);
        r.invoke(1, OpKind::Delete, "k", None, None, 2);
    }
}
