//! Delete publications of a set's member (`persist::part_lock`: `claim_insert`,
//! `delete_entry_commit`, `delete_entry_finish`, `unclaim_insert`, `settle_insert_claim`): a
//! `discard`/`remove` of an inline member from a set that takes no part lock, beside adds
//! (insert publications), another deleter, part takers, readers, and the recoverer of a
//! deleter killed anywhere (itself killed anywhere, and repeated). The companion of
//! `dict_insert.rs`, whose scaffolding, checker and control-flow copies this file repeats.
//!
//! The protocol (`Store::publish_set_discard` and `claim_and_delete`; FORMAT.md §10.9,
//! "Deletes"): a set's table is a dict table whose value words are 0. The deleter announces a
//! publication under the set's version word P (`enter_publish`: `active` = P | 1, SeqCst
//! fence, gate checks; else it withdraws: the part path), takes the set's insert claim
//! (`claim_insert`: CAS 0 -> `insert_claim(me)`, Acquire; held by another, it looks again
//! `SPIN_LOOKS` times and then gives up: the part path), reads `used` and `nentries` and looks
//! the member up under the claim (missing: `unclaim_insert`, the publication ended with P
//! unmoved, "absent"); found at bucket b, entry e, it empties e's key word
//! (`delete_entry_commit`, Release: THE COMMIT POINT), then finishes (`delete_entry_finish`:
//! bucket b deleted, e's value word 0, `used` - 1, claim 0 Release) and ends the publication
//! (`end_publish`: P moved by 2 unless held, `active` 0). The adds are `dict_insert.rs`'s
//! inserts with value word 0 (`publish_set_add`: a look at `nentries`, the announcement, the
//! same claim, `insert_entry_stage`/`_commit`/`_finish`; on the part: `dict_insert_new`,
//! which settles a claim it finds with `settle_insert_claim(None)`). The part path of a
//! delete (`set_discard`, `dict_del`, `delete_entry`): the part taken, a wait while an
//! `active` names P | 1 (recovering a dead publisher), the claim found 0 (`dict_del` settles
//! one left without its lock file, as `dict_insert_new` does; none can be left here: the
//! model asserts it is 0 after the wait), the member looked up, its bucket,
//! key, value and `used` logged and written, committed. The recoverer of a dead deleter
//! (`object/recovery.rs`, `Kind::Set`) is the recoverer of a dead inserter: its `active`
//! names P | 1 and the claim names it: `settle_insert_claim(Some(dead))` (as generalized:
//! every bucket naming a counted entry whose key is 0 is marked deleted, the value word of
//! every counted key-0 entry emptied, `used` counted again from the keys, the claim
//! cleared), then P moved by 2 (`bump_version`), then `active` cleared
//! (`Parts::recover_dead`). A reader observes P, reads the set's words (`used`, `nentries`,
//! entries, buckets) and validates (`read_valid`, no `active` naming P | 1, P unchanged).
//!
//! The set: 8 buckets, room for 5 entries of three words (hash, key, value 0), its `used`,
//! `nentries` and claim words and its version word P, laid out as in `dict_insert.rs`.
//! Members are small inline words whose hash is the member itself, all on bucket 1 (probe
//! sequence 1, 6, 7, 4, ...). The probe is `object/dict.rs`'s rule (`find`: a key-0 entry
//! matches nothing; `free_bucket`: the first empty or deleted bucket), written again here.
//! Every word step of a delete, an add and a settling is `part_lock.rs`'s own; the control
//! flow around them is copied here.
//!
//! The models (a deleter marked "killed" is killed before each of its word accesses through
//! the killable word store, and also runs to its end; "committed" means it reached the store
//! of the empty key; "the set is consistent" is `Set::live`: `nentries` within the table,
//! every value word 0 (a deleted entry's included), every live entry of its member's hash and
//! found by a lookup along its probe sequence, no member twice, `used` the number of live
//! entries, every bucket empty, deleted or naming a live entry below `nentries` (never a
//! key-0 one), no entry named twice; every model ends with the set consistent, the claim 0,
//! and the scaffolding quiet: P free, records, logs and `active` words empty):
//!
//! 1. `a_delete_beside_an_insert_loses_neither` (from {X}, the victim, killed, discards X and
//!    is recovered at once by a third participant; a live one adds Y, on the part after a
//!    bounded spin on a held claim; the recovery repeated): Y is in, at the entry its add
//!    took; X is in iff the victim did not commit; a victim that ran to its end committed.
//! 2. `two_deleters_of_one_member_remove_it_once` (from {X}, the victim, killed, and a live
//!    one both discard X): X is gone; the live one reports "removed" iff the victim did not
//!    commit (so, with no kill, exactly one removal).
//! 3. `a_recoverer_killed_anywhere_settles_the_delete` (from {X, A}, the victim alone,
//!    killed; its first recoverer killed before each of its accesses; a second recoverer;
//!    then a live add of Y; sequential, every pair of kill points): after the first
//!    recoverer's death a claim naming the victim exists only while the victim's `active`
//!    names P, and once that `active` is clear the set is settled and, if X was removed, P
//!    moved; after the recovery X is in iff not committed (if committed: its entry key and
//!    value 0, its bucket deleted), A is in; Y then lands (in X's old bucket if X went).
//! 4. `a_reader_keeps_only_whole_sets_yield_before_entries` and `..._yield_before_buckets`
//!    (from {X, A}, the victim, killed, discards X; a reader; then the recovery; the reader
//!    yields before its first entry load, or before its first bucket load): a kept read is
//!    a consistent set holding {A, X} or {A}; one kept at the first version is the first
//!    set, one kept at the final version the final set.
//! 5. `a_delete_racing_a_part_taker_is_not_lost` (from {X, A}, the victim, killed, discards X
//!    and is recovered at once; a live part taker takes P, waits for publishers (recovering a
//!    dead one), finds the claim 0, adds B on the part (`dict_insert_new`), commits, releases
//!    P): A and B are in, X iff not committed.
//! 6. `a_delete_and_an_add_of_one_member_agree` (from {X}, the victim, killed, discards X; a
//!    live one adds X): the add lands only after the victim committed (else it finds X
//!    present); X is in at the end iff the add landed or the victim did not commit.
//!
//! Found: nothing. No model fails with every step the tree's own (unset `SET_DELETE_BROKEN`),
//! at LOOM_MAX_PREEMPTIONS=2, 3 and 4.
//!
//! Broken variants. Nothing in `src/` was edited to break things: each broken step has a
//! local copy here, used instead of the real one only when the environment variable
//! `SET_DELETE_BROKEN` names the variant. For example `SET_DELETE_BROKEN=no-recount
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test -p
//! loom-tests --release --test set_delete` must fail. Which models fail with each, at
//! LOOM_MAX_PREEMPTIONS=2, each model run on its own (a reader thread's panic aborts the
//! test binary); "with no kill" marks those that already fail in the run where the victim
//! runs to its end (the race alone):
//!
//! | variant | what it breaks | fails |
//! |---|---|---|
//! | `finish-before-commit` | bucket deleted, value and `used` stored before the key | 1 to 6 |
//! | `no-claim` | the deleter takes (and ends) no claim | 1 to 6 (1, 2 with no kill) |
//! | `no-recount` | the settling leaves `used` as it is | 1 to 6 |
//! | `keep-bucket` | the settling leaves a bucket naming a key-0 entry | 1 to 6 (see below) |
//! | `release-early` | the claim cleared before the `used` store | 1 to 6 (1, 6 with no kill) |
//! | `no-bump` | a delete that removed leaves P unmoved | 3, 4 |
//! | `reader-skips-publisher-in` | a reader keeps without `publisher_in` | 4 |
//!
//! How they fail: `finish-before-commit`, killed between the bucket store and the key store,
//! leaves X live in its entry with its bucket deleted (a lookup misses it; the recovery
//! recounts `used` but cannot see it). `no-claim`: model 1 with no kill ends with `used` one
//! off (the add and the delete both read `used` and both store theirs: a lost update);
//! model 2 with no kill has both deleters report "removed"; killed after its commit, nobody
//! settles (no claim names the dead), so `used` stays one too many and the bucket names a
//! key-0 entry. `no-recount`: `used` one too many after a kill between the commit and the
//! finish. `release-early`: with no kill, the add claims between the delete's claim store
//! and its `used` store, and one of the two `used` stores is lost (model 1 ended with
//! `used` 0 and Y live); killed between the two stores, the recovery finds no claim to
//! settle, `used` one too many. `no-bump`: P where it was after a removal (model 4: a read
//! of the first version validates after the delete; model 3 asserts P moved).
//! `keep-bucket`: observed only by the consistency check's rule that no bucket names a key-0
//! entry (the promise `settle_insert_claim` makes). Nothing behavioural in these models
//! sees it: a lookup skips a key-0 entry (`find` matches no empty key), an add never takes
//! a bucket that names an entry (it takes the next free one), and the part path's
//! `delete_entry` and `bucket_of` look for buckets naming live entries only; the bucket is
//! wasted until the next resize. So a model fails on it only through that structural rule.
//!
//! What loom cannot see: as in `publish.rs` (a kill is a prefix of the victim's accesses in
//! program order; SeqCst accesses are checked as AcqRel; loom's SeqCst fences are stronger
//! than C++'s). Loom explores no switch between two Relaxed loads of one thread that follow
//! each other without a `thread::yield_now()` between them, and a `yield_now` forces a switch
//! that only a preemption undoes: with two yields in the reader (after `nentries` and
//! before the buckets), `reader-skips-publisher-in` was NOT caught at
//! LOOM_MAX_PREEMPTIONS=2 (a read that overlaps the delete needed three preemptions), so the
//! reader yields at one place per model (4 runs twice). The claimants' and part takers'
//! lookups (under the claim or the part) and the recoverer's loads have no yields. Waiters
//! spin with `yield_now`; a claimant looks at a held claim `SPIN_LOOKS` more times (the
//! object layer spins `HELD_SPINS` times). The part path's entry words past `nentries` are
//! stored unlogged; its bucket, key, value, `nentries` and `used` stores are logged (four at
//! most, the models' log capacity). Members are inline words only (as
//! `publish_set_discard` requires); block members, a growth, and a claim left by a process
//! whose lock file is gone (settled by the next add or delete on the part) are not
//! modelled.
//!
//! Cost (one core, release build, LOOM_MAX_PREEMPTIONS=2, in the order above): 0.10 s (35
//! kill points), 0.07 s (32), 0.14 s (32 victim kill points, 825 pairs), 0.60 s and 0.62 s
//! (32 each), 0.27 s (57), 0.07 s (35): about 2 s in all. At LOOM_MAX_PREEMPTIONS=3: 0.18,
//! 0.12, 0.13, 1.37, 1.48, 0.78, 0.09 s; at 4: 0.32, 0.21, 0.17, 1.55, 1.71, 1.71, 0.19 s, all
//! passing.
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
    bump_version, holder, insert_claimant, published_part, publishing, settle_insert_claim,
    DictWords, Held, BUCKET_DELETED, ENTRY_BYTES,
};
use persist::sync::{AccessError, Liveness, MemLiveness, MemWords, Ordering, WordStore};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

