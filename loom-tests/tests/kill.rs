//! A participant SIGKILLed between any two of its allocator steps, then recovered.
//!
//! The bug story: every allocator step is meant to be one CAS that leaves the shared words
//! consistent, with a journal word (in the participant's slot) naming what is in flight. A
//! participant killed after claiming pages but before writing their map entries, after taking
//! a segment run but before pushing it on its class list, after popping a block but before its
//! caller linked it, half-way through freeing or sweeping, leaves something that only its
//! journal explains. If recovery misreads a journal it either leaks (a run on no class list, a
//! claimed page in no run: `check()` fails) or, worse, frees something that is in use (a block
//! or page handed out twice). Each model kills the victim after its k-th word access, for
//! every k from 0 to the accesses its operation takes (measured first, each k its own loom
//! model), while a survivor allocates and frees; then the victim is marked dead, a survivor
//! recovers it, a sweep collects what the dead one held unlinked, and the conservation law is
//! asserted: `check()` passes, the blocks (pages) counted allocated are exactly the survivor's,
//! and allocating until the store is full never returns a block the survivor holds.
//!
//! The kill lands before a `word()` access (see `KillableWords`): operations the allocator makes
//! on an `&AtomicU64` it already holds (the anchor and carve CASes, the class-list push) cannot
//! be separated from the access before them.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{
    alloc_or_full, check, conserve, conserve_sized, every_kill_point, Budget, Held, Victim, World,
    CACHED_PER_SEGMENT, CACHED_SIZE, GEO, SIZE,
};
use persist::heap::{Block, Error, RUN_LARGE};
use persist::region::table;
use std::collections::BTreeSet;

const VICTIM: u32 = 0;
const SURVIVOR: u32 = 1;

/// The result of an operation by a participant that may have been killed: `None` if the kill
/// stopped it, and any other error is a failure of the model.
fn survived<T>(r: Result<T, Error>, budget: &Budget) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(
                budget.killed(),
                "the victim failed without being killed: {e}"
            );
            None
        }
    }
}

/// Kills the victim and recovers it from the survivor's side; returns the block the victim's
/// journal named (a block it may have popped and not linked).
fn kill_and_recover(world: &World) -> Option<Block> {
    let j = world.table().load(VICTIM, table::W_BLOCK_JOURNAL).unwrap() & !table::JOURNAL_TAKEN;
    world.kill(VICTIM);
    world.heap(SURVIVOR).recover_participant(VICTIM).unwrap();
    (j != 0).then_some(Block::from_word(j))
}

/// The victim allocates a block (pop, or carve) while the survivor frees a block and
/// allocates one.
#[test]
fn killed_while_allocating_a_block() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(1, 2));
        let h = world.heap(SURVIVOR);
        let s0 = h.alloc(SIZE).unwrap();
        let s1 = h.alloc(SIZE).unwrap();
        h.settle(0).unwrap();
        h.free(s1).unwrap();
        // One block on the stack (s1), one never carved; the survivor holds s0.
        let held = Arc::new(Held::default());
        held.take(s0);
        let victim = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let budget = Budget::new(k);
                let v = Victim::new(&world, &budget);
                let got = survived(v.heap(VICTIM).alloc(SIZE), &budget);
                if let Some(b) = got {
                    held.take(b);
                }
                (got, budget.spent())
            })
        };
        let survivor = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let h = world.heap(SURVIVOR);
                held.give(s0);
                h.free(s0).unwrap();
                let b = h.alloc(SIZE).unwrap();
                held.take(b);
                b
            })
        };
        let (got, spent) = victim.join().unwrap();
        let mine = survivor.join().unwrap();
        let journaled = kill_and_recover(&world);
        let victims: BTreeSet<Block> = got.into_iter().chain(journaled).collect();
        conserve(&world, SURVIVOR, &BTreeSet::from([mine]), &victims);
        spent
    }
    every_kill_point(scenario);
}

/// The victim frees a block it holds while the survivor frees one and allocates one.
#[test]
fn killed_while_freeing_a_block() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(1, 2));
        let h = world.heap(SURVIVOR);
        let s0 = h.alloc(SIZE).unwrap();
        h.settle(0).unwrap();
        let v0 = world.heap(VICTIM).alloc(SIZE).unwrap();
        world.heap(VICTIM).settle(0).unwrap();
        // One block never carved; the survivor holds s0, the victim v0.
        let held = Arc::new(Held::default());
        held.take(s0);
        held.take(v0);
        let victim = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let budget = Budget::new(k);
                let v = Victim::new(&world, &budget);
                held.give(v0);
                survived(v.heap(VICTIM).free(v0), &budget);
                budget.spent()
            })
        };
        let survivor = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let h = world.heap(SURVIVOR);
                held.give(s0);
                h.free(s0).unwrap();
                let b = h.alloc(SIZE).unwrap();
                held.take(b);
                b
            })
        };
        let spent = victim.join().unwrap();
        let mine = survivor.join().unwrap();
        let journaled = kill_and_recover(&world);
        let victims: BTreeSet<Block> = [v0].into_iter().chain(journaled).collect();
        conserve(&world, SURVIVOR, &BTreeSet::from([mine]), &victims);
        spent
    }
    every_kill_point(scenario);
}

