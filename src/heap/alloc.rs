//! Allocation: small blocks from segments, large blocks as runs of pages, and the block
//! journals that keep a block safe from sweeps from before it is taken until its caller has
//! linked it somewhere.
//!
//! Problem. Many participants allocate at once, from the same classes and the same segments;
//! any of them may be killed at any instruction; and a sweep in another process must never
//! free a block that a live participant has taken but not linked yet.
//!
//! Mechanism. A small request tries, in order: this participant's block cache (`cache.rs`, no
//! read-modify-write), its current segment, then (`alloc_slow`) the class's shared hint, a walk
//! of the class list for a segment with a fair share of free blocks that no other live
//! participant uses, a new segment, and last, when the store cannot grow, any segment with a
//! free block. Within a segment, `alloc_from` pops the free stack by a tagged CAS on the
//! anchor, or carves a block never used before by a CAS on the carve counter. Before either
//! CAS it stores the block's offset in one of the participant's block journals; the CAS
//! (AcqRel) publishes that store, so a sweep whose freeze CAS comes after the pop sees the
//! journal. The journal keeps the offset until [`Heap::settle`]. The `S_USER` marks that
//! spread participants over segments are hints: any value is safe. A large request is a run of
//! pages from the page manager, handed off into the block journal.
//!
//! Invariant: from before the step that takes a block until `settle`, the block is named by a
//! journal of its live taker (or, for a block popped from the cache, by the cache and then the
//! journal), so a sweep spares it; after a kill it is allocated and unreachable, which is what
//! a sweep frees.
//!
//! API: [`Heap::alloc`], [`Heap::alloc_into`], [`Heap::settle`].

use super::classes::{class_of, segment_bytes, MAX_SMALL};
use super::segment::{a_count, a_frozen, a_head, a_tag, anchor, Cached, S_NEXT, S_USER};
use super::{Block, Error, Heap, SegmentInfo, RUN_LARGE, SEG_HEADER};
use crate::region::table;
use crate::sync::{AtomicU64, Liveness, Ordering, WordStore};

impl<'a, W: WordStore, L: Liveness> Heap<'a, W, L> {
    /// Allocates `size` bytes (16-aligned), recording the block in block journal 0 until
    /// [`Heap::settle`]. Use [`Heap::alloc_into`] to keep several unlinked blocks at once.
    pub fn alloc(&self, size: u64) -> Result<Block, Error> {
        self.alloc_into(size, 0)
    }

