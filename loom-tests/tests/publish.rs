//! Publications (`persist::part_lock`): a single change that replaces one inline value word of a
//! container by one CAS, holding no part lock, beside part takers, lockExcl sections, readers,
//! and the recoverer of a publisher killed anywhere.
//!
//! The protocol: a publisher announces itself in its `active` word (`publishing(P)` = P | 1,
//! P the container's version word), fences (SeqCst), and withdraws if `seq` is odd, `shared` is
//! not 0 or P is held (odd); else it CASes the value word, moves P by 2 (unless a holder has it:
//! that holder's release moves it) and clears `active` (Release). A part taker, after its CAS on
//! P, fences and waits while another slot's `active` names P (`publisher_of`), recovering a
//! dead publisher; a section taker drains every `active`, publications included. A reader,
//! after its reads, fences (Acquire), checks `seq`, finds no publisher under P
//! (`publisher_in`), and only then re-checks P's version. The recoverer of a dead publisher
//! moves the version its `active` names (`bump_version`) before `recover_dead` clears it.
//!
//! Each model catches (each bug below was put into `part_lock.rs` once, or into this file where
//! it says so, and the model failed; every one was reverted):
//!
//! - `a_part_taker_that_moves_the_word_never_loses_a_publication` (a publisher, killed before
//!   each of its word accesses, finds its value word through a location word LOC, as a dict
//!   finds its table, and adds 1 to it; a live part taker "resizes": copies the word to C,
//!   points LOC there and zeroes the old word, after waiting for publishers under P and
//!   recovering a dead one): the SeqCst fence removed from `enter_publish`, or from
//!   `publisher_of`, or `publisher_in` finding nobody (the publication lands in the old word
//!   after the copy); a recovery that leaves `active` set (`recover_dead` without its store).
//! - `a_part_taker_that_leaves_the_old_word_never_loses_a_publication` (the same, but the old
//!   word keeps its value, as a freed table keeps its bytes until reused): as above, and the
//!   load of the part word in `enter_publish` made Relaxed (the publisher reads LOC from before
//!   the resize and writes the dead copy).
//! - `a_rolled_back_part_change_never_undoes_a_publication` (a part taker, killed before each
//!   of its word accesses, logs and changes A and rolls its change back, or its recoverer does;
//!   a live publisher adds 1 to A): the fence removed from `enter_publish` or from
//!   `publisher_of`; `publisher_in` finding nobody, or its loads made Relaxed; the store of 0 in
//!   `leave` made Relaxed (the taker logs A from before the publication and restores that).
//! - `a_reader_never_keeps_two_publications_out_of_order` (a publisher, killed before each of
//!   its word accesses, publishes A and then B; a reader of (A, B); then the recovery): no
//!   version bump (`end_publish` ignoring `changed`); `active` cleared before the bump instead
//!   of after (a publisher killed in between leaves nothing that tells its recoverer to bump);
//!   a recovery that does not bump (this file's `recover`).
//! - `two_readers_agree_on_the_order_of_two_publications` (two publishers, of A and of B, and
//!   two readers reading them in opposite orders: independent reads of independent writes):
//!   a reader that skips `publisher_in` (this file's `read_at` passing false to
//!   `loom_tests::publication::read_validated`), or `publisher_in` finding nobody
//!   (each reader keeps one publication without the other); no version bump; `active` cleared
//!   before the bump.
//! - `a_dead_publisher_never_keeps_a_taker_waiting` (a publisher killed before each of its word
//!   accesses; a part taker waits for it without recovering it; a third participant recovers
//!   it, then checks that a written word has its version moved): the fences of
//!   `enter_publish` or `publisher_of` removed, or `publisher_in` finding nobody (the taker
//!   goes on beside the publication); no version bump, `active` cleared before the bump, or a
//!   recovery that does not bump (the version unmoved); a recovery that leaves `active` set
//!   (the taker waits for ever: loom's branch limit).
//! - `the_gate_keeps_a_publication_and_a_lockexcl_section_apart` (a publisher killed before
//!   each of its word accesses; a lockExcl section drains it, recovering it if dead, reads A
//!   twice and adds 1): the fence removed from `enter_publish`; the `seq` check dropped from
//!   `enter_publish`.
//! - `a_version_names_one_state` (a publisher killed before each of its word accesses, a part
//!   taker that waits for it and changes nothing, a reader; a read that validated against the
//!   final version must hold the final value): the version moved before the CAS instead of
//!   after, or the bump's CAS made Relaxed (neither is caught by the IRIW model above at these
//!   bounds, though both allow that anomaly); no bump; `active` cleared before the bump; the
//!   fences of `enter_publish` or `publisher_of` removed. Also a part taker that lets go of P
//!   while a publication under it is in flight (the object layer's `begin_part` did so once,
//!   after a bounded spin; put into this model's taker): the publication's own bump gave up on
//!   the held word, and the release is not ordered after its CAS. The object layer now waits
//!   holding P (`wait_publishers`).
//! - `a_publisher_that_just_attached_is_seen_by_a_part_taker` (a participant raises `slots
//!   high` and publishes at once; a part taker scans only the slots below `slots high`): the
//!   taker reading `slots high` before the SeqCst fence of `publisher_of` instead of after it,
//!   as `object/parts.rs` `wait_publishers` did at first (it missed the newcomer and moved the
//!   word from under its publication; it now fences first).
//!
//! Not caught: the publishing CAS made Relaxed. Nothing needs its Release: the SeqCst fence in
//! `enter_publish` comes after the `active` store (and after every earlier publication's bump),
//! so a reader whose Acquire fence follows a load of the new word synchronizes with that fence.
//!
//! What loom cannot see: as in `part_lock.rs` (a kill is a prefix of the victim's accesses in
//! program order; SeqCst accesses are checked as AcqRel, so every handshake is fenced). Loom's
//! SeqCst fences are stronger than C++'s (each joins every earlier one), which hides some
//! independent-reads anomalies; and loom never produced the IRIW anomaly when the publishers
//! loaded the word before their CAS, so the publishers here CAS from a guess (the same
//! protocol: the load only makes the first guess). A withdrawn publisher gives up here (the
//! object layer then runs the change on the part, the path `part_lock.rs` models). Waiters spin
//! with `yield_now`.
//!
//! Cost (one core, release build, LOOM_MAX_PREEMPTIONS=2, on the shared 2-core machine, in the
//! order above): 0.02 s (17 kill points), 0.03 s (17), 0.04 s (35), 0.4 s (28), 7.3 s, 0.14 s
//! (16), 0.02 s (16), 3.0 s (16), 0.01 s: about 11 s in all (18 s under `cargo test`, two test
//! threads). Also run at LOOM_MAX_PREEMPTIONS=3, all passing: 138 s for the IRIW model, 29 s
//! for `a_version_names_one_state`, under 1 s each for the others.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::publication::{
    gate, owner, read_validated, record_of, recover_dead, slot_of, Objects, Spin, View, AT, GATE,
    GATE_END, OTHER, P, THIRD, VICTIM,
};
use loom_tests::{every_kill_point, Budget, KillableWords};
use persist::part_lock::{bump_version, holder, published_part, GateOffsets, Held, Parts};
use persist::store_lock::StoreLock;
use persist::sync::{fence, AccessError, Liveness, Ordering, WordStore};
use std::cell::Cell;
use std::ops::{Deref, DerefMut};

