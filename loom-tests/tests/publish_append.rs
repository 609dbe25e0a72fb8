//! Append publications (`persist::part_lock`: `claim_tail`, `fill_tail`, `drop_tail_claim`): an
//! append of an inline item to a list that takes no part lock, beside other appenders, part
//! takers (a growth that moves the items), lockExcl sections, readers, and the recoverer of an
//! appender killed anywhere (itself killed anywhere, and repeated).
//!
//! The protocol (`Store::publish_list_append`; FORMAT.md §10.9, "Appends"): the appender
//! announces a publication under the list's version word P (`enter_publish`: `active` = P | 1,
//! SeqCst fence, `seq` even, `shared` 0, P even; else it withdraws and the append runs as a
//! single change on the part). It reads the items block and its capacity, then the list's
//! `len` word: claimed by another (`tail_claimant`), it looks again a bounded number of times
//! and then gives up (the part path waits for the claimant, and recovers it if dead); no room,
//! it gives up; else it claims the tail (`claim_tail`: CAS len -> `tail_claim(me, len)`,
//! Acquire; lost, again from the word seen), fills it (`fill_tail`: the item at index len,
//! Relaxed, then len + 1, Release, which ends the claim) and ends the publication
//! (`end_publish`: P moved by 2 unless held, `active` = 0). A part taker waits after its CAS on
//! P while an `active` names P (`publisher_of`), recovering a dead appender, and only then
//! reads `len`; it writes it clean and releases P by 2. A reader observes P, reads `len`
//! (`tail_len` masks a claim) and the items below it, fences (Acquire), finds no publisher
//! under P (`publisher_in`) and P unchanged. The recoverer of a dead appender drops a claim
//! that names it (`drop_tail_claim`: len back to the unclaimed length; the item past the end
//! is ignored), then moves P by 2 (`bump_version`), then clears its `active` (`recover_dead`),
//! as `object/recovery.rs` does.
//!
//! The scaffolding shared with `publish.rs` and `append_block.rs` is in
//! `loom_tests::publication` (the lock file and store words, a participant's view, the
//! recovery's last step, the validated read, the list's words); what is this file's own is
//! here (an items block, claims, a set of slots inside instead of one flag, the recovery's
//! order and its broken copies, the part taker's wait).
//!
//! The models (an appender marked "killed" is killed before each of its word accesses through
//! the killable word store, as in `publish.rs`, and also runs to its end):
//!
//! 1. `appenders_land_at_distinct_indexes` (three appenders on an empty list with room for
//!    three: the victim, killed, appends X and is recovered at once by a third participant,
//!    which then appends Z; a live one appends Y meanwhile, falling back to the part path
//!    after a bounded spin on a claimed tail; then the recovery is repeated): every live
//!    append lands, the dead one whole or absent, no index twice, no gap, `len` unclaimed, P
//!    moved by 2 per publication.
//! 2. `an_append_racing_a_growth_lands_in_the_new_block_or_not_at_all` (the appender, killed,
//!    then recovered at once by a third participant; a live part taker that waits for
//!    publishers, recovering a dead one, copies the items to a new block, points ITEMS there,
//!    writes `len` clean, commits and zeroes the old block): the taker never finds the tail
//!    claimed; the append is in the new block, at the end, or absent, and the old block is
//!    never written after the copy.
//! 3. `a_reader_keeps_only_whole_appends` (the appender, killed; a reader; then the recovery):
//!    a kept read is the list before or after the append (its length and last item agree),
//!    the first version names the first list, the final version the final list.
//! 4. `a_reader_keeps_a_prefix_of_two_appends` (the appender, killed, and a live appender; a
//!    reader; then the recovery): a kept read is a prefix of the final list, with the same
//!    two version checks.
//! 5. `an_append_never_lands_inside_a_lockexcl_section` (the appender, killed; a lockExcl
//!    section that drains the `active` words, recovering a dead appender, reads the list
//!    twice and appends Z): the section finds no claim, the list whole and unchanged under it,
//!    and both appends land at distinct indexes.
//! 6. `a_recoverer_killed_anywhere_leaves_no_claim_behind` (the appender alone, killed; its
//!    first recoverer killed before each of its accesses; a second recoverer; then a live
//!    append; sequential, every pair of kill points): after the first recoverer's death a
//!    claim naming the dead slot exists only while its `active` still names the list (else no
//!    recoverer would ever find it), a landed append whose `active` is clear has moved P, and
//!    the live append lands right after the list the dead one left.
//!
//! Broken variants. Nothing in `src/` was edited to break things: each broken step has a
//! local copy here, used instead of the real one only when the environment variable
//! `PUBLISH_APPEND_BROKEN` names the variant (unset, every step is `part_lock.rs`'s own, and
//! the recovery runs in the order `object/recovery.rs` does). For example
//! `PUBLISH_APPEND_BROKEN=skip-drop RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2
//! CARGO_TARGET_DIR=target/loom cargo test -p loom-tests --release --test publish_append` must
//! fail. Which models fail with each variant at LOOM_MAX_PREEMPTIONS=2, and which fail only
//! at 3 (every variant was run at 3 over models 1, 2, 3, 5 and 6, and `fill-relaxed` and
//! `claim-relaxed` over model 4 too; `fill-relaxed` and `bump-before-drop` also at 4 over all
//! but model 4, still passing):
//!
//! | variant | what it breaks | fail at 2 | only at 3 |
//! |---|---|---|---|
//! | `enter-publish-no-fence` | `enter_publish` without its SeqCst fence | 2, 4, 5 | - |
//! | `len-before-item` | `fill_tail` stores `len + 1` before the item | 1 to 6 | - |
//! | `fill-relaxed` | `fill_tail`'s store of `len + 1` Relaxed | none | - |
//! | `claim-relaxed` | `claim_tail`'s CAS Relaxed | 1 | - |
//! | `no-bump` | an append that landed leaves P unmoved (`changed` false) | 1, 3, 4, 6 | - |
//! | `skip-drop` | the recovery never drops the dead's claim | 1 to 6 | - |
//! | `bump-before-drop` | the recovery moves P before it drops the claim | none | - |
//! | `clear-before-drop` | the recovery clears `active`, then drops the claim | 2, 6 | 1 |
//! | `recovery-no-bump` | the recovery drops the claim but leaves P unmoved | 1, 3, 4, 6 | - |
//! | `drop-any-claim` | the recovery drops a claim whoever's it is | 1 | - |
//! | `taker-skips-wait` | a part taker does not wait for publishers (`publisher_of`) | 2, 4 | 1 |
//! | `reader-skips-publisher-in` | a reader keeps without `publisher_in` | 3, 4 | - |
//! | `reader-raw-len` | a reader takes the `len` word for the length (no `tail_len`) | 3, 4 | - |
//!
//! How they fail: `enter-publish-no-fence`: the growth copies the list without the append,
//! which then lands in the old block (2); a part taker goes on beside the append (4); the
//! append passes the gate while the section is inside (5). `len-before-item`: a dead appender
//! leaves a length that covers an item never written (the list ends in 0, or a later append
//! lands past a hole). `claim-relaxed`: the dead appender's item, stored at index n before its
//! death, is not ordered before the item a live appender stores at n after the recovery
//! dropped the claim, and may be the one the word keeps: model 1 ended with [X, Z] where Y
//! landed at 0 and X did not land. (So the claim's Acquire is needed for that, paired with
//! `drop_tail_claim`'s Release, more than for the reason its comment gives: the last
//! appender's item lies before the word we write.) `no-bump`, `recovery-no-bump`: a version
//! names two lists (a reader keeps the first list at the final version), or P stays unmoved
//! after a recovered append. `skip-drop`, `clear-before-drop`: a claim naming the dead slot
//! outlives its `active` word (nobody will ever drop it), and a part taker finds the tail
//! claimed after its wait (with `clear-before-drop`, between the recoverer's two steps).
//! `drop-any-claim`: the recovery drops a live appender's claim, another appender claims the
//! same index, and both land at 0. `taker-skips-wait`: the taker finds the tail claimed, or
//! copies the list without an append that then lands in the old block.
//! `reader-skips-publisher-in`: a reader keeps a length whose last item is not there yet.
//! `reader-raw-len`: a claimed word read as a length is past the capacity (the object layer
//! would raise `CorruptionError` on a race).
//!
//! Not caught, and why:
//!
//! - `fill-relaxed`: nothing relies on the Release of the length store. A reader that reads
//!   the new length synchronizes (its Acquire fence) with the appender's SeqCst fence in
//!   `enter_publish`, which is a release fence too and comes after the `active` store: it then
//!   finds the appender in `publisher_in`, or `active` back at 0 (Release, after the bump) and
//!   P moved. Part takers and sections synchronize through `active` (Release 0) and P, and
//!   the next appender writes another word than the last one's item. (As in `publish.rs`,
//!   where the publishing CAS made Relaxed is not caught either.) Kept as it is: cheap, and
//!   what the comments in `part_lock.rs` reason with.
//! - `bump-before-drop`: the drop changes no length anyone uses (`tail_len` of the claim is
//!   the length it drops to); readers and takers do not go on while the dead slot's `active`
//!   names P, which the recovery clears last in both orders; an appender that finds the
//!   dead's claim gives up either way. The order `object/recovery.rs` uses (drop, bump,
//!   clear) is the one modelled by default; these models find no interleaving in which the
//!   other order breaks an invariant.
//!
//! What loom cannot see: as in `publish.rs` (a kill is a prefix of the victim's accesses in
//! program order; SeqCst accesses are checked as AcqRel, so every handshake is fenced; loom's
//! SeqCst fences are stronger than C++'s). Waiters spin with `yield_now`. An appender looks
//! at a claimed `len` word `SPIN_LOOKS` more times before it gives up (the object layer
//! spins `HELD_SPINS` times; one look keeps the models small and still covers both ways out).
//! The items block has no `start` word here (items from word 0; `start` moves only under the
//! part). `claim_tail`, `fill_tail`, `drop_tail_claim` and `bump_version` call `step` right
//! before a `cas` or `store` that counts a kill point again through `word`, so those kill
//! points come twice (the same state; it costs model time only).
//!
//! Cost (one core, release build, LOOM_MAX_PREEMPTIONS=2, on the shared 2-core machine, in the
//! order above): 0.26 s (28 kill points), 0.25 s (44), 0.16 s (24), 9.5 s (28), 0.29 s (69),
//! 0.12 s (24 victim kill points, 413 (victim, recoverer) pairs): about 11 s in all (11 s under
//! `cargo test`, two test threads). Also run at LOOM_MAX_PREEMPTIONS=3, all passing: 290 s for
//! model 4, under 1 s each for the others; and at 4, all but model 4: 5 s together.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::publication::{
    self, gate, owner, read_validated, slot_of, Objects, Spin, View, AT, CAP, GATE, GATE_END,
    ITEMS, LEN, OTHER, P, RECORDS, THIRD, VICTIM,
};
use loom_tests::{every_kill_pair, every_kill_point, Budget, KillableWords, Planted};
use persist::part_lock::{
    bump_version, drop_tail_claim, holder, published_part, publishing, tail_claim, tail_claimant,
    tail_len, Held,
};
use persist::sync::{AccessError, Liveness, MemWords, Ordering, WordStore};
use std::cell::Cell;
use std::ops::{Deref, DerefMut};