// ---- broken variants ----------------------------------------------------------------------------

static BROKEN: Planted = Planted::new(
    "SET_DELETE_BROKEN",
    &[
        "finish-before-commit",
        "no-claim",
        "no-recount",
        "keep-bucket",
        "release-early",
        "no-bump",
        "reader-skips-publisher-in",
    ],
);

/// Whether `SET_DELETE_BROKEN` names `variant` (module doc).
fn broken(variant: &str) -> bool {
    BROKEN.is(variant)
}

// ---- the set ------------------------------------------------------------------------------------

/// Store file (`loom_tests::publication`): the set's version word P (its part word), then its
/// insert claim, `used` and `nentries` words; per slot its held-parts record and its undo log
/// block; then, past the scaffolding's words (a store longer than `Objects::new` makes), the
/// set's table: NBUCKETS buckets and CAP entries of three words (hash, key, value: always 0
/// in a set).
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

/// The members (inline words, never 0: an empty key word is a deleted entry). Their hashes
/// are the members themselves, all on bucket 1 (and below 32: the perturbation is 0 after the
/// first probe, and the sequence is 1, 6, 7, 4, 5, 2, 3, 0): every member after the first
/// probes on.
const B: u64 = 1;
const A: u64 = 9;
const X: u64 = 17;
const Y: u64 = 25;

