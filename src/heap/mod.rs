//! heap manager: malloc and free of any size inside the store, lock-free.
//!
//! Terms: a *block* is what `alloc` returns; a *size class* is one of `classes::CLASS_SIZES`; a
//! *segment* is a run of pages (from the page manager) carved into blocks of one class, with a
//! 64-byte header at its start. Requests above `MAX_SMALL` bytes get a run of pages (a *large*
//! block; more than a chunk makes a huge run), found again at `free` through the page map.
//!
//! Mechanism (after Michael, PLDI 2004, with the kill-safety of a shared mapping added):
//! every segment's free blocks form a stack whose head, length and a 31-bit tag share one word,
//! the *anchor*, changed only by CAS; blocks never carved yet are taken by CAS on a bump
//! counter. Any participant may allocate from or free into any segment (a block freed by
//! another process than the one that took it is the ordinary case). Segments are linked into
//! one push-only list per class, headed in the store header, so they are never unlinked and a
//! walk of the list never meets a freed node: there is no ABA on lists at all, and the tag
//! guards the anchor's stack. Segments stay with their class (type-stable descriptors, as in
//! Michael's and LRMalloc's designs).
//!
//! Crash safety. Every step is one CAS: a participant killed between two steps leaves every
//! word consistent. Before each pop it writes the block it is about to take into one of its
//! *block journals* (slot words in the lock file); the journal keeps the block's offset until
//! the caller has linked it somewhere and calls [`Heap::settle`]. So a sweep in another process
//! ([`Heap::sweep_segment`], for the object layer's mark-and-sweep) never frees a block that a
//! live participant holds unlinked. Right after the step that takes the block, the journal gets
//! a *taken* bit (`table::JOURNAL_TAKEN`), so after a participant dies the layer above can tell
//! a block it owned from one it never got, and frees those it had not linked
//! ([`Heap::taken_by_dead`], [`Heap::settle_dead`]); what is left (a block taken an instant
//! before its bit) is allocated and unreachable, which is what a sweep frees.
//! A segment being created is named in the participant's segment journal until it is on its
//! class list; recovery finishes the push.
//!
//! Each participant also keeps up to 13 freed small blocks per class in its slot (the *block
//! cache*, `cache.rs`): a free followed by an allocation of the same class then costs no CAS.
//! A cached block is free, though its segment counts it taken; sweeps and `check` read the
//! caches of live participants, and recovery gives a dead one's back to their segments, each
//! block named by the dead slot's block journal 0 until it is free (a gc spares what any
//! attached slot names, [`Heap::named_blocks`]).
//!
//! Anchor word: `head:16 | count:16 | tag:31 | frozen:1` (head = block index + 1, 0 = empty;
//! count = blocks on the stack). A *frozen* segment is being swept: allocation skips it and
//! frees go to its *deferred* stack, which the sweeper merges back when it unfreezes.
//! Invariant, outside a sweep: carved blocks = allocated blocks + blocks on the stack + blocks
//! parked on the deferred stack + blocks in live participants' caches, no block in two of those
//! places, and `count` = the stack's length. (The deferred stack is empty but for frees that
//! raced the end of the last freeze; the next sweep of the segment takes them.)
//!
//! Boundary: a block crosses it as a [`Block`] (its offset, typed), never as a bare `u64`:
//! `alloc` returns one, `free`, `free_uncached` and `usable_size` take one, and sweeps and
//! walks report blocks as `Block`s. A block offset that the layer above read out of a file word
//! becomes a `Block` by [`Block::from_word`], and the heap checks it before use as it checks
//! any offset. Runs of pages cross the boundary to the page manager as [`RunStart`]s. Inside
//! the heap, offsets are plain words (segment arithmetic, journal and cache words).
//!
//! Files, one owner per concern (each opens with what it owns and the invariants it keeps):
//!
//! - `segment.rs`: the segment header and its anchor word, the check of a header against the
//!   page map, class lists and segment creation, walks of the free and deferred stacks.
//! - `alloc.rs`: allocation (block cache, current segment, class hint, list walk, new segment;
//!   large runs) and the block journals, up to [`Heap::settle`].
//! - `free.rs`: free, onto a segment's free stack or, while it is frozen, its deferred stack.
//! - `cache.rs`: the block cache; `known.rs`: the process-local index of checked segments that
//!   `free` finds a block's segment with.
//! - `sweep.rs`: freezing, sweeping and thawing segments; sweeping large runs.
//! - `recovery.rs`: recovery of a dead participant from its journals, and [`Heap::repair`].
//! - `check.rs`: the consistency check, its counts, and the walk of allocated blocks.
//! - `classes.rs`: the size classes; `attached.rs`: a store opened and attached (not under loom).
//! - this file: the heap, [`Block`], and the public types of its results.

