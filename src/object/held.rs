//! Held sets: the containers a process's proxies keep alive, recorded in the file.
//!
//! Each participant has a chain of `HELD` blocks (head, next, `held_block::COUNT` words), its first
//! block named by its slot's HELD word. An entry is a container offset or 0. Only the owner
//! writes its chain (one SeqCst store per entry); writers read every attached participant's
//! chain before they free a container (`is_held_anywhere`).
//!
//! The handshake with a racing writer: a reader that found container C stores C in its held
//! set, then (SeqCst) re-checks the sequence word. A writer makes the sequence odd (SeqCst
//! fence), unlinks C, and at commit reads the held sets. Either the reader's re-check sees the
//! sequence moved (it drops the entry and retries: it never uses C), or the writer's read of
//! the held sets sees the entry (it keeps C, on the orphan list, until the entry goes).
//!
//! A read-only participant cannot allocate blocks: its held set is `RO_HELD_ENTRIES` words of
//! its lock-file slot (`slot_words::RO_HELD`), and when they are all taken it *pins*: its
//! slot's `RO_PINNED` word counts the containers it holds beyond them, and while any slot's
//! pin is non-zero every container counts as held. Same handshake, other words.

use super::layout::held_block;
use super::value::{self, Kind};
use super::{slot_words, Error, Result, Store};
use crate::region::table;
use crate::sync::{fence, Ordering, WordStore};
use std::collections::HashMap;

/// Hashes a block offset for a process-local map: one multiply (offsets are not chosen by an
/// adversary who could exploit collisions, and a collision only costs time).
#[derive(Default, Clone, Copy)]
pub(super) struct OffsetHasher(u64);

impl std::hash::Hasher for OffsetHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub(super) type OffsetMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<OffsetHasher>>;

/// This process's view of its held set.
#[derive(Debug, Default)]
pub(super) struct HeldSet {
    /// Container -> (entry offset, number of proxies). A read-only participant's entries are
    /// lock-file offsets, and 0 stands for a pinned container.
    map: OffsetMap<(u64, u64)>,
    /// Entry offsets that hold 0.
    free: Vec<u64>,
    /// The last block of the chain.
    last: u64,
    /// Read-only: the entries are in the lock file, and `pinned` containers are held by the
    /// slot's pin count instead of an entry.
    readonly: Option<ReadOnlyHeld>,
}

#[derive(Debug)]
struct ReadOnlyHeld {
    /// Lock-file offset of the slot's `RO_PINNED` word.
    pin_word: u64,
    pinned: u64,
}

impl HeldSet {
    /// A read-only participant's held set: the inline entries of its slot.
    pub(super) fn init_readonly(&mut self, att: &crate::heap::Attached, slot: u32) -> Result<()> {
        let t = att.region().table(&super::NoLiveness);
        *self = HeldSet::default();
        for i in (0..slot_words::RO_HELD_ENTRIES).rev() {
            self.free.push(t.word_offset(slot, slot_words::RO_HELD + i));
        }
        self.readonly = Some(ReadOnlyHeld {
            pin_word: t.word_offset(slot, slot_words::RO_PINNED),
            pinned: 0,
        });
        Ok(())
    }
}

impl Store {
    /// Records one more proxy for container `c`. Call before validating the read that found
    /// `c` (see the module comment); if the read turns out invalid, call `unhold`.
    pub fn hold(&mut self, c: u64) -> Result<()> {
        if let Some(e) = self.held.map.get_mut(&c) {
            e.1 += 1;
            return Ok(());
        }
        if let Some(ro) = &mut self.held.readonly {
            let entry = match self.held.free.pop() {
                Some(e) => {
                    self.attached
                        .region()
                        .lock_words()
                        .store(e, c, Ordering::SeqCst)?;
                    e
                }
                None => {
                    ro.pinned += 1;
                    self.attached.region().lock_words().store(
                        ro.pin_word,
                        ro.pinned,
                        Ordering::SeqCst,
                    )?;
                    0
                }
            };
            // SeqCst fence: as below.
            fence(Ordering::SeqCst);
            self.held.map.insert(c, (entry, 1));
            return Ok(());
        }
        let entry = match self.held.free.pop() {
            Some(e) => e,
            None => {
                self.grow_held()?;
                self.held
                    .free
                    .pop()
                    .expect("a new held block has free entries")
            }
        };
        self.mem().store(entry, c, Ordering::SeqCst)?;
        // SeqCst fence: the entry is visible before the caller's re-check of the sequence.
        fence(Ordering::SeqCst);
        self.held.map.insert(c, (entry, 1));
        Ok(())
    }

