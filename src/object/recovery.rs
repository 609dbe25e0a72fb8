//! Recovery of a dead participant's object-layer state: the blocks its block journals name as
//! taken settled (freed unless linked, `settle_journals`), its undo log rolled back, the writer
//! word and its shared holds released, its held set's and undo log's blocks given back.
//!
//! Runs as the heap's [`SlotRecovery`](crate::heap::SlotRecovery) hook: under the recovery
//! lock, before the heap recovers the slot and frees it, so each dead slot is recovered by one
//! process once. Every step is safe to repeat if the recoverer is killed half-way (a word entry
//! is applied before the log shrinks past it, so a repeat applies it again to the same value;
//! an alloc entry leaves the log before its block is freed, so a repeat never frees it twice,
//! at worst leaks it to gc; a held or log block is named by the dead slot's block journal 0
//! while its record lets go of it, see `Heap::free_for_dead`).
//!
//! Steps 1 and 2 (the undo log, or the frees of a change it had committed, from the log's
//! release cursor; the writer word and the sequence) are [`StoreLock::recover_dead`], the
//! protocol the loom models check (`store_lock.rs`, `committed_frees.rs`); this file adds the other
//! entry kinds, the shared holds and the held set.

use super::layout::{
    container, dict_header, dict_table, list_header, list_items, lock_words, undo,
};
use super::lock::LOCK_OFFSETS;
use super::participant::NoLiveness;
use super::undo::{open_log, FreeTo, ObjectEntries};
use super::value::{self, Kind};
use super::{journals, slot_words, words};
use crate::heap::{Attached, Error};
use crate::part_lock::{self, GateOffsets, HeldParts, Parts};
use crate::store_lock::{owner_id, StoreLock};
use crate::sync::{futex, Ordering, WordStore};
use std::time::Duration;

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
    let whose = format!("participant {slot}'s");

    // 0. Its block journals: a block one names as taken is freed unless it is linked, before
    //    the rollback below unlinks what the dead change linked (and frees what it logged).
    settle_journals(att, slot, &whose)?;

    // 1. Its undo log, newest entry first.
    let log_block = lock_mem.load(slot_off(slot_words::UNDO), Ordering::SeqCst)?;
    let log_to_undo = match log_block {
        0 => None,
        b => Some(open_log(mem, b, &whose)?),
    };

    // 2. The writer word, if the dead participant held it: its change is undone, so the
    //    sequence is made even again and the word released.
    let generation = t.generation(slot)?;
    let lock = StoreLock::new(lock_mem, LOCK_OFFSETS)?;
    let mut other = ObjectEntries {
        lock_mem,
        heap: &heap,
        free_to: FreeTo::Segments,
        slots_end: ObjectEntries::slots_end(t.slots),
        slot,
        lock_words: true,
    };
    let log_to_undo = log_to_undo.as_ref().map(|(log, len)| (log, *len));
    // A single change on a part past the gate (FORMAT.md §10.9): its committed frees are due
    // although it holds no writer word (no gc or section runs until step 2b clears the word).
    let past_gate = lock_mem.load(slot_off(slot_words::ACTIVE), Ordering::SeqCst)? == 1;
    if lock.recover_dead(log_to_undo, slot, generation, past_gate, &mut other)? {
        wake(att, lock_words::WRITER)?;
        wake(att, lock_words::SEQ)?;
    }

    // 2, continued. A publication in flight (FORMAT.md §10.9): its CAS took effect whole or
    //    not at all; the container's version is moved (before the wake-up below) so that
    //    readers and `Store.wait` see that it may have changed. Only a container's version
    //    word is touched: a forged `active` word names nothing else we would write. An
    //    append to a list may have claimed the list's tail: the claim is dropped first (the
    //    append is absent: the item it may have stored lies past the end), so that readers who
    //    see the version moved see the list unclaimed, and the next appender finds it free.
    let active = lock_mem.load(slot_off(slot_words::ACTIVE), Ordering::SeqCst)?;
    if let Some(p) = crate::part_lock::published_part(active) {
        if let Some(kind) = version_word_kind(mem, p) {
            if kind == Kind::List {
                // An append's claim is dropped; a front pop that committed is finished.
                if let Some((at, _)) = list_words(mem, p - container::VERSION, slot)? {
                    part_lock::settle_dead_claim(mem, at, slot)?;
                }
            }
            if matches!(kind, Kind::Dict | Kind::Object | Kind::Set) {
                // An insert's claim (a set's add is one): the entry is in the dict iff its key
                // was stored, and
                // `used` is counted again (FORMAT.md §10.9, "Inserts").
                let c = p - container::VERSION;
                let claim = mem.load(c + dict_header::INSERT_CLAIM, Ordering::Acquire)?;
                if part_lock::insert_claimant(claim) == Some(slot) {
                    match dict_words(mem, c) {
                        Some(at) => part_lock::settle_insert_claim(mem, at, Some(slot))?,
                        None => return Err(damaged_dict(slot, c)),
                    }
                }
            }
            crate::part_lock::bump_version(mem, p)?;
        }
    }

    // 2a. Its waiting bit (FORMAT.md §10.10): it waits no more. And the waiters of every
    //     process (blocked pops, `Store.wait`) are woken once: a producer killed between its
    //     commit and its wake-up took that wake-up with it.
    let event = crate::list_event::ListEvent::new(lock_mem, super::lock::EVENT_OFFSETS)?;
    event.withdraw_all(slot)?;
    event.notify(
        lock_mem.load(crate::region::lockfile::SLOTS_HIGH, Ordering::SeqCst)?,
        true,
        &Wake,
    )?;

    // 2b. A single change on a part (FORMAT.md §10.9): its log is rolled back above; now the
    //     parts its record names are released, then its `active` word cleared.
    recover_parts(att, slot, generation, log_block, &mut other)?;

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
                    lock_words::WRITER,
                ));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        let shared = lock_mem.word(lock_words::SHARED)?;
        let g = shared.load(Ordering::SeqCst);
        shared.store(g.saturating_sub(mine), Ordering::SeqCst);
        lock_mem.store(mine_off, 0, Ordering::SeqCst)?;
        lock.release()?;
        wake(att, lock_words::SHARED)?;
        wake(att, lock_words::WRITER)?;
    }

    // 4. Its held set: the chain's blocks go back, one at a time from the head, each named by
    //    the dead slot's block journal 0 from before the head moves past it until after it is
    //    freed (`Heap::free_for_dead`: a gc meanwhile spares it, a repeat never frees it
    //    twice). The containers only it held are left on the orphan list; the store that ran
    //    this recovery collects them right after (`Store::recover_dead`).
    let held_word = slot_off(slot_words::HELD);
    let mut steps = 0;
    loop {
        let b = lock_mem.load(held_word, Ordering::SeqCst)?;
        if b == 0 {
            break;
        }
        let head = mem.load(b, Ordering::Acquire)?;
        if value::head_kind(head) != Some(Kind::Held) {
            return Err(corrupt(
                format!("participant {slot}'s held set is damaged"),
                b,
            ));
        }
        let next = mem.load(b + 8, Ordering::Acquire)?;
        heap.free_for_dead(slot, crate::heap::Block::from_word(b), || {
            lock_mem.store(held_word, next, Ordering::SeqCst)?;
            Ok(())
        })?;
        steps += 1;
        if steps > mem.size() / 512 {
            return Err(corrupt(format!("participant {slot}'s held set loops"), b));
        }
    }
    // The log block itself, the same way.
    if log_block != 0 {
        heap.free_for_dead(slot, crate::heap::Block::from_word(log_block), || {
            lock_mem.store(slot_off(slot_words::UNDO), 0, Ordering::SeqCst)?;
            Ok(())
        })?;
    }
    Ok(())
}

