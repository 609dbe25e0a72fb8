//! Part locks and the gate (`persist::part_lock`): single changes of different containers run in
//! parallel, two of one container are serialized, a lockExcl or lockShared section never runs
//! beside a single change, readers validate only what they read, and a participant killed
//! anywhere (or its recoverer) leaves nothing held and nothing half done.
//!
//! The bug story: a single change announces itself (`active` = 1) and checks the gate (`seq`,
//! `shared`), names the container's version word in its held-parts record and takes it by CAS
//! (even -> locked(me)), logs and changes the data, commits its undo log, releases the part
//! (version + 2) and leaves (`active` = 0). A section taker closes the gate (`seq` odd, or
//! `shared` + 1) and waits until every other `active` is 0. Readers validate the versions of
//! the parts they read and the `seq` token. Each model catches (each bug below was put into
//! `part_lock.rs` once, and the model failed):
//!
//! - `one_part_two_writers_one_killed` (two writers add 1 to a counter pair under one part, the
//!   first killed before each of its word accesses; the second waits, and recovers it when it
//!   finds it dead in its way; a reader reads the pair): the taking CAS made Relaxed (an update
//!   lost); the Release fence after the CAS removed, the release store made Relaxed, or the
//!   Acquire fence removed from `ReadSet::valid` (a reader keeps a torn pair); the record
//!   written after the CAS instead of before, or emptied before the release in `end` (a victim
//!   killed in between leaves its part held for good).
//! - `a_stale_record_entry_never_frees_a_live_holders_part` (the victim and a live writer race
//!   for one part; a third participant recovers the victim as soon as it is dead, while the
//!   live writer may hold the part): a recovery that releases every held part its record names
//!   instead of only those still held by the dead (a stale entry, written before a CAS that
//!   never came, frees the live holder's part under it).
//! - `a_change_of_another_part_never_invalidates_a_read` (a writer of part Q, killed at every
//!   point, beside a reader of part P; then a writer of P while Q's may still hold Q): a change
//!   that moves the store's sequence word as well (the reader of P fails validation).
//! - `the_gate_keeps_a_change_and_a_lockexcl_section_apart` (a single change killed at every
//!   point, a lockExcl taker that waits for it and recovers it if it died past the gate, a
//!   reader): the SeqCst fence removed from `Parts::enter`; the loads of `seq` and `shared` in
//!   `enter` made Relaxed. Both lose the section's update (the change reads the pair from
//!   before the section). The second was the first version of `part_lock.rs`: this model
//!   found it.
//! - `the_gate_keeps_a_change_and_a_lockshared_section_apart` (the same against a lockShared
//!   taker, which checks that the pair stays as it found it): the fence removed from `enter`
//!   (the change passes the gate while the section is inside). The fence removed from
//!   `first_active` instead fails too, but only by loom's branch limit (a taker that never
//!   stops waiting), not by an assertion: the taker's release of the writer word fences
//!   (`waiters_present`) right before, as the object layer's does, so that fence is not the
//!   only one here.
//! - `recoverer_killed_at_every_point` (a change of two parts killed at every point, its first
//!   recoverer killed at every point, a second one finishing, a reader of both parts): a record
//!   entry emptied before its part is released (a killed recoverer leaves the part held); the
//!   parts released before the log is rolled back (a reader keeps a half-undone pair); the
//!   record written after the CAS.
//! - `a_held_container_is_never_freed` (a reader keeps a container it found under a part, a
//!   writer unlinks it and frees it unless a held set names it): the writer's fence
//!   (`before_reading_held_sets`) or the reader's (`valid_after_hold`) removed.
//! - `sleepers_on_a_part_are_woken` (two writers sleep on a held part with a futex that never
//!   times out; each takes it in turn): the part wake-ups removed from `Parts::end`, or its
//!   `waiters` check made before the release stores (a loom deadlock: a lost wake-up).
//! - `a_section_taker_sleeping_on_a_change_is_woken` (a lockExcl taker sleeps on a change's
//!   `active` word; the change ends, or withdraws at the closed gate and comes back): the
//!   wake-up of `active` removed from `Parts::end` (a loom deadlock), or from the withdrawal in
//!   `enter` (the branch limit: the change spins for ever on a section that sleeps for ever).
//! - `a_dead_holders_sleepers_are_woken_by_its_recoverer` (a writer sleeps on a part held by
//!   the victim, killed at every point and then recovered): a recovery that wakes only the
//!   parts it releases itself (a loom deadlock when the victim released its part and died
//!   before its wake-up).
//!
//! Not caught: a recovery that releases every part the record names that is held by anyone
//! passes `recoverer_killed_at_every_point` (no live holder there; the stale-entry model
//! catches it).
//!
//! What loom cannot see: as in `store_lock.rs` (a kill is a prefix of the victim's accesses in
//! program order; SeqCst accesses are checked as AcqRel, so every handshake is fenced). Waiters
//! spin with `yield_now` except in the last three models.
//!
//! Cost (one core each, release build, LOOM_MAX_PREEMPTIONS=2, measured on the 2-core machine
//! while other builds ran, in the order above): 23 s (37 kill points), 1.0 s (35), 0.15 s (30),
//! 38 s (60), 9 s (72), 1.5 s (34 victim kill points, 670 (victim, recoverer) pairs), 0.01 s,
//! 0.13 s, 0.02 s, 0.8 s (35 kill points): about 73 s in all; the whole file 48 s under `cargo
//! test` (two test threads). Also run at LOOM_MAX_PREEMPTIONS=3, all passing: 136 s (38 kill
//! points) for the first, 303 s (78) for the lockExcl gate, 65 s (86) for the lockShared gate,
//! at most 2.2 s each for the others.
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use loom_tests::{every_kill_pair, every_kill_point, Budget, KillableWords};
use persist::part_lock::{
    holder, record, Closed, GateOffsets, Held, HeldParts, Parts, ReadBusy, ReadSet,
};
use persist::store_lock::{owner_id, Futex, LockOffsets, OtherEntries, StoreLock, UndoLog};
use persist::sync::{AccessError, AtomicU64, Liveness, MemLiveness, MemWords, Ordering, WordStore};
use std::cell::Cell;

