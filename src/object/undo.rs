//! The undo log of this participant's change in progress: what a rollback restores, what a
//! commit releases.
//!
//! Owns the participant's undo log block (slot word `undo`; FORMAT.md §10.3): allocated by the
//! first change, doubled when full, given back at a clean close. Every append, commit and
//! rollback runs [`UndoLog`] from `store_lock.rs`, the implementation the loom models check
//! (`loom-tests/tests/store_lock.rs` says which model covers which rollback). This file adds what
//! those models leave out: the block's allocation and growth, the entry kinds besides data words
//! ([`ObjectEntries`], which recovery uses too), the once-per-savepoint filter of long sections,
//! and durable mode's `active undo` word.
//!
//! Invariants:
//! - The log is non-empty only while this participant holds the writer word.
//! - `len` here equals the block's published length, except inside [`UndoLog`] calls.
//! - Every entry at index `>= floor` covers the value its word had at the innermost savepoint,
//!   so a word logged there needs no second entry (`logged` remembers them in long logs).
//! - durable=True: the store header's `active undo` names this block, on disk, from the first
//!   entry of a change to its end (commit or rollback), and each entry is on disk before the
//!   write it covers.

use super::held::OffsetMap;
use super::layout::lock_words;
use super::layout::undo::{self, Entry};
use super::value::{self, Kind};
use super::{encode, slot_words, words, Error, Result, Store};
use crate::heap::{self, Heap};
use crate::region::{lockfile, AttachLiveness, Geometry, Mapping};
use crate::store_lock::{OtherEntries, UndoLog};
use crate::sync::{AccessError, AtomicU64, Ordering, WordStore};

/// Capacity of a participant's first log block (4,064 bytes: one block of the largest small
/// size class).
const INITIAL_CAP: u64 = 252;

/// A long log filters repeated words through `logged`; a short one appends duplicates (harmless:
/// the oldest entry is undone last and wins), which costs less than the lookup.
const FILTER_FROM: u64 = 64;

/// The change in progress's log, as this process keeps it (the block holds the truth).
#[derive(Debug, Default)]
pub(super) struct ChangeLog {
    /// The log block (0 until the first change), its capacity and its length (entries).
    block: u64,
    cap: u64,
    len: u64,
    /// Offsets already logged in a long log, and the index of their entry.
    logged: OffsetMap<u64>,
    /// The length at the innermost savepoint or op start: entries below it hold values from
    /// before it, which a rollback to it must not keep, so they do not count as `logged`.
    floor: u64,
    /// The log holds release or free entries (commit must scan it).
    deferred: bool,
    /// durable=True: the log holds an entry for the store file (commit must flush it).
    unsynced: bool,
}

impl ChangeLog {
    /// Opens a savepoint at the current length (nothing below it is reused by the filter).
    pub fn savepoint(&mut self) -> u64 {
        self.floor = self.len;
        self.len
    }
}

/// Checks a log block read from the file (a slot word or the header's `active undo`): its kind,
/// its length against its capacity, and that it lies inside the store. Returns the log and its
/// published length.
pub(super) fn open_log<'a>(
    mem: &'a Mapping,
    block: u64,
    whose: &str,
) -> Result<(UndoLog<'a, Mapping>, u64), heap::Error> {
    let head = mem.load(block, Ordering::Acquire)?;
    let cap = value::head_len(head);
    let log = UndoLog::new(mem, block);
    let len = log.published_len()?;
    if value::head_kind(head) != Some(Kind::UndoLog) || len > cap {
        return Err(heap::Error::Corrupt {
            what: format!("{whose} undo log is damaged (length {len}, head {head:#x})"),
            offset: block,
        });
    }
    mem.bytes(block, undo::block_bytes(cap))?;
    Ok((log, len))
}

/// How blocks named by alloc entries go back to the heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FreeTo {
    /// This participant's own rollback: through its block cache.
    Cache,
    /// A recoverer's: straight to the segments (it may run under the recovery lock).
    Segments,
}

/// The undo of the entries besides data words, for every rollback (live, savepoint, recovery
/// of a dead participant, an orphaned durable change). Also refuses what no change ever logs,
/// so a damaged or hostile log cannot restore, say, the header's size word.
pub(super) struct ObjectEntries<'a, 'h> {
    pub lock_mem: &'a Mapping,
    pub heap: &'a Heap<'h, Mapping, AttachLiveness>,
    pub free_to: FreeTo,
    /// The end of the participant table: lock words below it may be logged.
    pub slots_end: u64,
    /// Whose log this is (for messages).
    pub slot: u32,
    /// Whether lock-file entries are restored (not for a log from before the lock file was
    /// rebuilt: its lock words mean nothing now).
    pub lock_words: bool,
    /// The store's layout, to refuse word entries outside the words changes log.
    pub geo: Geometry,
}