mod alloc;
#[cfg(not(loom))]
mod attached;
mod cache;
mod check;
pub mod classes;
mod free;
mod known;
mod recovery;
mod segment;
mod sweep;
#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(not(loom))]
pub use attached::{Attached, Error as OpenError, SlotRecovery};

pub use crate::page::{Error, PageManager, PageStats, Run, RunStart, RUN_LARGE, RUN_SEGMENT};
use crate::region::{table, Geometry, Table};
use crate::sync::{AtomicU64, Liveness, WordStore};
use classes::NCLASSES;
use known::KnownSegments;
use segment::Cached;
use std::cell::{Cell, OnceCell};

/// A block: the offset of the first byte of what [`Heap::alloc`] returned, the value that
/// [`Heap::free`], [`Heap::free_uncached`] and [`Heap::usable_size`] take, and what sweeps and
/// walks report. Every block offset that crosses the heap's boundary has this type.
///
/// A block comes from the heap, or from [`Block::from_word`] for an offset read out of a file
/// word (a link in an object, an undo entry). The heap checks either kind before it changes
/// anything (the start of a block of a checked segment, or of a large run), exactly as it
/// checks any offset: a wrong one is `BadFree` or `Corrupt`, never a write elsewhere.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Block(u64);

impl Block {
    /// A block offset read out of a file word. Unchecked here; the heap checks it where it is
    /// used.
    #[inline(always)]
    pub const fn from_word(w: u64) -> Block {
        Block(w)
    }

    /// The byte offset in the store file (what a word that links to the block holds).
    #[inline(always)]
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A large block is its run of pages.
impl From<RunStart> for Block {
    #[inline(always)]
    fn from(r: RunStart) -> Block {
        Block(r.get())
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({:#x})", self.0)
    }
}

impl std::fmt::LowerHex for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::LowerHex::fmt(&self.0, f)
    }
}

/// Bytes of a segment header; blocks start right after it.
pub const SEG_HEADER: u64 = 64;

/// What a segment header says about itself (checked against the page map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub offset: u64,
    pub class: usize,
    pub block_size: u64,
    pub nblocks: u64,
}

impl SegmentInfo {
    fn block(&self, i: u64) -> u64 {
        self.offset + SEG_HEADER + i * self.block_size
    }
}

/// Counts from [`Heap::check`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    pub pages: PageStats,
    pub segments: u64,
    pub blocks_allocated: u64,
    pub blocks_free: u64,
    pub large_runs: u64,
    pub bytes_allocated: u64,
}

/// The heap of one store as used by one participant. Not `Sync`: each thread that allocates
/// uses a heap of its own (its own slot, or the same slot under an outer lock).
pub struct Heap<'a, W: WordStore, L: Liveness> {
    pub pages: PageManager<'a, W, L>,
    /// This participant's current segment per class: a process-local hint only.
    current: [Cell<Option<Cached<'a>>>; NCLASSES],
    /// The segments this participant has checked, by page: a process-local index for `free`.
    known: KnownSegments<'a>,
    /// This participant's block journal words, resolved once.
    journals: [Cell<Option<&'a AtomicU64>>; table::BLOCK_JOURNALS as usize],
    /// This participant's block cache words (count, entries) per cached class, resolved once.
    cache: [OnceCell<[&'a AtomicU64; table::CACHE_GROUP as usize]>; table::CACHED_CLASSES as usize],
}

impl<'a, W: WordStore, L: Liveness> Heap<'a, W, L> {
    pub fn new(store: &'a W, geo: Geometry, table: Table<'a, W, L>, me: u32) -> Self {
        Heap {
            pages: PageManager::new(store, geo, table, me),
            current: Default::default(),
            known: KnownSegments::new(geo.page_size),
            journals: Default::default(),
            cache: Default::default(),
        }
    }

    fn store(&self) -> &'a W {
        self.pages.store
    }

    fn geo(&self) -> Geometry {
        self.pages.geo
    }

    fn table(&self) -> Table<'a, W, L> {
        self.pages.table
    }

    fn me(&self) -> u32 {
        self.pages.me
    }

    /// A kill point (loom) and then a persist barrier (a durable store), before a store-file
    /// write whose order on disk matters.
    #[inline]
    fn before_write(&self) -> Result<(), Error> {
        self.store().step()?;
        self.store().barrier()?;
        Ok(())
    }

    /// The end of the last byte in use (see `PageManager::used_end`).
    pub fn used_end(&self) -> Result<u64, Error> {
        self.pages.used_end()
    }

    /// The usable size of `block` (its class size, or its run's bytes).
    pub fn usable_size(&self, block: Block) -> Result<u64, Error> {
        let run = self.pages.run_at(block.get())?;
        if run.kind == RUN_SEGMENT {
            Ok(self.segment_info(run.offset.get())?.block_size)
        } else {
            Ok(run.pages * self.geo().page_size)
        }
    }
}
