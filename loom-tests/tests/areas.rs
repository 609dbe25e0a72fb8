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
use persist::heap::RUN_LARGE;
use persist::page::Run;
use persist::region::table;
use persist::sync::WordStore;

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

/// The victim, killed at every step, claims a huge run of two chunks after the survivor has
/// taken a page in the store's first area (one chunk): the run needs an area of its own. Then,
/// before anyone recovers the victim, the survivor claims a huge run of two chunks too: it uses
/// an area the victim created but did not open, or makes its own, and never overlaps what the
/// victim holds. After the victim's recovery the table and the pages check, and every run is
/// the survivor's or the victim's (handed out or named by its block journal), two whole chunks
/// of one area each.
///
/// (The two claims run one after the other: with the survivor's page claim concurrent, one
/// interleaving search alone ran for over 12 minutes at `LOOM_MAX_PREEMPTIONS=2`. The race is
/// the next model's.)
#[test]
fn killed_while_creating_an_area_for_a_huge_run() {
    fn scenario(k: u64) -> u64 {
        let world = World::bare(6, 2);
        let pages = 2 * GEO.chunk_pages;
        let h = world.heap(SURVIVOR);
        let mine = h.pages.alloc(1, RUN_LARGE, 0, None).unwrap();
        let (got, spent) = {
            let budget = Budget::new(k);
            let v = Victim::new(&world, &budget);
            let r = v
                .heap(VICTIM)
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
        };
        let journaled =
            world.table().load(VICTIM, table::W_BLOCK_JOURNAL).unwrap() & !table::JOURNAL_TAKEN;
        world.kill(VICTIM);
        let big = h.pages.alloc(pages, RUN_LARGE, 0, None).unwrap();
        h.recover_participant(VICTIM).unwrap();
        let st = check(&h);
        let runs = runs_of(&world);
        assert!(runs.iter().any(|r| r.offset == mine && r.pages == 1));
        assert!(runs.iter().any(|r| r.offset == big && r.pages == pages));
        let mut used = 1 + pages;
        for r in &runs {
            if r.offset != mine && r.offset != big {
                assert_eq!(r.pages, pages, "a stray run {r:?}");
                assert!(
                    got == Some(r.offset) || journaled == r.offset.get(),
                    "run {r:?} is neither the survivor's nor named by the victim"
                );
                used += r.pages;
                h.pages.free(r.offset).unwrap();
            }
        }
        assert_eq!(st.pages.pages_used, used);
        h.pages.free(big).unwrap();
        assert_eq!(check(&h).pages.pages_used, 1);
        // Freed huge runs are empty chunks: the next huge run reuses them, growing nothing.
        let (size, chunks) = (world.store.size(), check(&h).pages.chunks);
        let again = h.pages.alloc(pages, RUN_LARGE, 0, None).unwrap();
        assert_eq!(
            world.store.size(),
            size,
            "a huge run after frees grew the store"
        );
        assert_eq!(check(&h).pages.chunks, chunks);
        h.pages.free(again).unwrap();
        spent
    }
    every_kill_point(scenario);
}

/// A huge claim that needs an area of its own races a page claim that needs one too, from an
/// empty table: whoever creates area 0, and whichever chunk the page claim opens (possibly the
/// first of the huge claim's new area, which sends the huge claim on to a later area), both
/// succeed, their runs are disjoint, and the table and the pages check. Explored with at most
/// one preemption (see the previous model for why).
#[test]
fn a_huge_claim_races_a_page_claim_for_new_areas() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.map_or(1, |p| p.min(1)));
    b.max_branches = 50_000;
    b.check(|| {
        let world = Arc::new(World::bare(6, 2));
        let pages = 2 * GEO.chunk_pages;
        let huge = {
            let world = world.clone();
            thread::spawn(move || {
                world
                    .heap(VICTIM)
                    .pages
                    .alloc(pages, RUN_LARGE, 0, None)
                    .unwrap()
            })
        };
        let page = {
            let world = world.clone();
            thread::spawn(move || {
                world
                    .heap(SURVIVOR)
                    .pages
                    .alloc(1, RUN_LARGE, 0, None)
                    .unwrap()
            })
        };
        let huge = huge.join().unwrap();
        let page = page.join().unwrap();
        let st = check(&world.heap(SURVIVOR));
        assert_eq!(st.pages.pages_used, pages + 1);
        let runs = runs_of(&world);
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().any(|r| r.offset == huge && r.pages == pages));
        assert!(runs.iter().any(|r| r.offset == page && r.pages == 1));
    });
}
