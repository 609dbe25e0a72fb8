//! Insert publications (`persist::part_lock`: `claim_insert`, `insert_entry_stage`,
//! `insert_entry_commit`, `insert_entry_finish`, `unclaim_insert`, `settle_insert_claim`): an
//! insert of a missing inline key into a dict that takes no part lock, beside other inserters,
//! part takers, readers, and the recoverer of an inserter killed anywhere (itself killed
//! anywhere, and repeated).
//!
//! The protocol (`Store::publish_dict_insert` and `claim_and_insert`; FORMAT.md §10.9,
//! "Inserts"): the inserter looks at `nentries` (room in the table, else the part path),
//! announces a publication under the dict's version word P (`enter_publish`: `active` =
//! P | 1, SeqCst fence, `seq` even, `shared` 0, P even; else it withdraws), claims the dict's
//! entries (`claim_insert`: CAS claim 0 -> `insert_claim(me)`, Acquire; held by another, it
//! looks again `SPIN_LOOKS` times and then gives up: the part path), reads `used` and
//! `nentries` and looks the key up under the claim (present: `unclaim_insert`, not inserted;
//! no room: unclaim, the part path), stages the entry (`insert_entry_stage`: hash, value, key
//! 0, `nentries` n + 1, then the first free bucket on the key's probe sequence, empty or
//! deleted), commits it (`insert_entry_commit`: the key's store), finishes (`used` + 1, claim
//! 0) and ends the publication (`end_publish`: P moved by 2 unless held, `active` 0). The part
//! path (`dict_set`, then `dict_insert_new`): the part taken, then a wait while an `active`
//! names P | 1 (recovering a dead publisher), the key looked up, a claim found settled
//! (`settle_insert_claim(None)`), the entry written, its bucket, `nentries` and `used` logged
//! and written. The recoverer of a dead inserter (`object/recovery.rs`, `Kind::Dict`): its
//! `active` names P | 1 and the claim names it: `settle_insert_claim(Some(dead))` (a staged
//! entry whose key was not stored becomes a deleted one, its bucket deleted, its value
//! emptied; `used` counted again; the claim cleared), then P moved by 2 (`bump_version`), then
//! `active` cleared (`Parts::recover_dead`). A reader observes P, reads the dict's words
//! (`used`, `nentries`, entries, buckets) and validates (`read_valid`, no `active` naming
//! P | 1, P unchanged).
//!
//! The dict: 8 buckets, room for 5 entries of three words (hash, key, value), its `used`,
//! `nentries` and claim words and its version word P. Keys are small inline words whose hash
//! is the key itself, all on bucket 1 (probe sequence 1, 6, 7, 4, ...: every insert after the
//! first probes on). The probe is `object/dict.rs`'s rule (`find`, `free_bucket`), written
//! again here. Every word step of an insert and of a settling is `part_lock.rs`'s own; the
//! control flow around them (`claim_and_insert`, `publish_dict_insert`, the part path, the
//! recovery) is copied here, as the other publication models copy theirs. The scaffolding
//! (`loom_tests::publication`: the store and lock file, a participant's view, the recovery's
//! last step, the validated read) is shared; the table lies past the scaffolding's words, in
//! a store longer than `Objects::new` makes.
//!
//! The models (an inserter marked "killed" is killed before each of its word accesses
//! through the killable word store, as in `publish_append.rs`, and also runs to its end; a
//! check "the dict is consistent" is `Dict::live`: `nentries` within the table, every live
//! entry of its key's hash and found by a lookup along its probe sequence, no key twice, every
//! deleted entry with its value emptied, `used` the number of live entries, every bucket
//! empty, deleted or naming a live entry below `nentries`, no entry named twice):
//!
//! 1. `two_inserters_of_different_keys_both_land` (into an empty dict, the victim, killed,
//!    inserts X and is recovered at once by a third participant; a live one inserts Y, on
//!    the part after a bounded spin on a held claim; then the recovery is repeated): Y is
//!    in, X iff its key was stored, each at the entry its insert took; consistent, unclaimed.
//! 2. `two_inserters_of_one_key_insert_it_once` (as 1, both inserting X with different
//!    values): X is in once, with the value of the one insert that stored its key; the other
//!    found it present.
//! 3. `a_recoverer_killed_anywhere_settles_the_insert` (the victim alone, killed; its first
//!    recoverer killed before each of its accesses; a second recoverer; then a live insert
//!    of Y; sequential, every pair of kill points): after the first recoverer's death a claim
//!    naming the victim exists only while the victim's `active` names P (else nobody would
//!    settle it), and once that `active` is clear the dict is settled and, if X landed, P
//!    moved; after the recovery X is in iff its key was stored, a staged entry left counted
//!    is a deleted one that no bucket names, `used` counts the live entries, the claim is 0;
//!    Y then lands (in the bucket the staged X left deleted, if it did).
//! 4. `an_insert_racing_a_part_taker_is_not_lost` (into a dict holding A, the victim, killed,
//!    inserts X and is recovered at once; a live part taker takes P, waits for publishers,
//!    recovering a dead one, finds the dict unclaimed (a claim would be settled with
//!    `settle_insert_claim(None)`; none can be left here), deletes A, commits, releases P): A
//!    is gone, X in iff its key was stored; consistent, unclaimed.
//! 5. `a_reader_keeps_only_whole_dicts` (into a dict holding A, the victim, killed, inserts X;
//!    a reader; then the recovery): a kept read is a consistent dict holding A, or A and X
//!    (so never a bucket past `nentries`, never `used` off by one); one kept at the first
//!    version is the first dict, one kept at the final version the final dict.
//! 6. `a_value_publication_beside_an_insert_reads_no_damage` and
//!    `a_value_publication_beside_two_inserts_reads_no_damage` (see "Found" below): a live
//!    value publication (`publish_dict_value`) of an
//!    existing key beside live inserts, in a dict with deleted buckets on that key's probe
//!    sequence; the value publication's look after its announcement must not raise.
//!
//! Found, and fixed in `src` since: `publish_dict_value` raised a spurious `CorruptionError`
//! ("dict bucket names an entry beyond the table") when its look after the announcement probed
//! while an insert publication staged. `dict_value_at` reads `nentries` first (`dict_parts`)
//! and then walks the buckets (`find`); an inserter stores `nentries` = n + 1 and then bucket
//! b = n + 1, so a look that read `nentries` = n before the first store and bucket b after the
//! second found entry n >= n, and nothing validates a publication's look: the caller (`d[k] =
//! v`, `Dict.incr`) raised it. The schedule (model 6, second test, keys X, Y, A on buckets 1,
//! 6, 7, X and Y deleted since, the hint missing A's entry): the look before the announcement
//! reads `nentries` = 3; the inserter stages X; that look reads bucket 1 and raises (ignored
//! there, the hint left empty); the publisher announces; the look that counts reads `nentries`
//! = 4, the inserter finishes X and stages Y (bucket 6 = 5), the look reads bucket 1 (X), then
//! bucket 6: entry 4 >= 4. The fix: `find` reads `nentries` again before it takes a bucket past
//! the count it read for damage (entries and the count only grow beside a look without the
//! part); `look` below does the same. Loom found this only with the `thread::yield_now()`
//! between the look's two Relaxed loads: without a scheduling point there it explored no
//! switch between them.
//!
//! Broken variants. Nothing in `src/` was edited to break things: each broken step has a
//! local copy here, used instead of the real one only when the environment variable
//! `DICT_INSERT_BROKEN` names the variant (unset, every step is `part_lock.rs`'s own, and the
//! recovery runs in the order `object/recovery.rs` does). For example
//! `DICT_INSERT_BROKEN=no-recount RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2
//! CARGO_TARGET_DIR=target/loom cargo test -p loom-tests --release --test dict_insert` must
//! fail. Which models fail with each, at LOOM_MAX_PREEMPTIONS=2 (each model run on its own:
//! a reader thread's panic aborts the test binary):
//!
//! | variant | what it breaks | fails |
//! |---|---|---|
//! | `key-before-bucket` | the key stored (commit) before the bucket | 1 to 5 |
//! | `bucket-before-count` | the bucket stored before `nentries` | 1 to 5 |
//! | `commit-then-stage` | the key stored before `nentries` and the bucket | 1 to 5 |
//! | `no-recount` | the settling leaves `used` as it is | 1 to 5 |
//! | `settle-keeps-bucket` | the settling leaves a staged entry's bucket naming it | 1 to 5 |
//! | `claim-relaxed` | `claim_insert`'s CAS Relaxed | 1, 2 |
//! | `finish-relaxed` | the store that ends the claim Relaxed | 1, 2 |
//! | `keep-claim` | an inserter that finds its key present keeps the claim | 2 |
//! | `no-bump` | an insert that landed leaves P unmoved | 3, 5 |
//! | `skip-settle` | the recovery never settles the dead's claim | 1 to 5 |
//! | `settle-any-claim` | the recovery settles whoever's claim it finds | 1, 2 |
//! | `clear-before-settle` | the recovery clears `active`, then settles | 3, 4, 5 |
//! | `taker-skips-wait` | a part taker does not wait for publishers | 1, 2, 4 |
//! | `reader-skips-publisher-in` | a reader keeps without `publisher_in` | 5 |
//!
//! How they fail: the four orders of the steps leave, after a kill between two of them, a
//! committed key no bucket names (a lookup misses it), a bucket past `nentries` (settling
//! looks only at the last counted entry), or a stored key past `nentries` that the victim
//! took for committed; an inserter that claims next finds the bucket past `nentries` under
//! its claim. `no-recount`: `used` one short after a kill between the commit and the count.
//! `settle-keeps-bucket`: a bucket names a deleted entry. `claim-relaxed`, `finish-relaxed`:
//! the next claimant reads `nentries` from before the last insert and writes over its
//! entry (model 1 ended with Y at entry 0 and X lost). `keep-claim`, `skip-settle`: the
//! dict is left claimed (and, `skip-settle`, a claim outlives the `active` that leads a
//! recoverer to it). `settle-any-claim`: the recovery settles a live inserter's staged entry
//! under it, whose key is then stored with its bucket deleted. `clear-before-settle`: a part
//! taker goes on (model 4 finds the claim after its wait) and a reader keeps a staged,
//! counted entry (model 5) while the dict is not settled yet. `taker-skips-wait`: the taker
//! deletes beside an insert (a lost update), or an insert on the part runs beside one.
//! `reader-skips-publisher-in`: a reader keeps a bucket past `nentries`. `no-bump`: P stays
//! where it was after an insert (model 5 checks it directly; model 3 after the recovery).
//!
//! What loom cannot see: as in `publish.rs` (a kill is a prefix of the victim's accesses in
//! program order; SeqCst accesses are checked as AcqRel; loom's SeqCst fences are stronger
//! than C++'s). Loom found no schedule with a switch between two Relaxed loads of one thread
//! that follow each other (the value publication's `nentries` load and its probe) until a
//! `thread::yield_now()` was put between them: the reader and the value publication yield
//! there (a scheduling point only). Other such spots in these models (and in the other
//! publication models) may hide schedules the same way. Waiters spin with `yield_now`; an
//! inserter looks at a held claim `SPIN_LOOKS` more times (the object layer spins
//! `HELD_SPINS` times). The part path's entry words (past `nentries`) are stored unlogged
//! (the models' undo logs hold four words); its bucket, `nentries` and `used` are logged. An
//! insert of a present key is "not inserted" here (the object layer's `dict_set` would then
//! replace the value on the part). Values are inline words: the block values of the object
//! layer (journal `OP`) are not modelled.
//!
//! Cost (one core, release build, LOOM_MAX_PREEMPTIONS=2, in the order above): 0.30 s (66
//! kill points), 0.11 s (38), 0.11 s (38 victim kill points, 833 pairs), 0.25 s (61), 1.9 s
//! (41): under 3 s in all. At LOOM_MAX_PREEMPTIONS=3, all passing: 0.5 s, 0.2 s, 0.1 s, 0.8
//! s, 4.3 s.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::Mutex;
use loom::thread;
use loom_tests::publication::{
    self, gate, owner, read_validated, slot_of, Objects, Spin, View, GATE_END, OTHER, P, RECORDS,
    SLOTS, STORE_BYTES, THIRD, VICTIM,
};
use loom_tests::{every_kill_pair, every_kill_point, Budget, KillableWords, Planted};
use persist::part_lock::{
    bump_version, holder, insert_claim, insert_claimant, published_part, publishing,
    settle_insert_claim, DictWords, Held, BUCKET_DELETED, ENTRY_BYTES,
};
use persist::sync::{AccessError, Liveness, MemLiveness, MemWords, Ordering, WordStore};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

