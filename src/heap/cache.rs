//! The block cache: a few freed small blocks per class, kept in this participant's slot of the
//! lock file, so that a free followed by an allocation of the same class costs no atomic
//! read-modify-write.
//!
//! Problem. A segment's anchor is a word that every participant CASes. A cache in process
//! memory would avoid that, but it would hide free blocks from the other processes' sweeps, and
//! a killed process would take it along with no record of the blocks it held.
//!
//! Mechanism (FORMAT.md §6.5). The cache lives in the participant's slot (`table::W_CACHE`: per
//! class below `CACHED_CLASSES`, a count and `CACHE_GROUP - 1` = 13 entries). Only the slot's owner
//! writes it, one thread at a time, so plain stores do: an entry is written, then the count
//! (Release). A pop writes the block journal before it lowers the count, and a reader in
//! another process reads a participant's cache before its journals, so a block on its way from
//! one to the other is seen in one or the other. A cached block is free, but its segment counts
//! it taken (it is on none of the segment's stacks): sweeps spare it and `check` counts it
//! free. A count out of range is never trusted.
//!
//! The cache belongs to the slot, not to the process: a clean detach leaves it there, and the
//! next participant that attaches to the slot takes it over, so a close moves no block (a block
//! on its way from a cache to a segment is named nowhere, and a kill there would lose it). The
//! attacher checks what it takes over first ([`Heap::vet_cache`]).
//! Sweeps and `check` read free slots' caches as they read live participants'. A dead
//! participant's cache is given back by its recovery (`return_dead_cache`): each block moves
//! from the cache to a block journal of the dead slot, then to its segment, then leaves the
//! journal, so that at every instant it is named somewhere a gc looks, or free.
//!
//! API: `cache_pop` (allocation), `cache_push` (free), [`Heap::vet_cache`] (at attach),
//! [`Heap::flush_cache`] (empties this participant's cache onto the segments),
//! `return_dead_cache` (recovery), `cached_blocks` and `push_cached` (for sweeps and `check`).

use super::{Error, Heap};
use crate::region::table;
use crate::sync::{AtomicU64, Liveness, Ordering, WordStore};

impl<'a, W: WordStore, L: Liveness> Heap<'a, W, L> {
    /// The cache words of class `k` (< CACHED_CLASSES) of this participant.
    #[inline]
    fn cache_words(
        &self,
        k: usize,
    ) -> Result<&[&'a AtomicU64; table::CACHE_GROUP as usize], Error> {
        match self.cache[k].get() {
            Some(w) => Ok(w),
            None => self.resolve_cache_words(k),
        }
    }

