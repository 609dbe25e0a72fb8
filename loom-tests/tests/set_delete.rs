//! Delete publications of a set's member (`persist::part_lock`: `claim_insert`,
//! `delete_entry_commit`, `delete_entry_finish`, `unclaim_insert`, `settle_insert_claim`): a
//! `discard`/`remove` of an inline member from a set that takes no part lock, beside adds
//! (insert publications), another deleter, part takers, readers, and the recoverer of a
//! deleter killed anywhere (itself killed anywhere, and repeated). The companion of
//! `dict_insert.rs`, with which it shares the table, its checker and the control flow both
//! copy alike (`loom_tests::dict_table`).
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
//! (`end_publish`: P moved by 2 unless held, `active` 0). Not modelled: the look without the
//! claim before the announcement (a member it does not see is left to the part path), and the
//! withdrawal under the claim from an entry with a value word (damage). The adds are
//! `dict_insert.rs`'s inserts with value word 0 (`publish_set_add`: a look at `nentries`, the announcement, the
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
//! `nentries` and claim words and its version word P: `loom_tests::dict_table`'s table, as
//! in `dict_insert.rs`. Members are small inline words whose hash is the member itself, all
//! on bucket 1 (probe sequence 1, 6, 7, 4, ...). The probe is `object/dict.rs`'s rule
//! (`find`: a key-0 entry matches nothing; `free_bucket`: the first empty or deleted
//! bucket), written again in `loom_tests::dict_table`. Every word step of a delete, an add
//! and a settling is `part_lock.rs`'s own; the control flow around them is copied: the
//! bounded claim, the lookup under the claim or the part, the part taken with its wait for
//! publishers, a publication under P, the victim's thread and the killed recoverer of model 3
//! are shared (`loom_tests::dict_table`), the rest (the add, the delete, the settling and the
//! recovery, with the bugs planted in them) is here.
//!
//! The models (a deleter marked "killed" is killed before each of its word accesses through
//! the killable word store, and also runs to its end; "committed" means it reached the store
//! of the empty key; "the set is consistent" is `Table::live` (`Kind::Set`): `nentries` within the table,
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
use loom::thread;
use loom_tests::dict_table::{
    as_victim, bucket, entry, hash, spawn_victim, Kind, Outcome, Participant, Table, World, A, B,
    BUCKET0, CAP, CLAIM, ENTRY0, KEY, NBUCKETS, NENTRIES, USED, VALUE, WORDS, X, Y,
};
use loom_tests::publication::{self, gate, read_validated, Spin, OTHER, P, THIRD, VICTIM};
use loom_tests::{every_kill_pair, every_kill_point, Planted};
use persist::part_lock::{
    bump_version, insert_claimant, published_part, settle_insert_claim, BUCKET_DELETED,
};
use persist::sync::{AccessError, Liveness, MemWords, Ordering, WordStore};
use std::cell::Cell;
use std::collections::BTreeMap;

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

/// A set holding `members` (`loom_tests::dict_table`'s table, every value word 0), in entries
/// 0.. in that order, each in the first free bucket of its probe sequence; recovered by
/// `recover` below.
fn set_of(members: &[u64]) -> World {
    let entries: Vec<(u64, u64)> = members.iter().map(|&m| (m, 0)).collect();
    World::new(Kind::Set, recover::<MemWords>, &entries, &[])
}

/// The live entries as member -> entry index (a set's value words are all 0).
fn entries_only(live: BTreeMap<u64, (u64, u64)>) -> BTreeMap<u64, u64> {
    live.into_iter().map(|(k, (e, _))| (k, e)).collect()
}