/// The lock words, then the gate's: `shared`, and one `active` word per slot.
const AT: LockOffsets = loom_tests::LOCK_AT;
const SLOTS: u32 = 3;
const GATE: GateOffsets = GateOffsets {
    shared: 24,
    active: 32,
    stride: 8,
    slots: SLOTS,
};
const LOCK_FILE_BYTES: u64 = 32 + 8 * SLOTS as u64;

/// Store file: two part words (containers' versions), two data words under each, a held-set
/// word and a "freed" flag for the held-set model, then per slot its held-parts record and its
/// undo log block.
/// (Offset 0 stays unused: a record entry naming offset 0 is an empty one, and in a store
/// file offset 0 is the header, never a container.)
const P: u64 = 8;
const Q: u64 = 16;
const A: u64 = 24;
const B: u64 = 32;
const C: u64 = 40;
const D: u64 = 48;
const HELD: u64 = 56;
const FREED: u64 = 64;
const LOG_CAP: u64 = 4;
const LOG_BYTES: u64 = persist::store_lock::undo::ENTRIES + LOG_CAP * 16;
const SLOT_AREA: u64 = record::BYTES + LOG_BYTES;
const STORE_BYTES: u64 = 128 + SLOTS as u64 * SLOT_AREA;

fn record_of(slot: u32) -> u64 {
    128 + slot as u64 * SLOT_AREA
}

fn log_of(slot: u32) -> u64 {
    record_of(slot) + record::BYTES
}

const GENERATION: u64 = 1;

fn owner(slot: u32) -> u64 {
    owner_id(slot, GENERATION)
}

/// The slot an owner id names.
fn slot_of(owner: u64) -> u32 {
    (owner & 0xffff) as u32 - 1
}

const OLD: u64 = 10;

const VICTIM: u32 = 0;
const OTHER: u32 = 1;
const THIRD: u32 = 2;

/// Which participants are inside (past the gate, or inside a section): kept outside loom (a
/// plain mutex; loom runs one thread at a time, so it adds no interleavings).
#[derive(Default)]
struct Inside {
    change: std::sync::Mutex<bool>,
    section: std::sync::Mutex<bool>,
}

impl Inside {
    fn enter_change(&self) {
        assert!(
            !*self.section.lock().unwrap(),
            "a single change passed the gate while a section is inside"
        );
        *self.change.lock().unwrap() = true;
    }

    fn leave_change(&self) {
        *self.change.lock().unwrap() = false;
    }

    fn enter_section(&self) {
        assert!(
            !*self.change.lock().unwrap(),
            "a section went inside while a single change is past the gate"
        );
        *self.section.lock().unwrap() = true;
    }

    fn leave_section(&self) {
        *self.section.lock().unwrap() = false;
    }
}

struct World {
    lock_file: MemWords,
    store: MemWords,
    live: MemLiveness,
    /// The kernel's lock on a dead slot: one recoverer at a time.
    recovery: Mutex<()>,
    inside: Inside,
}

impl World {
    fn new() -> World {
        let w = World {
            lock_file: MemWords::new(LOCK_FILE_BYTES, LOCK_FILE_BYTES),
            store: MemWords::new(STORE_BYTES, STORE_BYTES),
            live: MemLiveness::new(SLOTS as usize),
            recovery: Mutex::new(()),
            inside: Inside::default(),
        };
        for s in 0..SLOTS {
            w.live.set_alive(s, true);
        }
        for at in [A, B, C, D] {
            w.store.store(at, OLD, Ordering::Relaxed).unwrap();
        }
        w
    }

    fn word(&self, at: u64) -> u64 {
        self.store.load(at, Ordering::Relaxed).unwrap()
    }

