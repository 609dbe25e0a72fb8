//! Sweeping: freeing the blocks and large runs that the object layer's mark calls garbage,
//! while other participants keep allocating and freeing.
//!
//! Problem. A participant killed while it held blocks it had not linked anywhere leaves them
//! allocated and unreachable, and only the object layer's mark-and-sweep knows which blocks are
//! unreachable. A sweep must free those without stopping allocation, and never free a block
//! that a live participant holds unlinked.
//!
//! Mechanism (FORMAT.md §7.9). The sweeper names the segment in its segment journal
//! (`SJ_SWEEP`), then *freezes* it: a CAS sets the anchor's frozen bit, after which pops skip
//! the segment and pushes go to its deferred stack, so its free stack holds still. It takes the
//! deferred stack onto a private copy of the free stack, reads the carve counter, then every
//! slot's cache and journals: an attached participant's, a dead one's too, and a free slot's,
//! whose cache a clean close left for the slot's next participant ([`Heap::named_blocks`]),
//! and adds to its copy each carved block on neither stack, named by no slot, and called
//! garbage.
//! A dead participant's named blocks are its recovery's to give back: a participant that took
//! a block after the caller's own read of the names and died before linking it is covered. One
//! CAS from the frozen anchor (`thaw`) publishes the copy and unfreezes; frees deferred
//! meanwhile are pushed after it. A freeze whose sweeper died (no live journal names it) is
//! thawed by whoever finds it: the next sweeper, recovery or `repair`.
//!
//! Invariant: a block that a live participant holds is never freed. A pop that completed
//! before the freeze released its journal store with its CAS, which the freeze CAS acquires; a
//! cache pop writes the journal before it lowers the count, and the sweep reads the cache
//! first. The caller's side of the contract is on [`Heap::sweep_segment`].
//!
//! The caller's garbage must also spare what dead participants' slots still name
//! ([`Heap::named_blocks`]): their recoveries free those blocks without the writer lock.
//!
//! API: [`Heap::sweep`], [`Heap::sweep_segment`], [`Heap::sweep_large`],
//! [`Heap::journaled_blocks`], [`Heap::named_blocks`].

use super::segment::{
    a_count, a_frozen, a_head, a_tag, anchor, SJ_SHIFT, SJ_SWEEP, S_ANCHOR, S_CARVE, S_DEFERRED,
};
use super::{Block, Error, Heap, SegmentInfo, RUN_SEGMENT};
use crate::region::table;
use crate::sync::{Liveness, Ordering, WordStore};

impl<'a, W: WordStore, L: Liveness> Heap<'a, W, L> {
    /// The blocks that live participants hold without having linked them, and those that free
    /// slots keep for their next participant: those in their caches and those named by their
    /// block journals. For each slot the cache is read before the journals, the reverse of the
    /// order in which `cache_pop` moves a block from one to the other, so a block on its way is
    /// seen in one place or the other.
    pub fn journaled_blocks(&self) -> Result<Vec<Block>, Error> {
        self.blocks_named_by_slots(false)
    }

    /// Every block that a slot names, its participant alive or dead, or the slot free: the
    /// entries of its block cache, then its block journals (the order of
    /// [`Heap::journaled_blocks`]). A dead participant's slot names them until its recovery has
    /// given them back (`return_dead_cache`, [`Heap::free_for_dead`]), so a gc that reads this
    /// before it walks the allocated blocks, and spares what it names, never frees a block that
    /// a recovery running meanwhile frees too (FORMAT.md §7.10).
    pub fn named_blocks(&self) -> Result<Vec<Block>, Error> {
        self.blocks_named_by_slots(true)
    }

    /// The cache entries, then the block journals, of every slot: free ones (a clean detach
    /// leaves its cache to the slot's next participant, FORMAT.md §6.5) and attached ones (live
    /// ones only, unless `dead_too`). A free slot's journals are read too, though they are 0
    /// while it is free: a participant may attach to it after its status was read here and pop
    /// a block from the cache it takes over, and that block leaves the count only once the
    /// journal names it, so a read of the cache, then of the journals, sees it in one or the
    /// other.
    fn blocks_named_by_slots(&self, dead_too: bool) -> Result<Vec<Block>, Error> {
        let t = self.table();
        let mut v = Vec::new();
        for slot in 0..t.slots {
            if t.status(slot)? == table::STATUS_ATTACHED && !(dead_too || t.live.is_alive(slot)) {
                continue;
            }
            self.push_cached(slot, &mut v, false)?;
            for j in 0..table::BLOCK_JOURNALS {
                // The taken bit is no part of the offset.
                let b = t.load(slot, table::W_BLOCK_JOURNAL + j)? & !table::JOURNAL_TAKEN;
                if b != 0 {
                    v.push(b);
                }
            }
        }
        Ok(v.into_iter().map(Block).collect())
    }

    /// Sweeps one segment while others keep allocating and freeing: freezes it, frees every
    /// carved block that is not on its free stack, not named by a slot's cache or journals
    /// ([`Heap::named_blocks`]), and for which `is_garbage` says yes, then
    /// unfreezes it. Returns the number of blocks freed.
    ///
    /// Contract for `is_garbage`: it answers yes only for a block that nobody can reach and
    /// nobody will free, and that cannot become reachable during the sweep (the object layer
    /// marks, then sweeps, holding its writer lock so nothing is linked meanwhile).
    pub fn sweep_segment(
        &self,
        seg: u64,
        mut is_garbage: impl FnMut(Block) -> bool,
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
        // Every attached slot's, a dead one's too: a participant that took a block after the
        // caller read `named_blocks` and then died holds it named only by its own journal,
        // and its recovery frees it (a block taken outside the gate: a held-set block grown
        // by a read, an undo log's first block).
        let mut journaled = self.named_blocks()?;
        journaled.sort_unstable();
        let mut freed = 0;
        for i in 0..carve {
            let b = info.block(i);
            if free[i as usize]
                || journaled.binary_search(&Block(b)).is_ok()
                || !is_garbage(Block(b))
            {
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
    pub(super) fn sweep_is_live(&self, seg: u64) -> Result<bool, Error> {
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
    pub(super) fn thaw(
        &self,
        info: &SegmentInfo,
        frozen: u64,
        head: u64,
        count: u64,
    ) -> Result<(), Error> {
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

    /// Frees every large or huge run that no attached participant journals (a dead one's
    /// included) and for which `is_garbage` says yes (same contract as
    /// [`Heap::sweep_segment`]). Returns the count.
    pub fn sweep_large(&self, mut is_garbage: impl FnMut(Block) -> bool) -> Result<u64, Error> {
        // Runs first, journals second: an allocator names its run in a journal before the run
        // exists in the map, so a run seen here unjournaled was not being handed out.
        let mut candidates = Vec::new();
        self.pages.for_each_run(|run| {
            if run.kind != RUN_SEGMENT {
                candidates.push(run.offset);
            }
            Ok(())
        })?;
        // As in `sweep_segment`: a dead participant's journals are spared too.
        let mut journaled = self.named_blocks()?;
        journaled.sort_unstable();
        let victims: Vec<_> = candidates
            .into_iter()
            .filter(|&run| {
                let b = Block::from(run);
                journaled.binary_search(&b).is_err() && is_garbage(b)
            })
            .collect();
        for &run in &victims {
            self.pages.free(run)?;
        }
        Ok(victims.len() as u64)
    }

    /// Sweeps every segment and every large run (see [`Heap::sweep_segment`]).
    pub fn sweep(&self, mut is_garbage: impl FnMut(Block) -> bool) -> Result<u64, Error> {
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
}
