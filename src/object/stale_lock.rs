//! Lock words that no live process left: the repairs that keep a damaged or forged lock file
//! from making any wait last forever (FORMAT.md §10.4).
//!
//! The store lock's words come from a file another process (or a damaged disk) may have
//! written. Three states no run of the protocol leaves would block every waiter for good: an
//! odd sequence while nobody holds the writer word, a writer word that names no attached
//! participant, a shared count the participants' own counts do not add up to. A thread that has
//! waited on one word and value for a while (`session::STALE_AFTER` sleeps, no dead holder
//! found) calls [`Store::repair_stale_lock`]. The word protocol of each repair is in
//! `store_lock.rs` (`inspect_sequence`, `free_stale_writer`), where loom checks it against live
//! owners; this file adds the participant table's view (who is attached) and the shared count.

use super::layout::lock_words;
use super::lock::Busy;
use super::{slot_words, Error, Result, Store};
use crate::region::table;
use crate::store_lock::names_owner;
use crate::sync::{Ordering, WordStore};
use std::time::Duration;

impl Store {
    /// One wait of a step the object layer runs on its own (creating the root, giving a shared
    /// hold back), which no caller can time out: every `session::STALE_AFTER` waits on the
    /// same lock word it looks for a dead holder to recover and for a state no live process
    /// leaves (`repair_stale_lock`), so that a damaged lock file cannot make it wait forever.
    pub(super) fn wait_internal(&mut self, busy: Busy, waits: &mut u32) -> Result<()> {
        *waits += 1;
        if *waits % super::session::STALE_AFTER == 0 {
            self.recover_dead()?;
            self.repair_stale_lock(busy)?;
        }
        self.part.lock().wait(busy, Duration::from_millis(5));
        Ok(())
    }

    /// Looks at the lock word a thread has waited on for a while (`busy`, with the value it
    /// saw) for a state that no run of the protocol leaves, only a damaged or forged lock file,
    /// and repairs it: an odd sequence nobody owns (readers would wait on it forever), a writer
    /// word that names no attached participant (nobody would ever recover it), a shared count
    /// that the participants' own counts do not add up to (writers would wait forever). Returns
    /// whether it repaired anything. A read-only participant repairs nothing: an odd sequence
    /// nobody owns is `Error::Corrupt` for it, so that its reads fail instead of hanging.
    pub fn repair_stale_lock(&mut self, busy: Busy) -> Result<bool> {
        let lock = self.part.lock();
        // A writer word naming this participant while none of its threads holds it (all of
        // them take and give it back under this store's guard, which the caller holds): only a
        // forged word says so, and no other process would ever free it, since it names a live
        // participant. Freed here; an odd sequence under it is then repaired as any other.
        let forged_me = !self.part.is_readonly()
            && !self.locks.writer_held()
            && lock.words.writer_word().load(Ordering::SeqCst) == lock.me();
        if forged_me && lock.words.free_stale_writer(lock.me(), |_| Ok(true))? {
            lock.wake_if_waiting(lock.words.writer_word());
            if matches!(busy, Busy::Writer(_)) {
                return Ok(true);
            }
        }
        match busy {
            Busy::Seq(_) => {
                // A read-only participant only looks: it never repairs the store's words.
                let readonly = self.part.is_readonly();
                let Some((odd, waiters)) = lock.words.inspect_sequence(lock.me(), !readonly)?
                else {
                    return Ok(false); // the word is held: its owner (or recovery) ends it
                };
                if waiters {
                    lock.wake(lock.words.seq_word());
                    lock.wake(lock.words.writer_word());
                }
                if odd && readonly {
                    return Err(Error::Corrupt {
                        what: "the store lock's sequence word is odd while no process holds \
                               the writer word (a damaged lock file): open the store once \
                               without readonly=True to repair it"
                            .into(),
                        offset: lock_words::SEQ,
                    });
                }
                Ok(odd)
            }
            Busy::Writer(w) if !self.part.is_readonly() => {
                let freed = lock
                    .words
                    .free_stale_writer(w, |w| Ok(!self.names_attached(w)?))?;
                if freed {
                    lock.wake_if_waiting(lock.words.writer_word());
                }
                Ok(freed)
            }
            Busy::Shared(_) if !self.part.is_readonly() => self.repair_shared_count(),
            // A part word held by an id that names no attached participant (a damaged or
            // forged file, or a part held when the lock file was rebuilt), or naming this
            // participant while it holds no part: freed to the held value + 1 (FORMAT.md
            // §10.9). A read-only participant only waits: it never writes the store.
            Busy::Part { offset, word } if !self.part.is_readonly() => {
                let forged_me = self.part_forged_me(word);
                let freed = crate::part_lock::Parts::new(
                    lock.words,
                    self.part.lock_mem(),
                    self.part.mem(),
                    crate::part_lock::GateOffsets {
                        shared: lock_words::SHARED,
                        active: lock.active,
                        stride: lock.stride,
                        slots: 0,
                    },
                    self.part.slot(),
                    lock.me(),
                    0,
                )?
                .free_stale_part(offset, word, |w| Ok(forged_me || !self.names_attached(w)?))?;
                if freed {
                    lock.wake_if_waiting(self.part.mem().word(offset)?);
                }
                Ok(freed)
            }
            // An `active` word of 1 in a slot whose participant is attached and alive but in
            // no change: only a forged lock file holds it, and the section taker waits
            // (a known limit, FORMAT.md §10.9); a dead one's is recovered.
            _ => Ok(false),
        }
    }

    /// Whether writer-word value `w` names a participant attached now (alive or dead: a dead
    /// one is recovered, which frees the word).
    fn names_attached(&self, w: u64) -> Result<bool, crate::sync::AccessError> {
        let t = self.part.table();
        let slot = (w & 0xffff).wrapping_sub(1);
        if slot >= t.slots as u64 {
            return Ok(false);
        }
        let slot = slot as u32;
        Ok(t.status(slot)? == table::STATUS_ATTACHED && names_owner(w, slot, t.generation(slot)?))
    }

    /// Under the writer word: sets the shared count to the sum of the attached participants'
    /// counts if it is not (the invariant every lockShared keeps under the same word).
    fn repair_shared_count(&mut self) -> Result<bool> {
        let lock = self.part.lock();
        if lock.try_writer().is_err() {
            return Ok(false);
        }
        let t = self.part.table();
        let mut sum = 0u64;
        let mut summed = Ok(());
        for slot in 0..t.slots {
            match t.status(slot) {
                Ok(table::STATUS_ATTACHED) => {
                    let word = t.word_offset(slot, slot_words::SHARED);
                    match self.part.lock_mem().load(word, Ordering::SeqCst) {
                        Ok(n) => sum = sum.wrapping_add(n),
                        Err(e) => summed = Err(e),
                    }
                }
                Ok(_) => {}
                Err(e) => summed = Err(e),
            }
        }
        let repaired = summed.is_ok() && lock.shared.load(Ordering::SeqCst) != sum;
        if repaired {
            lock.shared.store(sum, Ordering::SeqCst);
        }
        lock.release_writer();
        if repaired {
            lock.wake_if_waiting(lock.shared);
        }
        summed?;
        Ok(repaired)
    }
}
