//! A committed change's frees are finished exactly once, by its writer or by the recoverer of a
//! dead one, and a change that is rolled back frees nothing.
//!
//! The bug story: a change unlinks blocks and logs a free-block entry for each; its commit
//! names them in the undo log's release cursor (`end << 32 | done`), empties the log (the
//! commit point), then frees them one at a time, moving the cursor past each entry before its
//! free, and clears the cursor before the writer word goes (`persist::store_lock`,
//! `UndoLog::commit_with_frees` and `UndoLog::finish_frees`). A writer may be SIGKILLed between
//! any two of those steps, and so may the process recovering it; the recoverer
//! (`StoreLock::recover_dead`) rolls back a log that is not empty (clearing the cursor first), or
//! finishes the frees from the cursor while the writer word still names the dead owner. A block
//! freed twice corrupts the heap (two owners for one block later); a block freed while still
//! linked is the same after a rollback. Each model catches (each bug below was put into
//! `store_lock.rs` once, and the model failed):
//!
//! - `writer_killed_at_every_point` (a writer makes a change that frees two blocks, then a
//!   second change that frees none, killed before its k-th word access for every k; recovered;
//!   then a gc frees what is unlinked and not yet free): the cursor moved after the free instead
//!   of before (the recoverer frees the block again: "a block freed twice"); a recovery that
//!   finishes the frees under a non-empty log (the change is rolled back, its blocks linked
//!   again, and freed); a recovery that starts from the first entry instead of the cursor.
//! - `recoverer_killed_at_every_point` (the writer killed at every point, its first recoverer
//!   killed at every point of its recovery, a second one finishing): the same three, and the
//!   cursor cleared after the rollback instead of before (a rollback cut short at length 0
//!   leaves the frees looking due, and the second recoverer frees linked blocks; only this
//!   model catches it).
//! - `gc_races_the_recovery` (the writer killed at every point; a gc, which frees unlinked
//!   blocks that are not free yet, races an opener that recovers the dead, each recovering the
//!   dead owner when it finds it in the way, one recoverer at a time): a recovery that frees the
//!   dead owner's word before its own work (the gc then takes the word and frees blocks the
//!   recovery frees or links again; only this model catches it).
//!
//! Each model runs twice: with a writer that holds the writer word (a store-wide change), and
//! with a single change on a part (FORMAT.md §10.9), which holds no writer word but sets its
//! `active` word from before its change to after its frees; its recoverer finishes the frees
//! because that word is 1 (`past_gate`), and the gc waits for the word as the real one does
//! (`Store::drain_gate`). Recovering it as before, only under the writer word, leaves every
//! block of the change to gc (the part models fail then: two blocks left by one kill).
//!
//! What a kill may leave: nothing. The entry the cursor had just passed (a kill between the
//! cursor and the free) is freed by the recoverer unless it is free already
//! (`OtherEntries::free_passed`): a free here is one access, like the count store of a push
//! into the dead owner's block cache, which tells the object layer's recoverer whether it
//! happened (`Heap::dead_cache_holds`; the recoverer frees into that cache too). Without that
//! check, each model leaves one block ("1 blocks left by 0 kills"); freeing it whether or not it
//! is free frees it twice. In the real heap the cache cannot tell for a block of an uncached
//! class or a full cache, and such a block is still left to gc (FORMAT.md §10.3). What loom
//! cannot see: as in `store_lock.rs`, a kill is a prefix of the victim's accesses; the free
//! itself is one access here (the heap's free is checked by `heap.rs` and `dead_cache.rs`).
//!
//! Cost (release build, LOOM_MAX_PREEMPTIONS=2, on the 2-core machine): 1.3 s for the six
//! (47 victim kill points; 693 (victim, recoverer) pairs, for each kind of change).
#![cfg(loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_tests::{every_kill_pair, every_kill_point, Budget, KillableWords, LOCK_FILE_BYTES};
use persist::store_lock::undo::{self, T_FREE_BLOCK};
use persist::store_lock::{owner_id, LockOffsets, OtherEntries, StoreLock, UndoLog};
use persist::sync::{AccessError, Liveness, MemLiveness, MemWords, Ordering, WordStore};
use std::cell::Cell;

const AT: LockOffsets = loom_tests::LOCK_AT;
/// The victim's `active` word (FORMAT.md §10.9), after the store lock's words.
const ACTIVE: u64 = LOCK_FILE_BYTES;

