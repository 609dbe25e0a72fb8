//! The participant table: one slot per attached process, in the lock file.
//!
//! A slot holds who is attached (generation, pid, start time) and the participant's journal:
//! a few words in which the allocator writes what it is about to take *before* it takes it, so
//! that (a) a sweep running in another process never frees a block that a live participant has
//! just allocated but not yet linked, and (b) after a participant dies, recovery knows which
//! allocator step it may have left half done. Liveness itself is not in the table: it is the
//! kernel's OFD lock on the slot's byte (`sync::ofd`), so pid reuse cannot fool it.
//!
//! Slot words (8 bytes each):
//!
//! | word | name | meaning |
//! |---|---|---|
//! | 0 | state | `generation << 8 \| status`; status 0 = free, 1 = attached |
//! | 1 | pid | the attached process's pid (for messages) |
//! | 2 | start | its start time in clock ticks since boot (pid + start names a process) |
//! | 3..8 | object | reserved for the object layer (epoch, lock ownership) |
//! | 8 | page journal | a page-run or huge-run claim or release in flight (see `page`) |
//! | 9 | segment journal | a segment being created, or being swept (see `heap`) |
//! | 10..16 | block journals | blocks allocated and not yet linked (see `heap`) |
//! | 16..32 | reserved | zero |
//! | 32..256 | block cache | per small size class (16 classes), a count and 13 free blocks (see `heap`) |

use crate::sync::{AccessError, Liveness, Ordering, WordStore};

/// 2 KiB, most of it the block cache. (Under loom, 768 bytes and a cache of 3
/// blocks a class: every word of a model's memory is a loom atomic, which each step of the model
/// pays for, and no code depends on the cache's size.)
#[cfg(not(loom))]
pub const SLOT_WORDS: u64 = 256;
#[cfg(loom)]
pub const SLOT_WORDS: u64 = 96;
pub const STATUS_FREE: u64 = 0;
pub const STATUS_ATTACHED: u64 = 1;

pub const W_STATE: u64 = 0;
pub const W_PID: u64 = 1;
pub const W_START: u64 = 2;
pub const W_OBJECT: u64 = 3;
pub const W_PAGE_JOURNAL: u64 = 8;
pub const W_SEGMENT_JOURNAL: u64 = 9;
pub const W_BLOCK_JOURNAL: u64 = 10;
pub const BLOCK_JOURNALS: u64 = 6;
/// Bit 0 of a block journal: the participant has taken the block it names (the pop, carve or
/// cache-pop step is done, or a large run exists), so it owns it until it links it and settles
/// the journal (FORMAT.md §6.4). Blocks are 16-aligned, so the bit is never part of an offset;
/// every reader of a journal masks it.
pub const JOURNAL_TAKEN: u64 = 1;
/// The block cache: `CACHED_CLASSES` groups of `CACHE_GROUP` words (a count, then entries).
/// 13 entries a class: with random sizes (Larson: 16..=512 bytes, one class per free and
/// another per allocation), a class's count wanders, and a cache of 3 was full on 23% of frees
/// and empty on 23% of allocations (each then a CAS on a shared anchor); of 13, 5%. (29, in
/// 4 KiB slots, gave 1%, but the lock file, reserved on disk whole, grew to 4 MiB a store.)
pub const W_CACHE: u64 = 32;
pub const CACHED_CLASSES: u64 = 16;
#[cfg(not(loom))]
pub const CACHE_GROUP: u64 = 14;
#[cfg(loom)]
pub const CACHE_GROUP: u64 = 4;

const _: () = assert!(W_CACHE + CACHED_CLASSES * CACHE_GROUP <= SLOT_WORDS);

/// The words of a slot that attaching and releasing zero end at the block cache: the cache
/// stays with the slot, a clean detach leaves its blocks there, and the next participant to
/// attach to the slot takes them over (FORMAT.md §6.5), so no block moves at a close.
const CLEARED_END: u64 = W_CACHE;

/// A view of the participant table in some word store (the lock file's mapping, or a loom
/// model's memory), with the liveness oracle that goes with it.
pub struct Table<'a, W: WordStore, L: Liveness> {
    pub words: &'a W,
    pub live: &'a L,
    /// Offset of slot 0.
    pub base: u64,
    pub slots: u32,
}

impl<W: WordStore, L: Liveness> Clone for Table<'_, W, L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W: WordStore, L: Liveness> Copy for Table<'_, W, L> {}

impl<'a, W: WordStore, L: Liveness> Table<'a, W, L> {
    pub fn word_offset(&self, slot: u32, word: u64) -> u64 {
        self.base + (slot as u64 * SLOT_WORDS + word) * 8
    }

    pub fn load(&self, slot: u32, word: u64) -> Result<u64, AccessError> {
        // SeqCst: journal words take part in the store-then-check handshake with sweeps and
        // recovery (a journal store must be ordered before the claim it announces, and a
        // sweep's reads of journals after its reads of the claimed state). The heap's hot
        // path writes block journals with a Relaxed store of its own instead, ordered by the
        // AcqRel CAS that follows it (see `Heap::alloc_from` in `heap/alloc.rs`).
        self.words
            .load(self.word_offset(slot, word), Ordering::SeqCst)
    }

    pub fn store(&self, slot: u32, word: u64, value: u64) -> Result<(), AccessError> {
        // SeqCst: see `load`.
        self.words
            .store(self.word_offset(slot, word), value, Ordering::SeqCst)
    }

    pub fn status(&self, slot: u32) -> Result<u64, AccessError> {
        Ok(self.load(slot, W_STATE)? & 0xff)
    }

    pub fn generation(&self, slot: u32) -> Result<u64, AccessError> {
        Ok(self.load(slot, W_STATE)? >> 8)
    }

    /// Calls `f(slot, word, value)` for every non-zero journal word of every live, attached
    /// participant. Dead participants' journals are left to their recovery.
    pub fn for_each_live_journal(
        &self,
        mut f: impl FnMut(u32, u64, u64),
    ) -> Result<(), AccessError> {
        for slot in 0..self.slots {
            if self.status(slot)? != STATUS_ATTACHED || !self.live.is_alive(slot) {
                continue;
            }
            for w in W_PAGE_JOURNAL..W_BLOCK_JOURNAL + BLOCK_JOURNALS {
                let v = self.load(slot, w)?;
                if v != 0 {
                    f(slot, w, v);
                }
            }
        }
        Ok(())
    }

    /// Marks `slot` attached by a new participant: a new generation, with cleared journals.
    pub fn activate(&self, slot: u32, pid: u64, start: u64) -> Result<(), AccessError> {
        // The cache left by the slot's last participant is this one's now (`Heap::vet_cache`
        // checks it before any of it is handed out).
        for w in 3..CLEARED_END {
            self.store(slot, w, 0)?;
        }
        self.store(slot, W_PID, pid)?;
        self.store(slot, W_START, start)?;
        let gen = self.generation(slot)? + 1;
        self.store(slot, W_STATE, (gen << 8) | STATUS_ATTACHED)
    }

    /// Marks `slot` free (after a clean detach, or after recovery of a dead participant).
    pub fn release(&self, slot: u32) -> Result<(), AccessError> {
        let gen = self.generation(slot)?;
        for w in W_OBJECT..CLEARED_END {
            self.store(slot, w, 0)?;
        }
        self.store(slot, W_STATE, (gen << 8) | STATUS_FREE)
    }
}
