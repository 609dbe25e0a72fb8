//! Held sets: the containers a process's proxies keep alive, recorded in the file.
//!
//! Each participant has a chain of `HELD` blocks (head, next, `held_block::COUNT` words), its first
//! block named by its slot's HELD word. An entry is a container offset or 0. Only the owner
//! writes its chain (one SeqCst store per entry); writers read every attached participant's
//! chain before they free a container (`HeldScan`).
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
use super::participant::Participant;
use super::value::{self, Kind};
use super::{container, slot_words, Error, Result, Store};
use crate::region::table;
use crate::sync::{fence, AtomicU64, Ordering, WordStore};
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
    pub fn readonly(p: &Participant) -> HeldSet {
        let t = p.table();
        let slot = p.slot();
        HeldSet {
            free: (0..slot_words::RO_HELD_ENTRIES)
                .rev()
                .map(|i| t.word_offset(slot, slot_words::RO_HELD + i))
                .collect(),
            readonly: Some(ReadOnlyHeld {
                pin_word: t.word_offset(slot, slot_words::RO_PINNED),
                pinned: 0,
            }),
            ..HeldSet::default()
        }
    }

    /// Records one more proxy for container `c`. Call before validating the read that found
    /// `c` (see the module comment); if the read turns out invalid, call `unhold`.
    pub fn hold(&mut self, p: &Participant, c: u64) -> Result<()> {
        if let Some(e) = self.map.get_mut(&c) {
            e.1 += 1;
            return Ok(());
        }
        let entry = if let Some(ro) = &mut self.readonly {
            match self.free.pop() {
                Some(e) => {
                    p.lock_mem().store(e, c, Ordering::SeqCst)?;
                    e
                }
                None => {
                    ro.pinned += 1;
                    p.lock_mem()
                        .store(ro.pin_word, ro.pinned, Ordering::SeqCst)?;
                    0
                }
            }
        } else {
            let entry = match self.free.pop() {
                Some(e) => e,
                None => {
                    self.grow(p)?;
                    self.free.pop().expect("a new held block has free entries")
                }
            };
            p.mem().store(entry, c, Ordering::SeqCst)?;
            entry
        };
        // SeqCst fence: the entry is visible before the caller's re-check of the sequence.
        fence(Ordering::SeqCst);
        self.map.insert(c, (entry, 1));
        Ok(())
    }

    /// Drops one proxy's hold on `c`. Returns true when `c` left the held set and nothing
    /// refers to it any more (the caller should run `collect_orphans` in an op soon).
    pub fn unhold(&mut self, p: &Participant, c: u64) -> Result<bool> {
        let Some(e) = self.map.get_mut(&c) else {
            return Ok(false);
        };
        e.1 -= 1;
        if e.1 > 0 {
            return Ok(false);
        }
        let (entry, _) = self.map.remove(&c).expect("present");
        if let Some(ro) = &mut self.readonly {
            if entry == 0 {
                ro.pinned -= 1;
                p.lock_mem()
                    .store(ro.pin_word, ro.pinned, Ordering::SeqCst)?;
            } else {
                p.lock_mem().store(entry, 0, Ordering::SeqCst)?;
                self.free.push(entry);
            }
            // A read-only process never collects: the next writable one that looks does.
            return Ok(false);
        }
        // `c` is still held until the store below, so reading its count is safe. Relaxed:
        // the count is read under the same seqlock rules as any data word.
        let orphaned = p.mem().load(c + container::REFCNT, Ordering::Relaxed)? == 0;
        p.mem().store(entry, 0, Ordering::SeqCst)?;
        self.free.push(entry);
        Ok(orphaned)
    }

    /// The containers this process holds, and how many proxies hold each.
    pub fn containers(&self) -> Vec<(u64, u64)> {
        self.map.iter().map(|(&c, &(_, n))| (c, n)).collect()
    }

    /// Number of distinct containers this process holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn grow(&mut self, p: &Participant) -> Result<()> {
        const J: u64 = super::journals::HELD;
        let mem = p.mem();
        let b = p.heap().alloc_into(held_block::BYTES, J)?.get();
        // Relaxed: the block is linked nowhere yet; the SeqCst store below links it.
        mem.store(
            b,
            value::block_head(Kind::Held, held_block::COUNT),
            Ordering::Relaxed,
        )?;
        mem.store(b + held_block::NEXT, 0, Ordering::Relaxed)?;
        for i in 0..held_block::COUNT {
            mem.store(b + held_block::ENTRIES + 8 * i, 0, Ordering::Relaxed)?;
        }
        if self.last == 0 {
            p.slot_word(slot_words::HELD)?.store(b, Ordering::SeqCst);
        } else {
            mem.store(self.last + held_block::NEXT, b, Ordering::SeqCst)?;
        }
        p.heap().settle(J)?;
        self.last = b;
        for i in (0..held_block::COUNT).rev() {
            self.free.push(b + held_block::ENTRIES + 8 * i);
        }
        Ok(())
    }

    /// Empties this process's held set and gives its blocks back (at close). Returns whether
    /// it held anything (then orphans may be waiting to be collected).
    pub fn release_all(&mut self, p: &Participant) -> Result<bool> {
        let had_any = !self.map.is_empty();
        if self.readonly.is_some() {
            for &(e, _) in self.map.values().filter(|&&(e, _)| e != 0) {
                p.lock_mem().store(e, 0, Ordering::SeqCst)?;
            }
            p.slot_word(slot_words::RO_PINNED)?
                .store(0, Ordering::SeqCst);
            *self = HeldSet::readonly(p);
            return Ok(false);
        }
        let mut blocks = Vec::new();
        for_each_held_block(p, p.slot(), |b| {
            blocks.push(b);
            Ok(())
        })?;
        *self = HeldSet::default();
        // One block at a time from the head, each named as ours in journal `HELD` before the
        // slot word moves past it and freed with the journal still naming it: a recovery of
        // a participant killed here frees (or gives back with the cache) the block the chain
        // no longer reaches, and the rest as its held chain (FORMAT.md §10.7 step 0). Held
        // blocks are of a cached class, so a kill here leaves nothing to gc unless the cache
        // is full.
        let head = p.slot_word(slot_words::HELD)?;
        const J: u64 = super::journals::HELD;
        for (i, &b) in blocks.iter().enumerate() {
            let block = crate::heap::Block::from_word(b);
            p.heap().journal_owned(J, block)?;
            head.store(blocks.get(i + 1).copied().unwrap_or(0), Ordering::SeqCst);
            p.heap().free_journaled(J, block)?;
        }
        Ok(had_any)
    }
}

