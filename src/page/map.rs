//! Runs in normal chunks: searching the chunks for room, claiming a run in the bitmap and
//! describing it in the page map, finding a run again from an offset, and releasing it. Also
//! opening chunks, which a search does when no opened chunk has room.
//!
//! Invariants:
//! - A page changes hands only by a CAS on its bitmap word (tag + 1), never by a plain store.
//!   A run of 1..=32 pages lies inside one bitmap word; a longer run starts on a word boundary.
//! - A claim writes its page journal before its first bitmap CAS, its continuation entries and
//!   its caller's hand-off before its start entry, and clears the journal after the start entry
//!   (FORMAT.md §7.5). A release writes its journal, zeroes the start entry, then clears the bits.
//!   So a claimed page that no run covers is always named by a journal while its owner lives.
//! - Map entries are plain stores by the owner of the pages they describe. A reader trusts an
//!   entry only if it leads to a start entry whose run covers the page and ends in its chunk.

use super::words::{
    find_zero_run, BitmapWord, ChunkKind, JournalWord, MapEntry, RunKind, StartEntry, UnknownKind,
};
use super::{corrupt, Error, PageManager, Run, RunStart};
use crate::region::hdr;
use crate::sync::{Liveness, Ordering, WordStore};

impl<W: WordStore, L: Liveness> PageManager<'_, W, L> {
    // ---- allocation ----------------------------------------------------------------------

    /// Allocates a run of `pages` pages (any count; more than a chunk makes a huge run) and
    /// records `kind`/`user` in its map entry. Returns the offset of its first byte.
    ///
    /// `kind` is `RUN_LARGE` or `RUN_SEGMENT`, and `user` fits in 32 bits (a huge run records
    /// neither). A run of any other kind is refused like a request of 0 pages.
    ///
    /// `handoff`: a journal word of this participant that receives the run's offset *before*
    /// the page journal is cleared, so that the run is never unaccounted for in between (the
    /// heap hands large blocks and new segments over this way).
    pub fn alloc(
        &self,
        pages: u64,
        kind: u64,
        user: u64,
        handoff: Option<u64>,
    ) -> Result<RunStart, Error> {
        if pages == 0 {
            return Err(Error::TooLarge { bytes: 0 });
        }
        if pages > self.geo.chunk_pages {
            return self
                .alloc_huge(pages.div_ceil(self.geo.chunk_pages), handoff)
                .map(RunStart);
        }
        debug_assert!(
            RunKind::from_tag(kind).is_some(),
            "run kind {kind} is neither RUN_LARGE nor RUN_SEGMENT"
        );
        let Some(kind) = RunKind::from_tag(kind) else {
            return Err(Error::TooLarge { bytes: 0 });
        };
        // A start entry keeps 32 user bits (the higher ones were always dropped).
        debug_assert!(
            user <= u64::from(u32::MAX),
            "user bits {user:#x} overflow 32"
        );
        let entry = StartEntry {
            kind,
            pages: pages as u32,
            user: user as u32,
        };
        loop {
            let count = self.chunk_count()?;
            // Relaxed: the cursor is only a hint where to start looking.
            let cursor = self
                .store
                .load(hdr::PAGE_CURSOR, Ordering::Relaxed)?
                .min(count);
            let mut c = cursor;
            for _ in 0..count {
                if c >= count {
                    c = 0;
                }
                let kind_c = self.load_kind(c)?;
                let step = match kind_c {
                    Ok(ChunkKind::HugeHead { chunks } | ChunkKind::HugeReleasing { chunks }) => {
                        chunks.max(1)
                    }
                    _ => 1,
                };
                if kind_c == Ok(ChunkKind::Normal) {
                    if let Some(off) = self.try_alloc_in(c, entry, handoff)? {
                        if c != cursor {
                            self.store.store(hdr::PAGE_CURSOR, c, Ordering::Relaxed)?;
                        }
                        return Ok(RunStart(off));
                    }
                }
                c += step;
            }
            // Nothing free in the chunks opened so far: open one more and try there first.
            self.open_next_chunk(count)?;
            self.store
                .store(hdr::PAGE_CURSOR, count, Ordering::Relaxed)?;
        }
    }

    /// Tries to claim `entry.pages` pages in chunk `c`. `Ok(None)`: no room (or lost every race).
    fn try_alloc_in(
        &self,
        c: u64,
        entry: StartEntry,
        handoff: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        let n = u64::from(entry.pages);
        let words = self.geo.bitmap_words();
        if n <= 32 {
            // A small run lies inside one bitmap word.
            for i in 0..words {
                let off = self.bitmap_word(c, i)?;
                let mut cur = self.store.load(off, Ordering::Acquire)?;
                while let Some(start) = find_zero_run(BitmapWord::claimed_of(cur), n) {
                    let first = i * 32 + start;
                    self.store.grow_to(self.page_offset(c, first + n)?)?;
                    self.set_journal(JournalWord::Claim { chunk: c, first, n })?;
                    // SeqCst: the journal store above must be visible to any sweep that sees
                    // this claim (sweeps read bitmaps first, journals second).
                    self.store.barrier()?;
                    let claimed = BitmapWord::claimed_of(cur) | BitmapWord::mask(start, n);
                    match self.store.cas(
                        off,
                        cur,
                        BitmapWord::next(cur, claimed),
                        Ordering::SeqCst,
                        Ordering::Acquire,
                    )? {
                        Ok(()) => return self.finish_claim(c, first, entry, handoff).map(Some),
                        Err(actual) => cur = actual,
                    }
                }
            }
            self.clear_journal()?;
            return Ok(None);
        }
        // A large run starts on a word boundary and takes whole words, then part of one.
        let need_words = n.div_ceil(32);
        let mut i = 0;
        while i + need_words <= words {
            let mut all_free = true;
            for k in 0..need_words {
                let w = self
                    .store
                    .load(self.bitmap_word(c, i + k)?, Ordering::Acquire)?;
                if BitmapWord::claimed_of(w) != 0 {
                    all_free = false;
                    i += k + 1;
                    break;
                }
            }
            if !all_free {
                continue;
            }
            let first = i * 32;
            self.store.grow_to(self.page_offset(c, first + n)?)?;
            self.set_journal(JournalWord::Claim { chunk: c, first, n })?;
            if self.claim_words(c, i, n)? {
                return self.finish_claim(c, first, entry, handoff).map(Some);
            }
            i += 1;
        }
        self.clear_journal()?;
        Ok(None)
    }

    /// Claims pages `32*i .. 32*i + n` whose words were seen free, word by word, undoing the
    /// words already taken if one is lost. `false`: lost a race (nothing stays claimed).
    pub(super) fn claim_words(&self, c: u64, i: u64, n: u64) -> Result<bool, Error> {
        let need_words = n.div_ceil(32);
        for k in 0..need_words {
            let take = BitmapWord::mask(0, (n - 32 * k).min(32));
            let off = self.bitmap_word(c, i + k)?;
            let cur = self.store.load(off, Ordering::Acquire)?;
            let claimed = BitmapWord::claimed_of(cur);
            let ok = claimed & take == 0 && {
                self.store.barrier()?;
                // SeqCst: see `try_alloc_in`.
                self.store
                    .cas(
                        off,
                        cur,
                        BitmapWord::next(cur, claimed | take),
                        Ordering::SeqCst,
                        Ordering::Acquire,
                    )?
                    .is_ok()
            };
            if !ok {
                for j in 0..k {
                    self.clear_bits(c, i + j, BitmapWord::mask(0, (n - 32 * j).min(32)))?;
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes the map entries of a freshly claimed run and clears the journal.
    fn finish_claim(
        &self,
        c: u64,
        first: u64,
        entry: StartEntry,
        handoff: Option<u64>,
    ) -> Result<u64, Error> {
        let n = u64::from(entry.pages);
        for p in first + 1..first + n {
            // Relaxed: published by the Release store of the start entry below.
            self.store.store(
                self.entry_word(c, p)?,
                MapEntry::Cont {
                    back: (p - first) as u32,
                }
                .to_word(),
                Ordering::Relaxed,
            )?;
        }
        let offset = self.page_offset(c, first)?;
        // The handoff comes before the start entry: once the run exists, some journal of
        // this participant names it until the caller is done with it. (Recovery of a handoff
        // whose run never got its start entry finds no run there and does nothing.)
        if let Some(w) = handoff {
            self.table.store(self.me, w, offset)?;
        }
        // SeqCst: a sweep that reads this entry after the journal clear must see it (the
        // journal clear below is SeqCst too).
        self.store.barrier()?;
        self.store.store(
            self.entry_word(c, first)?,
            MapEntry::Start(entry).to_word(),
            Ordering::SeqCst,
        )?;
        self.clear_journal()?;
        Ok(offset)
    }

    /// Clears the page bits `m` of bitmap word `i` of chunk `c` (a CAS: tag + 1).
    pub(super) fn clear_bits(&self, c: u64, i: u64, m: u32) -> Result<(), Error> {
        let off = self.bitmap_word(c, i)?;
        let mut cur = self.store.load(off, Ordering::Acquire)?;
        loop {
            // SeqCst (Release would do for the pages' last uses, which must happen before
            // another claimer sees them free; SeqCst also orders it with the journal handshake
            // of recovery, see `sweep_unmapped_range`).
            self.store.barrier()?;
            match self.store.cas(
                off,
                cur,
                BitmapWord::next(cur, BitmapWord::claimed_of(cur) & !m),
                Ordering::SeqCst,
                Ordering::Acquire,
            )? {
                Ok(()) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    // ---- lookup and release ------------------------------------------------------------------

    /// The run that holds `offset`, from the page map. Every word is checked: an offset that
    /// points at no run gives an error.
    pub fn run_at(&self, offset: u64) -> Result<Run, Error> {
        let Some((c, p)) = self.locate(offset)? else {
            return Err(Error::BadFree {
                offset,
                why: "not inside a data page",
            });
        };
        let count = self.chunk_count()?;
        if c >= count {
            return Err(Error::BadFree {
                offset,
                why: "beyond the opened chunks",
            });
        }
        match self.load_kind(c)? {
            Ok(ChunkKind::HugeReleasing { .. }) => {
                return Err(Error::BadFree {
                    offset,
                    why: "inside a huge run that is being released",
                })
            }
            Ok(ChunkKind::HugeHead { chunks }) => return self.huge_run_of_head(c, chunks, count),
            Ok(ChunkKind::HugeTail { back }) => return self.huge_run_of_tail(c, back, count),
            Ok(ChunkKind::Normal) => {}
            Err(UnknownKind(kind)) => {
                return corrupt(format!("unknown chunk kind {kind}"), self.kind_word(c)?)
            }
        }
        let e = self.store.load(self.entry_word(c, p)?, Ordering::Acquire)?;
        let start = match MapEntry::from_word(e) {
            Some(MapEntry::Cont { back }) => {
                let d = u64::from(back);
                if d == 0 || d > p {
                    return corrupt(
                        "page map continuation points outside its chunk",
                        self.entry_word(c, p)?,
                    );
                }
                p - d
            }
            Some(MapEntry::Start(_)) => p,
            None => {
                return Err(Error::BadFree {
                    offset,
                    why: "page is not part of an allocated run",
                })
            }
        };
        let s = self
            .store
            .load(self.entry_word(c, start)?, Ordering::Acquire)?;
        match MapEntry::from_word(s) {
            Some(MapEntry::Start(entry))
                if entry.pages != 0
                    && start + u64::from(entry.pages) <= self.geo.chunk_pages
                    && p < start + u64::from(entry.pages) =>
            {
                Ok(Run {
                    offset: RunStart(self.page_offset(c, start)?),
                    pages: u64::from(entry.pages),
                    kind: entry.kind.tag(),
                    user: u64::from(entry.user),
                })
            }
            _ => Err(Error::BadFree {
                offset,
                why: "page map does not describe a run here",
            }),
        }
    }

    /// Returns the run that starts at `start` to the free pages. The start is checked against
    /// the page map first: anything but the start of an allocated run is `BadFree`.
    pub fn free(&self, start: RunStart) -> Result<(), Error> {
        let offset = start.get();
        let run = self.run_at(offset)?;
        if run.offset != start {
            return Err(Error::BadFree {
                offset,
                why: "not the start of a run",
            });
        }
        let Some((c, first)) = self.locate(offset)? else {
            return corrupt("the area table changed under a free", offset);
        };
        if run.kind == 0 {
            return self.free_huge(c, run.pages / self.geo.chunk_pages);
        }
        self.set_journal(JournalWord::Release {
            chunk: c,
            first,
            n: run.pages,
        })?;
        // SeqCst: the run stops being covered before its pages stop being claimed.
        self.store.barrier()?;
        self.store.store(
            self.entry_word(c, first)?,
            MapEntry::NOTHING,
            Ordering::SeqCst,
        )?;
        self.release_bits(c, first, run.pages)?;
        self.clear_journal()
    }

    fn release_bits(&self, c: u64, first: u64, n: u64) -> Result<(), Error> {
        let mut p = first;
        while p < first + n {
            let i = p / 32;
            let start = p % 32;
            let take = (32 - start).min(first + n - p);
            self.clear_bits(c, i, BitmapWord::mask(start, take))?;
            p += take;
        }
        Ok(())
    }

    /// True when page `p` of chunk `c` is covered by a run in the map.
    pub(super) fn covered(&self, c: u64, p: u64) -> Result<bool, Error> {
        let e = self.store.load(self.entry_word(c, p)?, Ordering::SeqCst)?;
        let start = match MapEntry::from_word(e) {
            Some(MapEntry::Start(_)) => p,
            Some(MapEntry::Cont { back }) => {
                let d = u64::from(back);
                if d == 0 || d > p {
                    return Ok(false);
                }
                p - d
            }
            None => return Ok(false),
        };
        let s = self
            .store
            .load(self.entry_word(c, start)?, Ordering::SeqCst)?;
        Ok(matches!(
            MapEntry::from_word(s),
            Some(MapEntry::Start(entry)) if start + u64::from(entry.pages) > p
        ))
    }

    /// True when page `p` of chunk `c` is claimed in the bitmap.
    pub(super) fn page_claimed(&self, c: u64, p: u64) -> Result<bool, Error> {
        let w = self
            .store
            .load(self.bitmap_word(c, p / 32)?, Ordering::Acquire)?;
        Ok(BitmapWord::claimed_of(w) & (1 << (p % 32)) != 0)
    }
}
