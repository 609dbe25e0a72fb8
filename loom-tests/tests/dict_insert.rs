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
//! again in `loom_tests::dict_table`. Every word step of an insert and of a settling is
//! `part_lock.rs`'s own; the control flow around them is copied: the bounded claim, the
//! lookup under the claim or the part, the part taken with its wait for publishers and a
//! publication under P are shared with `set_delete.rs` (`loom_tests::dict_table::
//! Participant`), and what this file plants bugs in stays here (`claim_and_insert`,
//! `publish_dict_insert`, the part path, the recovery), as the other publication models copy
//! theirs. The scaffolding (`loom_tests::publication`: the store and lock file, a
//! participant's view, the recovery's last step, the validated read) is shared, and so is the
//! table on it (`loom_tests::dict_table`: its layout, the probe, the snapshot and its checker,
//! the world and who is inside, the victim's thread and the killed recoverer of model 3); the
//! table lies past the scaffolding's words, in a store longer than `Objects::new` makes.
//!
//! The models (an inserter marked "killed" is killed before each of its word accesses
//! through the killable word store, as in `publish_append.rs`, and also runs to its end; a
//! check "the dict is consistent" is `Table::live` (`Kind::Dict`): `nentries` within the table, every live
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
//! kill points), 0.11 s (38), 0.11 s (38 victim kill points, 963 pairs), 0.25 s (61), 1.9 s
//! (41): under 3 s in all. At LOOM_MAX_PREEMPTIONS=3, all passing: 0.5 s, 0.2 s, 0.1 s, 0.8
//! s, 4.3 s.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::dict_table::{
    as_victim, bucket, entry, hash, probe, spawn_victim, Kind, Lookup, Outcome, Participant, Table,
    World, A, CAP, CLAIM, KEY, NBUCKETS, NENTRIES, USED, VALUE, WORDS, X, Y,
};
use loom_tests::publication::{self, gate, read_validated, Spin, OTHER, P, THIRD, VICTIM};
use loom_tests::{every_kill_pair, every_kill_point, Planted};
use persist::part_lock::{
    bump_version, insert_claim, insert_claimant, published_part, settle_insert_claim,
    BUCKET_DELETED,
};
use persist::sync::{AccessError, Liveness, MemWords, Ordering, WordStore};
use std::cell::Cell;
use std::collections::BTreeMap;

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

/// The value a key is inserted with (never 0: a deleted entry's value word is emptied).
fn value_of(key: u64) -> u64 {
    100 + key
}

/// A dict (`loom_tests::dict_table`'s table) holding `keys`, in entries 0.. in that order,
/// each in the first free bucket of its probe sequence, with its value (`value_of`);
/// recovered by `recover` below.
fn dict_of(keys: &[u64]) -> World {
    dict_with_deleted(keys, &[])
}

/// A dict that held `keys` (as `dict_of` makes it), of which `deleted` were deleted since
/// (as `dict.rs`'s `delete_entry`: the bucket deleted, the key and value words emptied,
/// `used` one less; the entry keeps its place).
fn dict_with_deleted(keys: &[u64], deleted: &[u64]) -> World {
    let entries: Vec<(u64, u64)> = keys.iter().map(|&k| (k, value_of(k))).collect();
    World::new(Kind::Dict, recover::<MemWords>, &entries, deleted)
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

// ---- participants (`loom_tests::dict_table::Participant`) ---------------------------------------

/// Whether a part taker waits for the publications under the part (broken,
/// `taker-skips-wait`: not).
fn taker_waits() -> bool {
    !broken("taker-skips-wait")
}

/// `Parts::claim_insert`, or its broken copy (`claim-relaxed`).
fn claim_insert<W: WordStore>(p: &Participant<'_, W>) -> Result<Result<(), u64>, AccessError> {
    if !broken("claim-relaxed") {
        return p.parts.claim_insert(CLAIM);
    }
    p.store.step()?;
    p.store.cas(
        CLAIM,
        0,
        insert_claim(p.slot),
        Ordering::Relaxed,
        Ordering::Relaxed,
    )
}

/// Insert steps 2 to 4 (`insert_entry_stage`, `insert_entry_commit`, `insert_entry_finish`)
/// of `key` at entry `n` and bucket `b`, `used` read under the claim, or their broken
/// copies. `landed` is set right after the store of the key (the commit point).
fn write_entry<W: WordStore>(
    p: &Participant<'_, W>,
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
        p.set(e, hash(key), relaxed)?;
        p.set(e + VALUE, value, relaxed)?;
        p.set(e + KEY, 0, relaxed)?;
        p.set(NENTRIES, n + 1, release)?;
        p.set(e + KEY, key, release)?;
        landed.set(Some(n));
        p.set(bucket(b), n + 1, release)?;
        return finish(p, l.used);
    }
    if broken("commit-then-stage") {
        p.set(e, hash(key), relaxed)?;
        p.set(e + VALUE, value, relaxed)?;
        p.set(e + KEY, key, release)?;
        landed.set(Some(n));
        p.set(NENTRIES, n + 1, release)?;
        p.set(bucket(b), n + 1, release)?;
        return finish(p, l.used);
    }
    if broken("bucket-before-count") {
        p.set(e, hash(key), relaxed)?;
        p.set(e + VALUE, value, relaxed)?;
        p.set(e + KEY, 0, relaxed)?;
        p.set(bucket(b), n + 1, release)?;
        p.set(NENTRIES, n + 1, release)?;
    } else {
        p.parts.insert_entry_stage(WORDS, n, b, hash(key), value)?;
    }
    p.parts.insert_entry_commit(WORDS, n, key)?;
    landed.set(Some(n));
    finish(p, l.used)
}

