//! Delete publications of a dict's key (`persist::part_lock`: `claim_insert`,
//! `delete_claim_entry`, `delete_value_commit`, `delete_entry_commit`, `delete_entry_finish`,
//! `unclaim_insert`, `settle_insert_claim`, `Parts::publish`): a `del d[k]` / `d.pop(k)` of a
//! key whose key and value words are inline words, taking no part lock, beside value
//! publications (updates) of the same key, an insert of another key, another deleter of the
//! same key, readers, and the recoverer of a deleter killed anywhere (itself killed anywhere,
//! and repeated). The companion of `set_delete.rs` and `dict_insert.rs`, with which it shares
//! the table, its checker and the control flow all three copy alike
//! (`loom_tests::dict_table`).
//!
//! The protocol (`Store::publish_dict_delete`, `publish_delete` and `claim_and_delete` with
//! `Kind::Dict`; FORMAT.md §10.9, "Deletes"). The deleter `me` announces a publication under
//! the dict's version word P (`enter_publish`: `active` = P | 1, SeqCst fence, gate checks;
//! else it withdraws: the part path); takes the insert claim (`claim_insert`: CAS 0 ->
//! `insert_claim(me)`, Acquire; held by another, `SPIN_LOOKS` more looks, then the part path);
//! looks the key up under the claim (missing: `unclaim_insert`, the publication ended with P
//! unmoved: "absent"); found at bucket b, entry e, it reads the value word v (not an inline
//! word: unclaimed, the part path); marks the claim as a delete of e (`delete_claim_entry`:
//! claim = `delete_claim(me, e)`, Relaxed); seals e's value word (`delete_value_commit`: CAS v
//! -> 0, Release: THE COMMIT POINT; failed with an inline word `now`, a value publication won:
//! v = now, again; the value popped is the v of the CAS that succeeded); empties e's key word
//! (`delete_entry_commit`); finishes (`delete_entry_finish`: b deleted, value 0, `used` - 1,
//! claim 0, Release) and ends the publication (`end_publish`: P moved by 2 unless held,
//! `active` 0). The recoverer of a dead deleter (`object/recovery.rs`, `Kind::Dict`): its
//! `active` names P | 1 and the claim names it: `settle_insert_claim(Some(dead))` (a delete
//! claim naming an entry whose value word is 0 and key word is not: the key word emptied;
//! then every bucket naming a counted key-0 entry deleted, every counted key-0 entry's value
//! emptied, `used` counted again, the claim cleared), then P moved by 2 (`bump_version`), then
//! `active` cleared (`Parts::recover_dead`). An update (`d[k] = new`, `Store::
//! publish_dict_value`): announced under P, the key looked up without the claim (`look`),
//! its value word read, then while the word is an inline word a CAS from it to `new`
//! (`Parts::publish`; failed: again from the word found); the empty word 0 (a sealed entry)
//! or a block: not published, and the update runs on the part (`dict_set`): the part taken,
//! a wait while an `active` names P | 1 (recovering a dead publisher), the key looked up:
//! present, its value replaced (logged); missing, inserted (`dict_insert_new`, as
//! `set_delete.rs`'s part path). A pop on the part (`dict_del`, `delete_entry`): the part
//! taken and the wait, the claim found 0, the key looked up, its bucket, key, value and `used`
//! logged and written, committed. The insert of another key is `dict_insert.rs`'s (insert
//! publication, or on the part). A reader observes P, reads the dict's words (`used`,
//! `nentries`, entries, buckets) and validates (`read_valid`, no `active` naming P | 1, P
//! unchanged).
//!
//! The dict: `loom_tests::dict_table`'s table (8 buckets, room for 5 entries of hash, key and
//! value words; `used`, `nentries`, the claim, P). Keys are small inline words whose hash is
//! the key itself, all on bucket 1; values are inline words (X holds OLD = 117 at first, an
//! update stores NEW = 0x201; A and Y hold 100 + key). Every word step of a delete, a value
//! CAS, an insert and a settling is `part_lock.rs`'s own; the control flow around them
//! (`claim_and_delete`, the update, the part paths, the recovery, with the bugs planted in
//! them) is copied here. "The dict is consistent" is `Table::live` (`Kind::Dict`): as in
//! `dict_insert.rs`, and every live entry's value word an inline word (never 0: a key with
//! value 0 is a sealed entry left behind), every dead entry's value word 0. Every model ends
//! with the dict consistent, the claim 0 and the scaffolding quiet (P free, records, logs
//! and `active` words empty).
//!
//! "A serial order explains it" (`explained`): from X = OLD, a pop of X and an update of X to
//! NEW, each done (at its commit point: a pop's seal or its commit on the part; an update's
//! CAS or its commit on the part) or not done, leave one of: the pop alone (X absent, OLD
//! popped), the update alone (X = NEW, OLD replaced), the update then the pop (X absent, NEW
//! popped, OLD replaced), the pop then the update (X = NEW, OLD popped, X inserted on the
//! part). Nothing else: no lost update, no pop of a value the dict then also holds, no update
//! reported done whose value neither the pop returned nor the dict holds. X is looked up and
//! the serial order checked before the table (see "What loom cannot see").
//!
//! The models (a participant marked "killed" is killed before each of its word accesses
//! through the killable word store, and also runs to its end):
//!
//! 1. `an_update_and_a_pop_of_one_key_serialize` (from {X = OLD}, a live pop of X and a live
//!    update of X to NEW, six runs: the update pausing at each place of `PAUSES`, the popper
//!    and then the updater in the spawned thread): the pop pops (X is there in either order),
//!    and a serial order explains it. Across the runs every way the two meet is seen: the
//!    update's CAS first (the seal retried from NEW, or the pop reading NEW), the seal
//!    first with the update then finding the value word empty (before or at its CAS), or the
//!    key gone (its look misses): each of these last three then inserts X on the part.
//! 2. `a_killed_pop_beside_an_update_is_whole_or_absent` (from {X = OLD, A}, the victim,
//!    killed, pops X; its first recoverer (its thread, a third participant, holding the dead
//!    slot's recovery lock) killed before each of its accesses, then a second recovery; a
//!    live update of X to NEW beside, run for each place of `PAUSES`; every pair of kill
//!    points): after the first recoverer's death a claim naming the victim exists only while
//!    the victim's `active` names P, and once that `active` is clear X's entry is not left
//!    sealed (value 0 with its key) and, if the pop committed, P moved; at the end a serial
//!    order explains it in which the dead pop happened entirely or not at all, A is as it
//!    was, and a pop that ran to its end popped.
//!    `a_killed_update_beside_a_pop_is_whole_or_absent` (from {X = OLD}, the victim, killed,
//!    updates X to NEW, pausing at each place in turn, recovered at once by a third
//!    participant; a live pop of X): a serial order explains it in which the dead update
//!    happened entirely or not at all; the pop pops.
//!    `a_recoverer_killed_anywhere_settles_the_pop` (from {X = OLD, A}, the victim alone,
//!    killed, pops X; its first recoverer killed before each of its accesses, a second one
//!    (`dict_table::World::recover_killed`: a claim naming the victim only while its `active`
//!    names P; once that is clear the dict consistent and unclaimed, P moved if X was
//!    popped); then a live update of X; sequential, every pair of kill points): X is in with
//!    OLD iff the pop did not commit (if it did: its entry's key and value 0, its bucket
//!    deleted, P moved), A is in; the update then replaces OLD or inserts X, as a serial
//!    order explains.
//! 3. `a_pop_beside_an_insert_loses_neither` (from {X = OLD}, the victim, killed, pops X and
//!    is recovered at once; a live insert of Y, on the part after a bounded spin on a held
//!    claim; the recovery repeated): Y is in with its value where its insert put it; X is in
//!    with OLD iff the pop did not commit, and a pop that committed took OLD.
//!    `two_pops_of_one_key_pop_it_once` (from {X = OLD}, the victim, killed, and a live one
//!    both pop X): X is gone; exactly one popped it, with OLD: the live one iff the victim did
//!    not reach its commit point.
//! 4. `a_reader_keeps_only_whole_dicts_yield_before_value` and `..._yield_before_buckets`
//!    (from {X = OLD, A}, the victim, killed, pops X; a reader; then the recovery; the reader
//!    yields once, between X's key word and its value word, or between the entries and the
//!    buckets): a kept read is a consistent dict holding {A, X = OLD} or {A}: never X with
//!    value 0; one kept at the first version is the first dict, one kept at the final version
//!    the final dict.
//!
//! Found: nothing. No model fails with every step the tree's own (unset
//! `DICT_DELETE_BROKEN`), at LOOM_MAX_PREEMPTIONS=2, 3 and 4.
//!
//! Broken variants. Nothing in `src/` was edited to break things: each broken step has a
//! local copy here, used instead of the real one only when the environment variable
//! `DICT_DELETE_BROKEN` names the variant. For example `DICT_DELETE_BROKEN=no-retry
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test -p
//! loom-tests --release --test dict_delete` must fail. Which models fail with each, at
//! LOOM_MAX_PREEMPTIONS=2, each model run on its own (a reader thread's panic aborts the test
//! binary):
//!
//! | variant | what it breaks | fails |
//! |---|---|---|
//! | `key-first` | key emptied first (commit), value stored 0 after: the old design | 1, 2a, 2b |
//! | `no-retry` | a failed seal stores 0 anyway, the pop returns its stale v | 1, 2a, 2b |
//! | `settle-ignores-seal` | the settling leaves a sealed entry's key word | 2a, 2c, 3, 4 |
//! | `no-entry-claim` | the claim not marked with the entry (step 4 skipped) | 2a, 2c, 3, 4 |
//! | `update-ignores-empty` | an update takes the empty word for a value (0 -> NEW) | 1, 2a, 2b |
//! | `no-bump` | a pop that popped leaves P unmoved | 2a, 2c, 4 |
//! | `reader-skips-publisher-in` | a reader keeps without `publisher_in` | 4 |
//!
//! (2a, 2b, 2c: the three tests of model 2 in the order listed; 3, 4: both tests.)
//!
//! How they fail: `key-first`: the pop takes OLD and the update reports it replaced OLD, and
//! X is gone: a lost update (the update CASed into the entry after its key was emptied, or
//! the pop read a stale OLD under the claim, which only the seal's CAS would have caught).
//! `no-retry`: the same report (the update's CAS came between the pop's read of OLD and its
//! seal; the pop returned OLD, not NEW). `update-ignores-empty`: the update reports it
//! replaced 0 (it CASed into a sealed entry, which the pop's finish then emptied, or which
//! stays a dead entry holding NEW). `settle-ignores-seal`, `no-entry-claim`: a pop killed
//! between its seal and its key store leaves X live with value 0 (the recovery does not know
//! or does not act on the sealed entry): the check that no recovered entry is left sealed
//! (2), X = 0 left (3, 4), a live entry with value 0 (the checker), and in model 3 the live
//! pop then pops it with value 0, after the victim popped OLD. `no-bump`: P where it was
//! after a pop (killed after its `active` was cleared, or run to its end). `reader-skips-
//! publisher-in`: a reader keeps X live with its bucket deleted (a read during the pop).
//! Not a variant: a Relaxed seal. The readers cannot tell: the deleter's `enter_publish`
//! fence (SeqCst) comes after its `active` store and before the seal, so a reader that sees
//! the empty value word and then fences (Acquire, `read_valid`) sees the `active` word
//! (fence to fence); and nothing in these models reads the claim word through the value
//! word. Loom caught nothing with it, as expected.
//!
//! What loom cannot see: as in `publish.rs` (a kill is a prefix of the victim's accesses in
//! program order; SeqCst accesses are checked as AcqRel; loom's SeqCst fences are stronger
//! than C++'s). Loom explores no switch between two Relaxed loads of one thread that follow
//! each other without a `thread::yield_now()` between them, and a `yield_now` forces a
//! switch that only a preemption undoes: the update pauses at one place per run (`Pause`:
//! nowhere, before its look, or between its look and its value load), and models 1 and 2 run
//! each. Which meetings a run sees depends on that and on which thread loom starts with: with
//! the updater in the spawning thread (as in model 2), no run without a pause saw the update
//! find the value word empty or its look miss the emptied key, and only runs without a pause
//! saw its CAS come first with no retry of the seal. The reader yields at one place per model
//! (4 runs twice). The claimants' and part takers'
//! lookups and the recoverer's loads have no yields. Loom 0.7 also admits executions C++
//! forbids: a plain store may land in the modification order between the read and the write
//! of another thread's RMW (tokio-rs/loom#254 and #389; PR #391 open). No model fails with
//! the tree's steps; with the planted `key-first` and `update-ignores-empty` the first
//! failing run left NEW in X's dead entry where C++ would leave 0 (the finish's store of 0
//! after the update's CAS), so `explained` checks the pop's and the update's reports
//! (failing alike either way) before the table. Waiters spin with `yield_now`; a claimant
//! looks at a held claim `SPIN_LOOKS` more times. The part path's entry words past
//! `nentries` are stored unlogged; its bucket, key, value, `nentries` and `used` stores are
//! logged (four at most).
//!
//! Not modelled: the looks before the announcements (the delete's, which leaves a key it does
//! not see, or whose value is not an inline word, to the part path; the update's, and its
//! hint: `dict_insert.rs` model 6 has them); values that are blocks: a pop that finds one
//! under the claim withdraws to the part path (copied here, never taken), and one whose seal
//! fails on a block (a value publication that stores a block over an inline word, without
//! the claim) settles its own claim and goes to the part path in `claim_and_delete`, which
//! `delete_steps` here does not copy (it asserts no such word is met); `pop`'s fallback
//! store-wide (under the writer lock: modelled as the part path `del` takes); `Dict.incr`
//! (the same value publication with another `f`); the recovery of a killed updater's
//! recoverer; objects, caches, a growth, and a claim left by a process whose lock file is
//! gone (settled by the next change on the part, `settle_insert_claim(None)`).
//!
//! Cost (release build, this 2-core machine, each model on its own, in the order above):
//! at LOOM_MAX_PREEMPTIONS=2, 0.1 s; 24 s (41 victim kill points, 1217 + 1209 + 1209
//! (victim, recoverer) pairs over the three pauses), 6 s (70 + 65 + 69 kill points), 0.2 s
//! (37 victim kill points, 1031 pairs); 0.15 s (40), 0.15 s (39); 1.5 s and 1.2 s (37 each):
//! about 35 s in all. At 3: 0.3, 76, 13, 0.2, 0.4, 0.4, 3.3, 3.3 s. At 4: 0.7, 182, 27, 0.2,
//! 0.4, 0.4, 2.8, 3.3 s. All passing.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::dict_table::{
    as_victim, bucket, entry, hash, is_inline, probe, spawn_victim, Kind, Outcome, Participant,
    Table, World, A, BUCKET0, CAP, CLAIM, KEY, NBUCKETS, NENTRIES, USED, VALUE, WORDS, X, Y,
};
use loom_tests::publication::{self, gate, read_validated, Spin, OTHER, P, THIRD, VICTIM};
use loom_tests::{every_kill_pair, every_kill_point, model, Budget, Planted};
use persist::part_lock::{
    bump_version, insert_claimant, published_part, publishing, settle_insert_claim, BUCKET_DELETED,
};
use persist::sync::{AccessError, Liveness, MemWords, Ordering, WordStore};
use std::cell::Cell;
use std::collections::BTreeMap;