    /// Drops one proxy's hold on `c`. Returns true when `c` left the held set and nothing
    /// refers to it any more (the caller should run `collect_orphans` in an op soon).
    pub fn unhold(&mut self, c: u64) -> Result<bool> {
        let Some(e) = self.held.map.get_mut(&c) else {
            return Ok(false);
        };
        e.1 -= 1;
        if e.1 > 0 {
            return Ok(false);
        }
        let (entry, _) = self.held.map.remove(&c).expect("present");
        if let Some(ro) = &mut self.held.readonly {
            let lock_mem = self.attached.region().lock_words();
            if entry == 0 {
                ro.pinned -= 1;
                lock_mem.store(ro.pin_word, ro.pinned, Ordering::SeqCst)?;
            } else {
                lock_mem.store(entry, 0, Ordering::SeqCst)?;
                self.held.free.push(entry);
            }
            // A read-only process never collects: the next writable one that looks does.
            return Ok(false);
        }
        // `c` is still held until the store below, so reading its count is safe.
        let orphaned = self.get(c + super::container::REFCNT)? == 0;
        self.mem().store(entry, 0, Ordering::SeqCst)?;
        self.held.free.push(entry);
        Ok(orphaned)
    }

    /// The containers this process holds, and how many proxies hold each.
    pub fn held_containers(&self) -> Vec<(u64, u64)> {
        self.held.map.iter().map(|(&c, &(_, n))| (c, n)).collect()
    }

    /// Number of distinct containers this process holds.
    pub fn held_count(&self) -> usize {
        self.held.map.len()
    }

    fn grow_held(&mut self) -> Result<()> {
        const J: u64 = 3;
        let b = self.heap.alloc_into(held_block::BYTES, J)?;
        self.init(b, value::block_head(Kind::Held, held_block::COUNT))?;
        self.init(b + held_block::NEXT, 0)?;
        for i in 0..held_block::COUNT {
            self.init(b + held_block::ENTRIES + 8 * i, 0)?;
        }
        if self.held.last == 0 {
            self.slot_word(slot_words::HELD)?.store(b, Ordering::SeqCst);
        } else {
            self.mem()
                .store(self.held.last + held_block::NEXT, b, Ordering::SeqCst)?;
        }
        self.heap.settle(J)?;
        self.held.last = b;
        for i in (0..held_block::COUNT).rev() {
            self.held.free.push(b + held_block::ENTRIES + 8 * i);
        }
        Ok(())
    }

    /// Calls `f` with every block of participant `slot`'s held chain.
    pub(super) fn for_each_held_block(
        &self,
        slot: u32,
        mut f: impl FnMut(u64) -> Result<()>,
    ) -> Result<()> {
        let t = self.attached.region().table(&super::NoLiveness);
        let mut b = self
            .lock_mem()
            .load(t.word_offset(slot, slot_words::HELD), Ordering::SeqCst)?;
        let mut steps = 0u64;
        while b != 0 {
            let head = self.mem().load(b, Ordering::SeqCst)?;
            if value::head_kind(head) != Some(Kind::Held)
                || value::head_len(head) != held_block::COUNT
            {
                return Err(Error::Corrupt {
                    what: format!("participant {slot}'s held set names a block that is not one"),
                    offset: b,
                });
            }
            f(b)?;
            b = self.mem().load(b + held_block::NEXT, Ordering::SeqCst)?;
            steps += 1;
            if steps > self.mem().size() / held_block::BYTES {
                return Err(Error::Corrupt {
                    what: format!("participant {slot}'s held set loops"),
                    offset: b,
                });
            }
        }
        Ok(())
    }

