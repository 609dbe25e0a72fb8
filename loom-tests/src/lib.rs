//! Loom models of persist's lock-free page and heap managers, and of its store lock.
//!
//! The models live in `tests/`, one property per file; this library holds what they share: a
//! simulated store ([`World`]: the store's words, the lock file's participant table and the
//! liveness flags, all loom atomics under `--cfg loom`), [`KillableWords`], the word store
//! through which a participant is "SIGKILLed" between any two of its steps, and the runners
//! that kill it at every such step ([`every_kill_point`], [`every_kill_pair`]).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test
//! -p loom-tests --release` (scripts/test-all.sh does, and records the time). With
//! `LOOM_TESTS_VERBOSE=1` and `--nocapture`, the kill models print how many kill points they
//! cover.
//!
//! Everything here is built only with `RUSTFLAGS="--cfg loom"`; without it the crate is empty, so
//! that `cargo test --workspace` still builds it.

#[cfg(loom)]
mod world;
#[cfg(loom)]
pub use world::*;

/// The store lock's words, in a lock file of their own (the store-lock and wake models).
#[cfg(loom)]
pub const LOCK_AT: persist::store_lock::LockOffsets = persist::store_lock::LockOffsets {
    writer: 0,
    seq: 8,
    waiters: 16,
};
#[cfg(loom)]
pub const LOCK_FILE_BYTES: u64 = 24;
