//! The segments this participant has checked, found again from a block's offset without the
//! page map: a process-local index, nothing in the store.
//!
//! Problem. A free must find the segment of the block it is given, and check that the offset
//! starts a block of it. Through the page map that is a chunk lookup, a map entry and the
//! segment header: about half of a Larson op (random sizes, so consecutive frees rarely hit one
//! segment). Remembering only the last segment freed into helps runs of frees, not a mix.
//!
//! Mechanism. Segments never move, never change class and are never freed (type-stable), so a
//! segment checked once against the page map stays checked for the life of the mapping (as
//! every [`Cached`] already does). The index keeps each checked segment once, in `segs`, and a
//! direct-mapped table from a page number (modulo `PAGES`) to the segment that last served a
//! free on that page. In front of the table sits the segment of the last free, as plain words
//! (`Last`): frees come in runs, and a hot loop frees into one segment. A hit in either is a
//! bounds check and one multiplication ([`Cached::index_of`]), which proves that the offset
//! starts a block of that very segment; a collision (another page on the same entry) or a page
//! never seen falls back to the page map, which refills the entry. So the index can be wrong
//! only in being absent: it never makes an offset pass that does not start a block of a
//! checked segment.
//!
//! Not shared, not in any file: nothing to recover, nothing a kill can leave half-written.

use super::segment::Cached;
use super::SEG_HEADER;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;

/// Entries of the page table (a power of two). 4096 pages cover 256 segments of 16 pages
/// without collision when their pages are spread evenly; 16 KiB of process memory per heap,
/// allocated on the first free.
const PAGES: usize = 4096;

/// Where [`KnownSegments::find`] found a block: its class, its segment (an index for
/// [`KnownSegments::get`]) and its index in that segment.
#[derive(Clone, Copy)]
pub(super) struct Found {
    pub(super) class: usize,
    pub(super) seg: u32,
    pub(super) idx: u64,
}

/// The block range and arithmetic of the segment that served the last free, as plain words:
/// runs of frees from one segment (and the pair of a hot loop) test it with one multiplication
/// and no table load.
#[derive(Clone, Copy)]
struct Last {
    first: u64,
    end: u64,
    block_size: u64,
    reciprocal: u64,
    class: usize,
    seg: u32,
}

impl Last {
    const NONE: Last = Last {
        first: 1,
        end: 0,
        block_size: 1,
        reciprocal: 0,
        class: 0,
        seg: 0,
    };

    fn of(seg: &Cached<'_>, i: u32) -> Last {
        let first = seg.info.offset + SEG_HEADER;
        Last {
            first,
            end: first + seg.info.nblocks * seg.info.block_size,
            block_size: seg.info.block_size,
            reciprocal: seg.reciprocal,
            class: seg.info.class,
            seg: i,
        }
    }

    /// Where `block` is, if it starts a block of this segment (as [`Cached::index_of`]).
    #[inline]
    fn find(&self, block: u64) -> Option<Found> {
        if block < self.first || block >= self.end {
            return None;
        }
        let rel = block - self.first;
        let idx = (rel * self.reciprocal) >> 32;
        (idx * self.block_size == rel).then_some(Found {
            class: self.class,
            seg: self.seg,
            idx,
        })
    }
}

pub(super) struct KnownSegments<'a> {
    page_shift: u32,
    last: Cell<Last>,
    /// Page number % PAGES -> index + 1 in `segs` of the segment last found on such a page
    /// (0: none).
    pages: OnceCell<Box<[Cell<u32>]>>,
    segs: RefCell<Vec<Cached<'a>>>,
    /// Segment offset -> index in `segs`, so that each segment is kept once.
    by_offset: RefCell<HashMap<u64, u32>>,
}

impl<'a> KnownSegments<'a> {
    pub(super) fn new(page_size: u64) -> Self {
        KnownSegments {
            page_shift: page_size.trailing_zeros(),
            last: Cell::new(Last::NONE),
            pages: OnceCell::new(),
            segs: RefCell::new(Vec::new()),
            by_offset: RefCell::new(HashMap::new()),
        }
    }

    fn slot(&self, block: u64) -> Option<&Cell<u32>> {
        let pages = self.pages.get()?;
        Some(&pages[(block >> self.page_shift) as usize & (PAGES - 1)])
    }

    /// The checked segment that holds a block starting at `block`, if the table knows it.
    #[inline]
    pub(super) fn find(&self, block: u64) -> Option<Found> {
        match self.last.get().find(block) {
            Some(f) => Some(f),
            None => self.find_by_page(block),
        }
    }

    fn find_by_page(&self, block: u64) -> Option<Found> {
        let i = self.slot(block)?.get();
        if i == 0 {
            return None;
        }
        let segs = self.segs.borrow();
        let seg = segs.get(i as usize - 1)?;
        let idx = seg.index_of(block)?;
        self.last.set(Last::of(seg, i - 1));
        Some(Found {
            class: seg.info.class,
            seg: i - 1,
            idx,
        })
    }

    /// Segment `i` of a [`Found`].
    pub(super) fn get(&self, i: u32) -> Cached<'a> {
        self.segs.borrow()[i as usize]
    }

    /// Records `seg` (checked against the page map by the caller) as the segment of the page
    /// that holds `block`, and returns where `block` is in it (`None`: it starts no block).
    pub(super) fn learn(&self, block: u64, seg: Cached<'a>) -> Option<Found> {
        let i = {
            let mut by_offset = self.by_offset.borrow_mut();
            *by_offset.entry(seg.info.offset).or_insert_with(|| {
                let mut segs = self.segs.borrow_mut();
                segs.push(seg);
                (segs.len() - 1) as u32
            })
        };
        let idx = seg.index_of(block)?;
        self.pages
            .get_or_init(|| (0..PAGES).map(|_| Cell::new(0)).collect());
        if let Some(s) = self.slot(block) {
            s.set(i + 1);
        }
        self.last.set(Last::of(&seg, i));
        Some(Found {
            class: seg.info.class,
            seg: i,
            idx,
        })
    }
}