/// The lock file: the lock words and the gate's (`loom_tests::publication`), then its `slots
/// high` word (after the table): the slots a scan covers.
const HIGH: u64 = GATE_END;
const LOCK_FILE_BYTES: u64 = HIGH + 8;

/// Store file (`loom_tests::publication`): one part word P (a container's version), its value
/// words A and B, C (where a resize moves A), LOC (where the container's value word is: A, or
/// C after a resize), then per slot its held-parts record and its undo log block.
const A: u64 = 24;
const B: u64 = 32;
const C: u64 = 40;
const LOC: u64 = 48;

/// Every value word's first value, and what a publication makes of it.
const OLD: u64 = 10;
const NEW: u64 = OLD + 1;
/// A value word that holds no inline value (a dict's EMPTY): a publication gives up on it.
const EMPTY: u64 = 0;

/// Which participants are inside (a publication past the gate, or a section): kept outside
/// loom (a plain mutex; loom runs one thread at a time, so it adds no interleavings).
#[derive(Default)]
struct Inside {
    change: std::sync::Mutex<bool>,
    section: std::sync::Mutex<bool>,
}

impl Inside {
    fn enter_change(&self) {
        assert!(
            !*self.section.lock().unwrap(),
            "a publication passed the gate while a section is inside"
        );
        *self.change.lock().unwrap() = true;
    }