// ---- broken variants ----------------------------------------------------------------------------

static BROKEN: Planted = Planted::new(
    "PUBLISH_APPEND_BROKEN",
    &[
        "enter-publish-no-fence",
        "len-before-item",
        "fill-relaxed",
        "claim-relaxed",
        "no-bump",
        "skip-drop",
        "bump-before-drop",
        "clear-before-drop",
        "recovery-no-bump",
        "drop-any-claim",
        "taker-skips-wait",
        "reader-skips-publisher-in",
        "reader-raw-len",
    ],
);

/// Whether `PUBLISH_APPEND_BROKEN` names `variant` (module doc).
fn broken(variant: &str) -> bool {
    BROKEN.is(variant)
}

// ---- the world ----------------------------------------------------------------------------------

/// Store file (`loom_tests::publication`): the list's version word P (its part word), its `len`
/// word, ITEMS (where its items block is: OLD_BLOCK, or NEW_BLOCK after a growth), CAP (the
/// block's capacity), the two blocks, then per slot its held-parts record and its undo log
/// block.
const OLD_BLOCK: u64 = 48;
const OLD_WORDS: u64 = 3;
const NEW_BLOCK: u64 = OLD_BLOCK + 8 * OLD_WORDS;
const NEW_CAP: u64 = 4;
const _: () = assert!(NEW_BLOCK + 8 * NEW_CAP <= RECORDS);

