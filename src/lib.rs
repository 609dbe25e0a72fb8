//! persist: a persistent object store for Python, shared by many processes.
//!
//! The layers, bottom up (DESIGN.md), each a module that uses only the one below it:
//!
//! - [`sync`]: atomics (std or loom), futex, process liveness. The only home of atomics.
//! - [`region`]: the store file, its mapping and header, the lock file and participant table.
//! - [`page`]: 4 KiB pages and runs of pages, lock-free.
//! - [`heap`]: malloc/free of any size inside the store, lock-free.
//! - [`object`]: values, lists, dicts, objects, reference counts, the store lock, the undo log.
//!
//! The Python module (`py`, feature `python`) builds on these (FORMAT.md is the on-disk layout).

#![warn(unsafe_op_in_unsafe_fn)]

pub mod heap;
// The object layer runs on the real mapping only; its atomic protocols (the writer word, the
// sequence, the held-set handshake) are argued in FORMAT.md §10 and not modelled in loom yet.
#[cfg(not(loom))]
pub mod object;
pub mod page;
pub mod region;
pub mod sync;

#[cfg(feature = "python")]
mod py;
