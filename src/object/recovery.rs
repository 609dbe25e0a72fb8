//! Recovery of a dead participant's object-layer state: its undo log rolled back, the writer
//! word and its shared holds released, its held set dropped.
//!
//! Runs as the heap's [`SlotRecovery`](crate::heap::SlotRecovery) hook: under the recovery
//! lock, before the heap recovers the slot and frees it, so each dead slot is recovered by one
//! process once. Every step is safe to repeat if the recoverer is killed half-way (a word entry
//! is applied before the log shrinks past it, so a repeat applies it again to the same value;
//! an alloc entry leaves the log before its block is freed, so a repeat never frees it twice,
//! at worst leaks it to gc).
//!
//! Steps 1 and 2 (the undo log, the writer word and the sequence) are
//! [`StoreLock::recover_dead`], the protocol the loom models check; this file adds the other
//! entry kinds, the shared holds and the held set.

use super::lock::{LOCK_OFFSETS, L_SEQ, L_SHARED, L_WAITERS, L_WRITER};
use super::value::{self, kind};
use super::{log, slot_words, words, NoLiveness};
use crate::heap::{Attached, Error, Heap};
use crate::region::{lockfile, AttachLiveness, Mapping};
use crate::store_lock::{owner_id, undo, OtherEntries, StoreLock, UndoLog};
use crate::sync::{futex, Ordering, WordStore};
use std::time::Duration;

// The undo log's layout is written down twice (the object layer's entry kinds, the store lock's
// word entries): they must agree.
const _: () = assert!(
    log::LEN == undo::LEN
        && log::ENTRIES == undo::ENTRIES
        && log::TAG_MASK == undo::TAG_MASK
        && log::T_WORD == undo::T_WORD
);

fn corrupt(what: String, offset: u64) -> Error {
    Error::Corrupt { what, offset }
}

