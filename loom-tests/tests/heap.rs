//! Small blocks freed by another thread than the one that allocated them, while the allocator
//! keeps allocating; and two first allocations racing to create a class's segment.
//!
//! The bug story: in Michael's allocator (and ours) a block freed by another participant is
//! the ordinary case, so pops by the owner race pushes by a stranger on one anchor word. A push
//! that wrote the block's link after its CAS (or with a weaker order than the CAS publishes), or
//! a pop that trusted a link read before its CAS, would let a popper follow a link into a block
//! that is already handed out, or drop a freed block from the stack. Segment creation pushes onto
//! a class list that others walk; a lost push leaves a segment run on no list (`check()` reports
//! it), a doubled one lists a segment twice. Conservation: no block is held by two threads at
//! once, the blocks counted allocated at the end are exactly those still held, and allocating
//! until the store is full never returns a held block.
#![cfg(loom)]

use loom::sync::{mpsc, Arc};
use loom::thread;
use loom_tests::{
    allocated_blocks, check, conserve_sized, model, Held, World, CACHED_PER_SEGMENT, CACHED_SIZE,
};
use persist::heap::{Block, Error};
use persist::sync::AccessError;
use std::collections::BTreeSet;

/// 2560-byte blocks: three to a tiny-geometry segment, so a segment is exhausted quickly.
const SIZE: u64 = 2560;

/// Allocates with participant `me` until the store is full, asserting that no held block comes
/// back; returns how many blocks it got.
fn drain(world: &World, me: u32, held: &BTreeSet<Block>) -> u64 {
    let h = world.heap(me);
    let mut n = 0;
    loop {
        match h.alloc(SIZE) {
            Ok(b) => {
                assert!(!held.contains(&b), "held block {b:#x} handed out again");
                n += 1;
                assert!(n <= 3, "more blocks than the store holds");
            }
            Err(Error::Access(AccessError::Full { .. })) => return n,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}

#[test]
fn cross_thread_frees_while_allocating() {
    model(|| {
        // One chunk: room for exactly one segment of three blocks.
        let world = Arc::new(World::new(1, 2));
        let h = world.heap(0);
        let warm = h.alloc(SIZE).unwrap();
        h.free(warm).unwrap();
        let held = Arc::new(Held::default());
        let (tx, rx) = mpsc::channel::<Block>();
        let a = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let h = world.heap(0);
                for _ in 0..2 {
                    let b = h.alloc(SIZE).unwrap();
                    held.take(b);
                    tx.send(b).unwrap();
                }
                let b = h.alloc(SIZE).unwrap();
                held.take(b);
                b
            })
        };
        let b = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let h = world.heap(1);
                for _ in 0..2 {
                    let b = rx.recv().unwrap();
                    held.give(b);
                    h.free(b).unwrap();
                }
                // And pops, racing A's last pop on the same anchor.
                let b = h.alloc(SIZE).unwrap();
                held.take(b);
                b
            })
        };
        let kept = BTreeSet::from([a.join().unwrap(), b.join().unwrap()]);
        let st = check(&world.heap(0));
        assert_eq!(st.blocks_allocated, 2);
        assert_eq!(allocated_blocks(&world.heap(0)), kept);
        assert_eq!(drain(&world, 1, &held.snapshot()), 1);
        assert_eq!(check(&world.heap(0)).blocks_allocated, 3);
    });
}

/// A first allocation creates the class's segment (claims the chunk, writes the page map and
/// the header, pushes it on the class list, carves a block) while another participant walks
/// the class list: a segment is seen either not at all or whole (its header agrees with its
/// page-map run), never half-written. (Two creations racing each other, or a second allocator
/// racing for the chunk, take over ten minutes at depth 2: the models above and `kill.rs` cover
/// the pieces of that race.)
#[test]
fn segment_creation_is_published_whole() {
    model(|| {
        let world = Arc::new(World::new(1, 2));
        let creator = {
            let world = world.clone();
            thread::spawn(move || world.heap(0).alloc(SIZE).unwrap())
        };
        let walker = {
            let world = world.clone();
            thread::spawn(move || {
                let mut seen = Vec::new();
                world
                    .heap(1)
                    .for_each_segment(|info| {
                        seen.push(info);
                        Ok(())
                    })
                    .unwrap();
                seen
            })
        };
        let b = creator.join().unwrap();
        let seen = walker.join().unwrap();
        assert!(seen.len() <= 1);
        for info in &seen {
            assert_eq!(info.nblocks, 3);
            assert_eq!(info.block_size, SIZE);
        }
        let st = check(&world.heap(0));
        assert_eq!(st.segments, 1);
        assert_eq!(allocated_blocks(&world.heap(0)), BTreeSet::from([b]));
        assert_eq!(drain(&world, 1, &BTreeSet::from([b])), 2);
    });
}

/// The same hand-over in a cached class: B's frees land in B's block cache (in its slot, where
/// sweeps and `check()` see them), and B's next allocation is served from there, while A keeps
/// allocating from the segment. A block must never be both in B's cache and handed to A.
#[test]
fn cross_thread_frees_through_the_block_cache() {
    model(|| {
        let world = Arc::new(World::new(1, 2));
        let h = world.heap(0);
        let warm = h.alloc(CACHED_SIZE).unwrap();
        h.free(warm).unwrap();
        h.flush_cache().unwrap();
        let held = Arc::new(Held::default());
        let (tx, rx) = mpsc::channel::<Block>();
        let a = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let h = world.heap(0);
                let b = h.alloc(CACHED_SIZE).unwrap();
                held.take(b);
                tx.send(b).unwrap();
                let b = h.alloc(CACHED_SIZE).unwrap();
                held.take(b);
                b
            })
        };
        let b = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let h = world.heap(1);
                let x = rx.recv().unwrap();
                held.give(x);
                h.free(x).unwrap();
                let y = h.alloc(CACHED_SIZE).unwrap();
                held.take(y);
                assert_eq!(y, x, "the freer's next allocation comes from its cache");
                y
            })
        };
        let kept = BTreeSet::from([a.join().unwrap(), b.join().unwrap()]);
        let st = check(&world.heap(0));
        assert_eq!(st.blocks_allocated, 2);
        assert_eq!(allocated_blocks(&world.heap(0)), kept);
        conserve_sized(
            &world,
            1,
            CACHED_SIZE,
            CACHED_PER_SEGMENT,
            &kept,
            &BTreeSet::new(),
        );
    });
}