/// The item at index `i` of a list created with items (FIRST_ITEM + i), and the items the
/// participants append (never 0, which an item word of a fresh or freed block holds).
const FIRST_ITEM: u64 = 100;
const X: u64 = 201;
const Y: u64 = 202;
const Z: u64 = 203;

/// How many more times an appender looks at a claimed `len` word before it gives up on the
/// publication (the object layer's bounded `spin_until_changed`; then the part path).
const SPIN_LOOKS: u32 = 1;

/// Which participants are inside (a publication past the gate, or a section): kept outside
/// loom (a plain mutex; loom runs one thread at a time, so it adds no interleavings). Several
/// appenders may be inside at once: a set of slots.
#[derive(Default)]
struct Inside {
    changes: std::sync::Mutex<u32>,
    section: std::sync::Mutex<bool>,
}

impl Inside {
    fn enter_change(&self, slot: u32) {
        assert!(
            !*self.section.lock().unwrap(),
            "an append passed the gate while a section is inside"
        );
        *self.changes.lock().unwrap() |= 1 << slot;
    }

    fn leave_change(&self, slot: u32) {
        *self.changes.lock().unwrap() &= !(1 << slot);
    }

    /// Whether a slot other than `slot` is inside a publication.
    fn other_change(&self, slot: u32) -> bool {
        *self.changes.lock().unwrap() & !(1 << slot) != 0
    }

