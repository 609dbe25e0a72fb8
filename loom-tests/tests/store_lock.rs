//! The store lock passes from a dead owner to the next one, and readers never keep what the dead
//! owner left half done.
//!
//! The bug story: a writer takes the writer word, makes the sequence odd, logs each data word's
//! old value and changes it, empties its log (the commit point), makes the sequence even and
//! frees the word (`persist::store_lock`). Readers take no lock: they keep what they read only if
//! the sequence was even and unchanged around it. A writer may be SIGKILLed between any two of
//! those steps, and so may the process recovering it. Each model catches (each bug below was
//! put into `store_lock.rs` once, and the model failed):
//!
//! - `writer_killed_at_every_point` (a writer killed before its k-th word access, for every k,
//!   while a reader reads; then recovered, the reader still reading; then a second writer
//!   changes the data): a reader that keeps a torn pair or a value of a change that was then
//!   rolled back (the SeqCst fence missing from `begin_change` or the Acquire fence from
//!   `read_valid`, a Relaxed load in `read_begin`, a Relaxed store ending a change or a dead
//!   owner's change); a log entry whose length is published before the entry is written; an
//!   undo that skips an entry; a sequence left odd (`end_change` freeing the word before it
//!   makes the sequence even).
//! - `recoverer_killed_at_every_point` (the writer killed at every point, its first recoverer
//!   killed at every point of its recovery, a second one finishing, a reader reading
//!   throughout): a recovery step that is not safe to repeat (the log shrunk past an entry
//!   before the entry is restored, so the restore is lost; the dead owner's word freed before
//!   the sequence is even, so that nobody makes it even).
//! - `contenders_race_for_a_dead_owners_word` (the owner killed at every point; two live writers
//!   race for its word while a reader reads, each recovering the dead owner when it finds it in
//!   the way): a recovery that frees a word a live writer took meanwhile (no check that the word
//!   still names the dead owner); a live writer that begins its change on an odd sequence (the
//!   word freed before the sequence is made even, or taken without Acquire).
//!
//! - `savepoint_rolled_back_and_writer_killed_at_every_point` (a writer that rolls a savepoint
//!   back live, then finishes its change, killed at every point, the live rollback included):
//!   a live rollback that shrinks the log before restoring the words it forgets, or restores
//!   them in the wrong order, so that the recovery of a writer killed in it keeps a scratch
//!   value or loses the savepoint's own value.
//!
//! - `repair_leaves_a_live_change_alone`, `an_odd_sequence_nobody_owns_is_repaired` (the
//!   repairer killed at every point), `a_live_owners_word_is_never_taken_for_a_stale_one`,
//!   `a_writer_word_naming_nobody_is_freed`: the repairs of lock words that no live process
//!   left (a damaged or forged lock file), which a thread that waited on one for a while runs.
//!   Caught: deciding that the sequence is odd with no writer from outside the writer word (a
//!   reader's loads of the two words may see one old and one new value: a live change was
//!   taken for a stale one), and a taker's CAS without Release (a repairer that reads the id
//!   may not see the owner's attach, and frees a live owner's word).
//!
//! Which rollback each model covers. Every rollback in persist runs `UndoLog::roll_back_to`
//! (src/store_lock.rs), with the object layer's `ObjectEntries` for the entries that are not data
//! words (src/object/undo.rs):
//!
//! | rollback | where it runs | model |
//! |---|---|---|
//! | a dead owner's change (to mark 0) | `object/recovery.rs` `recover_slot`, through `StoreLock::recover_dead` | `writer_killed_at_every_point`; `recoverer_killed_at_every_point` (the recovery itself killed and repeated); `contenders_race_for_a_dead_owners_word` (recovered by a racing writer) |
//! | a live change that fails, or a `transaction()` savepoint (to its mark) | `object/undo.rs` `Store::rollback_to` | `savepoint_rolled_back_and_writer_killed_at_every_point` (to a mark > 0, killed in the middle, then recovered) |
//! | an orphaned durable change after a reboot (to mark 0) | `object/recovery.rs` `roll_back_orphaned_undo` | the dead owner's models (the same call); its order on disk is tested on real files by `tests/power_cut.rs` |
//!
//! The models log data words only. Alloc entries (undone once: the length drops past one before
//! its block is freed) and lock-word entries are undone by `ObjectEntries` in the same loop; the
//! SIGKILL tests on real processes (`tests/object_crash.rs`, `tests/python/test_crash.py`) cover
//! them.
//!
//! What loom cannot see: a kill is a prefix of the victim's accesses in program order, so these
//! models check that every prefix is recoverable; that the Release on the log length keeps the
//! entry's stores before it on real hardware is the ordering argument in `UndoLog::append`. Here
//! waiters spin with `yield_now`; the futex sleep and the waiter count's handshake are modelled
//! in `wake.rs`. A kill lands before a word access; a fence is not one.
//!
//! Cost (one core each, release build): at LOOM_MAX_PREEMPTIONS=2, as scripts/test-all.sh runs
//! them, about 1 s, 0.1 s and 16 s (21 kill points; 213 (writer, recoverer) pairs; 21 kill
//! points), and 7 s for the savepoint model (measured alone, on the 2-core machine). Also run at
//! LOOM_MAX_PREEMPTIONS=3 (before the savepoint model was added): about 2 s, 0.1 s and 200 s,
//! all passing. Run
//! without a bound (LOOM_MAX_PREEMPTIONS unset), loom 0.7.3 finished the first model in 0.02 s
//! and missed the seqlock bugs above that the bounded runs catch: a bounded run is the deeper
//! one here, not an unbounded one.
#![cfg(loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_tests::{every_kill_pair, every_kill_point, Budget, KillableWords, LOCK_FILE_BYTES};
use persist::store_lock::{owner_id, LockOffsets, OtherEntries, StoreLock, UndoLog};
use persist::sync::{AccessError, AtomicU64, Liveness, MemLiveness, MemWords, Ordering, WordStore};
use std::cell::Cell;

