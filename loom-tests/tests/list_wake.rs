//! A thread waiting for a list to gain items is woken by the producer that adds one, and a
//! thread waiting for a container to change (`Store.wait`) by the change: no wake-up is lost,
//! and a waiter or a producer killed at any step breaks no later wait.
//!
//! The bug story: a consumer blocked on an empty list (`List.popleft(block=True)`) sets its
//! participant's waiting bit, reads the list event word (`seen`), tries to take an item, and
//! sleeps on the event word if the try found none; a producer adds an item, then, if any
//! waiting bit is set, moves the event word and wakes its sleepers (`persist::list_event`).
//! If the producer's read of the bits misses the waiter while the waiter's try misses the
//! item, the waiter sleeps through the append: in the real store until its slice ends (half a
//! second), here for ever. So the futex is modelled without a timeout (a mutex and a condition
//! variable, the comparison made under the mutex as the kernel makes it under its hash-bucket
//! lock), and a lost wake-up shows as a loom deadlock. The waiters and producers run the very
//! code the object layer runs (`ListEvent::announce`, `seen`, `sleep`, `withdraw`, `notify`);
//! the list itself is one counter word, taken and added to with Relaxed accesses (the real
//! list is changed under the store lock or its part lock, which only adds ordering), so the
//! handshake's two fences alone must carry the proof.
//!
//! Each model catches (each bug below was put in once, and the model failed as said):
//!
//! - `one_waiter_one_item`, `two_waiters_two_items`, and the two kill models with them: the
//!   producer's SeqCst fence missing from `ListEvent::notify`, or the waiter's missing from
//!   `ListEvent::seen` (a loom deadlock: the waiter sleeps through the item).
//! - `dead_waiter_at_every_point` (a waiter killed before each of its word accesses, then
//!   its participant recovered as `object/recovery.rs` does: `withdraw` of its bit): a later
//!   waiter and producer still meet, and every bit ends clear (a recovery without the
//!   `withdraw` fails the last assertion).
//! - `dead_producer_at_every_point` (the producer killed after its item is in the list,
//!   before each access of its `notify`, then recovered: the recoverer's own `notify`): the
//!   waiter still wakes (without the recoverer's `notify`, a loom deadlock).
//!
//! - `change_waiter_token_before_change`, `change_waiter_wakes_for_its_own_container` (the
//!   general wait, `SharedStore::wait_versions`: the user takes the token, a container's
//!   version, reads, and waits with the token; the producer moves that version and then
//!   notifies reading only the change bits, as a change that adds no list item does): the
//!   waiter's SeqCst fence removed from `ListEvent::seen` (a loom deadlock in the first model;
//!   checked). The second model also asserts that a wake-up for another container's change
//!   never ends the wait. `dead_change_waiter_at_every_point` and
//!   `dead_changer_at_every_point`: the kill models above, for this wait.
//!
//! What loom cannot see: it treats SeqCst loads, stores and read-modify-writes as AcqRel and
//! checks SeqCst fences only, so the models check the handshake fence to fence. A waiter
//! killed while asleep in the kernel is not modelled past the kernel's own clean-up (it takes
//! the sleeper off the futex queue); here the victim dies before or after its sleep.
//!
//! Cost (release build, a loaded 2-core VM): 15 s for the first four at LOOM_MAX_PREEMPTIONS=2.
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use loom_tests::{every_kill_point, model, Budget, KillableWords};
use persist::list_event::{EventOffsets, ListEvent, Wait};
use persist::store_lock::Futex;
use persist::sync::{AccessError, AtomicU64, MemWords, Ordering, WordStore};

/// The event word and one word of each kind of waiting bits (slots 0..64), in a lock file of
/// their own.
const AT: EventOffsets = EventOffsets {
    event: 0,
    bits: 8,
    change_bits: 16,
    bit_words: 1,
};
const FILE_BYTES: u64 = 24;
/// The `slots high` a producer passes: slots 0..3 may wait.
const SLOTS: u64 = 3;