/// `Parts::insert_entry_finish`, or its broken copy (`finish-relaxed`: the claim ended
/// with a Relaxed store).
fn finish<W: WordStore>(p: &Participant<'_, W>, used: u64) -> Result<(), AccessError> {
    if !broken("finish-relaxed") {
        return p.parts.insert_entry_finish(WORDS, used);
    }
    p.set(USED, used + 1, Ordering::Relaxed)?;
    p.set(CLAIM, 0, Ordering::Relaxed)
}

/// `Store::claim_and_insert`: the claim taken (`claim_insert`; held by another,
/// `SPIN_LOOKS` more looks, then give up), the key looked up (present: the claim dropped,
/// `Present`; no room: dropped, give up), the entry staged, committed and finished. None:
/// gave up.
fn claim_and_insert<W: WordStore>(
    p: &Participant<'_, W>,
    key: u64,
    value: u64,
    landed: &Cell<Option<u64>>,
) -> Result<Option<Outcome>, AccessError> {
    if !p.claim_entries(|| claim_insert(p))? {
        return Ok(None);
    }
    let l = match p.lookup(key, true) {
        Ok(l) => l,
        Err(e) => {
            p.parts.unclaim_insert(CLAIM)?;
            return Err(e);
        }
    };
    let Some(b) = l.free else {
        if !broken("keep-claim") {
            p.parts.unclaim_insert(CLAIM)?;
        }
        return Ok(l.found.map(|_| Outcome::Present));
    };
    if let Err(e) = write_entry(p, &l, b, key, value, landed) {
        // A vanished page: whatever was written is settled (the claim is ours). (Killed,
        // this fails at once.)
        let _ = settle(p.store, Some(p.slot));
        return Err(e);
    }
    Ok(Some(Outcome::Inserted))
}

/// `Store::publish_dict_insert`: a look before the announcement (room in the table), then
/// the publication under P (`enter_publish`), `claim_and_insert`, and its end (P moved by 2
/// if the key was inserted). None: nothing was changed, the part path's turn.
fn publish_insert<W: WordStore>(
    p: &Participant<'_, W>,
    key: u64,
    value: u64,
    landed: &Cell<Option<u64>>,
) -> Result<Option<Outcome>, AccessError> {
    if p.load(NENTRIES)? >= CAP {
        return Ok(None);
    }
    p.publish(
        || claim_and_insert(p, key, value, landed),
        |out| *out == Some(Outcome::Inserted) && !broken("no-bump"),
    )
}

/// An insert as a single change on the part (`dict_set` then `dict_insert_new`): the part
/// taken (waiting for publishers, recovering dead ones), the key looked up (present:
/// nothing changed), a claim found settled (`settle_insert_claim(None)`, then the claim
/// word put 0), the entry written past the end (unlogged here: nothing reads it until
/// `nentries` counts it, and the next insert writes it whole), its bucket, `nentries` and
/// `used` logged and written, committed, the part released.
fn insert_on_part<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    value: u64,
    landed: &Cell<Option<u64>>,
) -> Result<Outcome, AccessError> {
    p.enter()?;
    let held = p.take(P, taker_waits())?;
    if p.lookup(key, false)?.found.is_some() {
        p.parts.end(&[held], true, &Spin)?;
        return Ok(Outcome::Present);
    }
    if p.load(CLAIM)? != 0 {
        settle(p.store, None)?;
        p.put(CLAIM, 0)?;
    }
    let l = p.lookup(key, false)?;
    let b = l
        .free
        .expect("no room: the models leave room for every insert");
    let e = entry(l.n);
    p.store.store(e, hash(key), Ordering::Relaxed)?;
    p.store.store(e + KEY, key, Ordering::Relaxed)?;
    p.store.store(e + VALUE, value, Ordering::Relaxed)?;
    p.put(bucket(b), l.n + 1)?;
    p.put(NENTRIES, l.n + 1)?;
    p.put(USED, l.used + 1)?;
    p.commit()?;
    landed.set(Some(l.n));
    p.parts.end(&[held], true, &Spin)?;
    Ok(Outcome::Inserted)
}