/// The lock words, in a lock file of their own.
const AT: LockOffsets = loom_tests::LOCK_AT;

/// Two data words, then one undo log (three entries) per participant. Each log is its own
/// participant's: a recoverer that rolled back the log of whoever holds the word now would undo
/// a live writer's change under its feet.
const A: u64 = 0;
const B: u64 = 8;
const LOG_CAP: u64 = 3;
const LOG_BYTES: u64 = persist::store_lock::undo::ENTRIES + LOG_CAP * 16;
const STORE_BYTES: u64 = 16 + 3 * LOG_BYTES;

/// The undo log block of the participant in `slot`.
fn log_of(slot: u32) -> u64 {
    16 + slot as u64 * LOG_BYTES
}

/// The data before any change, and after each writer's.
const OLD: [u64; 2] = [10, 20];
const VICTIMS: [u64; 2] = [11, 21];
const FIRST: [u64; 2] = [12, 22];
const SECOND: [u64; 2] = [13, 23];

const VICTIM: u32 = 0;
const VICTIM_GENERATION: u64 = 5;
const FIRST_SLOT: u32 = 1;
const SECOND_SLOT: u32 = 2;

/// The lock file, the store file and the liveness flags of three participants.
struct World {
    lock_file: MemWords,
    store: MemWords,
    live: MemLiveness,
    /// The kernel's lock on a dead slot: one recoverer at a time.
    recovery: Mutex<()>,
}

impl World {
    fn new() -> World {
        let w = World {
            lock_file: MemWords::new(LOCK_FILE_BYTES, LOCK_FILE_BYTES),
            store: MemWords::new(STORE_BYTES, STORE_BYTES),
            live: MemLiveness::new(3),
            recovery: Mutex::new(()),
        };
        for s in 0..3 {
            w.live.set_alive(s, true);
        }
        w.store.store(A, OLD[0], Ordering::Relaxed).unwrap();
        w.store.store(B, OLD[1], Ordering::Relaxed).unwrap();
        w
    }