    #[cold]
    fn resolve_cache_words(
        &self,
        k: usize,
    ) -> Result<&[&'a AtomicU64; table::CACHE_GROUP as usize], Error> {
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
    /// blocks in its cache has them given back by its recovery (`return_dead_cache`).
    #[inline]
    pub(super) fn cache_pop(&self, k: usize, journal: &'a AtomicU64) -> Result<Option<u64>, Error> {
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
        if !self.is_block_offset(block) {
            return Err(Error::Corrupt {
                what: format!("block cache of class {k} names offset {block:#x}"),
                offset: block,
            });
        }
        self.store().step()?;
        // Taken at once (FORMAT.md §6.4): the count store below is the step that takes the
        // block, and until it happens the block is still in the cache, which a recovery
        // checks before it believes the bit (`Heap::taken_by_dead`). Relaxed: as the entry.
        journal.store(block | table::JOURNAL_TAKEN, Ordering::Relaxed);
        // Release: the journal store is visible before the block leaves the count.
        self.store().step()?;
        w[0].store(n - 1, Ordering::Release);
        Ok(Some(block))
    }

    /// Puts a freed block of class `k` into this participant's cache; `false` when it is full.
    #[inline]
    pub(super) fn cache_push(&self, k: usize, block: u64) -> Result<bool, Error> {
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

    /// Gives every block in this participant's cache back to its segment (for tests and
    /// models that need the cache empty: a clean detach leaves the cache to the slot, and a
    /// dead participant's is given back by its recovery, `return_dead_cache`). A kill between
    /// a block's count store and its push leaks that block to gc.
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

    /// Recovery step 4 (FORMAT.md §7.10): gives every block in dead participant `slot`'s cache
    /// back to its segment. The caller holds the slot exclusively (its liveness byte) and has
    /// cleared its block journals (step 3).
    ///
    /// Each block, top of the stack first, goes through four steps, every one a single store
    /// or the segment push's CAS:
    ///
    /// 1. block journal 0 of the dead slot ← the block (it is named twice now);
    /// 2. the count drops past it (it is named by the journal only);
    /// 3. it is pushed onto its segment (free; still named);
    /// 4. block journal 0 ← 0.
    ///
    /// A recoverer killed anywhere in there is followed by another that runs step 3 of
    /// recovery (which clears the journal without freeing what it names) and then this again:
    /// killed before step 2, the block is still cached and goes back once; killed after it,
    /// the block is named by nobody and is either free already or allocated and unreachable (a
    /// leak that the object layer's gc frees). So no block is ever freed twice, and one block
    /// at most is lost, only to a second failure.
    ///
    /// The journal is what keeps a concurrent gc from freeing the block too: a gc reads every
    /// attached slot's cache and then its journals ([`Heap::named_blocks`]) before it walks
    /// the allocated blocks, and spares what they name, so it sees the block cached, journaled,
    /// or (journal cleared after the push) free.
    pub(super) fn return_dead_cache(&self, slot: u32) -> Result<(), Error> {
        let t = self.table();
        let journal = table::W_BLOCK_JOURNAL;
        for k in 0..table::CACHED_CLASSES {
            let base = table::W_CACHE + k * table::CACHE_GROUP;
            loop {
                // SeqCst loads and stores (`Table`): the order of steps 1, 2 and 4 is what a
                // gc in another process reads in reverse (cache, then journals).
                let n = t.load(slot, base)?;
                if n == 0 {
                    break;
                }
                if n >= table::CACHE_GROUP {
                    // A count nobody wrote (damage): its entries are not trusted, so nothing
                    // is freed; whatever they named is garbage for gc.
                    t.store(slot, base, 0)?;
                    break;
                }
                let block = t.load(slot, base + n)?;
                t.store(slot, journal, block)?;
                t.store(slot, base, n - 1)?;
                match self.free_to_segment(block) {
                    // An entry that starts no block (damage): dropped, never freed.
                    Ok(()) | Err(Error::BadFree { .. }) => {}
                    Err(e) => return Err(e),
                }
                t.store(slot, journal, 0)?;
            }
        }
        Ok(())
    }

    /// Whether dead participant `slot`'s block cache tells that `block` has been freed
    /// (FORMAT.md §10.7 step 1, the entry a dead owner's release cursor had just passed):
    /// `Some(true)` when the cache holds it; `Some(false)` when its class is cached and the
    /// cache of that class has room but does not hold it, so a free of it by that participant
    /// (`Heap::free`: into its cache when there is room) or by its recoverer
    /// ([`Heap::free_into_dead_cache`]) has not happened, the cache's counts only growing
    /// until the recovery gives the cache back; `None` when the cache cannot tell (a large
    /// block or an uncached class, a full cache or a count out of range: the free may have gone
    /// to the segment). The caller holds `slot` exclusively.
    pub fn dead_cache_holds(&self, slot: u32, block: super::Block) -> Result<Option<bool>, Error> {
        let Some(k) = self.block_class(block.get())? else {
            return Ok(None);
        };
        if k as u64 >= table::CACHED_CLASSES {
            return Ok(None);
        }
        let t = self.table();
        let base = table::W_CACHE + k as u64 * table::CACHE_GROUP;
        let n = t.load(slot, base)?;
        if n >= table::CACHE_GROUP {
            return Ok(None);
        }
        for i in 1..=n {
            if t.load(slot, base + i)? == block.get() {
                return Ok(Some(true));
            }
        }
        // Full: the free may have found it full and gone to the segment.
        Ok((n + 1 < table::CACHE_GROUP).then_some(false))
    }

    /// Frees `block` on behalf of dead participant `slot` as it would have freed it itself: into
    /// its block cache when the block's class is cached and that cache has room (entry, then
    /// count), else straight to its segment. The recovery gives the cache back afterwards
    /// (`return_dead_cache`). So [`Heap::dead_cache_holds`] tells whether this free happened as
    /// it tells for the participant's own. The caller holds `slot` exclusively.
    pub fn free_into_dead_cache(&self, slot: u32, block: super::Block) -> Result<(), Error> {
        if let Some(k) = self.block_class(block.get())? {
            if (k as u64) < table::CACHED_CLASSES {
                let t = self.table();
                let base = table::W_CACHE + k as u64 * table::CACHE_GROUP;
                let n = t.load(slot, base)?;
                if n + 1 < table::CACHE_GROUP {
                    // SeqCst (`Table`): a gc in another process reads the count, then the
                    // entries (`named_blocks`).
                    t.store(slot, base + n + 1, block.get())?;
                    t.store(slot, base, n + 1)?;
                    return Ok(());
                }
            }
        }
        self.free_to_segment(block.get())
    }

    /// Checks the cache this participant took over with its slot (a clean close leaves it
    /// there, FORMAT.md §6.5) before it hands out any of it: every entry must start a block of
    /// a segment of its class, and no block may be named twice. A class that fails is emptied
    /// and its blocks left to gc: a damaged lock file must not make this process hand out a
    /// block of the wrong size, or one block twice. Returns how many classes were emptied.
    pub fn vet_cache(&self) -> Result<u32, Error> {
        let mut seen = Vec::new();
        let mut emptied = 0;
        for k in 0..table::CACHED_CLASSES as usize {
            let w = self.cache_words(k)?;
            // Relaxed: our own slot, not yet used by this participant.
            let n = w[0].load(Ordering::Relaxed);
            let sound = n < table::CACHE_GROUP
                && w[1..=n as usize].iter().all(|entry| {
                    let b = entry.load(Ordering::Relaxed);
                    let fresh = !seen.contains(&b);
                    seen.push(b);
                    fresh && self.starts_block_of_class(b, k)
                });
            if !sound {
                w[0].store(0, Ordering::Release);
                emptied += 1;
            }
        }
        Ok(emptied)
    }

    /// Whether `b` is the start of a block of a segment of size class `k` (any error: no).
    fn starts_block_of_class(&self, b: u64, k: usize) -> bool {
        if !self.is_block_offset(b) {
            return false;
        }
        let Ok(run) = self.pages.run_at(b) else {
            return false;
        };
        matches!(self.learn_small(b, &run), Ok(Some(f)) if f.class == k)
    }

    /// Whether a cache entry `b` may name a block at all: 16-aligned, past the header, inside
    /// the store.
    fn is_block_offset(&self, b: u64) -> bool {
        b % 16 == 0 && b >= self.geo().header_bytes && self.store().word(b).is_ok()
    }

    /// The blocks in the caches of live participants and of free slots (free, though their
    /// segments count them taken). A dead participant's cache is its recovery's: it is being
    /// given back to the segments, and counted there.
    pub(super) fn cached_blocks(&self) -> Result<Vec<u64>, Error> {
        let t = self.table();
        let mut v = Vec::new();
        for slot in 0..t.slots {
            if t.status(slot)? != table::STATUS_ATTACHED || t.live.is_alive(slot) {
                self.push_cached(slot, &mut v, true)?;
            }
        }
        Ok(v)
    }

    /// Appends the blocks in participant `slot`'s cache to `v`. A count out of range is an
    /// error when `strict`, else clamped (a sweep protects what it can read).
    pub(super) fn push_cached(
        &self,
        slot: u32,
        v: &mut Vec<u64>,
        strict: bool,
    ) -> Result<(), Error> {
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
}