    fn enter_section(&self) {
        assert_eq!(
            *self.changes.lock().unwrap(),
            0,
            "a section went inside while an append is past the gate"
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
    /// A list of `len` items (FIRST_ITEM, FIRST_ITEM + 1, ...) in OLD_BLOCK of capacity `cap`.
    fn new(len: u64, cap: u64) -> World {
        assert!(len <= cap && cap <= OLD_WORDS);
        let w = World {
            objects: Objects::new(GATE_END),
            inside: Inside::default(),
        };
        w.store.store(LEN, len, Ordering::Relaxed).unwrap();
        w.store.store(ITEMS, OLD_BLOCK, Ordering::Relaxed).unwrap();
        w.store.store(CAP, cap, Ordering::Relaxed).unwrap();
        for i in 0..len {
            w.store
                .store(OLD_BLOCK + 8 * i, FIRST_ITEM + i, Ordering::Relaxed)
                .unwrap();
        }
        w
    }

    /// What must hold once nothing is in flight and the dead are recovered: the tail
    /// unclaimed (`list`), and `Objects::assert_quiet` (the part free, every record, log and
    /// `active` empty, the store lock free).
    fn assert_quiet(&self) {
        self.list();
        self.objects.assert_quiet();
    }
}

// ---- the recovery -------------------------------------------------------------------------------

/// The list whose version word is at `part`: its `len` word (the object layer finds it in the
/// container's header, beside the version).
fn len_word_of(part: u64) -> u64 {
    assert_eq!(part, P, "a publication under a part that is not the list's");
    LEN
}

/// `part_lock::drop_tail_claim`, or its broken copy (which drops whoever's claim it finds).
fn drop_claim<W: WordStore>(store: &W, len_at: u64, dead: u32) -> Result<(), AccessError> {
    if !broken("drop-any-claim") {
        return drop_tail_claim(store, len_at, dead);
    }
    let word = store.load(len_at, Ordering::Relaxed)?;
    if tail_claimant(word).is_some() {
        store.step()?;
        let _ = store.cas(
            len_at,
            word,
            tail_len(word),
            Ordering::Release,
            Ordering::Relaxed,
        )?;
    }
    Ok(())
}

/// Recovers dead slot `dead` as slot `by` would: an append its `active` names first (its claim
/// dropped, then the version it may have left unmoved moved), then `Parts::recover_dead` (its
/// log rolled back, its parts released, its `active` cleared). Safe to repeat.
fn recover<W: WordStore>(lock_file: &W, store: &W, by: u32, dead: u32) -> Result<(), AccessError> {
    let (_, parts) = gate(lock_file, store, by)?;
    // Relaxed: the death (learnt from the liveness flag, SeqCst) orders all the dead did.
    let active = parts.active_word(dead)?.load(Ordering::Relaxed);
    let part = published_part(active);
    let recover_dead = || publication::recover_dead(&parts, store, dead);
    let Some(part) = part else {
        return recover_dead();
    };
    let len_at = len_word_of(part);
    if broken("clear-before-drop") {
        bump_version(store, part)?;
        recover_dead()?;
        return drop_claim(store, len_at, dead);
    }
    if broken("bump-before-drop") {
        bump_version(store, part)?;
        drop_claim(store, len_at, dead)?;
    } else {
        if !broken("skip-drop") {
            drop_claim(store, len_at, dead)?;
        }
        if !broken("recovery-no-bump") {
            bump_version(store, part)?;
        }
    }
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
                "a part taker went on beside an append"
            );
        }
        Ok(held)
    }

    /// The list's length as a part taker (or a section) reads it, after waiting for the
    /// publications under P: `tail_len`, as the object layer reads it, but a claim is a bug
    /// here (an append in flight beside us, or a dead one's claim left behind by its recovery).
    fn list_len(&self) -> Result<u64, AccessError> {
        let word = self.store.load(LEN, Ordering::Relaxed)?;
        assert_eq!(
            tail_claimant(word),
            None,
            "a part taker or section found the tail claimed: {word:#x}"
        );
        Ok(tail_len(word))
    }

    /// `Parts::enter_publish` under P, or its broken copy (no SeqCst fence between the store of
    /// `active` and the loads). Whether the appender is past the gate.
    fn enter_publish(&self) -> Result<bool, AccessError> {
        if !broken("enter-publish-no-fence") {
            return Ok(self.parts.enter_publish(P, &Spin)?.is_ok());
        }
        let active = self.parts.active_word(self.slot)?;
        self.lock_file.step()?;
        active.store(publishing(P), Ordering::Relaxed);
        let seq = self.lock_file.load(AT.seq, Ordering::Acquire)?;
        let shared = self.lock_file.load(GATE.shared, Ordering::Acquire)?;
        let v = self.store.load(P, Ordering::Acquire)?;
        if seq % 2 == 0 && shared == 0 && v % 2 == 0 {
            return Ok(true);
        }
        self.parts.leave(&Spin)?;
        Ok(false)
    }

    /// `Parts::claim_tail`, or its broken copy.
    fn claim_tail(&self, seen: u64) -> Result<Result<(), u64>, AccessError> {
        if !broken("claim-relaxed") {
            return self.parts.claim_tail(LEN, seen);
        }
        self.store.step()?;
        self.store.cas(
            LEN,
            seen,
            tail_claim(self.slot, seen),
            Ordering::Relaxed,
            Ordering::Relaxed,
        )
    }

    /// `Parts::fill_tail`, or its broken copies.
    fn fill_tail(&self, len: u64, item_at: u64, item: u64) -> Result<(), AccessError> {
        if broken("len-before-item") {
            self.store.step()?;
            self.store.store(LEN, len + 1, Ordering::Release)?;
            self.store.step()?;
            return self.store.store(item_at, item, Ordering::Relaxed);
        }
        if broken("fill-relaxed") {
            self.store.step()?;
            self.store.store(item_at, item, Ordering::Relaxed)?;
            self.store.step()?;
            return self.store.store(LEN, len + 1, Ordering::Relaxed);
        }
        self.parts.fill_tail(LEN, len, item_at, item)
    }

    /// An append as a publication (as the object layer's append of an inline item): through
    /// the gate, the items block and its capacity read, the tail claimed and filled. `landed`
    /// is set to the item's index right after the access that made it part of the list
    /// (before any other access: a victim killed later keeps it). Returns false when it gave
    /// up (turned away at the gate, no room, or the tail still claimed after `SPIN_LOOKS`
    /// more looks).
    fn publish_append(&self, item: u64, landed: &Cell<Option<u64>>) -> Result<bool, AccessError> {
        if !self.enter_publish()? {
            return Ok(false);
        }
        self.world.inside.enter_change(self.slot);
        // Relaxed (all three): the Acquire load of P in `enter_publish` orders them after the
        // last holder's changes, and no holder changes them until we end (it waits for us).
        // The `len` word is only a guess for the CAS.
        let items = self.store.load(ITEMS, Ordering::Relaxed)?;
        let cap = self.store.load(CAP, Ordering::Relaxed)?;
        let mut word = self.store.load(LEN, Ordering::Relaxed)?;
        let mut looks = 0;
        let changed = loop {
            if let Some(c) = tail_claimant(word) {
                assert_ne!(c, self.slot, "a claim of our own in our way");
                if looks == SPIN_LOOKS {
                    break false;
                }
                looks += 1;
                thread::yield_now();
                word = self.store.load(LEN, Ordering::Relaxed)?;
                continue;
            }
            if word >= cap {
                break false;
            }
            match self.claim_tail(word)? {
                Ok(()) => {
                    self.fill_tail(word, items + 8 * word, item)?;
                    landed.set(Some(word));
                    break true;
                }
                Err(now) => word = now,
            }
        };
        self.world.inside.leave_change(self.slot);
        self.parts
            .end_publish(P, changed && !broken("no-bump"), &Spin)?;
        Ok(changed)
    }

    /// An append as a single change on the part (the path a publication that gives up takes):
    /// the part taken (waiting for publishers, recovering dead ones), the item and `len` logged
    /// and written, committed, the part released.
    fn append_on_part(&mut self, item: u64, landed: &Cell<Option<u64>>) -> Result<(), AccessError> {
        self.enter()?;
        let held = self.take(P)?;
        let n = self.list_len()?;
        let items = self.store.load(ITEMS, Ordering::Relaxed)?;
        let cap = self.store.load(CAP, Ordering::Relaxed)?;
        assert!(n < cap, "no room: the models leave room for every append");
        self.put(items + 8 * n, item)?;
        self.put(LEN, n + 1)?;
        self.commit()?;
        landed.set(Some(n));
        self.parts.end(&[held], true, &Spin)
    }

    /// An append: as a publication, or on the part if the publication gives up. Whether it
    /// ran on the part.
    fn append(&mut self, item: u64, landed: &Cell<Option<u64>>) -> Result<bool, AccessError> {
        if self.publish_append(item, landed)? {
            return Ok(false);
        }
        assert_eq!(landed.get(), None);
        self.append_on_part(item, landed)?;
        Ok(true)
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

/// The victim appending `item`, killed after `k` accesses: where it landed, if it did, and
/// its accesses.
fn victim_append(world: &World, k: u64, item: u64) -> (Option<u64>, u64) {
    let landed = Cell::new(None);
    let (_, spent) = as_victim(world, VICTIM, k, |p| p.append(item, &landed).map(|_| ()));
    (landed.get(), spent)
}

/// A live participant in `slot` appends `item`; returns where it landed, and whether it ran on
/// the part.
fn live_append(world: &World, slot: u32, item: u64) -> (u64, bool) {
    let mut p = Participant::new(world, &world.lock_file, &world.store, slot).unwrap();
    let landed = Cell::new(None);
    let on_part = p.append(item, &landed).unwrap();
    (landed.get().expect("a live append gave up"), on_part)
}

/// One unlocked read of the list under P as the object layer validates it (`read_validated`):
/// the `seq` token and P's version observed, `len` (a claim masked) and the items below it
/// read, then `read_valid` (Acquire fence, `seq`), then `publisher_in` (nobody publishes under
/// P), then P's version unchanged. The version and the items, if the read validates.
fn read_list(world: &World, slot: u32) -> Option<(u64, Vec<u64>)> {
    read_validated(world, slot, !broken("reader-skips-publisher-in"), || {
        // Relaxed (all): validated after.
        let word = world.word(LEN);
        let n = if broken("reader-raw-len") {
            word
        } else {
            tail_len(word)
        };
        let (items, cap) = (world.word(ITEMS), world.word(CAP));
        // The object layer takes this for damage (`CorruptionError`), not for a race.
        assert!(n <= cap, "a reader read length {n} past capacity {cap}");
        (0..n).map(|i| world.word(items + 8 * i)).collect()
    })
}

/// The list a set of appends to a list of `before` items explains: FIRST_ITEM.. below
/// `before`, then each append's item at the index it landed at (distinct, and together the
/// indexes `before..` with no gap).
fn explained(before: u64, appends: &[(u64, Option<u64>)]) -> Vec<u64> {
    publication::explained((0..before).map(|i| FIRST_ITEM + i).collect(), appends)
}

// ---- 1. appenders -------------------------------------------------------------------------------

/// Appenders on a list of no items with room for three: the victim (killed before each of
/// its accesses) appends X and, once it is dead, a third participant recovers it at once; the
/// third then appends Z (whether or not the victim died). A live one appends Y meanwhile
/// (after a bounded spin on a claimed tail it appends on the part, which waits for the
/// claimant, and recovers it if dead). Then the dead victim is recovered (again). The list
/// holds Y and Z, and X if its append landed, each at the index its append took; P moved by 2
/// per append (unless an append ran on the part: a publication's bump gives up on the held
/// word, whose release moves it instead).
#[test]
fn appenders_land_at_distinct_indexes() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(0, 3));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let (x, spent) = victim_append(&world, k, X);
                if !world.live.is_alive(VICTIM) {
                    recover_live(&world, THIRD, VICTIM);
                }
                let z = live_append(&world, THIRD, Z);
                (x, z, spent)
            })
        };
        let y = live_append(&world, OTHER, Y);
        let (x, z, spent) = victim.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let appends = [(X, x), (Y, Some(y.0)), (Z, Some(z.0))];
        assert_eq!(
            world.list(),
            explained(0, &appends),
            "the list is not what its appends made it ({appends:?})"
        );
        let n = world.list().len() as u64;
        let least = if y.1 || z.1 { 2 } else { 2 * n };
        assert!(
            world.word(P) >= least,
            "{n} appends moved the version to {} only",
            world.word(P)
        );
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 2. an append racing a growth ---------------------------------------------------------------

