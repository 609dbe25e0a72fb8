//! The consistency check and the walk of allocated blocks, for tests, tools and the object
//! layer's check.
//!
//! Problem. The allocator's invariants must be verifiable from the file alone, and a damaged
//! file must give an error, never a loop or a crash.
//!
//! Mechanism. [`Heap::check`] walks every class list and, for each segment, its free stack
//! (bounded by its count), its deferred stack and the blocks in live participants' caches,
//! marking each block once: a block in two places, beyond the carve counter, or a link out of
//! range is `Corrupt`. Then every segment run in the page map must be on its class list exactly
//! once, and the page manager's own check runs first. Counts are exact only when no
//! participant is in the middle of an allocator step.
//!
//! Invariant checked, per segment, outside a sweep: carved blocks = allocated blocks + blocks
//! on the free stack + blocks on the deferred stack + blocks in live caches, with no block in
//! two of those places and none beyond the carve counter; the anchor is not frozen.

use super::segment::{a_count, a_frozen, a_head, S_ANCHOR, S_CARVE};
use super::{Block, Error, Heap, HeapStats, SegmentInfo, RUN_SEGMENT, SEG_HEADER};
use crate::sync::{Liveness, Ordering, WordStore};

impl<'a, W: WordStore, L: Liveness> Heap<'a, W, L> {
    /// Checks the page manager and every segment (free stacks in range, acyclic, of the length
    /// their anchors say; every segment run on its class list exactly once) and counts blocks.
    /// Exact when no participant is in the middle of an allocator step.
    pub fn check(&self) -> Result<HeapStats, Error> {
        let pages = self.pages.check()?;
        let mut st = HeapStats {
            pages,
            ..Default::default()
        };
        let mut listed = Vec::new();
        let mut cached = self.cached_blocks()?;
        cached.sort_unstable();
        let mut cached_found = 0;
        self.for_each_segment(|info| {
            let n = self.check_segment(&info, &cached)?;
            cached_found += n.in_cache;
            st.segments += 1;
            st.blocks_free += n.free_carved + info.nblocks - n.carve;
            st.blocks_allocated += n.carve - n.free_carved;
            st.bytes_allocated += (n.carve - n.free_carved) * info.block_size;
            listed.push(info.offset);
            Ok(())
        })?;
        if cached_found != cached.len() as u64 {
            return Err(Error::Corrupt {
                what: "a participant's block cache names a block of no segment".into(),
                offset: 0,
            });
        }
        listed.sort_unstable();
        if listed.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Corrupt {
                what: "a segment is on its class list twice".into(),
                offset: 0,
            });
        }
        self.check_runs(&listed, &mut st)?;
        Ok(st)
    }

    /// Checks one segment: not frozen, its free and deferred stacks sound and disjoint, its
    /// carve counter in range with no block beyond it on a stack, and the blocks of `cached`
    /// (every live participant's cached blocks, sorted) that lie in it carved and on no stack.
    fn check_segment(&self, info: &SegmentInfo, cached: &[u64]) -> Result<SegmentCounts, Error> {
        let a = self
            .store()
            .load(info.offset + S_ANCHOR, Ordering::Acquire)?;
        if a_frozen(a) {
            return Err(Error::Corrupt {
                what: "segment is frozen by a sweep".into(),
                offset: info.offset,
            });
        }
        let mut seen = vec![false; info.nblocks as usize];
        self.walk_stack(info, a_head(a), a_count(a), &mut seen)?;
        let parked = self.walk_deferred(info, &mut seen)?;
        let carve = self
            .store()
            .load(info.offset + S_CARVE, Ordering::Acquire)?;
        if carve > info.nblocks {
            return Err(Error::Corrupt {
                what: format!("segment carve {carve} exceeds its {} blocks", info.nblocks),
                offset: info.offset + S_CARVE,
            });
        }
        if let Some(i) = seen
            .iter()
            .enumerate()
            .position(|(i, &s)| s && i as u64 >= carve)
        {
            return Err(Error::Corrupt {
                what: format!("block {i} is on the free stack but was never carved"),
                offset: info.offset,
            });
        }
        // Blocks in participants' caches are free, though carved and off the stacks.
        let in_cache = mark_cached(info, carve, cached, &mut seen)?;
        Ok(SegmentCounts {
            carve,
            free_carved: a_count(a) + parked + in_cache,
            in_cache,
        })
    }

    /// Checks that every segment run in the page map is on a class list (`listed`: the listed
    /// segments, sorted, each once) and that the lists name no other segment; counts the large
    /// and huge runs into `st`.
    fn check_runs(&self, listed: &[u64], st: &mut HeapStats) -> Result<(), Error> {
        let mut segment_runs = 0;
        self.pages.for_each_run(|run| {
            match run.kind {
                RUN_SEGMENT => {
                    segment_runs += 1;
                    if listed.binary_search(&run.offset.get()).is_err() {
                        return Err(Error::Corrupt {
                            what: "segment run is on no class list".into(),
                            offset: run.offset.get(),
                        });
                    }
                }
                _ => {
                    st.large_runs += 1;
                    st.bytes_allocated += run.pages * self.geo().page_size;
                }
            }
            Ok(())
        })?;
        if segment_runs != listed.len() {
            return Err(Error::Corrupt {
                what: "class lists name segments the page map does not hold".into(),
                offset: 0,
            });
        }
        Ok(())
    }

    /// Calls `f(block, size)` for every allocated block and large run (quiescent use: `check`,
    /// tools, tests).
    pub fn for_each_allocated(&self, mut f: impl FnMut(Block, u64)) -> Result<(), Error> {
        let mut cached = self.cached_blocks()?;
        cached.sort_unstable();
        self.for_each_segment(|info| {
            let a = self
                .store()
                .load(info.offset + S_ANCHOR, Ordering::Acquire)?;
            let mut seen = vec![false; info.nblocks as usize];
            self.walk_stack(&info, a_head(a), a_count(a), &mut seen)?;
            self.walk_deferred(&info, &mut seen)?;
            let carve = self
                .store()
                .load(info.offset + S_CARVE, Ordering::Acquire)?
                .min(info.nblocks);
            for i in 0..carve {
                if !seen[i as usize] && cached.binary_search(&info.block(i)).is_err() {
                    f(Block(info.block(i)), info.block_size);
                }
            }
            Ok(())
        })?;
        self.pages.for_each_run(|run| {
            if run.kind != RUN_SEGMENT {
                f(Block::from(run.offset), run.pages * self.geo().page_size);
            }
            Ok(())
        })
    }
}

/// What [`Heap::check`] counts in one segment.
struct SegmentCounts {
    /// Blocks carved so far.
    carve: u64,
    /// Carved blocks that are free: on the free stack, on the deferred stack or in a cache.
    free_carved: u64,
    /// Of those, the blocks in live participants' caches.
    in_cache: u64,
}

/// Marks in `seen` the blocks of `cached` (sorted) that lie in segment `info`, and returns how
/// many there are: each must be the start of a carved block that no stack holds.
fn mark_cached(
    info: &SegmentInfo,
    carve: u64,
    cached: &[u64],
    seen: &mut [bool],
) -> Result<u64, Error> {
    let first = info.offset + SEG_HEADER;
    let end = first + info.nblocks * info.block_size;
    let from = cached.partition_point(|&b| b < first);
    let mut in_cache = 0;
    for &b in cached[from..].iter().take_while(|&&b| b < end) {
        let rel = b - first;
        let i = rel / info.block_size;
        if rel % info.block_size != 0 || i >= carve || seen[i as usize] {
            return Err(Error::Corrupt {
                what: "a cached block is not a carved, taken block of its segment".into(),
                offset: b,
            });
        }
        seen[i as usize] = true;
        in_cache += 1;
    }
    Ok(in_cache)
}
