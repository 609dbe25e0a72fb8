//! A block a dead participant had taken and not linked comes back with its recovery, exactly
//! once; a block it had linked stays; none is freed twice, whoever is killed where.
//!
//! The bug story: a participant names each block it takes in a block journal of its slot, from
//! before the step that takes it until it has linked it (FORMAT.md §6.4). Recovery used to clear
//! the journals and leave what they named to gc: the block might be free (the take never
//! happened), taken and unlinked, or linked, and only the object layer's mark could tell. Now
//! the journal gets a *taken* bit right after the take (with the offset, for a cache pop), and
//! the object layer's recovery settles each journal with the bit before its rollback
//! (`object/recovery.rs` `settle_journals`): the block is freed unless the one link its user
//! makes is in place (FORMAT.md §10.7 step 0). The models below run the heap's real code
//! (`alloc_into`, `settle`, `journal_owned`, `taken_by_dead`, `settle_dead`,
//! `recover_participant`) and the real undo log (`UndoLog::ends_with_alloc`, `roll_back`); the
//! object layer's rule of each journal is written out here as `recovery.rs` has it. Each bug
//! below was put into the code once, and a model failed:
//!
//! - `a_changes_allocation_comes_back_once` (a change takes a block from the victim's block
//!   cache or carves one, logs its alloc entry, settles, links it under a logged word, commits;
//!   the victim killed before each of its accesses, a first recoverer killed before each of
//!   its own, a second one finishing): `settle_dead` freeing a linked block (the rollback frees
//!   it too: the heap check finds a damaged free stack); `taken_by_dead` believing the bit of a
//!   block still in the cache (freed, then given back with the cache a second time). And
//!   `clearing_journals_leaks_the_taken_block` shows the recovery as it was (journals only
//!   cleared) leaving the unlogged block allocated.
//! - `a_growing_logs_blocks_come_back_once` (the undo log grows: a new block taken into
//!   journal 2, the old one named as taken in journal 4, the slot word moved to the new one,
//!   both journals settled, the old one freed; recovery then frees the log block as step 4
//!   does): `settle_dead` freeing a linked block; the old block's journal settled after its free
//!   instead of before (freed twice); no journal for the old block, as `ChangeLog::grow` was
//!   ("left allocated" when killed between the slot word's move and the free).
//!
//! What a kill may leave (never a block freed twice): the victim killed between the step that
//! takes a block and the store of its taken bit leaves that block (the carve model has such a
//! point; a cache pop has none); killed inside the free of the old log block, that block; a
//! recoverer killed between a journal's clearing and its free, that block. Each is allocated and
//! named by no one, and the sweep of `conserve_sized` frees it. What loom cannot see: a kill
//! is a prefix of the victim's word accesses, as in the other kill models.
#![cfg(loom)]

use loom_tests::{
    allocated_blocks, check, conserve, conserve_sized, every_kill_pair, survived, Budget,
    KillableWords, Victim, World, CACHED_PER_SEGMENT, CACHED_SIZE, SIZE,
};
use persist::heap::{Block, Error, Heap};
use persist::region::table;
use persist::store_lock::undo::{self, T_ALLOC};
use persist::store_lock::{OtherEntries, UndoLog};
use persist::sync::{Liveness, MemWords, Ordering, WordStore};
use std::cell::Cell;
use std::collections::BTreeSet;

const DEAD: u32 = 0;
const FIRST: u32 = 1;
const SECOND: u32 = 2;

/// The object layer's journals (`object/layout.rs` `journals`).
const OP: u64 = 1;
const LOG: u64 = 2;
const OLD_LOG: u64 = 4;
/// The byte offset of the dead victim's slot word `undo` (`object/layout.rs`
/// `slot_words::UNDO`) in the model's lock file (slot 0's words come first).
const UNDO_AT: u64 = DEAD as u64 * table::SLOT_WORDS * 8 + table::W_OBJECT * 8;

/// The undo log's own little store: a link word, then the log block.
const LINK: u64 = 0;
const LOG_AT: u64 = 8;
const LOG_CAP: u64 = 3;
const LOG_BYTES: u64 = LOG_AT + undo::ENTRIES + LOG_CAP * undo::ENTRY_BYTES;

/// The object layer's undo of alloc entries in a recovery (`ObjectEntries`): freed straight to
/// the segment, once (the entry leaves the log first).
struct Allocs<'r, 'h, W: WordStore, L: Liveness> {
    heap: &'r Heap<'h, W, L>,
}

impl<W: WordStore, L: Liveness> OtherEntries for Allocs<'_, '_, W, L> {
    type Error = Error;

    fn once_only(&self, tagged: u64) -> bool {
        tagged & undo::TAG_MASK == T_ALLOC
    }

    fn undo(&mut self, _entry: u64, tagged: u64, _value: u64) -> Result<(), Error> {
        assert_eq!(tagged & undo::TAG_MASK, T_ALLOC, "entry {tagged:#x}");
        self.heap
            .free_uncached(Block::from_word(tagged & !undo::TAG_MASK))
    }
}

