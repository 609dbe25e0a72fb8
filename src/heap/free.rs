//! Free: a small block goes to this participant's block cache, or onto its segment's free
//! stack, or, while the segment is being swept, onto its deferred stack; a large block's run
//! goes back to the page manager.
//!
//! Problem. Any participant frees any block (often one that another process allocated), and the
//! offset comes from the caller, so it must be checked: the start of a block of a checked
//! segment, or the start of a large run. A page-map lookup on every free would cost more than
//! the rest of the free, and frees come in runs from one segment.
//!
//! Mechanism. The segments this participant has checked are kept in a process-local index
//! (`known.rs`) that finds a block's segment from its page number, so a free goes through the
//! page map only the first time it meets a page (`free_slow`). A block found there goes to the
//! block cache when it has room, else onto its segment's free stack (`push_free_to`); anything
//! else goes through the page map (`free_to_segment`). A push writes the block's link word (its
//! first word), then CASes the anchor (Release), so a popper that acquires the anchor reads the
//! link. If the anchor is frozen, the push goes to the deferred stack instead, which the sweep
//! drains (`sweep.rs`).
//!
//! API: [`Heap::free`]; [`Heap::free_journaled`] for a block a block journal names (kill-safe
//! where the cache takes it); [`Heap::free_uncached`] for recovery (never into the cache);
//! `push_free` for the thaw of a sweep.

use super::known::Found;
use super::segment::{a_count, a_frozen, a_head, a_tag, anchor, Cached, S_DEFERRED};
use super::{Block, Error, Heap, Run, SegmentInfo, RUN_SEGMENT};
use crate::sync::{Liveness, Ordering, WordStore};

impl<'a, W: WordStore, L: Liveness> Heap<'a, W, L> {
    /// Gives back a block returned by `alloc`. Any participant may free any block.
    pub fn free(&self, block: Block) -> Result<(), Error> {
        let block = block.get();
        match self.known.find(block) {
            Some(f) => self.free_found(block, f),
            None => self.free_slow(block),
        }
    }

    /// Frees `block`, found in a checked segment: into the cache, else onto the segment.
    #[inline]
    fn free_found(&self, block: u64, f: Found) -> Result<(), Error> {
        if self.cache_push(f.class, block)? {
            return Ok(());
        }
        self.push_free_to(&self.known.get(f.seg), f.idx)
    }

    /// A free whose page the index does not know yet: through the page map.
    #[cold]
    fn free_slow(&self, block: u64) -> Result<(), Error> {
        self.free_through_map(block, true)
    }

    /// Frees `block` straight to its segment (or its pages), never into this participant's
    /// block cache. For recovery: a slot being taken over has its cache emptied right after
    /// its dead occupant is recovered, and a block freed into it would be lost to a sweep.
    pub fn free_uncached(&self, block: Block) -> Result<(), Error> {
        self.free_to_segment(block.get())
    }

    /// Frees `block`, which block journal `j` names as taken (an allocation into `j`, or
    /// [`Heap::journal_owned`]) and which nothing links any more, and settles `j`.
    ///
    /// A block this participant's cache takes goes there while the journal still names it: a
    /// recovery believes the cache over the taken bit ([`Heap::taken_by_dead`]) and gives the
    /// block back with the cache, so a kill anywhere in this free leaks nothing. Any other
    /// block (a full cache, an uncached class, a large run) is settled first and freed after:
    /// a kill between the two leaks it to gc, where the other order would let a recovery free
    /// it a second time (FORMAT.md §10.7).
    pub fn free_journaled(&self, j: u64, block: Block) -> Result<(), Error> {
        let b = block.get();
        // The segment found through the page map if this process has not met it yet (a block
        // taken from a cache that a closed participant left in the slot, §6.5, is one).
        let found = match self.known.find(b) {
            Some(f) => Some(f),
            None => self.learn_small(b, &self.pages.run_at(b)?)?,
        };
        if let Some(f) = found {
            if self.cache_push(f.class, b)? {
                return self.settle(j);
            }
        }
        self.settle(j)?;
        self.free(block)
    }

