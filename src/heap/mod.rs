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
//! live participant holds unlinked, and after a participant dies its unlinked blocks are found
//! again: they are allocated, unreachable and no longer journaled, which is what a sweep frees.
//! A segment being created is named in the participant's segment journal until it is on its
//! class list; recovery finishes the push.
//!
//! Anchor word: `head:16 | count:16 | tag:31 | frozen:1` (head = block index + 1, 0 = empty;
//! count = blocks on the stack). A *frozen* segment is being swept: allocation skips it and
//! frees go to its *deferred* stack, which the sweeper merges back when it unfreezes.
//! Invariant, outside a sweep: carved blocks = allocated blocks + blocks on the stack, and
//! `count` = the stack's length.

#[cfg(not(loom))]
mod attached;
pub mod classes;
#[cfg(not(loom))]
pub use attached::{Attached, Error as OpenError};

pub use crate::page::{Error, PageManager, PageStats, Run, RUN_LARGE, RUN_SEGMENT};
use crate::region::{table, Geometry, Table};
use crate::sync::{AtomicU64, Liveness, Ordering, WordStore};
use classes::{class_of, segment_bytes, CLASS_SIZES, MAX_SMALL, NCLASSES};
use std::cell::{Cell, OnceCell};

/// Bytes of a segment header; blocks start right after it.
pub const SEG_HEADER: u64 = 64;

// Segment header words.
const S_ANCHOR: u64 = 0;
const S_CARVE: u64 = 8;
const S_DEFERRED: u64 = 16;
const S_NEXT: u64 = 24;
const S_INFO: u64 = 32;
/// Who uses the segment as its current one: `generation << 32 | slot + 1`, or 0. A hint only,
/// so that participants spread over segments instead of all CASing one anchor.
const S_USER: u64 = 40;

const FROZEN_BIT: u64 = 1 << 63;
const TAG_SHIFT: u64 = 32;
const TAG_MASK: u64 = (1 << 31) - 1;

fn anchor(head: u64, count: u64, tag: u64, frozen: bool) -> u64 {
    head | (count << 16) | ((tag & TAG_MASK) << TAG_SHIFT) | if frozen { FROZEN_BIT } else { 0 }
}
fn a_head(a: u64) -> u64 {
    a & 0xffff
}
fn a_count(a: u64) -> u64 {
    (a >> 16) & 0xffff
}
fn a_tag(a: u64) -> u64 {
    (a >> TAG_SHIFT) & TAG_MASK
}
fn a_frozen(a: u64) -> bool {
    a & FROZEN_BIT != 0
}

/// Segment journal values: a segment being created, or one being swept.
const SJ_CREATE: u64 = 1;
const SJ_SWEEP: u64 = 2;
const SJ_SHIFT: u64 = 62;
const SJ_OFFSET: u64 = (1 << 62) - 1;

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
    /// The segment of the last block freed through the page map (frees come in runs).
    last_freed: Cell<Option<Cached<'a>>>,
    /// The same segment's block range and arithmetic as plain words, for the free fast path
    /// (copying the whole `Cached` out of its cell on every free costs more than the rest).
    freed_range: Cell<FreeRange>,
    /// This participant's block journal words, resolved once.
    journals: [Cell<Option<&'a AtomicU64>>; table::BLOCK_JOURNALS as usize],
    /// This participant's block cache words (count, entries) per cached class, resolved once.
    cache: [OnceCell<[&'a AtomicU64; table::CACHE_GROUP as usize]>; table::CACHED_CLASSES as usize],
}

/// A segment whose header this participant has checked against the page map, with its words
/// resolved. Segments never move, never change class and are never freed (type-stable), so a
/// check made once stays true for the life of the mapping.
#[derive(Clone, Copy)]
struct Cached<'a> {
    info: SegmentInfo,
    anchor: &'a AtomicU64,
    carve: &'a AtomicU64,
    /// ceil(2^32 / block_size): block indexes by multiplication (exact for offsets inside a
    /// segment, which are below 2^18, and block sizes below 2^14).
    reciprocal: u64,
}

/// Where the last segment freed into keeps its blocks: `[first, end)`, in blocks of
/// `block_size` (indexes found through `reciprocal`, as in [`Cached::index_of`]).
#[derive(Clone, Copy)]
struct FreeRange {
    first: u64,
    end: u64,
    block_size: u64,
    reciprocal: u64,
    class: usize,
}

impl FreeRange {
    const EMPTY: FreeRange = FreeRange {
        first: 1,
        end: 0,
        block_size: 1,
        reciprocal: 0,
        class: 0,
    };

    fn of(c: &Cached<'_>) -> FreeRange {
        let first = c.info.offset + SEG_HEADER;
        FreeRange {
            first,
            end: first + c.info.nblocks * c.info.block_size,
            block_size: c.info.block_size,
            reciprocal: c.reciprocal,
            class: c.info.class,
        }
    }

    fn holds(&self, block: u64) -> bool {
        if block < self.first || block >= self.end {
            return false;
        }
        let rel = block - self.first;
        ((rel * self.reciprocal) >> 32) * self.block_size == rel
    }
}

impl Cached<'_> {
    /// The index of the block that starts at `block`, if it is one of this segment's.
    fn index_of(&self, block: u64) -> Option<u64> {
        let rel = block.checked_sub(self.info.offset + SEG_HEADER)?;
        let idx = (rel * self.reciprocal) >> 32;
        (idx < self.info.nblocks && idx * self.info.block_size == rel).then_some(idx)
    }
}

impl<'a, W: WordStore, L: Liveness> Heap<'a, W, L> {
    pub fn new(store: &'a W, geo: Geometry, table: Table<'a, W, L>, me: u32) -> Self {
        Heap {
            pages: PageManager::new(store, geo, table, me),
            current: Default::default(),
            last_freed: Cell::new(None),
            freed_range: Cell::new(FreeRange::EMPTY),
            journals: Default::default(),
            cache: Default::default(),
        }
    }

    /// The cache words of class `k` (< CACHED_CLASSES) of this participant.
    fn cache_words(
        &self,
        k: usize,
    ) -> Result<&[&'a AtomicU64; table::CACHE_GROUP as usize], Error> {
        if let Some(w) = self.cache[k].get() {
            return Ok(w);
        }
        let t = self.table();
        let base = table::W_CACHE + k as u64 * table::CACHE_GROUP;
        let mut words =
            [t.words.word(t.word_offset(self.me(), base))?; table::CACHE_GROUP as usize];
        for (i, w) in words.iter_mut().enumerate().skip(1) {
            *w = t.words.word(t.word_offset(self.me(), base + i as u64))?;
        }
        Ok(self.cache[k].get_or_init(|| words))
    }

    /// Takes a block from this participant's cache of class `k`, journaling it first.
    ///
    /// The cache lives in the participant's slot, so a sweep in another process sees it (it
    /// reads a participant's cache before its journals: a block moves from the cache to a
    /// journal by writing the journal, then lowering the count). A participant killed with
    /// blocks in its cache leaks them to the next sweep, like any block it held.
    fn cache_pop(&self, k: usize, journal: &'a AtomicU64) -> Result<Option<u64>, Error> {
        if k as u64 >= table::CACHED_CLASSES {
            return Ok(None);
        }
        let w = self.cache_words(k)?;
        // Relaxed: only this participant writes its cache; readers in other processes order
        // their reads with the Release store of the count below.
        self.store().step()?;
        let n = w[0].load(Ordering::Relaxed);
        if n == 0 || n >= table::CACHE_GROUP {
            return Ok(None);
        }
        let block = w[n as usize].load(Ordering::Relaxed);
        if block % 16 != 0 || block < self.geo().header_bytes || self.store().word(block).is_err() {
            return Err(Error::Corrupt {
                what: format!("block cache of class {k} names offset {block:#x}"),
                offset: block,
            });
        }
        self.store().step()?;
        journal.store(block, Ordering::Relaxed);
        // Release: the journal store is visible before the block leaves the count.
        self.store().step()?;
        w[0].store(n - 1, Ordering::Release);
        Ok(Some(block))
    }