/// Store words: the link word (what the first change unlinks), a data word (what the second
/// change writes), the two blocks' free counts (a block's offset is its count's), the victim's
/// undo log block.
const LINK: u64 = 0;
const DATA: u64 = 8;
const X: u64 = 16;
const Y: u64 = 24;
const BLOCKS: [u64; 2] = [X, Y];
const LOG: u64 = 32;
const LOG_CAP: u64 = 3;
const STORE_BYTES: u64 = LOG + undo::ENTRIES + LOG_CAP * undo::ENTRY_BYTES;

/// `LINK` while X and Y are linked, and after the change that unlinks them.
const LINKED: u64 = 1;
const UNLINKED: u64 = 2;
const DATA_OLD: u64 = 10;
const DATA_NEW: u64 = 11;

const VICTIM: u32 = 0;
const VICTIM_GENERATION: u64 = 5;
const GC_SLOT: u32 = 1;

struct World {
    lock_file: MemWords,
    store: MemWords,
    live: MemLiveness,
    /// One recoverer at a time (the recovery lock).
    recovery: Mutex<()>,
}

impl World {
    fn new() -> World {
        let w = World {
            lock_file: MemWords::new(LOCK_FILE_BYTES + 8, LOCK_FILE_BYTES + 8),
            store: MemWords::new(STORE_BYTES, STORE_BYTES),
            live: MemLiveness::new(3),
            recovery: Mutex::new(()),
        };
        for s in 0..3 {
            w.live.set_alive(s, true);
        }
        w.store.store(LINK, LINKED, Ordering::Relaxed).unwrap();
        w.store.store(DATA, DATA_OLD, Ordering::Relaxed).unwrap();
        w
    }

    fn load(&self, off: u64) -> u64 {
        self.store.load(off, Ordering::SeqCst).unwrap()
    }

    fn frees(&self) -> [u64; 2] {
        BLOCKS.map(|b| self.load(b))
    }

    /// The lock as it must be with nobody at work: word free, sequence even, log empty, no
    /// frees under way.
    fn assert_idle(&self) {
        assert_eq!(self.lock_file.load(AT.writer, Ordering::SeqCst).unwrap(), 0);
        assert_eq!(self.lock_file.load(ACTIVE, Ordering::SeqCst).unwrap(), 0);
        assert_eq!(
            self.lock_file.load(AT.seq, Ordering::SeqCst).unwrap() % 2,
            0
        );
        let log = UndoLog::new(&self.store, LOG);
        assert_eq!(log.published_len().unwrap(), 0, "the log still has entries");
        assert_eq!(
            log.frees_cursor().unwrap(),
            (0, 0),
            "the cursor is left standing"
        );
    }
}

/// A free: one access (a kill may land before it), counted in the block's word.
fn free<W: WordStore>(store: &W, block: u64) -> Result<(), AccessError> {
    store.word(block)?.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// The object layer's entries as far as these models need them: frees of a dead owner's
/// committed change.
struct Frees<'a, W: WordStore> {
    store: &'a W,
}

impl<W: WordStore> OtherEntries for Frees<'_, W> {
    type Error = AccessError;

    fn once_only(&self, _tagged: u64) -> bool {
        false
    }

    fn undo(&mut self, _entry: u64, tagged: u64, _value: u64) -> Result<(), AccessError> {
        // Free-block entries are passed over by a rollback (`ObjectEntries` does the same).
        assert_eq!(tagged & undo::TAG_MASK, T_FREE_BLOCK, "entry {tagged:#x}");
        Ok(())
    }

    fn free_committed(&mut self, _entry: u64, block: u64) -> Result<(), AccessError> {
        free(self.store, block)
    }

    /// The entry the cursor had just passed: freed unless it is free already. A free here is
    /// one access, as a push into the dead owner's block cache is one count store, and the
    /// count tells whether it happened (`Heap::dead_cache_holds`; the object layer's recoverer
    /// frees into that cache too, `Heap::free_into_dead_cache`).
    fn free_passed(&mut self, _entry: u64, block: u64) -> Result<(), AccessError> {
        if self.store.load(block, Ordering::SeqCst)? == 0 {
            free(self.store, block)?;
        }
        Ok(())
    }
}

/// What the victim got past: the first change's commit point.
struct Victim {
    committed: bool,
    spent: u64,
}