// ---- broken variants ----------------------------------------------------------------------------

static BROKEN: Planted = Planted::new(
    "DICT_INSERT_BROKEN",
    &[
        "key-before-bucket",
        "bucket-before-count",
        "commit-then-stage",
        "no-recount",
        "settle-keeps-bucket",
        "claim-relaxed",
        "finish-relaxed",
        "keep-claim",
        "no-bump",
        "skip-settle",
        "settle-any-claim",
        "clear-before-settle",
        "taker-skips-wait",
        "reader-skips-publisher-in",
    ],
);

/// Whether `DICT_INSERT_BROKEN` names `variant` (module doc).
fn broken(variant: &str) -> bool {
    BROKEN.is(variant)
}

// ---- the dict -----------------------------------------------------------------------------------

/// Store file (`loom_tests::publication`): the dict's version word P (its part word), then its
/// insert claim, `used` and `nentries` words; per slot its held-parts record and its undo log
/// block; then, past the scaffolding's words (a store longer than `Objects::new` makes), the
/// dict's table: NBUCKETS buckets and CAP entries of three words (hash, key, value).
const CLAIM: u64 = 24;
const USED: u64 = 32;
const NENTRIES: u64 = 40;
const _: () = assert!(NENTRIES + 8 <= RECORDS);
const BUCKET0: u64 = STORE_BYTES.next_multiple_of(8);
const NBUCKETS: u64 = 8;
const ENTRY0: u64 = BUCKET0 + 8 * NBUCKETS;
const CAP: u64 = 5;
const TABLE_END: u64 = ENTRY0 + ENTRY_BYTES * CAP;
const _: () = assert!(CAP < NBUCKETS);
/// An entry's key and value words (`dict_table::KEY`, `dict_table::VALUE`).
const KEY: u64 = 8;
const VALUE: u64 = 16;

