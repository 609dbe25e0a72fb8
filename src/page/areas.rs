//! The area table: which area holds a chunk, and opening chunks, which creates an area when
//! the break reaches the end of the last one (FORMAT.md §2, §7.4).
//!
//! Invariants:
//! - Area k exists once its header word is non-zero; it then holds chunks `end(k-1)..end(k)`
//!   (`end(-1)` = 0) and never changes. Word k is CASed from 0 only by a participant that saw
//!   word k - 1 exist, so the words that exist are a prefix of the table and grow.
//! - `chunk_count` ≤ the end of the last area: a chunk is opened (the count CAS) only after
//!   the area that holds it was created.
//! - Creating an area writes its word and nothing else. An area whose chunks are not opened is
//!   only address space: a creator killed after its CAS leaves an area that the next opener
//!   uses, so there is nothing to journal or recover.
//! - Every area word is checked when read: an end that is not above the previous one, or is
//!   beyond `MAX_CHUNKS`, is `Corrupt`.

use super::{corrupt, Error, PageManager};
use crate::region::{hdr, Area, MAX_CHUNKS};
use crate::sync::{Liveness, Ordering, WordStore};

impl<W: WordStore, L: Liveness> PageManager<'_, W, L> {
    /// The area that holds chunk `c`, which must exist (callers pass opened chunks, or chunks
    /// they have just seen an area hold).
    pub(super) fn area_of(&self, c: u64) -> Result<Area, Error> {
        let a = self.area.get();
        if a.holds(c) {
            return Ok(a);
        }
        match self.find_area(c)? {
            Some(a) => Ok(a),
            None => corrupt(format!("chunk {c} lies in no area"), hdr::CHUNK_COUNT),
        }
    }

    /// The area that holds chunk `c`, or `None` when no area reaches that far.
    pub(super) fn find_area(&self, c: u64) -> Result<Option<Area>, Error> {
        let a = self.area.get();
        if a.holds(c) {
            return Ok(Some(a));
        }
        let k = self.first_area_past(c)?;
        if k >= self.geo.area_slots() {
            return Ok(None);
        }
        match self.area_at(k)? {
            Some(a) if a.holds(c) => {
                self.area.set(a);
                Ok(Some(a))
            }
            // The area before it ends after `c` yet was not past it: the words do not grow.
            Some(_) => corrupt(
                format!("the area table is out of order at chunk {c}"),
                self.geo.area_word(k),
            ),
            None => Ok(None),
        }
    }

    /// The chunk and page whose data holds `offset`; `None` for the header, a meta block, or
    /// beyond the last area.
    pub fn locate(&self, offset: u64) -> Result<Option<(u64, u64)>, Error> {
        let Some(q) = self.geo.span_of(offset) else {
            return Ok(None);
        };
        Ok(self
            .find_area(q)?
            .and_then(|a| self.geo.locate_in(a, offset)))
    }

    /// The areas that exist (the first index whose word is 0).
    pub(super) fn areas_made(&self) -> Result<u64, Error> {
        self.first_area_past(u64::MAX)
    }

    /// Area `k` as the table describes it, checked; `None` if it does not exist.
    pub(super) fn area_at(&self, k: u64) -> Result<Option<Area>, Error> {
        let end = self.area_end(k)?;
        if end == 0 {
            return Ok(None);
        }
        let first = if k == 0 { 0 } else { self.area_end(k - 1)? };
        if end <= first || end > MAX_CHUNKS || (k > 0 && first == 0) {
            return corrupt(
                format!("area {k} ends at chunk {end}, not after chunk {first}"),
                self.geo.area_word(k),
            );
        }
        Ok(Some(Area {
            index: k,
            first,
            end,
        }))
    }

    /// Word k of the area table: the end of area k, or 0.
    fn area_end(&self, k: u64) -> Result<u64, Error> {
        // Acquire: pairs with the AcqRel CAS that created the area (`create_area`).
        Ok(self.store.load(self.geo.area_word(k), Ordering::Acquire)?)
    }

    /// The first index of the table whose word is 0 or above `c` (the table's length if
    /// none). The words that exist grow, so this cuts the table in two: probe 0, 1, 3, 7, …,
    /// then halve (one load for a store of one area).
    fn first_area_past(&self, c: u64) -> Result<u64, Error> {
        let slots = self.geo.area_slots();
        let past = |k: u64| -> Result<bool, Error> {
            let e = self.area_end(k)?;
            Ok(e == 0 || e > c)
        };
        // Every index below `lo` is not past `c`; `hi` is past it, or the table's length.
        let mut lo = 0;
        let mut hi = 0;
        while hi < slots && !past(hi)? {
            lo = hi + 1;
            hi = (2 * hi + 1).min(slots);
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if past(mid)? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// Creates the next area, of at least `need` chunks (`Geometry::new_area_chunks`): CAS its
    /// word from 0 to its end (AcqRel). **Commit.** A loser finds the winner's area when it
    /// looks again, so both outcomes return `Ok`.
    ///
    /// `for_run`: the area is for a huge run of `need` chunks at its start, and the file is
    /// grown to the run's end first. The slow step (reserving the run's bytes on disk) then
    /// comes before the area exists, and its creation, the count CAS that opens its chunks and
    /// the claim of their pages follow one another at once: a participant that opens a chunk
    /// meanwhile takes the area's first chunk only inside that short window (which would send
    /// the run on to a second area, never break anything).
    pub(super) fn create_area(&self, need: u64, for_run: bool) -> Result<(), Error> {
        let k = self.areas_made()?;
        let end = match k.checked_sub(1) {
            None => 0,
            Some(prev) => match self.area_at(prev)? {
                Some(a) => a.end,
                None => return corrupt("the area table changed under a reader", hdr::AREA_TABLE),
            },
        };
        let Some(chunks) = self.geo.new_area_chunks(end, k, need) else {
            return Err(Error::TooLarge {
                bytes: need.saturating_mul(self.geo.chunk_bytes()),
            });
        };
        if for_run {
            let area = Area {
                index: k,
                first: end,
                end: end + chunks,
            };
            self.store
                .grow_to(self.geo.data_of(area, end + need - 1) + self.geo.chunk_bytes())?;
        }
        // A persist barrier: what the creator saw is on disk before the area (the count CAS
        // that opens chunks in it has a barrier of its own).
        self.store.barrier()?;
        // AcqRel: publishes the area; pairs with the Acquire in `area_end`.
        let _ = self.store.cas(
            self.geo.area_word(k),
            0,
            end + chunks,
            Ordering::AcqRel,
            Ordering::Acquire,
        )?;
        Ok(())
    }

    /// Opens chunk `seen` (the chunk count this caller saw) for a run search that found no
    /// room, creating the area for it first if the last one is full.
    pub(super) fn open_next_chunk(&self, seen: u64) -> Result<(), Error> {
        if self.find_area(seen)?.is_none() {
            self.create_area(1, false)?;
        }
        self.open_chunks(seen, 1)
    }

    /// Opens `n` more chunks after `seen` (the chunk count this caller saw), which existing
    /// areas hold. Racing openers: one CAS wins, the others see the larger count and go on.
    pub(super) fn open_chunks(&self, seen: u64, n: u64) -> Result<(), Error> {
        let new = seen + n;
        if new > MAX_CHUNKS {
            return Err(Error::TooLarge {
                bytes: n.saturating_mul(self.geo.chunk_bytes()),
            });
        }
        let last = self.area_of(new - 1)?;
        // The file must hold every opened chunk's meta block before the count is published
        // (chunks skipped at the end of an earlier area lie before it, so it holds theirs too).
        self.store.grow_to(self.geo.end_of_meta(last, new - 1))?;
        // AcqRel: publishes the growth (pairs with the Acquire in `chunk_count`).
        self.store.barrier()?;
        let _ = self.store.cas(
            hdr::CHUNK_COUNT,
            seen,
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        )?;
        Ok(())
    }
}
