//! This process's attachment to a store: the two mappings, its participant slot, its heap and
//! its lock words. Every other owner of the object layer (the undo log, the held set, the lock
//! bookkeeping) borrows it for the length of one call and keeps nothing of it.
//!
//! Owns the one self-reference of the layer: the heap and the lock words borrow the mappings
//! inside `attached`, which this struct owns too. They are kept with a `'static` lifetime that
//! stands for "as long as this `Participant`", which holds because:
//! - `attached` is boxed (its address never changes when the struct moves) and is declared
//!   after `heap` and `lock`, so it is dropped after them;
//! - nothing hands out a reference with that lifetime: [`Participant::heap`] and
//!   [`Participant::lock`] return borrows of `self`, and no caller stores what it reads through
//!   them beyond such a borrow (the object layer keeps offsets, never references).

use super::lock::LockWords;
use super::{Error, Result};
use crate::heap::{Attached, Heap};
use crate::region::{table, AttachLiveness, Mapping, OpenOptionsRegion, Table};
use crate::sync::{AtomicU64, WordStore};
use std::path::{Path, PathBuf};

/// The heap of an attached store, as every object-layer owner uses it.
pub(super) type StoreHeap = Heap<'static, Mapping, AttachLiveness>;

/// One process's attachment to an open store (see the module comment).
pub(super) struct Participant {
    // Field order matters: `heap` and `lock` borrow from `attached` and are dropped first.
    heap: StoreHeap,
    lock: LockWords,
    attached: Box<Attached>,
    path: PathBuf,
    slot: u32,
    /// durable=True: every undo entry is on disk before the write it covers, and a commit is
    /// on disk before it returns.
    durable: bool,
    /// readonly=True: the store file is mapped read-only; every step that would write it
    /// fails with `Error::ReadOnly` before touching it.
    readonly: bool,
}

impl Participant {
    /// Attaches to the store at `path`. A dead participant this process recovers has its
    /// object state undone by `recovery::recover_slot`.
    pub fn attach(path: &Path, opts: OpenOptionsRegion) -> Result<Participant> {
        let attached = Box::new(Attached::open_with(
            path,
            Box::new(super::recovery::recover_slot),
            opts,
        )?);
        let heap: StoreHeap =
            // SAFETY: `attached` is boxed and outlives `heap` (module comment).
            unsafe { std::mem::transmute(attached.heap()) };
        let lock_words: &'static Mapping =
            // SAFETY: as above: the lock file mapping lives inside `attached`.
            unsafe { &*(attached.region().lock_words() as *const Mapping) };
        let slot = attached.slot();
        let generation = attached
            .region()
            .table(&NoLiveness)
            .generation(slot)
            .map_err(Error::from)?;
        let store: &'static Mapping =
            // SAFETY: as above: the store file mapping lives inside `attached`.
            unsafe { &*(attached.region().store() as *const Mapping) };
        let t = attached.region().table(&NoLiveness);
        let active = t.word_offset(0, super::slot_words::ACTIVE);
        let stride = t.word_offset(1, 0) - t.word_offset(0, 0);
        let lock = LockWords::new(lock_words, store, active, stride, slot, generation)?;
        Ok(Participant {
            heap,
            lock,
            attached,
            path: path.to_path_buf(),
            slot,
            durable: opts.durable,
            readonly: opts.readonly,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn slot(&self) -> u32 {
        self.slot
    }

    pub fn is_durable(&self) -> bool {
        self.durable
    }

    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    /// The store file's words.
    pub fn mem(&self) -> &Mapping {
        self.attached.region().store()
    }

    /// The lock file's words.
    pub fn lock_mem(&self) -> &Mapping {
        self.attached.region().lock_words()
    }

    pub fn heap(&self) -> &StoreHeap {
        &self.heap
    }

    pub fn lock(&self) -> &LockWords {
        &self.lock
    }

    pub fn attached(&self) -> &Attached {
        &self.attached
    }

    /// The participant table, read without asking the kernel about liveness.
    pub fn table(&self) -> Table<'_, Mapping, NoLiveness> {
        self.attached.region().table(&NoLiveness)
    }

    /// Word `w` of this participant's slot in the lock file.
    pub fn slot_word(&self, w: u64) -> Result<&AtomicU64> {
        Ok(self
            .lock_mem()
            .word(self.table().word_offset(self.slot, w))?)
    }

    /// Attached participants whose liveness is `alive`.
    pub fn count_attached(&self, alive: bool) -> Result<u64> {
        let t = self.table();
        let mut n = 0;
        for s in 0..t.slots {
            if t.status(s)? == table::STATUS_ATTACHED && self.attached.is_alive(s) == alive {
                n += 1;
            }
        }
        Ok(n)
    }

    /// `Error::ReadOnly(why)` on a read-only store.
    pub fn refuse_if_readonly(&self, why: &str) -> Result<()> {
        if self.readonly {
            return Err(Error::ReadOnly(why.into()));
        }
        Ok(())
    }

    /// Flushes the store file's mapping to disk.
    pub fn flush(&self) -> Result<()> {
        if self.readonly {
            return Ok(()); // nothing was written
        }
        Ok(self.attached.region().flush()?)
    }

    /// Runs `f` with the store file's persist barriers off (a durable store whose disk refused
    /// a flush still finishes what it must in memory).
    pub fn without_barriers<T>(&self, f: impl FnOnce() -> T) -> T {
        let mem = self.mem();
        let was = mem.is_durable();
        mem.set_durable(false);
        let r = f();
        mem.set_durable(was);
        r
    }

    /// Makes the store file's directory entry durable (a new store survives a power cut).
    pub fn sync_directory(&self) -> Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| Error::Io {
                op: "fsync".into(),
                path: Some(dir),
                source,
            })
    }
}

/// For reading table words (status, generation) without asking the kernel about liveness.
pub(super) struct NoLiveness;
impl crate::sync::Liveness for NoLiveness {
    fn is_alive(&self, _slot: u32) -> bool {
        true
    }
}