// ---- broken variants ----------------------------------------------------------------------------

static BROKEN: Planted = Planted::new(
    "DICT_DELETE_BROKEN",
    &[
        "key-first",
        "no-retry",
        "settle-ignores-seal",
        "no-entry-claim",
        "update-ignores-empty",
        "no-bump",
        "reader-skips-publisher-in",
    ],
);

/// Whether `DICT_DELETE_BROKEN` names `variant` (module doc).
fn broken(variant: &str) -> bool {
    BROKEN.is(variant)
}

// ---- the dict -----------------------------------------------------------------------------------

/// The value a key holds at first, or is inserted with (an inline word: never 0, low four
/// bits not 0).
fn value_of(key: u64) -> u64 {
    100 + key
}

/// X's value before anything: what a pop of X returns if it comes first.
const OLD: u64 = 117;
/// The value an update stores in X (an inline word).
const NEW: u64 = 0x201;
const _: () = assert!(OLD == 100 + X && NEW & 0xf != 0);

/// A dict (`loom_tests::dict_table`'s table) holding `keys`, in entries 0.. in that order,
/// each in the first free bucket of its probe sequence, with its value (`value_of`);
/// recovered by `recover` below.
fn dict_of(keys: &[u64]) -> World {
    let entries: Vec<(u64, u64)> = keys.iter().map(|&k| (k, value_of(k))).collect();
    World::new(Kind::Dict, recover::<MemWords>, &entries, &[])
}

