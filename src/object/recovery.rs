//! Recovery of a dead participant's object-layer state: its undo log rolled back, the writer
//! word and its shared holds released, its held set dropped.
//!
//! Runs as the heap's [`SlotRecovery`](crate::heap::SlotRecovery) hook: under the recovery
//! lock, before the heap recovers the slot and frees it, so each dead slot is recovered by one
//! process once. Every step is safe to repeat if the recoverer is killed half-way (a word entry
//! is applied before the log shrinks past it, so a repeat applies it again to the same value;
//! an alloc entry leaves the log before its block is freed, so a repeat never frees it twice,
//! at worst leaks it to gc).

use super::lock::{L_SEQ, L_SHARED, L_WAITERS, L_WRITER};
use super::value::{self, kind};
use super::{log, slot_words, NoLiveness};
use crate::heap::{Attached, Error};
use crate::region::lockfile;
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

    // 1. Its undo log, newest entry first.
    let log_block = lock_mem.load(slot_off(slot_words::UNDO), Ordering::SeqCst)?;
    if log_block != 0 {
        let head = mem.load(log_block, Ordering::Acquire)?;
        let cap = value::head_len(head);
        let len = mem.load(log_block + log::LEN, Ordering::Acquire)?;
        if value::head_kind(head) != kind::UNDO_LOG || len > cap {
            return Err(corrupt(
                format!("participant {slot}'s undo log is damaged"),
                log_block,
            ));
        }
        mem.bytes(log_block, log::ENTRIES + cap * 16)?;
        let mut i = len;
        while i > 0 {
            i -= 1;
            let e = log_block + log::ENTRIES + i * 16;
            let a = mem.load(e, Ordering::Relaxed)?;
            let b = mem.load(e + 8, Ordering::Relaxed)?;
            let off = a & !log::TAG_MASK;
            match a & log::TAG_MASK {
                log::T_WORD => mem.store(off, b, Ordering::Relaxed)?,
                log::T_LOCK_WORD => {
                    // Only the shared counts are ever logged as lock words.
                    let slots_end = lockfile::HEADER_BYTES + t.slots as u64 * lockfile::SLOT_BYTES;
                    if off != L_SHARED && !(lockfile::HEADER_BYTES..slots_end).contains(&off) {
                        return Err(corrupt(
                            format!("participant {slot}'s undo log names lock word {off:#x}"),
                            e,
                        ));
                    }
                    lock_mem.store(off, b, Ordering::SeqCst)?;
                }
                log::T_ALLOC => {
                    // Out of the log first: a repeat must not free it again.
                    mem.store(log_block + log::LEN, i, Ordering::Release)?;
                    heap.free_uncached(off)?;
                }
                _ => {}
            }
            mem.store(log_block + log::LEN, i, Ordering::Release)?;
        }
    }

    // 2. The writer word, if the dead participant held it: its change is undone, so the
    //    sequence is made even again and the word released.
    let generation = t.generation(slot)?;
    let writer = lock_mem.word(L_WRITER)?;
    let w = writer.load(Ordering::SeqCst);
    if w != 0 && (w & 0xffff) == slot as u64 + 1 && (w >> 16) & 0xffff == generation & 0xffff {
        let seq = lock_mem.word(L_SEQ)?;
        let s = seq.load(Ordering::SeqCst);
        if s % 2 == 1 {
            seq.store(s.wrapping_add(1), Ordering::SeqCst);
        }
        if writer
            .compare_exchange(w, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            wake(att, L_WRITER)?;
            wake(att, L_SEQ)?;
        }
    }

    // 3. Its lockShared holds, under the writer word (the counts change only under it).
    let mine_off = slot_off(slot_words::SHARED);
    let mine = lock_mem.load(mine_off, Ordering::SeqCst)?;
    if mine != 0 {
        let me = ((t.generation(att.slot())? & 0xffff) << 16) | (att.slot() as u64 + 1);
        let mut waited = 0;
        while writer
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
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
        writer.store(0, Ordering::Release);
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

fn wake(att: &Attached, word: u64) -> Result<(), Error> {
    let lock_mem = att.region().lock_words();
    if lock_mem.load(L_WAITERS, Ordering::SeqCst)? != 0 {
        futex::wake(lock_mem.word(word)?, i32::MAX);
    }
    Ok(())
}
