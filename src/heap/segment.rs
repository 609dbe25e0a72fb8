//! Segments: runs of pages carved into blocks of one size class. This file owns the segment
//! header and its anchor word, the check of a header against the page map, the class lists and
//! segment creation, and the walks of a segment's free and deferred stacks.
//!
//! Problem. A segment's header lives in the shared file, where a damaged or hostile process can
//! write anything; yet the hot paths must not read and check it again on every allocation and
//! free, and every participant must find every segment without a lock.
//!
//! Mechanism. A segment is trusted once its header agrees with the page map
//! ([`Heap::segment_info`]: a `RUN_SEGMENT` run that starts at the segment, of the header's
//! class, long enough for its blocks). The checked header, with its anchor and carve words
//! resolved, is a [`Cached`] segment: segments never move, never change class and are never
//! freed (type-stable), so the check stays true for the life of the mapping. The segments of a
//! class form one push-only list headed in the store header: `init_and_push` writes a header
//! and publishes it by one CAS on the class head. Nothing is ever unlinked, so a walk never
//! meets a freed node; every walk is bounded (by the store's page count, or by a stack's count
//! or block count), so a forged cycle ends in an error. A segment being created is named in its
//! creator's segment journal (`SJ_CREATE`) from the page claim's hand-off until after the push,
//! so recovery can finish the push (`recovery.rs`).
//!
//! Header words (FORMAT.md §5.1): `S_ANCHOR` the anchor (`heap`'s module doc), `S_CARVE` the
//! blocks carved so far (only a CAS adds 1), `S_DEFERRED` the deferred stack's head and push
//! count, `S_NEXT` the class-list link and `S_INFO` class, block count and block size (both
//! written before publication, never after), `S_USER` a hint of who allocates from it.
//!
//! API, to the other files of the heap: [`Heap::segment_info`], `cached` and `class_segment`
//! find and check a segment, [`Heap::for_each_segment`] walks the class lists, `new_segment`
//! and `init_and_push` make one, `walk_stack` and `walk_deferred` read its stacks.

use super::classes::{segment_bytes, CLASS_SIZES, NCLASSES};
use super::{Error, Heap, Run, SegmentInfo, RUN_SEGMENT, SEG_HEADER};
use crate::region::table;
use crate::sync::{AtomicU64, Liveness, Ordering, WordStore};

// Segment header words.
pub(super) const S_ANCHOR: u64 = 0;
pub(super) const S_CARVE: u64 = 8;
pub(super) const S_DEFERRED: u64 = 16;
pub(super) const S_NEXT: u64 = 24;
const S_INFO: u64 = 32;
/// Who uses the segment as its current one: `generation << 32 | slot + 1`, or 0. A hint only,
/// so that participants spread over segments instead of all CASing one anchor.
pub(super) const S_USER: u64 = 40;

const FROZEN_BIT: u64 = 1 << 63;
const TAG_SHIFT: u64 = 32;
const TAG_MASK: u64 = (1 << 31) - 1;

pub(super) fn anchor(head: u64, count: u64, tag: u64, frozen: bool) -> u64 {
    head | (count << 16) | ((tag & TAG_MASK) << TAG_SHIFT) | if frozen { FROZEN_BIT } else { 0 }
}
pub(super) fn a_head(a: u64) -> u64 {
    a & 0xffff
}
pub(super) fn a_count(a: u64) -> u64 {
    (a >> 16) & 0xffff
}
pub(super) fn a_tag(a: u64) -> u64 {
    (a >> TAG_SHIFT) & TAG_MASK
}
pub(super) fn a_frozen(a: u64) -> bool {
    a & FROZEN_BIT != 0
}

/// Segment journal values: a segment being created, or one being swept.
pub(super) const SJ_CREATE: u64 = 1;
pub(super) const SJ_SWEEP: u64 = 2;
pub(super) const SJ_SHIFT: u64 = 62;
pub(super) const SJ_OFFSET: u64 = (1 << 62) - 1;

