//! Recovery: finishing or undoing what a dead participant left half done, from its journals;
//! and [`Heap::repair`], which finds the same leftovers by a scan when the journals are lost.
//!
//! Problem. A participant killed between two steps leaves every word consistent, but it may
//! leave a segment run not yet on its class list, a segment frozen by its sweep, a page claim
//! or release in flight, and blocks that it held unlinked or in its cache.
//!
//! Mechanism (FORMAT.md §7.10). [`Heap::recover_participant`] reads the dead slot's segment
//! journal first (a segment being created is pushed if it is not listed yet; one being swept
//! is thawed unless a live sweeper holds it now), then its page journal (the page manager's
//! recovery), then clears its block journals (the object layer has settled those that named a
//! block as taken first, [`Heap::taken_by_dead`] and [`Heap::settle_dead`]: only it knows
//! whether the dead participant had linked the block; what is left is not the dead
//! participant's to free), then gives every
//! block of its cache back to its segment (`cache.rs`, `return_dead_cache`). Each step is safe
//! to repeat after a recoverer is killed (a double failure may leak a block to gc, never free
//! one twice), and the whole costs time in proportion to the slot's few words, never a scan
//! of the store. [`Heap::free_for_dead`] is the same careful free for the object layer's part
//! of a recovery (its held set and undo log blocks).
//! [`Heap::repair`] scans instead, for when the lock file and its journals were lost.
//!
//! The caller holds the store's recovery lock (recoveries and repairs run one at a time) and,
//! for `recover_participant`, the dead slot's byte lock.

use super::classes::{CLASS_SIZES, NCLASSES};
use super::segment::{
    a_count, a_frozen, a_head, SJ_CREATE, SJ_OFFSET, SJ_SHIFT, SJ_SWEEP, S_ANCHOR, S_NEXT,
};
use super::{Error, Heap, RUN_SEGMENT, SEG_HEADER};
use crate::region::table;
use crate::sync::{Liveness, Ordering, WordStore};