/// The members once nothing is in flight, the set checked (`Table::live`, `Kind::Set`).
fn members(world: &World) -> BTreeMap<u64, u64> {
    entries_only(world.live())
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

// ---- participants (`loom_tests::dict_table::Participant`) ---------------------------------------

// ---- the add (an insert publication with value 0) ----

/// `Store::claim_and_insert` for a set's member: the claim taken, the member looked up
/// (present: the claim dropped, `Present`; no room: dropped, give up), the entry staged,
/// committed and finished (`part_lock.rs`'s own steps). None: gave up.
fn claim_and_insert<W: WordStore>(
    p: &Participant<'_, W>,
    key: u64,
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
        .insert_entry_stage(WORDS, l.n, b, hash(key), 0)
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

/// `Store::publish_set_add`: a look before the announcement (room in the table), then the
/// publication under P, `claim_and_insert`, and its end (P moved by 2 if inserted). None:
/// nothing was changed, the part path's turn.
fn publish_insert<W: WordStore>(
    p: &Participant<'_, W>,
    key: u64,
    landed: &Cell<Option<u64>>,
) -> Result<Option<Outcome>, AccessError> {
    if p.load(NENTRIES)? >= CAP {
        return Ok(None);
    }
    p.publish(
        || claim_and_insert(p, key, landed),
        |out| *out == Some(Outcome::Inserted),
    )
}

/// An insert with the part held (`dict_insert_new`): the member looked up (present:
/// nothing changed), a claim found settled (`settle_insert_claim(None)`), the entry
/// written past the end (unlogged here: nothing reads it until `nentries` counts it), its
/// bucket, `nentries` and `used` logged and written, committed.
fn insert_held<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    landed: &Cell<Option<u64>>,
) -> Result<Outcome, AccessError> {
    if p.lookup(key, false)?.found.is_some() {
        return Ok(Outcome::Present);
    }
    if p.load(CLAIM)? != 0 {
        settle(p.store, None)?;
    }
    let l = p.lookup(key, false)?;
    let b = l
        .free
        .expect("no room: the models leave room for every insert");
    let e = entry(l.n);
    p.store.store(e, hash(key), Ordering::Relaxed)?;
    p.store.store(e + KEY, key, Ordering::Relaxed)?;
    p.store.store(e + VALUE, 0, Ordering::Relaxed)?;
    p.put(bucket(b), l.n + 1)?;
    p.put(NENTRIES, l.n + 1)?;
    p.put(USED, l.used + 1)?;
    p.commit()?;
    landed.set(Some(l.n));
    Ok(Outcome::Inserted)
}

/// An add: as a publication, or on the part (taken, waiting for publishers) if the
/// publication gives up.
fn insert<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    landed: &Cell<Option<u64>>,
) -> Result<Outcome, AccessError> {
    if let Some(out) = publish_insert(p, key, landed)? {
        return Ok(out);
    }
    assert_eq!(landed.get(), None);
    p.enter()?;
    let held = p.take(P, true)?;
    let out = insert_held(p, key, landed)?;
    p.parts.end(&[held], true, &Spin)?;
    Ok(out)
}

// ---- the delete ----

/// Delete steps 1 and 2 (`delete_entry_commit`, `delete_entry_finish`) of the member in
/// entry `e` named by bucket `b`, `used` read under the claim, or their broken copies.
/// `committed` is set right after the store of the empty key (the commit point).
fn delete_steps<W: WordStore>(
    p: &Participant<'_, W>,
    b: u64,
    e: u64,
    used: u64,
    committed: &Cell<bool>,
) -> Result<(), AccessError> {
    let relaxed = Ordering::Relaxed;
    let release = Ordering::Release;
    if broken("finish-before-commit") {
        p.set(bucket(b), BUCKET_DELETED, relaxed)?;
        p.set(entry(e) + VALUE, 0, relaxed)?;
        p.set(USED, used - 1, relaxed)?;
        p.set(entry(e) + KEY, 0, release)?;
        committed.set(true);
        return p.set(CLAIM, 0, release);
    }
    p.parts.delete_entry_commit(WORDS, e)?;
    committed.set(true);
    if broken("release-early") {
        p.set(bucket(b), BUCKET_DELETED, relaxed)?;
        p.set(entry(e) + VALUE, 0, relaxed)?;
        p.set(CLAIM, 0, release)?;
        return p.set(USED, used - 1, relaxed);
    }
    if broken("no-claim") {
        // No claim of ours to end.
        p.set(bucket(b), BUCKET_DELETED, relaxed)?;
        p.set(entry(e) + VALUE, 0, relaxed)?;
        return p.set(USED, used - 1, relaxed);
    }
    p.parts.delete_entry_finish(WORDS, b, e, used)
}

