//! persist: a persistent object store for Python, shared by many processes.
//!
//! The layers, bottom up, each a module that uses only the one below it:
//!
//! - [`sync`]: atomics (std or loom), futex, process liveness. The only home of atomics.
//! - [`region`]: the store file, its mapping and header, the lock file and participant table.
//! - [`page`]: 4 KiB pages and runs of pages, lock-free.
//! - [`heap`]: malloc/free of any size inside the store, lock-free.
//! - [`store_lock`]: the store lock's word protocol (writer word, seqlock, undo of word entries,
//!   hand-over from a dead owner), the part of the object layer that the loom models check.
//! - [`part_lock`]: part locks on containers' version words and the gate between single changes
//!   and lockExcl/lockShared sections (model-checked; used by the object layer's single
//!   changes of one container).
//! - [`object`]: values, lists, dicts, objects, reference counts, the store lock, the undo log.
//!
//! The Python module (`py`, feature `python`) builds on these (FORMAT.md is the on-disk layout).

#![warn(unsafe_op_in_unsafe_fn)]

pub mod heap;
pub mod list_event;
// The object layer runs on the real mapping only. Its store lock's protocol is `store_lock`,
// which loom checks; the held-set handshake is argued in FORMAT.md §10.5, not modelled yet.
#[cfg(not(loom))]
pub mod object;
pub mod page;
pub mod part_lock;
pub mod region;
pub mod store_lock;
pub mod sync;

#[cfg(feature = "python")]
mod py;