    fn data(&self) -> [u64; 2] {
        [
            self.store.load(A, Ordering::Relaxed).unwrap(),
            self.store.load(B, Ordering::Relaxed).unwrap(),
        ]
    }

    /// The lock as it must be with no writer at work: word free, sequence even, log empty.
    fn assert_free(&self) {
        let writer = self.lock_file.load(AT.writer, Ordering::Relaxed).unwrap();
        let seq = self.lock_file.load(AT.seq, Ordering::Relaxed).unwrap();
        assert_eq!(writer, 0, "the writer word is still held");
        assert_eq!(seq % 2, 0, "the sequence is left odd");
        for slot in 0..3 {
            let len = UndoLog::new(&self.store, log_of(slot))
                .published_len()
                .unwrap();
            assert_eq!(len, 0, "participant {slot}'s undo log still has entries");
        }
    }
}

/// A writer's view: the lock and its undo log, through `W` (killable for a victim).
struct Writer<'a, W: WordStore> {
    lock: StoreLock<'a, W>,
    log: UndoLog<'a, W>,
    store: &'a W,
    me: u64,
    len: u64,
}

impl<'a, W: WordStore> Writer<'a, W> {
    fn new(
        lock_file: &'a W,
        store: &'a W,
        slot: u32,
        generation: u64,
    ) -> Result<Self, AccessError> {
        Ok(Writer {
            lock: StoreLock::new(lock_file, AT)?,
            log: UndoLog::new(store, log_of(slot)),
            store,
            me: owner_id(slot, generation),
            len: 0,
        })
    }

    /// Takes the writer word if it is free; `Ok(Err(holder))` if not.
    fn take(&self) -> Result<Result<(), u64>, AccessError> {
        self.lock.try_take(self.me)
    }

    /// As `object/access.rs` `put`: the old value logged first, then the word changed.
    fn put(&mut self, offset: u64, new: u64) -> Result<(), AccessError> {
        let old = self.store.load(offset, Ordering::Relaxed)?;
        assert!(self.len < LOG_CAP);
        self.log.append_word(self.len, offset, old)?;
        self.len += 1;
        // Relaxed: readers validate the sequence (as `put`).
        self.store.store(offset, new, Ordering::Relaxed)
    }

    /// One change of both data words, with the writer word already taken (as `begin_op`,
    /// `put`, `end_op`). `committed` is set once the log is emptied: the commit point.
    fn change(&mut self, to: [u64; 2], committed: &Cell<bool>) -> Result<(), AccessError> {
        self.lock.begin_change()?;
        self.put(A, to[0])?;
        self.put(B, to[1])?;
        self.log.set_len(0)?;
        self.len = 0;
        committed.set(true);
        // No thread sleeps in these models: nobody to wake.
        self.lock.end_change()?;
        Ok(())
    }

    /// The same change to `to`, made as a transaction with a savepoint that is rolled back
    /// (as `Store::savepoint` and `Store::rollback_savepoint`): A changes, the savepoint is
    /// opened, B and A change again, the savepoint is rolled back live (`roll_back_to`), then
    /// B changes to its final value and the change commits.
    fn change_with_savepoint(
        &mut self,
        to: [u64; 2],
        committed: &Cell<bool>,
    ) -> Result<(), AccessError> {
        self.lock.begin_change()?;
        self.put(A, to[0])?;
        let mark = self.len;
        self.put(B, SCRATCH)?;
        self.put(A, SCRATCH)?;
        self.log.roll_back_to(self.len, mark, &mut WordsOnly)?;
        self.len = mark;
        self.put(B, to[1])?;
        self.log.set_len(0)?;
        self.len = 0;
        committed.set(true);
        self.lock.end_change()?;
        Ok(())
    }
}

/// What the savepoint model writes and then rolls back: never kept, never seen by a reader.
const SCRATCH: u64 = 99;

