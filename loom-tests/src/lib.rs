//! Loom models of persist's lock-free page and heap managers, and of its store lock.
//!
//! The models live in `tests/`, one property per file; this library holds what they share: a
//! simulated store ([`World`]: the store's words, the lock file's participant table and the
//! liveness flags, all loom atomics under `--cfg loom`), [`KillableWords`], the word store
//! through which a participant is "SIGKILLed" between any two of its steps, and the runners
//! that kill it at every such step ([`every_kill_point`], [`every_kill_pair`]). The models of
//! publications (`persist::part_lock`'s gate, beside part takers and recoverers) share the
//! scaffolding in [`publication`]; the models of publications into a dict's or a set's
//! entries (`tests/dict_insert.rs`, `tests/set_delete.rs`) also share the table on it, in
//! [`dict_table`]; a file with planted bugs names them with [`Planted`].
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test
//! -p loom-tests --release` (scripts/test-all.sh does, and records the time). With
//! `LOOM_TESTS_VERBOSE=1` and `--nocapture`, the kill models print how many kill points they
//! cover.
//!
//! Everything here is built only with `RUSTFLAGS="--cfg loom"`; without it the crate is empty, so
//! that `cargo test --workspace` still builds it.

#[cfg(loom)]
mod world;
#[cfg(loom)]
pub use world::*;

#[cfg(loom)]
pub mod dict_table;

/// The store lock's words, in a lock file of their own (the store-lock and wake models).
#[cfg(loom)]
pub const LOCK_AT: persist::store_lock::LockOffsets = persist::store_lock::LockOffsets {
    writer: 0,
    seq: 8,
    waiters: 16,
};
#[cfg(loom)]
pub const LOCK_FILE_BYTES: u64 = 24;

/// A model file's planted bugs: the variants its doc comment lists, of which the environment
/// variable `env` may name one (unset or empty: none, every step is the tree's own). Read once.
#[cfg(loom)]
pub struct Planted {
    env: &'static str,
    variants: &'static [&'static str],
    chosen: std::sync::OnceLock<String>,
}

#[cfg(loom)]
impl Planted {
    pub const fn new(env: &'static str, variants: &'static [&'static str]) -> Planted {
        Planted {
            env,
            variants,
            chosen: std::sync::OnceLock::new(),
        }
    }

    /// Whether the environment variable names `variant` (one of the file's variants).
    pub fn is(&self, variant: &str) -> bool {
        let chosen = self.chosen.get_or_init(|| {
            let v = std::env::var(self.env).unwrap_or_default();
            assert!(
                v.is_empty() || self.variants.contains(&v.as_str()),
                "{}={v}: not one of {:?}",
                self.env,
                self.variants
            );
            v
        });
        debug_assert!(self.variants.contains(&variant));
        chosen == variant
    }
}

/// The scaffolding of the publication models (`tests/publish.rs`, `tests/publish_append.rs`,
/// `tests/append_block.rs`, `tests/publish_pop.rs`): the object layer's words beside the lock
/// file's store lock and gate ([`Objects`](publication::Objects)), a participant's view of them
/// ([`View`](publication::View): its parts, store lock and undo log), the recovery's last step
/// ([`recover_dead`](publication::recover_dead)), an unlocked read as the object layer
/// validates it ([`read_validated`](publication::read_validated)), and a list's words for the
/// append and pop models. What each model adds (its own words, who is inside, the recovery
/// before the last step, a part taker's wait, the publications themselves) stays in its file.
#[cfg(loom)]
pub mod publication {
    use crate::{Budget, KillableWords};
    use loom::sync::Mutex;
    use loom::thread;
    use persist::part_lock::{record, tail_claimant, Closed, GateOffsets, HeldParts, Parts};
    use persist::store_lock::{owner_id, Futex, LockOffsets, OtherEntries, StoreLock, UndoLog};
    use persist::sync::{AccessError, AtomicU64, MemLiveness, MemWords, Ordering, WordStore};

    // ---- the lock file ------------------------------------------------------------------------

    /// The lock words, then the gate's: `shared`, and one `active` word per slot.
    pub const AT: LockOffsets = crate::LOCK_AT;
    pub const SLOTS: u32 = 3;
    pub const GATE: GateOffsets = GateOffsets {
        shared: 24,
        active: 32,
        stride: 8,
        slots: SLOTS,
    };
    /// Where the gate's words end in the lock file.
    pub const GATE_END: u64 = 32 + 8 * SLOTS as u64;

    // ---- the store file -----------------------------------------------------------------------

    /// Store file: the container's version word P (its part word) at 16, the model's own words
    /// from 24 up to RECORDS, then per slot its held-parts record and its undo log block.
    /// (Offset 0 stays unused: a record entry naming offset 0 is an empty one.)
    pub const P: u64 = 16;
    pub const RECORDS: u64 = 128;
    pub const LOG_CAP: u64 = 4;
    pub const LOG_BYTES: u64 = persist::store_lock::undo::ENTRIES + LOG_CAP * 16;
    pub const SLOT_AREA: u64 = record::BYTES + LOG_BYTES;
    pub const STORE_BYTES: u64 = RECORDS + SLOTS as u64 * SLOT_AREA;