/// A segment whose header this participant has checked against the page map, with its words
/// resolved. Segments never move, never change class and are never freed (type-stable), so a
/// check made once stays true for the life of the mapping.
#[derive(Clone, Copy)]
pub(super) struct Cached<'a> {
    pub(super) info: SegmentInfo,
    pub(super) anchor: &'a AtomicU64,
    pub(super) carve: &'a AtomicU64,
    /// ceil(2^32 / block_size): block indexes by multiplication (exact for offsets inside a
    /// segment, which are below 2^18, and block sizes below 2^14).
    pub(super) reciprocal: u64,
}

impl Cached<'_> {
    /// The index of the block that starts at `block`, if it is one of this segment's.
    pub(super) fn index_of(&self, block: u64) -> Option<u64> {
        let rel = block.checked_sub(self.info.offset + SEG_HEADER)?;
        let idx = (rel * self.reciprocal) >> 32;
        (idx < self.info.nblocks && idx * self.info.block_size == rel).then_some(idx)
    }
}

impl<'a, W: WordStore, L: Liveness> Heap<'a, W, L> {
    /// Reads and checks a segment's header against the page map.
    pub fn segment_info(&self, seg: u64) -> Result<SegmentInfo, Error> {
        let run = self.pages.run_at(seg)?;
        if run.kind != RUN_SEGMENT || run.offset.get() != seg {
            return Err(Error::Corrupt {
                what: "segment offset is not the start of a segment run".into(),
                offset: seg,
            });
        }
        self.segment_of_run(&run)
    }

    /// The segment that a segment run (from the page map) holds, its header checked against
    /// the run.
    pub(super) fn segment_of_run(&self, run: &Run) -> Result<SegmentInfo, Error> {
        let seg = run.offset.get();
        let info = self.store().load(seg + S_INFO, Ordering::Acquire)?;
        let class = (info & 0xff) as usize;
        let nblocks = (info >> 8) & 0xffff;
        let block_size = info >> 24;
        let ok = class < NCLASSES
            && class as u64 == run.user
            && block_size == CLASS_SIZES[class]
            && nblocks >= 1
            && SEG_HEADER + nblocks * block_size <= run.pages * self.geo().page_size;
        if !ok {
            return Err(Error::Corrupt {
                what: format!("segment header {info:#x} disagrees with its run"),
                offset: seg + S_INFO,
            });
        }
        Ok(SegmentInfo {
            offset: seg,
            class,
            block_size,
            nblocks,
        })
    }