impl ObjectEntries<'_, '_> {
    /// The end of the lock file's participant table, whose words lock-word entries may name.
    pub fn slots_end(slots: u32) -> u64 {
        lockfile::HEADER_BYTES + slots as u64 * lockfile::SLOT_BYTES
    }
}

fn corrupt(what: String, offset: u64) -> heap::Error {
    heap::Error::Corrupt { what, offset }
}

impl OtherEntries for ObjectEntries<'_, '_> {
    type Error = heap::Error;

    fn check_word(&self, entry: u64, offset: u64) -> Result<(), heap::Error> {
        // Changes log data words (in chunks' data) and the header's object words; never the
        // header's allocator words (the size word above all: a larger one would let accesses
        // run past the file's end) nor meta blocks.
        let object_words = crate::region::hdr::OBJECT_WORDS..crate::region::hdr::OBJECT_WORDS_END;
        if self.geo.locate(offset).is_some() || object_words.contains(&offset) {
            return Ok(());
        }
        Err(corrupt(
            format!(
                "participant {}'s undo log restores word {offset:#x}, which no change writes",
                self.slot
            ),
            entry,
        ))
    }

    fn once_only(&self, tagged: u64) -> bool {
        // Out of the log first: a repeat must not free the block again.
        tagged & undo::TAG_MASK == undo::T_ALLOC
    }

    fn undo(&mut self, entry: u64, tagged: u64, value: u64) -> Result<(), heap::Error> {
        match Entry::from_words(tagged, value) {
            Some(Entry::LockWord { .. }) if !self.lock_words => {}
            Some(Entry::LockWord { offset, old }) => {
                // Only the shared counts are ever logged as lock words.
                if offset != lock_words::SHARED
                    && !(lockfile::HEADER_BYTES..self.slots_end).contains(&offset)
                {
                    return Err(corrupt(
                        format!(
                            "participant {}'s undo log names lock word {offset:#x}",
                            self.slot
                        ),
                        entry,
                    ));
                }
                self.lock_mem.store(offset, old, Ordering::SeqCst)?;
            }
            Some(Entry::Alloc { block }) => match self.free_to {
                FreeTo::Cache => self.heap.free(block)?,
                FreeTo::Segments => self.heap.free_uncached(block)?,
            },
            // Releases and frees happen only at commit: nothing to undo.
            Some(Entry::Release { .. } | Entry::FreeBlock { .. }) => {}
            // Word entries never get here (`UndoLog::roll_back_to` restores them).
            Some(Entry::Word { .. }) | None => {
                return Err(corrupt(
                    format!(
                        "participant {}'s undo log holds an entry of unknown kind {tagged:#x}",
                        self.slot
                    ),
                    entry,
                ))
            }
        }
        Ok(())
    }
}

impl Store {
    pub(super) fn slot_word(&self, w: u64) -> Result<&AtomicU64> {
        let t = self.attached.region().table(&super::NoLiveness);
        Ok(self.lock_mem().word(t.word_offset(self.slot, w))?)
    }