    pub fn record_of(slot: u32) -> u64 {
        RECORDS + slot as u64 * SLOT_AREA
    }

    pub fn log_of(slot: u32) -> u64 {
        record_of(slot) + record::BYTES
    }

    // ---- participants -------------------------------------------------------------------------

    pub const GENERATION: u64 = 1;

    pub fn owner(slot: u32) -> u64 {
        owner_id(slot, GENERATION)
    }

    /// The slot an owner id names.
    pub fn slot_of(owner: u64) -> u32 {
        (owner & 0xffff) as u32 - 1
    }

    pub const VICTIM: u32 = 0;
    pub const OTHER: u32 = 1;
    pub const THIRD: u32 = 2;

    /// No thread sleeps in these models (waiters spin): nothing to wait on or wake.
    pub struct Spin;

    impl Futex for Spin {
        fn wait(&self, _word: &AtomicU64, _expected: u32) {}

        fn wake(&self, _word: &AtomicU64) {}
    }

    /// Undo log entries other than data words: the models make none.
    pub struct WordsOnly;

    impl OtherEntries for WordsOnly {
        type Error = AccessError;

        fn once_only(&self, _tagged: u64) -> bool {
            false
        }

        fn undo(&mut self, _entry: u64, tagged: u64, _value: u64) -> Result<(), AccessError> {
            panic!("the models log data words only, found entry {tagged:#x}")
        }
    }

    // ---- the world ----------------------------------------------------------------------------

    /// The words a publication model runs on: the lock file (store lock and gate), the object
    /// layer's store file, the liveness flags, and the kernel's lock on a dead slot. A model's
    /// `World` holds one and derefs to it.
    pub struct Objects {
        pub lock_file: MemWords,
        pub store: MemWords,
        pub live: MemLiveness,
        /// The kernel's lock on a dead slot: one recoverer at a time.
        pub recovery: Mutex<()>,
    }

    impl Objects {
        /// Fresh words (all 0), a lock file of `lock_file_bytes`, every slot alive.
        pub fn new(lock_file_bytes: u64) -> Objects {
            let w = Objects {
                lock_file: MemWords::new(lock_file_bytes, lock_file_bytes),
                store: MemWords::new(STORE_BYTES, STORE_BYTES),
                live: MemLiveness::new(SLOTS as usize),
                recovery: Mutex::new(()),
            };
            for s in 0..SLOTS {
                w.live.set_alive(s, true);
            }
            w
        }

        pub fn word(&self, at: u64) -> u64 {
            self.store.load(at, Ordering::Relaxed).unwrap()
        }

        pub fn lock_word(&self, at: u64) -> u64 {
            self.lock_file.load(at, Ordering::Relaxed).unwrap()
        }

        pub fn active(&self, slot: u32) -> u64 {
            self.lock_word(GATE.active + 8 * slot as u64)
        }

        /// The lock file and the store as a participant killed when `budget` is spent sees
        /// them.
        pub fn killable<'a>(
            &'a self,
            budget: &'a Budget,
        ) -> (KillableWords<'a>, KillableWords<'a>) {
            let lock_file = KillableWords {
                inner: &self.lock_file,
                budget,
            };
            let store = KillableWords {
                inner: &self.store,
                budget,
            };
            (lock_file, store)
        }

