//! The synod client: everything that talks to a cluster from the outside over
//! the etcd v3 gRPC API.
//!
//! * [`Client`]: a connection to a cluster given as a list of endpoints. It
//!   picks a healthy endpoint, and retries a bounded number of times when an
//!   endpoint becomes unavailable or the cluster is between leaders (see
//!   [`client`] for exactly which requests are retried and why).
//! * [`concurrency`]: sessions (a lease kept alive), mutexes and elections
//!   built on leases, transactions on `create_revision` and watches, the way
//!   etcd's own `concurrency` package builds them, so they interoperate with
//!   `etcdctl lock` and `etcdctl elect`.
//! * [`cli`]: the `synod put|get|del|txn|watch|lease|lock|elect|member|status`
//!   subcommands, printing etcdctl's `simple` and `json` shapes (and tables).
//! * [`tls`]: TLS to https endpoints (etcdctl's `--cacert`, `--cert`,
//!   `--key`, `--insecure-skip-tls-verify`).
//! * [`bench`]: `synod bench`, a load generator that multiplexes many clients
//!   over a few HTTP/2 connections and reports HDR-histogram percentiles.
//!
//! The client is server-agnostic: it speaks only the etcd API (via
//! `synod-proto`), so the same code drives synod and etcd.

#![deny(missing_docs)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod concurrency;
pub mod error;
pub mod output;
pub mod tls;

pub use client::{prefix_end, Client, ClientOptions};
pub use error::Error;