const WORDS: DictWords = DictWords {
    claim: CLAIM,
    used: USED,
    nentries: NENTRIES,
    bucket0: BUCKET0,
    nbuckets: NBUCKETS,
    entry0: ENTRY0,
    cap: CAP,
};

fn bucket(i: u64) -> u64 {
    BUCKET0 + 8 * i
}

fn entry(e: u64) -> u64 {
    ENTRY0 + ENTRY_BYTES * e
}

/// The keys (inline words, never 0: an empty key word is a deleted entry). Their hashes are
/// the keys themselves, all on bucket 1 (and below 32: the perturbation is 0 after the first
/// probe, and the sequence is 1, 6, 7, 4, 5, 2, 3, 0): every key after the first probes on.
const A: u64 = 9;
const X: u64 = 17;
const Y: u64 = 25;

fn hash(key: u64) -> u64 {
    key
}

/// The value a key is inserted with (never 0: a deleted entry's value word is emptied).
fn value_of(key: u64) -> u64 {
    100 + key
}

/// The probe sequence of hash `h`, as `object/dict.rs` walks it (`find`, `free_bucket`):
/// `h & mask`, then CPython's perturbation, for `probe_limit` buckets.
fn probe(h: u64) -> impl Iterator<Item = u64> {
    const PERTURB_SHIFT: u32 = 5;
    let limit = NBUCKETS + u64::from(64 / PERTURB_SHIFT) + 1;
    let mask = NBUCKETS - 1;
    let mut i = h & mask;
    let mut perturb = h;
    (0..limit).map(move |_| {
        let at = i;
        perturb >>= PERTURB_SHIFT;
        i = (i.wrapping_mul(5).wrapping_add(perturb).wrapping_add(1)) & mask;
        at
    })
}

/// How many more times an inserter looks at a claim word held by another before it gives up
/// on the publication (the object layer's bounded `spin_until_changed`; then the part path).
const SPIN_LOOKS: u32 = 1;

/// A dict's words as one read saw them: `nentries`, `used`, the entries below `nentries` (at
/// most CAP) and the buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dict {
    nentries: u64,
    used: u64,
    entries: Vec<[u64; 3]>,
    buckets: Vec<u64>,
}

impl Dict {
    /// The words through `load`, in the order an unlocked read takes them (`dict_parts`:
    /// `used` and `nentries`; then the entries and buckets a lookup visits).
    fn read(load: impl Fn(u64) -> u64) -> Dict {
        let used = load(USED);
        let nentries = load(NENTRIES);
        let entries = (0..nentries.min(CAP))
            .map(|e| [load(entry(e)), load(entry(e) + KEY), load(entry(e) + VALUE)])
            .collect();
        let buckets = (0..NBUCKETS).map(|i| load(bucket(i))).collect();
        Dict {
            nentries,
            used,
            entries,
            buckets,
        }
    }

    /// The live entries, key -> (entry index, value word), if the words are a consistent
    /// dict: `nentries` within the table; each live entry of its key's hash, its key found
    /// once, by a lookup along its probe sequence; each deleted entry (key 0) with its value
    /// word emptied; `used` the number of live entries; every bucket empty, deleted, or naming
    /// a live entry below `nentries`, and no entry named twice.
    fn live(&self) -> Result<BTreeMap<u64, (u64, u64)>, String> {
        if self.nentries > CAP {
            return Err(format!("nentries {} past the table's {CAP}", self.nentries));
        }
        let mut live = BTreeMap::new();
        for (e, &[h, k, v]) in self.entries.iter().enumerate() {
            if k == 0 {
                if v != 0 {
                    return Err(format!("deleted entry {e} keeps value {v} ({self:?})"));
                }
                continue;
            }
            if h != hash(k) {
                return Err(format!("entry {e}: key {k} with hash {h} ({self:?})"));
            }
            if live.insert(k, (e as u64, v)).is_some() {
                return Err(format!("key {k} in two live entries ({self:?})"));
            }
        }
        if self.used != live.len() as u64 {
            return Err(format!(
                "used {} with {} live entries ({self:?})",
                self.used,
                live.len()
            ));
        }
        let mut named = vec![false; self.entries.len()];
        for (i, &b) in self.buckets.iter().enumerate() {
            if b == 0 || b == BUCKET_DELETED {
                continue;
            }
            let e = b - 1;
            if e >= self.nentries {
                return Err(format!(
                    "bucket {i} names entry {e}, past nentries {} ({self:?})",
                    self.nentries
                ));
            }
            if self.entries[e as usize][1] == 0 {
                return Err(format!("bucket {i} names deleted entry {e} ({self:?})"));
            }
            if std::mem::replace(&mut named[e as usize], true) {
                return Err(format!("entry {e} named by two buckets ({self:?})"));
            }
        }
        for (&k, &(e, _)) in &live {
            if self.find(k) != Some(e) {
                return Err(format!(
                    "key {k} (entry {e}) is not found by a lookup ({self:?})"
                ));
            }
        }
        Ok(live)
    }

    /// A lookup of `key` (`dict.rs`'s `find`): the entry it finds.
    fn find(&self, key: u64) -> Option<u64> {
        for i in probe(hash(key)) {
            let b = self.buckets[i as usize];
            if b == 0 {
                return None;
            }
            if b != BUCKET_DELETED {
                let e = (b - 1) as usize;
                if e < self.entries.len() && self.entries[e][1] == key {
                    return Some(e as u64);
                }
            }
        }
        None
    }
}

// ---- the world ----------------------------------------------------------------------------------

/// Which participants are inside a publication: kept outside loom (a plain mutex; loom runs
/// one thread at a time, so it adds no interleavings).
#[derive(Default)]
struct Inside {
    changes: std::sync::Mutex<u32>,
}

impl Inside {
    fn enter_change(&self, slot: u32) {
        *self.changes.lock().unwrap() |= 1 << slot;
    }

    fn leave_change(&self, slot: u32) {
        *self.changes.lock().unwrap() &= !(1 << slot);
    }