fn hash(key: u64) -> u64 {
    key
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

/// How many more times a publisher looks at a claim word held by another before it gives up
/// on the publication (the object layer's bounded `spin_until_changed`; then the part path).
const SPIN_LOOKS: u32 = 1;

/// A set's words as one read saw them: `nentries`, `used`, the entries below `nentries` (at
/// most CAP) and the buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Set {
    nentries: u64,
    used: u64,
    entries: Vec<[u64; 3]>,
    buckets: Vec<u64>,
}

impl Set {
    /// The words through `load`, in the order an unlocked read takes them (`dict_parts`:
    /// `used` and `nentries`; then the entries, then the buckets).
    fn read(load: impl Fn(u64) -> u64) -> Set {
        let used = load(USED);
        let nentries = load(NENTRIES);
        let entries = (0..nentries.min(CAP))
            .map(|e| [load(entry(e)), load(entry(e) + KEY), load(entry(e) + VALUE)])
            .collect();
        let buckets = (0..NBUCKETS).map(|i| load(bucket(i))).collect();
        Set {
            nentries,
            used,
            entries,
            buckets,
        }
    }

    /// The members, member -> entry index, if the words are a consistent set: `nentries`
    /// within the table; every value word 0 (a set's; so a deleted entry's too); each live
    /// entry of its member's hash, its member found once, by a lookup along its probe
    /// sequence; `used` the number of live entries; every bucket empty, deleted, or naming a
    /// live entry below `nentries` (never a key-0 one), and no entry named twice.
    fn live(&self) -> Result<BTreeMap<u64, u64>, String> {
        if self.nentries > CAP {
            return Err(format!("nentries {} past the table's {CAP}", self.nentries));
        }
        let mut live = BTreeMap::new();
        for (e, &[h, k, v]) in self.entries.iter().enumerate() {
            if v != 0 {
                return Err(format!("entry {e} has value {v} ({self:?})"));
            }
            if k == 0 {
                continue;
            }
            if h != hash(k) {
                return Err(format!("entry {e}: member {k} with hash {h} ({self:?})"));
            }
            if live.insert(k, e as u64).is_some() {
                return Err(format!("member {k} in two live entries ({self:?})"));
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
        for (&k, &e) in &live {
            if self.find(k) != Some(e) {
                return Err(format!(
                    "member {k} (entry {e}) is not found by a lookup ({self:?})"
                ));
            }
        }
        Ok(live)
    }

    /// A lookup of `key` (`dict.rs`'s `find`: a key-0 entry matches nothing): the entry it
    /// finds.
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
    /// A set holding `members`, in entries 0.. in that order, each in the first free bucket of
    /// its probe sequence.
    fn new(members: &[u64]) -> World {
        assert!(members.len() as u64 <= CAP);
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
        for (e, &k) in members.iter().enumerate() {
            let e = e as u64;
            put(entry(e), hash(k));
            put(entry(e) + KEY, k);
            let i = probe(hash(k))
                .find(|&i| w.word(bucket(i)) == 0)
                .expect("a free bucket");
            put(bucket(i), e + 1);
        }
        put(NENTRIES, members.len() as u64);
        put(USED, members.len() as u64);
        w
    }

    /// The set as its words are now.
    fn set(&self) -> Set {
        Set::read(|at| self.word(at))
    }

    /// The members once nothing is in flight, the set checked (`Set::live`).
    fn live(&self) -> BTreeMap<u64, u64> {
        self.set().live().unwrap_or_else(|e| panic!("{e}"))
    }

    /// What must hold once nothing is in flight and the dead are recovered: the set
    /// consistent and unclaimed, and `Objects::assert_quiet` (the part free, every record, log
    /// and `active` empty, the store lock free).
    fn assert_quiet(&self) {
        self.live();
        assert_eq!(
            self.word(CLAIM),
            0,
            "the set is left claimed: {:#x}",
            self.word(CLAIM)
        );
        self.objects.assert_quiet();
    }
}

// ---- the recovery -------------------------------------------------------------------------------

/// `part_lock::settle_insert_claim`, or its broken copies (`no-recount`: `used` is left as
/// it is; `keep-bucket`: a bucket naming a key-0 entry keeps naming it).
fn settle<W: WordStore>(store: &W, claimant: Option<u32>) -> Result<(), AccessError> {
    if !broken("no-recount") && !broken("keep-bucket") {
        return settle_insert_claim(store, WORDS, claimant);
    }
    let word = store.load(CLAIM, Ordering::Acquire)?;
    if word == 0 || (claimant.is_some() && insert_claimant(word) != claimant) {
        return Ok(());
    }
    let n = store.load(NENTRIES, Ordering::Relaxed)?.min(CAP);
    if !broken("keep-bucket") {
        for i in 0..NBUCKETS {
            let b = store.load(bucket(i), Ordering::Relaxed)?;
            if (1..=n).contains(&b) && store.load(entry(b - 1) + KEY, Ordering::Relaxed)? == 0 {
                store.step()?;
                store.store(bucket(i), BUCKET_DELETED, Ordering::Relaxed)?;
            }
        }
    }
    let mut live = 0;
    for e in 0..n {
        if store.load(entry(e) + KEY, Ordering::Relaxed)? != 0 {
            live += 1;
        } else if store.load(entry(e) + VALUE, Ordering::Relaxed)? != 0 {
            store.step()?;
            store.store(entry(e) + VALUE, 0, Ordering::Relaxed)?;
        }
    }
    if !broken("no-recount") {
        store.step()?;
        store.store(USED, live, Ordering::Relaxed)?;
    }
    store.step()?;
    let _ = store.cas(CLAIM, word, 0, Ordering::Release, Ordering::Relaxed)?;
    Ok(())
}

/// Recovers dead slot `dead` as slot `by` would (`object/recovery.rs`, `Kind::Set`): a
/// publication its `active` names first (the claim read, Acquire, and settled if it names
/// `dead`; then the version it may have left unmoved moved), then `Parts::recover_dead` (its
/// log rolled back, its parts released, its `active` cleared). Safe to repeat.
fn recover<W: WordStore>(lock_file: &W, store: &W, by: u32, dead: u32) -> Result<(), AccessError> {
    let (_, parts) = gate(lock_file, store, by)?;
    // Relaxed: the death (learnt from the liveness flag, SeqCst) orders all the dead did.
    let active = parts.active_word(dead)?.load(Ordering::Relaxed);
    let recover_dead = || publication::recover_dead(&parts, store, dead);
    let Some(part) = published_part(active) else {
        return recover_dead();
    };
    assert_eq!(part, P, "a publication under a part that is not the set's");
    let claim = store.load(CLAIM, Ordering::Acquire)?;
    if insert_claimant(claim) == Some(dead) {
        settle(store, Some(dead))?;
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

/// What an insert (a set's add) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The member was missing and is now in the set.
    Inserted,
    /// The member was there already: nothing changed.
    Present,
}

/// What a lookup found, under the claim or the part: `nentries`, `used`, the member's bucket
/// and entry, and (the member missing and the table with room) the first free bucket on its
/// probe sequence.
struct Lookup {
    n: u64,
    used: u64,
    found: Option<(u64, u64)>,
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
        // else changes the set's words.
        self.store.load(at, Ordering::Relaxed)
    }

    /// One word stored as the part_lock steps store them (a `step`, then the store).
    fn set(&self, at: u64, w: u64, o: Ordering) -> Result<(), AccessError> {
        self.store.step()?;
        self.store.store(at, w, o)
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
            "a part taker went on beside a publication"
        );
        Ok(held)
    }

    /// The set read as a claimant (or a part change) reads it, nobody else changing it:
    /// `used` and `nentries` (`dict_parts`); the member looked up (`find`: its bucket and
    /// entry; an inserter skips it in a table without room, `full_stops`) and, missing in a
    /// table with room, the first free bucket (empty or deleted) on its probe sequence
    /// (`free_bucket`). A bucket past `nentries` is damage here (`find` raises).
    fn lookup(&self, key: u64, full_stops: bool) -> Result<Lookup, AccessError> {
        let used = self.load(USED)?;
        let n = self.load(NENTRIES)?;
        assert!(
            n <= CAP && used <= n,
            "slot {} read used {used}, nentries {n}",
            self.slot
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
                    l.found = Some((i, e));
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

    /// `Store::claim_entries`: the claim taken (`Parts::claim_insert`, a CAS; held by another,
    /// `SPIN_LOOKS` more looks at it, then give up). False: not taken.
    fn claim_entries(&self) -> Result<bool, AccessError> {
        let mut looks = 0;
        loop {
            match self.parts.claim_insert(CLAIM)? {
                Ok(()) => return Ok(true),
                Err(now) => {
                    assert_ne!(
                        insert_claimant(now),
                        Some(self.slot),
                        "a claim of our own in our way"
                    );
                    // `spin_until_changed`, bounded.
                    loop {
                        if looks == SPIN_LOOKS {
                            return Ok(false);
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
    }

    // ---- the add (an insert publication with value 0) ----

    /// `Store::claim_and_insert` for a set's member: the claim taken, the member looked up
    /// (present: the claim dropped, `Present`; no room: dropped, give up), the entry staged,
    /// committed and finished (`part_lock.rs`'s own steps). None: gave up.
    fn claim_and_insert(
        &self,
        key: u64,
        landed: &Cell<Option<u64>>,
    ) -> Result<Option<Outcome>, AccessError> {
        if !self.claim_entries()? {
            return Ok(None);
        }
        let l = match self.lookup(key, true) {
            Ok(l) => l,
            Err(e) => {
                self.parts.unclaim_insert(CLAIM)?;
                return Err(e);
            }
        };
        let Some(b) = l.free else {
            self.parts.unclaim_insert(CLAIM)?;
            return Ok(l.found.map(|_| Outcome::Present));
        };
        let written = self
            .parts
            .insert_entry_stage(WORDS, l.n, b, hash(key), 0)
            .and_then(|()| self.parts.insert_entry_commit(WORDS, l.n, key))
            .and_then(|()| {
                landed.set(Some(l.n));
                self.parts.insert_entry_finish(WORDS, l.used)
            });
        if let Err(e) = written {
            // A vanished page: settled (the claim is ours). (Killed, this fails at once.)
            let _ = settle(self.store, Some(self.slot));
            return Err(e);
        }
        Ok(Some(Outcome::Inserted))
    }

    /// `Store::publish_set_add`: a look before the announcement (room in the table), then the
    /// publication under P, `claim_and_insert`, and its end (P moved by 2 if inserted). None:
    /// nothing was changed, the part path's turn.
    fn publish_insert(
        &self,
        key: u64,
        landed: &Cell<Option<u64>>,
    ) -> Result<Option<Outcome>, AccessError> {
        if self.load(NENTRIES)? >= CAP {
            return Ok(None);
        }
        if self.parts.enter_publish(P, &Spin)?.is_err() {
            return Ok(None);
        }
        self.world.inside.enter_change(self.slot);
        let out = self.claim_and_insert(key, landed)?;
        self.world.inside.leave_change(self.slot);
        self.parts
            .end_publish(P, out == Some(Outcome::Inserted), &Spin)?;
        Ok(out)
    }

    /// An insert with the part held (`dict_insert_new`): the member looked up (present:
    /// nothing changed), a claim found settled (`settle_insert_claim(None)`), the entry
    /// written past the end (unlogged here: nothing reads it until `nentries` counts it), its
    /// bucket, `nentries` and `used` logged and written, committed.
    fn insert_held(
        &mut self,
        key: u64,
        landed: &Cell<Option<u64>>,
    ) -> Result<Outcome, AccessError> {
        if self.lookup(key, false)?.found.is_some() {
            return Ok(Outcome::Present);
        }
        if self.load(CLAIM)? != 0 {
            settle(self.store, None)?;
        }
        let l = self.lookup(key, false)?;
        let b = l
            .free
            .expect("no room: the models leave room for every insert");
        let e = entry(l.n);
        self.store.store(e, hash(key), Ordering::Relaxed)?;
        self.store.store(e + KEY, key, Ordering::Relaxed)?;
        self.store.store(e + VALUE, 0, Ordering::Relaxed)?;
        self.put(bucket(b), l.n + 1)?;
        self.put(NENTRIES, l.n + 1)?;
        self.put(USED, l.used + 1)?;
        self.commit()?;
        landed.set(Some(l.n));
        Ok(Outcome::Inserted)
    }

    /// An add: as a publication, or on the part (taken, waiting for publishers) if the
    /// publication gives up.
    fn insert(&mut self, key: u64, landed: &Cell<Option<u64>>) -> Result<Outcome, AccessError> {
        if let Some(out) = self.publish_insert(key, landed)? {
            return Ok(out);
        }
        assert_eq!(landed.get(), None);
        self.enter()?;
        let held = self.take(P)?;
        let out = self.insert_held(key, landed)?;
        self.parts.end(&[held], true, &Spin)?;
        Ok(out)
    }

    // ---- the delete ----

    /// Delete steps 1 and 2 (`delete_entry_commit`, `delete_entry_finish`) of the member in
    /// entry `e` named by bucket `b`, `used` read under the claim, or their broken copies.
    /// `committed` is set right after the store of the empty key (the commit point).
    fn delete_steps(
        &self,
        b: u64,
        e: u64,
        used: u64,
        committed: &Cell<bool>,
    ) -> Result<(), AccessError> {
        let relaxed = Ordering::Relaxed;
        let release = Ordering::Release;
        if broken("finish-before-commit") {
            self.set(bucket(b), BUCKET_DELETED, relaxed)?;
            self.set(entry(e) + VALUE, 0, relaxed)?;
            self.set(USED, used - 1, relaxed)?;
            self.set(entry(e) + KEY, 0, release)?;
            committed.set(true);
            return self.set(CLAIM, 0, release);
        }
        self.parts.delete_entry_commit(WORDS, e)?;
        committed.set(true);
        if broken("release-early") {
            self.set(bucket(b), BUCKET_DELETED, relaxed)?;
            self.set(entry(e) + VALUE, 0, relaxed)?;
            self.set(CLAIM, 0, release)?;
            return self.set(USED, used - 1, relaxed);
        }
        if broken("no-claim") {
            // No claim of ours to end.
            self.set(bucket(b), BUCKET_DELETED, relaxed)?;
            self.set(entry(e) + VALUE, 0, relaxed)?;
            return self.set(USED, used - 1, relaxed);
        }
        self.parts.delete_entry_finish(WORDS, b, e, used)
    }

    /// `Store::claim_and_delete`: the claim taken (held by another, `SPIN_LOOKS` more looks,
    /// then give up: None), the member looked up (missing: the claim dropped, `Some(false)`),
    /// its key emptied (the commit point), the rest finished (`Some(true)`). A failed step
    /// settles the claim as a dead deleter's would be settled. (Broken, `no-claim`: no claim.)
    fn claim_and_delete(
        &self,
        key: u64,
        committed: &Cell<bool>,
    ) -> Result<Option<bool>, AccessError> {
        let claimed = !broken("no-claim");
        if claimed && !self.claim_entries()? {
            return Ok(None);
        }
        let l = match self.lookup(key, false) {
            Ok(l) => l,
            Err(e) => {
                if claimed {
                    self.parts.unclaim_insert(CLAIM)?;
                }
                return Err(e);
            }
        };
        let Some((b, e)) = l.found else {
            if claimed {
                self.parts.unclaim_insert(CLAIM)?;
            }
            return Ok(Some(false));
        };
        if let Err(err) = self.delete_steps(b, e, l.used, committed) {
            // A vanished page: settled (the claim is ours). (Killed, this fails at once.)
            let _ = settle(self.store, Some(self.slot));
            return Err(err);
        }
        Ok(Some(true))
    }

    /// `Store::publish_set_discard`: the publication under P (`enter_publish`; withdrawn:
    /// None), `claim_and_delete`, and its end (P moved by 2 if removed; broken, `no-bump`:
    /// never). None: nothing was changed, the part path's turn.
    fn publish_delete(
        &self,
        key: u64,
        committed: &Cell<bool>,
    ) -> Result<Option<bool>, AccessError> {
        if self.parts.enter_publish(P, &Spin)?.is_err() {
            return Ok(None);
        }
        self.world.inside.enter_change(self.slot);
        let out = self.claim_and_delete(key, committed)?;
        self.world.inside.leave_change(self.slot);
        let changed = out == Some(true) && !broken("no-bump");
        self.parts.end_publish(P, changed, &Spin)?;
        Ok(out)
    }

    /// A discard on the part (`set_discard`, `dict_del`, `delete_entry`): the part taken
    /// (waiting for publishers, recovering dead ones), the claim found clear (every claim
    /// belongs to a publication the wait outlived, and a dead one's is settled before its
    /// `active` is cleared; `dict_del` settles only one left without its lock file, which
    /// this model has none of), the member looked up (missing: nothing
    /// changed), its bucket deleted, key and value emptied, `used` one less (logged),
    /// committed, the part released.
    fn delete_on_part(&mut self, key: u64, committed: &Cell<bool>) -> Result<bool, AccessError> {
        self.enter()?;
        let held = self.take(P)?;
        let claim = self.load(CLAIM)?;
        assert_eq!(
            claim, 0,
            "a part change found the set claimed after its wait: {claim:#x}"
        );
        let l = self.lookup(key, false)?;
        let Some((b, e)) = l.found else {
            self.parts.end(&[held], true, &Spin)?;
            return Ok(false);
        };
        self.put(bucket(b), BUCKET_DELETED)?;
        self.put(entry(e) + KEY, 0)?;
        self.put(entry(e) + VALUE, 0)?;
        self.put(USED, l.used - 1)?;
        self.commit()?;
        committed.set(true);
        self.parts.end(&[held], true, &Spin)?;
        Ok(true)
    }

    /// A discard: as a publication, or on the part if the publication gives up.
    fn delete(&mut self, key: u64, committed: &Cell<bool>) -> Result<bool, AccessError> {
        if let Some(out) = self.publish_delete(key, committed)? {
            return Ok(out);
        }
        assert!(!committed.get());
        self.delete_on_part(key, committed)
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

/// What a discard did (None: killed first), and whether it reached its commit point (set
/// there, so that a victim killed later keeps it).
struct Deleted {
    out: Option<bool>,
    committed: bool,
}

/// The victim discarding `key`, killed after `k` accesses; and its accesses.
fn victim_delete(world: &World, k: u64, key: u64) -> (Deleted, u64) {
    let committed = Cell::new(false);
    let (out, spent) = as_victim(world, VICTIM, k, |p| p.delete(key, &committed));
    if let Some(removed) = out {
        assert_eq!(removed, committed.get());
    }
    (
        Deleted {
            out,
            committed: committed.get(),
        },
        spent,
    )
}

/// A live participant in `slot` discards `key`: whether it removed it.
fn live_delete(world: &World, slot: u32, key: u64) -> bool {
    let mut p = Participant::new(world, &world.lock_file, &world.store, slot).unwrap();
    let committed = Cell::new(false);
    let removed = p.delete(key, &committed).unwrap();
    assert_eq!(removed, committed.get());
    removed
}

/// What an add did, and the entry it landed at.
struct Inserted {
    out: Outcome,
    at: Option<u64>,
}

/// A live participant in `slot` adds `key`.
fn live_insert(world: &World, slot: u32, key: u64) -> Inserted {
    let mut p = Participant::new(world, &world.lock_file, &world.store, slot).unwrap();
    let landed = Cell::new(None);
    let out = p.insert(key, &landed).unwrap();
    assert_eq!(out == Outcome::Inserted, landed.get().is_some());
    Inserted {
        out,
        at: landed.get(),
    }
}

// ---- 1. a delete beside an insert ---------------------------------------------------------------

/// From a set holding X, the victim (killed before each of its accesses, then recovered at
/// once by a third participant) discards X while a live participant adds Y (both on bucket
/// 1; after a bounded spin on a held claim either goes to the part, which waits for the
/// claimant and recovers it if dead); then the victim is recovered again. Y is in the set
/// where its add put it; X is in iff its key was not emptied; the set is consistent and
/// unclaimed.
#[test]
fn a_delete_beside_an_insert_loses_neither() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(&[X]));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let out = victim_delete(&world, k, X);
                if !world.live.is_alive(VICTIM) {
                    recover_live(&world, THIRD, VICTIM);
                }
                out
            })
        };
        let y = live_insert(&world, OTHER, Y);
        let (x, spent) = victim.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let live = world.live();
        assert_eq!(y.out, Outcome::Inserted);
        assert_eq!(live.get(&Y).copied(), y.at, "Y where it landed ({live:?})");
        assert_eq!(
            live.contains_key(&X),
            !x.committed,
            "X is in the set iff its key was not emptied ({live:?})"
        );
        assert_eq!(live.len(), 1 + !x.committed as usize);
        if x.out.is_some() {
            assert!(
                x.committed,
                "the deleter ran to its end and did not remove X"
            );
        }
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 2. two deleters of one member --------------------------------------------------------------

/// From a set holding X, the victim (killed, recovered at once) and a live participant both
/// discard X. X is gone; the live one removed it iff the victim had not reached its commit
/// point (so exactly one removed it when nobody was killed).
#[test]
fn two_deleters_of_one_member_remove_it_once() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(&[X]));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let out = victim_delete(&world, k, X);
                if !world.live.is_alive(VICTIM) {
                    recover_live(&world, THIRD, VICTIM);
                }
                out
            })
        };
        let other = live_delete(&world, OTHER, X);
        let (x, spent) = victim.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let live = world.live();
        assert!(live.is_empty(), "X is left in the set: {live:?}");
        assert_eq!(
            other, !x.committed,
            "the live deleter removed X: {other}; the victim committed: {} (out {:?})",
            x.committed, x.out
        );
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 3. a recoverer killed anywhere -------------------------------------------------------------

/// From a set holding X and A, the victim (killed before each of its accesses) discards X; its
/// first recoverer is killed before each of its accesses, a second one finishes; then a live
/// participant adds Y. Sequential (one interleaving per pair of kill points). After the first
/// recoverer's death a claim naming the victim exists only while the victim's `active` still
/// names the set, and once that `active` is clear the set is settled (consistent, unclaimed)
/// and, if X's key was emptied, P moved. After the recovery X is in iff its key was not
/// emptied (if it was: its entry a deleted one, its bucket deleted), A is in, `used` counts
/// the live entries; Y then lands (in X's old bucket, if X was removed).
#[test]
fn a_recoverer_killed_anywhere_settles_the_delete() {
    fn scenario(k1: u64, k2: u64) -> (u64, u64) {
        let world = World::new(&[X, A]);
        let (x, spent) = victim_delete(&world, k1, X);
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
                    "the dead deleter's claim outlived the active word that leads to it"
                );
            }
            if active == 0 {
                assert_eq!(world.word(CLAIM), 0, "a recovered delete left its claim");
                world.live();
                if x.committed {
                    assert_ne!(
                        world.word(P),
                        0,
                        "a recovered delete left the version unmoved"
                    );
                }
            }
            recover_live(&world, OTHER, VICTIM);
        }
        let live = world.live();
        assert_eq!(
            live.contains_key(&X),
            !x.committed,
            "X is in the set iff its key was not emptied ({live:?})"
        );
        assert_eq!(live.get(&A), Some(&1));
        assert_eq!(live.len(), 2 - x.committed as usize);
        if x.committed {
            let s = world.set();
            assert_eq!(s.entries[0][1..], [0, 0], "X's entry is not a deleted one");
            assert_eq!(
                s.buckets[1], BUCKET_DELETED,
                "X's bucket is not deleted: {s:?}"
            );
            assert_ne!(world.word(P), 0, "a delete left the version unmoved");
        }
        world.assert_quiet();
        let y = live_insert(&world, OTHER, Y);
        assert_eq!(y.out, Outcome::Inserted);
        let live = world.live();
        assert_eq!(live.get(&Y).copied(), y.at);
        assert_eq!(live.contains_key(&X), !x.committed);
        if x.committed {
            assert_eq!(
                world.word(bucket(1)),
                y.at.unwrap() + 1,
                "Y not in X's old bucket"
            );
        }
        world.assert_quiet();
        (spent, recoverer_spent)
    }
    every_kill_pair(scenario);
}