/// An insert: as a publication, or on the part if the publication gives up.
fn insert<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    value: u64,
    landed: &Cell<Option<u64>>,
) -> Result<Outcome, AccessError> {
    if let Some(out) = publish_insert(p, key, value, landed)? {
        return Ok(out);
    }
    assert_eq!(landed.get(), None);
    insert_on_part(p, key, value, landed)
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
    let (out, spent) = as_victim(world, VICTIM, k, |p| insert(p, key, value, &landed));
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
    let out = insert(&mut p, key, value, &landed).unwrap();
    assert_eq!(out == Outcome::Inserted, landed.get().is_some());
    Inserted {
        out: Some(out),
        at: landed.get(),
    }
}

/// Into an empty dict, the victim (killed after `k` accesses, then recovered at once by a
/// third participant) inserts X with `value` while `other` runs in this thread (a live
/// participant); then the victim's recovery is repeated. The dict, what the victim did (and
/// its accesses), and what `other` returned.
fn beside_victim_insert<T>(
    k: u64,
    value: u64,
    other: impl FnOnce(&World) -> T,
) -> (Arc<World>, (Inserted, u64), T) {
    let world = Arc::new(dict_of(&[]));
    let victim = spawn_victim(&world, move |world| victim_insert(world, k, X, value));
    let t = other(&world);
    let x = victim.join().unwrap();
    world.recover_again();
    (world, x, t)
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
        let (world, (x, spent), y) = beside_victim_insert(k, value_of(X), |world| {
            live_insert(world, OTHER, Y, value_of(Y))
        });
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
        let (world, (x, spent), other) =
            beside_victim_insert(k, VICTIMS, |world| live_insert(world, OTHER, X, OTHERS));
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
        let world = dict_of(&[]);
        let (x, spent) = victim_insert(&world, k1, X, value_of(X));
        let mut recoverer_spent = 0;
        if !world.live.is_alive(VICTIM) {
            let landed = x.at.is_some();
            recoverer_spent = world.recover_killed(k2, |l, s, by, d| recover(l, s, by, d), landed);
        }
        let live = world.live();
        assert_eq!(
            entry_of(&live, X),
            x.at.map(|e| (e, value_of(X))),
            "X is in the dict iff its key was stored ({live:?})"
        );
        assert_eq!(live.len(), x.at.is_some() as usize);
        if x.at.is_none() && world.word(NENTRIES) == 1 {
            let d = world.table();
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
        let world = Arc::new(dict_of(&[A]));
        let victim = spawn_victim(&world, move |world| victim_insert(world, k, X, value_of(X)));
        let mut taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        taker.enter().unwrap();
        let held = taker.take(P, taker_waits()).unwrap();
        let claim = world.word(CLAIM);
        if claim != 0 {
            settle(&world.store, None).unwrap();
        }
        assert_eq!(
            claim, 0,
            "a part taker found the dict claimed after its wait: {claim:#x}"
        );
        let l = taker.lookup(A, false).unwrap();
        let (_, e) = l.found.expect("A is in the dict");
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
fn read_dict(world: &World, slot: u32) -> Option<(u64, Table)> {
    read_validated(world, slot, !broken("reader-skips-publisher-in"), || {
        // Relaxed (all): validated after.
        Table::read(|at| {
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
        let world = Arc::new(dict_of(&[A]));
        let first = world.live();
        let reader = {
            let world = world.clone();
            thread::spawn(move || read_dict(&world, THIRD))
        };
        let (x, spent) = victim_insert(&world, k, X, value_of(X));
        world.recover_again();
        let last = world.live();
        assert_eq!(entry_of(&last, X), x.at.map(|e| (e, value_of(X))));
        if x.at.is_some() {
            assert_ne!(world.word(P), 0, "an insert left the version unmoved");
        }
        if let Some((v, seen)) = reader.join().unwrap() {
            let kept = seen
                .live(Kind::Dict)
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
        let world = Arc::new(dict_with_deleted(&[X, A], &[X]));
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
        let world = Arc::new(dict_with_deleted(&[X, Y, A], &[X, Y]));
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
