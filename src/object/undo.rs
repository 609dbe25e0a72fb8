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
//! - The log is non-empty only while this participant holds the writer word or the part of
//!   its single change (parts.rs); the held-parts record (bytes 32..96 of the block) is copied
//!   with the entries when the log grows.
//! - `len` here equals the block's published length, except inside [`UndoLog`] calls.
//! - Every entry at index `>= floor` covers the value its word had at the innermost savepoint,
//!   so a word logged there needs no second entry (`logged` remembers them in long logs).
//! - durable=True: the store header's `active undo` names this block, on disk, from the first
//!   entry of a change to its end (commit or rollback), and each entry is on disk before the
//!   write it covers.

use super::access::copy_words;
use super::held::OffsetMap;
use super::layout::lock_words;
use super::layout::undo::{self, Entry};
use super::participant::Participant;
use super::value::{self, Kind};
use super::{slot_words, words, Error, Result, Store};
use crate::heap::{self, Heap};
use crate::region::{lockfile, AttachLiveness, Mapping};
use crate::store_lock::{OtherEntries, UndoLog};
use crate::sync::{AccessError, Ordering, WordStore};

/// Capacity of a participant's first log block (4,064 bytes: one block of the largest small
/// size class).
const INITIAL_CAP: u64 = 248;

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
    /// The log holds release entries (commit runs them first, `Store::release_in_change`).
    releases: bool,
    /// The log holds free-block entries (commit frees them, `UndoLog::finish_frees`).
    frees: bool,
    /// The index of the first free-block entry, while `frees`.
    first_free: u64,
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
    let (end, done) = log.frees_cursor()?;
    if end > cap || done > end {
        return Err(heap::Error::Corrupt {
            what: format!("{whose} undo log's release cursor is damaged ({end}, {done})"),
            offset: block + undo::FREES,
        });
    }
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
    /// Whose log this is: for messages, and, in a recovery (`FreeTo::Segments`), the dead
    /// participant whose block cache its committed frees go to.
    pub slot: u32,
    /// Whether lock-file entries are restored (not for a log from before the lock file was
    /// rebuilt: its lock words mean nothing now).
    pub lock_words: bool,
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
        if matches!(self.heap.pages.locate(offset), Ok(Some(_))) || object_words.contains(&offset) {
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
                FreeTo::Cache => self.heap.free(heap::Block::from_word(block))?,
                FreeTo::Segments => self.heap.free_uncached(heap::Block::from_word(block))?,
            },
            // Releases and frees happen only at commit: nothing to undo.
            Some(Entry::Release { .. } | Entry::FreeBlock { .. }) => {}
            // Back on the list, unless it is there already (the change was cut short before
            // it unlinked the orphan, or a recoverer before it dropped this entry): a repeat
            // does nothing more.
            Some(Entry::OrphanUnlinked { container }) => {
                super::orphans::relist(self.heap.pages.store, container)?
            }
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

    fn free_committed(&mut self, _entry: u64, block: u64) -> Result<(), heap::Error> {
        match self.free_to {
            FreeTo::Cache => self.heap.free(heap::Block::from_word(block)),
            // A dead owner's committed frees (the only caller with `Segments`): into its cache
            // when there is room, as it would have freed them, so that `free_passed` can tell
            // after a recoverer killed here whether the free happened (FORMAT.md §10.7).
            FreeTo::Segments => self
                .heap
                .free_into_dead_cache(self.slot, heap::Block::from_word(block)),
        }
    }

    fn free_passed(&mut self, _entry: u64, block: u64) -> Result<(), heap::Error> {
        if self.free_to != FreeTo::Segments {
            return Ok(());
        }
        let b = heap::Block::from_word(block);
        match self.heap.dead_cache_holds(self.slot, b) {
            // Its class is cached and the cache had room: a free would have put it there.
            Ok(Some(false)) => self.heap.free_into_dead_cache(self.slot, b),
            // Freed, or the cache cannot tell (left to gc, as before).
            Ok(_) => Ok(()),
            // A damaged entry: its block is none; the rest of the frees go on.
            Err(heap::Error::BadFree { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl ChangeLog {
    fn undo_log<'p>(&self, p: &'p Participant) -> UndoLog<'p, Mapping> {
        UndoLog::new(p.mem(), self.block)
    }

    /// Logs data word `off`, which held `old`, before the change writes it.
    pub fn log_word(&mut self, p: &Participant, off: u64, old: u64) -> Result<()> {
        // Long sections log each word once per savepoint (the oldest value is the one a
        // rollback needs); short ops skip the set, duplicates are harmless.
        if self.len >= FILTER_FROM {
            if self.logged.get(&off).is_some_and(|&i| i >= self.floor) {
                return Ok(());
            }
            self.logged.insert(off, self.len);
        }
        self.append(p, Entry::Word { offset: off, old })
    }

    /// Writes a lock-file word inside an op, logged.
    pub fn put_lock_word(&mut self, p: &Participant, off: u64, new: u64) -> Result<()> {
        let old = p.lock_mem().load(off, Ordering::SeqCst)?;
        self.append(p, Entry::LockWord { offset: off, old })?;
        p.lock_mem().store(off, new, Ordering::SeqCst)?;
        Ok(())
    }

    /// Appends one entry (`UndoLog::append`: the entry first, then the length).
    pub fn append(&mut self, p: &Participant, e: Entry) -> Result<()> {
        self.ensure_block(p)?;
        if self.len == self.cap {
            self.grow(p)?;
        }
        match e {
            Entry::Release { .. } => self.releases = true,
            Entry::FreeBlock { .. } if !self.frees => {
                self.frees = true;
                self.first_free = self.len;
            }
            _ => {}
        }
        // Lock-file words need no disk order: the lock file does not outlive a reboot. A
        // free-block entry covers no write (a rollback ignores it, and the commit's barrier
        // before the length puts it on disk): no flush for it either, so that a release run
        // inside the change (`Store::release_in_change`) costs no flush per block it frees.
        // `active undo` is Relaxed: only this participant writes it while it is the writer,
        // and what orders it for a reboot is the flush below, not the processor.
        let durable =
            p.is_durable() && !matches!(e, Entry::LockWord { .. } | Entry::FreeBlock { .. });
        if durable && p.mem().load(words::ACTIVE_UNDO, Ordering::Relaxed)? != self.block {
            // The change's first entry: name the log where a reboot finds it (on disk with
            // the entry, below).
            p.mem()
                .store(words::ACTIVE_UNDO, self.block, Ordering::Relaxed)?;
        }
        let (tagged, value) = e.to_words();
        self.undo_log(p).append(self.len, tagged, value)?;
        self.len += 1;
        if durable {
            self.unsynced = true;
            // The entry, the length and `active undo` on disk before the write they cover.
            // One flush of the whole file (the kernel visits only dirty pages): every other
            // dirty page holds a write an earlier entry already covers, so it may go too.
            p.flush()?;
        }
        Ok(())
    }

    /// The log block (0 before the first change).
    pub fn block(&self) -> u64 {
        self.block
    }

    pub fn ensure_block(&mut self, p: &Participant) -> Result<()> {
        if self.block != 0 {
            return Ok(());
        }
        let b = new_log_block(p, INITIAL_CAP)?;
        p.slot_word(slot_words::UNDO)?.store(b, Ordering::SeqCst);
        p.heap().settle(LOG_JOURNAL)?;
        self.block = b;
        self.cap = INITIAL_CAP;
        self.len = 0;
        if p.is_durable() {
            p.flush()?;
        }
        Ok(())
    }

    /// Doubles the log: a copy of its entries in a new block, which the slot word (and, for a
    /// durable change, `active undo`) then names; the old block goes back.
    fn grow(&mut self, p: &Participant) -> Result<()> {
        let cap = self.cap * 2;
        let b = new_log_block(p, cap)?;
        let n = self.len;
        let mem = p.mem();
        // The held-parts record with the entries: a part change whose log grows keeps its
        // record in the block the slot word names (FORMAT.md §10.9).
        copy_words(
            mem,
            self.block + undo::RECORD,
            b + undo::RECORD,
            (undo::ENTRIES - undo::RECORD) / 8 + n * (undo::ENTRY_BYTES / 8),
        )?;
        mem.store(b + undo::LEN, n, Ordering::Release)?;
        // The old block is named as ours before the slot word moves off it: a recovery of this
        // participant frees it if the slot word no longer names it (FORMAT.md §10.7 step 0),
        // so a kill between the move and the free below leaks nothing.
        p.heap()
            .journal_owned(super::journals::OLD_LOG, heap::Block::from_word(self.block))?;
        if p.is_durable() && mem.load(words::ACTIVE_UNDO, Ordering::Relaxed)? == self.block {
            // The copy whole on disk before it becomes the log a reboot looks at; the slot
            // word and `active undo` move together under the recovery lock, so an opener
            // looking for an orphaned log (recovery.rs) never sees one naming a log the other
            // does not.
            p.flush()?;
            let slot_word = p.slot_word(slot_words::UNDO)?;
            p.attached().with_recovery_lock(|| -> Result<()> {
                slot_word.store(b, Ordering::SeqCst);
                mem.store(words::ACTIVE_UNDO, b, Ordering::SeqCst)?;
                Ok(())
            })?;
            p.flush()?;
        }
        p.slot_word(slot_words::UNDO)?.store(b, Ordering::SeqCst);
        p.heap().settle(LOG_JOURNAL)?;
        let old = std::mem::replace(&mut self.block, b);
        self.cap = cap;
        // A log block is too large for the block cache: settled before the free (a journal
        // naming a freed block as taken would have a recovery free it again), so a kill
        // inside the free leaks the old block to gc.
        p.heap()
            .free_journaled(super::journals::OLD_LOG, heap::Block::from_word(old))?;
        Ok(())
    }

    /// After a durable change's log is empty (committed or rolled back): the header stops
    /// naming the log, on disk.
    #[inline]
    pub fn end_durable_change(&mut self, p: &Participant) -> Result<()> {
        if !self.unsynced {
            return Ok(()); // every change of a store that is not durable
        }
        self.unsynced = false;
        if p.mem().load(words::ACTIVE_UNDO, Ordering::Relaxed)? == self.block {
            p.mem().store(words::ACTIVE_UNDO, 0, Ordering::Relaxed)?;
        }
        p.flush()
    }

    /// Gives the undo log block back (a clean close): the slot stops naming it first, so a
    /// recoverer of this slot never sees a freed log. Before that it is named as ours in
    /// journal `OLD_LOG` (a grow cut short by an error may have left it named there already),
    /// so a recovery of a participant killed once the slot word is cleared frees it
    /// (FORMAT.md §10.7 step 0); only a kill inside the free itself leaks it to gc.
    pub fn release(&mut self, p: &Participant) -> Result<()> {
        if self.block == 0 {
            return Ok(());
        }
        p.heap()
            .journal_owned(super::journals::OLD_LOG, heap::Block::from_word(self.block))?;
        p.slot_word(slot_words::UNDO)?.store(0, Ordering::SeqCst);
        if p.mem().load(words::ACTIVE_UNDO, Ordering::SeqCst)? == self.block {
            p.mem().store(words::ACTIVE_UNDO, 0, Ordering::SeqCst)?;
            if p.is_durable() {
                p.flush()?;
            }
        }
        let b = std::mem::take(self).block;
        // Too large for the block cache: settled before the free, so no recovery frees it again.
        p.heap()
            .free_journaled(super::journals::OLD_LOG, heap::Block::from_word(b))?;
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
    pub fn rollback_to(&mut self, p: &Participant, mark: u64) -> Result<()> {
        let mut rolled_back = Ok(());
        if self.len > mark {
            rolled_back = match self.roll_back_entries(p, mark) {
                Err(heap::Error::Access(e @ AccessError::Io { .. })) => p
                    .without_barriers(|| self.roll_back_entries(p, mark))
                    .map_err(Error::from)
                    .and(Err(e.into())),
                r => r.map_err(Error::from),
            };
            self.len = mark;
        }
        self.logged.retain(|_, i| *i < mark);
        self.floor = self.floor.min(mark);
        if mark == 0 {
            self.releases = false;
        }
        if mark <= self.first_free {
            // Every free-block entry is gone (none lies below the first).
            self.frees = false;
        }
        rolled_back
    }

    fn roll_back_entries(&self, p: &Participant, mark: u64) -> Result<(), heap::Error> {
        let mut other = ObjectEntries {
            lock_mem: p.lock_mem(),
            heap: p.heap(),
            free_to: FreeTo::Cache,
            slots_end: ObjectEntries::slots_end(p.table().slots),
            slot: p.slot(),
            lock_words: true,
        };
        self.undo_log(p).roll_back_to(self.len, mark, &mut other)
    }

    /// Forgets the log's entries without undoing or releasing anything (a log that can be
    /// neither undone nor committed: a damaged file).
    pub fn abandon(&mut self, p: &Participant) {
        self.len = 0;
        self.releases = false;
        self.frees = false;
        if self.block != 0 {
            // Without a barrier: a disk that refuses flushes must not keep the entries alive.
            let _ = p.without_barriers(|| self.undo_log(p).set_len(0));
        }
    }

    /// Whether the change's log holds release entries (to run before the commit point).
    pub fn has_releases(&self) -> bool {
        self.releases
    }

    /// Whether the change's log holds free-block entries (to free past the commit point).
    pub fn has_frees(&self) -> bool {
        self.frees
    }

    /// The log's length (entries).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Turns release entry `i`, of a value that owns no other block (a str, bytes, big int or
    /// float block), into a free-block entry for that block, in place (`UndoLog::retag`): the
    /// cheapest way to free it past the commit point exactly once.
    pub fn release_as_free(&mut self, p: &Participant, i: u64, block: u64) -> Result<()> {
        debug_assert!(i < self.len);
        self.undo_log(p)
            .retag(i, Entry::FreeBlock { block }.to_words().0)?;
        if !self.frees || i < self.first_free {
            self.first_free = i;
        }
        self.frees = true;
        Ok(())
    }

    /// Entry `i` of the log, decoded (None: an unknown kind).
    pub fn entry(&self, p: &Participant, i: u64) -> Result<Option<Entry>> {
        debug_assert!(i < self.len);
        let (tagged, value) = self.undo_log(p).entry(i)?;
        Ok(Entry::from_words(tagged, value))
    }

    /// Commits the op's log: empties it (the commit point). If it holds free-block entries,
    /// the release cursor names them first (`UndoLog::commit_with_frees`), and the log's
    /// length at the commit is returned: the caller frees them next ([`ChangeLog::finish_frees`]).
    pub fn commit(&mut self, p: &Participant) -> Result<Option<u64>> {
        let n = self.len;
        self.releases = false;
        let frees = std::mem::take(&mut self.frees) && n > 0;
        // The log is emptied first: from here on, a crash leaves the frees to the recoverer,
        // which finishes them from the cursor; it never frees twice. In a durable store, the
        // barrier before the length puts every write of the change on disk first; the empty
        // log is then the commit point.
        if n > 0 {
            let log = self.undo_log(p);
            let committed = if frees {
                log.commit_with_frees(n)
            } else {
                log.set_len(0)
            };
            if let Err(e) = committed {
                // The disk refused the change (its barrier failed): it is undone instead, and
                // frees nothing.
                let _ = p.without_barriers(|| log.clear_frees());
                let _ = self.rollback_to(p, 0);
                self.abandon(p);
                let _ = p.without_barriers(|| self.end_durable_change(p));
                return Err(e.into());
            }
            self.len = 0;
        }
        if let Err(e) = self.end_durable_change(p) {
            // Past the commit point: the change stays, in memory and in the file; the disk did
            // not confirm it. Its frees are still due.
            if frees {
                let _ = self.finish_frees(p, n);
            }
            return Err(match e {
                Error::Io { op, path, source } => Error::Io {
                    op: format!("{op} (the change is made, but the disk did not confirm it)"),
                    path,
                    source,
                },
                e => e,
            });
        }
        if !self.logged.is_empty() {
            self.logged.clear();
        }
        self.floor = 0;
        Ok(frees.then_some(n))
    }

    /// Frees the free-block entries of the change just committed with `end` entries, each
    /// once, moving the release cursor past each first (`UndoLog::finish_frees`, the same
    /// steps the recoverer of a dead participant takes from where the cursor stands).
    pub fn finish_frees(&self, p: &Participant, end: u64) -> Result<()> {
        let log = self.undo_log(p);
        let freed = log.finish_frees(end, self.first_free.min(end), |_, block| {
            p.heap().free(heap::Block::from_word(block))
        });
        if freed.is_err() {
            // A damaged block: the rest is left to gc, and the cursor must not outlive this
            // commit (the next change's rollback would otherwise find it).
            let _ = p.without_barriers(|| log.clear_frees());
        }
        Ok(freed?)
    }
}

/// A new, empty log block with room for `cap` entries, journaled in `LOG_JOURNAL` until the
/// slot word names it.
fn new_log_block(p: &Participant, cap: u64) -> Result<u64> {
    let b = p
        .heap()
        .alloc_into(undo::block_bytes(cap), LOG_JOURNAL)?
        .get();
    let mem = p.mem();
    // Relaxed: the block is linked nowhere yet; the SeqCst store of the slot word names it.
    mem.store(b, value::block_head(Kind::UndoLog, cap), Ordering::Relaxed)?;
    mem.store(b + undo::LEN, 0, Ordering::Relaxed)?;
    mem.store(b + undo::CAP, cap, Ordering::Relaxed)?;
    // The block held something else before: no release cursor from its past.
    mem.store(b + undo::FREES, 0, Ordering::Relaxed)?;
    let mut w = undo::RECORD;
    while w < undo::ENTRIES {
        // Relaxed: as above. An empty held-parts record (a reused block holds old words).
        mem.store(b + w, 0, Ordering::Relaxed)?;
        w += 8;
    }
    Ok(b)
}

/// The heap journal the log block is allocated into (the op's own blocks use journal 1).
const LOG_JOURNAL: u64 = super::journals::LOG;

impl Store {
    /// Undoes the change in progress back to `mark` (see [`ChangeLog::rollback_to`]).
    pub(super) fn rollback_to(&mut self, mark: u64) -> Result<()> {
        self.log.rollback_to(&self.part, mark)
    }

    /// Commits the change in progress and performs the releases it deferred: first inside the
    /// change, logged, as free-block entries (`release_in_change`); then, past the commit
    /// point, the frees, each once (a process killed among them leaves the rest to its
    /// recoverer); then whatever `release_in_change` left for later (a change that frees more
    /// than it logs: killed there, the rest leaks to gc).
    #[inline]
    pub(super) fn commit_log(&mut self) -> Result<()> {
        if !self.log.has_releases() && !self.log.has_frees() {
            // Most changes drop nothing (a counter, an int set, an append into room).
            self.log.commit(&self.part)?;
            return Ok(());
        }
        self.commit_log_releasing()
    }

    #[inline(never)]
    fn commit_log_releasing(&mut self) -> Result<()> {
        let later = match self.release_in_change() {
            Ok(later) => later,
            Err(e) => {
                // Before the commit point: the change is undone, releases and all.
                let _ = self.rollback_to(0);
                return Err(e);
            }
        };
        if let Some(end) = self.log.commit(&self.part)? {
            self.log.finish_frees(&self.part, end)?;
        }
        if later.is_empty() {
            return Ok(());
        }
        self.release_all(later)
    }

    /// Appends one entry to the change in progress's log.
    pub(super) fn log_entry(&mut self, e: Entry) -> Result<()> {
        self.log.append(&self.part, e)
    }
}
