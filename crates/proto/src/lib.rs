//! The etcd v3 wire API for synod: protobuf messages (prost) and gRPC clients
//! and servers (tonic), generated at build time from our own `.proto` files.
//!
//! The definitions in `proto/` are written for synod but carry etcd's package,
//! service, message and field names, numbers and types unchanged, so every
//! gRPC path (`/etcdserverpb.KV/Range`, `/v3lockpb.Lock/Lock`, …) and every
//! encoded byte is what etcd's clients expect. Only the HTTP-gateway and gogo
//! annotations are left out.
//!
//! Modules mirror the protobuf packages:
//!
//! * [`etcdserverpb`]: KV, Watch, Lease, Cluster, Maintenance and Auth.
//! * [`mvccpb`]: `KeyValue` and `Event`.
//! * [`authpb`]: users, roles and permissions.
//! * [`v3lockpb`]: the Lock service.
//! * [`v3electionpb`]: the Election service.
//!
//! Each service `Foo` comes as `foo_client::FooClient` and
//! `foo_server::{Foo, FooServer}` inside its package's module.

#![deny(missing_docs)]

/// Messages and services of etcd's `etcdserverpb` package (the main client API).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// Messages of etcd's `mvccpb` package: stored key-value pairs and watch events.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// Messages of etcd's `authpb` package: users, roles and permissions.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// The Lock service of etcd's `v3lockpb` package.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}

/// The Election service of etcd's `v3electionpb` package.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}

/// synod's own service beside etcd's API (`synodpb.Ranges`: the ranges of
/// the keyspace), which etcd does not serve.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod synodpb {
    include!(concat!(env!("OUT_DIR"), "/synodpb.rs"));
}

/// The encoded `FileDescriptorSet` of all six packages (with imports and
/// source info), for serving gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/synod_descriptor.bin"));

/// Message size limits matching etcd's defaults, for servers and clients
/// built on these services (tonic's `max_decoding_message_size` and
/// `max_encoding_message_size` on the generated `*Server`/`*Client` types).
pub mod limits {
    /// etcd's default `--max-request-bytes`: the largest request it accepts, 1.5 MiB.
    pub const DEFAULT_MAX_REQUEST_BYTES: usize = 3 * 512 * 1024;
    /// Room etcd allows on top of a request for gRPC framing: 512 KiB.
    pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
    /// Largest message an etcd server decodes by default (request plus overhead, 2 MiB).
    pub const DEFAULT_MAX_DECODING_MESSAGE_SIZE: usize =
        DEFAULT_MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES;
    /// Largest message an etcd server sends by default (`math.MaxInt32`).
    pub const DEFAULT_MAX_ENCODING_MESSAGE_SIZE: usize = i32::MAX as usize;
}

/// gRPC service names, as they appear in method paths `/<service>/<method>`.
pub mod service_names {
    /// `etcdserverpb.KV`
    pub const KV: &str = "etcdserverpb.KV";
    /// `etcdserverpb.Watch`
    pub const WATCH: &str = "etcdserverpb.Watch";
    /// `etcdserverpb.Lease`
    pub const LEASE: &str = "etcdserverpb.Lease";
    /// `etcdserverpb.Cluster`
    pub const CLUSTER: &str = "etcdserverpb.Cluster";
    /// `etcdserverpb.Maintenance`
    pub const MAINTENANCE: &str = "etcdserverpb.Maintenance";
    /// `etcdserverpb.Auth`
    pub const AUTH: &str = "etcdserverpb.Auth";
    /// `v3lockpb.Lock`
    pub const LOCK: &str = "v3lockpb.Lock";
    /// `v3electionpb.Election`
    pub const ELECTION: &str = "v3electionpb.Election";
    /// `synodpb.Ranges` (synod's own)
    pub const RANGES: &str = "synodpb.Ranges";
}