/// `Store::claim_and_delete`: the claim taken (held by another, `SPIN_LOOKS` more looks,
/// then give up: None), the member looked up (missing: the claim dropped, `Some(false)`),
/// its key emptied (the commit point), the rest finished (`Some(true)`). A failed step
/// settles the claim as a dead deleter's would be settled. (Broken, `no-claim`: no claim.)
fn claim_and_delete<W: WordStore>(
    p: &Participant<'_, W>,
    key: u64,
    committed: &Cell<bool>,
) -> Result<Option<bool>, AccessError> {
    let claimed = !broken("no-claim");
    if claimed && !p.claim_entries(|| p.parts.claim_insert(CLAIM))? {
        return Ok(None);
    }
    let l = match p.lookup(key, false) {
        Ok(l) => l,
        Err(e) => {
            if claimed {
                p.parts.unclaim_insert(CLAIM)?;
            }
            return Err(e);
        }
    };
    let Some((b, e)) = l.found else {
        if claimed {
            p.parts.unclaim_insert(CLAIM)?;
        }
        return Ok(Some(false));
    };
    if let Err(err) = delete_steps(p, b, e, l.used, committed) {
        // A vanished page: settled (the claim is ours). (Killed, this fails at once.)
        let _ = settle(p.store, Some(p.slot));
        return Err(err);
    }
    Ok(Some(true))
}

/// `Store::publish_set_discard`: the publication under P (`enter_publish`; withdrawn:
/// None), `claim_and_delete`, and its end (P moved by 2 if removed; broken, `no-bump`:
/// never). None: nothing was changed, the part path's turn.
fn publish_delete<W: WordStore>(
    p: &Participant<'_, W>,
    key: u64,
    committed: &Cell<bool>,
) -> Result<Option<bool>, AccessError> {
    p.publish(
        || claim_and_delete(p, key, committed),
        |out| *out == Some(true) && !broken("no-bump"),
    )
}

/// A discard on the part (`set_discard`, `dict_del`, `delete_entry`): the part taken
/// (waiting for publishers, recovering dead ones), the claim found clear (every claim
/// belongs to a publication the wait outlived, and a dead one's is settled before its
/// `active` is cleared; `dict_del` settles only one left without its lock file, which
/// this model has none of), the member looked up (missing: nothing
/// changed), its bucket deleted, key and value emptied, `used` one less (logged),
/// committed, the part released.
fn delete_on_part<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    committed: &Cell<bool>,
) -> Result<bool, AccessError> {
    p.enter()?;
    let held = p.take(P, true)?;
    let claim = p.load(CLAIM)?;
    assert_eq!(
        claim, 0,
        "a part change found the set claimed after its wait: {claim:#x}"
    );
    let l = p.lookup(key, false)?;
    let Some((b, e)) = l.found else {
        p.parts.end(&[held], true, &Spin)?;
        return Ok(false);
    };
    p.put(bucket(b), BUCKET_DELETED)?;
    p.put(entry(e) + KEY, 0)?;
    p.put(entry(e) + VALUE, 0)?;
    p.put(USED, l.used - 1)?;
    p.commit()?;
    committed.set(true);
    p.parts.end(&[held], true, &Spin)?;
    Ok(true)
}

