//! Walks over the allocated runs (`for_each_run`, `used_end`) and the invariant check
//! (`check`): for every normal chunk, the claimed pages are exactly the pages covered by the
//! runs its map describes, each covered once; every huge run has its tails and all its pages
//! claimed.
//!
//! Invariants:
//! - These functions only read. A walk is safe while others allocate: it reports runs whose
//!   start entry and first page bit it saw, and passes over tails whose head it has not seen
//!   (a huge claim in flight). `check` is exact only while no participant is mid-step.
//! - Every length read from the file is checked against the opened chunks or the chunk's pages
//!   before it is used to step or index.

use super::words::{BitmapWord, ChunkKind, MapEntry, UnknownKind, CHUNK_HUGE_RELEASING};
use super::{corrupt, Error, PageManager, PageStats, Run, RunStart};
use crate::region::hdr;
use crate::sync::{Liveness, Ordering, WordStore};

impl<W: WordStore, L: Liveness> PageManager<'_, W, L> {
    /// The end of the last byte in use: the last opened chunk's meta block, or the end of the
    /// last run, whichever is further. Bytes beyond it are free pages at the file's tail.
    pub fn used_end(&self) -> Result<u64, Error> {
        let count = self.chunk_count()?;
        let mut end = self.geo.header_bytes;
        if count > 0 {
            end = end.max(self.meta_of(count - 1)? + self.geo.meta_bytes());
        }
        let page = self.geo.page_size;
        self.for_each_run(|r| {
            end = end.max(r.offset.get() + r.pages * page);
            Ok(())
        })?;
        Ok(end)
    }

    /// Calls `f` with every allocated run (large, segment and huge), in address order.
    pub fn for_each_run(&self, mut f: impl FnMut(Run) -> Result<(), Error>) -> Result<(), Error> {
        let count = self.chunk_count()?;
        let mut c = 0;
        while c < count {
            match self.load_kind(c)? {
                Ok(ChunkKind::HugeReleasing { chunks }) if chunks > 0 => {
                    // Being released: no longer allocated.
                    c += chunks;
                    continue;
                }
                Ok(ChunkKind::HugeHead { chunks }) => {
                    if chunks == 0 || c + chunks > count {
                        return corrupt(
                            "huge run extends past the opened chunks",
                            self.kind_word(c)?,
                        );
                    }
                    f(self.huge_run(c, chunks)?)?;
                    c += chunks;
                    continue;
                }
                Ok(ChunkKind::Normal) => self.for_each_run_in(c, &mut f)?,
                // A tail whose head was skipped over is a huge claim in flight (tails are
                // written before the head); `check` judges tails, walks pass over them.
                Ok(ChunkKind::HugeTail { .. }) => {}
                // A releasing head of no length is damage, reported with its kind number.
                Ok(ChunkKind::HugeReleasing { .. }) => {
                    return corrupt(
                        format!("unknown chunk kind {CHUNK_HUGE_RELEASING}"),
                        self.kind_word(c)?,
                    )
                }
                Err(UnknownKind(kind)) => {
                    return corrupt(format!("unknown chunk kind {kind}"), self.kind_word(c)?)
                }
            }
            c += 1;
        }
        Ok(())
    }

    /// Calls `f` with every run of normal chunk `c`: a start entry that ends inside the chunk
    /// and whose first page is claimed.
    fn for_each_run_in(
        &self,
        c: u64,
        f: &mut impl FnMut(Run) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut p = 0;
        while p < self.geo.chunk_pages {
            let e = self.store.load(self.entry_word(c, p)?, Ordering::Acquire)?;
            match MapEntry::from_word(e) {
                Some(MapEntry::Start(s))
                    if s.pages > 0
                        && p + u64::from(s.pages) <= self.geo.chunk_pages
                        && self.page_claimed(c, p)? =>
                {
                    f(Run {
                        offset: RunStart(self.page_offset(c, p)?),
                        pages: u64::from(s.pages),
                        kind: s.kind.tag(),
                        user: u64::from(s.user),
                    })?;
                    p += u64::from(s.pages);
                }
                _ => p += 1,
            }
        }
        Ok(())
    }

    /// Checks that the bitmaps and the map agree (every claimed page covered by exactly one
    /// run, every run's pages claimed) and counts pages. Exact only while no participant is in
    /// the middle of a page step (call it quiescent, or after recovery).
    pub fn check(&self) -> Result<PageStats, Error> {
        let count = self.chunk_count()?;
        self.check_areas(count)?;
        let mut st = PageStats {
            chunks: count,
            pages_total: count * self.geo.chunk_pages,
            ..Default::default()
        };
        let mut c = 0;
        while c < count {
            match self.load_kind(c)? {
                Ok(ChunkKind::HugeReleasing { .. }) => {
                    return corrupt(
                        "a huge run is half released (its releaser died: recover first)",
                        self.kind_word(c)?,
                    )
                }
                Ok(ChunkKind::HugeHead { chunks }) => {
                    self.check_huge(c, chunks, count)?;
                    st.pages_used += chunks * self.geo.chunk_pages;
                    st.huge_runs += 1;
                    c += chunks;
                    continue;
                }
                Ok(ChunkKind::Normal) => self.check_chunk(c, &mut st)?,
                Ok(ChunkKind::HugeTail { .. }) => {
                    return corrupt(
                        "huge tail chunk without a head before it",
                        self.kind_word(c)?,
                    )
                }
                Err(UnknownKind(kind)) => {
                    return corrupt(format!("unknown chunk kind {kind}"), self.kind_word(c)?)
                }
            }
            c += 1;
        }
        st.pages_free = st.pages_total - st.pages_used;
        Ok(st)
    }

    /// Checks the area table: the words that exist are a prefix and grow (`area_at` checks
    /// each against the one before), the rest are 0, and the `count` opened chunks lie in
    /// areas.
    fn check_areas(&self, count: u64) -> Result<(), Error> {
        let slots = self.geo.area_slots();
        let mut end = 0;
        let mut k = 0;
        while k < slots {
            match self.area_at(k)? {
                Some(a) => end = a.end,
                None => break,
            }
            k += 1;
        }
        for j in k..slots {
            if self.area_at(j)?.is_some() {
                return corrupt(
                    format!("area {j} exists after a missing area {k}"),
                    self.geo.area_word(j),
                );
            }
        }
        if count > end {
            return corrupt(
                format!("{count} chunks are opened but the areas hold {end}"),
                hdr::CHUNK_COUNT,
            );
        }
        Ok(())
    }

    /// Checks the huge run of `chunks` chunks whose head is chunk `c` (of `count` opened):
    /// inside the opened chunks and its area, every tail marked with its distance, every page
    /// claimed.
    fn check_huge(&self, c: u64, chunks: u64, count: u64) -> Result<(), Error> {
        if chunks == 0 || c + chunks > count {
            return corrupt(
                "huge run extends past the opened chunks",
                self.kind_word(c)?,
            );
        }
        self.huge_run(c, chunks)?;
        for k in 0..chunks {
            if k > 0 && self.load_kind(c + k)? != Ok(ChunkKind::HugeTail { back: k }) {
                return corrupt(
                    "huge run's tail chunk is not marked as such",
                    self.kind_word(c + k)?,
                );
            }
            for i in 0..self.geo.bitmap_words() {
                let w = self
                    .store
                    .load(self.bitmap_word(c + k, i)?, Ordering::Acquire)?;
                if BitmapWord::claimed_of(w) != u32::MAX {
                    return corrupt("huge run has unclaimed pages", self.bitmap_word(c + k, i)?);
                }
            }
        }
        Ok(())
    }

    /// Checks normal chunk `c`: every run's pages claimed and continued, every claimed page
    /// covered by a run. Counts its runs and used pages into `st`.
    fn check_chunk(&self, c: u64, st: &mut PageStats) -> Result<(), Error> {
        let mut covered = vec![false; self.geo.chunk_pages as usize];
        let mut p = 0;
        while p < self.geo.chunk_pages {
            let e = self.store.load(self.entry_word(c, p)?, Ordering::Acquire)?;
            match MapEntry::from_word(e) {
                Some(MapEntry::Start(s)) if self.page_claimed(c, p)? => {
                    let len = u64::from(s.pages);
                    self.check_run(c, p, len, &mut covered)?;
                    st.runs += 1;
                    p += len;
                }
                _ => p += 1,
            }
        }
        for q in 0..self.geo.chunk_pages {
            let claimed = self.page_claimed(c, q)?;
            if claimed && !covered[q as usize] {
                return corrupt(
                    format!("page {q} of chunk {c} is claimed but belongs to no run"),
                    self.bitmap_word(c, q / 32)?,
                );
            }
            if claimed {
                st.pages_used += 1;
            }
        }
        Ok(())
    }

    /// Checks the run of `len` pages that starts at page `p` of chunk `c` (its start page is
    /// claimed): inside the chunk, every page claimed, every later page a continuation entry
    /// that points back to `p`. Marks its pages in `covered`.
    fn check_run(&self, c: u64, p: u64, len: u64, covered: &mut [bool]) -> Result<(), Error> {
        if len == 0 || p + len > self.geo.chunk_pages {
            return corrupt(
                format!("run of {len} pages at page {p} overflows its chunk"),
                self.entry_word(c, p)?,
            );
        }
        for q in p..p + len {
            if !self.page_claimed(c, q)? {
                return corrupt(
                    format!("page {q} of a run is not claimed"),
                    self.bitmap_word(c, q / 32)?,
                );
            }
            if q > p {
                let ce = self.store.load(self.entry_word(c, q)?, Ordering::Acquire)?;
                // The whole word: a continuation's unused bits must be zero too.
                if ce
                    != (MapEntry::Cont {
                        back: (q - p) as u32,
                    })
                    .to_word()
                {
                    return corrupt(
                        format!("page {q} is inside a run but its map entry is {ce:#x}"),
                        self.entry_word(c, q)?,
                    );
                }
            }
            covered[q as usize] = true;
        }
        Ok(())
    }
}