    fn lock_word(&self, at: u64) -> u64 {
        self.lock_file.load(at, Ordering::Relaxed).unwrap()
    }

    /// What must hold once nothing is in flight and the dead are recovered: every part free,
    /// every record, log and `active` empty, the store lock free.
    fn assert_quiet(&self) {
        for part in [P, Q] {
            assert_eq!(
                self.word(part) % 2,
                0,
                "part {part} is left held: {:#x}",
                self.word(part)
            );
        }
        for s in 0..SLOTS {
            let rec = HeldParts::new(&self.store, record_of(s));
            for e in 0..record::ENTRIES {
                assert_eq!(
                    rec.entry(e).unwrap().0,
                    0,
                    "slot {s}'s record keeps entry {e}"
                );
            }
            let len = UndoLog::new(&self.store, log_of(s))
                .published_len()
                .unwrap();
            assert_eq!(len, 0, "slot {s}'s undo log keeps entries");
            assert_eq!(
                self.lock_word(GATE.active + 8 * s as u64),
                0,
                "slot {s} is left active"
            );
        }
        assert_eq!(self.lock_word(AT.writer), 0, "the writer word is left held");
        assert_eq!(self.lock_word(AT.seq) % 2, 0, "the sequence is left odd");
        assert_eq!(self.lock_word(GATE.shared), 0, "a shared hold is left");
    }
}

/// No thread sleeps in these models (waiters spin): nothing to wait on or wake.
struct Spin;

impl Futex for Spin {
    fn wait(&self, _word: &AtomicU64, _expected: u32) {}

    fn wake(&self, _word: &AtomicU64) {}
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

/// Recovers dead slot `dead` as slot `by` would (the object layer's `recover_slot` is to call
/// `Parts::recover_dead` the same way): the log's length checked, then the rollback and the
/// release of its parts and `active`.
fn recover<W: WordStore>(lock_file: &W, store: &W, by: u32, dead: u32) -> Result<(), AccessError> {
    let lock = StoreLock::new(lock_file, AT)?;
    let parts = Parts::new(lock, lock_file, store, GATE, by, owner(by), record_of(by))?;
    let log = UndoLog::new(store, log_of(dead));
    let len = log.published_len()?;
    assert!(
        len <= LOG_CAP,
        "the log's length {len} exceeds its capacity"
    );
    parts.recover_dead(
        Some((&log, len)),
        HeldParts::new(store, record_of(dead)),
        dead,
        owner(dead),
        &mut WordsOnly,
        &Spin,
    )
}

/// A live participant recovers dead slot `dead`, one recoverer at a time.
fn recover_live(world: &World, by: u32, dead: u32) {
    let _one_at_a_time = world.recovery.lock().unwrap();
    recover(&world.lock_file, &world.store, by, dead).unwrap();
}

/// A participant's view through `W` (killable for a victim).
struct Participant<'a, W: WordStore> {
    world: &'a World,
    parts: Parts<'a, W>,
    lock: StoreLock<'a, W>,
    log: UndoLog<'a, W>,
    store: &'a W,
    slot: u32,
    len: u64,
}

impl<'a, W: WordStore> Participant<'a, W> {
    fn new(
        world: &'a World,
        lock_file: &'a W,
        store: &'a W,
        slot: u32,
    ) -> Result<Self, AccessError> {
        let lock = StoreLock::new(lock_file, AT)?;
        Ok(Participant {
            world,
            parts: Parts::new(
                lock,
                lock_file,
                store,
                GATE,
                slot,
                owner(slot),
                record_of(slot),
            )?,
            lock,
            log: UndoLog::new(store, log_of(slot)),
            store,
            slot,
            len: 0,
        })
    }

    /// The old value logged first, then the word changed (as `object/access.rs` `put`).
    fn put(&mut self, at: u64, new: u64) -> Result<(), AccessError> {
        let old = self.store.load(at, Ordering::Relaxed)?;
        assert!(self.len < LOG_CAP);
        self.log.append_word(self.len, at, old)?;
        self.len += 1;
        // Relaxed: readers validate the part's version.
        self.store.store(at, new, Ordering::Relaxed)
    }

    fn commit(&mut self) -> Result<(), AccessError> {
        self.log.set_len(0)?;
        self.len = 0;
        Ok(())
    }

    /// Steps 1 and 2: passes the gate, waiting (spinning) while a section holds it closed.
    fn enter(&self) -> Result<(), AccessError> {
        loop {
            match self.parts.enter(&Spin)? {
                Ok(()) => return Ok(()),
                Err(Closed::Seq(_)) | Err(Closed::Shared(_)) => thread::yield_now(),
            }
        }
    }