    /// Calls `f` with every container named by any attached participant's held set (its
    /// chain, and a read-only participant's inline entries).
    pub(super) fn for_each_held(&self, mut f: impl FnMut(u64) -> Result<()>) -> Result<()> {
        let t = self.attached.region().table(&super::NoLiveness);
        for slot in 0..t.slots {
            if t.status(slot)? != table::STATUS_ATTACHED {
                continue;
            }
            let mut entries = Vec::new();
            for i in 0..slot_words::RO_HELD_ENTRIES {
                let c = self.lock_mem().load(
                    t.word_offset(slot, slot_words::RO_HELD + i),
                    Ordering::SeqCst,
                )?;
                if c != 0 {
                    entries.push(c);
                }
            }
            self.for_each_held_block(slot, |b| {
                for i in 0..held_block::COUNT {
                    let c = self
                        .mem()
                        .load(b + held_block::ENTRIES + 8 * i, Ordering::SeqCst)?;
                    if c != 0 {
                        entries.push(c);
                    }
                }
                Ok(())
            })?;
            for c in entries {
                f(c)?;
            }
        }
        Ok(())
    }

    /// Whether an attached read-only participant pins every container (module comment).
    pub(super) fn any_pinned(&self) -> Result<bool> {
        let t = self.attached.region().table(&super::NoLiveness);
        for slot in 0..t.slots {
            if t.status(slot)? == table::STATUS_ATTACHED
                && self
                    .lock_mem()
                    .load(t.word_offset(slot, slot_words::RO_PINNED), Ordering::SeqCst)?
                    != 0
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether any attached participant's held set names container `c` (or pins them all).
    pub(super) fn is_held_anywhere(&self, c: u64) -> Result<bool> {
        // SeqCst fence: this writer's unlink (and odd sequence) is ordered before its reads of
        // the held sets (module comment).
        fence(Ordering::SeqCst);
        if self.any_pinned()? {
            return Ok(true);
        }
        let mut found = false;
        self.for_each_held(|h| {
            found |= h == c;
            Ok(())
        })?;
        Ok(found)
    }

    /// Empties this process's held set and gives its blocks back (at close).
    pub(super) fn release_all_held(&mut self) -> Result<()> {
        if self.held.readonly.is_some() {
            let entries: Vec<u64> = self.held.map.values().map(|&(e, _)| e).collect();
            let lock_mem = self.attached.region().lock_words();
            for e in entries.into_iter().filter(|&e| e != 0) {
                lock_mem.store(e, 0, Ordering::SeqCst)?;
            }
            self.slot_word(slot_words::RO_PINNED)?
                .store(0, Ordering::SeqCst);
            let (att, slot) = (&self.attached, self.slot);
            let mut fresh = HeldSet::default();
            fresh.init_readonly(att, slot)?;
            self.held = fresh;
            return Ok(());
        }
        let had_any = !self.held.map.is_empty();
        let mut blocks = Vec::new();
        self.for_each_held_block(self.slot, |b| {
            blocks.push(b);
            Ok(())
        })?;
        self.slot_word(slot_words::HELD)?.store(0, Ordering::SeqCst);
        self.held = HeldSet::default();
        for b in blocks {
            self.heap.free(b)?;
        }
        if had_any && self.has_orphans() {
            // Best effort: if the writer word is busy, the next writer or gc collects them.
            if self.begin_op(super::lock::ME_ANY_THREAD).is_ok() {
                let r = self.collect_orphans();
                self.end_op(r.is_ok())?;
            }
        }
        Ok(())
    }
}