    /// Checks segment `seg` and resolves its words.
    fn cached(&self, seg: u64) -> Result<Cached<'a>, Error> {
        let info = self.segment_info(seg)?;
        self.cache_info(info)
    }

    pub(super) fn cache_info(&self, info: SegmentInfo) -> Result<Cached<'a>, Error> {
        Ok(Cached {
            info,
            anchor: self.store().word(info.offset + S_ANCHOR)?,
            carve: self.store().word(info.offset + S_CARVE)?,
            reciprocal: (1u64 << 32).div_ceil(info.block_size),
        })
    }

    /// Checks that `seg` is a segment of class `k` and resolves it.
    pub(super) fn class_segment(&self, seg: u64, k: usize) -> Result<Cached<'a>, Error> {
        let cached = self.cached(seg)?;
        if cached.info.class != k {
            return Err(Error::Corrupt {
                what: format!(
                    "segment of class {} on the list of class {k}",
                    cached.info.class
                ),
                offset: seg,
            });
        }
        Ok(cached)
    }

    /// Calls `f` with every segment of every class.
    pub fn for_each_segment(
        &self,
        mut f: impl FnMut(SegmentInfo) -> Result<(), Error>,
    ) -> Result<(), Error> {
        for k in 0..NCLASSES {
            let mut seg = self
                .store()
                .load(self.geo().class_words(k), Ordering::Acquire)?;
            let mut steps = 0;
            while seg != 0 {
                let info = self.segment_info(seg)?;
                if info.class != k {
                    return Err(Error::Corrupt {
                        what: "segment on another class's list".into(),
                        offset: seg,
                    });
                }
                f(info)?;
                seg = self.store().load(seg + S_NEXT, Ordering::Acquire)?;
                steps += 1;
                if steps > self.store().size() / self.geo().page_size {
                    return Err(Error::Corrupt {
                        what: "segment list of a class loops".into(),
                        offset: self.geo().class_words(k),
                    });
                }
            }
        }
        Ok(())
    }

    /// Creates a segment of class `k` and pushes it onto the class list.
    pub(super) fn new_segment(&self, k: usize) -> Result<u64, Error> {
        let geo = self.geo();
        let bytes = segment_bytes(k, geo.chunk_bytes());
        let pages = bytes / geo.page_size;
        let nblocks = ((bytes - SEG_HEADER) / CLASS_SIZES[k]).min(0xffff);
        let seg = self
            .pages
            .alloc(pages, RUN_SEGMENT, k as u64, Some(table::W_SEGMENT_JOURNAL))?
            .get();
        self.table().store(
            self.me(),
            table::W_SEGMENT_JOURNAL,
            (SJ_CREATE << SJ_SHIFT) | seg,
        )?;
        self.init_and_push(seg, k, nblocks)?;
        self.table().store(self.me(), table::W_SEGMENT_JOURNAL, 0)?;
        Ok(seg)
    }

    /// Writes a fresh header into the (unpublished) segment `seg` and pushes it on its list.
    pub(super) fn init_and_push(&self, seg: u64, k: usize, nblocks: u64) -> Result<(), Error> {
        let store = self.store();
        // Relaxed: nobody can reach the segment until the Release CAS that publishes it.
        store.store(seg + S_ANCHOR, 0, Ordering::Relaxed)?;
        store.store(seg + S_CARVE, 0, Ordering::Relaxed)?;
        store.store(seg + S_DEFERRED, 0, Ordering::Relaxed)?;
        store.store(seg + S_USER, 0, Ordering::Relaxed)?;
        store.store(
            seg + S_INFO,
            k as u64 | (nblocks << 8) | (CLASS_SIZES[k] << 24),
            Ordering::Relaxed,
        )?;
        let head_w = store.word(self.geo().class_words(k))?;
        let mut head = head_w.load(Ordering::Acquire);
        loop {
            store.store(seg + S_NEXT, head, Ordering::Relaxed)?;
            // Release: publishes the header written above (pairs with the Acquire loads of
            // the class head in walks). The barrier: the run and the header on disk before
            // the class list leads to them.
            store.barrier()?;
            match head_w.compare_exchange_weak(head, seg, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => head = actual,
            }
        }
    }

    /// Marks in `seen` the blocks of a segment's free stack that starts at `head`: in range,
    /// acyclic, and exactly `count` blocks long.
    pub(super) fn walk_stack(
        &self,
        info: &SegmentInfo,
        head: u64,
        count: u64,
        seen: &mut [bool],
    ) -> Result<(), Error> {
        let mut h = head;
        let mut n = 0;
        while h != 0 {
            if h > info.nblocks || seen[(h - 1) as usize] || n >= count {
                return Err(Error::Corrupt { what: "segment free stack is damaged (out of range, looped or longer than its count)".into(), offset: info.offset });
            }
            seen[(h - 1) as usize] = true;
            n += 1;
            h = self.store().load(info.block(h - 1), Ordering::Acquire)? & 0xffff;
        }
        if n != count {
            return Err(Error::Corrupt {
                what: format!("segment free stack holds {n} blocks, its anchor says {count}"),
                offset: info.offset,
            });
        }
        Ok(())
    }

    /// Marks the blocks parked on the deferred stack in `seen` (read-only walk; quiescent use)
    /// and returns how many there are.
    pub(super) fn walk_deferred(
        &self,
        info: &SegmentInfo,
        seen: &mut [bool],
    ) -> Result<u64, Error> {
        let mut h = self
            .store()
            .load(info.offset + S_DEFERRED, Ordering::Acquire)?
            & 0xffff;
        let mut n = 0;
        while h != 0 {
            if h > info.nblocks || seen[(h - 1) as usize] {
                return Err(Error::Corrupt {
                    what: "deferred free stack is damaged (out of range, looped or overlapping)"
                        .into(),
                    offset: info.offset + S_DEFERRED,
                });
            }
            seen[(h - 1) as usize] = true;
            n += 1;
            h = self.store().load(info.block(h - 1), Ordering::Acquire)? & 0xffff;
        }
        Ok(n)
    }
}