/// The key's value, if the dict holds it.
fn value_in(live: &BTreeMap<u64, (u64, u64)>, key: u64) -> Option<u64> {
    live.get(&key).map(|&(_, v)| v)
}

// ---- the recovery -------------------------------------------------------------------------------

/// `part_lock::settle_insert_claim`, or its broken copy (`settle-ignores-seal`: the key word
/// of the entry a delete claim names is left as it is when its value word is 0).
fn settle<W: WordStore>(store: &W, claimant: Option<u32>) -> Result<(), AccessError> {
    if !broken("settle-ignores-seal") {
        return settle_insert_claim(store, WORDS, claimant);
    }
    let word = store.load(CLAIM, Ordering::Acquire)?;
    if word == 0 || (claimant.is_some() && insert_claimant(word) != claimant) {
        return Ok(());
    }
    let n = store.load(NENTRIES, Ordering::Relaxed)?.min(CAP);
    for i in 0..NBUCKETS {
        let b = store.load(bucket(i), Ordering::Relaxed)?;
        if (1..=n).contains(&b) && store.load(entry(b - 1) + KEY, Ordering::Relaxed)? == 0 {
            store.step()?;
            store.store(bucket(i), BUCKET_DELETED, Ordering::Relaxed)?;
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
    store.step()?;
    store.store(USED, live, Ordering::Relaxed)?;
    store.step()?;
    let _ = store.cas(CLAIM, word, 0, Ordering::Release, Ordering::Relaxed)?;
    Ok(())
}

/// Recovers dead slot `dead` as slot `by` would (`object/recovery.rs`, `Kind::Dict`): a
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
    assert_eq!(part, P, "a publication under a part that is not the dict's");
    let claim = store.load(CLAIM, Ordering::Acquire)?;
    if insert_claimant(claim) == Some(dead) {
        settle(store, Some(dead))?;
    }
    bump_version(store, part)?;
    recover_dead()
}

// ---- the insert (an insert publication, and an insert on the part) ------------------------------

/// `Store::claim_and_insert`: the claim taken, the key looked up (present: the claim
/// dropped, `Present`; no room: dropped, give up), the entry staged, committed and finished
/// (`part_lock.rs`'s own steps). None: gave up.
fn claim_and_insert<W: WordStore>(
    p: &Participant<'_, W>,
    key: u64,
    value: u64,
    landed: &Cell<Option<u64>>,
) -> Result<Option<Outcome>, AccessError> {
    if !p.claim_entries(|| p.parts.claim_insert(CLAIM))? {
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
        p.parts.unclaim_insert(CLAIM)?;
        return Ok(l.found.map(|_| Outcome::Present));
    };
    let written = p
        .parts
        .insert_entry_stage(WORDS, l.n, b, hash(key), value)
        .and_then(|()| p.parts.insert_entry_commit(WORDS, l.n, key))
        .and_then(|()| {
            landed.set(Some(l.n));
            p.parts.insert_entry_finish(WORDS, l.used)
        });
    if let Err(e) = written {
        // A vanished page: settled (the claim is ours). (Killed, this fails at once.)
        let _ = settle(p.store, Some(p.slot));
        return Err(e);
    }
    Ok(Some(Outcome::Inserted))
}

/// An insert with the part held (`dict_insert_new`): the key looked up (present: nothing
/// changed), the claim found clear (a claim would be settled, `settle_insert_claim(None)`;
/// none can be left after the wait for publishers here), the entry written past the end
/// (unlogged here: nothing reads it until `nentries` counts it), its bucket, `nentries` and
/// `used` logged and written, committed (`committed` called right after, with the entry).
fn insert_held<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    value: u64,
    committed: impl FnOnce(u64),
) -> Result<Outcome, AccessError> {
    let claim = p.load(CLAIM)?;
    assert_eq!(
        claim, 0,
        "a part change found the dict claimed after its wait: {claim:#x}"
    );
    let l = p.lookup(key, false)?;
    if l.found.is_some() {
        return Ok(Outcome::Present);
    }
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
    committed(l.n);
    Ok(Outcome::Inserted)
}