    /// Whether a slot other than `slot` is inside a publication.
    fn other_change(&self, slot: u32) -> bool {
        *self.changes.lock().unwrap() & !(1 << slot) != 0
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
    /// A dict holding `keys`, in entries 0.. in that order, each in the first free bucket of
    /// its probe sequence, with its value (`value_of`).
    fn new(keys: &[u64]) -> World {
        World::with_deleted(keys, &[])
    }

    /// A dict that held `keys` (as `new` makes it), of which `deleted` were deleted since
    /// (as `dict.rs`'s `delete_entry`: the bucket deleted, the key and value words emptied,
    /// `used` one less; the entry keeps its place).
    fn with_deleted(keys: &[u64], deleted: &[u64]) -> World {
        assert!(keys.len() as u64 <= CAP);
        // `Objects::new`, with room for the table past the scaffolding's words.
        let objects = Objects {
            lock_file: MemWords::new(GATE_END, GATE_END),
            store: MemWords::new(TABLE_END, TABLE_END),
            live: MemLiveness::new(SLOTS as usize),
            recovery: Mutex::new(()),
        };
        for s in 0..SLOTS {
            objects.live.set_alive(s, true);
        }
        let w = World {
            objects,
            inside: Inside::default(),
        };
        let put = |at: u64, v: u64| w.store.store(at, v, Ordering::Relaxed).unwrap();
        for (e, &k) in keys.iter().enumerate() {
            let e = e as u64;
            put(entry(e), hash(k));
            put(entry(e) + KEY, k);
            put(entry(e) + VALUE, value_of(k));
            let i = probe(hash(k))
                .find(|&i| w.word(bucket(i)) == 0)
                .expect("a free bucket");
            put(bucket(i), e + 1);
        }
        put(NENTRIES, keys.len() as u64);
        put(USED, keys.len() as u64);
        for &k in deleted {
            let e = keys
                .iter()
                .position(|&x| x == k)
                .expect("a key of the dict") as u64;
            let i = probe(hash(k))
                .find(|&i| w.word(bucket(i)) == e + 1)
                .expect("its bucket");
            put(bucket(i), BUCKET_DELETED);
            put(entry(e) + KEY, 0);
            put(entry(e) + VALUE, 0);
            put(USED, w.word(USED) - 1);
        }
        w
    }

    /// The dict as its words are now.
    fn dict(&self) -> Dict {
        Dict::read(|at| self.word(at))
    }

    /// The live entries once nothing is in flight, the dict checked (`Dict::live`).
    fn live(&self) -> BTreeMap<u64, (u64, u64)> {
        self.dict().live().unwrap_or_else(|e| panic!("{e}"))
    }

    /// What must hold once nothing is in flight and the dead are recovered: the dict
    /// consistent and unclaimed, and `Objects::assert_quiet` (the part free, every record, log
    /// and `active` empty, the store lock free).
    fn assert_quiet(&self) {
        self.live();
        assert_eq!(
            self.word(CLAIM),
            0,
            "the dict is left claimed: {:#x}",
            self.word(CLAIM)
        );
        self.objects.assert_quiet();
    }
}

// ---- the recovery -------------------------------------------------------------------------------

/// `part_lock::settle_insert_claim`, or its broken copies (`no-recount`: `used` is left as
/// it is; `settle-keeps-bucket`: a staged entry's bucket keeps naming it).
fn settle<W: WordStore>(store: &W, claimant: Option<u32>) -> Result<(), AccessError> {
    if !broken("no-recount") && !broken("settle-keeps-bucket") {
        return settle_insert_claim(store, WORDS, claimant);
    }
    let word = store.load(CLAIM, Ordering::Acquire)?;
    if word == 0 || (claimant.is_some() && insert_claimant(word) != claimant) {
        return Ok(());
    }
    let n = store.load(NENTRIES, Ordering::Relaxed)?.min(CAP);
    if n >= 1 {
        let last = entry(n - 1);
        if store.load(last + KEY, Ordering::Relaxed)? == 0 {
            if !broken("settle-keeps-bucket") {
                for i in 0..NBUCKETS {
                    if store.load(bucket(i), Ordering::Relaxed)? == n {
                        store.step()?;
                        store.store(bucket(i), BUCKET_DELETED, Ordering::Relaxed)?;
                    }
                }
            }
            store.step()?;
            store.store(last + VALUE, 0, Ordering::Relaxed)?;
        }
    }
    if !broken("no-recount") {
        let mut live = 0;
        for e in 0..n {
            if store.load(entry(e) + KEY, Ordering::Relaxed)? != 0 {
                live += 1;
            }
        }
        store.step()?;
        store.store(USED, live, Ordering::Relaxed)?;
    }
    store.step()?;
    let _ = store.cas(CLAIM, word, 0, Ordering::Release, Ordering::Relaxed)?;
    Ok(())
}

/// The recovery's settling of a dead inserter (`object/recovery.rs`, `Kind::Dict`): the claim
/// read (Acquire), and settled if it names `dead` (broken, `settle-any-claim`: whoever's it is).
fn settle_dead<W: WordStore>(store: &W, dead: u32) -> Result<(), AccessError> {
    let claim = store.load(CLAIM, Ordering::Acquire)?;
    if broken("settle-any-claim") {
        return if claim != 0 {
            settle(store, None)
        } else {
            Ok(())
        };
    }
    if insert_claimant(claim) == Some(dead) {
        settle(store, Some(dead))?;
    }
    Ok(())
}

/// Recovers dead slot `dead` as slot `by` would (`object/recovery.rs`): an insert its `active`
/// names first (its claim settled, then the version it may have left unmoved moved), then
/// `Parts::recover_dead` (its log rolled back, its parts released, its `active` cleared). Safe
/// to repeat.
fn recover<W: WordStore>(lock_file: &W, store: &W, by: u32, dead: u32) -> Result<(), AccessError> {
    let (_, parts) = gate(lock_file, store, by)?;
    // Relaxed: the death (learnt from the liveness flag, SeqCst) orders all the dead did.
    let active = parts.active_word(dead)?.load(Ordering::Relaxed);
    let recover_dead = || publication::recover_dead(&parts, store, dead);
    let Some(part) = published_part(active) else {
        return recover_dead();
    };
    assert_eq!(part, P, "a publication under a part that is not the dict's");
    if broken("clear-before-settle") {
        bump_version(store, part)?;
        recover_dead()?;
        return settle_dead(store, dead);
    }
    if !broken("skip-settle") {
        settle_dead(store, dead)?;
    }
    bump_version(store, part)?;
    recover_dead()
}

/// A live participant recovers dead slot `dead`, one recoverer at a time. (The dead is no
/// longer inside from its death on: it writes nothing more.)
fn recover_live(world: &World, by: u32, dead: u32) {
    world.inside.leave_change(dead);
    let _one_at_a_time = world.recovery.lock().unwrap();
    recover(&world.lock_file, &world.store, by, dead).unwrap();
}

// ---- participants -------------------------------------------------------------------------------

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The key was missing and is now in the dict.
    Inserted,
    /// The key was there already: nothing changed.
    Present,
}

/// What a lookup found, under the claim or the part: `nentries`, `used`, the key's entry, and
/// (the key missing and the table with room) the first free bucket on its probe sequence.
struct Lookup {
    n: u64,
    used: u64,
    found: Option<u64>,
    free: Option<u64>,
}