// ---- 4. a reader --------------------------------------------------------------------------------

/// One unlocked read of the set under P as the object layer validates it (`read_validated`):
/// the words read in `dict_parts`'s order, then validated (`publisher_in`, P unchanged;
/// broken, `reader-skips-publisher-in`: P unchanged only). A scheduling point (only) before
/// the load of word `yield_before`: loom explored no switch between two Relaxed loads of one
/// thread without one (module doc), and a `yield_now` there forces a switch that only a
/// preemption undoes, so each read yields at one place (the models run one place each).
fn read_set(world: &World, slot: u32, yield_before: u64) -> Option<(u64, Set)> {
    let publisher_in = !broken("reader-skips-publisher-in");
    read_validated(world, slot, publisher_in, || {
        // Relaxed (all): validated after.
        Set::read(|at| {
            if at == yield_before {
                thread::yield_now();
            }
            world.word(at)
        })
    })
}

/// The victim (killed before each of its accesses) discards X from a set holding X and A
/// while a reader reads the set (yielding before the load of word `YIELD_BEFORE`); then the
/// victim is recovered. A kept read is a consistent set holding A and X, or A; one that
/// validated against the first version is the first set, one that validated against the
/// final version the final one.
fn reader_scenario<const YIELD_BEFORE: u64>(k: u64) -> u64 {
    let world = Arc::new(World::new(&[X, A]));
    let first = world.live();
    let reader = {
        let world = world.clone();
        thread::spawn(move || read_set(&world, THIRD, YIELD_BEFORE))
    };
    let (x, spent) = victim_delete(&world, k, X);
    if !world.live.is_alive(VICTIM) {
        recover_live(&world, OTHER, VICTIM);
    }
    let last = world.live();
    assert_eq!(last.contains_key(&X), !x.committed);
    if x.committed {
        assert_ne!(world.word(P), 0, "a delete left the version unmoved");
    }
    if let Some((v, seen)) = reader.join().unwrap() {
        let kept = seen
            .live()
            .unwrap_or_else(|e| panic!("a reader kept an inconsistent set: {e}"));
        let keys: Vec<u64> = kept.keys().copied().collect();
        assert!(
            keys == [A, X] || keys == [A],
            "a reader kept the members {keys:?}"
        );
        if v == 0 {
            assert_eq!(kept, first, "the first version names the first set");
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

/// `reader_scenario`, the reader yielding between `used`, `nentries` and the entries (a
/// delete's key store and `used` store on either side).
#[test]
fn a_reader_keeps_only_whole_sets_yield_before_entries() {
    every_kill_point(reader_scenario::<ENTRY0>);
}

/// `reader_scenario`, the reader yielding between the entries and the buckets (a delete's
/// key store and bucket store on either side).
#[test]
fn a_reader_keeps_only_whole_sets_yield_before_buckets() {
    every_kill_point(reader_scenario::<BUCKET0>);
}

// ---- 5. a delete racing a part taker ------------------------------------------------------------

/// From a set holding X and A, the victim (killed before each of its accesses, then recovered
/// at once by a third participant) discards X, while a live part taker adds B on the part:
/// takes P, waits for the publications under it (recovering a dead one), finds the set
/// unclaimed, adds B (`dict_insert_new`), commits and releases P. A and B are in; X is in iff
/// its key was not emptied; the set is consistent and unclaimed.
#[test]
fn a_delete_racing_a_part_taker_is_not_lost() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(&[X, A]));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let out = victim_delete(&world, k, X);
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
        assert_eq!(
            claim, 0,
            "a part taker found the set claimed after its wait: {claim:#x}"
        );
        let landed = Cell::new(None);
        let out = taker.insert_held(B, &landed).unwrap();
        taker.parts.end(&[held], true, &Spin).unwrap();
        assert_eq!(out, Outcome::Inserted);
        let (x, spent) = victim.join().unwrap();
        let live = world.live();
        assert_eq!(live.get(&B).copied(), landed.get(), "B was lost ({live:?})");
        assert_eq!(live.get(&A), Some(&1), "A was lost ({live:?})");
        assert_eq!(
            live.contains_key(&X),
            !x.committed,
            "X is in the set iff its key was not emptied ({live:?})"
        );
        assert_eq!(live.len(), 3 - x.committed as usize);
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 6. a delete and an add of one member -------------------------------------------------------

/// From a set holding X, the victim (killed, recovered at once) discards X while a live
/// participant adds X. The add lands iff the victim's delete committed first (else it found X
/// there); X is in the set at the end iff the add landed or the delete never committed; the
/// set is consistent and unclaimed.
#[test]
fn a_delete_and_an_add_of_one_member_agree() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(&[X]));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let out = victim_delete(&world, k, X);
                if !world.live.is_alive(VICTIM) {
                    recover_live(&world, THIRD, VICTIM);
                }
                out
            })
        };
        let add = live_insert(&world, OTHER, X);
        let (x, spent) = victim.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let live = world.live();
        if add.out == Outcome::Inserted {
            assert!(x.committed, "X added while it was in the set");
            assert_eq!(
                live.get(&X).copied(),
                add.at,
                "the added X is lost ({live:?})"
            );
        } else {
            assert_eq!(
                live.contains_key(&X),
                !x.committed,
                "X is in the set iff its key was not emptied ({live:?})"
            );
        }
        assert_eq!(live.len(), live.contains_key(&X) as usize);
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}