/// A live writer takes the word (it must be free) and changes the data to `to`, checking what
/// a new owner must find: the sequence even and the data a whole committed state.
fn live_change(world: &World, slot: u32, to: [u64; 2], may_find: &[[u64; 2]]) {
    let mut w = Writer::new(&world.lock_file, &world.store, slot, 1).unwrap();
    assert_eq!(w.take().unwrap(), Ok(()), "the writer word is held");
    found_on_taking(world, may_find);
    w.change(to, &Cell::new(false)).unwrap();
}

/// What an owner finds on taking the writer word: the sequence even (no change in flight) and
/// the data one of the committed states.
fn found_on_taking(world: &World, may_find: &[[u64; 2]]) {
    // Relaxed: taking the word (Acquire) ordered the last owner's or recoverer's stores first.
    let seq = world.lock_file.load(AT.seq, Ordering::Relaxed).unwrap();
    assert_eq!(seq % 2, 0, "a new owner finds the sequence odd");
    let data = world.data();
    assert!(
        may_find.contains(&data),
        "a new owner finds {data:?}, none of {may_find:?}"
    );
}

/// Undo log entries other than data words: the models make none.
struct WordsOnly;

impl OtherEntries for WordsOnly {
    type Error = AccessError;

    fn once_only(&self, _tagged: u64) -> bool {
        false
    }

    fn undo(&mut self, _entry: u64, tagged: u64, _value: u64) -> Result<(), AccessError> {
        panic!("the models log data words only, found entry {tagged:#x}")
    }
}

/// Recovers the dead victim as `object/recovery.rs` does (its steps 1 and 2): the log's length,
/// checked against its capacity, then `recover_dead`.
fn recover<W: WordStore>(lock_file: &W, store: &W) -> Result<bool, AccessError> {
    let lock = StoreLock::new(lock_file, AT)?;
    let log = UndoLog::new(store, log_of(VICTIM));
    let len = log.published_len()?;
    assert!(
        len <= LOG_CAP,
        "the log's length {len} exceeds its capacity"
    );
    lock.recover_dead(
        Some((&log, len)),
        VICTIM,
        VICTIM_GENERATION,
        false,
        &mut WordsOnly,
    )
}

/// The victim: takes the free word and changes the data to `VICTIMS`, until its budget runs
/// out. Returns whether it committed, and the accesses it made.
fn victim_change(world: &World, k: u64) -> (bool, u64) {
    victim_change_as(world, k, false)
}

/// `victim_change`, the change made with a rolled-back savepoint if `savepoint`.
fn victim_change_as(world: &World, k: u64, savepoint: bool) -> (bool, u64) {
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
    let r = Writer::new(&lock_file, &store, VICTIM, VICTIM_GENERATION).and_then(|mut w| {
        assert_eq!(w.take()?, Ok(()), "the writer word is held");
        if savepoint {
            w.change_with_savepoint(VICTIMS, &committed)
        } else {
            w.change(VICTIMS, &committed)
        }
    });
    if let Err(e) = r {
        assert!(
            budget.killed(),
            "the victim failed without being killed: {e}"
        );
    }
    (committed.get(), budget.spent())
}

/// Up to `tries` unlocked reads of both data words; every read that validates must see one of
/// `allowed` whole. Returns the pairs that validated.
fn read(world: &World, tries: usize, allowed: &[[u64; 2]]) -> Vec<[u64; 2]> {
    let lock = StoreLock::new(&world.lock_file, AT).unwrap();
    let mut seen = Vec::new();
    for _ in 0..tries {
        let Ok(token) = lock.read_begin() else {
            thread::yield_now();
            continue;
        };
        // Relaxed: validated below (as `Store::get`).
        let pair = world.data();
        if lock.read_valid(token) {
            assert!(
                allowed.contains(&pair),
                "a reader kept {pair:?}, none of {allowed:?}"
            );
            seen.push(pair);
        }
    }
    seen
}

