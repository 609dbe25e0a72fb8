//! The store as one process has it open: the owners of its state put together, the root, and
//! open and close. Each owner keeps its fields to itself and borrows the attachment for a
//! call: participant.rs (mappings, slot, heap, lock words), undo.rs (the change in progress's
//! log), held.rs (the held set), lock.rs (which thread holds what). The `impl Store` blocks in
//! the other files are the operations that need several of them at once.

use super::participant::Participant;
use super::value::Kind;
use super::{container, held, lock, recovery, undo, words, Error, Result};
use crate::heap;
use crate::region::Mapping;
use crate::region::OpenOptionsRegion;
use crate::sync::{Ordering, WordStore};
use std::path::Path;

/// The object layer of one open store, as used by one process.
///
/// Not `Sync`: the layer above serializes calls (the Python layer's steps take an owner word).
/// Threads are told apart by the `thread` argument of the lock calls.
pub struct Store {
    pub(super) part: Participant,
    /// Which threads hold what, and whether the writer word is ours.
    pub(super) locks: lock::LocalLocks,
    /// The undo log of the change in progress.
    pub(super) log: undo::ChangeLog,
    pub(super) held: held::HeldSet,
    /// (node, offset) of every user object the last `encode` wrote (for binding the Python
    /// instances they came from).
    pub(super) encoded_objects: Vec<(u32, u64)>,
    pub(super) closed: bool,
    /// The part held by the single change in progress (parts.rs), if it runs on one.
    pub(super) part_change: Option<crate::part_lock::Held>,
    /// The held sets as read for the releases in progress (`Store::held_now`).
    pub(super) held_scan: Option<super::held::HeldScan>,
    /// The single change in progress asked to run store-wide instead (parts.rs).
    pub(super) part_fallback: bool,
    /// Containers this single change pushed on the orphan list (`push_orphan_on_part`), held
    /// by this process until the change has ended (`end_part`).
    pub(super) pushed_on_part: Vec<u64>,
    /// A container this process let go of at the end of its change is an orphan nobody holds:
    /// the caller should collect (`Store::take_orphans_left`).
    pub(super) orphans_left: bool,
    /// The part of the last single change rolled back on it (`end_part`), for its store-wide
    /// rerun: `Store::version` reads that container's version as the rerun's first try saw it.
    pub(super) rolled_back_part: Option<crate::part_lock::Held>,
    /// What the unlocked read in progress observed (parts.rs).
    pub(super) reads: std::cell::RefCell<super::parts::ReadParts>,
    /// Whether an unlocked read in progress records container versions (parts.rs).
    pub(super) read_tracking: std::cell::Cell<bool>,
    /// A part the unlocked read in progress found held (parts.rs).
    pub(super) read_busy: std::cell::Cell<Option<lock::Busy>>,
    /// A change moved a container's version since `take_changed` last ran (`bump_version`):
    /// its commit wakes the waiters of every process (`list_event`).
    pub(super) changed: bool,
    /// A change added items to a list since `take_changed` last ran (list.rs): its commit
    /// also wakes the threads waiting for items.
    pub(super) list_grew: bool,
    /// While a publication encodes its value (`parts.rs` `publish_list_append`): `Some(0)`,
    /// and `alloc` takes its one block unlogged, named only by journal `OP`, and records it
    /// here (the publication links it, then settles the journal).
    pub(super) unlogged_alloc: Option<u64>,
    /// As `unlogged_alloc`, for a publication's second block (an insert whose key and value are
    /// each a block): `Some(0)` while one may be taken, into block journal `VALUE`.
    pub(super) unlogged_second: Option<u64>,
    /// A test's crash point inside append publications ([`Store::die_inside_appends`]).
    pub(super) append_death: Option<AppendDeath>,
}