        /// What must hold once nothing is in flight and the dead are recovered: the part free,
        /// every record, log and `active` empty, the store lock free.
        pub fn assert_quiet(&self) {
            assert_eq!(
                self.word(P) % 2,
                0,
                "the part is left held: {:#x}",
                self.word(P)
            );
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
                assert_eq!(self.active(s), 0, "slot {s} is left active");
            }
            assert_eq!(self.lock_word(AT.writer), 0, "the writer word is left held");
            assert_eq!(self.lock_word(AT.seq) % 2, 0, "the sequence is left odd");
            assert_eq!(self.lock_word(GATE.shared), 0, "a shared hold is left");
        }
    }

    /// Slot `slot`'s store lock and parts (its gate, its held-parts record), through `W`.
    pub fn gate<'a, W: WordStore>(
        lock_file: &'a W,
        store: &'a W,
        slot: u32,
    ) -> Result<(StoreLock<'a, W>, Parts<'a, W>), AccessError> {
        let lock = StoreLock::new(lock_file, AT)?;
        let parts = Parts::new(
            lock,
            lock_file,
            store,
            GATE,
            slot,
            owner(slot),
            record_of(slot),
        )?;
        Ok((lock, parts))
    }

    /// The recovery's last step for dead slot `dead`, by the participant whose `parts` these
    /// are: `Parts::recover_dead` (its log rolled back, its parts released, its `active`
    /// cleared).
    pub fn recover_dead<W: WordStore>(
        parts: &Parts<'_, W>,
        store: &W,
        dead: u32,
    ) -> Result<(), AccessError> {
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

    /// A participant's view of [`Objects`] through `W` (killable for a victim): its parts
    /// and gate, its store lock, its undo log, and the change it logs there. A model's
    /// `Participant` holds one and derefs to it.
    pub struct View<'a, W: WordStore> {
        pub parts: Parts<'a, W>,
        pub lock: StoreLock<'a, W>,
        pub log: UndoLog<'a, W>,
        pub lock_file: &'a W,
        pub store: &'a W,
        pub slot: u32,
        /// Entries in the log of the change under way.
        pub len: u64,
    }

    impl<'a, W: WordStore> View<'a, W> {
        pub fn new(lock_file: &'a W, store: &'a W, slot: u32) -> Result<Self, AccessError> {
            let (lock, parts) = gate(lock_file, store, slot)?;
            Ok(View {
                parts,
                lock,
                log: UndoLog::new(store, log_of(slot)),
                lock_file,
                store,
                slot,
                len: 0,
            })
        }

        /// The old value logged first, then the word changed (as `object/access.rs` `put`).
        pub fn put(&mut self, at: u64, new: u64) -> Result<(), AccessError> {
            let old = self.store.load(at, Ordering::Relaxed)?;
            assert!(self.len < LOG_CAP);
            self.log.append_word(self.len, at, old)?;
            self.len += 1;
            // Relaxed: readers validate the part's version.
            self.store.store(at, new, Ordering::Relaxed)
        }

        pub fn commit(&mut self) -> Result<(), AccessError> {
            self.log.set_len(0)?;
            self.len = 0;
            Ok(())
        }

        /// A failed change: its log rolled back (the words as they were before it).
        pub fn roll_back(&mut self) -> Result<(), AccessError> {
            self.log.roll_back(self.len, &mut WordsOnly)?;
            self.len = 0;
            Ok(())
        }

        /// Passes the gate, waiting (spinning) while a section holds it closed.
        pub fn enter(&self) -> Result<(), AccessError> {
            loop {
                match self.parts.enter(&Spin)? {
                    Ok(()) => return Ok(()),
                    Err(Closed::Seq(_)) | Err(Closed::Shared(_)) => thread::yield_now(),
                }
            }
        }
    }

    /// One unlocked read under P as the object layer validates it, by `slot` (`publisher_in`
    /// skips it): the `seq` token and P's version observed, `read` run (its loads Relaxed),
    /// then `read_valid` (Acquire fence, `seq`), then `publisher_in` (nobody publishes under
    /// P; skipped unless `publisher_in`, a planted bug), then P's version unchanged. The
    /// version and what `read` returned, if the read validates.
    pub fn read_validated<T>(
        world: &Objects,
        slot: u32,
        publisher_in: bool,
        read: impl FnOnce() -> T,
    ) -> Option<(u64, T)> {
        let (lock, parts) = gate(&world.lock_file, &world.store, slot).unwrap();
        let token = lock.read_begin().ok()?;
        // Acquire: as `ReadSet::observe`.
        let v = world.store.load(P, Ordering::Acquire).unwrap();
        if v % 2 == 1 {
            return None;
        }
        let seen = read();
        if !lock.read_valid(token) {
            return None;
        }
        if publisher_in && parts.publisher_in(|p| p == P).unwrap().is_some() {
            return None;
        }
        // Relaxed: ordered after the data loads by `read_valid`'s fence.
        (world.store.load(P, Ordering::Relaxed).unwrap() == v).then_some((v, seen))
    }

    // ---- a list (the append and pop models) ---------------------------------------------------

    /// A list's words, after P (its version word): its `len` word, ITEMS (where its items
    /// block is) and CAP (the block's capacity). A model's items blocks (and its other list
    /// words: `publish_pop.rs`'s `start`) lie from 48 up to RECORDS.
    pub const LEN: u64 = 24;
    pub const ITEMS: u64 = 32;
    pub const CAP: u64 = 40;

    impl Objects {
        /// The list once nothing is in flight: its `len` word unclaimed, and its items.
        pub fn list(&self) -> Vec<u64> {
            let word = self.word(LEN);
            assert_eq!(
                tail_claimant(word),
                None,
                "the tail is left claimed: {word:#x}"
            );
            let (items, cap) = (self.word(ITEMS), self.word(CAP));
            assert!(word <= cap, "length {word} past capacity {cap}");
            (0..word).map(|i| self.word(items + 8 * i)).collect()
        }
    }

    /// The list a set of appends to `list` explains: each append's item (`(item, index)`,
    /// the index None if it did not land) at the index it landed at (distinct, and together
    /// the indexes from `list.len()` on with no gap).
    pub fn explained(mut list: Vec<u64>, appends: &[(u64, Option<u64>)]) -> Vec<u64> {
        let mut landed: Vec<(u64, u64)> = appends
            .iter()
            .filter_map(|&(item, at)| at.map(|at| (at, item)))
            .collect();
        landed.sort();
        for (at, item) in landed {
            assert_eq!(
                at,
                list.len() as u64,
                "an append landed at {at} with {} items before it ({appends:?})",
                list.len()
            );
            list.push(item);
        }
        list
    }
}