/// The lock file, the list (a count of items), two containers' version words and the futex
/// that sleeps on the event word.
struct World {
    lock_file: MemWords,
    items: AtomicU64,
    versions: [AtomicU64; 2],
    /// The kernel's hash-bucket lock: a wait compares the word and goes to sleep under it, a
    /// wake takes it to wake the sleepers.
    bucket: Mutex<()>,
    sleepers: Condvar,
}

impl World {
    fn new() -> World {
        World {
            lock_file: MemWords::new(FILE_BYTES, FILE_BYTES),
            items: AtomicU64::new(0),
            versions: [AtomicU64::new(0), AtomicU64::new(0)],
            bucket: Mutex::new(()),
            sleepers: Condvar::new(),
        }
    }

    fn event(&self) -> ListEvent<'_, MemWords> {
        ListEvent::new(&self.lock_file, AT).unwrap()
    }

    fn bits(&self) -> u64 {
        self.lock_file.load(AT.bits, Ordering::SeqCst).unwrap()
            | self
                .lock_file
                .load(AT.change_bits, Ordering::SeqCst)
                .unwrap()
    }

    /// A try: takes an item if there is one.
    fn try_take(&self) -> bool {
        // Relaxed: the handshake's fences order it (module doc).
        let mut n = self.items.load(Ordering::Relaxed);
        while n > 0 {
            match self
                .items
                .compare_exchange(n, n - 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }

    /// Container `c`'s version (what `Store.change_token` reads).
    fn version(&self, c: usize) -> u64 {
        // Relaxed: as in `try_take` (the real read is a validated unlocked read).
        self.versions[c].load(Ordering::Relaxed)
    }

    /// A change of container `c`: its version moves by 2 (the real one at the commit, under
    /// the container's part or the writer word; the notify follows the commit).
    fn change(&self, c: usize) {
        // Relaxed: as in `try_take`.
        self.versions[c].fetch_add(2, Ordering::Relaxed);
    }

    /// A producer's change: one item more.
    fn add(&self) {
        // Relaxed: as in `try_take`.
        self.items.fetch_add(1, Ordering::Relaxed);
    }
}

/// FUTEX_WAIT and FUTEX_WAKE without timeouts.
impl Futex for World {
    fn wait(&self, word: &AtomicU64, expected: u32) {
        let bucket = self.bucket.lock().unwrap();
        // Relaxed: the bucket lock orders it after every wake-up that took the lock before,
        // and each of those after its producer's increment (the kernel reads the word under
        // the same lock, with full barriers).
        if word.load(Ordering::Relaxed) as u32 != expected {
            return;
        }
        drop(self.sleepers.wait(bucket).unwrap());
    }

    fn wake(&self, _word: &AtomicU64) {
        let _bucket = self.bucket.lock().unwrap();
        self.sleepers.notify_all();
    }
}

/// A futex whose every wait times out at once (a victim that gives up after one sleep).
struct TimesOut;

impl Futex for TimesOut {
    fn wait(&self, _word: &AtomicU64, _expected: u32) {}
    fn wake(&self, _word: &AtomicU64) {}
}

/// Waits as `SharedStore::wait_change` does until it takes an item (`rounds`: at most that
/// many sleeps, then gives up), through `lock_file` (killable for a victim). Returns whether
/// it took one.
fn wait_for_item<W: WordStore, F: Futex>(
    world: &World,
    lock_file: &W,
    slot: u32,
    futex: &F,
    rounds: u32,
) -> Result<bool, AccessError> {
    let event = ListEvent::new(lock_file, AT)?;
    if world.try_take() {
        return Ok(true);
    }
    event.announce(slot, Wait::Items)?;
    let mut took = false;
    for _ in 0..rounds {
        let seen = event.seen()?;
        if world.try_take() {
            took = true;
            break;
        }
        event.sleep(seen, futex)?;
    }
    event.withdraw(slot, Wait::Items)?;
    Ok(took)
}

fn waiter(world: &Arc<World>, slot: u32) -> thread::JoinHandle<()> {
    let world = world.clone();
    thread::spawn(move || {
        assert!(wait_for_item(&world, &world.lock_file, slot, &*world, u32::MAX).unwrap());
    })
}

fn produce(world: &World) {
    world.add();
    world.event().notify(SLOTS, true, world).unwrap();
}

#[test]
fn one_waiter_one_item() {
    model(|| {
        let world = Arc::new(World::new());
        let w = waiter(&world, 1);
        produce(&world);
        w.join().unwrap();
        assert_eq!(world.bits(), 0, "a waiter left its bit set");
    });
}

#[test]
fn two_waiters_two_items() {
    model(|| {
        let world = Arc::new(World::new());
        let a = waiter(&world, 0);
        let b = waiter(&world, 2);
        produce(&world);
        produce(&world);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(world.bits(), 0, "a waiter left its bit set");
    });
}

/// A waiter in slot 1 that sleeps once (its futex times out) and is killed before its k-th
/// word access; its participant is then recovered (its bit withdrawn). A later waiter in the
/// same slot and a producer must still meet, and every bit must end clear.
#[test]
fn dead_waiter_at_every_point() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let budget = Budget::new(k);
                let lock_file = KillableWords {
                    inner: &world.lock_file,
                    budget: &budget,
                };
                match wait_for_item(&world, &lock_file, 1, &TimesOut, 1) {
                    // No item was ever added while it waited.
                    Ok(took) => assert!(!took),
                    Err(e) => assert!(budget.killed(), "failed without being killed: {e}"),
                }
                budget.spent()
            })
        };
        let other = waiter(&world, 0);
        let spent = victim.join().unwrap();
        // The recovery of the dead participant (object/recovery.rs step 2a).
        world.event().withdraw_all(1).unwrap();
        let later = waiter(&world, 1);
        produce(&world);
        produce(&world);
        other.join().unwrap();
        later.join().unwrap();
        assert_eq!(world.bits(), 0, "a dead waiter's bit outlived its recovery");
        spent
    }
    every_kill_point(scenario);
}