/// The victim's first allocation creates the class's segment (claims the chunk's pages, writes
/// their map, hands the run to its segment journal, writes the header, pushes it, pops a
/// block); it is killed alone, and its recovery then races a survivor's first allocation.
#[test]
fn killed_while_creating_a_segment() {
    fn scenario(k: u64) -> u64 {
        // Slot 2 recovers while the survivor (slot 1) allocates.
        let world = Arc::new(World::new(1, 3));
        let budget = Budget::new(k);
        let got = {
            let v = Victim::new(&world, &budget);
            survived(v.heap(VICTIM).alloc(SIZE), &budget)
        };
        let journaled =
            world.table().load(VICTIM, table::W_BLOCK_JOURNAL).unwrap() & !table::JOURNAL_TAKEN;
        world.kill(VICTIM);
        let survivor = {
            let world = world.clone();
            thread::spawn(move || alloc_or_full(&world.heap(SURVIVOR)))
        };
        world.heap(2).recover_participant(VICTIM).unwrap();
        let mine = survivor.join().unwrap();
        let victims: BTreeSet<Block> = got
            .into_iter()
            .chain((journaled != 0).then_some(Block::from_word(journaled)))
            .collect();
        let held: BTreeSet<Block> = mine.into_iter().collect();
        conserve(&world, SURVIVOR, &held, &victims);
        budget.spent()
    }
    every_kill_point(scenario);
}

/// The victim claims a run of pages (a large block handed over to a block journal) while the
/// survivor claims and keeps a page in the same bitmap word. After recovery the pages in use
/// are exactly the survivor's page plus, if the victim's claim got as far as its map entry, the
/// victim's run (which the object layer's gc would then free).
#[test]
fn killed_while_claiming_a_page_run() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(1, 2));
        let pm = world.heap(SURVIVOR).pages;
        let warm = pm.alloc(1, RUN_LARGE, 0, None).unwrap();
        pm.free(warm).unwrap();
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let budget = Budget::new(k);
                let v = Victim::new(&world, &budget);
                let h = v.heap(VICTIM);
                let jw = table::W_BLOCK_JOURNAL;
                (
                    survived(h.pages.alloc(2, RUN_LARGE, 0, Some(jw)), &budget),
                    budget.spent(),
                )
            })
        };
        let survivor = {
            let world = world.clone();
            thread::spawn(move || {
                world
                    .heap(SURVIVOR)
                    .pages
                    .alloc(1, RUN_LARGE, 0, None)
                    .unwrap()
            })
        };
        let (got, spent) = victim.join().unwrap();
        let mine = survivor.join().unwrap();
        let journaled =
            world.table().load(VICTIM, table::W_BLOCK_JOURNAL).unwrap() & !table::JOURNAL_TAKEN;
        world.kill(VICTIM);
        let h = world.heap(SURVIVOR);
        h.recover_participant(VICTIM).unwrap();
        let st = check(&h);
        let mut runs = Vec::new();
        h.pages
            .for_each_run(|r| {
                runs.push(r);
                Ok(())
            })
            .unwrap();
        assert!(runs.iter().any(|r| r.offset == mine && r.pages == 1));
        for r in &runs {
            if r.offset != mine {
                assert_eq!(r.pages, 2, "a stray run {r:?}");
                assert!(
                    got == Some(r.offset) || journaled == r.offset.get(),
                    "run {r:?} is neither the survivor's nor named by the victim"
                );
                h.free(Block::from(r.offset)).unwrap();
            }
        }
        assert_eq!(
            st.pages.pages_used,
            runs.iter().map(|r| r.pages).sum::<u64>()
        );
        let st = check(&h);
        assert_eq!(st.pages.pages_used, 1);
        spent
    }
    every_kill_point(scenario);
}

