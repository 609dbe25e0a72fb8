//! Page runs: two participants claiming and releasing runs in one chunk never share a page, and
//! every page comes back.
//!
//! The bug story: a page is claimed by a CAS on its chunk's bitmap word, and runs of different
//! lengths claim different bit masks of the same word. If a claimer built its new word from a
//! stale read (or a releaser cleared bits with a plain store instead of a CAS on the tagged
//! word), two runs could overlap, or a release could wipe out a claim that raced in, leaving a
//! run whose pages are free in the bitmap. Opening the first chunk is a race of its own (grow the
//! file, then CAS the chunk count): a loser must go on with the winner's chunk, never open a
//! second one over it. Conservation: pages held at once are disjoint, and after all frees
//! `check()` passes with no page used.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{check, model, Held, World, GEO};
use persist::heap::Block;
use persist::page::{RunStart, RUN_LARGE};

/// The offset of page `p` of run `run`, kept in a [`Held`] set like a block.
fn page_of(run: RunStart, p: u64) -> Block {
    Block::from_word(run.get() + p * GEO.page_size)
}

/// Takes (or gives back) every page of a run in `held`.
fn take_run(held: &Held, run: RunStart, pages: u64) {
    for p in 0..pages {
        held.take(page_of(run, p));
    }
}

fn give_run(held: &Held, run: RunStart, pages: u64) {
    for p in 0..pages {
        held.give(page_of(run, p));
    }
}

/// Both threads find no chunk open, race to open it, then each claims and releases a run of
/// a different length in the same bitmap word.
#[test]
fn racing_claims_of_different_lengths_from_an_empty_store() {
    model(|| {
        let world = Arc::new(World::new(1, 2));
        let held = Arc::new(Held::default());
        let threads: Vec<_> = [(0u32, 1u64), (1, 2)]
            .into_iter()
            .map(|(me, n)| {
                let (world, held) = (world.clone(), held.clone());
                thread::spawn(move || {
                    let pm = world.heap(me).pages;
                    let off = pm.alloc(n, RUN_LARGE, 0, None).unwrap();
                    take_run(&held, off, n);
                    give_run(&held, off, n);
                    pm.free(off).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let st = check(&world.heap(0));
        assert_eq!(st.pages.chunks, 1, "only one chunk is opened");
        assert_eq!(st.pages.pages_used, 0);
        assert_eq!(st.pages.runs, 0);
    });
}

/// Claims that are kept: the two runs must be disjoint and both counted.
#[test]
fn kept_runs_are_disjoint_and_counted() {
    model(|| {
        let world = Arc::new(World::new(1, 2));
        // Open the chunk beforehand, so that the model spends its preemptions on the claims.
        let pm = world.heap(0).pages;
        let warm = pm.alloc(1, RUN_LARGE, 0, None).unwrap();
        pm.free(warm).unwrap();
        let held = Arc::new(Held::default());
        let threads: Vec<_> = [(0u32, 2u64), (1, 3)]
            .into_iter()
            .map(|(me, n)| {
                let (world, held) = (world.clone(), held.clone());
                thread::spawn(move || {
                    let off = world.heap(me).pages.alloc(n, RUN_LARGE, 0, None).unwrap();
                    take_run(&held, off, n);
                    (off, n)
                })
            })
            .collect();
        let runs: Vec<(RunStart, u64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let st = check(&world.heap(0));
        assert_eq!(st.pages.pages_used, 5);
        assert_eq!(st.pages.runs, 2);
        let pm = world.heap(0).pages;
        for (off, n) in runs {
            let run = pm.run_at(off.get()).unwrap();
            assert_eq!((run.offset, run.pages), (off, n));
        }
    });
}

/// A release racing a claim on the same bitmap word: the release must not undo the claim, and
/// the claim may reuse the released pages only after they are released.
#[test]
fn release_racing_claims_on_one_word() {
    model(|| {
        let world = Arc::new(World::new(1, 2));
        let held = Arc::new(Held::default());
        let pm = world.heap(0).pages;
        let first = pm.alloc(2, RUN_LARGE, 0, None).unwrap();
        take_run(&held, first, 2);
        let t0 = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                give_run(&held, first, 2);
                world.heap(0).pages.free(first).unwrap();
            })
        };
        let t1 = {
            let (world, held) = (world.clone(), held.clone());
            thread::spawn(move || {
                let pm = world.heap(1).pages;
                let a = pm.alloc(1, RUN_LARGE, 0, None).unwrap();
                take_run(&held, a, 1);
                let b = pm.alloc(2, RUN_LARGE, 0, None).unwrap();
                take_run(&held, b, 2);
                (a, b)
            })
        };
        t0.join().unwrap();
        let (a, b) = t1.join().unwrap();
        let st = check(&world.heap(0));
        assert_eq!(st.pages.pages_used, 3);
        assert_eq!(st.pages.runs, 2);
        let pm = world.heap(0).pages;
        give_run(&held, a, 1);
        pm.free(a).unwrap();
        give_run(&held, b, 2);
        pm.free(b).unwrap();
        assert_eq!(check(&world.heap(0)).pages.pages_used, 0);
    });
}