/// Rolls back and releases everything participant `slot` (dead) held in the object layer.
pub(super) fn recover_slot(att: &Attached, slot: u32) -> Result<(), Error> {
    let mem = att.region().store();
    let lock_mem = att.region().lock_words();
    let t = att.region().table(&NoLiveness);
    let heap = att.heap();
    let slot_off = |w: u64| t.word_offset(slot, w);

    // 1. Its undo log, newest entry first.
    let log_block = lock_mem.load(slot_off(slot_words::UNDO), Ordering::SeqCst)?;
    let undo_log = UndoLog::new(mem, log_block);
    let mut log_to_undo = None;
    if log_block != 0 {
        let head = mem.load(log_block, Ordering::Acquire)?;
        let cap = value::head_len(head);
        let len = undo_log.published_len()?;
        if value::head_kind(head) != kind::UNDO_LOG || len > cap {
            return Err(corrupt(
                format!("participant {slot}'s undo log is damaged"),
                log_block,
            ));
        }
        mem.bytes(log_block, log::ENTRIES + cap * 16)?;
        log_to_undo = Some((&undo_log, len));
    }

    // 2. The writer word, if the dead participant held it: its change is undone, so the
    //    sequence is made even again and the word released.
    let generation = t.generation(slot)?;
    let lock = StoreLock::new(lock_mem, LOCK_OFFSETS)?;
    let mut other = OtherKinds {
        lock_mem,
        heap: &heap,
        slots_end: lockfile::HEADER_BYTES + t.slots as u64 * lockfile::SLOT_BYTES,
        slot,
        lock_words: true,
        geo: att.region().geometry(),
    };
    if lock.recover_dead(log_to_undo, slot, generation, &mut other)? {
        wake(att, L_WRITER)?;
        wake(att, L_SEQ)?;
    }

    // A durable change's log is named in the store header too (§10.8): it is undone now.
    if log_block != 0 && mem.load(words::ACTIVE_UNDO, Ordering::SeqCst)? == log_block {
        mem.store(words::ACTIVE_UNDO, 0, Ordering::SeqCst)?;
    }

    // 3. Its lockShared holds, under the writer word (the counts change only under it).
    let mine_off = slot_off(slot_words::SHARED);
    let mine = lock_mem.load(mine_off, Ordering::SeqCst)?;
    if mine != 0 {
        let me = owner_id(att.slot(), t.generation(att.slot())?);
        let mut waited = 0;
        while lock.try_take(me)?.is_err() {
            waited += 1;
            if waited > 20_000 {
                return Err(corrupt(
                    "the writer word stayed held while recovering shared holds".into(),
                    L_WRITER,
                ));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        let shared = lock_mem.word(L_SHARED)?;
        let g = shared.load(Ordering::SeqCst);
        shared.store(g.saturating_sub(mine), Ordering::SeqCst);
        lock_mem.store(mine_off, 0, Ordering::SeqCst)?;
        lock.release()?;
        wake(att, L_SHARED)?;
        wake(att, L_WRITER)?;
    }

    // 4. Its held set: the chain's blocks go back; the containers only it held stay on the
    //    orphan list until the next collection (a change after a proxy is dropped, or gc).
    let mut b = lock_mem.load(slot_off(slot_words::HELD), Ordering::SeqCst)?;
    lock_mem.store(slot_off(slot_words::HELD), 0, Ordering::SeqCst)?;
    let mut steps = 0;
    while b != 0 {
        let head = mem.load(b, Ordering::Acquire)?;
        if value::head_kind(head) != kind::HELD {
            return Err(corrupt(
                format!("participant {slot}'s held set is damaged"),
                b,
            ));
        }
        let next = mem.load(b + 8, Ordering::Acquire)?;
        heap.free_uncached(b)?;
        b = next;
        steps += 1;
        if steps > mem.size() / 512 {
            return Err(corrupt(format!("participant {slot}'s held set loops"), b));
        }
    }
    // The log block itself.
    if log_block != 0 {
        lock_mem.store(slot_off(slot_words::UNDO), 0, Ordering::SeqCst)?;
        heap.free_uncached(log_block)?;
    }
    Ok(())
}

/// The undo entries besides data words: lock-file words (the shared counts) and allocations.
struct OtherKinds<'a, 'h> {
    lock_mem: &'a Mapping,
    heap: &'a Heap<'h, Mapping, AttachLiveness>,
    /// The end of the participant table: lock words below it may be logged.
    slots_end: u64,
    /// The dead participant (for messages).
    slot: u32,
    /// Whether lock-file entries are restored (not for a log from before the lock file was
    /// rebuilt: its lock words mean nothing now).
    lock_words: bool,
    /// The store's layout, to refuse word entries outside the words changes log.
    geo: crate::region::Geometry,
}

impl OtherEntries for OtherKinds<'_, '_> {
    type Error = Error;

    fn check_word(&self, entry: u64, offset: u64) -> Result<(), Error> {
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
        tagged & log::TAG_MASK == log::T_ALLOC
    }

    fn undo(&mut self, entry: u64, tagged: u64, value: u64) -> Result<(), Error> {
        let off = tagged & !log::TAG_MASK;
        match tagged & log::TAG_MASK {
            log::T_LOCK_WORD if !self.lock_words => {}
            log::T_LOCK_WORD => {
                // Only the shared counts are ever logged as lock words.
                if off != L_SHARED && !(lockfile::HEADER_BYTES..self.slots_end).contains(&off) {
                    return Err(corrupt(
                        format!(
                            "participant {}'s undo log names lock word {off:#x}",
                            self.slot
                        ),
                        entry,
                    ));
                }
                self.lock_mem.store(off, value, Ordering::SeqCst)?;
            }
            log::T_ALLOC => self.heap.free_uncached(off)?,
            // Releases and frees happen only at commit: nothing to undo.
            _ => {}
        }
        Ok(())
    }
}

fn wake(att: &Attached, word: u64) -> Result<(), Error> {
    let lock_mem = att.region().lock_words();
    if lock_mem.load(L_WAITERS, Ordering::SeqCst)? != 0 {
        futex::wake(lock_mem.word(word)?, i32::MAX);
    }
    Ok(())
}

/// The undo log of a durable change whose process is gone: the store header's `active undo`,
/// unless an attached participant's slot names it (then it is that participant's change).
pub(super) fn orphaned_undo(att: &Attached) -> Result<Option<u64>, Error> {
    let mem = att.region().store();
    let log_block = mem.load(words::ACTIVE_UNDO, Ordering::SeqCst)?;
    if log_block == 0 {
        return Ok(None);
    }
    let lock_mem = att.region().lock_words();
    let t = att.region().table(&NoLiveness);
    for slot in 0..t.slots {
        if t.status(slot)? == crate::region::table::STATUS_ATTACHED
            && lock_mem.load(t.word_offset(slot, slot_words::UNDO), Ordering::SeqCst)? == log_block
        {
            return Ok(None);
        }
    }
    Ok(Some(log_block))
}

/// After the lock file was rebuilt (a reboot, or a lock file lost while nobody was attached):
/// a durable change whose process is gone is named only by the store header's `active undo`
/// word (FORMAT.md §10.8). Rolls it back from its log, under the recovery lock, then clears the
/// word and frees the log. A log that an attached participant names is its own business (the
/// ordinary recovery of a dead participant clears the word too).
pub(super) fn roll_back_orphaned_undo(att: &Attached) -> Result<(), super::Error> {
    let mem = att.region().store();
    if mem.load(words::ACTIVE_UNDO, Ordering::SeqCst)? == 0 {
        return Ok(());
    }
    att.with_recovery_lock(|| {
        let Some(log_block) = orphaned_undo(att)? else {
            return Ok(()); // another opener did it first, or its writer is attached
        };
        let lock_mem = att.region().lock_words();
        let t = att.region().table(&NoLiveness);
        let head = mem.load(log_block, Ordering::Acquire)?;
        let cap = value::head_len(head);
        let undo_log = UndoLog::new(mem, log_block);
        let len = undo_log.published_len()?;
        if value::head_kind(head) != kind::UNDO_LOG || len > cap {
            return Err(super::Error::Corrupt {
                what: "the store header's active undo log is damaged".into(),
                offset: log_block,
            });
        }
        mem.bytes(log_block, log::ENTRIES + cap * 16)?;
        let heap = att.heap();
        let mut other = OtherKinds {
            lock_mem,
            heap: &heap,
            slots_end: lockfile::HEADER_BYTES + t.slots as u64 * lockfile::SLOT_BYTES,
            slot: att.slot(),
            lock_words: false,
            geo: att.region().geometry(),
        };
        // A durable change is undone with persist barriers, whatever this opener asked for: a
        // power cut during the rollback must leave a log that a repeat can finish.
        let was_durable = mem.is_durable();
        mem.set_durable(true);
        let rolled_back = undo_log.roll_back(len, &mut other);
        mem.set_durable(was_durable);
        rolled_back?;
        // The undone state on disk before the log lets go of it.
        let flush = || att.region().flush().map_err(crate::heap::OpenError::from);
        flush()?;
        mem.store(words::ACTIVE_UNDO, 0, Ordering::SeqCst)?;
        flush()?;
        heap.free_uncached(log_block)?;
        Ok(())
    })
}