/// The victim (killed before each of its accesses, then recovered at once by a third
/// participant) appends X to a list of one item with room for two; a live part taker grows
/// the list: takes P, waits for publishers (recovering a dead one), copies the items to
/// NEW_BLOCK, points ITEMS there with the new capacity, writes `len` clean, commits, zeroes the
/// old block (as a freed block is reused) and releases P. The append is in the new block, at
/// the end, or absent; the old block is never written after the copy.
#[test]
fn an_append_racing_a_growth_lands_in_the_new_block_or_not_at_all() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(1, 2));
        let victim = {
            let world = world.clone();
            thread::spawn(move || {
                let out = victim_append(&world, k, X);
                if !world.live.is_alive(VICTIM) {
                    recover_live(&world, THIRD, VICTIM);
                }
                out
            })
        };
        let mut taker = Participant::new(&world, &world.lock_file, &world.store, OTHER).unwrap();
        taker.enter().unwrap();
        let held = taker.take(P).unwrap();
        let n = taker.list_len().unwrap();
        let (items, cap) = (world.word(ITEMS), world.word(CAP));
        assert_eq!((items, cap), (OLD_BLOCK, 2));
        // The new block is unreachable until ITEMS names it: its words are not logged.
        for i in 0..n {
            let item = world.word(items + 8 * i);
            world
                .store
                .store(NEW_BLOCK + 8 * i, item, Ordering::Relaxed)
                .unwrap();
        }
        taker.put(ITEMS, NEW_BLOCK).unwrap();
        taker.put(CAP, NEW_CAP).unwrap();
        taker.put(LEN, n).unwrap();
        taker.commit().unwrap();
        for i in 0..cap {
            world
                .store
                .store(items + 8 * i, 0, Ordering::Relaxed)
                .unwrap();
        }
        taker.parts.end(&[held], true, &Spin).unwrap();
        let (x, spent) = victim.join().unwrap();
        assert_eq!((world.word(ITEMS), world.word(CAP)), (NEW_BLOCK, NEW_CAP));
        assert_eq!(
            world.list(),
            explained(1, &[(X, x)]),
            "the grown list lost or garbled the append ({x:?})"
        );
        for i in 0..OLD_WORDS {
            assert_eq!(
                world.word(OLD_BLOCK + 8 * i),
                0,
                "the append wrote the old block after the growth ({x:?})"
            );
        }
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 3 and 4. readers ---------------------------------------------------------------------------