/// After the victim's recovery: the data as committed (its change kept only if it got past the
/// commit point), every validated read one of those states, and the lock free.
fn assert_recovered(world: &World, committed: bool, seen: &[[u64; 2]]) {
    let expected = if committed { VICTIMS } else { OLD };
    assert_eq!(
        world.data(),
        expected,
        "after recovery (victim committed: {committed})"
    );
    for pair in seen {
        assert!(
            *pair == OLD || (committed && *pair == VICTIMS),
            "a reader kept {pair:?}, a change that was rolled back"
        );
    }
    world.assert_free();
}

/// A writer killed at each of its word accesses while a reader reads; recovered (the reader
/// still reading); then a second writer changes the data.
#[test]
fn writer_killed_at_every_point() {
    every_kill_point(|k| killed_writer_recovered(k, false));
}

/// The scenario of `writer_killed_at_every_point`, the victim's change made with a
/// rolled-back savepoint if `savepoint`. Returns the victim's accesses.
fn killed_writer_recovered(k: u64, savepoint: bool) -> u64 {
    let world = Arc::new(World::new());
    let reader = {
        let world = world.clone();
        thread::spawn(move || read(&world, 2, &[OLD, VICTIMS]))
    };
    let victim = {
        let world = world.clone();
        thread::spawn(move || victim_change_as(&world, k, savepoint))
    };
    let (committed, spent) = victim.join().unwrap();
    world.live.set_alive(VICTIM, false);
    recover(&world.lock_file, &world.store).unwrap();
    let seen = reader.join().unwrap();
    assert_recovered(&world, committed, &seen);
    let expected = if committed { VICTIMS } else { OLD };
    live_change(&world, SECOND_SLOT, SECOND, &[expected]);
    assert_eq!(world.data(), SECOND);
    world.assert_free();
    spent
}

/// The victim killed at each of its accesses; its first recoverer killed at each of its own
/// (while a reader reads); a second recoverer finishes; then a second writer changes the data.
#[test]
fn recoverer_killed_at_every_point() {
    fn scenario(k1: u64, k2: u64) -> (u64, u64) {
        let world = Arc::new(World::new());
        let (committed, victim_spent) = victim_change(&world, k1);
        world.live.set_alive(VICTIM, false);
        let reader = {
            let world = world.clone();
            thread::spawn(move || read(&world, 2, &[OLD, VICTIMS]))
        };
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
            world.live.set_alive(FIRST_SLOT, false);
        }
        recover(&world.lock_file, &world.store).unwrap();
        let seen = reader.join().unwrap();
        assert_recovered(&world, committed, &seen);
        let expected = if committed { VICTIMS } else { OLD };
        live_change(&world, SECOND_SLOT, SECOND, &[expected]);
        world.assert_free();
        (victim_spent, budget.spent())
    }
    every_kill_pair(scenario);
}

/// The owner is killed at each of its accesses (mid-change, it dies holding the word); two live
/// writers then race for the word while a reader reads, and each recovers the dead owner when
/// it finds it in the way (as a waiter does after its timeout), one recoverer at a time. Each
/// must find the sequence even and the data whole when it gets the word, and both changes must
/// land, one after the other.
#[test]
fn contenders_race_for_a_dead_owners_word() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let (committed, spent) = victim_change(&world, k);
        world.live.set_alive(VICTIM, false);
        let victims = if committed { VICTIMS } else { OLD };
        let reader = {
            let world = world.clone();
            thread::spawn(move || read(&world, 1, &[OLD, victims, FIRST, SECOND]))
        };
        let contender = |slot: u32, to: [u64; 2], other: [u64; 2]| {
            let world = world.clone();
            thread::spawn(move || {
                let mut w = Writer::new(&world.lock_file, &world.store, slot, 1).unwrap();
                loop {
                    match w.take().unwrap() {
                        Ok(()) => break,
                        Err(holder)
                            if holder == owner_id(VICTIM, VICTIM_GENERATION)
                                && !world.live.is_alive(VICTIM) =>
                        {
                            let _one_at_a_time = world.recovery.lock().unwrap();
                            recover(&world.lock_file, &world.store).unwrap();
                        }
                        // A live owner: wait (the futex sleep, here a yield).
                        Err(_) => thread::yield_now(),
                    }
                }
                found_on_taking(&world, &[victims, other]);
                w.change(to, &Cell::new(false)).unwrap();
            })
        };
        let a = contender(FIRST_SLOT, FIRST, SECOND);
        let b = contender(SECOND_SLOT, SECOND, FIRST);
        a.join().unwrap();
        b.join().unwrap();
        for pair in reader.join().unwrap() {
            assert!(
                pair != VICTIMS || committed,
                "a reader kept a rolled-back change"
            );
        }
        let last = world.data();
        assert!(last == FIRST || last == SECOND, "the data ends as {last:?}");
        world.assert_free();
        spent
    }
    every_kill_point(scenario);
}

