//! Recovery is idempotent: a recoverer killed at any step, followed by another recoverer, leaves
//! the store as one complete recovery would.
//!
//! The bug story: recovery finishes or undoes what a dead participant left in its journals
//! (clears stray page claims, pushes a half-created segment, unfreezes a half-swept one), and
//! the recoverer is an ordinary process that may be SIGKILLed too. If a step of recovery were
//! not safe to repeat (say, pushing a segment that the first recoverer had already pushed, or
//! clearing the journal before the work it names), the second recoverer would list a segment
//! twice, leak a claimed page for good, or leave a segment frozen forever. Recovery is
//! exclusive (the dead slot's OFD lock), so the recoverers run one after the other. For every
//! kill point k1 of the victim and every kill point k2 of the first recoverer (each pair its
//! own loom model), the second recoverer's work must leave `check()` passing, and the sweep and
//! drain of `conserve` must account for every block.
#![cfg(loom)]

use loom_tests::{check, conserve, every_kill_pair, survived, Budget, Victim, World, SIZE};
use persist::heap::{Block, RUN_LARGE};
use persist::region::table;
use std::collections::BTreeSet;

const VICTIM: u32 = 0;
const FIRST: u32 = 1;
const SECOND: u32 = 2;

/// What the victim does before it dies.
#[derive(Clone, Copy)]
enum Op {
    /// A first allocation: creates the segment (page claim, header, push) and pops a block.
    CreateSegment,
    /// A sweep of a segment, with a block freed after the sweeper stopped.
    Sweep,
    /// A page run for a large block.
    PageRun,
}

/// Sets up, kills the victim after k1 accesses, recovers with a first recoverer killed after k2
/// accesses, then with a second one, and checks. Returns the accesses the victim and the first
/// recoverer made.
fn scenario(op: Op, k1: u64, k2: u64) -> (u64, u64) {
    let world = World::new(1, 3);
    let mut victims = BTreeSet::new();
    let mut held = BTreeSet::new();
    let b1 = Budget::new(k1);
    match op {
        Op::CreateSegment => {
            let v = Victim::new(&world, &b1);
            victims.extend(survived(v.heap(VICTIM).alloc(SIZE), &b1));
        }
        Op::Sweep => {
            let h = world.heap(SECOND);
            let keep = h.alloc(SIZE).unwrap();
            let garbage = h.alloc(SIZE).unwrap();
            h.settle(0).unwrap();
            held.insert(keep);
            victims.insert(garbage);
            let seg = h.pages.run_at(keep.get()).unwrap().offset.get();
            let third = h.alloc(SIZE).unwrap();
            h.settle(0).unwrap();
            let v = Victim::new(&world, &b1);
            survived(v.heap(VICTIM).sweep_segment(seg, |b| b == garbage), &b1);
            // Freed after the sweeper stopped: onto the deferred stack if it left the segment
            // frozen. A recoverer killed between taking the deferred stack and publishing it
            // loses this block to the next sweep (a leak that heals, never a reuse), so it
            // may be found allocated by nobody.
            h.free(third).unwrap();
            victims.insert(third);
        }
        Op::PageRun => {
            let v = Victim::new(&world, &b1);
            let jw = table::W_BLOCK_JOURNAL;
            survived(v.heap(VICTIM).pages.alloc(2, RUN_LARGE, 0, Some(jw)), &b1);
        }
    }
    let j = world.table().load(VICTIM, table::W_BLOCK_JOURNAL).unwrap() & !table::JOURNAL_TAKEN;
    if j != 0 {
        victims.insert(Block::from_word(j));
    }
    world.kill(VICTIM);
    let b2 = Budget::new(k2);
    {
        let r = Victim::new(&world, &b2);
        survived(r.heap(FIRST).recover_participant(VICTIM), &b2);
    }
    if b2.killed() {
        world.kill(FIRST);
    }
    let h = world.heap(SECOND);
    h.recover_participant(VICTIM).unwrap();
    if b2.killed() {
        // The first recoverer's own slot: recovery touched no journal of its own.
        h.recover_participant(FIRST).unwrap();
    }
    match op {
        Op::PageRun => {
            // A run the victim completed is its unlinked large block: the gc frees it.
            let mut runs = Vec::new();
            h.pages
                .for_each_run(|r| {
                    runs.push(r);
                    Ok(())
                })
                .unwrap();
            assert!(runs.len() <= 1);
            for r in runs {
                assert_eq!(r.pages, 2);
                h.free(Block::from(r.offset)).unwrap();
            }
            assert_eq!(check(&h).pages.pages_used, 0);
        }
        _ => conserve(&world, SECOND, &held, &victims),
    }
    (b1.spent(), b2.spent())
}

/// Runs `scenario(op, k1, k2)` for every victim kill point k1 (including none: the operation
/// completes and the victim dies before linking its result) and every kill point k2 of the first
/// recoverer, each as a loom model of its own.
fn every_pair(op: Op) {
    every_kill_pair(move |k1, k2| scenario(op, k1, k2));
}

#[test]
fn recoverer_killed_after_a_segment_creation() {
    every_pair(Op::CreateSegment);
}

#[test]
fn recoverer_killed_after_a_sweep() {
    every_pair(Op::Sweep);
}

#[test]
fn recoverer_killed_after_a_page_claim() {
    every_pair(Op::PageRun);
}