/// An insert (`d[k] = v` of a missing key): as a publication (`publish_dict_insert`, under
/// P), or, if that gives up, on the part (taken, waiting for publishers).
fn insert<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    value: u64,
    landed: &Cell<Option<u64>>,
) -> Result<Outcome, AccessError> {
    if p.load(NENTRIES)? < CAP {
        let published = p.publish(
            || claim_and_insert(p, key, value, landed),
            |out| *out == Some(Outcome::Inserted),
        )?;
        if let Some(out) = published {
            return Ok(out);
        }
    }
    assert_eq!(landed.get(), None);
    p.enter()?;
    let held = p.take(P, true)?;
    let out = insert_held(p, key, value, |e| landed.set(Some(e)))?;
    p.parts.end(&[held], true, &Spin)?;
    Ok(out)
}

// ---- the delete ---------------------------------------------------------------------------------

/// Dict delete steps 4 to 7 on entry `e` named by bucket `b`, whose value the look under the
/// claim read as `v`, `used` read under the claim, or their broken copies: the claim names
/// `e` (`delete_claim_entry`), the value word sealed (`delete_value_commit`, retried from
/// the word a value publication put there: THE COMMIT POINT), the key word emptied
/// (`delete_entry_commit`), the rest finished (`delete_entry_finish`). `popped` is set right
/// after the seal (the commit point) to the value it took.
fn delete_steps<W: WordStore>(
    p: &Participant<'_, W>,
    b: u64,
    e: u64,
    mut v: u64,
    used: u64,
    popped: &Cell<Option<u64>>,
) -> Result<(), AccessError> {
    if broken("key-first") {
        // The old design: the key word emptied first (the commit point), the value word
        // stored 0 by the finish.
        p.parts.delete_entry_commit(WORDS, e)?;
        popped.set(Some(v));
        return p.parts.delete_entry_finish(WORDS, b, e, used);
    }
    if !broken("no-entry-claim") {
        p.parts.delete_claim_entry(WORDS, e)?;
    }
    loop {
        match p.parts.delete_value_commit(WORDS, e, v)? {
            Ok(()) => break,
            Err(_) if broken("no-retry") => {
                // The stale value taken for the popped one, the word emptied anyway.
                p.set(entry(e) + VALUE, 0, Ordering::Release)?;
                break;
            }
            Err(now) if is_inline(now) => v = now,
            // `claim_and_delete` leaves the delete to the part path then (damage); nothing
            // in these models stores such a word.
            Err(now) => panic!("a delete under the claim found value word {now:#x}"),
        }
    }
    popped.set(Some(v));
    p.parts.delete_entry_commit(WORDS, e)?;
    p.parts.delete_entry_finish(WORDS, b, e, used)
}

/// `Store::claim_and_delete` (`Kind::Dict`): the claim taken (held by another, `SPIN_LOOKS`
/// more looks, then give up: None), the key looked up (missing: the claim dropped,
/// `Some(None)`), its value read (not an inline word: dropped, give up), `delete_steps`
/// (`Some(Some(popped))`). A failed step settles the claim as a dead deleter's would be
/// settled.
fn claim_and_delete<W: WordStore>(
    p: &Participant<'_, W>,
    key: u64,
    popped: &Cell<Option<u64>>,
) -> Result<Option<Option<u64>>, AccessError> {
    if !p.claim_entries(|| p.parts.claim_insert(CLAIM))? {
        return Ok(None);
    }
    let found = p.lookup(key, false).and_then(|l| match l.found {
        Some((b, e)) => Ok(Some((l, b, e, p.load(entry(e) + VALUE)?))),
        None => Ok(None),
    });
    let (l, b, e, v) = match found {
        Ok(Some(f)) if is_inline(f.3) => f,
        Ok(Some(_)) => {
            p.parts.unclaim_insert(CLAIM)?;
            return Ok(None);
        }
        Ok(None) => {
            p.parts.unclaim_insert(CLAIM)?;
            return Ok(Some(None));
        }
        Err(err) => {
            p.parts.unclaim_insert(CLAIM)?;
            return Err(err);
        }
    };
    if let Err(err) = delete_steps(p, b, e, v, l.used, popped) {
        // A vanished page: settled (the claim is ours). (Killed, this fails at once.)
        let _ = settle(p.store, Some(p.slot));
        return Err(err);
    }
    Ok(Some(popped.get()))
}