    /// Takes `part` in record entry `entry`, waiting while another holds it; a holder found
    /// dead is recovered first if `recovers` (a live participant; a victim only waits).
    fn take(&self, entry: u64, part: u64, recovers: bool) -> Result<Held, AccessError> {
        loop {
            match self.parts.try_take(entry, part)? {
                Ok(h) => return Ok(h),
                Err(word) => match holder(word) {
                    Some(h) if recovers && !self.world.live.is_alive(slot_of(h)) => {
                        recover_live(self.world, self.slot, slot_of(h));
                    }
                    Some(h) => {
                        assert_ne!(h, owner(self.slot), "a part taken twice by its holder");
                        thread::yield_now();
                    }
                    // Moved under us: try again at once.
                    None => {}
                },
            }
        }
    }

    /// A single change: through the gate, `part` taken, `body` run (it changes the data under
    /// the part), committed (`committed` set), the part released and the gate left.
    fn single_change(
        &mut self,
        part: u64,
        recovers: bool,
        committed: &Cell<bool>,
        body: impl FnOnce(&mut Self) -> Result<(), AccessError>,
    ) -> Result<(), AccessError> {
        self.enter()?;
        self.world.inside.enter_change();
        let held = self.take(0, part, recovers)?;
        body(self)?;
        self.commit()?;
        committed.set(true);
        self.world.inside.leave_change();
        self.parts.end(&[held], true, &Spin)
    }

    /// Adds 1 to both words of a pair (under the caller's part or section).
    fn add_one(&mut self, pair: [u64; 2]) -> Result<(), AccessError> {
        for at in pair {
            let v = self.store.load(at, Ordering::Relaxed)?;
            self.put(at, v + 1)?;
        }
        Ok(())
    }
}

/// Runs `f` as victim slot `slot` through killable words with budget `k`; a victim that is
/// killed dies (its liveness flag drops, as the kernel's lock does). Returns whether it was
/// killed and the accesses it made.
fn as_victim(
    world: &World,
    slot: u32,
    k: u64,
    f: impl FnOnce(&mut Participant<'_, KillableWords<'_>>) -> Result<(), AccessError>,
) -> (bool, u64) {
    let budget = Budget::new(k);
    let lock_file = KillableWords {
        inner: &world.lock_file,
        budget: &budget,
    };
    let store = KillableWords {
        inner: &world.store,
        budget: &budget,
    };
    let r = Participant::new(world, &lock_file, &store, slot).and_then(|mut p| f(&mut p));
    if let Err(e) = r {
        assert!(
            budget.killed(),
            "the victim failed without being killed: {e}"
        );
        world.live.set_alive(slot, false);
    }
    (budget.killed(), budget.spent())
}

/// Up to `tries` unlocked reads of two data words, validated against the versions of `parts`
/// (each observed before the reads); every read that validates is passed to `check`. Returns
/// how many validated.
fn read(
    world: &World,
    parts: &[u64],
    pair: [u64; 2],
    tries: usize,
    check: impl Fn([u64; 2]),
) -> usize {
    let mut valid = 0;
    'tries: for _ in 0..tries {
        let lock = StoreLock::new(&world.lock_file, AT).unwrap();
        let Ok(mut set) = ReadSet::begin(lock, &world.store) else {
            thread::yield_now();
            continue;
        };
        for &part in parts {
            if let Err(ReadBusy::Part { .. }) = set.observe(part).unwrap() {
                thread::yield_now();
                continue 'tries;
            }
        }
        // Relaxed: validated below.
        let seen = [world.word(pair[0]), world.word(pair[1])];
        if set.valid().unwrap() {
            check(seen);
            valid += 1;
        }
    }
    valid
}

// ---- two writers, one part -------------------------------------------------------------------

/// Two writers add 1 to the pair (A, B) under part P: the victim, killed before each of its
/// word accesses, and a live one that waits for the part and recovers the victim if it finds it
/// dead in its way. A reader reads the pair meanwhile. No update is lost, none is torn, and a
/// killed victim's change is kept exactly when it committed.
#[test]
fn one_part_two_writers_one_killed() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let reader = {
            let world = world.clone();
            thread::spawn(move || {
                read(&world, &[P], [A, B], 1, |[a, b]| {
                    assert_eq!(a, b, "a reader kept a torn pair");
                    assert!((OLD..=OLD + 2).contains(&a), "a reader kept {a}");
                })
            })
        };
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let committed = Cell::new(false);
                let (_, spent) = as_victim(&world, VICTIM, k, |p| {
                    p.single_change(P, false, &committed, |p| p.add_one([A, B]))
                });
                (committed.get(), spent)
            })
        };
        let mut live = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        live.single_change(P, true, &Cell::new(false), |p| p.add_one([A, B]))
            .unwrap();
        let (committed, spent) = victim.join().unwrap();
        reader.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let expected = OLD + 1 + committed as u64;
        assert_eq!(
            [world.word(A), world.word(B)],
            [expected, expected],
            "an update was lost or torn (victim committed: {committed})"
        );
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