/// Step 0 of a dead participant's recovery (FORMAT.md §10.7): every block journal that names a
/// block as taken (`Heap::taken_by_dead`) is settled, the block freed if the dead participant
/// had not linked it (`Heap::settle_dead`). Whether it had is read off the one link each
/// journal's user makes (layout.rs `journals`), as it stands at the death, before any other
/// step of the recovery changes it:
///
/// - `OP`, a change's allocation: linked iff the log's last entry is its alloc entry. Then the
///   rollback (step 1) frees it, and it is only cleared here, first, so that a repeat of this
///   step after the rollback cannot take it for an unlogged block and free it again. If the
///   entry is missing, the dead change never logged it, so never linked it.
/// - `LOG` (a new log block) and `OLD_LOG` (the block a growing log leaves): linked iff the
///   slot word `undo` names it.
/// - `HELD`, a new held block: linked iff the held chain reaches it.
/// - `VALUE`, a value publication's old block: taken (the bit) only once the CAS took it out
///   of its entry, so unlinked; a live entry of the dict its `active` names is still looked
///   for, so that a journal naming a block the dict holds (a forged word) frees nothing.
/// - journal 0: the object layer links nothing through it; a taken block there is unlinked.
///
/// Journal 0 goes first, since settling any journal writes journal 0 (`free_for_dead`). Each
/// journal is settled by its last store, so a recoverer killed here is repeated by another
/// that finds the rest as the dead left them.
fn settle_journals(att: &Attached, slot: u32, whose: &str) -> Result<(), Error> {
    let mem = att.region().store();
    let lock_mem = att.region().lock_words();
    let t = att.region().table(&NoLiveness);
    let heap = att.heap();
    let log_block = lock_mem.load(t.word_offset(slot, slot_words::UNDO), Ordering::SeqCst)?;
    for j in 0..crate::region::table::BLOCK_JOURNALS {
        let Some(b) = heap.taken_by_dead(slot, j)? else {
            continue;
        };
        let linked = match j {
            journals::OP => {
                let by_log = if log_block != 0 {
                    let (log, len) = open_log(mem, log_block, whose)?;
                    log.ends_with_alloc(len, b.get())?
                } else {
                    false
                };
                // An append or pop publication's block (FORMAT.md §10.9, "Appends", "Pops")
                // has no log entry: linked while its list holds it.
                by_log || appended_by_dead(att, slot, b.get())?
            }
            journals::LOG | journals::OLD_LOG => log_block == b.get(),
            journals::HELD => held_chain_reaches(att, slot, b.get())?,
            journals::VALUE => appended_by_dead(att, slot, b.get())?,
            _ => false,
        };
        heap.settle_dead(slot, j, b, linked)?;
    }
    Ok(())
}