    /// Allocates `size` bytes, recording the block in block journal `j` (0..6) of this
    /// participant until [`Heap::settle`]`(j)`.
    pub fn alloc_into(&self, size: u64, j: u64) -> Result<Block, Error> {
        assert!(
            j < table::BLOCK_JOURNALS,
            "block journal {j} does not exist"
        );
        let jword = table::W_BLOCK_JOURNAL + j;
        if size > MAX_SMALL {
            return self.alloc_large(size, jword);
        }
        let k = class_of(size.max(1));
        let journal = self.journal(jword)?;
        // 0. This participant's cache of freed blocks (no atomic read-modify-write). A cached
        // block is allocated as far as the store file knows: no barrier.
        if let Some(b) = self.cache_pop(k, journal)? {
            return Ok(Block(b));
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
        Ok(Block(b))
    }

    /// A request above `MAX_SMALL`: a run of pages of its own (a huge run if more than a chunk),
    /// handed off by the page manager into block journal word `jword`.
    fn alloc_large(&self, size: u64, jword: u64) -> Result<Block, Error> {
        let pages = size.div_ceil(self.geo().page_size);
        if pages
            .checked_mul(self.geo().page_size)
            .is_none_or(|b| b > self.store().max_size())
        {
            return Err(Error::TooLarge { bytes: size });
        }
        let run = self.pages.alloc(pages, RUN_LARGE, 0, Some(jword))?;
        // The run exists (its start entry or huge head is written): ours.
        self.mark_taken(self.journal(jword)?, run.get())?;
        self.store().barrier()?;
        Ok(Block::from(run))
    }

    /// Steps 2 to 5 of a small allocation, when this participant's cache and current segment
    /// have no block: the segment that serves it becomes the current one of class `k`.
    #[cold]
    fn alloc_slow(&self, k: usize, journal: &'a AtomicU64) -> Result<u64, Error> {
        let class_hint = self.geo().class_words(k) + 8;
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
            if let Some(b) = self.alloc_from_list(k, pass == 0, me, journal)? {
                return Ok(b);
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

    /// One walk of class `k`'s list: allocates from the first unfrozen segment with a free
    /// block (with `fair`, step 3: a fair share of free blocks and no other live participant's
    /// mark; without, step 5: any free block), adopts it and makes it the class hint. `None`:
    /// no segment on the list served.
    fn alloc_from_list(
        &self,
        k: usize,
        fair: bool,
        me: u64,
        journal: &'a AtomicU64,
    ) -> Result<Option<u64>, Error> {
        let class_head = self.geo().class_words(k);
        let class_hint = class_head + 8;
        let mut seg = self.store().load(class_head, Ordering::Acquire)?;
        let mut steps = 0u64;
        while seg != 0 {
            let cached = self.class_segment(seg, k)?;
            let info = cached.info;
            let a = cached.anchor.load(Ordering::Acquire);
            let carve = cached.carve.load(Ordering::Acquire).min(info.nblocks);
            let free = a_count(a) + info.nblocks - carve;
            let usable = if fair {
                free >= (info.nblocks / 8).max(1) && !self.used_by_other(&cached, me)?
            } else {
                free >= 1
            };
            if !a_frozen(a) && usable {
                if let Some(b) = self.alloc_from(&cached, journal)? {
                    self.adopt(k, cached, me)?;
                    self.store().store(class_hint, seg, Ordering::Release)?;
                    return Ok(Some(b));
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
        Ok(None)
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
                Ok(_) => return self.mark_taken(journal, block).map(Some),
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
                Ok(_) => return self.mark_taken(journal, block).map(Some),
                Err(actual) => c = actual,
            }
        }
        Ok(None)
    }

    /// Block journal word `jword` of this participant.
    #[inline]
    fn journal(&self, jword: u64) -> Result<&'a AtomicU64, Error> {
        let j = (jword - table::W_BLOCK_JOURNAL) as usize;
        match self.journals[j].get() {
            Some(w) => Ok(w),
            None => self.resolve_journal(j, jword),
        }
    }

    #[cold]
    fn resolve_journal(&self, j: usize, jword: u64) -> Result<&'a AtomicU64, Error> {
        let t = self.table();
        let w = t.words.word(t.word_offset(self.me(), jword))?;
        self.journals[j].set(Some(w));
        Ok(w)
    }

    /// After the step that took `block` (a pop or carve CAS that succeeded, a large run's start
    /// entry): its journal gets the taken bit, so a recovery of this participant knows the
    /// block is its own (FORMAT.md §6.4). A kill between that step and this store leaves the
    /// block taken and unmarked: allocated, named by no one once the journal is cleared, a
    /// leak for gc (never a double free).
    #[inline]
    fn mark_taken(&self, journal: &'a AtomicU64, block: u64) -> Result<u64, Error> {
        self.store().step()?;
        // Relaxed: only the recoverer of this participant reads the bit, after its death,
        // which orders every store it made (the kernel drops the liveness lock; the recoverer
        // takes it). Sweeps mask the bit, and the block's offset was published by the CAS.
        journal.store(block | table::JOURNAL_TAKEN, Ordering::Relaxed);
        Ok(block)
    }

    /// Names `block`, which this participant owns (allocated, and linked only by a word that
    /// it is about to move off it), as taken in block journal `j` until [`Heap::settle`]`(j)`:
    /// a recovery of this participant then frees it if that word no longer links it. The
    /// caller settles the journal before it frees the block (a kill inside that free then
    /// leaks the block to gc; the other order would let a recovery free it a second time).
    pub fn journal_owned(&self, j: u64, block: Block) -> Result<(), Error> {
        assert!(j < table::BLOCK_JOURNALS);
        self.store().step()?;
        // Relaxed: as in `mark_taken`; the block is allocated, so sweeps spare it anyway.
        self.journal(table::W_BLOCK_JOURNAL + j)?
            .store(block.get() | table::JOURNAL_TAKEN, Ordering::Relaxed);
        Ok(())
    }

    /// Declares block journal `j` settled: the block it named is now linked (or freed).
    pub fn settle(&self, j: u64) -> Result<(), Error> {
        assert!(j < table::BLOCK_JOURNALS);
        // A kill point (loom): a participant may die between its link and this store.
        self.store().step()?;
        // Release: the linking stores happen before a sweep can see the block unjournaled.
        self.journal(table::W_BLOCK_JOURNAL + j)?
            .store(0, Ordering::Release);
        Ok(())
    }
}