    fn leave_change(&self) {
        *self.change.lock().unwrap() = false;
    }

    fn enter_section(&self) {
        assert!(
            !*self.change.lock().unwrap(),
            "a section went inside while a publication is past the gate"
        );
        *self.section.lock().unwrap() = true;
    }

    fn leave_section(&self) {
        *self.section.lock().unwrap() = false;
    }
}

/// The words (`Objects`, which a `World` derefs to), and who is inside.
struct World {
    objects: Objects,
    inside: Inside,
}

impl Deref for World {
    type Target = Objects;

    fn deref(&self) -> &Objects {
        &self.objects
    }
}

impl World {
    fn new() -> World {
        let w = World {
            objects: Objects::new(LOCK_FILE_BYTES),
            inside: Inside::default(),
        };
        for at in [A, B, C] {
            w.store.store(at, OLD, Ordering::Relaxed).unwrap();
        }
        w.store.store(LOC, A, Ordering::Relaxed).unwrap();
        w
    }
}

/// Recovers dead slot `dead` as slot `by` would: a publication its `active` names first (the
/// version it may have left unmoved is moved), then `Parts::recover_dead` (its log rolled
/// back, its parts released, its `active` cleared).
fn recover<W: WordStore>(lock_file: &W, store: &W, by: u32, dead: u32) -> Result<(), AccessError> {
    let (_, parts) = gate(lock_file, store, by)?;
    // Relaxed: the death (learnt from the liveness flag, SeqCst) orders all the dead did.
    let active = parts.active_word(dead)?.load(Ordering::Relaxed);
    if let Some(part) = published_part(active) {
        assert_eq!(
            part, P,
            "a publication under a part that is not a container's"
        );
        bump_version(store, part)?;
    }
    recover_dead(&parts, store, dead)
}

/// A live participant recovers dead slot `dead`, one recoverer at a time. (The dead is no
/// longer inside from its death on: it writes nothing more.)
fn recover_live(world: &World, by: u32, dead: u32) {
    world.inside.leave_change();
    let _one_at_a_time = world.recovery.lock().unwrap();
    recover(&world.lock_file, &world.store, by, dead).unwrap();
}

/// A participant's view through `W` (killable for a victim): its parts, store lock and undo
/// log (`View`, which it derefs to: `put`, `commit`, `roll_back`, `enter`), and the world.
struct Participant<'a, W: WordStore> {
    world: &'a World,
    view: View<'a, W>,
}

impl<'a, W: WordStore> Deref for Participant<'a, W> {
    type Target = View<'a, W>;

    fn deref(&self) -> &View<'a, W> {
        &self.view
    }
}

impl<W: WordStore> DerefMut for Participant<'_, W> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.view
    }
}

impl<'a, W: WordStore> Participant<'a, W> {
    fn new(
        world: &'a World,
        lock_file: &'a W,
        store: &'a W,
        slot: u32,
    ) -> Result<Self, AccessError> {
        Ok(Participant {
            world,
            view: View::new(lock_file, store, slot)?,
        })
    }

