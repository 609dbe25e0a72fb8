//! Unit tests of the heap over in-memory word stores: random allocation and free, huge runs, a
//! full store, bad frees, a sweep, recovery of a dead participant, and damaged journals.

use super::*;
use crate::region::table::SLOT_WORDS;
use crate::sync::{MemLiveness, MemWords, Ordering};
use classes::MAX_SMALL;

struct Fixture {
    store: MemWords,
    lock: MemWords,
    live: MemLiveness,
    geo: Geometry,
}

impl Fixture {
    fn new(geo: Geometry, capacity: u64) -> Self {
        let live = MemLiveness::new(4);
        for s in 0..4 {
            live.set_alive(s, true);
        }
        let f = Fixture {
            store: MemWords::new(geo.header_bytes, capacity),
            lock: MemWords::new(4 * SLOT_WORDS * 8, 4 * SLOT_WORDS * 8),
            live,
            geo,
        };
        for s in 0..4 {
            f.heap(s).table().activate(s, 1000 + s as u64, 0).unwrap();
        }
        f
    }
    fn heap(&self, me: u32) -> Heap<'_, MemWords, MemLiveness> {
        let table = Table {
            words: &self.lock,
            live: &self.live,
            base: 0,
            slots: 4,
        };
        Heap::new(&self.store, self.geo, table, me)
    }
}

/// A tiny deterministic generator (tests must not depend on the rand crate's versions).
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn random_alloc_free_keeps_every_block_distinct_and_accounted() {
    let f = Fixture::new(Geometry::STANDARD, 256 << 20);
    let h = f.heap(0);
    let mut live: Vec<(u64, u64)> = Vec::new();
    let mut seed = 0x1234_5678_9abc_def1;
    for step in 0..20_000 {
        if live.len() < 500 && next(&mut seed) % 3 != 0 || live.is_empty() {
            let size = match next(&mut seed) % 10 {
                0 => 8193 + next(&mut seed) % 100_000,
                1 => 2048 + next(&mut seed) % 6000,
                _ => 1 + next(&mut seed) % 512,
            };
            let b = h.alloc(size).unwrap();
            h.settle(0).unwrap();
            assert_eq!(b.get() % 16, 0);
            assert!(h.usable_size(b).unwrap() >= size);
            live.push((b.get(), size));
        } else {
            let i = (next(&mut seed) % live.len() as u64) as usize;
            let (b, _) = live.swap_remove(i);
            h.free(Block::from_word(b)).unwrap();
        }
        if step % 5000 == 0 {
            h.check().unwrap();
        }
    }
    let mut spans: Vec<(u64, u64)> = live.clone();
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "blocks overlap: {:?}", w);
    }
    let st = h.check().unwrap();
    let small = live.iter().filter(|(_, s)| *s <= MAX_SMALL).count() as u64;
    assert_eq!(st.blocks_allocated, small);
    assert_eq!(st.large_runs, live.len() as u64 - small);
    for (b, _) in live {
        h.free(Block::from_word(b)).unwrap();
    }
    let st = h.check().unwrap();
    assert_eq!(st.blocks_allocated, 0);
    assert_eq!(st.large_runs, 0);
    assert_eq!(
        st.pages.runs, st.segments,
        "only the segments remain, kept by their classes"
    );
}

#[test]
fn huge_runs_span_chunks_and_are_reused() {
    let f = Fixture::new(Geometry::STANDARD, 64 << 20);
    let h = f.heap(0);
    let a = h.alloc(5 << 20).unwrap();
    let st = h.check().unwrap();
    assert_eq!(st.pages.huge_runs, 1);
    h.free(a).unwrap();
    let b = h.alloc(5 << 20).unwrap();
    assert_eq!(a, b, "a freed huge run is found again");
    h.free(b).unwrap();
    let st = h.check().unwrap();
    assert_eq!(st.pages.pages_used, 0);
}