/// The victim (killed before each of its accesses) appends X to a list of one item with room
/// for two, while a reader reads the list; then the victim is recovered. A kept read is [first]
/// or [first, X]; one that validated against the first version is [first]; one that validated
/// against the final version is the final list.
#[test]
fn a_reader_keeps_only_whole_appends() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(1, 2));
        let reader = {
            let world = world.clone();
            thread::spawn(move || read_list(&world, THIRD))
        };
        let (x, spent) = victim_append(&world, k, X);
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let list = world.list();
        assert_eq!(
            list,
            explained(1, &[(X, x)]),
            "the list is not what its append made it ({x:?})"
        );
        if let Some((v, seen)) = reader.join().unwrap() {
            assert!(
                seen == [FIRST_ITEM] || seen == [FIRST_ITEM, X],
                "a reader kept {seen:?}"
            );
            if v == 0 {
                assert_eq!(seen, [FIRST_ITEM], "the first version names the first list");
            }
            if v == world.word(P) {
                assert_eq!(
                    seen, list,
                    "version {v} names {seen:?} for a reader and {list:?} at the end"
                );
            }
        }
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

/// The victim (killed before each of its accesses) appends X and a live appender Y to a list
/// of one item with room for three, while a reader reads the list; then the victim is
/// recovered. Items never move here once they are in the list, so a kept read is a prefix of
/// the final list (never the dead's item where a live one landed, never an item missing
/// below the length); one that validated against the first version is the first list, one
/// that validated against the final version the final list.
#[test]
fn a_reader_keeps_a_prefix_of_two_appends() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(1, 3));
        let reader = {
            let world = world.clone();
            thread::spawn(move || read_list(&world, THIRD))
        };
        let live = {
            let world = world.clone();
            thread::spawn(move || live_append(&world, OTHER, Y))
        };
        let (x, spent) = victim_append(&world, k, X);
        let (y, _) = live.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let list = world.list();
        let appends = [(X, x), (Y, Some(y))];
        assert_eq!(
            list,
            explained(1, &appends),
            "the list is not what its appends made it ({appends:?})"
        );
        if let Some((v, seen)) = reader.join().unwrap() {
            assert!(
                list.starts_with(&seen) && !seen.is_empty(),
                "a reader kept {seen:?}, not a prefix of {list:?}"
            );
            if v == 0 {
                assert_eq!(seen, [FIRST_ITEM], "the first version names the first list");
            }
            if v == world.word(P) {
                assert_eq!(
                    seen, list,
                    "version {v} names {seen:?} for a reader and {list:?} at the end"
                );
            }
        }
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 5. a lockExcl section ----------------------------------------------------------------------