    fn undo_log(&self) -> UndoLog<'_, Mapping> {
        UndoLog::new(self.mem(), self.log.block)
    }

    /// Logs data word `off`, which held `old`, before the change writes it.
    pub(super) fn log_word(&mut self, off: u64, old: u64) -> Result<()> {
        // Long sections log each word once per savepoint (the oldest value is the one a
        // rollback needs); short ops skip the set, duplicates are harmless.
        if self.log.len >= FILTER_FROM {
            let floor = self.log.floor;
            if self.log.logged.get(&off).is_some_and(|&i| i >= floor) {
                return Ok(());
            }
            let at = self.log.len;
            self.log.logged.insert(off, at);
        }
        self.log_entry(Entry::Word { offset: off, old })
    }

    /// Writes a lock-file word inside an op, logged.
    pub(super) fn put_lock_word(&mut self, off: u64, new: u64) -> Result<()> {
        let old = self.lock_mem().load(off, Ordering::SeqCst)?;
        self.log_entry(Entry::LockWord { offset: off, old })?;
        self.lock_mem().store(off, new, Ordering::SeqCst)?;
        Ok(())
    }

    /// Appends one entry (`UndoLog::append`: the entry first, then the length).
    pub(super) fn log_entry(&mut self, e: Entry) -> Result<()> {
        self.ensure_log()?;
        if self.log.len == self.log.cap {
            self.grow_log()?;
        }
        match e {
            Entry::Release { .. } | Entry::FreeBlock { .. } => self.log.deferred = true,
            _ => {}
        }
        // Lock-file words need no disk order: the lock file does not outlive a reboot.
        let durable = self.durable && !matches!(e, Entry::LockWord { .. });
        if durable && self.mem().load(words::ACTIVE_UNDO, Ordering::Relaxed)? != self.log.block {
            // The change's first entry: name the log where a reboot finds it (on disk with
            // the entry, below).
            self.mem()
                .store(words::ACTIVE_UNDO, self.log.block, Ordering::Relaxed)?;
        }
        let (tagged, value) = e.to_words();
        self.undo_log().append(self.log.len, tagged, value)?;
        self.log.len += 1;
        if durable {
            self.log.unsynced = true;
            // The entry, the length and `active undo` on disk before the write they cover.
            // One flush of the whole file (the kernel visits only dirty pages): every other
            // dirty page holds a write an earlier entry already covers, so it may go too.
            self.flush()?;
        }
        Ok(())
    }

    fn ensure_log(&mut self) -> Result<()> {
        if self.log.block != 0 {
            return Ok(());
        }
        let b = self.new_log_block(INITIAL_CAP)?;
        self.slot_word(slot_words::UNDO)?.store(b, Ordering::SeqCst);
        self.heap.settle(LOG_JOURNAL)?;
        self.log.block = b;
        self.log.cap = INITIAL_CAP;
        self.log.len = 0;
        if self.durable {
            self.flush()?;
        }
        Ok(())
    }

    /// A new, empty log block with room for `cap` entries, journaled in `LOG_JOURNAL` until
    /// the slot word names it.
    fn new_log_block(&mut self, cap: u64) -> Result<u64> {
        let b = self.heap.alloc_into(undo::block_bytes(cap), LOG_JOURNAL)?;
        self.init(b, value::block_head(Kind::UndoLog, cap))?;
        self.init(b + undo::LEN, 0)?;
        self.init(b + undo::CAP, cap)?;
        Ok(b)
    }

    /// Doubles the log: a copy of its entries in a new block, which the slot word (and, for a
    /// durable change, `active undo`) then names; the old block goes back.
    fn grow_log(&mut self) -> Result<()> {
        let cap = self.log.cap * 2;
        let b = self.new_log_block(cap)?;
        let n = self.log.len;
        self.copy_words(
            self.log.block + undo::ENTRIES,
            b + undo::ENTRIES,
            n * (undo::ENTRY_BYTES / 8),
        )?;
        self.mem().store(b + undo::LEN, n, Ordering::Release)?;
        if self.durable && self.mem().load(words::ACTIVE_UNDO, Ordering::Relaxed)? == self.log.block
        {
            // The copy whole on disk before it becomes the log a reboot looks at; the slot
            // word and `active undo` move together under the recovery lock, so an opener
            // looking for an orphaned log (recovery.rs) never sees one naming a log the other
            // does not.
            self.flush()?;
            let slot_word = self.slot_word(slot_words::UNDO)?;
            let mem = self.attached.region().store();
            self.attached.with_recovery_lock(|| -> Result<()> {
                slot_word.store(b, Ordering::SeqCst);
                mem.store(words::ACTIVE_UNDO, b, Ordering::SeqCst)?;
                Ok(())
            })?;
            self.flush()?;
        }
        self.slot_word(slot_words::UNDO)?.store(b, Ordering::SeqCst);
        self.heap.settle(LOG_JOURNAL)?;
        let old = std::mem::replace(&mut self.log.block, b);
        self.log.cap = cap;
        self.heap.free(old)?;
        Ok(())
    }

    /// After a durable change's log is empty (committed or rolled back): the header stops
    /// naming the log, on disk.
    #[inline]
    pub(super) fn end_durable_change(&mut self) -> Result<()> {
        if !self.log.unsynced {
            return Ok(()); // every change of a store that is not durable
        }
        self.log.unsynced = false;
        if self.mem().load(words::ACTIVE_UNDO, Ordering::Relaxed)? == self.log.block {
            self.mem().store(words::ACTIVE_UNDO, 0, Ordering::Relaxed)?;
        }
        self.flush()
    }

    /// Gives the undo log block back (a clean close): the slot stops naming it first, so a
    /// recoverer of this slot never sees a freed log.
    pub(super) fn release_log(&mut self) -> Result<()> {
        if self.log.block == 0 {
            return Ok(());
        }
        self.slot_word(slot_words::UNDO)?.store(0, Ordering::SeqCst);
        if self.mem().load(words::ACTIVE_UNDO, Ordering::SeqCst)? == self.log.block {
            self.mem().store(words::ACTIVE_UNDO, 0, Ordering::SeqCst)?;
            if self.durable {
                self.flush()?;
            }
        }
        let b = std::mem::take(&mut self.log).block;
        self.heap.free(b)?;
        Ok(())
    }

    /// Undoes every entry after `mark`, newest first, through [`UndoLog::roll_back_to`] (the
    /// rollback the loom models check, with this participant's own [`ObjectEntries`]).
    ///
    /// In a durable store, a persist barrier that fails (the disk refuses a flush) does not
    /// leave the change half undone: the rollback is finished in memory without barriers (a
    /// repeat restores the same words; an alloc entry already out of the log is not freed
    /// twice), so every process sees the store as before the change, and the I/O error is
    /// returned.
    pub(super) fn rollback_to(&mut self, mark: u64) -> Result<()> {
        let mut rolled_back = Ok(());
        if self.log.len > mark {
            rolled_back = match self.roll_back_log(mark) {
                Err(heap::Error::Access(e @ AccessError::Io { .. })) => self
                    .without_barriers(|st| st.roll_back_log(mark))
                    .map_err(Error::from)
                    .and(Err(e.into())),
                r => r.map_err(Error::from),
            };
            self.log.len = mark;
        }
        self.log.logged.retain(|_, i| *i < mark);
        self.log.floor = self.log.floor.min(mark);
        rolled_back
    }

    fn roll_back_log(&self, mark: u64) -> Result<(), heap::Error> {
        let slots = self.attached.region().table(&super::NoLiveness).slots;
        let mut other = ObjectEntries {
            lock_mem: self.lock_mem(),
            heap: &self.heap,
            free_to: FreeTo::Cache,
            slots_end: ObjectEntries::slots_end(slots),
            slot: self.slot,
            lock_words: true,
            geo: self.attached.region().geometry(),
        };
        self.undo_log().roll_back_to(self.log.len, mark, &mut other)
    }

    /// Runs `f` with the store file's persist barriers off (a durable store whose disk refused
    /// a flush still finishes what it must in memory).
    fn without_barriers<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let mem = self.attached.region().store();
        let was = mem.is_durable();
        mem.set_durable(false);
        let r = f(self);
        self.attached.region().store().set_durable(was);
        r
    }

    /// Forgets the log's entries without undoing or releasing anything (a log that can be
    /// neither undone nor committed: a damaged file).
    pub(super) fn abandon_log(&mut self) {
        self.log.len = 0;
        if self.log.block != 0 {
            // Without a barrier: a disk that refuses flushes must not keep the entries alive.
            let _ = self.without_barriers(|st| st.undo_log().set_len(0));
        }
    }

    /// Commits the op's log: empties it (the commit point), then performs the releases and
    /// frees it deferred.
    pub(super) fn commit_log(&mut self) -> Result<()> {
        let n = self.log.len;
        let mut releases = Vec::new();
        // Only scan for deferred work if there is some (most changes drop nothing).
        if std::mem::take(&mut self.log.deferred) {
            let log = self.undo_log();
            for i in 0..n {
                let (tagged, value) = log.entry(i)?;
                match Entry::from_words(tagged, value) {
                    Some(Entry::Release { value }) => releases.push(encode::Release::Value(value)),
                    Some(Entry::FreeBlock { block }) => {
                        releases.push(encode::Release::Block(block))
                    }
                    _ => {}
                }
            }
        }
        // The log is emptied first: from here on, a crash leaks at worst (found by gc), it
        // never frees twice. In a durable store, the barrier before the length puts every
        // write of the change on disk first; the empty log is then the commit point.
        if n > 0 {
            if let Err(e) = self.undo_log().set_len(0) {
                // The disk refused the change (its barrier failed): it is undone instead.
                let _ = self.rollback_to(0);
                self.abandon_log();
                let _ = self.without_barriers(|st| st.end_durable_change());
                return Err(e.into());
            }
            self.log.len = 0;
        }
        if let Err(e) = self.end_durable_change() {
            // Past the commit point: the change stays, in memory and in the file; the disk did
            // not confirm it.
            return Err(match e {
                Error::Io { op, path, source } => Error::Io {
                    op: format!("{op} (the change is made, but the disk did not confirm it)"),
                    path,
                    source,
                },
                e => e,
            });
        }
        if !self.log.logged.is_empty() {
            self.log.logged.clear();
        }
        self.log.floor = 0;
        if releases.is_empty() {
            return Ok(());
        }
        self.release_all(releases)
    }
}

/// The heap journal the log block is allocated into (the op's own blocks use journal 1).
const LOG_JOURNAL: u64 = 2;
