//! The area table: participants that find no room create areas by a CAS of the next word from
//! 0, then open chunks in them; a participant killed at any step leaves a table that the
//! others go on with.
//!
//! The bug story: the table's words decide where every chunk's meta block and data lie, so two
//! creators that both wrote area k (or a creator that wrote area k + 1 over a lost race for
//! area k) would give two participants two layouts of the same chunks, and one's meta words
//! would be the other's data. And a huge claim that creates an area of its own races the
//! participants that open chunks for small runs: a loser must go on with the winner's area,
//! never lose its run or claim a chunk twice. Conservation: after every interleaving (and every
//! kill of the victim, then its recovery), `check()` passes (it checks the table: the words
//! that exist are a prefix and grow, and every opened chunk lies in an area), the runs kept are
//! disjoint and exactly the ones handed out or named by the victim's journal, and a huge run
//! lies in one area.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{check, every_kill_point, model, Budget, Victim, World, GEO};
use persist::heap::{Error, RUN_LARGE};
use persist::page::Run;
use persist::region::table;

const VICTIM: u32 = 0;
const SURVIVOR: u32 = 1;

fn runs_of(world: &World) -> Vec<Run> {
    let mut runs = Vec::new();
    world
        .heap(SURVIVOR)
        .pages
        .for_each_run(|r| {
            runs.push(r);
            Ok(())
        })
        .unwrap();
    runs
}

/// Both threads find the area table empty, race to create area 0 and open chunk 0 in it, then
/// each claims and keeps a run: one area and one chunk serve both.
#[test]
fn racing_openers_share_the_first_area() {
    model(|| {
        let world = Arc::new(World::bare(2, 2));
        let threads: Vec<_> = [(0u32, 1u64), (1, 2)]
            .into_iter()
            .map(|(me, n)| {
                let world = world.clone();
                thread::spawn(move || world.heap(me).pages.alloc(n, RUN_LARGE, 0, None).unwrap())
            })
            .collect();
        let got: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let st = check(&world.heap(0));
        assert_eq!(
            st.pages.chunks, 1,
            "a loser of the area race opened a second chunk"
        );
        assert_eq!(st.pages.pages_used, 3);
        assert_ne!(got[0], got[1]);
        assert_eq!(runs_of(&world).len(), 2);
    });
}

/// The victim, killed at every step, claims a huge run of two chunks that needs an area of
/// its own, while the survivor claims a page (creating area 0, or opening a chunk in the
/// victim's area if that came first). The store holds six chunks: a survivor that opens the
/// first chunk of the victim's new area sends the victim on to the next. After the victim's
/// recovery, the table and the pages check, the survivor's page is there, and any other run
/// is the victim's: two whole chunks of one area, handed out or named by its block journal.
#[test]
fn killed_while_creating_an_area_for_a_huge_run() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::bare(6, 2));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let budget = Budget::new(k);
                let v = Victim::new(&world, &budget);
                let pages = 2 * GEO.chunk_pages;
                let r =
                    v.heap(VICTIM)
                        .pages
                        .alloc(pages, RUN_LARGE, 0, Some(table::W_BLOCK_JOURNAL));
                let got = match r {
                    Ok(run) => Some(run),
                    Err(e) => {
                        assert!(
                            budget.killed(),
                            "the victim failed without being killed: {e}"
                        );
                        None
                    }
                };
                (got, budget.spent())
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
        let journaled = world.table().load(VICTIM, table::W_BLOCK_JOURNAL).unwrap();
        world.kill(VICTIM);
        let h = world.heap(SURVIVOR);
        h.recover_participant(VICTIM).unwrap();
        let st = check(&h);
        let runs = runs_of(&world);
        assert!(runs.iter().any(|r| r.offset == mine && r.pages == 1));
        let mut used = 1;
        for r in &runs {
            if r.offset != mine {
                assert_eq!(r.pages, 2 * GEO.chunk_pages, "a stray run {r:?}");
                assert!(
                    got == Some(r.offset) || journaled == r.offset.get(),
                    "run {r:?} is neither the survivor's nor named by the victim"
                );
                used += r.pages;
                h.pages.free(r.offset).unwrap();
            }
        }
        assert_eq!(st.pages.pages_used, used);
        assert_eq!(check(&h).pages.pages_used, 1);
        // The freed chunks (or the area the victim created) serve the next huge run.
        match h.pages.alloc(2 * GEO.chunk_pages, RUN_LARGE, 0, None) {
            Ok(again) => h.pages.free(again).unwrap(),
            // The victim died after creating an area that the survivor's chunk then split:
            // the six chunks may all be spoken for by areas too short for the run.
            Err(Error::Access(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
        check(&h);
        spent
    }
    every_kill_point(scenario);
}