/// The victim, killed before each of its word accesses, and a live writer race for part P; a
/// third participant recovers the victim as soon as it is dead, while the live writer may hold
/// P (a stale entry of the victim's record may name it: written before a CAS that never came or
/// failed). The live writer's part is never released under it.
#[test]
fn a_stale_record_entry_never_frees_a_live_holders_part() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let (_, spent) = as_victim(&world, VICTIM, k, |p| {
                    p.single_change(P, false, &Cell::new(false), |p| p.add_one([A, B]))
                });
                spent
            })
        };
        let live = {
            let world = world.clone();
            thread::spawn(move || {
                let mut live =
                    Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
                live.enter().unwrap();
                let held = live.take(0, P, true).unwrap();
                live.add_one([A, B]).unwrap();
                live.commit().unwrap();
                assert_eq!(
                    world.word(P),
                    persist::part_lock::locked(owner(OTHER)),
                    "a live holder's part was released under it"
                );
                live.parts.end(&[held], true, &Spin).unwrap();
            })
        };
        let spent = victim.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, THIRD, VICTIM);
        }
        live.join().unwrap();
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- two parts, in parallel ------------------------------------------------------------------

/// A writer of part Q, killed before each of its word accesses, runs beside a reader of part P:
/// every read of P validates (a change of Q moves nothing P's reader checks). Then a writer of
/// P runs while Q's writer may still hold Q: it takes P at the first try and commits, and so
/// does Q's writer unless killed.
#[test]
fn a_change_of_another_part_never_invalidates_a_read() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let q_writer = {
            let world = world.clone();
            thread::spawn(move || {
                let committed = Cell::new(false);
                let (_, spent) = as_victim(&world, VICTIM, k, |p| {
                    p.single_change(Q, false, &committed, |p| p.add_one([C, D]))
                });
                (committed.get(), spent)
            })
        };
        let p_reader = {
            let world = world.clone();
            thread::spawn(move || {
                read(&world, &[P], [A, B], 2, |pair| {
                    assert_eq!(pair, [OLD, OLD], "a reader of P kept {pair:?}");
                })
            })
        };
        let valid = p_reader.join().unwrap();
        assert_eq!(valid, 2, "a change of part Q invalidated a read of part P");
        let mut p_writer = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        p_writer.enter().unwrap();
        let held = p_writer
            .parts
            .try_take(0, P)
            .unwrap()
            .expect("part P was held by a writer of part Q");
        p_writer.add_one([A, B]).unwrap();
        p_writer.commit().unwrap();
        p_writer.parts.end(&[held], true, &Spin).unwrap();
        let (committed, spent) = q_writer.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        assert_eq!([world.word(A), world.word(B)], [OLD + 1, OLD + 1]);
        let q = OLD + committed as u64;
        assert_eq!([world.word(C), world.word(D)], [q, q]);
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- the gate --------------------------------------------------------------------------------

/// Waits, as a section taker, until no other slot is past the gate; a slot whose participant
/// is dead is recovered (and is then no longer inside).
fn drain(world: &World, parts: &Parts<'_, MemWords>, me: u32) {
    let mut from = 0;
    while let Some((s, _)) = parts.first_active(from).unwrap() {
        from = s;
        if world.live.is_alive(s) {
            thread::yield_now();
        } else {
            recover_live(world, me, s);
            world.inside.leave_change();
        }
    }
}

/// The change that races a section: the victim adds 1 to the pair under part P.
fn spawn_victim_change(world: &Arc<World>, k: u64) -> thread::JoinHandle<(bool, u64)> {
    let world = world.clone();
    thread::spawn(move || {
        let committed = Cell::new(false);
        let (_, spent) = as_victim(&world, VICTIM, k, |p| {
            p.single_change(P, false, &committed, |p| p.add_one([A, B]))
        });
        (committed.get(), spent)
    })
}

fn spawn_pair_reader(world: &Arc<World>, most: u64) -> thread::JoinHandle<usize> {
    let world = world.clone();
    thread::spawn(move || {
        read(&world, &[P], [A, B], 1, move |[a, b]| {
            assert_eq!(a, b, "a reader kept a torn pair");
            assert!((OLD..=most).contains(&a), "a reader kept {a}");
        })
    })
}

/// A single change (the victim, killed before each of its word accesses) races a lockExcl
/// section (taker in the main thread) and a reader. Never both inside; the section waits for
/// the change (recovering it if it died past the gate) and sees it whole; both additions land
/// (the change's only if it committed).
#[test]
fn the_gate_keeps_a_change_and_a_lockexcl_section_apart() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let victim = spawn_victim_change(&world, k);
        let reader = spawn_pair_reader(&world, OLD + 2);
        let mut taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        // lockExcl: the writer word (nobody else takes it here), `shared` 0, `seq` odd.
        assert_eq!(taker.lock.try_take(owner(OTHER)).unwrap(), Ok(()));
        assert_eq!(world.lock_word(GATE.shared), 0);
        taker.lock.begin_change().unwrap();
        drain(&world, &taker.parts, OTHER);
        world.inside.enter_section();
        let (a, b) = (world.word(A), world.word(B));
        assert_eq!(a, b, "the section found a torn pair");
        taker.add_one([A, B]).unwrap();
        taker.commit().unwrap();
        world.inside.leave_section();
        taker.lock.end_change().unwrap();
        let (committed, spent) = victim.join().unwrap();
        reader.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let expected = OLD + 1 + committed as u64;
        assert_eq!([world.word(A), world.word(B)], [expected, expected]);
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

