//! Huge runs: runs of whole chunks, consecutive within one area, for requests of more than a
//! chunk's pages. A huge run uses no map entries; its chunks' kind words describe it.
//!
//! Placement: the first stretch of enough empty normal chunks in one area (freed huge runs are
//! empty chunks again, so any later run of any size can use them), else fresh chunks at the
//! break, in the break's area if the rest of it is long enough, else in a new area of exactly
//! the run's chunks (or an eighth of the store, if that is more; `Geometry::new_area_chunks`).
//! So a huge run costs its size rounded up to whole chunks, plus one meta block a chunk.
//!
//! Invariants:
//! - A complete huge run of n chunks has the head `HugeHead { chunks: n }`, chunk k of it
//!   `HugeTail { back: k }`, and every page of its n chunks claimed.
//! - A claim takes every page bit first, then writes the tails, then its caller's hand-off,
//!   then the head (the commit). A release marks the head `HugeReleasing` first (the commit),
//!   then sets the tails and the head normal, then clears the bits. While the head says
//!   releasing no search takes any of the chunks, so recovery may finish the release.
//! - Both steps are named in the page journal from before their first change to after their
//!   last (FORMAT.md §7.6).

use super::words::{BitmapWord, ChunkKind, JournalWord};
use super::{corrupt, Error, PageManager, Run, RunStart};
use crate::region::{table, MAX_CHUNKS};
use crate::sync::{Liveness, Ordering, WordStore};

