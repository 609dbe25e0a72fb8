//! object manager: values, containers, reference counts, the store lock, the undo log.
//!
//! Terms: a *value word* is what a container slot holds (value.rs); a *container* is a list,
//! dict, object or set block (shared, reference counted); an *owned* value (str, bytes, big int,
//! float, tuple, frozenset, the packed everyday values) belongs to exactly one value word. An *op* is one change made under the
//! writer lock: a single operation, or everything inside a lockExcl section.
//!
//! Concurrency (FORMAT.md §10.4, §10.9):
//! - Store-wide changes are serialized by the *writer word* in the lock file (a robust mutex:
//!   the owner's slot and generation). A single change on the store-wide path takes it
//!   briefly; lockExcl keeps it until the outermost unlock. lockShared holders are counted
//!   under it, and writers wait for the count to be zero.
//! - Single changes of one container (a scalar set, a delete, an append), once a second
//!   participant has attached, take that container's *part lock* instead (its version word,
//!   parts.rs): changes of different containers run in parallel. Sections close a *gate* and
//!   wait for the part changes in flight.
//! - Readers take no lock: the store *sequence* word is odd while a store-wide change is in
//!   progress (for a lockExcl section: the whole section), and a reader validates that it was
//!   even and unchanged around its reads (a seqlock), and, while parts are on, that the version
//!   of every container it read is unchanged. So a reader sees every change whole, never a
//!   change that may still be rolled back, and waits only while a change is in progress.
//! - Reclamation: a block is freed only by a writer holding the writer word, after the change
//!   that unlinked it has been committed. Readers that raced with it read memory that stays
//!   mapped (the file never shrinks) and discard what they read, because the sequence moved.
//!   So no reader ever *uses* a freed block; nothing waits on a reader. Containers that a
//!   process's proxies hold are listed in that process's *held set* (in the file), and are not
//!   freed while any held set names them.
//! - Undo: every word a writer changes is logged (offset, old value) in its slot's undo log
//!   before the change; blocks allocated are logged so that a rollback frees them; references
//!   dropped are logged and released only at commit. So a transaction() that raises, a lockExcl
//!   section whose holder dies, and a single change cut short all roll back from the log.
//!
//! Boundary to the layer above (the Python glue, tests, tools): a container crosses it as a
//! [`Container`] (view.rs), never as a bare offset: the root, the containers in decoded
//! values, a new unlinked container, held containers, and every call that reads or changes
//! one. Value words stay `u64` (tagged words, value.rs); block offsets go to the heap as
//! `heap::Block`. Inside the layer, offsets are plain words.
//!
//! Where each part lives (each file opens with what it owns and its invariants):
//!
//! | file | owns |
//! |---|---|
//! | `layout.rs` | every offset of the object layer (FORMAT.md §10) |
//! | `value.rs`, `view.rs` | value words and block kinds; the typed view of a value and its children |
//! | `participant.rs` | this process's attachment: mappings, slot, heap, lock words |
//! | `store.rs` | the open store: its owners put together, the root, open and close |
//! | `access.rs` | checked word access and the allocations of a change |
//! | `undo.rs` | the participant's undo log: append, commit, rollback (over `store_lock`) |
//! | `lock.rs` | the store lock: lockExcl, lockShared, single changes, unlocked reads |
//! | `parts.rs` | single changes on a container's part lock, the gate, reads that validate versions |
//! | `stale_lock.rs` | repairs of lock words no live process left (a damaged lock file) |
//! | `session.rs` | a store shared by threads: one step at a time, waits, retries, fork |
//! | `encode.rs`, `key.rs` | writing and releasing values; dict keys, their hash and equality |
//! | `packed.rs`, `number.rs` | datetime, date, time, timedelta, Decimal and UUID payloads; numbers as keys |
//! | `list.rs`, `dict.rs`, `set.rs` | the containers (a set is a dict without values) |
//! | `held.rs` | held sets and the orphan list's holders |
//! | `orphans.rs` | the orphan list collected on a part of its own |
//! | `walk.rs` | check, gc, stats |
//! | `recovery.rs` | a dead participant's object state, an orphaned durable change |
//! | `error.rs` | the layer's errors |

mod access;
pub mod cache;
pub mod dict;
mod encode;
mod error;
mod held;
mod key;
pub mod layout;
pub mod list;
mod lock;
pub mod number;
mod orphans;
pub mod packed;
mod participant;
mod parts;
mod recovery;
mod session;
mod set;
mod stale_lock;
mod store;
pub mod tree;
mod undo;
pub mod value;
pub mod view;
mod walk;

pub use layout::{container, journals, lock_words, slot_words, words};
pub use lock::{Busy, ListWaiter, LockKind, Waiter};
pub use session::{thread_id, Plain, SharedStore, Waiting};
pub use view::Container;
pub use walk::{CheckReport, GcReport, Stats};

pub use error::{Error, Result};
pub use parts::{Inserted, FLAT_TUPLE_MAX};
pub use store::{AppendDeath, ReadToken, Store};