/// Where a test's child process dies inside an append or pop publication (`_exit`, stopped as
/// a SIGKILL would stop it), so that its recovery can be checked at each point a kill may hit.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendDeath {
    /// Announced, the value's block taken and written (journal `OP` names it), the tail not
    /// claimed.
    Taken,
    /// The tail claimed, the item not stored; or (`publish_dict_insert`) a dict's insert claim
    /// taken and the key found missing, nothing written.
    Claimed,
    /// The item linked (`len` claimed at the new length), the journal not settled, the claim
    /// not ended, the version not moved.
    Linked,
    /// A pop (`publish_list_pop`) of a block item: the block named by journal `OP`, the pop
    /// not committed.
    PopJournaled,
    /// A front pop (`publish_list_pop`): the first item word emptied (the commit point).
    PopCommitted,
    /// A front pop: the claim marked popped, `start` not moved.
    PopMarked,
    /// A pop publication committed and finished, its item not yet decoded, a block item not
    /// yet given back (journal `OP` names it), the publication not ended.
    PopTaken,
    /// An insert publication (`publish_dict_insert`): the entry written, counted and named by
    /// its bucket, its key not stored (the commit point).
    InsertStaged,
    /// An insert publication: the key stored (committed), `used` not moved, the claim held.
    InsertCommitted,
    /// A value publication (`publish_dict_value`, `publish_dict_replace`) of a dict whose
    /// value is a block: the dict's claim held, the block named as taken by journal `VALUE`,
    /// the value word not swapped.
    OldJournaled,
    /// A value publication: the value word swapped by CAS, the claim held (if taken), an old
    /// block named by journal `VALUE` and not freed, a new block's journal `OP` not settled.
    ValueSwapped,
    /// A dict's delete publication (`publish_dict_delete`): the claim names the entry, its
    /// value word emptied (committed), its key word not.
    DeleteSealed,
    /// A delete publication (`publish_set_discard`, `publish_dict_delete`): the key word
    /// emptied (committed), the bucket, value word and `used` not moved, the claim held.
    DeleteCommitted,
    /// An orphan collection (`collect_orphans`): the orphans' headers freed (through the undo
    /// log), what they hold not released yet.
    OrphansFreed,
    /// A collection on the orphan list's part (`collect_orphans_on_part`): every orphan no
    /// held set names taken off the list and released through the undo log, the change not
    /// committed.
    OrphansUnlinked,
}

/// A snapshot of the sequence word taken by a reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadToken(pub(super) u64);