/// The victim (killed before each of its accesses) appends X to a list of one item with room
/// for three while a lockExcl section (the main thread) drains the gate, recovering the victim
/// if it died past it, reads the list, reads it again, and appends Z. The section finds the
/// tail unclaimed and the list whole and unchanged; both appends land, at distinct indexes.
#[test]
fn an_append_never_lands_inside_a_lockexcl_section() {
    fn scenario(k: u64) -> u64 {
        let world = Arc::new(World::new(1, 3));
        let victim = {
            let world = world.clone();
            thread::spawn(move || victim_append(&world, k, X))
        };
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
        let read = |taker: &Participant<'_, MemWords>| {
            let n = taker.list_len().unwrap();
            let items = world.word(ITEMS);
            (0..n)
                .map(|i| world.word(items + 8 * i))
                .collect::<Vec<_>>()
        };
        let first = read(&taker);
        assert!(
            first == [FIRST_ITEM] || first == [FIRST_ITEM, X],
            "a section found the list {first:?}"
        );
        thread::yield_now();
        assert_eq!(read(&taker), first, "the list changed under lockExcl");
        let n = first.len() as u64;
        taker.put(OLD_BLOCK + 8 * n, Z).unwrap();
        taker.put(LEN, n + 1).unwrap();
        taker.commit().unwrap();
        world.inside.leave_section();
        taker.lock.end_change().unwrap();
        let (x, spent) = victim.join().unwrap();
        if !world.live.is_alive(VICTIM) {
            recover_live(&world, OTHER, VICTIM);
        }
        let appends = [(X, x), (Z, Some(n))];
        assert_eq!(
            world.list(),
            explained(1, &appends),
            "an append was lost or garbled ({appends:?})"
        );
        world.assert_quiet();
        spent
    }
    every_kill_point(scenario);
}