    /// Takes `part` in record entry 0, waiting while another holds it; then waits until no
    /// publication under it is in flight (`publisher_of`). A holder or publisher found dead is
    /// recovered first if `recovers` (else the waiter spins until somebody else does).
    fn take(&self, part: u64, recovers: bool) -> Result<Held, AccessError> {
        let held = loop {
            match self.parts.try_take(0, part)? {
                Ok(h) => break h,
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
        };
        while let Some((s, seen)) = self.parts.publisher_of(part)? {
            assert_eq!(published_part(seen), Some(part));
            if recovers && !self.world.live.is_alive(s) {
                recover_live(self.world, self.slot, s);
            } else {
                thread::yield_now();
            }
        }
        assert!(
            !*self.world.inside.change.lock().unwrap(),
            "a part taker went on beside a publication"
        );
        Ok(held)
    }

    /// A publication under `part` (as `Store::publish_dict_value`): through the gate, the
    /// value word found (`at`, or through LOC if None: read Relaxed, as a dict reads its table
    /// pointer; the Acquire load of the part word in `enter_publish` orders it after the last
    /// holder's changes), `f(old)` CASed in until it holds or `f` gives up, the version moved
    /// if it changed, `active` cleared. `wrote` is set right after the CAS that wrote (before
    /// any other access: a victim killed later keeps it). A publisher turned away at the gate
    /// gives up (returns false). `guess`: the value the first CAS expects, instead of a load of
    /// the word (the same protocol: the load only makes the first guess; see the IRIW model).
    fn publish(
        &self,
        part: u64,
        at: Option<u64>,
        guess: Option<u64>,
        f: impl Fn(u64) -> Option<u64>,
        wrote: &Cell<Option<(u64, u64)>>,
    ) -> Result<bool, AccessError> {
        if self.parts.enter_publish(part, &Spin)?.is_err() {
            return Ok(false);
        }
        self.world.inside.enter_change();
        let at = match at {
            Some(at) => at,
            None => self.store.load(LOC, Ordering::Relaxed)?,
        };
        let mut old = match guess {
            Some(g) => g,
            // Relaxed: a guess for the CAS.
            None => self.store.load(at, Ordering::Relaxed)?,
        };
        let mut changed = false;
        while let Some(new) = f(old) {
            match self.parts.publish(at, old, new)? {
                Ok(()) => {
                    wrote.set(Some((at, new)));
                    changed = true;
                    break;
                }
                Err(now) => old = now,
            }
        }
        self.world.inside.leave_change();
        self.parts.end_publish(part, changed, &Spin)?;
        Ok(true)
    }
}

/// Adds 1 to an inline value; gives up on an empty word (a dict entry that moved or went).
fn add_one(old: u64) -> Option<u64> {
    (old != EMPTY).then_some(old + 1)
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
    let (lock_file, store) = world.killable(&budget);
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

/// One unlocked read of two value words under P as the object layer validates it
/// (`read_validated`): the `seq` token and P's version observed, the words read, then
/// `read_valid` (Acquire fence, `seq`), then `publisher_in` (nobody publishes under P), then
/// P's version unchanged. The pair if the read validates. `slot`: the reader's own
/// (`publisher_in` skips it).
fn read(world: &World, slot: u32, pair: [u64; 2]) -> Option<[u64; 2]> {
    read_at(world, slot, pair).map(|(_, seen)| seen)
}

/// [`read`], with the version the read validated against.
fn read_at(world: &World, slot: u32, pair: [u64; 2]) -> Option<(u64, [u64; 2])> {
    // Relaxed: validated after.
    read_validated(world, slot, true, || {
        [world.word(pair[0]), world.word(pair[1])]
    })
}

/// A publisher in slot VICTIM, killed after `k` accesses, adding 1 to the word `at` (through
/// LOC if None). Returns what it wrote and its accesses.
fn spawn_victim_publisher(
    world: &Arc<World>,
    k: u64,
    at: Option<u64>,
) -> thread::JoinHandle<(Option<(u64, u64)>, u64)> {
    let world = world.clone();
    thread::spawn(move || {
        let wrote = Cell::new(None);
        let (_, spent) = as_victim(&world, VICTIM, k, |p| {
            p.publish(P, at, Some(OLD), add_one, &wrote).map(|_| ())
        });
        (wrote.get(), spent)
    })
}

// ---- a part taker that moves the word ----------------------------------------------------------

/// The publisher (victim, killed before each of its accesses) adds 1 to the value word it finds
/// through LOC; a live part taker moves that word to C (copies it, points LOC at C, and zeroes
/// A if `zero_old`), waiting for publishers under P first and recovering a dead one. A
/// publication that wrote is never lost: the live word ends as NEW, and the publisher never
/// wrote A after the copy.
fn moved_word_scenario(k: u64, zero_old: bool) -> u64 {
    let world = Arc::new(World::new());
    let publisher = spawn_victim_publisher(&world, k, None);
    let mut taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
    taker.enter().unwrap();
    let held = taker.take(P, true).unwrap();
    let at = world.word(LOC);
    let v = world.word(at);
    taker.put(C, v).unwrap();
    taker.put(LOC, C).unwrap();
    if zero_old {
        taker.put(A, EMPTY).unwrap();
    }
    taker.commit().unwrap();
    taker.parts.end(&[held], true, &Spin).unwrap();
    let (wrote, spent) = publisher.join().unwrap();
    if !world.live.is_alive(VICTIM) {
        recover_live(&world, OTHER, VICTIM);
    }
    assert_eq!(world.word(LOC), C);
    let expected = if wrote.is_some() { NEW } else { OLD };
    assert_eq!(
        world.word(C),
        expected,
        "the live word lost a publication ({wrote:?})"
    );
    // A publication that wrote A wrote it before the copy (C checked above); one that came
    // after the resize wrote C.
    let old_word = match wrote {
        Some((A, _)) if !zero_old => NEW,
        _ if zero_old => EMPTY,
        _ => OLD,
    };
    assert_eq!(
        world.word(A),
        old_word,
        "a publication wrote the moved word"
    );
    world.assert_quiet();
    spent
}

#[test]
fn a_part_taker_that_moves_the_word_never_loses_a_publication() {
    every_kill_point(|k| moved_word_scenario(k, true));
}

#[test]
fn a_part_taker_that_leaves_the_old_word_never_loses_a_publication() {
    every_kill_point(|k| moved_word_scenario(k, false));
}

// ---- a part taker that rolls back ---------------------------------------------------------------

/// A part taker (victim, killed before each of its accesses) logs and changes A, then rolls its
/// change back (or, killed, its recoverer does); a live publisher adds 1 to A meanwhile. The
/// rollback never undoes the publication: A ends as NEW exactly when the publisher wrote.
#[test]
fn a_rolled_back_part_change_never_undoes_a_publication() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let taker = {
            let world = world.clone();
            thread::spawn(move || {
                let (_, spent) = as_victim(&world, VICTIM, k, |p| {
                    p.enter()?;
                    let held = p.take(P, false)?;
                    let v = p.store.load(A, Ordering::Relaxed)?;
                    p.put(A, v + 5)?;
                    p.roll_back()?;
                    p.parts.end(&[held], true, &Spin)
                });
                spent
            })
        };
        let publisher = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        let wrote = Cell::new(None);
        publisher
            .publish(P, Some(A), Some(OLD), add_one, &wrote)
            .unwrap();
        let spent = taker.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let expected = if wrote.get().is_some() { NEW } else { OLD };
        assert_eq!(
            world.word(A),
            expected,
            "a rollback undid a publication ({:?})",
            wrote.get()
        );
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- readers -----------------------------------------------------------------------------------

/// A publisher (victim, killed before each of its accesses) publishes A and then B (two
/// publications); a reader of (A, B) never keeps new B with old A. After the recovery, B new
/// means A new, and the version moved by at least 2 for each word that changed.
#[test]
fn a_reader_never_keeps_two_publications_out_of_order() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let reader = {
            let world = world.clone();
            thread::spawn(move || read(&world, THIRD, [A, B]))
        };
        let (_, spent) = as_victim(&world, VICTIM, k, |p| {
            let wrote = Cell::new(None);
            p.publish(P, Some(A), Some(OLD), add_one, &wrote)?;
            p.publish(P, Some(B), Some(OLD), add_one, &wrote)
                .map(|_| ())
        });
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let kept = reader.join().unwrap();
        assert_ne!(
            kept,
            Some([OLD, NEW]),
            "a reader kept B's publication without A's"
        );
        let (a, b) = (world.word(A), world.word(B));
        assert!(b == OLD || a == NEW, "B published, A not: ({a}, {b})");
        let changed = (a == NEW) as u64 + (b == NEW) as u64;
        assert!(
            world.word(P) >= 2 * changed,
            "{changed} publications moved the version to {} only",
            world.word(P)
        );
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

/// Two publishers (A by one, B by the other) and two readers, one reading (A, B), the other
/// (B, A): they never keep the two publications in opposite orders (one A new with B old, the
/// other B new with A old). No serial order explains that pair of snapshots.
#[test]
fn two_readers_agree_on_the_order_of_two_publications() {
    loom_tests::model(|| {
        let world = Arc::new(World::new());
        let publishers: Vec<_> = [(VICTIM, A), (OTHER, B)]
            .into_iter()
            .map(|(slot, at)| {
                let world = world.clone();
                thread::spawn(move || {
                    let p = Participant::new(&world, &world.lock_file, &world.store, slot).unwrap();
                    p.publish(P, Some(at), Some(OLD), add_one, &Cell::new(None))
                        .unwrap();
                })
            })
            .collect();
        let ab = {
            let world = world.clone();
            thread::spawn(move || read(&world, THIRD, [A, B]))
        };
        let ba = read(&world, THIRD, [B, A]);
        let ab = ab.join().unwrap();
        assert!(
            !(ab == Some([NEW, OLD]) && ba == Some([NEW, OLD])),
            "two readers kept the publications in opposite orders"
        );
        for p in publishers {
            p.join().unwrap();
        }
        world.assert_quiet();
    });
}

// ---- a dead publisher ---------------------------------------------------------------------------

/// A publisher (victim, killed before each of its accesses) adds 1 to A; a part taker copies A
/// to C under P, waiting for publishers under P without recovering them; a third participant
/// recovers the victim once it is dead. The taker never waits for ever, never goes on beside the
/// publication, and once the victim is done (or recovered) a published A has its version moved.
#[test]
fn a_dead_publisher_never_keeps_a_taker_waiting() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let publisher = spawn_victim_publisher(&world, k, Some(A));
        let taker = {
            let world = world.clone();
            thread::spawn(move || {
                let mut t =
                    Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
                t.enter().unwrap();
                let held = t.take(P, false).unwrap();
                let v = world.word(A);
                t.put(C, v).unwrap();
                t.commit().unwrap();
                t.parts.end(&[held], true, &Spin).unwrap();
                v
            })
        };
        let (wrote, spent) = publisher.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, THIRD, VICTIM);
        }
        assert_eq!(world.word(A), if wrote.is_some() { NEW } else { OLD });
        if wrote.is_some() {
            assert_ne!(world.word(P), 0, "a publication left the version unmoved");
        }
        let copied = taker.join().unwrap();
        assert_eq!(world.word(C), copied);
        assert!(
            copied == OLD || wrote.is_some(),
            "the taker copied {copied}"
        );
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- the gate -----------------------------------------------------------------------------------