/// The producer adds its item, then is killed before the k-th word access of its `notify`;
/// its recoverer then notifies (object/recovery.rs step 2a). The waiter must wake.
#[test]
fn dead_producer_at_every_point() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let w = waiter(&world, 1);
        let producer = {
            let world = world.clone();
            thread::spawn(move || {
                let budget = Budget::new(k);
                let lock_file = KillableWords {
                    inner: &world.lock_file,
                    budget: &budget,
                };
                world.add();
                let r = ListEvent::new(&lock_file, AT).and_then(|e| e.notify(SLOTS, true, &*world));
                if let Err(e) = r {
                    assert!(budget.killed(), "failed without being killed: {e}");
                }
                budget.spent()
            })
        };
        let spent = producer.join().unwrap();
        world.event().notify(SLOTS, true, &*world).unwrap();
        w.join().unwrap();
        spent
    }
    every_kill_point(scenario);
}

/// Waits as `SharedStore::wait_versions` does until container `c`'s version differs from
/// `since` (`rounds`: at most that many sleeps, then gives up), through `lock_file`. Returns
/// the version it saw differ, if any.
fn wait_for_change<W: WordStore, F: Futex>(
    world: &World,
    lock_file: &W,
    slot: u32,
    futex: &F,
    c: usize,
    since: u64,
    rounds: u32,
) -> Result<Option<u64>, AccessError> {
    let event = ListEvent::new(lock_file, AT)?;
    // The first look announces nothing.
    if world.version(c) != since {
        return Ok(Some(world.version(c)));
    }
    event.announce(slot, Wait::Change)?;
    let mut got = None;
    for _ in 0..rounds {
        let seen = event.seen()?;
        let v = world.version(c);
        if v != since {
            got = Some(v);
            break;
        }
        event.sleep(seen, futex)?;
    }
    event.withdraw(slot, Wait::Change)?;
    Ok(got)
}