// ---- 6. a recoverer killed anywhere -------------------------------------------------------------

/// The victim (killed before each of its accesses) appends X to a list of one item with room
/// for three; its first recoverer is killed before each of its accesses, a second one
/// finishes; then a live participant appends Y. Sequential (one interleaving per pair of kill
/// points): what is checked is the state each kill leaves. After the first recoverer's death,
/// a claim naming the victim exists only while the victim's `active` still names the list (so
/// that the next recoverer finds it), and a landed append whose `active` is clear has moved
/// P. At the end, the list is X if it landed, then Y.
#[test]
fn a_recoverer_killed_anywhere_leaves_no_claim_behind() {
    fn scenario(k1: u64, k2: u64) -> (u64, u64) {
        let world = World::new(1, 3);
        let (x, spent) = victim_append(&world, k1, X);
        let mut recoverer_spent = 0;
        if !world.live.is_alive(VICTIM) {
            let budget = Budget::new(k2);
            let lock_file = KillableWords {
                inner: &world.lock_file,
                budget: &budget,
            };
            let store = KillableWords {
                inner: &world.store,
                budget: &budget,
            };
            if let Err(e) = recover(&lock_file, &store, THIRD, VICTIM) {
                assert!(budget.killed(), "the recoverer failed unkilled: {e}");
            }
            recoverer_spent = budget.spent();
            let active = world.active(VICTIM);
            if tail_claimant(world.word(LEN)) == Some(VICTIM) {
                assert_eq!(
                    active,
                    publishing(P),
                    "the dead appender's claim outlived the active word that leads to it"
                );
            }
            if active == 0 && x.is_some() {
                assert_ne!(
                    world.word(P),
                    0,
                    "a recovered append left the version unmoved"
                );
            }
            recover_live(&world, OTHER, VICTIM);
        }
        let (y, _) = live_append(&world, OTHER, Y);
        let appends = [(X, x), (Y, Some(y))];
        assert_eq!(
            world.list(),
            explained(1, &appends),
            "the list is not what its appends made it ({appends:?})"
        );
        world.assert_quiet();
        (spent, recoverer_spent)
    }
    every_kill_pair(scenario);
}