/// Whether dead participant `slot`, killed inside an append or pop publication (its `active`
/// names a list's version word), had linked `block`: whether the list's items, as its `len`
/// word stands for them (a claim included), hold it. An appender of a block keeps its claim,
/// at the length with the item, until its journal is settled, so neither part takers and
/// sections (they wait for the dead `active`, or run this recovery) nor pops without a lock
/// take the item out meanwhile. A claim of the dead at the length before its item means the
/// item is past the end: not linked. A popper's block is linked iff its pop did not commit;
/// with `active` clear (a pop ended, its block not yet freed) nothing is linked. An inserter's
/// (its `active` names a dict's version word): [`inserted_by_dead`].
fn appended_by_dead(att: &Attached, slot: u32, block: u64) -> Result<bool, Error> {
    let mem = att.region().store();
    let lock_mem = att.region().lock_words();
    let t = att.region().table(&NoLiveness);
    let active = lock_mem.load(t.word_offset(slot, slot_words::ACTIVE), Ordering::SeqCst)?;
    let Some(p) = part_lock::published_part(active) else {
        return Ok(false);
    };
    let c = p - container::VERSION;
    match version_word_kind(mem, p) {
        Some(Kind::List) => {}
        Some(Kind::Dict | Kind::Object | Kind::Set) => return Ok(inserted_by_dead(mem, c, block)),
        _ => return Ok(false),
    }
    let Some((at, items)) = list_words(mem, c, slot)? else {
        return Ok(false);
    };
    // The list the claim (if any) stands for: a popped first item is not in it.
    let word = mem.load(at.len, Ordering::Acquire)?;
    let start = mem.load(at.start, Ordering::Acquire)?;
    let first = if part_lock::tail_len(word) >= 1 {
        mem.load(list_items::item(items, start), Ordering::Acquire)?
    } else {
        value::EMPTY
    };
    let (start, len) = part_lock::effective_list(word, start, first);
    if start > at.cap || len > at.cap - start {
        return Err(damaged_list(slot, c));
    }
    // From the end: an item appended last is near it.
    for i in (start..start + len).rev() {
        if mem.load(list_items::item(items, i), Ordering::Acquire)? == block {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The words of list `c` for a recoverer (`part_lock::ListWords`) and its items block, checked
/// as `Store::list_parts` checks them (`start` and the length at most `cap`, the items block of
/// that capacity); None for a list without an items block.
fn list_words(
    mem: &crate::region::Mapping,
    c: u64,
    slot: u32,
) -> Result<Option<(part_lock::ListWords, u64)>, Error> {
    let items = mem.load(c + list_header::ITEMS, Ordering::Acquire)?;
    if items == 0 {
        return Ok(None);
    }
    let len = part_lock::tail_len(mem.load(c + list_header::LEN, Ordering::Acquire)?);
    let cap = mem.load(c + list_header::CAP, Ordering::Acquire)?;
    let start = mem.load(c + list_header::START, Ordering::Acquire)?;
    let head = mem.load(items, Ordering::Acquire)?;
    if value::head_kind(head) != Some(Kind::ListItems)
        || value::head_len(head) < cap
        || start > cap
        || len > cap - start
        || items % 16 != 0
        || items
            .checked_add(list_items::bytes(cap))
            .is_none_or(|end| end > mem.size())
    {
        return Err(damaged_list(slot, c));
    }
    Ok(Some((
        part_lock::ListWords {
            len: c + list_header::LEN,
            start: c + list_header::START,
            item0: list_items::item(items, 0),
            cap,
        },
        items,
    )))
}

/// Whether a dead inserter into dict `c` (FORMAT.md §10.9, "Inserts") had linked `block`, its
/// key's or its value's: whether a live entry (its key stored: the commit point) holds it. A
/// staged entry's value word may name the block before the commit; its key is 0 then, so it
/// does not count. Nobody else frees a block the dict holds meanwhile: deletes run on the
/// dict's part, whose taker waits for the dead inserter's `active` (or runs this recovery), and
/// value publications replace inline words only. A dict that fails the checks holds nothing.
fn inserted_by_dead(mem: &crate::region::Mapping, c: u64, block: u64) -> bool {
    let Some(at) = dict_words(mem, c) else {
        return false;
    };
    let Ok(n) = mem.load(at.nentries, Ordering::Acquire) else {
        return false;
    };
    // From the end: the entry inserted last is near it.
    (0..n.min(at.cap)).rev().any(|e| {
        let entry = at.entry(e);
        let key = mem
            .load(entry + dict_table::KEY, Ordering::Acquire)
            .unwrap_or(0);
        key != value::EMPTY
            && (key == block
                || mem.load(entry + dict_table::VALUE, Ordering::Acquire).ok() == Some(block))
    })
}

/// The words of dict `c` for the settling of a dead inserter's claim, checked as
/// `Store::dict_parts` checks them (a table of its kind, its buckets a power of two, its
/// entries within the block, `nentries` at most `cap`); None for a dict without a table (no
/// insert publication runs on one) or one that fails a check.
fn dict_words(mem: &crate::region::Mapping, c: u64) -> Option<part_lock::DictWords> {
    let load = |at: u64| mem.load(at, Ordering::Acquire).ok();
    let table = load(c + dict_header::TABLE)?;
    let nentries = load(c + dict_header::NENTRIES)?;
    if table == 0 || table % 16 != 0 {
        return None;
    }
    let head = load(table)?;
    let cap = load(table + dict_table::CAP)?;
    let nbuckets = value::head_len(head);
    let bytes = dict_table::BUCKETS
        .checked_add(nbuckets.checked_mul(8)?)?
        .checked_add(cap.checked_mul(dict_table::ENTRY_BYTES)?)?;
    if value::head_kind(head) != Some(Kind::DictTable)
        || !nbuckets.is_power_of_two()
        || cap >= nbuckets
        || nentries > cap
        || table.checked_add(bytes)? > mem.size()
    {
        return None;
    }
    Some(part_lock::DictWords {
        claim: c + dict_header::INSERT_CLAIM,
        used: c + dict_header::USED,
        nentries: c + dict_header::NENTRIES,
        bucket0: table + dict_table::BUCKETS,
        nbuckets,
        entry0: table + dict_table::BUCKETS + 8 * nbuckets,
        cap,
    })
}

fn damaged_dict(slot: u32, c: u64) -> Error {
    corrupt(
        format!("participant {slot}'s insert claim names a dict whose table is damaged"),
        c,
    )
}

fn damaged_list(slot: u32, c: u64) -> Error {
    corrupt(
        format!("participant {slot}'s list items block does not match its list"),
        c,
    )
}

/// Whether dead participant `slot`'s held chain reaches `block`. A chain that names a block
/// that is not a held block, or loops, is damage.
fn held_chain_reaches(att: &Attached, slot: u32, block: u64) -> Result<bool, Error> {
    let mem = att.region().store();
    let lock_mem = att.region().lock_words();
    let t = att.region().table(&NoLiveness);
    let mut b = lock_mem.load(t.word_offset(slot, slot_words::HELD), Ordering::SeqCst)?;
    let mut steps = 0;
    while b != 0 {
        if b == block {
            return Ok(true);
        }
        if value::head_kind(mem.load(b, Ordering::Acquire)?) != Some(Kind::Held) {
            return Err(corrupt(
                format!("participant {slot}'s held set is damaged"),
                b,
            ));
        }
        b = mem.load(b + 8, Ordering::Acquire)?;
        steps += 1;
        if steps > mem.size() / 512 {
            return Err(corrupt(format!("participant {slot}'s held set loops"), b));
        }
    }
    Ok(false)
}

/// Releases the parts the dead participant's held-parts record names (after its log was rolled
/// back) and clears its `active` word (`part_lock::Parts::recover_dead`, the order of FORMAT.md
/// §10.9's state table). A record entry that names no container's version word (a damaged or
/// forged log block) is emptied without touching the word it names.
fn recover_parts(
    att: &Attached,
    slot: u32,
    generation: u64,
    log_block: u64,
    other: &mut ObjectEntries<'_, '_>,
) -> Result<(), Error> {
    let mem = att.region().store();
    let lock_mem = att.region().lock_words();
    let t = att.region().table(&NoLiveness);
    let lock = StoreLock::new(lock_mem, LOCK_OFFSETS)?;
    let gate = GateOffsets {
        shared: lock_words::SHARED,
        active: t.word_offset(0, slot_words::ACTIVE),
        stride: t.word_offset(1, 0) - t.word_offset(0, 0),
        slots: t.slots,
    };
    let me = owner_id(att.slot(), t.generation(att.slot())?);
    let parts = Parts::new(lock, lock_mem, mem, gate, att.slot(), me, 0)?;
    if log_block == 0 {
        // No log block: no part was ever taken (the record lives there).
        lock_mem.store(t.word_offset(slot, slot_words::ACTIVE), 0, Ordering::SeqCst)?;
        if lock.waiters_present()? {
            futex::wake(parts.active_word(slot)?, i32::MAX);
        }
        return Ok(());
    }
    let record = log_block + undo::RECORD;
    for e in 0..part_lock::record::ENTRIES {
        let at = record + e * part_lock::record::ENTRY_BYTES;
        let offset = mem.load(at + part_lock::record::OFFSET, Ordering::SeqCst)?;
        // The orphan list's part word is the one part word outside a container (§10.5).
        if offset != 0 && offset != words::ORPHANS_PART && version_word_kind(mem, offset).is_none()
        {
            mem.store(at + part_lock::record::OFFSET, 0, Ordering::SeqCst)?;
        }
    }
    // The log is already rolled back (step 2): `other` is not called.
    parts.recover_dead(
        None,
        HeldParts::new(mem, record),
        slot,
        owner_id(slot, generation),
        other,
        &Wake,
    )?;
    Ok(())
}

/// The kind of the container whose version word is at `offset`, if it is one of a list, dict,
/// object, set or cache (checked access only).
fn version_word_kind(mem: &crate::region::Mapping, offset: u64) -> Option<Kind> {
    let c = offset.checked_sub(container::VERSION)?;
    if c % 16 != 0 {
        return None;
    }
    match mem.load(c, Ordering::Acquire).map(value::head_kind) {
        Ok(Some(k @ (Kind::List | Kind::Dict | Kind::Object | Kind::Set | Kind::Cache))) => Some(k),
        _ => None,
    }
}

/// Wake-ups of a recoverer (it never sleeps here).
struct Wake;

impl crate::store_lock::Futex for Wake {
    fn wait(&self, _word: &crate::sync::AtomicU64, _expected: u32) {}

    fn wake(&self, word: &crate::sync::AtomicU64) {
        futex::wake(word, i32::MAX);
    }
}

fn wake(att: &Attached, word: u64) -> Result<(), Error> {
    let lock_mem = att.region().lock_words();
    if lock_mem.load(lock_words::WAITERS, Ordering::SeqCst)? != 0 {
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
        let (undo_log, len) = open_log(mem, log_block, "the store header's active")?;
        let heap = att.heap();
        let mut other = ObjectEntries {
            lock_mem,
            heap: &heap,
            free_to: FreeTo::Segments,
            slots_end: ObjectEntries::slots_end(t.slots),
            slot: att.slot(),
            lock_words: false,
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
        heap.free_uncached(crate::heap::Block::from_word(log_block))?;
        Ok(())
    })
}