/// A participant's view through `W` (killable for a victim): its parts, store lock and undo
/// log (`View`, which it derefs to: `put`, `commit`, `enter`), and the world.
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

    fn load(&self, at: u64) -> Result<u64, AccessError> {
        // Relaxed: under the claim (its Acquire CAS) or the part (its AcqRel CAS), nobody
        // else changes the dict's words.
        self.store.load(at, Ordering::Relaxed)
    }

    /// Takes `part` in record entry 0, waiting while another holds it; then waits until no
    /// publication under it is in flight (`publisher_of`), recovering a dead publisher (and a
    /// dead holder).
    fn take(&self, part: u64) -> Result<Held, AccessError> {
        let held = loop {
            match self.parts.try_take(0, part)? {
                Ok(h) => break h,
                Err(word) => match holder(word) {
                    Some(h) if !self.world.live.is_alive(slot_of(h)) => {
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
        if !broken("taker-skips-wait") {
            while let Some((s, seen)) = self.parts.publisher_of(part)? {
                assert_eq!(published_part(seen), Some(part));
                if self.world.live.is_alive(s) {
                    thread::yield_now();
                } else {
                    recover_live(self.world, self.slot, s);
                }
            }
            assert!(
                !self.world.inside.other_change(self.slot),
                "a part taker went on beside an insert"
            );
        }
        Ok(held)
    }

    /// The dict read as an inserter (or a part change) reads it, nobody else changing it:
    /// `nentries` and `used` (`dict_parts`); the key looked up (`find`; an inserter skips it
    /// in a table without room, `full_stops`) and, missing in a table with room, the first
    /// free bucket (empty or deleted) on its probe sequence (`free_bucket`). A bucket past
    /// `nentries` is damage here (`find` raises).
    fn lookup(&self, key: u64, full_stops: bool) -> Result<Lookup, AccessError> {
        let used = self.load(USED)?;
        let n = self.load(NENTRIES)?;
        assert!(
            n <= CAP && used <= n,
            "an inserter read used {used}, nentries {n}"
        );
        let mut l = Lookup {
            n,
            used,
            found: None,
            free: None,
        };
        if n >= CAP && full_stops {
            return Ok(l);
        }
        let h = hash(key);
        for i in probe(h) {
            let b = self.load(bucket(i))?;
            if b == 0 {
                break;
            }
            if b != BUCKET_DELETED {
                let e = b - 1;
                assert!(
                    e < n,
                    "slot {} found bucket {i} naming entry {e} past nentries {n} under its claim \
                     or part",
                    self.slot
                );
                if self.load(entry(e))? == h && self.load(entry(e) + KEY)? == key {
                    l.found = Some(e);
                    return Ok(l);
                }
            }
        }
        if n >= CAP {
            return Ok(l);
        }
        for i in probe(h) {
            let b = self.load(bucket(i))?;
            if b == 0 || b == BUCKET_DELETED {
                l.free = Some(i);
                return Ok(l);
            }
        }
        panic!("a table with room has no free bucket");
    }

    /// `Parts::claim_insert`, or its broken copy (`claim-relaxed`).
    fn claim_insert(&self) -> Result<Result<(), u64>, AccessError> {
        if !broken("claim-relaxed") {
            return self.parts.claim_insert(CLAIM);
        }
        self.store.step()?;
        self.store.cas(
            CLAIM,
            0,
            insert_claim(self.slot),
            Ordering::Relaxed,
            Ordering::Relaxed,
        )
    }

    /// One word stored as the insert steps store them (a `step`, then the store).
    fn set(&self, at: u64, w: u64, o: Ordering) -> Result<(), AccessError> {
        self.store.step()?;
        self.store.store(at, w, o)
    }

    /// Insert steps 2 to 4 (`insert_entry_stage`, `insert_entry_commit`, `insert_entry_finish`)
    /// of `key` at entry `n` and bucket `b`, `used` read under the claim, or their broken
    /// copies. `landed` is set right after the store of the key (the commit point).
    fn write_entry(
        &self,
        l: &Lookup,
        b: u64,
        key: u64,
        value: u64,
        landed: &Cell<Option<u64>>,
    ) -> Result<(), AccessError> {
        let (n, e) = (l.n, entry(l.n));
        let relaxed = Ordering::Relaxed;
        let release = Ordering::Release;
        if broken("key-before-bucket") {
            self.set(e, hash(key), relaxed)?;
            self.set(e + VALUE, value, relaxed)?;
            self.set(e + KEY, 0, relaxed)?;
            self.set(NENTRIES, n + 1, release)?;
            self.set(e + KEY, key, release)?;
            landed.set(Some(n));
            self.set(bucket(b), n + 1, release)?;
            return self.finish(l.used);
        }
        if broken("commit-then-stage") {
            self.set(e, hash(key), relaxed)?;
            self.set(e + VALUE, value, relaxed)?;
            self.set(e + KEY, key, release)?;
            landed.set(Some(n));
            self.set(NENTRIES, n + 1, release)?;
            self.set(bucket(b), n + 1, release)?;
            return self.finish(l.used);
        }
        if broken("bucket-before-count") {
            self.set(e, hash(key), relaxed)?;
            self.set(e + VALUE, value, relaxed)?;
            self.set(e + KEY, 0, relaxed)?;
            self.set(bucket(b), n + 1, release)?;
            self.set(NENTRIES, n + 1, release)?;
        } else {
            self.parts
                .insert_entry_stage(WORDS, n, b, hash(key), value)?;
        }
        self.parts.insert_entry_commit(WORDS, n, key)?;
        landed.set(Some(n));
        self.finish(l.used)
    }

    /// `Parts::insert_entry_finish`, or its broken copy (`finish-relaxed`: the claim ended
    /// with a Relaxed store).
    fn finish(&self, used: u64) -> Result<(), AccessError> {
        if !broken("finish-relaxed") {
            return self.parts.insert_entry_finish(WORDS, used);
        }
        self.set(USED, used + 1, Ordering::Relaxed)?;
        self.set(CLAIM, 0, Ordering::Relaxed)
    }

    /// `Store::claim_and_insert`: the claim taken (CAS; held by another, `SPIN_LOOKS` more
    /// looks, then give up), the key looked up (present: the claim dropped, `Present`; no
    /// room: dropped, give up), the entry staged, committed and finished. None: gave up.
    fn claim_and_insert(
        &self,
        key: u64,
        value: u64,
        landed: &Cell<Option<u64>>,
    ) -> Result<Option<Outcome>, AccessError> {
        let mut looks = 0;
        loop {
            match self.claim_insert()? {
                Ok(()) => break,
                Err(now) => {
                    assert_ne!(
                        insert_claimant(now),
                        Some(self.slot),
                        "a claim of our own in our way"
                    );
                    // `spin_until_changed`, bounded.
                    loop {
                        if looks == SPIN_LOOKS {
                            return Ok(None);
                        }
                        looks += 1;
                        thread::yield_now();
                        if self.load(CLAIM)? != now {
                            break;
                        }
                    }
                }
            }
        }
        let l = match self.lookup(key, true) {
            Ok(l) => l,
            Err(e) => {
                self.parts.unclaim_insert(CLAIM)?;
                return Err(e);
            }
        };
        let Some(b) = l.free else {
            if !broken("keep-claim") {
                self.parts.unclaim_insert(CLAIM)?;
            }
            return Ok(l.found.map(|_| Outcome::Present));
        };
        if let Err(e) = self.write_entry(&l, b, key, value, landed) {
            // A vanished page: whatever was written is settled (the claim is ours). (Killed,
            // this fails at once.)
            let _ = settle(self.store, Some(self.slot));
            return Err(e);
        }
        Ok(Some(Outcome::Inserted))
    }

    /// `Store::publish_dict_insert`: a look before the announcement (room in the table), then
    /// the publication under P (`enter_publish`), `claim_and_insert`, and its end (P moved by 2
    /// if the key was inserted). None: nothing was changed, the part path's turn.
    fn publish_insert(
        &self,
        key: u64,
        value: u64,
        landed: &Cell<Option<u64>>,
    ) -> Result<Option<Outcome>, AccessError> {
        if self.load(NENTRIES)? >= CAP {
            return Ok(None);
        }
        if self.parts.enter_publish(P, &Spin)?.is_err() {
            return Ok(None);
        }
        self.world.inside.enter_change(self.slot);
        let out = self.claim_and_insert(key, value, landed)?;
        self.world.inside.leave_change(self.slot);
        let changed = out == Some(Outcome::Inserted) && !broken("no-bump");
        self.parts.end_publish(P, changed, &Spin)?;
        Ok(out)
    }

    /// An insert as a single change on the part (`dict_set` then `dict_insert_new`): the part
    /// taken (waiting for publishers, recovering dead ones), the key looked up (present:
    /// nothing changed), a claim found settled (`settle_insert_claim(None)`, then the claim
    /// word put 0), the entry written past the end (unlogged here: nothing reads it until
    /// `nentries` counts it, and the next insert writes it whole), its bucket, `nentries` and
    /// `used` logged and written, committed, the part released.
    fn insert_on_part(
        &mut self,
        key: u64,
        value: u64,
        landed: &Cell<Option<u64>>,
    ) -> Result<Outcome, AccessError> {
        self.enter()?;
        let held = self.take(P)?;
        if self.lookup(key, false)?.found.is_some() {
            self.parts.end(&[held], true, &Spin)?;
            return Ok(Outcome::Present);
        }
        if self.load(CLAIM)? != 0 {
            settle(self.store, None)?;
            self.put(CLAIM, 0)?;
        }
        let l = self.lookup(key, false)?;
        let b = l
            .free
            .expect("no room: the models leave room for every insert");
        let e = entry(l.n);
        self.store.store(e, hash(key), Ordering::Relaxed)?;
        self.store.store(e + KEY, key, Ordering::Relaxed)?;
        self.store.store(e + VALUE, value, Ordering::Relaxed)?;
        self.put(bucket(b), l.n + 1)?;
        self.put(NENTRIES, l.n + 1)?;
        self.put(USED, l.used + 1)?;
        self.commit()?;
        landed.set(Some(l.n));
        self.parts.end(&[held], true, &Spin)?;
        Ok(Outcome::Inserted)
    }

    /// An insert: as a publication, or on the part if the publication gives up.
    fn insert(
        &mut self,
        key: u64,
        value: u64,
        landed: &Cell<Option<u64>>,
    ) -> Result<Outcome, AccessError> {
        if let Some(out) = self.publish_insert(key, value, landed)? {
            return Ok(out);
        }
        assert_eq!(landed.get(), None);
        self.insert_on_part(key, value, landed)
    }
}

/// Runs `f` as victim slot `slot` through killable words with budget `k`; a victim that is
/// killed dies (its liveness flag drops, as the kernel's lock does). Returns the accesses it
/// made.
fn as_victim<T>(
    world: &World,
    slot: u32,
    k: u64,
    f: impl FnOnce(&mut Participant<'_, KillableWords<'_>>) -> Result<T, AccessError>,
) -> (Option<T>, u64) {
    let budget = Budget::new(k);
    let (lock_file, store) = world.killable(&budget);
    let r = Participant::new(world, &lock_file, &store, slot).and_then(|mut p| f(&mut p));
    let out = match r {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                budget.killed(),
                "the victim failed without being killed: {e}"
            );
            world.live.set_alive(slot, false);
            None
        }
    };
    (out, budget.spent())
}

/// What an insert did, and the entry it landed at (set at its commit point, so that a victim
/// killed later keeps it).
struct Inserted {
    out: Option<Outcome>,
    at: Option<u64>,
}

/// The victim inserting `key` with `value`, killed after `k` accesses; and its accesses.
fn victim_insert(world: &World, k: u64, key: u64, value: u64) -> (Inserted, u64) {
    let landed = Cell::new(None);
    let (out, spent) = as_victim(world, VICTIM, k, |p| p.insert(key, value, &landed));
    let at = landed.get();
    if out == Some(Outcome::Inserted) {
        assert!(at.is_some());
    }
    (Inserted { out, at }, spent)
}

/// A live participant in `slot` inserts `key` with `value`.
fn live_insert(world: &World, slot: u32, key: u64, value: u64) -> Inserted {
    let mut p = Participant::new(world, &world.lock_file, &world.store, slot).unwrap();
    let landed = Cell::new(None);
    let out = p.insert(key, value, &landed).unwrap();
    assert_eq!(out == Outcome::Inserted, landed.get().is_some());
    Inserted {
        out: Some(out),
        at: landed.get(),
    }
}

/// The key's entry and value, if the dict holds it.
fn entry_of(live: &BTreeMap<u64, (u64, u64)>, key: u64) -> Option<(u64, u64)> {
    live.get(&key).copied()
}

// ---- 1. two inserters of different keys ---------------------------------------------------------

/// Into an empty dict, the victim (killed before each of its accesses, then recovered at once by
/// a third participant) inserts X while a live participant inserts Y (both on bucket 1; after
/// a bounded spin on a held claim it inserts on the part, which waits for the claimant and
/// recovers it if dead); then the victim is recovered again. Y is in the dict where its insert
/// put it, X iff its key was stored (where it was stored), nothing else; the dict is
/// consistent and unclaimed.
#[test]
fn two_inserters_of_different_keys_both_land() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(&[]));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let out = victim_insert(&world, k, X, value_of(X));
                if !world.live.is_alive(VICTIM) {
                    recover_live(&world, THIRD, VICTIM);
                }
                out
            })
        };
        let y = live_insert(&world, OTHER, Y, value_of(Y));
        let (x, spent) = victim.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let live = world.live();
        assert_eq!(y.out, Some(Outcome::Inserted));
        assert_eq!(entry_of(&live, Y), Some((y.at.unwrap(), value_of(Y))));
        assert_eq!(
            entry_of(&live, X),
            x.at.map(|e| (e, value_of(X))),
            "X is in the dict iff its key was stored ({live:?})"
        );
        assert_eq!(live.len(), 1 + x.at.is_some() as usize);
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 2. two inserters of one key ----------------------------------------------------------------