/// A user in `slot` waiting until container `c` has changed `target / 2` times, as the API
/// says to wait: take the token, read (here the contents are the version itself), and wait
/// with the token only if what it read is not there yet. Its token is read in its own thread,
/// racing the changes (a change before the token is seen by the read, one after it by the
/// wait).
fn change_waiter(world: &Arc<World>, slot: u32, c: usize, target: u64) -> thread::JoinHandle<u64> {
    let world = world.clone();
    thread::spawn(move || loop {
        let since = world.version(c);
        if since >= target {
            return since;
        }
        let got = wait_for_change(&world, &world.lock_file, slot, &*world, c, since, u32::MAX);
        let v = got.unwrap().expect("woke without a change");
        assert_ne!(v, since, "returned with the token unchanged");
    })
}

/// A change that adds no list item (a dict's, or a pop): it reads only the change bits.
fn change_and_notify(world: &World, c: usize) {
    world.change(c);
    world.event().notify(SLOTS, false, world).unwrap();
}

#[test]
fn change_waiter_token_before_change() {
    model(|| {
        let world = Arc::new(World::new());
        let w = change_waiter(&world, 1, 0, 2);
        change_and_notify(&world, 0);
        assert_eq!(w.join().unwrap(), 2);
        assert_eq!(world.bits(), 0, "a waiter left its bit set");
    });
}

/// A change of another container wakes the waiter for nothing: it looks again and sleeps
/// until its own container changes.
#[test]
fn change_waiter_wakes_for_its_own_container() {
    model(|| {
        let world = Arc::new(World::new());
        let w = change_waiter(&world, 2, 0, 2);
        change_and_notify(&world, 1);
        change_and_notify(&world, 0);
        assert_eq!(
            w.join().unwrap(),
            2,
            "returned for another container's change"
        );
        assert_eq!(world.bits(), 0, "a waiter left its bit set");
    });
}

/// A change waiter in slot 1 that sleeps once and is killed before its k-th word access, then
/// recovered; a later waiter in the same slot and a change must still meet.
#[test]
fn dead_change_waiter_at_every_point() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let budget = Budget::new(k);
                let lock_file = KillableWords {
                    inner: &world.lock_file,
                    budget: &budget,
                };
                match wait_for_change(&world, &lock_file, 1, &TimesOut, 0, 0, 1) {
                    // The only change comes after the victim is gone, so none was seen.
                    Ok(got) => assert_eq!(got, None),
                    Err(e) => assert!(budget.killed(), "failed without being killed: {e}"),
                }
                budget.spent()
            })
        };
        let spent = victim.join().unwrap();
        // The recovery of the dead participant (object/recovery.rs step 2a).
        world.event().withdraw_all(1).unwrap();
        let later = change_waiter(&world, 1, 0, 2);
        change_and_notify(&world, 0);
        later.join().unwrap();
        assert_eq!(world.bits(), 0, "a dead waiter's bit outlived its recovery");
        spent
    }
    every_kill_point(scenario);
}

/// The changer moves the version, then is killed before the k-th word access of its
/// `notify`; its recoverer then notifies. The waiter must wake.
#[test]
fn dead_changer_at_every_point() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let w = change_waiter(&world, 1, 0, 2);
        let changer = {
            let world = world.clone();
            thread::spawn(move || {
                let budget = Budget::new(k);
                let lock_file = KillableWords {
                    inner: &world.lock_file,
                    budget: &budget,
                };
                world.change(0);
                let r =
                    ListEvent::new(&lock_file, AT).and_then(|e| e.notify(SLOTS, false, &*world));
                if let Err(e) = r {
                    assert!(budget.killed(), "failed without being killed: {e}");
                }
                budget.spent()
            })
        };
        let spent = changer.join().unwrap();
        world.event().notify(SLOTS, true, &*world).unwrap();
        w.join().unwrap();
        spent
    }
    every_kill_point(scenario);
}