/// A single change (the victim, killed before each of its word accesses) races a lockShared
/// section (taker in the main thread) and a reader. Never both inside; the section sees a pair
/// nobody changes while it is inside.
#[test]
fn the_gate_keeps_a_change_and_a_lockshared_section_apart() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let victim = spawn_victim_change(&world, k);
        let reader = spawn_pair_reader(&world, OLD + 1);
        let taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        let shared = world.lock_file.word(GATE.shared).unwrap();
        // lockShared: `shared` + 1 under the writer word (nobody else takes it here).
        assert_eq!(taker.lock.try_take(owner(OTHER)).unwrap(), Ok(()));
        shared.store(shared.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
        taker.lock.release().unwrap();
        drain(&world, &taker.parts, OTHER);
        world.inside.enter_section();
        let first = (world.word(A), world.word(B));
        assert_eq!(first.0, first.1, "the section found a torn pair");
        thread::yield_now();
        let again = (world.word(A), world.word(B));
        assert_eq!(first, again, "the data changed under lockShared");
        world.inside.leave_section();
        assert_eq!(taker.lock.try_take(owner(OTHER)).unwrap(), Ok(()));
        shared.store(shared.load(Ordering::SeqCst) - 1, Ordering::SeqCst);
        taker.lock.release().unwrap();
        let (committed, spent) = victim.join().unwrap();
        reader.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let expected = OLD + committed as u64;
        assert_eq!([world.word(A), world.word(B)], [expected, expected]);
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- a recoverer killed ----------------------------------------------------------------------

/// The victim takes two parts (P and Q) and changes one word under each (A and C); it is killed
/// before each of its accesses; its first recoverer is killed before each of its own, while a
/// reader reads (A, C) validated against both parts; a second recoverer finishes. The pair is
/// then both old or both new (new exactly when the victim committed), nothing is left held, and
/// a live writer takes both parts at the first try.
#[test]
fn recoverer_killed_at_every_point() {
    fn scenario(k1: u64, k2: u64) -> (u64, u64) {
        let world = Arc::new(World::new());
        let committed = Cell::new(false);
        let (_, victim_spent) = as_victim(&world, VICTIM, k1, |p| {
            p.enter()?;
            let first = p.take(0, P, false)?;
            let second = p.take(1, Q, false)?;
            p.put(A, OLD + 1)?;
            p.put(C, OLD + 1)?;
            p.commit()?;
            committed.set(true);
            p.parts.end(&[first, second], true, &Spin)
        });
        let new = OLD + committed.get() as u64;
        let reader = {
            let world = world.clone();
            thread::spawn(move || {
                read(&world, &[P, Q], [A, C], 2, move |pair| {
                    assert!(
                        pair == [OLD, OLD] || pair == [new, new],
                        "a reader kept {pair:?} (victim committed: {})",
                        new != OLD
                    );
                })
            })
        };
        let budget = Budget::new(k2);
        let first = {
            let lock_file = KillableWords {
                inner: &world.lock_file,
                budget: &budget,
            };
            let store = KillableWords {
                inner: &world.store,
                budget: &budget,
            };
            if world.live.is_alive(VICTIM) {
                Ok(())
            } else {
                recover(&lock_file, &store, OTHER, VICTIM)
            }
        };
        if let Err(e) = first {
            assert!(budget.killed(), "recovery failed without being killed: {e}");
            world.live.set_alive(OTHER, false);
        }
        if !world.live.is_alive(VICTIM) {
            recover(&world.lock_file, &world.store, THIRD, VICTIM).unwrap();
        }
        reader.join().unwrap();
        assert_eq!([world.word(A), world.word(C)], [new, new]);
        world.assert_quiet();
        let live = Participant::new(&world, &world.lock_file, &world.store, THIRD).unwrap();
        live.enter().unwrap();
        let p = live
            .parts
            .try_take(0, P)
            .unwrap()
            .expect("part P left held");
        let q = live
            .parts
            .try_take(1, Q)
            .unwrap()
            .expect("part Q left held");
        live.parts.end(&[p, q], true, &Spin).unwrap();
        world.assert_quiet();
        (victim_spent, budget.spent())
    }
    every_kill_pair(scenario);
}

// ---- held sets -------------------------------------------------------------------------------

/// The container named by data word A (a reference under part P).
const CONTAINER: u64 = 0x40;

/// A reader finds a container under part P and keeps it (its held-set entry, then the re-check
/// of P); a writer unlinks it under P and then, if no held set names it, frees it. A container
/// a reader kept is never freed.
#[test]
fn a_held_container_is_never_freed() {
    loom_tests::model(|| {
        let world = Arc::new(World::new());
        world.store.store(A, CONTAINER, Ordering::Relaxed).unwrap();
        let reader = {
            let world = world.clone();
            thread::spawn(move || {
                let lock = StoreLock::new(&world.lock_file, AT).unwrap();
                let Ok(mut set) = ReadSet::begin(lock, &world.store) else {
                    return false;
                };
                if set.observe(P).unwrap().is_err() {
                    return false;
                }
                // Relaxed: validated below.
                let found = world.word(A);
                if found == 0 {
                    return false;
                }
                // Relaxed: ordered by the fence in `valid_after_hold`.
                world.store.store(HELD, found, Ordering::Relaxed).unwrap();
                let kept = set.valid_after_hold().unwrap();
                if !kept {
                    world.store.store(HELD, 0, Ordering::Relaxed).unwrap();
                }
                kept
            })
        };
        // The writer unlinks the container and decides, while it still holds the part, whether
        // to free it (the fence of `end` would otherwise stand in for the handshake's).
        let mut writer = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        writer.enter().unwrap();
        let held = writer.take(0, P, false).unwrap();
        writer.put(A, 0).unwrap();
        writer.commit().unwrap();
        writer.parts.before_reading_held_sets();
        // Relaxed: ordered by the fence above.
        if world.store.load(HELD, Ordering::Relaxed).unwrap() != CONTAINER {
            world.store.store(FREED, 1, Ordering::Relaxed).unwrap();
        }
        writer.parts.end(&[held], true, &Spin).unwrap();
        let kept = reader.join().unwrap();
        assert!(
            !(kept && world.word(FREED) == 1),
            "a container a reader kept was freed"
        );
        world.assert_quiet();
    });
}

// ---- sleeping on a part ----------------------------------------------------------------------

/// FUTEX_WAIT and FUTEX_WAKE without timeouts (as in `wake.rs`): the comparison and going to
/// sleep under the bucket lock, as the kernel does them, so a lost wake-up is a loom deadlock.
/// Each model sleeps on one word only: a wake-up of any other word wakes nobody.
struct Kernel {
    bucket: Mutex<()>,
    sleepers: Condvar,
    /// The address of the word slept on (a futex is keyed by the word's address).
    word: usize,
}

impl Kernel {
    fn new(word: &AtomicU64) -> Kernel {
        Kernel {
            bucket: Mutex::new(()),
            sleepers: Condvar::new(),
            word: word as *const AtomicU64 as usize,
        }
    }

    fn is_watched(&self, word: &AtomicU64) -> bool {
        word as *const AtomicU64 as usize == self.word
    }
}

impl Futex for Kernel {
    fn wait(&self, word: &AtomicU64, expected: u32) {
        assert!(
            self.is_watched(word),
            "a sleep on a word the model does not watch"
        );
        let bucket = self.bucket.lock().unwrap();
        // Relaxed: the bucket lock orders it after every wake-up that took the lock before.
        if word.load(Ordering::Relaxed) as u32 != expected {
            return;
        }
        drop(self.sleepers.wait(bucket).unwrap());
    }

    fn wake(&self, word: &AtomicU64) {
        if !self.is_watched(word) {
            return;
        }
        let _bucket = self.bucket.lock().unwrap();
        self.sleepers.notify_all();
    }
}

impl<W: WordStore> Participant<'_, W> {
    /// Takes `part`, sleeping on its word while another holds it (`StoreLock::sleep`).
    fn take_sleeping(&self, part: u64, kernel: &Kernel) -> Result<Held, AccessError> {
        loop {
            match self.parts.try_take(0, part)? {
                Ok(h) => return Ok(h),
                Err(word) if word % 2 == 1 => {
                    self.lock.sleep(self.store.word(part)?, word, kernel)?
                }
                Err(_) => {}
            }
        }
    }
}