/// Into an empty dict, the victim (killed, recovered at once) inserts X with one value while a
/// live participant inserts X with another. X is in the dict once, with the value of the one
/// insert that stored its key; the other found it present (or, the victim, died first).
#[test]
fn two_inserters_of_one_key_insert_it_once() {
    fn scenario(k: u64) -> u64 {
        const VICTIMS: u64 = 301;
        const OTHERS: u64 = 302;
        let world = Arc::new(World::new(&[]));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let out = victim_insert(&world, k, X, VICTIMS);
                if !world.live.is_alive(VICTIM) {
                    recover_live(&world, THIRD, VICTIM);
                }
                out
            })
        };
        let other = live_insert(&world, OTHER, X, OTHERS);
        let (x, spent) = victim.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let live = world.live();
        assert_eq!(live.len(), 1, "X is in the dict once: {live:?}");
        let got = entry_of(&live, X);
        match (x.at, other.out) {
            (Some(e), Some(Outcome::Present)) => assert_eq!(got, Some((e, VICTIMS))),
            (None, Some(Outcome::Inserted)) => {
                assert_eq!(got, Some((other.at.unwrap(), OTHERS)));
                assert_ne!(x.out, Some(Outcome::Inserted));
            }
            _ => panic!(
                "the victim stored X at {:?} ({:?}), the other {:?} ({live:?})",
                x.at, x.out, other.out
            ),
        }
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 3. a recoverer killed anywhere -------------------------------------------------------------