/// A pop on the part (`dict_del`, `delete_entry`): the part taken (waiting for publishers,
/// recovering dead ones), the claim found clear, the key looked up (missing: nothing
/// changed, None), its value read, its bucket deleted, key and value emptied, `used` one less
/// (logged), committed (`popped` set), the part released.
fn pop_on_part<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    popped: &Cell<Option<u64>>,
) -> Result<Option<u64>, AccessError> {
    p.enter()?;
    let held = p.take(P, true)?;
    let claim = p.load(CLAIM)?;
    assert_eq!(
        claim, 0,
        "a part change found the dict claimed after its wait: {claim:#x}"
    );
    let l = p.lookup(key, false)?;
    let Some((b, e)) = l.found else {
        p.parts.end(&[held], true, &Spin)?;
        return Ok(None);
    };
    let v = p.load(entry(e) + VALUE)?;
    p.put(bucket(b), BUCKET_DELETED)?;
    p.put(entry(e) + KEY, 0)?;
    p.put(entry(e) + VALUE, 0)?;
    p.put(USED, l.used - 1)?;
    p.commit()?;
    popped.set(Some(v));
    p.parts.end(&[held], true, &Spin)?;
    Ok(Some(v))
}

/// A pop (`d.pop(k)`, `del d[k]`): as a publication (`publish_dict_delete`: announced under P,
/// `claim_and_delete`, ended with P moved by 2 if it popped; broken, `no-bump`: never), or on
/// the part if that gives up. The value popped (None: no such key).
fn pop<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    popped: &Cell<Option<u64>>,
) -> Result<Option<u64>, AccessError> {
    let published = p.publish(
        || claim_and_delete(p, key, popped),
        |out| matches!(out, Some(Some(_))) && !broken("no-bump"),
    )?;
    if let Some(out) = published {
        return Ok(out);
    }
    assert_eq!(popped.get(), None);
    pop_on_part(p, key, popped)
}

/// What a pop did (None: killed first), and the value it took at its commit point (set there,
/// so that a victim killed later keeps it).
#[derive(Debug)]
struct Popped {
    out: Option<Option<u64>>,
    popped: Option<u64>,
}

/// The victim popping `key`, killed after `k` accesses; and its accesses.
fn victim_pop(world: &World, k: u64, key: u64) -> (Popped, u64) {
    let popped = Cell::new(None);
    let (out, spent) = as_victim(world, VICTIM, k, |p| pop(p, key, &popped));
    if let Some(out) = out {
        assert_eq!(out, popped.get());
    }
    (
        Popped {
            out,
            popped: popped.get(),
        },
        spent,
    )
}

/// A live participant in `slot` pops `key`: the value popped.
fn live_pop(world: &World, slot: u32, key: u64) -> Option<u64> {
    let mut p = Participant::new(world, &world.lock_file, &world.store, slot).unwrap();
    let popped = Cell::new(None);
    let out = pop(&mut p, key, &popped).unwrap();
    assert_eq!(out, popped.get());
    out
}

// ---- the update ---------------------------------------------------------------------------------

/// What an update of a key (`d[k] = new`) did: replaced the value it found (`Replaced(old)`,
/// by a value publication or on the part), or inserted the key, missing (on the part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Updated {
    Replaced(u64),
    Inserted,
}

/// Where a value publication has a scheduling point (`thread::yield_now`, no effect on the
/// words): loom explores no switch between two Relaxed loads of one thread that follow each
/// other without one (module doc), and a `yield_now` forces a switch that only a preemption
/// undoes, so each run of a model places one at most, and the models run each place.
#[derive(Clone, Copy, Debug)]
enum Pause {
    /// None: the look and the value load run on from the announcement.
    Never,
    /// After the announcement, before the look (a delete may end in between: the look
    /// misses the key).
    BeforeLook,
    /// Between the look (its last load: the key word) and the load of the value word (a
    /// delete may seal in between: the value word is empty).
    BeforeValue,
}

const PAUSES: [Pause; 3] = [Pause::Never, Pause::BeforeLook, Pause::BeforeValue];

/// A look for `key` as `Store::dict_value_at` makes it without the part or the claim (a value
/// publication's, no hint): `used` and `nentries` (`dict_parts`), then a probe (`find`, which
/// reads `nentries` again before it takes a bucket past the count for damage). The entry.
fn look<W: WordStore>(p: &Participant<'_, W>, key: u64) -> Result<Option<u64>, AccessError> {
    // Relaxed (all): as the object layer's `get`.
    let _used = p.load(USED)?;
    let n = p.load(NENTRIES)?;
    for i in probe(hash(key)) {
        let b = p.load(bucket(i))?;
        if b == 0 {
            break;
        }
        if b != BUCKET_DELETED {
            let e = b - 1;
            if e >= n && e >= p.load(NENTRIES)? {
                panic!("a value publication's look found bucket {i} naming entry {e} past {n}");
            }
            if p.load(entry(e))? == hash(key) && p.load(entry(e) + KEY)? == key {
                return Ok(Some(e));
            }
        }
    }
    Ok(None)
}

/// `Store::publish_dict_value` of `new` for `key`: the announcement under P, the look, the
/// value word read, then while it is an inline word (broken, `update-ignores-empty`: or the
/// empty word) the CAS from it (`Parts::publish`; failed: again from the word found), the end
/// of the publication (P moved by 2 if it replaced). None: not published (the key missing,
/// its value word empty or a block, or the gate closed), the part path's turn. `done` is set
/// at the successful CAS (the commit point). A scheduling point where `pause` says.
fn publish_update<W: WordStore>(
    p: &Participant<'_, W>,
    key: u64,
    new: u64,
    pause: Pause,
    done: &Cell<Option<Updated>>,
) -> Result<Option<Updated>, AccessError> {
    p.publish(
        || {
            if let Pause::BeforeLook = pause {
                thread::yield_now();
            }
            let Some(e) = look(p, key)? else {
                return Ok(None);
            };
            let at = entry(e) + VALUE;
            if let Pause::BeforeValue = pause {
                thread::yield_now();
            }
            let mut old = p.load(at)?;
            loop {
                let empty_taken = old == 0 && broken("update-ignores-empty");
                if !is_inline(old) && !empty_taken {
                    return Ok(None);
                }
                match p.parts.publish(at, old, new)? {
                    Ok(()) => {
                        done.set(Some(Updated::Replaced(old)));
                        return Ok(Some(Updated::Replaced(old)));
                    }
                    Err(now) => old = now,
                }
            }
        },
        |out| out.is_some(),
    )
}