/// The victim, dying after `k` accesses: a change that unlinks X and Y (a word entry and two
/// free-block entries), committed and freed as `object/undo.rs` commits; then a change that
/// frees nothing and leaves the first change's entries 1 and 2 in the block. With `part`, each
/// change is a single change on a part: `active` = 1 instead of the writer word and the odd
/// sequence, the frees before `active` = 0 (`Store::end_part`; the part word itself is
/// `part_lock.rs`'s model's).
fn victim(world: &World, k: u64, part: bool) -> Victim {
    let budget = Budget::new(k);
    let lock_file = KillableWords {
        inner: &world.lock_file,
        budget: &budget,
    };
    let store = KillableWords {
        inner: &world.store,
        budget: &budget,
    };
    let committed = Cell::new(false);
    let r = (|| -> Result<(), AccessError> {
        let lock = StoreLock::new(&lock_file, AT)?;
        let log = UndoLog::new(&store, LOG);
        let me = owner_id(VICTIM, VICTIM_GENERATION);
        let begin = || -> Result<(), AccessError> {
            if part {
                lock_file.store(ACTIVE, 1, Ordering::SeqCst)
            } else {
                assert_eq!(lock.try_take(me)?, Ok(()));
                lock.begin_change()
            }
        };
        let end = || -> Result<(), AccessError> {
            if part {
                lock_file.store(ACTIVE, 0, Ordering::SeqCst)
            } else {
                lock.end_change().map(|_| ())
            }
        };
        begin()?;
        log.append_word(0, LINK, store.load(LINK, Ordering::Relaxed)?)?;
        store.store(LINK, UNLINKED, Ordering::Relaxed)?;
        log.append(1, X | T_FREE_BLOCK, 0)?;
        log.append(2, Y | T_FREE_BLOCK, 0)?;
        log.commit_with_frees(3)?;
        committed.set(true);
        log.finish_frees(3, 0, |_, b| free(&store, b))?;
        end()?;
        // The second change.
        begin()?;
        log.append_word(0, DATA, store.load(DATA, Ordering::Relaxed)?)?;
        store.store(DATA, DATA_NEW, Ordering::Relaxed)?;
        log.set_len(0)?;
        end()?;
        Ok(())
    })();
    if let Err(e) = r {
        assert!(
            budget.killed(),
            "the victim failed without being killed: {e}"
        );
    }
    Victim {
        committed: committed.get(),
        spent: budget.spent(),
    }
}

/// Recovers the dead victim as `object/recovery.rs` does: the log's length and cursor, checked
/// against its capacity (`open_log`), then `recover_dead` (its frees due if its `active` word
/// is 1), then its `active` word cleared (step 2b).
fn recover<W: WordStore>(lock_file: &W, store: &W) -> Result<(), AccessError> {
    let lock = StoreLock::new(lock_file, AT)?;
    let log = UndoLog::new(store, LOG);
    let len = log.published_len()?;
    let (end, done) = log.frees_cursor()?;
    assert!(len <= LOG_CAP && end <= LOG_CAP && done <= end);
    let past_gate = lock_file.load(ACTIVE, Ordering::SeqCst)? == 1;
    lock.recover_dead(
        Some((&log, len)),
        VICTIM,
        VICTIM_GENERATION,
        past_gate,
        &mut Frees { store },
    )?;
    lock_file.store(ACTIVE, 0, Ordering::SeqCst)?;
    Ok(())
}

/// What the object layer's gc does for these blocks, as the writer word's owner: a block that
/// is unlinked and not free is garbage, and freed. Returns how many it freed.
fn gc(world: &World) -> u64 {
    let lock = StoreLock::new(&world.lock_file, AT).unwrap();
    let me = owner_id(GC_SLOT, 1);
    loop {
        match lock.try_take(me).unwrap() {
            Ok(()) => break,
            Err(holder)
                if holder == owner_id(VICTIM, VICTIM_GENERATION)
                    && !world.live.is_alive(VICTIM) =>
            {
                // gc recovers the dead first (`Store::gc`), here when it finds it in the way.
                let _one_at_a_time = world.recovery.lock().unwrap();
                recover(&world.lock_file, &world.store).unwrap();
            }
            Err(_) => thread::yield_now(),
        }
    }
    // The gate (`Store::drain_gate`): a single change past it is waited for, or recovered if
    // its participant is dead.
    while world.lock_file.load(ACTIVE, Ordering::SeqCst).unwrap() == 1 {
        if !world.live.is_alive(VICTIM) {
            let _one_at_a_time = world.recovery.lock().unwrap();
            recover(&world.lock_file, &world.store).unwrap();
        } else {
            thread::yield_now();
        }
    }
    let mut freed = 0;
    if world.load(LINK) == UNLINKED {
        for b in BLOCKS {
            if world.load(b) == 0 {
                free(&world.store, b).unwrap();
                freed += 1;
            }
        }
    }
    lock.release().unwrap();
    freed
}

