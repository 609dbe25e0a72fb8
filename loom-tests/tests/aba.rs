//! The ABA interleaving on a segment's free stack.
//!
//! The bug story (Treiber stack ABA): T1 reads the anchor (head h) and h's link n, and is
//! preempted before its CAS. T2 pops h, pops n, and pushes h back. The head is h again, so an
//! untagged CAS by T1 would succeed and install n as the head, although T2 holds n: n is then
//! handed out twice, and the free stack leads through a block in use. The anchor's tag (bumped by
//! every CAS) must make T1's CAS fail. Conservation: no block held twice at once, `check()`
//! passes, the blocks counted allocated are exactly the held ones, and allocating until the
//! store is full never returns a held block.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{allocated_blocks, check, model, Held, World};
use persist::heap::{Block, Error};
use persist::sync::AccessError;

/// 2560-byte blocks: a tiny-geometry segment holds exactly three.
const SIZE: u64 = 2560;

/// A store of one segment whose three blocks are all on the free stack (head first: b0, b1,
/// b2), nothing carved left; participants 0..slots attached.
fn three_free_blocks(slots: u32) -> (Arc<World>, [Block; 3]) {
    let world = Arc::new(World::new(1, slots));
    let h = world.heap(0);
    let b = [
        h.alloc(SIZE).unwrap(),
        h.alloc(SIZE).unwrap(),
        h.alloc(SIZE).unwrap(),
    ];
    for &x in b.iter().rev() {
        h.free(x).unwrap();
    }
    (world, b)
}

/// After the threads: the free stack and the held set together account for the three blocks.
fn conserve(world: &World, held: &Held) {
    let held = held.snapshot();
    let st = check(&world.heap(0));
    assert_eq!(st.blocks_allocated, held.len() as u64);
    assert_eq!(allocated_blocks(&world.heap(0)), held);
    let h = world.heap(0);
    let mut got = 0;
    loop {
        match h.alloc(SIZE) {
            Ok(b) => {
                assert!(!held.contains(&b), "held block {b:#x} handed out again");
                got += 1;
            }
            Err(Error::Access(AccessError::Full { .. })) => break,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(got + held.len(), 3);
    check(&world.heap(0));
}

/// T1 pops once; T2 pops twice and pushes its first block back.
#[test]
fn pop_against_pop_pop_push() {
    model(|| {
        let (world, _) = three_free_blocks(2);
        let held = Arc::new(Held::default());
        let t1 = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let b = world.heap(0).alloc(SIZE).unwrap();
                held.take(b);
            })
        };
        let t2 = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let h = world.heap(1);
                let x = h.alloc(SIZE).unwrap();
                held.take(x);
                let y = h.alloc(SIZE).unwrap();
                held.take(y);
                held.give(x);
                h.free(x).unwrap();
            })
        };
        t1.join().unwrap();
        t2.join().unwrap();
        conserve(&world, &held);
    });
}

/// Three participants: T1 pops, T2 pops and pushes back, T3 frees a block it held.
#[test]
fn pop_against_pop_push_and_a_stranger_free() {
    model(|| {
        let (world, b) = three_free_blocks(3);
        let held = Arc::new(Held::default());
        // Take b0 off the stack for T3 to free: the stack is b1, b2.
        let h = world.heap(2);
        let x = h.alloc(SIZE).unwrap();
        assert_eq!(x, b[0]);
        held.take(x);
        let t1 = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let b = world.heap(0).alloc(SIZE).unwrap();
                held.take(b);
            })
        };
        let t2 = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let h = world.heap(1);
                let y = h.alloc(SIZE).unwrap();
                held.take(y);
                held.give(y);
                h.free(y).unwrap();
            })
        };
        let t3 = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                held.give(x);
                world.heap(2).free(x).unwrap();
            })
        };
        t1.join().unwrap();
        t2.join().unwrap();
        t3.join().unwrap();
        conserve(&world, &held);
    });
}
