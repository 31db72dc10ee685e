//! The client's error type: what went wrong talking to a cluster, typed so
//! callers can tell bad input from an unreachable cluster from a refusal.

use std::time::Duration;

/// Everything the client library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No endpoints were given.
    #[error("no endpoints given")]
    NoEndpoints,
    /// An endpoint could not be parsed as `HOST:PORT`, `http://HOST:PORT`
    /// or `https://HOST:PORT`.
    #[error("bad endpoint {endpoint:?}: {reason}")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
    /// No endpoint answered within the dial timeout.
    #[error("no endpoint reachable among [{endpoints}] (last error: {last})")]
    Unreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The last error seen.
        last: String,
    },
    /// A request did not finish in time.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The server refused or failed the request (etcd's gRPC codes and messages).
    #[error("{}", .0.message())]
    Status(#[from] tonic::Status),
    /// Retries ran out; the last refusal is kept.
    #[error("gave up after {attempts} attempts: {}", .last.message())]
    RetriesExhausted {
        /// How many attempts were made.
        attempts: u32,
        /// The last refusal.
        last: tonic::Status,
    },
    /// A stream (watch, keep-alive) ended when the caller still needed it.
    #[error("stream closed: {0}")]
    StreamClosed(String),
    /// The command's arguments are invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// TLS could not be set up (a certificate, key or CA file).
    #[error("TLS: {0}")]
    Tls(String),
    /// Local input or output failed (reading a txn from stdin, running a command).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A fenced write was refused: the lock it was guarded by is no longer
    /// held under this fencing token (the holder's lease expired, or the
    /// lock was released and taken again).
    #[error(
        "fencing token {token} is stale: {} no longer holds the lock under it{}; the write was not applied",
        String::from_utf8_lossy(.key),
        match .holder { Some(r) => format!(" (the key now has create revision {r})"), None => " (the key is gone)".to_string() }
    )]
    StaleFence {
        /// The lock key the write was guarded by.
        key: Vec<u8>,
        /// The token the writer holds.
        token: i64,
        /// The key's create revision now, if it exists.
        holder: Option<i64>,
    },
}

impl Error {
    /// The gRPC status behind this error, if the server sent one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::Status(s) => Some(s),
            Error::RetriesExhausted { last, .. } => Some(last),
            _ => None,
        }
    }
}

/// The client library's result type.
pub type Result<T> = std::result::Result<T, Error>;