/// A discard: as a publication, or on the part if the publication gives up.
fn delete<W: WordStore>(
    p: &mut Participant<'_, W>,
    key: u64,
    committed: &Cell<bool>,
) -> Result<bool, AccessError> {
    if let Some(out) = publish_delete(p, key, committed)? {
        return Ok(out);
    }
    assert!(!committed.get());
    delete_on_part(p, key, committed)
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
    let (out, spent) = as_victim(world, VICTIM, k, |p| delete(p, key, &committed));
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

/// From a set holding `members`, the victim (killed after `k` accesses, then recovered at
/// once by a third participant) discards X while `other` runs in this thread (a live
/// participant); then the victim's recovery is repeated. The set, what the victim did (and its
/// accesses), and what `other` returned.
fn beside_victim_delete<T>(
    members: &[u64],
    k: u64,
    other: impl FnOnce(&World) -> T,
) -> (Arc<World>, (Deleted, u64), T) {
    let world = Arc::new(set_of(members));
    let victim = spawn_victim(&world, move |world| victim_delete(world, k, X));
    let t = other(&world);
    let x = victim.join().unwrap();
    world.recover_again();
    (world, x, t)
}

/// A live participant in `slot` discards `key`: whether it removed it.
fn live_delete(world: &World, slot: u32, key: u64) -> bool {
    let mut p = Participant::new(world, &world.lock_file, &world.store, slot).unwrap();
    let committed = Cell::new(false);
    let removed = delete(&mut p, key, &committed).unwrap();
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
    let out = insert(&mut p, key, &landed).unwrap();
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
        let (world, (x, spent), y) =
            beside_victim_delete(&[X], k, |world| live_insert(world, OTHER, Y));
        let live = members(&world);
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
        let (world, (x, spent), other) =
            beside_victim_delete(&[X], k, |world| live_delete(world, OTHER, X));
        let live = members(&world);
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
        let world = set_of(&[X, A]);
        let (x, spent) = victim_delete(&world, k1, X);
        let mut recoverer_spent = 0;
        if !world.live.is_alive(VICTIM) {
            recoverer_spent =
                world.recover_killed(k2, |l, s, by, d| recover(l, s, by, d), x.committed);
        }
        let live = members(&world);
        assert_eq!(
            live.contains_key(&X),
            !x.committed,
            "X is in the set iff its key was not emptied ({live:?})"
        );
        assert_eq!(live.get(&A), Some(&1));
        assert_eq!(live.len(), 2 - x.committed as usize);
        if x.committed {
            let s = world.table();
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
        let live = members(&world);
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
fn read_set(world: &World, slot: u32, yield_before: u64) -> Option<(u64, Table)> {
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

/// The victim (killed before each of its accesses) discards X from a set holding X and A
/// while a reader reads the set (yielding before the load of word `YIELD_BEFORE`); then the
/// victim is recovered. A kept read is a consistent set holding A and X, or A; one that
/// validated against the first version is the first set, one that validated against the
/// final version the final one.
fn reader_scenario<const YIELD_BEFORE: u64>(k: u64) -> u64 {
    let world = Arc::new(set_of(&[X, A]));
    let first = members(&world);
    let reader = {
        let world = world.clone();
        thread::spawn(move || read_set(&world, THIRD, YIELD_BEFORE))
    };
    let (x, spent) = victim_delete(&world, k, X);
    world.recover_again();
    let last = members(&world);
    assert_eq!(last.contains_key(&X), !x.committed);
    if x.committed {
        assert_ne!(world.word(P), 0, "a delete left the version unmoved");
    }
    if let Some((v, seen)) = reader.join().unwrap() {
        let kept = seen
            .live(Kind::Set)
            .map(entries_only)
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
        let world = Arc::new(set_of(&[X, A]));
        let victim = spawn_victim(&world, move |world| victim_delete(world, k, X));
        let mut taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        taker.enter().unwrap();
        let held = taker.take(P, true).unwrap();
        let claim = world.word(CLAIM);
        assert_eq!(
            claim, 0,
            "a part taker found the set claimed after its wait: {claim:#x}"
        );
        let landed = Cell::new(None);
        let out = insert_held(&mut taker, B, &landed).unwrap();
        taker.parts.end(&[held], true, &Spin).unwrap();
        assert_eq!(out, Outcome::Inserted);
        let (x, spent) = victim.join().unwrap();
        let live = members(&world);
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
        let (world, (x, spent), add) =
            beside_victim_delete(&[X], k, |world| live_insert(world, OTHER, X));
        let live = members(&world);
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