impl Store {
    /// Opens (creating if missing) the store at `path` and attaches to it. Creates the root
    /// dict if this is the first open of a new store.
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_with(path, false)
    }

    /// `open`, choosing durability (see `durable` and FORMAT.md §10.8).
    pub fn open_with(path: &Path, durable: bool) -> Result<Store> {
        Self::open_region(
            path,
            OpenOptionsRegion {
                create: true,
                durable,
                readonly: false,
            },
        )
    }

    /// Opens an existing store read-only: the store file is opened and mapped without write
    /// access and never written (the lock file is, as every participant's). Reads work as in
    /// any process; every change raises `Error::ReadOnly`. Such a participant never recovers
    /// killed processes (that writes the store): it waits for a writable one to do it.
    pub fn open_readonly(path: &Path) -> Result<Store> {
        Self::open_region(
            path,
            OpenOptionsRegion {
                create: false,
                durable: false,
                readonly: true,
            },
        )
    }

    /// Opens with every option: `create` (make a missing or empty file a new store), `durable`
    /// and `readonly` (as `open_with` and `open_readonly`).
    pub fn open_region(path: &Path, opts: OpenOptionsRegion) -> Result<Store> {
        let part = Participant::attach(path, opts)?;
        let held = if opts.readonly {
            held::HeldSet::readonly(&part)
        } else {
            held::HeldSet::default()
        };
        let mut store = Store {
            part,
            locks: lock::LocalLocks::default(),
            log: undo::ChangeLog::default(),
            held,
            encoded_objects: Vec::new(),
            closed: false,
            part_change: None,
            held_scan: None,
            part_fallback: false,
            pushed_on_part: Vec::new(),
            orphans_left: false,
            rolled_back_part: None,
            reads: Default::default(),
            read_tracking: Default::default(),
            read_busy: Default::default(),
            changed: false,
            list_grew: false,
            unlogged_alloc: None,
            unlogged_second: None,
            append_death: None,
        };
        // Before anything is read or changed: a second participant turns parts on.
        store.raise_slots_high()?;
        // A participant that died in this slot may have left its waiting bits set
        // (FORMAT.md §10.10): this one waits for nothing yet.
        store.part.lock().event.withdraw_all(store.part.slot())?;
        if opts.readonly {
            if recovery::orphaned_undo(store.part.attached())?.is_some() {
                return Err(Error::ReadOnly(
                    "the store holds a change cut short by a crash or power cut; open it once \
                     without readonly=True to roll it back"
                        .into(),
                ));
            }
            if store.mem().load(words::ROOT, Ordering::Acquire)? == 0 {
                return Err(Error::ReadOnly(
                    "the store has no root yet: open it once without readonly=True".into(),
                ));
            }
            return Ok(store);
        }
        // What an earlier life of the store left in flight (a reboot, a lock file deleted
        // while nobody was attached): the allocator's lost journals. The lock file says so
        // until a writable opener has repaired them (a read-only one that rebuilt it cannot).
        store
            .part
            .attached()
            .repair_if_pending()
            .map_err(Error::Open)?;
        // A durable change cut short by a reboot. Every opener looks (one word, 0 nearly
        // always), so one that attached right after another rebuilt the lock file cannot
        // start changing the store before the change is undone.
        recovery::roll_back_orphaned_undo(store.part.attached())?;
        store.ensure_root()?;
        // Containers that only participants recovered while this one attached held.
        store.collect_orphans_if_idle()?;
        if opts.durable {
            store.part.sync_directory()?;
            store.flush()?;
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        self.part.path()
    }

    pub fn slot(&self) -> u32 {
        self.part.slot()
    }

    pub(super) fn mem(&self) -> &Mapping {
        self.part.mem()
    }

    pub(super) fn lock_mem(&self) -> &Mapping {
        self.part.lock_mem()
    }

    /// Fails (`Error::Corrupt`) if a page of the store file or of the lock file vanished under
    /// this process (another process truncated it, FORMAT.md §8.1): a step that touched such a
    /// page read zeros or wrote into nothing, so it must not report success, and no later step
    /// can be trusted either. Two atomic loads: every step of `SharedStore` ends with it.
    pub fn check_intact(&self) -> Result<()> {
        if !crate::region::vanish::any_poisoned() {
            return Ok(()); // nothing of this process ever vanished: one load, every step
        }
        self.mem().check_intact()?;
        self.lock_mem().check_intact()?;
        Ok(())
    }

    /// The root dict.
    pub fn root(&self) -> Result<super::Container> {
        let r = self.mem().load(words::ROOT, Ordering::Acquire)?;
        self.check_container(r, Some(Kind::Dict))?;
        Ok(super::Container::checked(r))
    }

    pub(super) fn ensure_root(&mut self) -> Result<()> {
        if self.mem().load(words::ROOT, Ordering::Acquire)? != 0 {
            return Ok(());
        }
        // The first opener creates it; a racing opener waits for the writer word.
        let mut waits = 0;
        loop {
            match self.begin_op(lock::ME_ANY_THREAD) {
                Ok(()) => break,
                Err(Error::Busy(b)) => self.wait_internal(b, &mut waits)?,
                Err(e) => return Err(e),
            }
        }
        let result = (|| {
            if self.get(words::ROOT)? == 0 {
                let d = self.new_dict(0)?;
                self.put(d + container::REFCNT, 1)?;
                self.put(words::ROOT, d)?;
            }
            Ok(())
        })();
        self.end_op(result.is_ok())?;
        result
    }
}

impl Store {
    /// Whether the store holds any writer right now (for diagnostics).
    pub fn is_writing(&self) -> bool {
        self.locks.writing
    }

    /// Takes a block of `size` bytes as a change's first step does, named by the participant's
    /// block journal `journal` (0..6; the object layer uses 1 to 4) as taken, and goes no
    /// further: what a process killed right after its allocation leaves behind, which its
    /// recovery frees (tests only; the block stays taken).
    #[doc(hidden)]
    pub fn take_block_unlinked(&self, size: u64, journal: u64) -> Result<u64> {
        Ok(self.part.heap().alloc_into(size, journal)?.get())
    }

    /// Makes this process die at `at` inside its next append or pop publications (tests only).
    #[doc(hidden)]
    pub fn die_inside_appends(&mut self, at: Option<AppendDeath>) {
        self.append_death = at;
    }