    /// Puts a freed block of class `k` into this participant's cache; `false` when it is full.
    fn cache_push(&self, k: usize, block: u64) -> Result<bool, Error> {
        if k as u64 >= table::CACHED_CLASSES {
            return Ok(false);
        }
        let w = self.cache_words(k)?;
        self.store().step()?;
        let n = w[0].load(Ordering::Relaxed);
        if n + 1 >= table::CACHE_GROUP {
            return Ok(false);
        }
        // Relaxed, then Release on the count: a reader that sees the count sees the entry.
        self.store().step()?;
        w[n as usize + 1].store(block, Ordering::Relaxed);
        self.store().step()?;
        w[0].store(n + 1, Ordering::Release);
        Ok(true)
    }

    /// Gives every block in this participant's cache back to its segment (a clean detach does
    /// this; a dead participant's cache is left to recovery and sweeps).
    pub fn flush_cache(&self) -> Result<(), Error> {
        for k in 0..table::CACHED_CLASSES as usize {
            let w = self.cache_words(k)?;
            loop {
                let n = w[0].load(Ordering::Relaxed);
                if n == 0 || n >= table::CACHE_GROUP {
                    w[0].store(0, Ordering::Release);
                    break;
                }
                let block = w[n as usize].load(Ordering::Relaxed);
                w[0].store(n - 1, Ordering::Release);
                self.free_to_segment(block)?;
            }
        }
        Ok(())
    }