/// An update on the part (`dict_set`): the part taken (waiting for publishers, recovering
/// dead ones), the key looked up: present, its value word replaced (logged), committed;
/// missing, inserted (`insert_held`). `done` is set at the commit.
fn update_on_part<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    new: u64,
    done: &Cell<Option<Updated>>,
) -> Result<Updated, AccessError> {
    p.enter()?;
    let held = p.take(P, true)?;
    let out = match p.lookup(key, false)?.found {
        Some((_, e)) => {
            let old = p.load(entry(e) + VALUE)?;
            p.put(entry(e) + VALUE, new)?;
            p.commit()?;
            done.set(Some(Updated::Replaced(old)));
            Updated::Replaced(old)
        }
        None => {
            let out = insert_held(p, key, new, |_| done.set(Some(Updated::Inserted)))?;
            assert_eq!(out, Outcome::Inserted);
            Updated::Inserted
        }
    };
    p.parts.end(&[held], true, &Spin)?;
    Ok(out)
}

/// An update: as a value publication, or on the part if that is not published.
fn update<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    new: u64,
    pause: Pause,
    done: &Cell<Option<Updated>>,
) -> Result<Updated, AccessError> {
    if let Some(out) = publish_update(p, key, new, pause, done)? {
        return Ok(out);
    }
    assert_eq!(done.get(), None);
    update_on_part(p, key, new, done)
}

/// A live participant in `slot` updates `key` to `new` (pausing where `pause` says).
fn live_update(world: &World, slot: u32, key: u64, new: u64, pause: Pause) -> Updated {
    let mut p = Participant::new(world, &world.lock_file, &world.store, slot).unwrap();
    let done = Cell::new(None);
    let out = update(&mut p, key, new, pause, &done).unwrap();
    assert_eq!(Some(out), done.get());
    out
}

/// The victim updating `key` to `new`, killed after `k` accesses: what it did by its commit
/// point (None: it died before), whether it ran to its end, and its accesses.
fn victim_update(
    world: &World,
    k: u64,
    key: u64,
    new: u64,
    pause: Pause,
) -> (Option<Updated>, bool, u64) {
    let done = Cell::new(None);
    let (out, spent) = as_victim(world, VICTIM, k, |p| update(p, key, new, pause, &done));
    if let Some(out) = out {
        assert_eq!(Some(out), done.get());
    }
    (done.get(), out.is_some(), spent)
}

// ---- the serial orders --------------------------------------------------------------------------

/// The dict a pop of X and an update of X to NEW leave, from X = OLD, given what each did
/// (None: it did not happen; a dead one that did not reach its commit point), must be the one
/// a serial order explains: the pop alone (X absent, OLD popped), the update alone (X = NEW,
/// OLD replaced), the update then the pop (X absent, NEW popped, OLD replaced), or the pop then
/// the update (X = NEW, OLD popped, X inserted). `others` are the other keys' values, which
/// must be as they are. X is looked up first (`Table::find`) and the serial order checked,
/// then the dict (`Table::live`): so that an execution loom admits although C++ does not
/// (module doc, "What loom cannot see") is not the one a broken variant is reported by.
fn explained(
    world: &World,
    pop: Option<u64>,
    upd: Option<Updated>,
    others: &[(u64, u64)],
) -> BTreeMap<u64, (u64, u64)> {
    use Updated::*;
    let table = world.table();
    let x = table.find(X).map(|e| table.entries[e as usize][2]);
    let expected = match (pop, upd) {
        (None, None) => Some(OLD),
        (None, Some(Replaced(OLD))) => Some(NEW),
        (Some(OLD), None) => None,
        (Some(NEW), Some(Replaced(OLD))) => None,
        (Some(OLD), Some(Inserted)) => Some(NEW),
        _ => panic!(
            "no serial order explains a pop that took {pop:?} and an update that did {upd:?} \
             ({table:?})"
        ),
    };
    assert_eq!(
        x, expected,
        "a pop that took {pop:?} and an update that did {upd:?} left X = {x:?} ({table:?})"
    );
    let live = world.live();
    for &(k, v) in others {
        assert_eq!(value_in(&live, k), Some(v), "{k} lost ({live:?})");
    }
    assert_eq!(
        live.len(),
        others.len() + x.is_some() as usize,
        "keys that nobody put there ({live:?})"
    );
    live
}

// ---- 1. an update and a pop of one key, both live -----------------------------------------------

/// From a dict holding X = OLD, a live participant pops X while another updates X to NEW
/// (a value publication, or on the part), the updater pausing at each place in turn
/// (`PAUSES`), and each of the two in the spawned thread in turn (loom starts with the
/// spawning thread). X was there for the pop in either order, so it pops; the pop's value
/// and the dict are one serial order's (`explained`).
#[test]
fn an_update_and_a_pop_of_one_key_serialize() {
    for pause in PAUSES {
        for updater_spawned in [false, true] {
            model(move || {
                let world = Arc::new(dict_of(&[X]));
                let (upd, popped) = if updater_spawned {
                    let updater = {
                        let world = world.clone();
                        thread::spawn(move || live_update(&world, OTHER, X, NEW, pause))
                    };
                    let popped = live_pop(&world, VICTIM, X);
                    (updater.join().unwrap(), popped)
                } else {
                    let popper = {
                        let world = world.clone();
                        thread::spawn(move || live_pop(&world, VICTIM, X))
                    };
                    let upd = live_update(&world, OTHER, X, NEW, pause);
                    (upd, popper.join().unwrap())
                };
                assert!(popped.is_some(), "X was there for the pop in either order");
                explained(&world, popped, Some(upd), &[]);
                world.assert_quiet();
            });
        }
    }
}

// ---- 2. a killed pop (and its killed recoverer) beside an update --------------------------------