/// A holder releases a part while two writers sleep on it; each then takes it, adds 1 and
/// releases it, waking the other. A sleeper may go to sleep on the word held by the other
/// writer (a release and a take between its re-read and its sleep: the futex compares the low
/// 32 bits, 1 for every held value): that writer's release must wake it. No wake-up is lost,
/// and `waiters` ends at 0.
#[test]
fn sleepers_on_a_part_are_woken() {
    loom_tests::model(|| {
        let world = Arc::new(World::new());
        let kernel = Arc::new(Kernel::new(world.store.word(P).unwrap()));
        let mut holder = Participant::new(&world, &world.lock_file, &world.store, VICTIM).unwrap();
        holder.enter().unwrap();
        let held = holder.take(0, P, false).unwrap();
        let sleepers: Vec<_> = [OTHER, THIRD]
            .into_iter()
            .map(|slot| {
                let world = world.clone();
                let kernel = kernel.clone();
                thread::spawn(move || {
                    let mut w =
                        Participant::new(&world, &world.lock_file, &world.store, slot).unwrap();
                    w.enter().unwrap();
                    let held = w.take_sleeping(P, &kernel).unwrap();
                    w.add_one([A, B]).unwrap();
                    w.commit().unwrap();
                    w.parts.end(&[held], true, &*kernel).unwrap();
                })
            })
            .collect();
        holder.add_one([A, B]).unwrap();
        holder.commit().unwrap();
        holder.parts.end(&[held], true, &*kernel).unwrap();
        for s in sleepers {
            s.join().unwrap();
        }
        assert_eq!([world.word(A), world.word(B)], [OLD + 3, OLD + 3]);
        assert_eq!(world.lock_word(AT.waiters), 0, "a sleep kept its count");
        world.assert_quiet();
    });
}