/// A writer rolls a savepoint back live, then finishes its change; it is killed at each of its
/// accesses (in the middle of the live rollback too) while a reader reads; recovered (the reader
/// still reading); then a second writer changes the data. The live rollback leaves the log as a
/// recovery must find it: a recoverer undoes the entries the live rollback restored again, to
/// the same values, and the scratch values are never kept by anyone.
#[test]
fn savepoint_rolled_back_and_writer_killed_at_every_point() {
    every_kill_point(|k| killed_writer_recovered(k, true));
}

/// A live writer in `FIRST_SLOT` that waits (yielding) for the word, whoever holds it, and
/// changes the data to `FIRST`.
fn patient_change(world: &World) {
    let mut w = Writer::new(&world.lock_file, &world.store, FIRST_SLOT, 1).unwrap();
    while w.take().unwrap().is_err() {
        thread::yield_now();
    }
    w.change(FIRST, &Cell::new(false)).unwrap();
}

fn spawn_patient_writer(world: &Arc<World>) -> thread::JoinHandle<()> {
    let world = world.clone();
    thread::spawn(move || patient_change(&world))
}

/// A repairer that looks for an odd sequence nobody owns (as a thread that waited on the
/// sequence for a while does) while a live writer changes the data and a reader reads: it may
/// take the word before or after the change, never during it, so it never finds the sequence
/// odd and repairs nothing; the reader keeps whole pairs only.
#[test]
fn repair_leaves_a_live_change_alone() {
    loom_tests::model(|| {
        let world = Arc::new(World::new());
        let reader = {
            let world = world.clone();
            thread::spawn(move || read(&world, 2, &[OLD, FIRST]))
        };
        let repairer = {
            let world = world.clone();
            thread::spawn(move || {
                let lock = StoreLock::new(&world.lock_file, AT).unwrap();
                let found = lock
                    .inspect_sequence(owner_id(SECOND_SLOT, 1), true)
                    .unwrap();
                assert!(
                    !matches!(found, Some((true, _))),
                    "a live change's odd sequence was taken for a stale one"
                );
            })
        };
        patient_change(&world);
        repairer.join().unwrap();
        reader.join().unwrap();
        assert_eq!(world.data(), FIRST);
        world.assert_free();
    });
}