impl<'a, W: WordStore, L: Liveness> Heap<'a, W, L> {
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
        if t.load(slot, table::W_PAGE_JOURNAL)? != 0 {
            self.pages.recover_journal(slot)?;
            t.store(slot, table::W_PAGE_JOURNAL, 0)?;
        }
        // Block journals: the layer above has settled those that name a block as taken
        // (`settle_dead`, FORMAT.md §10.7) before this runs. What is left names a block not
        // taken yet (free, or another participant's by now), a block freed for the dead by a
        // recoverer that was killed (journal 0), or, without a layer above, a taken block:
        // cleared, never freed, so a block is never freed twice; an unlinked one is gc's.
        for j in 0..table::BLOCK_JOURNALS {
            t.store(slot, table::W_BLOCK_JOURNAL + j, 0)?;
        }
        // Cached blocks are free in the dead participant's eyes and taken in their segments':
        // each goes back to its segment, through block journal 0 (after the clearing above, so
        // that a repeat of this recovery first drops what a killed recoverer left there).
        self.return_dead_cache(slot)
    }

    /// Frees `block` on behalf of dead participant `slot` (whose slot the caller holds
    /// exclusively, under the recovery lock), where `unlink` makes the dead participant's own
    /// record stop naming it (its held chain's head, its undo log word): block journal 0 of the
    /// dead slot names the block from before `unlink` until after the free, so a gc running
    /// meanwhile ([`Heap::named_blocks`]) never takes the block for garbage. Straight to the
    /// segment, never into a cache.
    ///
    /// Killed before `unlink`, the repeat finds the block where it was; killed after it, the
    /// journal is cleared by the repeat without a free (recovery step 3, or this function's
    /// next use) and the block is either free or leaked to gc: never freed twice.
    pub fn free_for_dead(
        &self,
        slot: u32,
        block: super::Block,
        unlink: impl FnOnce() -> Result<(), Error>,
    ) -> Result<(), Error> {
        let t = self.table();
        t.store(slot, table::W_BLOCK_JOURNAL, block.get())?;
        unlink()?;
        self.free_to_segment(block.get())?;
        t.store(slot, table::W_BLOCK_JOURNAL, 0)?;
        Ok(())
    }

    /// The block that block journal `j` of dead participant `slot` names as taken (FORMAT.md
    /// §6.4): the taken bit is set, and the block is not still in that participant's block
    /// cache (a cache pop writes the bit before the count store that takes the block, so a pop
    /// cut short leaves the block cached: free, and given back with the cache). `None` for a
    /// journal that is 0 or names a block without the bit. The caller holds `slot`
    /// exclusively; the offset is checked by whatever frees it.
    pub fn taken_by_dead(&self, slot: u32, j: u64) -> Result<Option<super::Block>, Error> {
        assert!(j < table::BLOCK_JOURNALS);
        let t = self.table();
        let v = t.load(slot, table::W_BLOCK_JOURNAL + j)?;
        if v & table::JOURNAL_TAKEN == 0 {
            return Ok(None);
        }
        let block = v & !table::JOURNAL_TAKEN;
        for k in 0..table::CACHED_CLASSES {
            let base = table::W_CACHE + k * table::CACHE_GROUP;
            let n = t.load(slot, base)?;
            // A count out of range is damage: `return_dead_cache` gives none of its entries
            // back, so they do not make the block free.
            if n >= table::CACHE_GROUP {
                continue;
            }
            for i in 1..=n {
                if t.load(slot, base + i)? == block {
                    return Ok(None);
                }
            }
        }
        Ok(Some(super::Block(block)))
    }

    /// Settles block journal `j` of dead participant `slot`, which names `block` as taken
    /// ([`Heap::taken_by_dead`]): a block the dead participant had `linked` keeps its place
    /// and the journal is cleared; any other is freed through [`Heap::free_for_dead`], whose
    /// `unlink` step is this journal's clearing (for journal 0, the plain offset that
    /// `free_for_dead` writes over the taken one). Killed after the clearing and before the
    /// free, the repeat finds journal 0 naming the block without the bit and clears it: a
    /// leak, never a second free.
    pub fn settle_dead(
        &self,
        slot: u32,
        j: u64,
        block: super::Block,
        linked: bool,
    ) -> Result<(), Error> {
        assert!(j < table::BLOCK_JOURNALS);
        let t = self.table();
        let word = table::W_BLOCK_JOURNAL + j;
        if linked {
            return t.store(slot, word, 0).map_err(Error::from);
        }
        match self.free_for_dead(slot, block, || {
            if j != 0 {
                t.store(slot, word, 0)?;
            }
            Ok(())
        }) {
            // A journal that names no block (a damaged or forged lock file): dropped.
            Err(Error::BadFree { .. }) => {
                t.store(slot, word, 0)?;
                t.store(slot, table::W_BLOCK_JOURNAL, 0)?;
                Ok(())
            }
            r => r,
        }
    }

    /// A segment run that a dead participant was creating: if it is not on its class list yet,
    /// nobody has seen it, so write its header afresh and push it.
    fn recover_create(&self, seg: u64) -> Result<(), Error> {
        // The claim may not have reached the map (the page journal's recovery then gives the
        // pages back): then there is no segment here and nothing to do.
        let run = match self.pages.run_at(seg) {
            Ok(run) if run.kind == RUN_SEGMENT && run.offset.get() == seg => run,
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

    /// Repairs what dead participants left in flight when their journals are lost (the lock
    /// file was deleted while nobody was attached): page-level leftovers (see
    /// [`PageManager::sweep_unmapped`](super::PageManager::sweep_unmapped)), segment runs that
    /// never reached their class list, and segments left frozen by a dead sweeper. Safe while
    /// others allocate; what it cannot attribute to a live participant's journal it treats as a
    /// dead one's. The caller holds the store's recovery lock.
    pub fn repair(&self) -> Result<(), Error> {
        self.pages.sweep_unmapped()?;
        // Read order matters: runs, then journals, then (in `recover_create`) the class list.
        // A creator names its run in its segment journal before the run's start entry exists
        // and clears the journal only after the push, so a run seen here is either named by a
        // journal read afterwards or already on the list when the list is read.
        let mut runs = Vec::new();
        self.pages.for_each_run(|run| {
            if run.kind == RUN_SEGMENT {
                runs.push(run.offset.get());
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
}
