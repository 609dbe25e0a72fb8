//! sync: the only home of atomics, futex and process liveness.
//!
//! Everything above this module reaches shared memory through the types re-exported here, so
//! that a `--cfg loom` build swaps in loom's model-checked atomics in one place (as tokio's
//! `loom/mod.rs` does). Shared memory itself is reached through [`WordStore`]: a flat array of
//! 64-bit atomic words addressed by byte offset. The page and heap algorithms are written once
//! over that trait; the real store implements it on the mapped file (region), the loom models
//! on a small array of loom atomics ([`MemWords`]).
//!
//! Terms: an *offset* is a byte position inside one word store; a *word* is the 8-byte aligned
//! atomic at an offset.

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

mod words;
pub use words::{AccessError, IoFailure, Liveness, MemLiveness, MemWords, WordStore};

#[cfg(not(loom))]
pub mod futex;
#[cfg(not(loom))]
pub mod ofd;