/// `dict_table::World::recover_killed` beside live participants: the first recovery of the
/// dead victim by a third participant killed after `k` accesses, holding the dead slot's
/// recovery lock (the kernel's, dropped at the recoverer's death) while it runs and while
/// what it left is looked at: a claim naming the victim exists only while the victim's
/// `active` still names P; and once that `active` is clear, no entry is left sealed (X's
/// entry: value word 0 with its key word kept) and, if the pop committed, P moved. (The
/// whole table is checked at the end: a live updater may be changing it now.) The
/// recoverer's accesses.
fn recover_killed_beside(world: &World, k: u64, committed: bool) -> u64 {
    world.inside.leave_change(VICTIM);
    let _one_at_a_time = world.recovery.lock().unwrap();
    let budget = Budget::new(k);
    let (lock_file, store) = world.killable(&budget);
    if let Err(e) = recover(&lock_file, &store, THIRD, VICTIM) {
        assert!(budget.killed(), "the recoverer failed unkilled: {e}");
    }
    let active = world.active(VICTIM);
    let claim = world.word(CLAIM);
    if insert_claimant(claim) == Some(VICTIM) {
        assert_eq!(
            active,
            publishing(P),
            "the dead deleter's claim outlived the active word that leads to it"
        );
    }
    if active == 0 {
        let (key, value) = (world.word(entry(0) + KEY), world.word(entry(0) + VALUE));
        assert!(
            key == 0 || value != 0,
            "a recovered pop left X's entry sealed: key {key}, value 0"
        );
        if committed {
            assert_ne!(world.word(P), 0, "a recovered pop left the version unmoved");
        }
    }
    budget.spent()
}

/// `loom_tests::every_kill_pair`, for a scenario whose accesses depend on the interleaving:
/// the kill points are counted as the most over every interleaving loom explores (not as the
/// last one's).
fn every_kill_pair_beside(scenario: fn(u64, u64) -> (u64, u64)) {
    let run = |k1: u64, k2: u64| {
        let most = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
        let m = most.clone();
        model(move || {
            let (a, b) = scenario(k1, k2);
            let mut m = m.lock().unwrap();
            *m = (m.0.max(a), m.1.max(b));
        });
        let r = *most.lock().unwrap();
        r
    };
    let (n1, _) = run(u64::MAX, u64::MAX);
    let mut pairs = 0;
    for k1 in 0..=n1 {
        let (_, n2) = run(k1, u64::MAX);
        for k2 in 0..n2 {
            run(k1, k2);
        }
        pairs += n2 + 1;
    }
    if std::env::var_os("LOOM_TESTS_VERBOSE").is_some() {
        eprintln!("{n1} victim kill points, {pairs} (victim, recoverer) kill-point pairs");
    }
}

/// From a dict holding X = OLD and A, the victim (killed before each of its accesses) pops X
/// while a live participant updates X to NEW; the dead victim's first recoverer (its thread,
/// a third participant) is killed before each of its accesses (`recover_killed_beside`),
/// and a second recovery follows at once (and another after the join; the updater's part
/// path recovers the dead it waits for too). The dict is one serial order's in which the
/// dead pop happened entirely (it reached its commit point: with the value it sealed) or
/// not at all; a victim that ran to its end popped.
#[test]
fn a_killed_pop_beside_an_update_is_whole_or_absent() {
    fn scenario<const PAUSE: usize>(k1: u64, k2: u64) -> (u64, u64) {
        let world = Arc::new(dict_of(&[X, A]));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let (x, spent) = victim_pop(&world, k1, X);
                let mut recoverer_spent = 0;
                if !world.live.is_alive(VICTIM) {
                    recoverer_spent = recover_killed_beside(&world, k2, x.popped.is_some());
                    world.recover_live(THIRD, VICTIM);
                }
                (x, spent, recoverer_spent)
            })
        };
        let upd = live_update(&world, OTHER, X, NEW, PAUSES[PAUSE]);
        let (x, spent, recoverer_spent) = victim.join().unwrap();
        world.recover_again();
        if x.out.is_some() {
            assert!(
                x.popped.is_some(),
                "the pop ran to its end and popped nothing"
            );
        }
        explained(&world, x.popped, Some(upd), &[(A, value_of(A))]);
        world.assert_quiet();
        (spent, recoverer_spent)
    }
    every_kill_pair_beside(scenario::<0>);
    every_kill_pair_beside(scenario::<1>);
    every_kill_pair_beside(scenario::<2>);
}

/// From a dict holding X = OLD, the victim (killed before each of its accesses, then
/// recovered at once by a third participant) updates X to NEW while a live participant pops
/// X; then the recovery is repeated. The dict is one serial order's in which the dead update
/// happened entirely (it reached its commit point: its CAS, or its commit on the part) or not
/// at all; the pop found X in either order.
#[test]
fn a_killed_update_beside_a_pop_is_whole_or_absent() {
    fn scenario<const PAUSE: usize>(k: u64) -> u64 {
        let world = Arc::new(dict_of(&[X]));
        let victim = spawn_victim(&world, move |world| {
            victim_update(world, k, X, NEW, PAUSES[PAUSE])
        });
        let popped = live_pop(&world, OTHER, X);
        let (upd, ran, spent) = victim.join().unwrap();
        world.recover_again();
        assert!(!ran || upd.is_some(), "the update ran to its end undone");
        assert!(popped.is_some(), "X was there for the pop in either order");
        explained(&world, popped, upd, &[]);
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario::<0>);
    every_kill_point(scenario::<1>);
    every_kill_point(scenario::<2>);
}