/// Into an empty dict, the victim (killed before each of its accesses) inserts X; its first
/// recoverer is killed before each of its accesses, a second one finishes; then a live
/// participant inserts Y (on X's bucket too). Sequential (one interleaving per pair of kill
/// points): what is checked is the state each kill leaves. After the first recoverer's death,
/// a claim naming the victim exists only while the victim's `active` still names the dict
/// (so that the next recoverer finds it), and once that `active` is clear the dict is settled
/// (consistent, unclaimed) and, if X landed, P moved. After the recovery X is in the dict iff its key was
/// stored; a staged entry it left counted is a deleted one (key and value 0) that no bucket
/// names; `used` counts the live entries. Y lands after it (in the bucket a staged X left
/// deleted, if it did).
#[test]
fn a_recoverer_killed_anywhere_settles_the_insert() {
    fn scenario(k1: u64, k2: u64) -> (u64, u64) {
        let world = World::new(&[]);
        let (x, spent) = victim_insert(&world, k1, X, value_of(X));
        let mut recoverer_spent = 0;
        if !world.live.is_alive(VICTIM) {
            let budget = Budget::new(k2);
            let (lock_file, store) = world.killable(&budget);
            if let Err(e) = recover(&lock_file, &store, THIRD, VICTIM) {
                assert!(budget.killed(), "the recoverer failed unkilled: {e}");
            }
            recoverer_spent = budget.spent();
            let active = world.active(VICTIM);
            if insert_claimant(world.word(CLAIM)) == Some(VICTIM) {
                assert_eq!(
                    active,
                    publishing(P),
                    "the dead inserter's claim outlived the active word that leads to it"
                );
            }
            if active == 0 {
                assert_eq!(world.word(CLAIM), 0, "a recovered insert left its claim");
                world.live();
                if x.at.is_some() {
                    assert_ne!(
                        world.word(P),
                        0,
                        "a recovered insert left the version unmoved"
                    );
                }
            }
            recover_live(&world, OTHER, VICTIM);
        }
        let live = world.live();
        assert_eq!(
            entry_of(&live, X),
            x.at.map(|e| (e, value_of(X))),
            "X is in the dict iff its key was stored ({live:?})"
        );
        assert_eq!(live.len(), x.at.is_some() as usize);
        if x.at.is_none() && world.word(NENTRIES) == 1 {
            let d = world.dict();
            assert_eq!(
                d.entries[0][1..],
                [0, 0],
                "the staged entry is not a deleted one"
            );
            assert!(
                !d.buckets.contains(&1),
                "a bucket names the staged entry: {d:?}"
            );
        }
        world.assert_quiet();
        let y = live_insert(&world, OTHER, Y, value_of(Y));
        assert_eq!(y.out, Some(Outcome::Inserted));
        let live = world.live();
        assert_eq!(entry_of(&live, Y), Some((y.at.unwrap(), value_of(Y))));
        assert_eq!(entry_of(&live, X), x.at.map(|e| (e, value_of(X))));
        world.assert_quiet();
        (spent, recoverer_spent)
    }
    every_kill_pair(scenario);
}

// ---- 4. an insert racing a part taker -----------------------------------------------------------

/// Into a dict holding A, the victim (killed before each of its accesses, then recovered at
/// once by a third participant) inserts X, while a live part taker deletes A: takes P, waits
/// for the publications under it (recovering a dead one), finds the dict unclaimed (a claim
/// would be settled, `settle_insert_claim(None)`, as `dict_insert_new` does; none can be left
/// here), then deletes A (its bucket deleted, key and value emptied, `used` one less, logged),
/// commits and releases P. A is gone; X is in the dict iff its key was stored; the dict is
/// consistent and unclaimed.
#[test]
fn an_insert_racing_a_part_taker_is_not_lost() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(&[A]));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let out = victim_insert(&world, k, X, value_of(X));
                if !world.live.is_alive(VICTIM) {
                    recover_live(&world, THIRD, VICTIM);
                }
                out
            })
        };
        let mut taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        taker.enter().unwrap();
        let held = taker.take(P).unwrap();
        let claim = world.word(CLAIM);
        if claim != 0 {
            settle(&world.store, None).unwrap();
        }
        assert_eq!(
            claim, 0,
            "a part taker found the dict claimed after its wait: {claim:#x}"
        );
        let l = taker.lookup(A, false).unwrap();
        let e = l.found.expect("A is in the dict");
        let b = probe(hash(A))
            .find(|&i| world.word(bucket(i)) == e + 1)
            .expect("A's bucket");
        taker.put(bucket(b), BUCKET_DELETED).unwrap();
        taker.put(entry(e) + KEY, 0).unwrap();
        taker.put(entry(e) + VALUE, 0).unwrap();
        taker.put(USED, l.used - 1).unwrap();
        taker.commit().unwrap();
        taker.parts.end(&[held], true, &Spin).unwrap();
        let (x, spent) = victim.join().unwrap();
        let live = world.live();
        assert_eq!(entry_of(&live, A), None, "the delete was lost ({live:?})");
        assert_eq!(
            entry_of(&live, X),
            x.at.map(|e| (e, value_of(X))),
            "X is in the dict iff its key was stored ({live:?})"
        );
        assert_eq!(live.len(), x.at.is_some() as usize);
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 5. a reader --------------------------------------------------------------------------------

/// One unlocked read of the dict under P as the object layer validates it (`read_validated`):
/// the words read in `dict_parts`'s order, then validated (`publisher_in`, P unchanged).
fn read_dict(world: &World, slot: u32) -> Option<(u64, Dict)> {
    read_validated(world, slot, !broken("reader-skips-publisher-in"), || {
        // Relaxed (all): validated after.
        Dict::read(|at| {
            let w = world.word(at);
            if at == NENTRIES {
                // A scheduling point only (as in `look`).
                thread::yield_now();
            }
            w
        })
    })
}