/// A lockExcl taker sleeps on a single change's `active` word until the change ends (or
/// withdraws, if it found the gate closed, and comes back after the section); the change's
/// `end` (or `leave`) wakes it. No wake-up is lost.
#[test]
fn a_section_taker_sleeping_on_a_change_is_woken() {
    loom_tests::model(|| {
        let world = Arc::new(World::new());
        let active = world.lock_file.word(GATE.active).unwrap();
        let kernel = Arc::new(Kernel::new(active));
        let change = {
            let world = world.clone();
            let kernel = kernel.clone();
            thread::spawn(move || {
                let mut c =
                    Participant::new(&world, &world.lock_file, &world.store, VICTIM).unwrap();
                while c.parts.enter(&*kernel).unwrap().is_err() {
                    thread::yield_now();
                }
                let held = c.take(0, P, false).unwrap();
                c.add_one([A, B]).unwrap();
                c.commit().unwrap();
                c.parts.end(&[held], true, &*kernel).unwrap();
            })
        };
        let mut taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        assert_eq!(taker.lock.try_take(owner(OTHER)).unwrap(), Ok(()));
        taker.lock.begin_change().unwrap();
        while let Some((s, seen)) = taker.parts.first_active(0).unwrap() {
            assert_eq!(s, VICTIM);
            taker.lock.sleep(active, seen, &*kernel).unwrap();
        }
        let (a, b) = (world.word(A), world.word(B));
        assert_eq!(a, b, "the section found a torn pair");
        taker.add_one([A, B]).unwrap();
        taker.commit().unwrap();
        taker.lock.end_change().unwrap();
        change.join().unwrap();
        assert_eq!([world.word(A), world.word(B)], [OLD + 2, OLD + 2]);
        assert_eq!(world.lock_word(AT.waiters), 0, "a sleep kept its count");
        world.assert_quiet();
    });
}

/// The victim holds part P while a writer sleeps on it (a futex that never times out); the
/// victim is killed before each of its word accesses, and recovered once it is dead. The
/// sleeper must be woken, by the victim's own release or by the recovery, whatever the victim
/// had done: a recovery that wakes only the parts it releases itself leaves the sleeper asleep
/// when the victim released its part and died before its wake-up.
#[test]
fn a_dead_holders_sleepers_are_woken_by_its_recoverer() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let kernel = Arc::new(Kernel::new(world.store.word(P).unwrap()));
        let victim = {
            let world = world.clone();
            let kernel = kernel.clone();
            thread::spawn(move || {
                let (_, spent) = as_victim(&world, VICTIM, k, |p| {
                    p.enter()?;
                    let held = p.take(0, P, false)?;
                    p.add_one([A, B])?;
                    p.commit()?;
                    p.parts.end(&[held], true, &*kernel)
                });
                spent
            })
        };
        let sleeper = {
            let world = world.clone();
            let kernel = kernel.clone();
            thread::spawn(move || {
                let mut w =
                    Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
                w.enter().unwrap();
                let held = w.take_sleeping(P, &kernel).unwrap();
                w.add_one([A, B]).unwrap();
                w.commit().unwrap();
                w.parts.end(&[held], true, &*kernel).unwrap();
            })
        };
        let spent = victim.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            let _one_at_a_time = world.recovery.lock().unwrap();
            let lock = StoreLock::new(&world.lock_file, AT).unwrap();
            let parts = Parts::new(
                lock,
                &world.lock_file,
                &world.store,
                GATE,
                THIRD,
                owner(THIRD),
                record_of(THIRD),
            )
            .unwrap();
            let log = UndoLog::new(&world.store, log_of(VICTIM));
            let len = log.published_len().unwrap();
            parts
                .recover_dead(
                    Some((&log, len)),
                    HeldParts::new(&world.store, record_of(VICTIM)),
                    VICTIM,
                    owner(VICTIM),
                    &mut WordsOnly,
                    &*kernel,
                )
                .unwrap();
        }
        sleeper.join().unwrap();
        let (a, b) = (world.word(A), world.word(B));
        assert!(
            a == b && (a == OLD + 1 || a == OLD + 2),
            "the pair ends as ({a}, {b})"
        );
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}