/// The lock file holds an odd sequence and a free writer word (damaged or forged). A repairer,
/// killed at each of its accesses, races a live writer (which steps over an odd sequence it
/// finds on taking the word) while a reader reads; the killed repairer is recovered as any dead
/// participant is, and a second repairer finishes. The sequence ends even, readers never keep a
/// torn pair, and the writer's change lands whole.
#[test]
fn an_odd_sequence_nobody_owns_is_repaired() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        world.lock_file.store(AT.seq, 7, Ordering::Relaxed).unwrap();
        let reader = {
            let world = world.clone();
            thread::spawn(move || read(&world, 2, &[OLD, FIRST]))
        };
        let writer = spawn_patient_writer(&world);
        let budget = Budget::new(k);
        let killable = KillableWords {
            inner: &world.lock_file,
            budget: &budget,
        };
        let inspected = StoreLock::new(&killable, AT)
            .and_then(|lock| lock.inspect_sequence(owner_id(VICTIM, VICTIM_GENERATION), true));
        if let Err(e) = inspected {
            assert!(
                budget.killed(),
                "the repair failed without being killed: {e}"
            );
            world.live.set_alive(VICTIM, false);
            // Its log is empty: recovery frees the word if it still names the dead repairer,
            // making the sequence even first.
            let lock = StoreLock::new(&world.lock_file, AT).unwrap();
            let no_log: Option<(&UndoLog<'_, MemWords>, u64)> = None;
            lock.recover_dead(no_log, VICTIM, VICTIM_GENERATION, false, &mut WordsOnly)
                .unwrap();
        }
        writer.join().unwrap();
        let lock = StoreLock::new(&world.lock_file, AT).unwrap();
        // Whatever happened above, a look under the word now finds the sequence even.
        assert_eq!(
            lock.inspect_sequence(owner_id(SECOND_SLOT, 1), false)
                .unwrap(),
            Some((false, false))
        );
        reader.join().unwrap();
        assert_eq!(world.data(), FIRST);
        world.assert_free();
        budget.spent()
    }
    every_kill_point(scenario);
}

/// A participant attaches (its status word set) and takes the writer word while a repairer
/// that saw the word held asks whether the id names an attached participant and frees it if
/// not (as a thread that waited on the word for a while does). The repairer must never free a
/// live owner's word: the taker's CAS publishes its attach (Release), and the repairer re-reads
/// the id with Acquire before it looks.
#[test]
fn a_live_owners_word_is_never_taken_for_a_stale_one() {
    loom_tests::model(|| {
        let world = Arc::new(World::new());
        // The owner's slot status (SeqCst, as `Table` stores and loads it).
        let attached = Arc::new(AtomicU64::new(0));
        let me = owner_id(FIRST_SLOT, 1);
        let owner = {
            let world = world.clone();
            let attached = attached.clone();
            thread::spawn(move || {
                attached.store(1, Ordering::SeqCst);
                let lock = StoreLock::new(&world.lock_file, AT).unwrap();
                assert_eq!(lock.try_take(me).unwrap(), Ok(()));
                thread::yield_now();
                // Still ours: nobody freed it under us.
                assert_eq!(
                    world.lock_file.load(AT.writer, Ordering::Relaxed).unwrap(),
                    me,
                    "a repairer freed a live owner's word"
                );
                lock.release().unwrap();
            })
        };
        let lock = StoreLock::new(&world.lock_file, AT).unwrap();
        // Relaxed, as a waiter's failed CAS reads the holder's id.
        let seen = world.lock_file.load(AT.writer, Ordering::Relaxed).unwrap();
        let freed = lock
            .free_stale_writer(seen, |_| Ok(attached.load(Ordering::SeqCst) == 0))
            .unwrap();
        assert!(!freed, "a live owner's word was freed as stale");
        owner.join().unwrap();
        world.assert_free();
    });
}

/// The lock file names an owner that is not attached (damaged or forged): the repairer frees
/// the word, and a live writer then takes it and changes the data.
#[test]
fn a_writer_word_naming_nobody_is_freed() {
    loom_tests::model(|| {
        let world = Arc::new(World::new());
        let ghost = owner_id(SECOND_SLOT, 9);
        world
            .lock_file
            .store(AT.writer, ghost, Ordering::Relaxed)
            .unwrap();
        let writer = spawn_patient_writer(&world);
        let lock = StoreLock::new(&world.lock_file, AT).unwrap();
        // No participant is attached in the ghost's slot.
        let names_nobody = |_| Ok(true);
        assert!(lock.free_stale_writer(ghost, names_nobody).unwrap());
        writer.join().unwrap();
        assert_eq!(world.data(), FIRST);
        world.assert_free();
    });
}