    /// The segment and index of small block `block` in `run`, the run the page map gives for
    /// it (kept in the index); `None` when the run is a large one.
    pub(super) fn learn_small(&self, block: u64, run: &Run) -> Result<Option<Found>, Error> {
        if run.kind != RUN_SEGMENT {
            return Ok(None);
        }
        let seg = self.cache_info(self.segment_of_run(run)?)?;
        let f = self.known.learn(block, seg).ok_or(Error::BadFree {
            offset: block,
            why: "not the start of a block",
        })?;
        Ok(Some(f))
    }

    /// Frees `block` straight to its segment's free stack (or, for a large block, its pages).
    pub(super) fn free_to_segment(&self, block: u64) -> Result<(), Error> {
        match self.known.find(block) {
            Some(f) => self.push_free_to(&self.known.get(f.seg), f.idx),
            None => self.free_through_map(block, false),
        }
    }

    /// Frees `block` after finding it through the page map: a small block (into the cache if
    /// `to_cache` and it has room), its segment learnt by the index; or a large block's run.
    fn free_through_map(&self, block: u64, to_cache: bool) -> Result<(), Error> {
        let run = self.pages.run_at(block)?;
        if let Some(f) = self.learn_small(block, &run)? {
            return if to_cache {
                self.free_found(block, f)
            } else {
                self.push_free_to(&self.known.get(f.seg), f.idx)
            };
        }
        if run.offset.get() != block {
            return Err(Error::BadFree {
                offset: block,
                why: "not the start of a large block",
            });
        }
        self.pages.free(run.offset)
    }

    /// The size class of small block `block`, or `None` for a large block (the start of its
    /// run); `BadFree` for an offset that starts neither.
    pub(super) fn block_class(&self, block: u64) -> Result<Option<usize>, Error> {
        if let Some(f) = self.known.find(block) {
            return Ok(Some(f.class));
        }
        let run = self.pages.run_at(block)?;
        if run.kind == RUN_SEGMENT {
            let seg = self.cache_info(self.segment_of_run(&run)?)?;
            let f = self.known.learn(block, seg).ok_or(Error::BadFree {
                offset: block,
                why: "not the start of a block",
            })?;
            return Ok(Some(f.class));
        }
        if run.offset.get() != block {
            return Err(Error::BadFree {
                offset: block,
                why: "not the start of a large block",
            });
        }
        Ok(None)
    }

    pub(super) fn push_free(&self, info: &SegmentInfo, idx: u64) -> Result<(), Error> {
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

    /// Pushes block `idx` (at `block`) of frozen segment `seg` onto its deferred stack: word
    /// `head:16 | pushes:48` (head = index + 1; the push count changes on every push, so a
    /// stale CAS fails), linked through the blocks' first words like the free stack.
    fn push_deferred(&self, seg: u64, block: u64, idx: u64) -> Result<(), Error> {
        let store = self.store();
        let w = store.word(seg + S_DEFERRED)?;
        let link = store.word(block)?;
        // Acquire, though nothing is read through the head: it only becomes the link below and
        // the CAS's expected value, which the CAS checks.
        let mut d = w.load(Ordering::Acquire);
        loop {
            // The barrier: the change that unlinked the block is on disk before its first word
            // is overwritten (as in `push_free_to`).
            store.barrier()?;
            // Relaxed: published by the Release half of the CAS below.
            link.store(d & 0xffff, Ordering::Relaxed);
            let new = (idx + 1) | (((d >> 16) + 1) << 16);
            // Release: the link (and the block's last uses) before the head that leads to it;
            // pairs with the AcqRel swap in `take_deferred` (sweep.rs), which takes the stack
            // whole, at the next freeze or at the thaw. The barrier: the link on disk first.
            store.barrier()?;
            match w.compare_exchange_weak(d, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => d = actual,
            }
        }
    }
}
