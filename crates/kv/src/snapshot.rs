//! Snapshot encoding and state hashes.