/// Step 0 of `object/recovery.rs`, journal 0 first: each journal naming a block as taken is
/// settled, the block freed unless linked.
fn settle_journals<W: WordStore, L: Liveness>(
    h: &Heap<'_, W, L>,
    lock: &W,
    log: &UndoLog<'_, W>,
) -> Result<(), Error> {
    let undo_word = lock.load(UNDO_AT, Ordering::SeqCst)?;
    for j in 0..table::BLOCK_JOURNALS {
        let Some(b) = h.taken_by_dead(DEAD, j)? else {
            continue;
        };
        let linked = match j {
            OP => log.ends_with_alloc(log.published_len()?, b.get())?,
            LOG | OLD_LOG => undo_word == b.get(),
            _ => false,
        };
        h.settle_dead(DEAD, j, b, linked)?;
    }
    Ok(())
}

/// Model 1: the victim's change. Returns the block it took, if it got that far, and whether
/// its change committed.
fn change(world: &World, logw: &MemWords, budget: &Budget) -> (Option<Block>, bool) {
    let v = Victim::new(world, budget);
    let logk = KillableWords {
        inner: logw,
        budget,
    };
    let h = v.heap(DEAD);
    let log = UndoLog::new(&logk, LOG_AT);
    let mut got = None;
    let mut committed = false;
    let r = (|| -> Result<(), Error> {
        let b = h.alloc_into(CACHED_SIZE, OP)?;
        got = Some(b);
        log.append(0, b.get() | T_ALLOC, 0)?;
        h.settle(OP)?;
        log.append_word(1, LINK, logk.load(LINK, Ordering::Relaxed)?)?;
        logk.store(LINK, b.get(), Ordering::Relaxed)?;
        log.set_len(0)?;
        committed = true;
        Ok(())
    })();
    survived(r, budget);
    (got, committed)
}

/// The recovery of the dead victim in model 1, as `recover_slot` then the heap run it.
fn recover_change<W: WordStore, L: Liveness>(
    h: &Heap<'_, W, L>,
    lock: &W,
    logw: &W,
) -> Result<(), Error> {
    let log = UndoLog::new(logw, LOG_AT);
    settle_journals(h, lock, &log)?;
    let len = log.published_len()?;
    assert!(len <= LOG_CAP);
    log.roll_back(len, &mut Allocs { heap: h })?;
    h.recover_participant(DEAD)
}

fn scenario_change(k1: u64, k2: u64, from_cache: bool) -> (u64, u64) {
    let world = World::new(1, 3);
    let logw = MemWords::new(LOG_BYTES, LOG_BYTES);
    if from_cache {
        // One block in the victim's cache: its allocation pops it.
        let h = world.heap(DEAD);
        let b = h.alloc(CACHED_SIZE).unwrap();
        h.settle(0).unwrap();
        h.free(b).unwrap();
    }
    let b1 = Budget::new(k1);
    let (got, committed) = change(&world, &logw, &b1);
    let raw = world
        .table()
        .load(DEAD, table::W_BLOCK_JOURNAL + OP)
        .unwrap();
    world.kill(DEAD);
    let b2 = Budget::new(k2);
    {
        let r = Victim::new(&world, &b2);
        let logk = KillableWords {
            inner: &logw,
            budget: &b2,
        };
        survived(recover_change(&r.heap(FIRST), &r.lock, &logk), &b2);
    }
    let h = world.heap(SECOND);
    recover_change(&h, &world.lock, &logw).unwrap();
    if b2.killed() {
        world.kill(FIRST);
        h.recover_participant(FIRST).unwrap();
    }
    check(&h);
    let linked = logw.load(LINK, Ordering::SeqCst).unwrap();
    let held: BTreeSet<Block> = (linked != 0)
        .then(|| Block::from_word(linked))
        .into_iter()
        .collect();
    assert_eq!(
        linked != 0,
        committed,
        "the change stays exactly when it committed"
    );
    let left: BTreeSet<Block> = allocated_blocks(&h).difference(&held).copied().collect();
    // Killed between the take and its taken bit: the block is allocated, its journal unmarked.
    let in_window = got.is_none() && raw != 0 && raw & table::JOURNAL_TAKEN == 0;
    let may_leave = usize::from(in_window) + usize::from(b2.killed());
    assert!(
        left.len() <= may_leave,
        "left allocated: {left:?} (victim killed in the taken window: {in_window}, recoverer \
         killed: {})",
        b2.killed()
    );
    conserve_sized(
        &world,
        SECOND,
        CACHED_SIZE,
        CACHED_PER_SEGMENT,
        &held,
        &left,
    );
    (b1.spent(), b2.spent())
}

#[test]
fn a_changes_allocation_comes_back_once() {
    every_kill_pair(|k1, k2| scenario_change(k1, k2, true));
    every_kill_pair(|k1, k2| scenario_change(k1, k2, false));
}