/// The victim allocates a large block (more than a chunk: a huge run of two chunks, area 1)
/// while the survivor claims a page in chunk 0 (area 0, one chunk). (`tests/areas.rs` has a
/// huge claim that creates its area.)
#[test]
fn killed_while_claiming_a_huge_run() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::with_areas(&[1, 3], 2));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let budget = Budget::new(k);
                let v = Victim::new(&world, &budget);
                let big = GEO.chunk_bytes() + 1;
                (survived(v.heap(VICTIM).alloc(big), &budget), budget.spent())
            })
        };
        let survivor = {
            let world = world.clone();
            thread::spawn(move || {
                world
                    .heap(SURVIVOR)
                    .pages
                    .alloc(1, RUN_LARGE, 0, None)
                    .unwrap()
            })
        };
        let (got, spent) = victim.join().unwrap();
        let mine = survivor.join().unwrap();
        let journaled =
            world.table().load(VICTIM, table::W_BLOCK_JOURNAL).unwrap() & !table::JOURNAL_TAKEN;
        world.kill(VICTIM);
        let h = world.heap(SURVIVOR);
        h.recover_participant(VICTIM).unwrap();
        let st = check(&h);
        let mut runs = Vec::new();
        h.pages
            .for_each_run(|r| {
                runs.push(r);
                Ok(())
            })
            .unwrap();
        assert!(runs.iter().any(|r| r.offset == mine && r.pages == 1));
        for r in &runs {
            if r.offset != mine {
                assert_eq!(r.pages, 2 * GEO.chunk_pages, "a stray run {r:?}");
                assert!(
                    got == Some(Block::from(r.offset)) || journaled == r.offset.get(),
                    "run {r:?} is neither the survivor's nor named by the victim"
                );
                h.free(Block::from(r.offset)).unwrap();
            }
        }
        assert_eq!(
            st.pages.pages_used,
            runs.iter().map(|r| r.pages).sum::<u64>()
        );
        let st = check(&h);
        assert_eq!(st.pages.pages_used, 1);
        // The freed chunks are found again by the next large allocation.
        let again = h.alloc(GEO.chunk_bytes() + 1).unwrap();
        h.free(again).unwrap();
        spent
    }
    every_kill_point(scenario);
}

/// The victim sweeps the segment (garbage: one block) while the survivor frees a block (to the
/// deferred stack if the segment is frozen) and allocates one. After recovery unfreezes the
/// segment, a second sweep collects what the dead sweeper left (its garbage, and deferred
/// frees it had taken but not published).
#[test]
fn killed_while_sweeping() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(1, 2));
        let h = world.heap(SURVIVOR);
        let keep = h.alloc(SIZE).unwrap();
        let garbage = h.alloc(SIZE).unwrap();
        let spare = h.alloc(SIZE).unwrap();
        h.settle(0).unwrap();
        h.free(spare).unwrap();
        let seg = h.pages.run_at(keep.get()).unwrap().offset.get();
        let held = Arc::new(Held::default());
        held.take(keep);
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let budget = Budget::new(k);
                let v = Victim::new(&world, &budget);
                survived(v.heap(VICTIM).sweep_segment(seg, |b| b == garbage), &budget);
                budget.spent()
            })
        };
        let survivor = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let h = world.heap(SURVIVOR);
                held.give(keep);
                h.free(keep).unwrap();
                // A frozen segment is skipped, so with a sweep in progress the store is full.
                let b = alloc_or_full(&h);
                if let Some(b) = b {
                    held.take(b);
                }
                b
            })
        };
        let spent = victim.join().unwrap();
        let mine = survivor.join().unwrap();
        let journaled = kill_and_recover(&world);
        let victims: BTreeSet<Block> = [garbage, keep].into_iter().chain(journaled).collect();
        conserve(&world, SURVIVOR, &mine.into_iter().collect(), &victims);
        spent
    }
    every_kill_point(scenario);
}

/// The victim frees two blocks (into its block cache) and allocates one (from the cache) while
/// the survivor allocates in the same class. Killed with blocks in its cache, it has them given
/// back by its recovery (a block whose free the kill cut short may be left to a sweep); they
/// must never be handed out while the cache still names them (tests/dead_cache.rs kills the
/// recoverer too).
#[test]
fn killed_with_blocks_in_its_cache() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(1, 2));
        let vh = world.heap(VICTIM);
        let v0 = vh.alloc(CACHED_SIZE).unwrap();
        let v1 = vh.alloc(CACHED_SIZE).unwrap();
        vh.settle(0).unwrap();
        let held = Arc::new(Held::default());
        held.take(v0);
        held.take(v1);
        let victim = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let budget = Budget::new(k);
                let v = Victim::new(&world, &budget);
                let h = v.heap(VICTIM);
                held.give(v0);
                if survived(h.free(v0), &budget).is_none() {
                    return budget.spent();
                }
                held.give(v1);
                if survived(h.free(v1), &budget).is_none() {
                    return budget.spent();
                }
                if let Some(b) = survived(h.alloc(CACHED_SIZE), &budget) {
                    held.take(b);
                }
                budget.spent()
            })
        };
        let survivor = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let b = world.heap(SURVIVOR).alloc(CACHED_SIZE).unwrap();
                held.take(b);
                b
            })
        };
        let spent = victim.join().unwrap();
        let mine = survivor.join().unwrap();
        let journaled = kill_and_recover(&world);
        let victims: BTreeSet<Block> = [v0, v1].into_iter().chain(journaled).collect();
        conserve_sized(
            &world,
            SURVIVOR,
            CACHED_SIZE,
            CACHED_PER_SEGMENT,
            &BTreeSet::from([mine]),
            &victims,
        );
        spent
    }
    every_kill_point(scenario);
}