impl<W: WordStore, L: Liveness> PageManager<'_, W, L> {
    /// A huge run of `nchunks` whole chunks of one area.
    pub(super) fn alloc_huge(&self, nchunks: u64, handoff: Option<u64>) -> Result<u64, Error> {
        if nchunks > MAX_CHUNKS {
            return Err(Error::TooLarge {
                bytes: nchunks.saturating_mul(self.geo.chunk_bytes()),
            });
        }
        loop {
            let count = self.chunk_count()?;
            let start = match self.find_empty_chunks(count, nchunks)? {
                Some(s) => s,
                None => match self.open_huge_chunks(count, nchunks)? {
                    Some(s) => s,
                    None => continue,
                },
            };
            if let Some(offset) = self.claim_huge(start, nchunks, handoff)? {
                return Ok(offset);
            }
        }
    }

    /// The first of `nchunks` consecutive empty normal chunks of one area among the `count`
    /// opened chunks, if there are that many.
    fn find_empty_chunks(&self, count: u64, nchunks: u64) -> Result<Option<u64>, Error> {
        let mut run_start = 0;
        let mut run_len = 0;
        // The end of the area of `run_start`: a stretch never crosses it.
        let mut run_area_end = 0;
        let mut c = 0;
        while c < count {
            let kind = self.load_kind(c)?;
            if let Ok(ChunkKind::HugeHead { chunks } | ChunkKind::HugeReleasing { chunks }) = kind {
                c += chunks.max(1);
                run_len = 0;
                continue;
            }
            if kind == Ok(ChunkKind::Normal) && self.chunk_is_empty(c)? {
                if run_len == 0 || c >= run_area_end {
                    run_start = c;
                    run_len = 0;
                    run_area_end = self.area_of(c)?.end;
                }
                run_len += 1;
                if run_len == nchunks {
                    return Ok(Some(run_start));
                }
            } else {
                run_len = 0;
            }
            c += 1;
        }
        Ok(None)
    }

    /// Opens fresh chunks for a huge run of `nchunks`: at the break if the rest of its area is
    /// long enough, else at the start of the next area long enough, which is created if none
    /// is (chunks skipped at the end of an area are opened too, and stay free).
    /// `Ok(None)`: another opener got there first; search again.
    fn open_huge_chunks(&self, count: u64, nchunks: u64) -> Result<Option<u64>, Error> {
        let mut s = count;
        let area = loop {
            match self.find_area(s)? {
                Some(a) if s + nchunks <= a.end => break a,
                Some(a) => s = a.end,
                // Past the last area: create one (or lose the race to a creator whose area is
                // found next time round).
                None => self.create_area(nchunks, true)?,
            }
        };
        self.store
            .grow_to(self.geo.data_of(area, s + nchunks - 1) + self.geo.chunk_bytes())?;
        self.open_chunks(count, s + nchunks - count)?;
        if self.chunk_count()? < s + nchunks {
            return Ok(None);
        }
        Ok(Some(s))
    }

    /// Claims chunks `start..start + nchunks`, seen empty, as one huge run. `Ok(None)`: lost a
    /// race for a page (nothing stays claimed); search again.
    fn claim_huge(
        &self,
        start: u64,
        nchunks: u64,
        handoff: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        self.store
            .grow_to(self.data_of(start + nchunks - 1)? + self.geo.chunk_bytes())?;
        self.set_journal(JournalWord::HugeClaim {
            head: start,
            chunks: nchunks,
        })?;
        let mut claimed = 0;
        while claimed < nchunks && self.claim_words(start + claimed, 0, self.geo.chunk_pages)? {
            claimed += 1;
        }
        if claimed < nchunks {
            for k in 0..claimed {
                for i in 0..self.geo.bitmap_words() {
                    self.clear_bits(start + k, i, u32::MAX)?;
                }
            }
            self.clear_journal()?;
            return Ok(None);
        }
        for k in 1..nchunks {
            // Release: pairs with the Acquire in `load_kind`.
            self.store.barrier()?;
            self.store.store(
                self.kind_word(start + k)?,
                ChunkKind::HugeTail { back: k }.to_word(),
                Ordering::Release,
            )?;
        }
        // The handoff before the head, as in `finish_claim`: once the run exists, a journal
        // of this participant names it.
        let offset = self.data_of(start)?;
        if let Some(w) = handoff {
            self.table.store(self.me, w, offset)?;
        }
        // SeqCst: the head's kind is what makes the claim complete in recovery's eyes.
        self.store.barrier()?;
        self.store.store(
            self.kind_word(start)?,
            ChunkKind::HugeHead { chunks: nchunks }.to_word(),
            Ordering::SeqCst,
        )?;
        self.clear_journal()?;
        Ok(Some(offset))
    }

    fn chunk_is_empty(&self, c: u64) -> Result<bool, Error> {
        for i in 0..self.geo.bitmap_words() {
            let w = self
                .store
                .load(self.bitmap_word(c, i)?, Ordering::Acquire)?;
            if BitmapWord::claimed_of(w) != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The huge run whose head is chunk `c` (`chunks` long, of `count` opened chunks), for
    /// `run_at`. The length comes from the file: it must stay inside the opened chunks and the
    /// head's area.
    pub(super) fn huge_run_of_head(&self, c: u64, chunks: u64, count: u64) -> Result<Run, Error> {
        if chunks == 0 || chunks > count - c {
            return corrupt(
                format!("huge run of {chunks} chunks overruns the opened chunks"),
                self.kind_word(c)?,
            );
        }
        self.huge_run(c, chunks)
    }

    /// The huge run that tail chunk `c` (`back` chunks after its head, of `count` opened
    /// chunks) belongs to, for `run_at`. Its head must cover it and stay inside the opened chunks.
    pub(super) fn huge_run_of_tail(&self, c: u64, back: u64, count: u64) -> Result<Run, Error> {
        if back == 0 || back > c {
            return corrupt("huge tail points before chunk 0", self.kind_word(c)?);
        }
        let head = c - back;
        match self.load_kind(head)? {
            Ok(ChunkKind::HugeHead { chunks }) if chunks > back && chunks <= count - head => {
                self.huge_run(head, chunks)
            }
            _ => corrupt("huge tail without its head", self.kind_word(c)?),
        }
    }

    /// The huge run of `chunks` chunks from chunk `head` on, as `Run` describes it. A length
    /// read from the file that crosses the end of the head's area is damage: the run's bytes
    /// would cover the next area's meta blocks.
    pub(super) fn huge_run(&self, head: u64, chunks: u64) -> Result<Run, Error> {
        let area = self.area_of(head)?;
        if chunks == 0 || chunks > area.end - head {
            return corrupt(
                format!("huge run of {chunks} chunks crosses the end of its area"),
                self.kind_word(head)?,
            );
        }
        Ok(Run {
            offset: RunStart(self.geo.data_of(area, head)),
            pages: chunks * self.geo.chunk_pages,
            kind: 0,
            user: 0,
        })
    }

    /// Releases the huge run of `nchunks` chunks whose head is chunk `head` (as `run_at` found
    /// it): the head says releasing first, then `finish_release`.
    pub(super) fn free_huge(&self, head: u64, nchunks: u64) -> Result<(), Error> {
        self.set_journal(JournalWord::HugeRelease {
            head,
            chunks: nchunks,
        })?;
        // SeqCst: marks the release as started; recovery redoes a release only while the
        // head still says so (the chunks cannot change hands before the head is normal).
        self.store.barrier()?;
        self.store.store(
            self.kind_word(head)?,
            ChunkKind::HugeReleasing { chunks: nchunks }.to_word(),
            Ordering::SeqCst,
        )?;
        self.finish_release(head, nchunks)?;
        self.clear_journal()
    }

    /// Turns the chunks of a huge run whose head says RELEASING back into empty normal chunks:
    /// tails first, then the head, then the bits. Repeatable while the head says RELEASING.
    pub(super) fn finish_release(&self, head: u64, n: u64) -> Result<(), Error> {
        for k in 1..n {
            // Release: pairs with the Acquire in `load_kind`.
            self.store.barrier()?;
            self.store.store(
                self.kind_word(head + k)?,
                ChunkKind::Normal.to_word(),
                Ordering::Release,
            )?;
        }
        self.store.barrier()?;
        self.store.store(
            self.kind_word(head)?,
            ChunkKind::Normal.to_word(),
            Ordering::SeqCst,
        )?;
        for k in 0..n {
            for i in 0..self.geo.bitmap_words() {
                self.clear_bits(head + k, i, u32::MAX)?;
            }
        }
        Ok(())
    }

    /// True when a live participant's page journal names a huge claim or release that
    /// overlaps chunks `c..c+n`.
    pub(super) fn huge_journaled(&self, c: u64, n: u64) -> Result<bool, Error> {
        let mut hit = false;
        self.table.for_each_live_journal(|_, w, v| {
            if w == table::W_PAGE_JOURNAL {
                if let Some(
                    JournalWord::HugeClaim { head, chunks: m }
                    | JournalWord::HugeRelease { head, chunks: m },
                ) = JournalWord::from_word(v)
                {
                    if head < c + n && c < head + m {
                        hit = true;
                    }
                }
            }
        })?;
        Ok(hit)
    }
}