/// Calls `f` with every block of participant `slot`'s held chain.
pub(super) fn for_each_held_block(
    p: &Participant,
    slot: u32,
    mut f: impl FnMut(u64) -> Result<()>,
) -> Result<()> {
    let mem = p.mem();
    let mut b = p.lock_mem().load(
        p.table().word_offset(slot, slot_words::HELD),
        Ordering::SeqCst,
    )?;
    let mut steps = 0u64;
    while b != 0 {
        let head = mem.load(b, Ordering::SeqCst)?;
        if value::head_kind(head) != Some(Kind::Held) || value::head_len(head) != held_block::COUNT
        {
            return Err(Error::Corrupt {
                what: format!("participant {slot}'s held set names a block that is not one"),
                offset: b,
            });
        }
        f(b)?;
        b = mem.load(b + held_block::NEXT, Ordering::SeqCst)?;
        steps += 1;
        if steps > mem.size() / held_block::BYTES {
            return Err(Error::Corrupt {
                what: format!("participant {slot}'s held set loops"),
                offset: b,
            });
        }
    }
    Ok(())
}

/// Calls `f` with every container named by any attached participant's held set (its chain,
/// and a read-only participant's inline entries).
pub(super) fn for_each_held(
    p: &Participant,
    slots: u32,
    mut f: impl FnMut(u64) -> Result<()>,
) -> Result<()> {
    let t = p.table();
    for slot in 0..t.slots.min(slots) {
        if t.status(slot)? != table::STATUS_ATTACHED {
            continue;
        }
        let mut entries = Vec::new();
        for i in 0..slot_words::RO_HELD_ENTRIES {
            let c = p.lock_mem().load(
                t.word_offset(slot, slot_words::RO_HELD + i),
                Ordering::SeqCst,
            )?;
            if c != 0 {
                entries.push(c);
            }
        }
        for_each_held_block(p, slot, |b| {
            for i in 0..held_block::COUNT {
                let c = p
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
pub(super) fn any_pinned(p: &Participant, slots: u32) -> Result<bool> {
    let t = p.table();
    for slot in 0..t.slots.min(slots) {
        if t.status(slot)? == table::STATUS_ATTACHED
            && p.lock_mem()
                .load(t.word_offset(slot, slot_words::RO_PINNED), Ordering::SeqCst)?
                != 0
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The held sets as one read of them found them: enough for a batch of releases in one change
/// (`Store::held_now`). A container found by a read is held before the read is validated, and
/// a change's gate (odd sequence) or part is taken before the held sets are read: a hold
/// missing here belongs to a read that fails validation, whenever in the change it comes. A
/// hold that goes after the read is kept as if it were there (the container waits on the
/// orphan list).
#[derive(Debug)]
pub(super) enum HeldScan {
    /// A read-only participant pins every container.
    All,
    Named(OffsetMap<()>),
}

impl HeldScan {
    /// Reads every attached participant's held set, after a SeqCst fence: the writer's
    /// change (its odd sequence, or its part's CAS) is ordered before these loads. Only the
    /// slots below `slots high` (the lock file's word: every participant raises it at attach,
    /// before it holds anything) can hold anything; read after the fence, so that a
    /// participant whose raise it misses is one whose re-check after its hold sees the change.
    pub fn read(p: &Participant, slots_high: &AtomicU64) -> Result<HeldScan> {
        fence(Ordering::SeqCst);
        // Relaxed: ordered after the writer's change by the fence above.
        let slots = slots_high.load(Ordering::Relaxed).min(u32::MAX as u64) as u32;
        if any_pinned(p, slots)? {
            return Ok(HeldScan::All);
        }
        let mut named = OffsetMap::default();
        for_each_held(p, slots, |h| {
            named.insert(h, ());
            Ok(())
        })?;
        Ok(HeldScan::Named(named))
    }

    pub fn holds(&self, c: u64) -> bool {
        match self {
            HeldScan::All => true,
            HeldScan::Named(named) => named.contains_key(&c),
        }
    }
}

impl Store {
    /// Records one more proxy for container `c`. Call before validating the read that found
    /// `c` (see the module comment); if the read turns out invalid, call `unhold`.
    pub fn hold(&mut self, c: super::Container) -> Result<()> {
        self.held.hold(&self.part, c.get())
    }

    /// Drops one proxy's hold on `c`. Returns true when `c` left the held set and nothing
    /// refers to it any more (the caller should run `collect_orphans` in an op soon).
    pub fn unhold(&mut self, c: super::Container) -> Result<bool> {
        self.held.unhold(&self.part, c.get())
    }

    /// The containers this process holds, and how many proxies hold each.
    pub fn held_containers(&self) -> Vec<(super::Container, u64)> {
        self.held
            .containers()
            .into_iter()
            .map(|(c, n)| (super::Container::checked(c), n))
            .collect()
    }

    /// Whether a held set names container `c`, from the held sets as read at the first such
    /// question since `forget_held_scan` ([`HeldScan`]): one read for a change's releases.
    pub(super) fn held_now(&mut self, c: u64) -> Result<bool> {
        if self.held_scan.is_none() {
            self.held_scan = Some(HeldScan::read(&self.part, self.part.lock().slots_high)?);
        }
        Ok(self.held_scan.as_ref().is_some_and(|s| s.holds(c)))
    }

    /// Starts a batch of releases: the next `held_now` reads the held sets again.
    pub(super) fn forget_held_scan(&mut self) {
        self.held_scan = None;
    }

    /// Number of distinct containers this process holds.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// Empties this process's held set (at close) and collects the orphans it kept alive.
    pub(super) fn release_all_held(&mut self) -> Result<()> {
        if self.held.release_all(&self.part)? && self.has_orphans() {
            // Best effort: if the writer word is busy, the next writer or gc collects them.
            if self.begin_op(super::lock::ME_ANY_THREAD).is_ok() {
                let r = self.collect_orphans();
                self.end_op(r.is_ok())?;
            }
        }
        Ok(())
    }
}