/// Before gc: no block freed twice, none freed by a change that was rolled back, at most
/// `kills` left unfreed by a committed one. After gc: each freed exactly once if the change
/// committed, never if not.
fn assert_frees(world: &World, committed: bool, kills: u64) {
    let frees = world.frees();
    assert_eq!(world.load(LINK), if committed { UNLINKED } else { LINKED });
    if committed {
        assert!(
            frees.iter().all(|&n| n <= 1),
            "a block freed twice: {frees:?}"
        );
        let left = frees.iter().filter(|&&n| n == 0).count() as u64;
        assert!(left <= kills, "{left} blocks left by {kills} kills");
    } else {
        assert_eq!(frees, [0, 0], "a change rolled back freed its blocks");
    }
    gc(world);
    let after = world.frees();
    let want = if committed { [1, 1] } else { [0, 0] };
    assert_eq!(after, want, "after gc (committed: {committed})");
    world.assert_idle();
}

/// The victim killed at its `k`-th access, recovered, then a gc.
fn killed_at(k: u64, part: bool) -> u64 {
    {
        let world = World::new();
        let v = victim(&world, k, part);
        world.live.set_alive(VICTIM, false);
        recover(&world.lock_file, &world.store).unwrap();
        assert_frees(&world, v.committed, 0);
        v.spent
    }
}

/// The victim killed at each of its accesses, recovered, then a gc.
#[test]
fn writer_killed_at_every_point() {
    every_kill_point(|k| killed_at(k, false));
}

#[test]
fn part_changer_killed_at_every_point() {
    every_kill_point(|k| killed_at(k, true));
}

/// The victim killed at each of its accesses; its first recoverer killed at each of its own; a
/// second recoverer finishes; then a gc.
#[test]
fn recoverer_killed_at_every_point() {
    every_kill_pair(|k1, k2| recoverer_killed(k1, k2, false));
}

#[test]
fn recoverer_of_a_part_changer_killed_at_every_point() {
    every_kill_pair(|k1, k2| recoverer_killed(k1, k2, true));
}

fn recoverer_killed(k1: u64, k2: u64, part: bool) -> (u64, u64) {
    {
        let world = World::new();
        let v = victim(&world, k1, part);
        world.live.set_alive(VICTIM, false);
        let budget = Budget::new(k2);
        let first = recover(
            &KillableWords {
                inner: &world.lock_file,
                budget: &budget,
            },
            &KillableWords {
                inner: &world.store,
                budget: &budget,
            },
        );
        if let Err(e) = first {
            assert!(budget.killed(), "recovery failed without being killed: {e}");
        }
        recover(&world.lock_file, &world.store).unwrap();
        assert_frees(&world, v.committed, 0);
        (v.spent, budget.spent())
    }
}

/// The victim killed at each of its accesses; then a gc and an opener race: the gc recovers
/// the dead owner when it finds it holding the word, the opener recovers it at attach, one
/// recoverer at a time. The gc never frees a block the recovery frees too.
#[test]
fn gc_races_the_recovery() {
    every_kill_point(|k| gc_races(k, false));
}

#[test]
fn gc_races_the_recovery_of_a_part_changer() {
    every_kill_point(|k| gc_races(k, true));
}

fn gc_races(k: u64, part: bool) -> u64 {
    {
        let world = Arc::new(World::new());
        let v = victim(&world, k, part);
        world.live.set_alive(VICTIM, false);
        let opener = {
            let world = world.clone();
            thread::spawn(move || {
                let _one_at_a_time = world.recovery.lock().unwrap();
                recover(&world.lock_file, &world.store).unwrap();
            })
        };
        let gc_thread = {
            let world = world.clone();
            thread::spawn(move || gc(&world))
        };
        opener.join().unwrap();
        gc_thread.join().unwrap();
        let frees = world.frees();
        let want = if v.committed { [1, 1] } else { [0, 0] };
        assert_eq!(frees, want, "committed: {}", v.committed);
        // Nothing left for another gc either.
        assert_eq!(gc(&world), 0);
        world.assert_idle();
        v.spent
    }
}