#[test]
fn full_store_is_an_error_not_a_crash() {
    let f = Fixture::new(Geometry::STANDARD, 8 << 20);
    let h = f.heap(0);
    let mut n = 0;
    loop {
        match h.alloc(100_000) {
            Ok(_) => n += 1,
            Err(Error::Access(crate::sync::AccessError::Full { .. })) => break,
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(n < 1000);
    }
    assert!(n > 10);
    h.check().unwrap();
    // Small blocks still come from space that is left.
    h.alloc(16).unwrap();
}

#[test]
fn bad_frees_are_errors() {
    let f = Fixture::new(Geometry::STANDARD, 16 << 20);
    let h = f.heap(0);
    let b = h.alloc(64).unwrap();
    let raw = |w: u64| Block::from_word(w);
    assert!(matches!(
        h.free(raw(b.get() + 8)),
        Err(Error::BadFree { .. })
    ));
    assert!(matches!(h.free(raw(3)), Err(Error::BadFree { .. })));
    assert!(h.free(raw(1 << 40)).is_err());
    h.free(b).unwrap();
    h.check().unwrap();
}

/// A free found through the process-local index (the last segment, or the page table) checks
/// the offset as the page map does: inside a known segment, an offset that starts no block, or
/// one past the segment's blocks, is still a bad free; and frees that alternate between many
/// segments (table entries that collide) still each reach their own segment.
#[test]
fn frees_found_through_the_index_are_checked() {
    let f = Fixture::new(Geometry::STANDARD, 64 << 20);
    let h = f.heap(0);
    let raw = |w: u64| Block::from_word(w);
    // Enough blocks of every small class for several segments each.
    let mut blocks = Vec::new();
    for _ in 0..3 {
        for &size in classes::CLASS_SIZES.iter() {
            for _ in 0..(1 << 16) / size {
                blocks.push(h.alloc(size).unwrap());
                h.settle(0).unwrap();
            }
        }
    }
    // Each block's segment is now known (the last one, or through the table); an offset 8
    // bytes in (no class size divides it) is refused either way, and nothing changes.
    for b in blocks.iter().step_by(97) {
        h.free(*b).unwrap();
        assert!(matches!(
            h.free(raw(b.get() + 8)),
            Err(Error::BadFree { .. })
        ));
    }
    let freed: std::collections::BTreeSet<Block> = blocks.iter().step_by(97).copied().collect();
    // The rest, in an order that jumps between segments.
    let mut rest: Vec<Block> = blocks.into_iter().filter(|b| !freed.contains(b)).collect();
    let mut seed = 0x0dd_ba11_u64;
    for i in (1..rest.len()).rev() {
        rest.swap(i, (next(&mut seed) % (i as u64 + 1)) as usize);
    }
    for b in rest {
        h.free(b).unwrap();
    }
    let st = h.check().unwrap();
    assert_eq!(st.blocks_allocated, 0);
}

#[test]
fn sweep_frees_unreachable_blocks_and_spares_journaled_ones() {
    let f = Fixture::new(Geometry::STANDARD, 16 << 20);
    let h0 = f.heap(0);
    let h1 = f.heap(1);
    let keep = h0.alloc(32).unwrap();
    h0.settle(0).unwrap();
    let garbage = h0.alloc(32).unwrap();
    h0.settle(0).unwrap();
    let held = h1.alloc(32).unwrap(); // journaled by participant 1, not settled
    let freed = h0.sweep(|b| b != keep).unwrap();
    assert_eq!(freed, 1, "only the unjournaled garbage block is freed");
    let st = h0.check().unwrap();
    assert_eq!(st.blocks_allocated, 2);
    // The garbage block is free again (it comes back), the others are not.
    let again = h0.alloc(32).unwrap();
    assert_eq!(again, garbage);
    assert_ne!(again, held);
}

#[test]
fn recovery_of_a_half_created_segment_pushes_it() {
    let f = Fixture::new(Geometry::STANDARD, 16 << 20);
    let h0 = f.heap(0);
    // Participant 0 got a segment run from the page manager and died before pushing it.
    let seg = h0
        .pages
        .alloc(16, RUN_SEGMENT, 3, Some(table::W_SEGMENT_JOURNAL))
        .unwrap();
    f.live.set_alive(0, false);
    let h1 = f.heap(1);
    assert!(h1.check().is_err(), "an unlisted segment run is reported");
    h1.recover_participant(0).unwrap();
    h1.check().unwrap();
    h1.recover_participant(0).unwrap(); // idempotent
    let st = h1.check().unwrap();
    assert_eq!(st.segments, 1);
    let _ = seg;
}

#[test]
fn recovery_clears_a_dead_claim_and_spares_a_live_one() {
    let f = Fixture::new(Geometry::STANDARD, 16 << 20);
    let h0 = f.heap(0);
    let h1 = f.heap(1);
    let a = h0.pages.alloc(3, RUN_LARGE, 0, None).unwrap();
    h0.pages.free(a).unwrap();
    // Simulate a claim that died after its CAS: set the journal and the bits by hand
    // through the public path: claim, then erase the map entry as if never written.
    let (c, p) = h0.pages.locate(a.get()).unwrap().unwrap();
    let jv = (1u64 << 60) | (c << 26) | (p << 13) | 3;
    f.lock
        .store(
            h0.pages.table.word_offset(0, table::W_PAGE_JOURNAL),
            jv,
            Ordering::SeqCst,
        )
        .unwrap();
    let bw = h0.pages.meta_of(c).unwrap() + 8 + 8 * (p / 32);
    let w = f.store.load(bw, Ordering::SeqCst).unwrap();
    f.store
        .store(bw, w | (0b111 << (p % 32)), Ordering::SeqCst)
        .unwrap();
    assert!(h1.check().is_err());
    // While participant 0 lives, its journal protects the pages.
    h1.pages.sweep_unmapped().unwrap();
    assert!(h1.check().is_err());
    f.live.set_alive(0, false);
    h1.recover_participant(0).unwrap();
    let st = h1.check().unwrap();
    assert_eq!(st.pages.pages_used, 0);
}

#[test]
fn a_damaged_page_journal_is_reported_at_its_word() {
    let f = Fixture::new(Geometry::STANDARD, 16 << 20);
    let h0 = f.heap(0);
    // Opens chunk 0 and claims pages in it, so that the sweep below has claimed pages to judge.
    h0.alloc(64).unwrap();
    h0.settle(0).unwrap();
    let corrupt_at = |r: Result<(), Error>| match r {
        Err(Error::Corrupt { offset, .. }) => offset,
        r => panic!("expected Corrupt, got {r:?}"),
    };
    // A dead participant's claim, and then its huge claim, in chunk 7, which was never opened.
    let dead = h0.pages.table.word_offset(2, table::W_PAGE_JOURNAL);
    f.live.set_alive(2, false);
    for jv in [(1u64 << 60) | (7 << 26) | 1, (3u64 << 60) | (7 << 26) | 2] {
        f.lock.store(dead, jv, Ordering::SeqCst).unwrap();
        assert_eq!(corrupt_at(h0.recover_participant(2)), dead);
    }
    f.lock.store(dead, 0, Ordering::SeqCst).unwrap();
    // A live participant's page journal with an unknown operation, met by the sweep for stray
    // claims when it asks which pages live journals name.
    let live = h0.pages.table.word_offset(3, table::W_PAGE_JOURNAL);
    f.lock.store(live, 7u64 << 60, Ordering::SeqCst).unwrap();
    assert_eq!(corrupt_at(h0.pages.sweep_unmapped()), live);
    f.lock.store(live, 0, Ordering::SeqCst).unwrap();
    h0.pages.sweep_unmapped().unwrap();
    h0.check().unwrap();
}