/// A publisher (victim, killed before each of its accesses) adds 1 to A while a lockExcl section
/// (taker in the main thread) drains the gate, recovering the publisher if it died past it,
/// reads A twice and adds 1. Never both inside; A does not change under the section; both
/// additions land (the publication's only if it wrote).
#[test]
fn the_gate_keeps_a_publication_and_a_lockexcl_section_apart() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let publisher = spawn_victim_publisher(&world, k, Some(A));
        let mut taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        // lockExcl: the writer word (nobody else takes it here), `shared` 0, `seq` odd.
        assert_eq!(taker.lock.try_take(owner(OTHER)).unwrap(), Ok(()));
        taker.lock.begin_change().unwrap();
        let mut from = 0;
        while let Some((s, _)) = taker.parts.first_active(from).unwrap() {
            from = s;
            if world.live.is_alive(s) {
                thread::yield_now();
            } else {
                recover_live(&world, OTHER, s);
            }
        }
        world.inside.enter_section();
        let first = world.word(A);
        thread::yield_now();
        assert_eq!(world.word(A), first, "A changed under lockExcl");
        taker.put(A, first + 1).unwrap();
        taker.commit().unwrap();
        world.inside.leave_section();
        taker.lock.end_change().unwrap();
        let (wrote, spent) = publisher.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let expected = OLD + 1 + wrote.is_some() as u64;
        assert_eq!(world.word(A), expected, "an update was lost ({wrote:?})");
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- a version names one state ------------------------------------------------------------------

