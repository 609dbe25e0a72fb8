//! Recovery of page steps: finishing or undoing the step a dead participant's page journal
//! names, and the sweep that returns stray claims when the journals themselves are lost.
//!
//! Invariants:
//! - Only pages that are claimed in a normal chunk, covered by no run and named by no live
//!   participant's page journal are taken back; and they are taken back by a CAS that expects
//!   the exact tagged bitmap word read first, so a claim that raced in is never undone.
//! - A sweep reads the bitmap word first, the journals second and the map third. A claimer
//!   writes its journal, then the bitmap, then the map, so a sweep that sees its claim sees its
//!   journal or its map entries (FORMAT.md §7.10).
//! - A huge release is finished only while its head still says releasing; tails of a huge claim
//!   are reset only when its head chunk is still normal and no live journal names a huge step
//!   over those chunks.
//! - Every step is idempotent: a recoverer killed midway is followed by another.

use super::words::{BitmapWord, ChunkKind, JournalWord};
use super::{corrupt, Error, PageManager};
use crate::region::table;
use crate::sync::{Liveness, Ordering, WordStore};

impl<W: WordStore, L: Liveness> PageManager<'_, W, L> {
    /// Finishes or undoes the page step that dead participant `slot` left in its page journal.
    /// The caller holds that slot exclusively (its byte lock). A journal that names pages or
    /// chunks outside the store is `Corrupt`, reported at the journal word's offset in the lock
    /// file.
    pub fn recover_journal(&self, slot: u32) -> Result<(), Error> {
        let value = self.table.load(slot, table::W_PAGE_JOURNAL)?;
        let at = self.table.word_offset(slot, table::W_PAGE_JOURNAL);
        match JournalWord::from_word(value) {
            None => Ok(()),
            Some(
                JournalWord::Claim { chunk, first, n } | JournalWord::Release { chunk, first, n },
            ) => {
                if chunk >= self.chunk_count()? || first + n > self.geo.chunk_pages || n == 0 {
                    return corrupt("page journal names pages outside the store", at);
                }
                self.sweep_unmapped_range(chunk, first, n)
            }
            Some(JournalWord::HugeClaim { head, chunks }) => {
                self.recover_huge(true, head, chunks, at)
            }
            Some(JournalWord::HugeRelease { head, chunks }) => {
                self.recover_huge(false, head, chunks, at)
            }
        }
    }

    /// Recovery of a huge claim (`claim`) or release of `n` chunks from chunk `chunk` on, as
    /// named by the journal word at `at` (for the error).
    fn recover_huge(&self, claim: bool, chunk: u64, n: u64, at: u64) -> Result<(), Error> {
        if n == 0 || chunk + n > self.chunk_count()? {
            return corrupt("page journal names chunks outside the store", at);
        }
        let kind = self.load_kind(chunk)?;
        if !claim && kind == Ok(ChunkKind::HugeReleasing { chunks: n }) {
            // The release had started and nobody can have taken the chunks since.
            return self.finish_release(chunk, n);
        }
        if claim && kind == Ok(ChunkKind::Normal) && !self.huge_journaled(chunk, n)? {
            // A claim that did not complete (no head was written at `chunk`, and no
            // live participant is claiming there): the tails pointing back to
            // `chunk` are the dead claimer's.
            for k in 1..n {
                if self.load_kind(chunk + k)? == Ok(ChunkKind::HugeTail { back: k }) {
                    self.store.barrier()?;
                    self.store.store(
                        self.kind_word(chunk + k)?,
                        ChunkKind::Normal.to_word(),
                        Ordering::SeqCst,
                    )?;
                }
            }
        }
        // Whatever else happened (a completed claim is the dead participant's run,
        // left for a sweep; a release that had not begun leaves the run allocated; a
        // finished one may have been reused), only pages that are claimed in normal
        // chunks, covered by no run and named by no live journal are taken back.
        for k in 0..n {
            self.sweep_unmapped_range(chunk + k, 0, self.geo.chunk_pages)?;
        }
        Ok(())
    }

    /// Pages `first..first+n` of normal chunk `c` that are claimed, covered by no run and named
    /// by no live participant's journal are in flight for a dead participant: clear them.
    ///
    /// Order matters: bitmap word first, journals second, map third. A claimer writes its
    /// journal, then CASes the bitmap, then the map, then clears the journal, so seeing the
    /// claim implies seeing either its journal or its map entries. The final CAS expects the
    /// exact (tagged) word read first, so a claim that raced in after our read is never undone.
    pub fn sweep_unmapped_range(&self, c: u64, first: u64, n: u64) -> Result<(), Error> {
        if self.load_kind(c)? != Ok(ChunkKind::Normal) {
            return Ok(());
        }
        let mut i = first / 32;
        while i * 32 < first + n {
            'retry: loop {
                let off = self.bitmap_word(c, i)?;
                let cur = self.store.load(off, Ordering::SeqCst)?;
                let claimed = BitmapWord::claimed_of(cur);
                let mut candidates = 0u32;
                for b in 0..32 {
                    let p = i * 32 + b;
                    if p >= first && p < first + n && claimed & (1 << b) != 0 {
                        candidates |= 1 << b;
                    }
                }
                if candidates == 0 {
                    break;
                }
                let journaled = self.journaled_pages(c, i)?;
                let mut stray = 0u32;
                for b in 0..32 {
                    if candidates & journaled & (1 << b) == 0
                        && candidates & (1 << b) != 0
                        && !self.covered(c, i * 32 + b)?
                    {
                        stray |= 1 << b;
                    }
                }
                if stray == 0 {
                    break;
                }
                // SeqCst: ordered after the journal and map reads above.
                self.store.barrier()?;
                match self.store.cas(
                    off,
                    cur,
                    BitmapWord::next(cur, claimed & !stray),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )? {
                    Ok(()) => break,
                    Err(_) => continue 'retry,
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// The pages of bitmap word `i` of chunk `c` that a live participant's page journal names,
    /// as page bits (all of them when a huge step covers the chunk).
    fn journaled_pages(&self, c: u64, i: u64) -> Result<u32, Error> {
        let mut journaled = 0u32;
        let mut result = Ok(());
        self.table.for_each_live_journal(|slot, w, v| {
            // Only page journals name pages; block journals name blocks.
            if w != table::W_PAGE_JOURNAL {
                return;
            }
            match JournalWord::from_word(v) {
                Some(
                    JournalWord::Claim {
                        chunk,
                        first: f,
                        n: m,
                    }
                    | JournalWord::Release {
                        chunk,
                        first: f,
                        n: m,
                    },
                ) if chunk == c => {
                    for b in 0..32 {
                        let p = i * 32 + b;
                        if p >= f && p < f + m {
                            journaled |= 1 << b;
                        }
                    }
                }
                Some(
                    JournalWord::HugeClaim { head, chunks: m }
                    | JournalWord::HugeRelease { head, chunks: m },
                ) if c >= head && c < head + m => journaled = u32::MAX,
                Some(_) => {}
                None => {
                    result = corrupt("undecodable page journal", self.table.word_offset(slot, w))
                }
            }
        })?;
        result?;
        Ok(journaled)
    }

    /// Repairs what dead participants left in flight when their journals are gone (a lock file
    /// deleted while nobody was attached): huge releases that had begun, tails of huge claims
    /// that never got their head, and stray page claims. Takes nothing a live participant's
    /// journal names; safe while others allocate.
    pub fn sweep_unmapped(&self) -> Result<(), Error> {
        let count = self.chunk_count()?;
        let mut c = 0;
        while c < count {
            match self.load_kind(c)? {
                Ok(ChunkKind::HugeHead { chunks }) => {
                    c += chunks.max(1);
                    continue;
                }
                Ok(ChunkKind::HugeReleasing { chunks }) => {
                    if chunks == 0 || c + chunks > count {
                        return corrupt(
                            "huge run extends past the opened chunks",
                            self.kind_word(c)?,
                        );
                    }
                    if !self.huge_journaled(c, chunks)? {
                        self.finish_release(c, chunks)?;
                    }
                    c += chunks;
                    continue;
                }
                Ok(ChunkKind::HugeTail { back }) => {
                    if self.orphan_tail(c, back)? {
                        self.store.barrier()?;
                        self.store.store(
                            self.kind_word(c)?,
                            ChunkKind::Normal.to_word(),
                            Ordering::SeqCst,
                        )?;
                        continue; // look at it again as a normal chunk
                    }
                }
                Ok(ChunkKind::Normal) | Err(_) => {
                    self.sweep_unmapped_range(c, 0, self.geo.chunk_pages)?
                }
            }
            c += 1;
        }
        Ok(())
    }

    /// A tail is orphaned when the chunk it points back to heads no run covering it, and no
    /// live claimer is writing that run.
    fn orphan_tail(&self, c: u64, back: u64) -> Result<bool, Error> {
        let Some(h) = c.checked_sub(back).filter(|_| back > 0) else {
            return Ok(true);
        };
        let headed = matches!(
            self.load_kind(h)?,
            Ok(ChunkKind::HugeHead { chunks } | ChunkKind::HugeReleasing { chunks })
                if chunks > back
        );
        Ok(!headed && !self.huge_journaled(h, back + 1)?)
    }
}
