//! A sweep of a segment racing allocations and frees in it: no block is freed twice, and a
//! block a live participant has allocated but not linked yet is spared.
//!
//! The bug story: the object layer's gc marks what is reachable and then sweeps each segment,
//! freeing every carved block that is not on the free stack and not marked. Meanwhile other
//! participants allocate (a block popped but not yet linked is unmarked, and only its journal
//! entry says it is in use) and free (a block the sweeper also thinks is garbage would be
//! pushed twice, making a cycle in the free stack and a block handed out twice). The sweeper
//! freezes the anchor so pops stop and pushes go to a deferred stack that it merges back; a pop
//! that raced the freeze must have its journal entry seen by the sweeper. Conservation: the
//! sweep frees exactly the garbage, `check()` passes (the free stack is acyclic and as long as
//! its count), and the blocks allocated are exactly the held ones.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{alloc_or_full, allocated_blocks, check, model, Held, World, SIZE};
use persist::heap::Block;
use std::collections::BTreeSet;

/// A segment with one garbage block, one block its owner will free, and one free block.
/// Returns (world, segment, garbage, owned).
fn segment_with_garbage(slots: u32) -> (Arc<World>, u64, Block, Block) {
    let world = Arc::new(World::new(1, slots));
    let h = world.heap(0);
    let garbage = h.alloc(SIZE).unwrap();
    let owned = h.alloc(SIZE).unwrap();
    let spare = h.alloc(SIZE).unwrap();
    h.settle(0).unwrap();
    h.free(spare).unwrap();
    let seg = h.pages.run_at(garbage.get()).unwrap().offset.get();
    (world, seg, garbage, owned)
}

/// The sweeper (slot 0) runs while participant 1 allocates a block (left journaled, as if
/// about to be linked) and frees the block it owned. The sweep's `is_garbage` says yes to
/// everything but the owned block, as a mark phase would: the new block is unreachable, and
/// only its journal entry protects it.
#[test]
fn sweep_against_alloc_and_free() {
    model(|| {
        let (world, seg, garbage, owned) = segment_with_garbage(2);
        let held = Arc::new(Held::default());
        held.take(owned);
        let sweeper = {
            let world = world.clone();
            thread::spawn(move || world.heap(0).sweep_segment(seg, |b| b != owned).unwrap())
        };
        let user = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let h = world.heap(1);
                // While the segment is frozen it is skipped, and this store cannot grow.
                let b = alloc_or_full(&h);
                if let Some(b) = b {
                    held.take(b);
                }
                held.give(owned);
                h.free(owned).unwrap();
                b
            })
        };
        let freed = sweeper.join().unwrap();
        let mine = user.join().unwrap();
        assert_eq!(freed, 1, "the sweep frees exactly the garbage block");
        let held: BTreeSet<Block> = mine.into_iter().collect();
        let st = check(&world.heap(0));
        assert_eq!(st.blocks_allocated, held.len() as u64);
        assert_eq!(allocated_blocks(&world.heap(0)), held);
        let _ = garbage;
    });
}

/// Two sweepers race for one segment: one freezes it and frees the garbage, the other backs
/// off; the garbage is freed once.
#[test]
fn two_sweepers_free_the_garbage_once() {
    model(|| {
        let (world, seg, garbage, owned) = segment_with_garbage(2);
        let sweepers: Vec<_> = (0..2u32)
            .map(|me| {
                let world = world.clone();
                thread::spawn(move || world.heap(me).sweep_segment(seg, |b| b == garbage).unwrap())
            })
            .collect();
        let freed: u64 = sweepers.into_iter().map(|t| t.join().unwrap()).sum();
        let st = check(&world.heap(0));
        // A sweeper that found the segment frozen frees nothing; the winner may also have
        // finished before the other started, which then finds no garbage left.
        assert_eq!(freed, 1);
        assert_eq!(st.blocks_allocated, 1);
        assert_eq!(allocated_blocks(&world.heap(0)), BTreeSet::from([owned]));
    });
}