/// Model 2: the victim's undo log grows from block `old` (named by its slot word `undo`), as
/// `ChangeLog::grow` orders it. Blocks of an uncached class (`SIZE`): the free of the old block
/// goes to its segment, where no check can find it again. Returns whether the victim got to
/// that free (its journal settled before it).
fn grow(world: &World, old: Block, budget: &Budget) -> bool {
    let v = Victim::new(world, budget);
    let h = v.heap(DEAD);
    let freeing = Cell::new(false);
    let r = (|| -> Result<(), Error> {
        let b = h.alloc_into(SIZE, LOG)?;
        h.journal_owned(OLD_LOG, old)?;
        v.lock.store(UNDO_AT, b.get(), Ordering::SeqCst)?;
        h.settle(LOG)?;
        h.settle(OLD_LOG)?;
        freeing.set(true);
        h.free(old)?;
        Ok(())
    })();
    survived(r, budget);
    freeing.get()
}

/// The recovery of model 2: step 0, then step 4's free of the log block the slot word names,
/// then the heap's.
fn recover_grow<W: WordStore, L: Liveness>(
    h: &Heap<'_, W, L>,
    lock: &W,
    logw: &W,
) -> Result<(), Error> {
    let log = UndoLog::new(logw, LOG_AT);
    settle_journals(h, lock, &log)?;
    let b = lock.load(UNDO_AT, Ordering::SeqCst)?;
    if b != 0 {
        h.free_for_dead(DEAD, Block::from_word(b), || {
            lock.store(UNDO_AT, 0, Ordering::SeqCst)?;
            Ok(())
        })?;
    }
    h.recover_participant(DEAD)
}

fn scenario_grow(k1: u64, k2: u64) -> (u64, u64) {
    let world = World::new(1, 3);
    let logw = MemWords::new(LOG_BYTES, LOG_BYTES);
    let old = {
        let h = world.heap(DEAD);
        let old = h.alloc(SIZE).unwrap();
        world
            .lock
            .store(UNDO_AT, old.get(), Ordering::SeqCst)
            .unwrap();
        h.settle(0).unwrap();
        old
    };
    let b1 = Budget::new(k1);
    let old_settled = grow(&world, old, &b1);
    let raw = world
        .table()
        .load(DEAD, table::W_BLOCK_JOURNAL + LOG)
        .unwrap();
    world.kill(DEAD);
    let b2 = Budget::new(k2);
    {
        let r = Victim::new(&world, &b2);
        let logk = KillableWords {
            inner: &logw,
            budget: &b2,
        };
        survived(recover_grow(&r.heap(FIRST), &r.lock, &logk), &b2);
    }
    let h = world.heap(SECOND);
    recover_grow(&h, &world.lock, &logw).unwrap();
    if b2.killed() {
        world.kill(FIRST);
        h.recover_participant(FIRST).unwrap();
    }
    check(&h);
    let held = BTreeSet::new();
    let left: BTreeSet<Block> = allocated_blocks(&h);
    // The new block taken and not yet marked; the old one inside its free (its journal
    // settled, the slot word moved on, the victim killed before the free's end).
    let in_window = raw != 0 && raw & table::JOURNAL_TAKEN == 0;
    let may_leave =
        usize::from(in_window) + usize::from(old_settled && b1.killed()) + usize::from(b2.killed());
    assert!(
        left.len() <= may_leave,
        "left allocated: {left:?} (old {old:?}, in the taken window: {in_window}, old block's \
         free cut short: {}, recoverer killed: {})",
        old_settled && b1.killed(),
        b2.killed()
    );
    conserve(&world, SECOND, &held, &left);
    (b1.spent(), b2.spent())
}

#[test]
fn a_growing_logs_blocks_come_back_once() {
    every_kill_pair(scenario_grow);
}

/// The models can fail: a recovery that only clears the journals (as before) leaves the block
/// a change took and never logged allocated, for some kill point of the victim.
#[test]
#[should_panic(expected = "left allocated")]
fn clearing_journals_leaks_the_taken_block() {
    fn clear_only(k1: u64) {
        let world = World::new(1, 3);
        let logw = MemWords::new(LOG_BYTES, LOG_BYTES);
        let b1 = Budget::new(k1);
        change(&world, &logw, &b1);
        world.kill(DEAD);
        let h = world.heap(SECOND);
        let log = UndoLog::new(&logw, LOG_AT);
        let len = log.published_len().unwrap();
        log.roll_back(len, &mut Allocs { heap: &h }).unwrap();
        h.recover_participant(DEAD).unwrap();
        let linked = Block::from_word(logw.load(LINK, Ordering::SeqCst).unwrap());
        let mut left = allocated_blocks(&h);
        left.remove(&linked);
        assert!(left.is_empty(), "left allocated: {left:?}");
    }
    // Every kill point of the victim (its change takes fewer than 200 accesses).
    for k in 0..200 {
        loom_tests::model(move || clear_only(k));
    }
}
