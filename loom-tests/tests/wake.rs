//! A thread sleeping on a store lock word is woken when the word changes: no wake-up is lost.
//!
//! The bug story: a thread that finds a lock word in its way counts itself in the `waiters`
//! word, re-reads the lock word and, if it still holds the value it saw, sleeps on it (a
//! futex); a releaser changes the word, then wakes the word's sleepers if `waiters` is not 0
//! (`persist::store_lock`, "Sleeping and waking"). If the releaser's read of `waiters` misses
//! the waiter while the waiter's re-read misses the new value, the waiter sleeps through the
//! release: in the real store until its timeout (up to 50 ms a round), here for ever. So the
//! futex is modelled without a timeout (a mutex and one condition variable per word, the
//! comparison made under the mutex as the kernel makes it under its hash-bucket lock), and a
//! lost wake-up shows as a loom deadlock. The waiters and releasers run the very code the
//! object layer runs (`StoreLock::sleep`, `release_and_wake`, `end_change_and_wake`,
//! `recover_dead`); only the spin phase before a sleep is left out.
//!
//! Each model catches (each bug below was put into `store_lock.rs` once, and the model failed
//! with a loom deadlock unless said otherwise):
//!
//! - `writer_word_released_to_one_waiter`, `writer_word_released_to_two_waiters` (an owner
//!   releases the writer word while writers sleep on it): the releaser's SeqCst fence missing
//!   from `waiters_present`; the waiter's fence missing from `sleep` (the code before `sleep`
//!   existed: a SeqCst increment and a SeqCst re-read, which C++20 allows but loom cannot
//!   check, below); either fence missing with the access beside it made Relaxed; the wake-up
//!   check made before the store in `release`; a waiter that gives its count back before it
//!   sleeps; a sleep that never gives it back (the count must end at 0).
//! - `sequence_released_to_a_reader_and_a_writer` (a change ends while a reader sleeps on the
//!   odd sequence and a writer on the writer word): either of the two wake-ups missing from
//!   `end_change_and_wake`; the wake-up check made before the stores in `end_change`; the
//!   fence bugs above.
//! - `dead_owner_recovered_at_every_point` (the owner killed before each of its word accesses
//!   in a change, with a reader and a writer asleep, then recovered as `object/recovery.rs`
//!   does): a recovery that reports sleepers only when it frees the dead owner's word itself
//!   (the code before this model: an owner killed between its release and its wake-up check
//!   took the wake-up with it, and its sleepers slept until their timeout); the fence bugs.
//! - `dead_waiter_stays_counted` (one of two writers sleeping on the word killed before each
//!   of its accesses, counted or not): the other is still woken, and `waiters` ends as the
//!   number of waiters killed while counted (the conservation law; a sleep that never gives
//!   its count back fails it); the fence bugs.
//!
//! Not bugs, rightly passed by every model: the waiter's increment or the releaser's load of
//! `waiters` made Relaxed (the fences beside them order them); the waiter's re-read skipped
//! (the futex compares the word itself, after the waiter's fence, so the re-read only saves a
//! system call when the word has already moved).
//!
//! What loom cannot see: it treats SeqCst loads, stores and read-modify-writes as AcqRel and
//! checks SeqCst fences only (loom README, "Unsupported features"), so the models check the
//! handshake fence to fence. A waiter killed while asleep in the kernel is not modelled (the
//! kernel takes it off the futex queue; it stays counted, as one killed just before its
//! sleep). The spin before a sleep (`object/lock.rs`) is left out: it only reads.
//!
//! Cost (one core, release build): at LOOM_MAX_PREEMPTIONS=2, about 0.01 s, 0.1 s, 0.1 s, 5 s
//! (9 kill points) and 0.3 s (6 kill points), in the order above.
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use loom_tests::{every_kill_point, model, Budget, KillableWords, LOCK_FILE_BYTES};
use persist::store_lock::{owner_id, Futex, LockOffsets, OtherEntries, StoreLock};
use persist::sync::{AccessError, AtomicU64, MemWords, Ordering, WordStore};

/// The lock words, in a lock file of their own.
const AT: LockOffsets = loom_tests::LOCK_AT;

const OWNER_SLOT: u32 = 0;
const OWNER_GENERATION: u64 = 5;
const OWNER: u64 = (OWNER_GENERATION << 16) | (OWNER_SLOT as u64 + 1);

/// The lock file and the futex that sleeps on its words.
struct World {
    lock_file: MemWords,
    /// The kernel's hash-bucket lock: a wait compares the word and goes to sleep under it, a
    /// wake takes it to wake the sleepers.
    bucket: Mutex<()>,
    writer_sleepers: Condvar,
    seq_sleepers: Condvar,
}