    /// Ends the process at once if a test asked to die at `here` (`die_inside_appends`).
    pub(super) fn maybe_die(&self, here: AppendDeath) {
        if self.append_death == Some(here) {
            // SAFETY: _exit ends the process at once, with no destructor and no detach: what
            // a SIGKILL at this point leaves.
            unsafe { libc::_exit(0) }
        }
    }

    /// Clears block journal `journal` without linking what it names: with
    /// [`Store::take_block_unlinked`], a block allocated and named nowhere, what a process
    /// killed inside a free leaves behind, which only gc gives back (tests only).
    #[doc(hidden)]
    pub fn forget_block_journal(&self, journal: u64) -> Result<()> {
        Ok(self.part.heap().settle(journal)?)
    }

    pub fn heap_check(&self) -> Result<heap::HeapStats> {
        Ok(self.part.heap().check()?)
    }

    /// Flushes the store file's mapping to disk.
    pub fn flush(&self) -> Result<()> {
        self.part.flush()
    }

    /// Recovers every participant that died while attached: its change or lockExcl section
    /// rolled back, its locks released, its blocks given back, its slot freed. Returns how
    /// many. Containers that only a dead participant's held set named wait on the orphan list;
    /// they are collected right after, if the writer word is free (FORMAT.md §10.7).
    pub fn recover_dead(&mut self) -> Result<u32> {
        let n = self.part.attached().recover_dead().map_err(Error::Open)?;
        if n > 0 {
            self.collect_orphans_if_idle()?;
        }
        Ok(n)
    }

    /// Collects the orphan list in a change of its own, when this store is writable, holds no
    /// lock in any thread, the list is not empty and the writer word is free; otherwise leaves
    /// it to the next collection (a proxy dropped, a recovery, an open, gc). Never waits.
    pub(super) fn collect_orphans_if_idle(&mut self) -> Result<()> {
        if self.part.is_readonly() || !self.has_orphans() || !self.locks.none_held() {
            return Ok(());
        }
        match self.begin_op(lock::ME_ANY_THREAD) {
            Ok(()) => {
                let r = self.collect_orphans();
                self.end_op(r.is_ok())?;
                r.map(|_| ())
            }
            Err(Error::Busy(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Shrinks the file of a store that no other process can have open (a copy just written
    /// under a private name, as `python -m persist compact` makes it) to the end of its last
    /// used page. Returns the file's size before and after. Lowering `file_size` is safe only
    /// because nobody else maps the file: a process that did could touch bytes that are gone.
    pub fn trim_unshared(path: &Path) -> Result<(u64, u64)> {
        let st = Store::open(path)?;
        if st.processes()? != 1 {
            return Err(Error::Usage(
                "another process has the store open: only a store nobody else uses can be \
                 trimmed"
                    .into(),
            ));
        }
        let end = st.part.heap().used_end()?.next_multiple_of(4096);
        let before = st.mem().size();
        st.close()?;
        let io = |source| Error::Io {
            op: "trimming".into(),
            path: Some(path.to_path_buf()),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if end >= before && end >= len {
            return Ok((len, len));
        }
        // The size word first: a file longer than `file_size` is a valid store (§7.3).
        use std::os::unix::fs::FileExt;
        file.write_all_at(
            &end.min(before).to_le_bytes(),
            crate::region::hdr::FILE_SIZE,
        )
        .map_err(io)?;
        file.set_len(end).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok((len, end))
    }

    /// Whether the store was opened read-only.
    pub fn is_readonly(&self) -> bool {
        self.part.is_readonly()
    }

    /// Number of attached participants that died and are not recovered yet.
    pub fn dead_processes(&self) -> Result<u64> {
        self.part.count_attached(false)
    }

    /// Number of attached participants that are alive.
    pub fn processes(&self) -> Result<u64> {
        self.part.count_attached(true)
    }

    /// Closes: rolls back an open lockExcl section, releases shared holds and held objects,
    /// and detaches.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    pub(super) fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if self.locks.writing {
            self.rollback_to(0)?;
            self.finish_op()?;
        }
        self.drop_shared_holds()?;
        self.release_all_held()?;
        self.log.release(&self.part)?;
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