/// The victim (killed before each of its accesses) inserts X into a dict holding A while a
/// reader reads the dict; then the victim is recovered. A kept read is a consistent dict (no
/// bucket past `nentries`, `used` the live entries, ...) holding A, or A and X; one that
/// validated against the first version is the first dict, one that validated against the
/// final version the final one.
#[test]
fn a_reader_keeps_only_whole_dicts() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(&[A]));
        let first = world.live();
        let reader = {
            let world = world.clone();
            thread::spawn(move || read_dict(&world, THIRD))
        };
        let (x, spent) = victim_insert(&world, k, X, value_of(X));
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let last = world.live();
        assert_eq!(entry_of(&last, X), x.at.map(|e| (e, value_of(X))));
        if x.at.is_some() {
            assert_ne!(world.word(P), 0, "an insert left the version unmoved");
        }
        if let Some((v, seen)) = reader.join().unwrap() {
            let kept = seen
                .live()
                .unwrap_or_else(|e| panic!("a reader kept an inconsistent dict: {e}"));
            let keys: Vec<u64> = kept.keys().copied().collect();
            assert!(
                keys == [A] || keys == [A, X],
                "a reader kept the keys {keys:?}"
            );
            if v == 0 {
                assert_eq!(kept, first, "the first version names the first dict");
            }
            if v == world.word(P) {
                assert_eq!(
                    kept, last,
                    "version {v} names {kept:?} for a reader and {last:?} at the end"
                );
            }
        }
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 6. a value publication beside inserts ------------------------------------------------------

/// A look for `key` as `Store::dict_value_at` makes it without the part or the claim (a
/// value publication's): `used` and `nentries` (`dict_parts`), the entry `hint` names if it
/// holds the key (`find_entry`), else a probe (`find`), which raises (`CorruptionError`, "dict
/// bucket names an entry beyond the table") where a bucket names an entry at or past the
/// `nentries` read. `hint` becomes the entry found.
fn look(world: &World, key: u64, hint: &mut Option<u64>) -> Result<Option<u64>, String> {
    // Relaxed (all): as the object layer's `get`.
    let _used = world.word(USED);
    let n = world.word(NENTRIES);
    // A scheduling point only (no effect on the words): loom explores no switch between these
    // two Relaxed loads without it, though a real thread may be preempted there.
    thread::yield_now();
    if let Some(e) = hint.filter(|&e| e < n) {
        if world.word(entry(e)) == hash(key) && world.word(entry(e) + KEY) == key {
            return Ok(Some(e));
        }
    }
    for i in probe(hash(key)) {
        let b = world.word(bucket(i));
        if b == 0 {
            break;
        }
        if b != BUCKET_DELETED {
            let e = b - 1;
            // As `find`: `nentries` read again before a bucket past it is damage (an insert
            // counts its entry before it names it, but after this look read the count).
            if e >= n && e >= world.word(NENTRIES) {
                return Err(format!(
                    "dict bucket names an entry beyond the table: bucket {i} names entry {e}, \
                     nentries {n}"
                ));
            }
            if world.word(entry(e)) == hash(key) && world.word(entry(e) + KEY) == key {
                *hint = Some(e);
                return Ok(Some(e));
            }
        }
    }
    *hint = None;
    Ok(None)
}

/// `Store::publish_dict_value` of `new` for existing key `key` by live slot `slot`: a look
/// before the announcement (`first_look`; an error there only decides to try; a hit leaves
/// its entry in the hint), the announcement under P, the look that counts (an error there is
/// returned to the caller: `publish_or_write_in` raises it), the CAS of the value word, the
/// end of the publication. The value replaced, if any.
fn publish_value(
    world: &World,
    slot: u32,
    key: u64,
    new: u64,
    first_look: bool,
) -> Result<Option<u64>, String> {
    let (_, parts) = gate(&world.lock_file, &world.store, slot).unwrap();
    let mut hint = None;
    if first_look {
        if let Ok(None) = look(world, key, &mut hint) {
            return Ok(None);
        }
    }
    if parts.enter_publish(P, &Spin).unwrap().is_err() {
        return Ok(None);
    }
    world.inside.enter_change(slot);
    let published = (|| {
        let Some(e) = look(world, key, &mut hint)? else {
            return Ok(None);
        };
        let at = entry(e) + VALUE;
        let mut old = world.word(at);
        loop {
            match parts.publish(at, old, new).unwrap() {
                Ok(()) => return Ok(Some(old)),
                Err(now) => old = now,
            }
        }
    })();
    world.inside.leave_change(slot);
    parts
        .end_publish(P, matches!(published, Ok(Some(_))), &Spin)
        .unwrap();
    published
}

/// A dict that held X and then A (X on bucket 1, A probing on to bucket 2) and had X deleted
/// since (bucket 1 deleted, entry 0 a deleted entry): a live participant inserts X again (as a
/// publication: entry 2, and bucket 1, the first free one on its probe sequence) while another
/// publishes a new value for A (`publish_dict_value`) whose look before the announcement
/// missed (the hint empty: it raised, as a table that moved under it makes it, or it was not
/// taken), so the look after the announcement probes: from bucket 1, which the insert may have
/// filled after that look read `nentries`. That look must not raise; A ends with the new
/// value, X is in the dict.
///
/// Failed before `find` read `nentries` again (the module doc, "Found").
#[test]
fn a_value_publication_beside_an_insert_reads_no_damage() {
    loom_tests::model(|| {
        let world = Arc::new(World::with_deleted(&[X, A], &[X]));
        let inserter = {
            let world = world.clone();
            thread::spawn(move || live_insert(&world, OTHER, X, value_of(X)))
        };
        let published = publish_value(&world, THIRD, A, 777, false);
        let x = inserter.join().unwrap();
        let old = published.unwrap_or_else(|e| panic!("a value publication raised: {e}"));
        assert_eq!(old, Some(value_of(A)));
        let live = world.live();
        assert_eq!(entry_of(&live, A), Some((1, 777)));
        assert_eq!(entry_of(&live, X), Some((x.at.unwrap(), value_of(X))));
        world.assert_quiet();
    });
}

/// As `a_value_publication_beside_an_insert_reads_no_damage`, with the look before the
/// announcement taken (as `publish_dict_value` does), and two inserts in a row (X, then Y;
/// both deleted before, on buckets 1 and 2, A on bucket 3): the first look may raise racing
/// the insert of X (then the hint stays empty), and the look that counts may race the insert
/// of Y.
///
/// Failed before `find` read `nentries` again, at LOOM_MAX_PREEMPTIONS=3 or more (module doc).
#[test]
fn a_value_publication_beside_two_inserts_reads_no_damage() {
    loom_tests::model(|| {
        let world = Arc::new(World::with_deleted(&[X, Y, A], &[X, Y]));
        let inserter = {
            let world = world.clone();
            thread::spawn(move || {
                let x = live_insert(&world, OTHER, X, value_of(X));
                let y = live_insert(&world, OTHER, Y, value_of(Y));
                (x, y)
            })
        };
        let published = publish_value(&world, THIRD, A, 777, true);
        let (x, y) = inserter.join().unwrap();
        let old = published.unwrap_or_else(|e| panic!("a value publication raised: {e}"));
        assert_eq!(old, Some(value_of(A)));
        let live = world.live();
        assert_eq!(entry_of(&live, A), Some((2, 777)));
        assert_eq!(entry_of(&live, X), Some((x.at.unwrap(), value_of(X))));
        assert_eq!(entry_of(&live, Y), Some((y.at.unwrap(), value_of(Y))));
        world.assert_quiet();
    });
}