impl World {
    fn new() -> World {
        assert_eq!(owner_id(OWNER_SLOT, OWNER_GENERATION), OWNER);
        World {
            lock_file: MemWords::new(LOCK_FILE_BYTES, LOCK_FILE_BYTES),
            bucket: Mutex::new(()),
            writer_sleepers: Condvar::new(),
            seq_sleepers: Condvar::new(),
        }
    }

    fn lock(&self) -> StoreLock<'_, MemWords> {
        StoreLock::new(&self.lock_file, AT).unwrap()
    }

    fn word(&self, offset: u64) -> u64 {
        self.lock_file.load(offset, Ordering::SeqCst).unwrap()
    }

    /// The sleepers of `word` (a futex is keyed by the word's address).
    fn sleepers(&self, word: &AtomicU64) -> &Condvar {
        if std::ptr::eq(word, self.lock_file.word(AT.writer).unwrap()) {
            &self.writer_sleepers
        } else if std::ptr::eq(word, self.lock_file.word(AT.seq).unwrap()) {
            &self.seq_sleepers
        } else {
            panic!("a sleep or wake-up on a word that is no lock word")
        }
    }
}

/// FUTEX_WAIT and FUTEX_WAKE without timeouts.
impl Futex for World {
    fn wait(&self, word: &AtomicU64, expected: u32) {
        let bucket = self.bucket.lock().unwrap();
        // Relaxed: the bucket lock orders it after every wake-up that took the lock before, and
        // each of those after its releaser's store; a wake-up that takes it later finds us
        // asleep. (The kernel reads the word under the same lock, with full barriers.)
        if word.load(Ordering::Relaxed) as u32 != expected {
            return;
        }
        // One wake-up and back, as FUTEX_WAIT: the caller re-checks.
        drop(self.sleepers(word).wait(bucket).unwrap());
    }

    fn wake(&self, word: &AtomicU64) {
        let _bucket = self.bucket.lock().unwrap();
        self.sleepers(word).notify_all();
    }
}

/// Waits as a writer does (try, sleep on the holder it found, try again) until the writer word
/// no longer holds `held`, through `lock_file` (killable for a victim).
fn wait_for_writer<W: WordStore>(
    world: &World,
    lock_file: &W,
    held: u64,
) -> Result<(), AccessError> {
    let lock = StoreLock::new(lock_file, AT)?;
    // Relaxed: what a failed `try_take` reads; `sleep` re-reads it in the handshake.
    while lock.writer_word().load(Ordering::Relaxed) == held {
        lock.sleep(lock.writer_word(), held, world)?;
    }
    Ok(())
}

/// Waits as an unlocked reader does until no change is in flight.
fn wait_for_reader(world: &World) {
    let lock = world.lock();
    while let Err(odd) = lock.read_begin() {
        lock.sleep(lock.seq_word(), odd, world).unwrap();
    }
}

/// The owner holds the writer word (taken before the waiters start) and gives it back while
/// `waiters` writers sleep on it.
fn writer_word_released(waiters: usize) {
    model(move || {
        let world = Arc::new(World::new());
        let lock = world.lock();
        assert_eq!(lock.try_take(OWNER).unwrap(), Ok(()));
        let sleepers: Vec<_> = (0..waiters)
            .map(|_| {
                let world = world.clone();
                thread::spawn(move || wait_for_writer(&world, &world.lock_file, OWNER).unwrap())
            })
            .collect();
        lock.release_and_wake(&*world).unwrap();
        for s in sleepers {
            s.join().unwrap();
        }
        assert_eq!(world.word(AT.waiters), 0, "a sleep kept its count");
    });
}

#[test]
fn writer_word_released_to_one_waiter() {
    writer_word_released(1);
}

#[test]
fn writer_word_released_to_two_waiters() {
    writer_word_released(2);
}

/// The owner ends a change while a reader sleeps on the odd sequence and another writer on the
/// writer word.
#[test]
fn sequence_released_to_a_reader_and_a_writer() {
    model(|| {
        let world = Arc::new(World::new());
        let lock = world.lock();
        assert_eq!(lock.try_take(OWNER).unwrap(), Ok(()));
        lock.begin_change().unwrap();
        let reader = {
            let world = world.clone();
            thread::spawn(move || wait_for_reader(&world))
        };
        let writer = {
            let world = world.clone();
            thread::spawn(move || wait_for_writer(&world, &world.lock_file, OWNER).unwrap())
        };
        lock.end_change_and_wake(&*world).unwrap();
        reader.join().unwrap();
        writer.join().unwrap();
        assert_eq!(world.word(AT.waiters), 0, "a sleep kept its count");
    });
}