/// From a dict holding X = OLD and A, the victim (killed before each of its accesses) pops X;
/// its first recoverer is killed before each of its accesses, a second one finishes
/// (`dict_table::World::recover_killed`: after the first recoverer's death a claim naming
/// the victim exists only while the victim's `active` names P, and once that `active` is
/// clear the dict is settled, consistent and unclaimed, and, if X was popped, P moved); then
/// a live participant updates X to NEW. Sequential (one interleaving per pair of kill
/// points). After the recovery X is in (with OLD) iff the pop did not commit (if it did: its
/// entry a deleted one, key and value 0, its bucket deleted), A is in; the update then
/// replaces OLD, or inserts X.
#[test]
fn a_recoverer_killed_anywhere_settles_the_pop() {
    fn scenario(k1: u64, k2: u64) -> (u64, u64) {
        let world = dict_of(&[X, A]);
        let (x, spent) = victim_pop(&world, k1, X);
        let mut recoverer_spent = 0;
        if !world.live.is_alive(VICTIM) {
            recoverer_spent =
                world.recover_killed(k2, |l, s, by, d| recover(l, s, by, d), x.popped.is_some());
        }
        if x.out.is_some() {
            assert_eq!(x.popped, Some(OLD));
        }
        explained(&world, x.popped, None, &[(A, value_of(A))]);
        if x.popped.is_some() {
            let d = world.table();
            assert_eq!(d.entries[0][1..], [0, 0], "X's entry is not a deleted one");
            assert_eq!(
                d.buckets[1], BUCKET_DELETED,
                "X's bucket is not deleted: {d:?}"
            );
            assert_ne!(world.word(P), 0, "a pop left the version unmoved");
        }
        world.assert_quiet();
        let upd = live_update(&world, OTHER, X, NEW, Pause::Never);
        explained(&world, x.popped, Some(upd), &[(A, value_of(A))]);
        world.assert_quiet();
        (spent, recoverer_spent)
    }
    every_kill_pair(scenario);
}

// ---- 3. a pop beside an insert of another key, and two pops of one key --------------------------

/// From a dict holding X = OLD, the victim (killed before each of its accesses, then
/// recovered at once by a third participant) pops X while a live participant inserts Y (both
/// on bucket 1; the claim is held by one of them at a time, the other spins a bounded time and
/// goes to the part, which waits for the claimant and recovers it if dead); then the recovery
/// is repeated. Y is in with its value, where its insert put it; X is in (with OLD) iff the pop
/// did not commit, and the pop took OLD; a victim that ran to its end popped.
#[test]
fn a_pop_beside_an_insert_loses_neither() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(dict_of(&[X]));
        let victim = spawn_victim(&world, move |world| victim_pop(world, k, X));
        let y = {
            let mut p = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
            let landed = Cell::new(None);
            let out = insert(&mut p, Y, value_of(Y), &landed).unwrap();
            assert_eq!(out, Outcome::Inserted);
            landed.get().expect("Y landed")
        };
        let (x, spent) = victim.join().unwrap();
        world.recover_again();
        if x.out.is_some() {
            assert!(
                x.popped.is_some(),
                "the pop ran to its end and popped nothing"
            );
        }
        let live = explained(&world, x.popped, None, &[(Y, value_of(Y))]);
        assert_eq!(live[&Y].0, y, "Y is not where its insert put it ({live:?})");
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

/// From a dict holding X = OLD, the victim (killed before each of its accesses, then
/// recovered at once) and a live participant both pop X. X is gone; exactly one of them
/// popped it, with OLD: the live one iff the victim did not reach its commit point.
#[test]
fn two_pops_of_one_key_pop_it_once() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(dict_of(&[X]));
        let victim = spawn_victim(&world, move |world| victim_pop(world, k, X));
        let other = live_pop(&world, OTHER, X);
        let (x, spent) = victim.join().unwrap();
        world.recover_again();
        let live = world.live();
        assert!(live.is_empty(), "X is left in the dict: {live:?}");
        let expected = if x.popped.is_some() {
            (Some(OLD), None)
        } else {
            (None, Some(OLD))
        };
        assert_eq!(
            (x.popped, other),
            expected,
            "the victim popped {:?} (out {:?}), the live one {other:?}",
            x.popped,
            x.out
        );
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 4. a reader --------------------------------------------------------------------------------

/// One unlocked read of the dict under P as the object layer validates it (`read_validated`):
/// the words read in `dict_parts`'s order, then validated (`publisher_in`, P unchanged;
/// broken, `reader-skips-publisher-in`: P unchanged only). A scheduling point (only) before
/// the load of word `yield_before` (set_delete.rs explains why one place per run).
fn read_dict(world: &World, slot: u32, yield_before: u64) -> Option<(u64, Table)> {
    let publisher_in = !broken("reader-skips-publisher-in");
    read_validated(world, slot, publisher_in, || {
        // Relaxed (all): validated after.
        Table::read(|at| {
            if at == yield_before {
                thread::yield_now();
            }
            world.word(at)
        })
    })
}

/// The victim (killed before each of its accesses) pops X from a dict holding X = OLD and A
/// while a reader reads the dict (yielding before the load of word `YIELD_BEFORE`); then the
/// victim is recovered. A kept read is a consistent dict (`Table::live`, `Kind::Dict`: no live
/// entry with value word 0) holding A and X = OLD, or A; one that validated against the first
/// version is the first dict, one that validated against the final version the final one.
fn reader_scenario<const YIELD_BEFORE: u64>(k: u64) -> u64 {
    let world = Arc::new(dict_of(&[X, A]));
    let first = world.live();
    let reader = {
        let world = world.clone();
        thread::spawn(move || read_dict(&world, THIRD, YIELD_BEFORE))
    };
    let (x, spent) = victim_pop(&world, k, X);
    world.recover_again();
    let last = explained(&world, x.popped, None, &[(A, value_of(A))]);
    if x.popped.is_some() {
        assert_ne!(world.word(P), 0, "a pop left the version unmoved");
    }
    if let Some((v, seen)) = reader.join().unwrap() {
        let kept = seen
            .live(Kind::Dict)
            .unwrap_or_else(|e| panic!("a reader kept an inconsistent dict: {e}"));
        let values: Vec<(u64, u64)> = kept.iter().map(|(&k, &(_, v))| (k, v)).collect();
        assert!(
            values == [(A, value_of(A)), (X, OLD)] || values == [(A, value_of(A))],
            "a reader kept {values:?}"
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

/// `reader_scenario`, the reader yielding between X's key word and its value word (the pop's
/// seal and its key store on either side).
#[test]
fn a_reader_keeps_only_whole_dicts_yield_before_value() {
    every_kill_point(reader_scenario::<{ loom_tests::dict_table::ENTRY0 + VALUE }>);
}

/// `reader_scenario`, the reader yielding between the entries and the buckets (the pop's key
/// store and bucket store on either side).
#[test]
fn a_reader_keeps_only_whole_dicts_yield_before_buckets() {
    every_kill_point(reader_scenario::<BUCKET0>);
}