    /// Checks segment `seg` and resolves its words.
    fn cached(&self, seg: u64) -> Result<Cached<'a>, Error> {
        let info = self.segment_info(seg)?;
        self.cache_info(info)
    }

    fn cache_info(&self, info: SegmentInfo) -> Result<Cached<'a>, Error> {
        Ok(Cached {
            info,
            anchor: self.store().word(info.offset + S_ANCHOR)?,
            carve: self.store().word(info.offset + S_CARVE)?,
            reciprocal: (1u64 << 32).div_ceil(info.block_size),
        })
    }

    /// Block journal word `jword` of this participant.
    fn journal(&self, jword: u64) -> Result<&'a AtomicU64, Error> {
        let j = (jword - table::W_BLOCK_JOURNAL) as usize;
        if let Some(w) = self.journals[j].get() {
            return Ok(w);
        }
        let t = self.table();
        let w = t.words.word(t.word_offset(self.me(), jword))?;
        self.journals[j].set(Some(w));
        Ok(w)
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

    /// Allocates `size` bytes (16-aligned), recording the block in block journal 0 until
    /// [`Heap::settle`]. Use [`Heap::alloc_into`] to keep several unlinked blocks at once.
    pub fn alloc(&self, size: u64) -> Result<u64, Error> {
        self.alloc_into(size, 0)
    }

    /// Allocates `size` bytes, recording the block in block journal `j` (0..6) of this
    /// participant until [`Heap::settle`]`(j)`.
    pub fn alloc_into(&self, size: u64, j: u64) -> Result<u64, Error> {
        assert!(
            j < table::BLOCK_JOURNALS,
            "block journal {j} does not exist"
        );
        let jword = table::W_BLOCK_JOURNAL + j;
        if size > MAX_SMALL {
            let pages = size.div_ceil(self.geo().page_size);
            if pages
                .checked_mul(self.geo().page_size)
                .is_none_or(|b| b > self.store().max_size())
            {
                return Err(Error::TooLarge { bytes: size });
            }
            let b = self.pages.alloc(pages, RUN_LARGE, 0, Some(jword))?;
            self.store().barrier()?;
            return Ok(b);
        }
        let k = class_of(size.max(1));
        let journal = self.journal(jword)?;
        // 0. This participant's cache of freed blocks (no atomic read-modify-write). A cached
        // block is allocated as far as the store file knows: no barrier.
        if let Some(b) = self.cache_pop(k, journal)? {
            return Ok(b);
        }
        // 1. This participant's current segment.
        let b = match self.current[k].get() {
            Some(cur) => match self.alloc_from(&cur, journal)? {
                Some(b) => b,
                None => self.alloc_slow(k, journal)?,
            },
            None => self.alloc_slow(k, journal)?,
        };
        // The allocation on disk before the caller writes into the block or logs it: a block
        // still free on disk must not hold the caller's bytes (they would overwrite its link)
        // nor be named by an undo entry (a rollback would free it twice).
        self.store().barrier()?;
        Ok(b)
    }

    /// A kill point (loom) and then a persist barrier (a durable store), before a store-file
    /// write whose order on disk matters.
    #[inline]
    fn before_write(&self) -> Result<(), Error> {
        self.store().step()?;
        self.store().barrier()?;
        Ok(())
    }

    #[cold]
    fn alloc_slow(&self, k: usize, journal: &'a AtomicU64) -> Result<u64, Error> {
        let class_head = self.geo().class_words(k);
        let class_hint = class_head + 8;
        let me = self.user_mark()?;
        // 2. The class's shared hint, unless another live participant uses that segment.
        let hint = self.store().load(class_hint, Ordering::Acquire)?;
        if hint != 0 && Some(hint) != self.current[k].get().map(|c| c.info.offset) {
            let cached = self.class_segment(hint, k)?;
            if !self.used_by_other(&cached, me)? {
                if let Some(b) = self.alloc_from(&cached, journal)? {
                    self.adopt(k, cached, me)?;
                    return Ok(b);
                }
            }
        }
        // 3. Walk the class list for a segment with a fair share of free blocks (so that a
        // walk is paid for by many allocations) that no other live participant uses, 4. else
        // a new segment, 5. else (the store cannot grow) any segment with any free block.
        // Why a new segment could not be had (the file cannot grow), for the error if no
        // segment has room either.
        let mut full = None;
        for pass in 0..2 {
            let mut seg = self.store().load(class_head, Ordering::Acquire)?;
            let mut steps = 0u64;
            while seg != 0 {
                let cached = self.class_segment(seg, k)?;
                let info = cached.info;
                let a = cached.anchor.load(Ordering::Acquire);
                let carve = cached.carve.load(Ordering::Acquire).min(info.nblocks);
                let free = a_count(a) + info.nblocks - carve;
                let usable = if pass == 0 {
                    free >= (info.nblocks / 8).max(1) && !self.used_by_other(&cached, me)?
                } else {
                    free >= 1
                };
                if !a_frozen(a) && usable {
                    if let Some(b) = self.alloc_from(&cached, journal)? {
                        self.adopt(k, cached, me)?;
                        self.store().store(class_hint, seg, Ordering::Release)?;
                        return Ok(b);
                    }
                }
                seg = self.store().load(seg + S_NEXT, Ordering::Acquire)?;
                steps += 1;
                if steps > self.store().size() / self.geo().page_size {
                    return Err(Error::Corrupt {
                        what: "segment list of a class loops".into(),
                        offset: class_head,
                    });
                }
            }
            if pass == 0 {
                match self.new_segment(k) {
                    Ok(seg) => {
                        let cached = self.class_segment(seg, k)?;
                        if let Some(b) = self.alloc_from(&cached, journal)? {
                            self.adopt(k, cached, me)?;
                            self.store().store(class_hint, seg, Ordering::Release)?;
                            return Ok(b);
                        }
                    }
                    Err(e @ Error::Access(crate::sync::AccessError::Full { .. })) => {
                        full = Some(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(full.unwrap_or_else(|| {
            Error::Access(crate::sync::AccessError::Full {
                wanted: self.store().size() + segment_bytes(k, self.geo().chunk_bytes()),
                reason: "no free block of this size and no room for a new segment".into(),
            })
        }))
    }

    /// This participant's mark for `S_USER` words.
    fn user_mark(&self) -> Result<u64, Error> {
        Ok((self.table().generation(self.me())? << 32) | (self.me() as u64 + 1))
    }

    /// True when the segment is the current one of another participant that is still attached
    /// under the same generation (a table read, no system call: a dead participant's mark
    /// counts until it is recovered, which only makes us pick another segment meanwhile).
    fn used_by_other(&self, seg: &Cached<'a>, me: u64) -> Result<bool, Error> {
        // Relaxed: a hint; any value is safe.
        let user = self
            .store()
            .load(seg.info.offset + S_USER, Ordering::Relaxed)?;
        if user == 0 || user == me {
            return Ok(false);
        }
        let Some(slot) = (user & 0xffff_ffff).checked_sub(1) else {
            return Ok(false); // a damaged mark is no mark
        };
        if slot >= self.table().slots as u64 {
            return Ok(false);
        }
        let state = self.table().load(slot as u32, table::W_STATE)?;
        Ok(state & 0xff == table::STATUS_ATTACHED && state >> 8 == user >> 32)
    }

    /// Makes `seg` this participant's current segment of class `k`, moving its mark.
    fn adopt(&self, k: usize, seg: Cached<'a>, me: u64) -> Result<(), Error> {
        if let Some(old) = self.current[k].get() {
            // Relaxed: hints only. A lost race leaves a stale mark, which a later pass ignores.
            let _ = self.store().cas(
                old.info.offset + S_USER,
                me,
                0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )?;
        }
        self.store()
            .store(seg.info.offset + S_USER, me, Ordering::Relaxed)?;
        self.current[k].set(Some(seg));
        Ok(())
    }

    /// Reads and checks a segment's header against the page map.
    pub fn segment_info(&self, seg: u64) -> Result<SegmentInfo, Error> {
        let run = self.pages.run_at(seg)?;
        if run.kind != RUN_SEGMENT || run.offset != seg {
            return Err(Error::Corrupt {
                what: "segment offset is not the start of a segment run".into(),
                offset: seg,
            });
        }
        self.segment_of_run(&run)
    }

    /// The segment that a segment run (from the page map) holds, its header checked against
    /// the run.
    fn segment_of_run(&self, run: &Run) -> Result<SegmentInfo, Error> {
        let seg = run.offset;
        let info = self.store().load(seg + S_INFO, Ordering::Acquire)?;
        let class = (info & 0xff) as usize;
        let nblocks = (info >> 8) & 0xffff;
        let block_size = info >> 24;
        let ok = class < NCLASSES
            && class as u64 == run.user
            && block_size == CLASS_SIZES[class]
            && nblocks >= 1
            && SEG_HEADER + nblocks * block_size <= run.pages * self.geo().page_size;
        if !ok {
            return Err(Error::Corrupt {
                what: format!("segment header {info:#x} disagrees with its run"),
                offset: seg + S_INFO,
            });
        }
        Ok(SegmentInfo {
            offset: seg,
            class,
            block_size,
            nblocks,
        })
    }

    /// Pops a block from segment `seg` (or carves a new one). `None`: the segment is full or
    /// frozen.
    fn alloc_from(&self, seg: &Cached<'a>, journal: &'a AtomicU64) -> Result<Option<u64>, Error> {
        let store = self.store();
        let SegmentInfo {
            offset,
            nblocks,
            block_size,
            ..
        } = seg.info;
        self.store().step()?;
        let mut a = seg.anchor.load(Ordering::Acquire);
        loop {
            if a_frozen(a) {
                return Ok(None);
            }
            let head = a_head(a);
            if head == 0 {
                break;
            }
            if head > nblocks || a_count(a) == 0 {
                return Err(Error::Corrupt {
                    what: format!("segment anchor {a:#x} is out of range"),
                    offset,
                });
            }
            let block = offset + SEG_HEADER + (head - 1) * block_size;
            // The block may be popped and reused by another participant right now, so its link
            // may be anything: check it, and let the tagged CAS reject a stale read.
            // Acquire pairs with the Release CAS in `push_free` that published the link.
            let next = store.load(block, Ordering::Acquire)? & 0xffff;
            // Relaxed: published by the AcqRel CAS below (a sweep's freeze CAS that orders
            // after this pop acquires it, so the sweep sees this journal entry).
            self.store().step()?;
            journal.store(block, Ordering::Relaxed);
            if next > nblocks {
                self.store().step()?;
                let again = seg.anchor.load(Ordering::Acquire);
                if again == a {
                    return Err(Error::Corrupt {
                        what: "free-list link out of range".into(),
                        offset: block,
                    });
                }
                a = again;
                continue;
            }
            let new = anchor(next, a_count(a) - 1, a_tag(a) + 1, false);
            // AcqRel: Acquire for the link read above to be meaningful on success; Release so
            // a sweep that reads this anchor later sees our journal store.
            self.before_write()?;
            match seg
                .anchor
                .compare_exchange_weak(a, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(Some(block)),
                Err(actual) => a = actual,
            }
        }
        // The stack is empty: carve a block never used before.
        self.store().step()?;
        let mut c = seg.carve.load(Ordering::Acquire);
        while c < nblocks {
            let block = offset + SEG_HEADER + c * block_size;
            self.store().step()?;
            journal.store(block, Ordering::Relaxed);
            // AcqRel: as for the pop.
            self.before_write()?;
            match seg
                .carve
                .compare_exchange_weak(c, c + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(Some(block)),
                Err(actual) => c = actual,
            }
        }
        Ok(None)
    }

    /// Checks that `seg` is a segment of class `k` and resolves it.
    fn class_segment(&self, seg: u64, k: usize) -> Result<Cached<'a>, Error> {
        let cached = self.cached(seg)?;
        if cached.info.class != k {
            return Err(Error::Corrupt {
                what: format!(
                    "segment of class {} on the list of class {k}",
                    cached.info.class
                ),
                offset: seg,
            });
        }
        Ok(cached)
    }

    /// Creates a segment of class `k` and pushes it onto the class list.
    fn new_segment(&self, k: usize) -> Result<u64, Error> {
        let geo = self.geo();
        let bytes = segment_bytes(k, geo.chunk_bytes());
        let pages = bytes / geo.page_size;
        let nblocks = ((bytes - SEG_HEADER) / CLASS_SIZES[k]).min(0xffff);
        let seg = self
            .pages
            .alloc(pages, RUN_SEGMENT, k as u64, Some(table::W_SEGMENT_JOURNAL))?;
        self.table().store(
            self.me(),
            table::W_SEGMENT_JOURNAL,
            (SJ_CREATE << SJ_SHIFT) | seg,
        )?;
        self.init_and_push(seg, k, nblocks)?;
        self.table().store(self.me(), table::W_SEGMENT_JOURNAL, 0)?;
        Ok(seg)
    }

    /// Writes a fresh header into the (unpublished) segment `seg` and pushes it on its list.
    fn init_and_push(&self, seg: u64, k: usize, nblocks: u64) -> Result<(), Error> {
        let store = self.store();
        // Relaxed: nobody can reach the segment until the Release CAS that publishes it.
        store.store(seg + S_ANCHOR, 0, Ordering::Relaxed)?;
        store.store(seg + S_CARVE, 0, Ordering::Relaxed)?;
        store.store(seg + S_DEFERRED, 0, Ordering::Relaxed)?;
        store.store(seg + S_USER, 0, Ordering::Relaxed)?;
        store.store(
            seg + S_INFO,
            k as u64 | (nblocks << 8) | (CLASS_SIZES[k] << 24),
            Ordering::Relaxed,
        )?;
        let head_w = store.word(self.geo().class_words(k))?;
        let mut head = head_w.load(Ordering::Acquire);
        loop {
            store.store(seg + S_NEXT, head, Ordering::Relaxed)?;
            // Release: publishes the header written above (pairs with the Acquire loads of
            // the class head in walks). The barrier: the run and the header on disk before
            // the class list leads to them.
            store.barrier()?;
            match head_w.compare_exchange_weak(head, seg, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => head = actual,
            }
        }
    }

    /// Gives back a block returned by `alloc`. Any participant may free any block.
    pub fn free(&self, block: u64) -> Result<(), Error> {
        let range = self.freed_range.get();
        if range.holds(block) {
            if self.cache_push(range.class, block)? {
                return Ok(());
            }
            return self.free_to_segment(block);
        }
        self.free_slow(block)
    }

    #[cold]
    fn free_slow(&self, block: u64) -> Result<(), Error> {
        let run = self.pages.run_at(block)?;
        if run.kind == RUN_SEGMENT {
            let seg = self.cache_info(self.segment_of_run(&run)?)?;
            if seg.index_of(block).is_some() {
                self.remember_freed(seg);
                if self.cache_push(seg.info.class, block)? {
                    return Ok(());
                }
            }
        }
        self.free_to_segment(block)
    }

    /// Frees `block` straight to its segment (or its pages), never into this participant's
    /// block cache. For recovery: a slot being taken over has its cache emptied right after
    /// its dead occupant is recovered, and a block freed into it would be lost to a sweep.
    pub fn free_uncached(&self, block: u64) -> Result<(), Error> {
        self.free_to_segment(block)
    }

    /// Frees `block` straight to its segment's free stack (or, for a large block, its pages).
    fn free_to_segment(&self, block: u64) -> Result<(), Error> {
        if let Some(seg) = self.last_freed.get() {
            if let Some(idx) = seg.index_of(block) {
                return self.push_free_to(&seg, idx);
            }
        }
        let run = self.pages.run_at(block)?;
        if run.kind != RUN_SEGMENT {
            if run.offset != block {
                return Err(Error::BadFree {
                    offset: block,
                    why: "not the start of a large block",
                });
            }
            return self.pages.free(block);
        }
        let seg = self.cache_info(self.segment_of_run(&run)?)?;
        let idx = seg.index_of(block).ok_or(Error::BadFree {
            offset: block,
            why: "not the start of a block",
        })?;
        self.remember_freed(seg);
        self.push_free_to(&seg, idx)
    }

    fn remember_freed(&self, seg: Cached<'a>) {
        self.last_freed.set(Some(seg));
        self.freed_range.set(FreeRange::of(&seg));
    }

    fn push_free(&self, info: &SegmentInfo, idx: u64) -> Result<(), Error> {
        let seg = self.cache_info(*info)?;
        self.push_free_to(&seg, idx)
    }

    fn push_free_to(&self, cached: &Cached<'a>, idx: u64) -> Result<(), Error> {
        let store = self.store();
        let seg = cached.info.offset;
        let block = cached.info.block(idx);
        let link = store.word(block)?;
        let anchor_w = cached.anchor;
        self.store().step()?;
        let mut a = anchor_w.load(Ordering::Acquire);
        loop {
            if a_frozen(a) {
                return self.push_deferred(seg, block, idx);
            }
            // Relaxed: published by the Release CAS below. (The barrier: the change that
            // unlinked the block is on disk before the block's first word is overwritten.)
            self.before_write()?;
            link.store(a_head(a), Ordering::Relaxed);
            let new = anchor(idx + 1, a_count(a) + 1, a_tag(a) + 1, false);
            // Release: the block's last uses and its link happen before any popper reads it
            // (pairs with the Acquire load of the anchor in `alloc_from`). The barrier: the
            // link on disk before the anchor that leads to it.
            self.before_write()?;
            match anchor_w.compare_exchange_weak(a, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => a = actual,
            }
        }
    }

    fn push_deferred(&self, seg: u64, block: u64, idx: u64) -> Result<(), Error> {
        let store = self.store();
        let w = store.word(seg + S_DEFERRED)?;
        let link = store.word(block)?;
        let mut d = w.load(Ordering::Acquire);
        loop {
            store.barrier()?;
            link.store(d & 0xffff, Ordering::Relaxed);
            let new = (idx + 1) | (((d >> 16) + 1) << 16);
            // Release: pairs with the Acquire swap in `unfreeze`.
            store.barrier()?;
            match w.compare_exchange_weak(d, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => d = actual,
            }
        }
    }

    /// Declares block journal `j` settled: the block it named is now linked (or freed).
    pub fn settle(&self, j: u64) -> Result<(), Error> {
        assert!(j < table::BLOCK_JOURNALS);
        // Release: the linking stores happen before a sweep can see the block unjournaled.
        self.journal(table::W_BLOCK_JOURNAL + j)?
            .store(0, Ordering::Release);
        Ok(())
    }

    /// The end of the last byte in use (see `PageManager::used_end`).
    pub fn used_end(&self) -> Result<u64, Error> {
        self.pages.used_end()
    }

    /// The usable size of the block at `block` (its class size, or its run's bytes).
    pub fn usable_size(&self, block: u64) -> Result<u64, Error> {
        let run = self.pages.run_at(block)?;
        if run.kind == RUN_SEGMENT {
            Ok(self.segment_info(run.offset)?.block_size)
        } else {
            Ok(run.pages * self.geo().page_size)
        }
    }

    // ---- sweeping (for the object layer's mark-and-sweep) ----------------------------------

    /// Calls `f` with every segment of every class.
    pub fn for_each_segment(
        &self,
        mut f: impl FnMut(SegmentInfo) -> Result<(), Error>,
    ) -> Result<(), Error> {
        for k in 0..NCLASSES {
            let mut seg = self
                .store()
                .load(self.geo().class_words(k), Ordering::Acquire)?;
            let mut steps = 0;
            while seg != 0 {
                let info = self.segment_info(seg)?;
                if info.class != k {
                    return Err(Error::Corrupt {
                        what: "segment on another class's list".into(),
                        offset: seg,
                    });
                }
                f(info)?;
                seg = self.store().load(seg + S_NEXT, Ordering::Acquire)?;
                steps += 1;
                if steps > self.store().size() / self.geo().page_size {
                    return Err(Error::Corrupt {
                        what: "segment list of a class loops".into(),
                        offset: self.geo().class_words(k),
                    });
                }
            }
        }
        Ok(())
    }

    /// The blocks that live participants hold without having linked them: those in their
    /// caches and those named by their block journals. For each participant the cache is read
    /// before the journals, the reverse of the order in which `cache_pop` moves a block from
    /// one to the other, so a block on its way is seen in one place or the other.
    pub fn journaled_blocks(&self) -> Result<Vec<u64>, Error> {
        let t = self.table();
        let mut v = Vec::new();
        for slot in 0..t.slots {
            if t.status(slot)? != table::STATUS_ATTACHED || !t.live.is_alive(slot) {
                continue;
            }
            self.push_cached(slot, &mut v, false)?;
            for j in 0..table::BLOCK_JOURNALS {
                let b = t.load(slot, table::W_BLOCK_JOURNAL + j)?;
                if b != 0 {
                    v.push(b);
                }
            }
        }
        Ok(v)
    }

    /// The blocks in live participants' caches (free, though their segments count them taken).
    fn cached_blocks(&self) -> Result<Vec<u64>, Error> {
        let t = self.table();
        let mut v = Vec::new();
        for slot in 0..t.slots {
            if t.status(slot)? == table::STATUS_ATTACHED && t.live.is_alive(slot) {
                self.push_cached(slot, &mut v, true)?;
            }
        }
        Ok(v)
    }

    /// Appends the blocks in participant `slot`'s cache to `v`. A count out of range is an
    /// error when `strict`, else clamped (a sweep protects what it can read).
    fn push_cached(&self, slot: u32, v: &mut Vec<u64>, strict: bool) -> Result<(), Error> {
        let t = self.table();
        for k in 0..table::CACHED_CLASSES {
            let base = table::W_CACHE + k * table::CACHE_GROUP;
            // Acquire (SeqCst): pairs with the Release count stores of the cache's owner.
            let n = t.load(slot, base)?;
            if strict && n >= table::CACHE_GROUP {
                return Err(Error::Corrupt {
                    what: format!("block cache of participant {slot} holds {n} entries"),
                    offset: t.word_offset(slot, base),
                });
            }
            for i in 1..=n.min(table::CACHE_GROUP - 1) {
                v.push(t.load(slot, base + i)?);
            }
        }
        Ok(())
    }

    /// Sweeps one segment while others keep allocating and freeing: freezes it, frees every
    /// carved block that is not on its free stack, not journaled by a live participant, and for
    /// which `is_garbage` says yes, then unfreezes it. Returns the number of blocks freed.
    ///
    /// Contract for `is_garbage`: it answers yes only for a block that nobody can reach and
    /// nobody will free, and that cannot become reachable during the sweep (the object layer
    /// marks, then sweeps, holding its writer lock so nothing is linked meanwhile).
    pub fn sweep_segment(
        &self,
        seg: u64,
        mut is_garbage: impl FnMut(u64) -> bool,
    ) -> Result<u64, Error> {
        let info = self.segment_info(seg)?;
        let store = self.store();
        let Some(frozen) = self.freeze(&info)? else {
            return Ok(0); // someone else is sweeping it
        };
        // The stack cannot change now (pops skip frozen segments, pushes go to deferred).
        // Blocks parked on the deferred stack by frees that raced an earlier unfreeze are
        // free too: take them onto the stack first, so they are never mistaken for garbage.
        let mut head = a_head(frozen);
        let mut count = a_count(frozen);
        let mut free = vec![false; info.nblocks as usize];
        self.walk_stack(&info, head, count, &mut free)?;
        for idx in self.take_deferred(&info)? {
            if free[idx as usize] {
                return Err(Error::Corrupt {
                    what: "a block is on both free stacks of its segment".into(),
                    offset: info.block(idx),
                });
            }
            free[idx as usize] = true;
            // Relaxed: published by the anchor CAS in `thaw`.
            store.store(info.block(idx), head, Ordering::Relaxed)?;
            head = idx + 1;
            count += 1;
        }
        let carve = store
            .load(seg + S_CARVE, Ordering::SeqCst)?
            .min(info.nblocks);
        let mut journaled = self.journaled_blocks()?;
        journaled.sort_unstable();
        let mut freed = 0;
        for i in 0..carve {
            let b = info.block(i);
            if free[i as usize] || journaled.binary_search(&b).is_ok() || !is_garbage(b) {
                continue;
            }
            // Relaxed: published by the anchor CAS in `thaw`.
            store.store(b, head, Ordering::Relaxed)?;
            head = i + 1;
            count += 1;
            freed += 1;
        }
        self.thaw(&info, frozen, head, count)?;
        self.table().store(self.me(), table::W_SEGMENT_JOURNAL, 0)?;
        Ok(freed)
    }

    /// Freezes a segment for a sweep, after naming it in this participant's segment journal.
    /// `None`: another live sweeper holds it. A segment frozen by a sweeper that died (no live
    /// participant's journal names it) is thawed first.
    fn freeze(&self, info: &SegmentInfo) -> Result<Option<u64>, Error> {
        let seg = info.offset;
        self.table().store(
            self.me(),
            table::W_SEGMENT_JOURNAL,
            (SJ_SWEEP << SJ_SHIFT) | seg,
        )?;
        let anchor_w = self.store().word(seg + S_ANCHOR)?;
        let mut a = anchor_w.load(Ordering::Acquire);
        loop {
            if a_frozen(a) {
                if self.sweep_is_live(seg)? {
                    self.table().store(self.me(), table::W_SEGMENT_JOURNAL, 0)?;
                    return Ok(None);
                }
                self.thaw(info, a, a_head(a), a_count(a))?;
                a = anchor_w.load(Ordering::Acquire);
                continue;
            }
            let frozen = anchor(a_head(a), a_count(a), a_tag(a) + 1, true);
            // SeqCst: the journal reads of the sweep must see every journal store published
            // by a pop that precedes this CAS in the anchor's order (the pop's CAS is a
            // release; this is an acquire on the same word).
            self.store().barrier()?;
            match anchor_w.compare_exchange(a, frozen, Ordering::SeqCst, Ordering::Acquire) {
                Ok(_) => return Ok(Some(frozen)),
                Err(actual) => a = actual,
            }
        }
    }

    /// True when a live participant other than this one names `seg` as being swept.
    fn sweep_is_live(&self, seg: u64) -> Result<bool, Error> {
        let mut live = false;
        let me = self.me();
        self.table().for_each_live_journal(|slot, w, v| {
            if slot != me && w == table::W_SEGMENT_JOURNAL && v == (SJ_SWEEP << SJ_SHIFT) | seg {
                live = true;
            }
        })?;
        Ok(live)
    }

    /// Takes the deferred stack whole and returns its block indexes.
    fn take_deferred(&self, info: &SegmentInfo) -> Result<Vec<u64>, Error> {
        let store = self.store();
        // Acquire pairs with the Release CAS in `push_deferred`.
        store.barrier()?;
        let d = store
            .word(info.offset + S_DEFERRED)?
            .swap(0, Ordering::AcqRel);
        let mut out = Vec::new();
        let mut h = d & 0xffff;
        while h != 0 {
            if h > info.nblocks || out.len() as u64 >= info.nblocks {
                return Err(Error::Corrupt {
                    what: "deferred free stack is damaged (out of range or looped)".into(),
                    offset: info.offset + S_DEFERRED,
                });
            }
            out.push(h - 1);
            h = store.load(info.block(h - 1), Ordering::Acquire)? & 0xffff;
        }
        Ok(out)
    }

    /// Ends a freeze: installs `head`/`count` unfrozen by one CAS from the frozen anchor, then
    /// moves frees that arrived on the deferred stack meanwhile onto the free stack. Frees
    /// that still slip onto the deferred stack after this wait there for the next freeze
    /// (they are counted free by `check` and taken first by the next sweep).
    fn thaw(&self, info: &SegmentInfo, frozen: u64, head: u64, count: u64) -> Result<(), Error> {
        let new = anchor(head, count, a_tag(frozen) + 1, false);
        // SeqCst: publishes the links written by the sweep (pairs with the Acquire anchor
        // loads of pops). A racing thaw of the same abandoned freeze loses this CAS. The
        // barrier: those links on disk before the anchor that leads to them.
        self.store().barrier()?;
        if self
            .store()
            .cas(
                info.offset + S_ANCHOR,
                frozen,
                new,
                Ordering::SeqCst,
                Ordering::Acquire,
            )?
            .is_err()
        {
            return Ok(());
        }
        for idx in self.take_deferred(info)? {
            self.push_free(info, idx)?;
        }
        Ok(())
    }

    /// Frees every large or huge run that no live participant journals and for which
    /// `is_garbage` says yes (same contract as [`Heap::sweep_segment`]). Returns the count.
    pub fn sweep_large(&self, mut is_garbage: impl FnMut(u64) -> bool) -> Result<u64, Error> {
        // Runs first, journals second: an allocator names its run in a journal before the run
        // exists in the map, so a run seen here unjournaled was not being handed out.
        let mut candidates = Vec::new();
        self.pages.for_each_run(|run| {
            if run.kind != RUN_SEGMENT {
                candidates.push(run.offset);
            }
            Ok(())
        })?;
        let mut journaled = self.journaled_blocks()?;
        journaled.sort_unstable();
        let victims: Vec<u64> = candidates
            .into_iter()
            .filter(|off| journaled.binary_search(off).is_err() && is_garbage(*off))
            .collect();
        for &off in &victims {
            self.pages.free(off)?;
        }
        Ok(victims.len() as u64)
    }

    /// Sweeps every segment and every large run (see [`Heap::sweep_segment`]).
    pub fn sweep(&self, mut is_garbage: impl FnMut(u64) -> bool) -> Result<u64, Error> {
        let mut segs = Vec::new();
        self.for_each_segment(|info| {
            segs.push(info.offset);
            Ok(())
        })?;
        let mut freed = 0;
        for seg in segs {
            freed += self.sweep_segment(seg, &mut is_garbage)?;
        }
        Ok(freed + self.sweep_large(is_garbage)?)
    }

    fn walk_stack(
        &self,
        info: &SegmentInfo,
        head: u64,
        count: u64,
        seen: &mut [bool],
    ) -> Result<(), Error> {
        let mut h = head;
        let mut n = 0;
        while h != 0 {
            if h > info.nblocks || seen[(h - 1) as usize] || n >= count {
                return Err(Error::Corrupt { what: "segment free stack is damaged (out of range, looped or longer than its count)".into(), offset: info.offset });
            }
            seen[(h - 1) as usize] = true;
            n += 1;
            h = self.store().load(info.block(h - 1), Ordering::Acquire)? & 0xffff;
        }
        if n != count {
            return Err(Error::Corrupt {
                what: format!("segment free stack holds {n} blocks, its anchor says {count}"),
                offset: info.offset,
            });
        }
        Ok(())
    }

    /// Marks the blocks parked on the deferred stack in `seen` (read-only walk; quiescent use)
    /// and returns how many there are.
    fn walk_deferred(&self, info: &SegmentInfo, seen: &mut [bool]) -> Result<u64, Error> {
        let mut h = self
            .store()
            .load(info.offset + S_DEFERRED, Ordering::Acquire)?
            & 0xffff;
        let mut n = 0;
        while h != 0 {
            if h > info.nblocks || seen[(h - 1) as usize] {
                return Err(Error::Corrupt {
                    what: "deferred free stack is damaged (out of range, looped or overlapping)"
                        .into(),
                    offset: info.offset + S_DEFERRED,
                });
            }
            seen[(h - 1) as usize] = true;
            n += 1;
            h = self.store().load(info.block(h - 1), Ordering::Acquire)? & 0xffff;
        }
        Ok(n)
    }

    /// Thaws a segment whose sweeper died (its segment journal said SWEEP), unless a live
    /// sweeper holds it now.
    fn recover_sweep(&self, seg: u64) -> Result<(), Error> {
        let info = self.segment_info(seg)?;
        let a = self.store().load(seg + S_ANCHOR, Ordering::Acquire)?;
        if !a_frozen(a) || self.sweep_is_live(seg)? {
            return Ok(());
        }
        // The blocks the dead sweeper had gathered but not published stay allocated-looking
        // and unreachable: the next sweep frees them. The anchor as it was frozen is intact.
        self.thaw(&info, a, a_head(a), a_count(a))
    }

    // ---- recovery --------------------------------------------------------------------------

    /// Finishes or undoes what dead participant `slot` left half done in the allocator. The
    /// caller holds `slot` exclusively (its byte lock, see `region::Attachment`) and the
    /// store's recovery lock (recoveries and repairs run one at a time).
    ///
    /// Costs time in proportion to that participant's journal (a few words), never a scan of
    /// the store. Idempotent: a recoverer killed half-way is followed by another that repeats it.
    pub fn recover_participant(&self, slot: u32) -> Result<(), Error> {
        let t = self.table();
        // The segment journal first: while the dead participant's page claim (if any) is
        // still in its page journal, the claimed pages cannot change hands, so a segment run
        // found there is certainly the dead participant's.
        let sj = t.load(slot, table::W_SEGMENT_JOURNAL)?;
        if sj != 0 {
            let seg = sj & SJ_OFFSET;
            match sj >> SJ_SHIFT {
                SJ_SWEEP => self.recover_sweep(seg)?,
                // CREATE, or a bare offset (the page manager handed the run over, and the
                // participant died before marking it as being created): same treatment.
                SJ_CREATE | 0 => self.recover_create(seg)?,
                _ => {
                    return Err(Error::Corrupt {
                        what: "undecodable segment journal".into(),
                        offset: t.word_offset(slot, table::W_SEGMENT_JOURNAL),
                    })
                }
            }
            t.store(slot, table::W_SEGMENT_JOURNAL, 0)?;
        }
        let pj = t.load(slot, table::W_PAGE_JOURNAL)?;
        if pj != 0 {
            self.pages.recover_journal(pj)?;
            t.store(slot, table::W_PAGE_JOURNAL, 0)?;
        }
        // Block journals need no action: a popped block is allocated and, once the journal is
        // cleared, unreachable, so a sweep frees it; a block whose pop never happened is free.
        for j in 0..table::BLOCK_JOURNALS {
            t.store(slot, table::W_BLOCK_JOURNAL + j, 0)?;
        }
        // Cached blocks likewise: free in the dead participant's eyes, taken in their
        // segments'; emptying the cache leaves them to a sweep.
        for k in 0..table::CACHED_CLASSES {
            t.store(slot, table::W_CACHE + k * table::CACHE_GROUP, 0)?;
        }
        Ok(())
    }

    /// A segment run that a dead participant was creating: if it is not on its class list yet,
    /// nobody has seen it, so write its header afresh and push it.
    fn recover_create(&self, seg: u64) -> Result<(), Error> {
        // The claim may not have reached the map (the page journal's recovery then gives the
        // pages back): then there is no segment here and nothing to do.
        let run = match self.pages.run_at(seg) {
            Ok(run) if run.kind == RUN_SEGMENT && run.offset == seg => run,
            Ok(_) | Err(Error::BadFree { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if run.user as usize >= NCLASSES {
            return Err(Error::Corrupt {
                what: "segment run of an unknown class".into(),
                offset: seg,
            });
        }
        let k = run.user as usize;
        let mut s = self
            .store()
            .load(self.geo().class_words(k), Ordering::Acquire)?;
        let mut steps = 0;
        while s != 0 {
            if s == seg {
                return Ok(());
            }
            // `s` is not checked as a segment here (only compared): a hostile list word could
            // be anything, so the next link's offset must not overflow.
            let next = s.checked_add(S_NEXT).ok_or(Error::Corrupt {
                what: "segment list names an offset beyond any store".into(),
                offset: self.geo().class_words(k),
            })?;
            s = self.store().load(next, Ordering::Acquire)?;
            steps += 1;
            if steps > self.store().size() / self.geo().page_size {
                return Err(Error::Corrupt {
                    what: "segment list of a class loops".into(),
                    offset: seg,
                });
            }
        }
        let bytes = run.pages * self.geo().page_size;
        let nblocks = ((bytes - SEG_HEADER) / CLASS_SIZES[k]).min(0xffff);
        self.init_and_push(seg, k, nblocks)
    }

    /// Repairs what dead participants left in flight when their journals are lost (the lock
    /// file was deleted while nobody was attached): page-level leftovers (see
    /// [`PageManager::sweep_unmapped`]), segment runs that never reached their class list,
    /// and segments left frozen by a dead sweeper. Safe while others allocate; what it cannot
    /// attribute to a live participant's journal it treats as a dead one's. The caller holds
    /// the store's recovery lock.
    pub fn repair(&self) -> Result<(), Error> {
        self.pages.sweep_unmapped()?;
        // Read order matters: runs, then journals, then (in `recover_create`) the class list.
        // A creator names its run in its segment journal before the run's start entry exists
        // and clears the journal only after the push, so a run seen here is either named by a
        // journal read afterwards or already on the list when the list is read.
        let mut runs = Vec::new();
        self.pages.for_each_run(|run| {
            if run.kind == RUN_SEGMENT {
                runs.push(run.offset);
            }
            Ok(())
        })?;
        let mut creating = Vec::new();
        self.table().for_each_live_journal(|_, w, v| {
            if w == table::W_SEGMENT_JOURNAL && v >> SJ_SHIFT != SJ_SWEEP {
                creating.push(v & SJ_OFFSET);
            }
        })?;
        for seg in runs {
            if !creating.contains(&seg) {
                self.recover_create(seg)?;
            }
        }
        let mut listed = Vec::new();
        self.for_each_segment(|info| {
            listed.push(info.offset);
            Ok(())
        })?;
        for seg in listed {
            self.recover_sweep(seg)?;
        }
        Ok(())
    }

    // ---- checking ----------------------------------------------------------------------------

    /// Checks the page manager and every segment (free stacks in range, acyclic, of the length
    /// their anchors say; every segment run on its class list exactly once) and counts blocks.
    /// Exact when no participant is in the middle of an allocator step.
    pub fn check(&self) -> Result<HeapStats, Error> {
        let pages = self.pages.check()?;
        let mut st = HeapStats {
            pages,
            ..Default::default()
        };
        let mut listed = Vec::new();
        let mut cached = self.cached_blocks()?;
        cached.sort_unstable();
        let mut cached_found = 0;
        self.for_each_segment(|info| {
            let a = self
                .store()
                .load(info.offset + S_ANCHOR, Ordering::Acquire)?;
            if a_frozen(a) {
                return Err(Error::Corrupt {
                    what: "segment is frozen by a sweep".into(),
                    offset: info.offset,
                });
            }
            let mut seen = vec![false; info.nblocks as usize];
            self.walk_stack(&info, a_head(a), a_count(a), &mut seen)?;
            let parked = self.walk_deferred(&info, &mut seen)?;
            let carve = self
                .store()
                .load(info.offset + S_CARVE, Ordering::Acquire)?;
            if carve > info.nblocks {
                return Err(Error::Corrupt {
                    what: format!("segment carve {carve} exceeds its {} blocks", info.nblocks),
                    offset: info.offset + S_CARVE,
                });
            }
            if let Some(i) = seen
                .iter()
                .enumerate()
                .position(|(i, &s)| s && i as u64 >= carve)
            {
                return Err(Error::Corrupt {
                    what: format!("block {i} is on the free stack but was never carved"),
                    offset: info.offset,
                });
            }
            // Blocks in participants' caches are free, though carved and off the stacks.
            let first = info.offset + SEG_HEADER;
            let end = first + info.nblocks * info.block_size;
            let from = cached.partition_point(|&b| b < first);
            let mut in_cache = 0;
            for &b in cached[from..].iter().take_while(|&&b| b < end) {
                let rel = b - first;
                let i = rel / info.block_size;
                if rel % info.block_size != 0 || i >= carve || seen[i as usize] {
                    return Err(Error::Corrupt {
                        what: "a cached block is not a carved, taken block of its segment".into(),
                        offset: b,
                    });
                }
                seen[i as usize] = true;
                in_cache += 1;
            }
            cached_found += in_cache;
            st.segments += 1;
            let free_carved = a_count(a) + parked + in_cache;
            st.blocks_free += free_carved + info.nblocks - carve;
            st.blocks_allocated += carve - free_carved;
            st.bytes_allocated += (carve - free_carved) * info.block_size;
            listed.push(info.offset);
            Ok(())
        })?;
        if cached_found != cached.len() as u64 {
            return Err(Error::Corrupt {
                what: "a participant's block cache names a block of no segment".into(),
                offset: 0,
            });
        }
        listed.sort_unstable();
        if listed.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Corrupt {
                what: "a segment is on its class list twice".into(),
                offset: 0,
            });
        }
        let mut segment_runs = 0;
        self.pages.for_each_run(|run| {
            match run.kind {
                RUN_SEGMENT => {
                    segment_runs += 1;
                    if listed.binary_search(&run.offset).is_err() {
                        return Err(Error::Corrupt {
                            what: "segment run is on no class list".into(),
                            offset: run.offset,
                        });
                    }
                }
                _ => {
                    st.large_runs += 1;
                    st.bytes_allocated += run.pages * self.geo().page_size;
                }
            }
            Ok(())
        })?;
        if segment_runs != listed.len() {
            return Err(Error::Corrupt {
                what: "class lists name segments the page map does not hold".into(),
                offset: 0,
            });
        }
        Ok(st)
    }

    /// Calls `f(offset, size)` for every allocated block and large run (quiescent use: `check`,
    /// tools, tests).
    pub fn for_each_allocated(&self, mut f: impl FnMut(u64, u64)) -> Result<(), Error> {
        let mut cached = self.cached_blocks()?;
        cached.sort_unstable();
        self.for_each_segment(|info| {
            let a = self
                .store()
                .load(info.offset + S_ANCHOR, Ordering::Acquire)?;
            let mut seen = vec![false; info.nblocks as usize];
            self.walk_stack(&info, a_head(a), a_count(a), &mut seen)?;
            self.walk_deferred(&info, &mut seen)?;
            let carve = self
                .store()
                .load(info.offset + S_CARVE, Ordering::Acquire)?
                .min(info.nblocks);
            for i in 0..carve {
                if !seen[i as usize] && cached.binary_search(&info.block(i)).is_err() {
                    f(info.block(i), info.block_size);
                }
            }
            Ok(())
        })?;
        self.pages.for_each_run(|run| {
            if run.kind != RUN_SEGMENT {
                f(run.offset, run.pages * self.geo().page_size);
            }
            Ok(())
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::region::table::SLOT_WORDS;
    use crate::sync::{MemLiveness, MemWords};

    struct Fixture {
        store: MemWords,
        lock: MemWords,
        live: MemLiveness,
        geo: Geometry,
    }

    impl Fixture {
        fn new(geo: Geometry, capacity: u64) -> Self {
            let live = MemLiveness::new(4);
            for s in 0..4 {
                live.set_alive(s, true);
            }
            let f = Fixture {
                store: MemWords::new(geo.header_bytes, capacity),
                lock: MemWords::new(4 * SLOT_WORDS * 8, 4 * SLOT_WORDS * 8),
                live,
                geo,
            };
            for s in 0..4 {
                f.heap(s).table().activate(s, 1000 + s as u64, 0).unwrap();
            }
            f
        }
        fn heap(&self, me: u32) -> Heap<'_, MemWords, MemLiveness> {
            let table = Table {
                words: &self.lock,
                live: &self.live,
                base: 0,
                slots: 4,
            };
            Heap::new(&self.store, self.geo, table, me)
        }
    }

    /// A tiny deterministic generator (tests must not depend on the rand crate's versions).
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn random_alloc_free_keeps_every_block_distinct_and_accounted() {
        let f = Fixture::new(Geometry::STANDARD, 256 << 20);
        let h = f.heap(0);
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut seed = 0x1234_5678_9abc_def1;
        for step in 0..20_000 {
            if live.len() < 500 && next(&mut seed) % 3 != 0 || live.is_empty() {
                let size = match next(&mut seed) % 10 {
                    0 => 8193 + next(&mut seed) % 100_000,
                    1 => 2048 + next(&mut seed) % 6000,
                    _ => 1 + next(&mut seed) % 512,
                };
                let b = h.alloc(size).unwrap();
                h.settle(0).unwrap();
                assert_eq!(b % 16, 0);
                assert!(h.usable_size(b).unwrap() >= size);
                live.push((b, size));
            } else {
                let i = (next(&mut seed) % live.len() as u64) as usize;
                let (b, _) = live.swap_remove(i);
                h.free(b).unwrap();
            }
            if step % 5000 == 0 {
                h.check().unwrap();
            }
        }
        let mut spans: Vec<(u64, u64)> = live.clone();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "blocks overlap: {:?}", w);
        }
        let st = h.check().unwrap();
        let small = live.iter().filter(|(_, s)| *s <= MAX_SMALL).count() as u64;
        assert_eq!(st.blocks_allocated, small);
        assert_eq!(st.large_runs, live.len() as u64 - small);
        for (b, _) in live {
            h.free(b).unwrap();
        }
        let st = h.check().unwrap();
        assert_eq!(st.blocks_allocated, 0);
        assert_eq!(st.large_runs, 0);
        assert_eq!(
            st.pages.runs, st.segments,
            "only the segments remain, kept by their classes"
        );
    }

    #[test]
    fn huge_runs_span_chunks_and_are_reused() {
        let f = Fixture::new(Geometry::STANDARD, 64 << 20);
        let h = f.heap(0);
        let a = h.alloc(5 << 20).unwrap();
        let st = h.check().unwrap();
        assert_eq!(st.pages.huge_runs, 1);
        h.free(a).unwrap();
        let b = h.alloc(5 << 20).unwrap();
        assert_eq!(a, b, "a freed huge run is found again");
        h.free(b).unwrap();
        let st = h.check().unwrap();
        assert_eq!(st.pages.pages_used, 0);
    }

    #[test]
    fn full_store_is_an_error_not_a_crash() {
        let f = Fixture::new(Geometry::STANDARD, 8 << 20);
        let h = f.heap(0);
        let mut n = 0;
        loop {
            match h.alloc(100_000) {
                Ok(_) => n += 1,
                Err(Error::Access(crate::sync::AccessError::Full { .. })) => break,
                Err(e) => panic!("unexpected {e}"),
            }
            assert!(n < 1000);
        }
        assert!(n > 10);
        h.check().unwrap();
        // Small blocks still come from space that is left.
        h.alloc(16).unwrap();
    }

    #[test]
    fn bad_frees_are_errors() {
        let f = Fixture::new(Geometry::STANDARD, 16 << 20);
        let h = f.heap(0);
        let b = h.alloc(64).unwrap();
        assert!(matches!(h.free(b + 8), Err(Error::BadFree { .. })));
        assert!(matches!(h.free(3), Err(Error::BadFree { .. })));
        assert!(h.free(1 << 40).is_err());
        h.free(b).unwrap();
        h.check().unwrap();
    }

    #[test]
    fn sweep_frees_unreachable_blocks_and_spares_journaled_ones() {
        let f = Fixture::new(Geometry::STANDARD, 16 << 20);
        let h0 = f.heap(0);
        let h1 = f.heap(1);
        let keep = h0.alloc(32).unwrap();
        h0.settle(0).unwrap();
        let garbage = h0.alloc(32).unwrap();
        h0.settle(0).unwrap();
        let held = h1.alloc(32).unwrap(); // journaled by participant 1, not settled
        let freed = h0.sweep(|b| b != keep).unwrap();
        assert_eq!(freed, 1, "only the unjournaled garbage block is freed");
        let st = h0.check().unwrap();
        assert_eq!(st.blocks_allocated, 2);
        // The garbage block is free again (it comes back), the others are not.
        let again = h0.alloc(32).unwrap();
        assert_eq!(again, garbage);
        assert_ne!(again, held);
    }

    #[test]
    fn recovery_of_a_half_created_segment_pushes_it() {
        let f = Fixture::new(Geometry::STANDARD, 16 << 20);
        let h0 = f.heap(0);
        // Participant 0 got a segment run from the page manager and died before pushing it.
        let seg = h0
            .pages
            .alloc(16, RUN_SEGMENT, 3, Some(table::W_SEGMENT_JOURNAL))
            .unwrap();
        f.live.set_alive(0, false);
        let h1 = f.heap(1);
        assert!(h1.check().is_err(), "an unlisted segment run is reported");
        h1.recover_participant(0).unwrap();
        h1.check().unwrap();
        h1.recover_participant(0).unwrap(); // idempotent
        let st = h1.check().unwrap();
        assert_eq!(st.segments, 1);
        let _ = seg;
    }

    #[test]
    fn recovery_clears_a_dead_claim_and_spares_a_live_one() {
        let f = Fixture::new(Geometry::STANDARD, 16 << 20);
        let h0 = f.heap(0);
        let h1 = f.heap(1);
        let a = h0.pages.alloc(3, RUN_LARGE, 0, None).unwrap();
        h0.pages.free(a).unwrap();
        // Simulate a claim that died after its CAS: set the journal and the bits by hand
        // through the public path: claim, then erase the map entry as if never written.
        let (c, p) = f.geo.locate(a).unwrap();
        let jv = (1u64 << 60) | (c << 26) | (p << 13) | 3;
        f.lock
            .store(
                h0.pages.table.word_offset(0, table::W_PAGE_JOURNAL),
                jv,
                Ordering::SeqCst,
            )
            .unwrap();
        let bw = f.geo.meta_of(c) + 8 + 8 * (p / 32);
        let w = f.store.load(bw, Ordering::SeqCst).unwrap();
        f.store
            .store(bw, w | (0b111 << (p % 32)), Ordering::SeqCst)
            .unwrap();
        assert!(h1.check().is_err());
        // While participant 0 lives, its journal protects the pages.
        h1.pages.sweep_unmapped().unwrap();
        assert!(h1.check().is_err());
        f.live.set_alive(0, false);
        h1.recover_participant(0).unwrap();
        let st = h1.check().unwrap();
        assert_eq!(st.pages.pages_used, 0);
    }
}