/// Undo log entries other than data words: none here (the models pass no log).
struct NoEntries;

impl OtherEntries for NoEntries {
    type Error = AccessError;

    fn once_only(&self, _tagged: u64) -> bool {
        false
    }

    fn undo(&mut self, _entry: u64, tagged: u64, _value: u64) -> Result<(), AccessError> {
        panic!("no log was given, yet entry {tagged:#x} was undone")
    }
}

/// Recovers the dead owner as `object/recovery.rs` does (its step 2; the log's rollback is
/// `store_lock.rs`'s business): `recover_dead`, then each word's sleepers woken if `waiters`
/// is not 0.
fn recover(world: &World) {
    let lock = world.lock();
    if lock
        .recover_dead::<MemWords, _>(None, OWNER_SLOT, OWNER_GENERATION, false, &mut NoEntries)
        .unwrap()
    {
        for word in [lock.writer_word(), lock.seq_word()] {
            if lock.waiters_word().load(Ordering::SeqCst) != 0 {
                world.wake(word);
            }
        }
    }
}

/// The owner, holding the writer word, makes a change and ends it, and is killed before its
/// k-th word access (or not at all), while a reader waits for the change and a writer for the
/// word. The dead owner is then recovered; both waiters must return.
#[test]
fn dead_owner_recovered_at_every_point() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        assert_eq!(world.lock().try_take(OWNER).unwrap(), Ok(()));
        let reader = {
            let world = world.clone();
            thread::spawn(move || wait_for_reader(&world))
        };
        let writer = {
            let world = world.clone();
            thread::spawn(move || wait_for_writer(&world, &world.lock_file, OWNER).unwrap())
        };
        let owner = {
            let world = world.clone();
            thread::spawn(move || {
                let budget = Budget::new(k);
                let lock_file = KillableWords {
                    inner: &world.lock_file,
                    budget: &budget,
                };
                let r = StoreLock::new(&lock_file, AT).and_then(|lock| {
                    lock.begin_change()?;
                    lock.end_change_and_wake(&*world)
                });
                if let Err(e) = r {
                    assert!(
                        budget.killed(),
                        "the owner failed without being killed: {e}"
                    );
                }
                budget.spent()
            })
        };
        let spent = owner.join().unwrap();
        recover(&world);
        reader.join().unwrap();
        writer.join().unwrap();
        assert_eq!(world.word(AT.writer), 0, "the dead owner's word stays held");
        assert_eq!(world.word(AT.seq) % 2, 0, "the sequence stays odd");
        spent
    }
    every_kill_point(scenario);
}

/// Two writers sleep on the owner's word; one is killed before its k-th word access (perhaps
/// after counting itself in `waiters`). The owner releases the word: the other must wake, and
/// `waiters` must end as 1 exactly if the dead one was counted when it died.
#[test]
fn dead_waiter_stays_counted() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new());
        let lock = world.lock();
        assert_eq!(lock.try_take(OWNER).unwrap(), Ok(()));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let budget = Budget::new(k);
                let lock_file = KillableWords {
                    inner: &world.lock_file,
                    budget: &budget,
                };
                let counted = match wait_for_writer(&world, &lock_file, OWNER) {
                    Ok(()) => false,
                    Err(e) => {
                        assert!(
                            budget.killed(),
                            "the waiter failed without being killed: {e}"
                        );
                        // Killed inside `sleep` after its first step, the increment: between
                        // the increment and the decrement.
                        killed_while_counted(&budget)
                    }
                };
                (counted, budget.spent())
            })
        };
        let other = {
            let world = world.clone();
            thread::spawn(move || wait_for_writer(&world, &world.lock_file, OWNER).unwrap())
        };
        lock.release_and_wake(&*world).unwrap();
        other.join().unwrap();
        let (counted, spent) = victim.join().unwrap();
        assert_eq!(
            world.word(AT.waiters),
            counted as u64,
            "waiters must count exactly the sleepers killed while counted"
        );
        spent
    }
    every_kill_point(scenario);
}

/// Word accesses of `StoreLock::new` (one for each of its words).
const NEW_STEPS: u64 = 3;
/// Steps of one `StoreLock::sleep`: before the increment, before the re-read, before the
/// decrement.
const SLEEP_STEPS: u64 = 3;

/// Whether a waiter killed after `budget.spent()` accesses died inside a `sleep` after its
/// increment and before its decrement.
fn killed_while_counted(budget: &Budget) -> bool {
    let spent = budget.spent();
    spent >= NEW_STEPS && (spent - NEW_STEPS) % SLEEP_STEPS >= 1
}
