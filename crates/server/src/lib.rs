//! The synod server: a real cluster speaking the etcd v3 API.
//!
//! * [`runtime`]: the node's actor on tokio — ticks, peer messages and
//!   client requests in; durable records (one fdatasync per `Ready`), then
//!   messages and replies out.
//! * [`disk`]: the Raft log on synod-storage's WAL plus checksummed,
//!   atomically written snapshot images.
//! * [`transport`] and [`wire`]: TCP between peers — handshake, length-framed
//!   postcard, batching, bounded queues, reconnect with backoff.
//! * [`tls`]: TLS with rustls on the client and peer ports (etcd's
//!   `--cert-file`, `--peer-cert-file`, … flags), certificates re-read for
//!   new connections.
//! * [`grpc`]: etcd's KV, Watch, Lease, Cluster and Maintenance services,
//!   with etcd's headers, codes and messages, and the Lock and Election
//!   services built on them; [`watch`] keeps watchers.
//! * [`http`]: `/health` and `/metrics` on the client port; [`gateway`]:
//!   etcd's JSON gateway (`/v3/kv/range`, …, `/v3/watch`) beside them;
//!   [`authority`]: mends the HTTP/2 `:authority` of etcd's Go clients that
//!   h2 would refuse.
//! * [`server`]: start and stop one member; [`cli`]: `synod server` and
//!   `synod demo` (`etcd_args`: etcd's single-dash flags, `ETCD_*`
//!   variables and `--config-file` for `synod server`); [`offline`]: `synod snapshot restore|status` and
//!   `synod inspect`, on files with no server running.
//!
//! The deterministic core (synod-node, synod-raft, synod-kv) decides
//! everything; this crate only moves bytes and time.

#![deny(missing_docs)]

// Used from outside (the `synod` binary, tests, examples).
pub mod cli;
pub mod config;
pub mod disk;
pub mod etcd_backup;
pub mod fuzzing;
pub mod layout;
pub mod offline;
pub mod server;
pub mod tls;
pub mod wire;

// The server's own.
pub(crate) mod authority;
pub(crate) mod convert;
pub(crate) mod etcd_args;
pub(crate) mod gateway;
pub(crate) mod grpc;
pub(crate) mod http;
pub(crate) mod ids;
pub(crate) mod inbox;
pub(crate) mod metrics;
pub(crate) mod runtime;
pub(crate) mod shared;
pub mod tokens;
pub(crate) mod transport;
pub(crate) mod watch;

pub use config::{RawConfig, ServerConfig};
pub use server::{start, Running, StartError};