/// A publisher (victim, killed before each of its accesses) adds 1 to A while a part taker takes
/// P, waits for publishers under it (recovering a dead one), changes nothing and releases P; a
/// reader reads (A, B). A version names one state: a read that validated against the version P
/// ends with read the value A ends with. (A taker that lets go of P while the publication is in
/// flight breaks this: the publication's own bump gave up on the held word, and the release is
/// not ordered after the publication's CAS, so a reader may validate the old value against the
/// final version.)
#[test]
fn a_version_names_one_state() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let publisher = spawn_victim_publisher(&world, k, Some(A));
        let reader = {
            let world = world.clone();
            thread::spawn(move || read_at(&world, THIRD, [A, B]))
        };
        let mut taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        taker.enter().unwrap();
        let held = taker.take(P, true).unwrap();
        taker.commit().unwrap();
        taker.parts.end(&[held], true, &Spin).unwrap();
        let (_, spent) = publisher.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        if let Some((v, [a, _])) = reader.join().unwrap() {
            if v == world.word(P) {
                assert_eq!(
                    a,
                    world.word(A),
                    "version {v} names A = {a} for one reader and A = {} at the end",
                    world.word(A)
                );
            }
        }
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- a publisher that just attached ---------------------------------------------------------------

/// A part taker scans the `active` words of the slots below `slots high` only (the object layer's
/// `wait_publishers`). A participant that has just attached (raising `slots high` to cover its
/// slot, SeqCst, before anything else) publishes A at once, while the taker takes P, waits for
/// publishers (the SeqCst fence, then `slots high`, then the scan), and moves A to C. The taker
/// never misses the newcomer: the moved word keeps the publication.
#[test]
fn a_publisher_that_just_attached_is_seen_by_a_part_taker() {
    loom_tests::model(|| {
        let world = Arc::new(World::new());
        // Slots 0 and 1 attached; slot 2 attaches below.
        world.lock_file.store(HIGH, 2, Ordering::Relaxed).unwrap();
        let newcomer = {
            let world = world.clone();
            thread::spawn(move || {
                world
                    .lock_file
                    .word(HIGH)
                    .unwrap()
                    .fetch_max(THIRD as u64 + 1, Ordering::SeqCst);
                let p = Participant::new(&world, &world.lock_file, &world.store, THIRD).unwrap();
                let wrote = Cell::new(None);
                p.publish(P, Some(A), Some(OLD), add_one, &wrote).unwrap();
                wrote.get()
            })
        };
        let mut taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        taker.enter().unwrap();
        // Nobody else takes P: a failed CAS found it moved by the publication.
        let held = loop {
            if let Ok(h) = taker.parts.try_take(0, P).unwrap() {
                break h;
            }
        };
        // SeqCst fence before `slots high` (as `drain_gate` does before its scan): a publisher
        // whose fence came before ours raised it before, and we see it.
        fence(Ordering::SeqCst);
        let high = world.lock_word(HIGH) as u32;
        let lock = StoreLock::new(&world.lock_file, AT).unwrap();
        let scan = Parts::new(
            lock,
            &world.lock_file,
            &world.store,
            GateOffsets {
                slots: high,
                ..GATE
            },
            OTHER,
            owner(OTHER),
            record_of(OTHER),
        )
        .unwrap();
        while scan.publisher_of(P).unwrap().is_some() {
            thread::yield_now();
        }
        let v = world.word(A);
        taker.put(C, v).unwrap();
        taker.put(A, EMPTY).unwrap();
        taker.commit().unwrap();
        taker.parts.end(&[held], true, &Spin).unwrap();
        let wrote = newcomer.join().unwrap();
        let expected = if wrote.is_some() { NEW } else { OLD };
        assert_eq!(
            [world.word(C), world.word(A)],
            [expected, EMPTY],
            "a part taker missed a newcomer's publication ({wrote:?})"
        );
        world.assert_quiet();
    });
}
