//! Pushes of containers on the orphan list from part changes (`object/encode.rs`
//! `push_orphan_on_part`; FORMAT.md §10.5, "pushes by CAS instead"), beside other pushes, each
//! pusher killed anywhere, then the list walked as `collect_orphans_as` walks it.
//!
//! The protocol. The store header's word `orphans` heads a singly linked list of containers
//! (0: empty), linked through each container's `orphan next` word; a container's head word
//! carries ORPHAN_FLAG while it is on the list. While part changes run, several may push at
//! once; beside them only the holder of the list's own part takes orphans off (modelled in
//! `orphan_collect.rs`), and every other writer runs store-wide, after the gate has drained
//! the part changes. A push of container c (its count just fell to 0 in this
//! change, a process holds it): (1) c's head read; flagged: done (taken to be listed); (2) the
//! head stored with the flag (Relaxed, outside the undo log); (3) `first` = `orphans`
//! (Relaxed); loop: c's `orphan next` = `first` (Relaxed), CAS `orphans` `first` -> c (Release;
//! Relaxed on failure; failed: `first` = the word seen, again). A pusher is killed before any of
//! its word accesses (`Budget`, `KillableWords`); its recovery rolls its change back (the push
//! runs before the change's commit point: `part_commit` runs a part change's releases first),
//! which only puts c's count back to 1 (the list words are outside the undo log). A live
//! pusher's change may be rolled back too (a later release refusing the part) and run again
//! store-wide, where `collect_container` finds the flag as step 1 does (on a part,
//! `part_drop_check` refuses a flagged container, so there step 1's return is a guard). The
//! collector runs
//! alone, after the joins (which stand for the gate's drain): it walks the list (`walk`, bounded
//! by the number of containers) and checks it (`collect`): no container twice and no loop, each
//! listed container flagged with its kind kept, the listed containers exactly those whose push
//! CAS took (and those an earlier collection kept), every other container unflagged unless its
//! push stored the flag and was killed before its CAS took (the leak FORMAT.md documents:
//! flagged and off the list, only gc reclaims it). Then, as the tree, it keeps the containers
//! whose count is 0 (all held here) and drops the others (rolled back: count 1), unflagged.
//! Every word step is copied here (`push_orphan`, with the planted bugs in it): `object` is not
//! built under loom. A pusher retries its CAS at most once per other pusher (a CAS fails only
//! when another push's CAS took in between): more fails the model (no progress).
//!
//! # The models
//!
//! 1. `two_pushers_killed_anywhere_leave_a_well_formed_list`: X and Y pushed at once, each
//!    pusher killed before each of its accesses and not at all (every pair of kill points,
//!    counted as the most over every interleaving), then the collector. The leak (a pusher
//!    killed between its flag and its CAS) is reached, and the test asserts it is.
//! 2. `three_pushers_leave_a_well_formed_list`: X, Y and Z pushed at once, X's and Y's pushers
//!    killed at every pair of kill points (as in 1), Z's live.
//! 3. `a_container_pushed_again_is_listed_once`: X pushed by A (killed anywhere, or not) beside
//!    a live push of Y; X's change rolled back (count 1 again); optionally a collection (which
//!    drops X, unflagged); X's count falls to 0 again and B pushes it beside a live push of Z;
//!    then the collector. Run with B live and A killed at each point (`every_kill_point`),
//!    then at every pair of kill points without and with the collection. X is on the list at
//!    most once; B found the flag iff X was flagged (listed and not collected, or leaked), and
//!    then pushed nothing. The leak is reached, and the test asserts it is.
//! 4. `a_walker_through_the_head_reads_whole_links`: X and Y pushed at once by live pushers
//!    while a walker reads `orphans` (Acquire) and walks the list concurrently: each container
//!    it reaches is flagged, and the `orphan next` it read is the one its pusher stored (the
//!    final one). This is what the CAS's Release is for: the collector on the list's part
//!    walks it so (`orphan_collect.rs`); the store-wide collector, after the gate's drain,
//!    would not need it (below).
//!
//! # Planted bugs
//!
//! `ORPHAN_PUSH_BROKEN` names one (unset: every step the tree's). Which models fail, at
//! LOOM_MAX_PREEMPTIONS=2, and the first message:
//!
//! | variant | what it breaks | fails |
//! |---|---|---|
//! | `next-after-cas` | `orphan next` stored after the CAS, not before | 1, 2, 3 (1's message): "the list ["Y"] is not the containers whose push took, ["X", "Y"] ([X: flagged CAS took killed after 4 accesses, Y: flagged CAS took killed after 4 accesses])" (killed between the CAS and the link: what was behind it is lost); 4, no kill: "the walker read Y's next 0, its pusher stored X" |
//! | `flag-after-cas` | the flag stored after the CAS | 1, 2: "Y is on the list ["Y"] unflagged: head 0x11" (killed between the CAS and the flag); 3: "X is on the list twice (or the list loops): ["Z", "X", "Y"] then X (first [X: CAS took killed after 4 accesses, Y: flagged CAS took (1 failed)], then [X: flagged CAS took, Z: flagged CAS took (1 failed)])" (the push again found no flag); 4: "the walker reached X unflagged" |
//! | `no-retry-reload` | a failed CAS retried from the stale `first` | 1 to 4: "the push of Y failed its CAS 2 times, beside 1 other push(es): no progress (expected 0, found X)" (a livelock; without the bound loom's branch limit stops it) |
//! | `stale-next` | a failed CAS retried from the word seen, `orphan next` not stored again | 1 to 4, no kill (1's message): "the list ["Y"] is not the containers whose push took, ["X", "Y"] ([X: flagged CAS took, Y: flagged CAS took (1 failed)])" (Y links to 0: X lost) |
//! | `relaxed-cas` | the CAS Relaxed on success | 4 only: "the walker reached X unflagged: head 0x11 ([X: flagged CAS took, Y: flagged CAS took (1 failed)]; the walker read ["X (head 0x11) -> 0"])"; 1 to 3 pass (below) |
//!
//! # What loom cannot see
//!
//! A kill is a prefix of the pusher's accesses in program order. The collector runs after the
//! joins, which order every pusher's stores before its loads, as the gate's drain does in the
//! tree (each part change's exit, seen by the drain): so `relaxed-cas` passes models 1 to 3, and
//! the CAS's Release matters only to a reader that synchronizes through `orphans` alone (model
//! 4), which the collector on the list's part is (`orphan_collect.rs`). No pusher reads a word
//! through the list (a pusher reads `orphans`, never another container's words).
//!
//! # Not modelled
//!
//! The store-wide writers of the list (a store-wide change's logged push, the walk's rewrite
//! inside an op, gc) beyond the collector's rewrite here; gc reclaiming a leaked container;
//! what decides that a container is dropped on a part (`part_drop_check`: its count 1 and its
//! flag clear) and the held-set handshake (`collect_container`); durable stores' barriers.
//!
//! # Cost
//!
//! Release build, this 2-core machine, the whole file: at LOOM_MAX_PREEMPTIONS=2 0.5 s of
//! tests (about 2.5 s with `cargo test`'s start); model 1: 54 (A, B) kill-point pairs, 138
//! executions (loom's partial-order reduction: the pushers share only `orphans`); 2: 90 pairs,
//! 7972 executions; 3: 7 kill points, then 28 and 46 pairs, 470 executions; 4: one model. At 3:
//! 1.2 s; at 4: 2.7 s. Each planted variant: the whole file in under a second.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{every_kill_point, model, Budget, KillableWords, Planted};
use persist::sync::{AccessError, MemWords, Ordering, WordStore};
use std::collections::BTreeSet;

// ---- planted bugs -------------------------------------------------------------------------------

static BROKEN: Planted = Planted::new(
    "ORPHAN_PUSH_BROKEN",
    &[
        "next-after-cas",
        "flag-after-cas",
        "no-retry-reload",
        "stale-next",
        "relaxed-cas",
    ],
);

/// Whether `ORPHAN_PUSH_BROKEN` names `variant` (module doc).
fn broken(variant: &str) -> bool {
    BROKEN.is(variant)
}

// ---- words --------------------------------------------------------------------------------------

/// The header's `orphans` word (`object/layout.rs` `words::ORPHANS`; here at 8, 0 unused).
const ORPHANS: u64 = 8;
/// A container's words (`object/layout.rs` `container`): head (kind | flags << 8), count,
/// `orphan next`; the flag in the head.
const HEAD: u64 = 0;
const REFCNT: u64 = 8;
const ORPHAN_NEXT: u64 = 24;
const ORPHAN_FLAG: u64 = 1 << 8;
/// The containers' kind (a dict's), which the flag's store keeps.
const KIND: u64 = 17;
/// The containers, 32 bytes each.
const X: u64 = 64;
const Y: u64 = 96;
const Z: u64 = 128;
const CONTAINERS: [u64; 3] = [X, Y, Z];
const STORE_BYTES: u64 = 160;

struct World {
    store: MemWords,
}

impl World {
    /// Every container's count 0 (just dropped by the change that pushes it), unflagged,
    /// `orphan next` 0; the list empty.
    fn new() -> World {
        let store = MemWords::new(STORE_BYTES, STORE_BYTES);
        for c in CONTAINERS {
            // Relaxed: before the threads are spawned.
            store.store(c + HEAD, KIND, Ordering::Relaxed).unwrap();
        }
        World { store }
    }

    /// A word, read by the collector (after the joins) or by the model's set-up.
    fn word(&self, at: u64) -> u64 {
        // Relaxed: after the joins, which order every pusher's stores before it.
        self.store.load(at, Ordering::Relaxed).unwrap()
    }

    fn set(&self, at: u64, v: u64) {
        // Relaxed: read only after the joins.
        self.store.store(at, v, Ordering::Relaxed).unwrap()
    }
}

// ---- the push -----------------------------------------------------------------------------------

/// What a push did, as the model records it (outside the words).
#[derive(Clone, Copy, Default)]
struct Push {
    c: u64,
    /// It found the flag at step 1 and returned.
    found_flag: bool,
    /// Its flag store was made.
    flagged: bool,
    /// Its CAS of `orphans` took.
    took: bool,
    failed_cas: u32,
    killed: bool,
    /// Its word accesses.
    spent: u64,
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", name(self.c))?;
        for (did, what) in [
            (self.found_flag, " found the flag"),
            (self.flagged, " flagged"),
            (self.took, " CAS took"),
        ] {
            if did {
                f.write_str(what)?;
            }
        }
        if self.failed_cas > 0 {
            write!(f, " ({} failed)", self.failed_cas)?;
        }
        if self.killed {
            write!(f, " killed after {} accesses", self.spent)?;
        }
        Ok(())
    }
}

/// A container's name in the messages (0: the list's end).
fn name(c: u64) -> String {
    match c {
        0 => "0".into(),
        X => "X".into(),
        Y => "Y".into(),
        Z => "Z".into(),
        _ => format!("{c:#x}"),
    }
}

fn names(list: &[u64]) -> Vec<String> {
    list.iter().map(|&c| name(c)).collect()
}

/// `Store::push_orphan_on_part` of container `c` through `store`, or a planted bug. `pushers`:
/// how many push at once in the model.
fn push_orphan<W: WordStore>(
    store: &W,
    c: u64,
    pushers: u32,
    out: &mut Push,
) -> Result<(), AccessError> {
    // Relaxed: nobody else writes c's head now (its count fell on this part, from 1).
    let head = store.load(c + HEAD, Ordering::Relaxed)?;
    if head & ORPHAN_FLAG != 0 {
        out.found_flag = true;
        return Ok(());
    }
    let flag = |out: &mut Push| -> Result<(), AccessError> {
        // Relaxed: published by the CAS's Release (to the collector: by the drain).
        store.store(c + HEAD, head | ORPHAN_FLAG, Ordering::Relaxed)?;
        out.flagged = true;
        Ok(())
    };
    if !broken("flag-after-cas") {
        flag(out)?;
    }
    // Relaxed: a stale word only fails the CAS.
    let mut first = store.load(ORPHANS, Ordering::Relaxed)?;
    if broken("stale-next") {
        // Relaxed: as below.
        store.store(c + ORPHAN_NEXT, first, Ordering::Relaxed)?;
    }
    let success = if broken("relaxed-cas") {
        Ordering::Relaxed
    } else {
        Ordering::Release
    };
    loop {
        if !broken("next-after-cas") && !broken("stale-next") {
            // Relaxed: published by the CAS's Release (to the collector: by the drain).
            store.store(c + ORPHAN_NEXT, first, Ordering::Relaxed)?;
        }
        // Release: c's flag and link before c is on the list. Relaxed on failure: the word
        // seen is only compared again.
        match store.cas(ORPHANS, first, c, success, Ordering::Relaxed)? {
            Ok(()) => break,
            Err(now) => {
                out.failed_cas += 1;
                assert!(
                    out.failed_cas < pushers,
                    "the push of {} failed its CAS {} times, beside {} other push(es): no \
                     progress (expected {}, found {})",
                    name(c),
                    out.failed_cas,
                    pushers - 1,
                    name(first),
                    name(now)
                );
                if !broken("no-retry-reload") {
                    first = now;
                }
            }
        }
    }
    out.took = true;
    if broken("next-after-cas") {
        // Relaxed: as above.
        store.store(c + ORPHAN_NEXT, first, Ordering::Relaxed)?;
    }
    if broken("flag-after-cas") {
        flag(out)?;
    }
    Ok(())
}

/// A pusher of `c`, killed before its access `k` (u64::MAX: never); a killed one's change is
/// rolled back by its recovery (c's count back to 1; nothing else).
fn pusher(world: &World, c: u64, pushers: u32, k: u64) -> Push {
    let budget = Budget::new(k);
    let store = KillableWords {
        inner: &world.store,
        budget: &budget,
    };
    let mut out = Push {
        c,
        ..Push::default()
    };
    if let Err(e) = push_orphan(&store, c, pushers, &mut out) {
        assert!(
            budget.killed(),
            "the push of {} failed unkilled: {e}",
            name(c)
        );
        out.killed = true;
        world.set(c + REFCNT, 1);
    }
    out.spent = budget.spent();
    out
}

/// The containers whose push CAS took.
fn took(pushes: &[Push]) -> BTreeSet<u64> {
    pushes.iter().filter(|p| p.took).map(|p| p.c).collect()
}

/// The containers a push flagged and left off the list (killed before its CAS took).
fn leaked(pushes: &[Push]) -> BTreeSet<u64> {
    pushes
        .iter()
        .filter(|p| p.flagged && !p.took)
        .map(|p| p.c)
        .collect()
}

// ---- the collector ------------------------------------------------------------------------------

/// The list from `orphans` along `orphan next`, as `collect_orphans_as` walks it (after the
/// joins). Well formed: each word a container of the model, none twice (which bounds the
/// walk: no loop); then each flagged, its kind kept.
fn walk(world: &World, why: &str) -> Vec<u64> {
    let mut list: Vec<u64> = Vec::new();
    let mut c = world.word(ORPHANS);
    while c != 0 {
        assert!(
            CONTAINERS.contains(&c),
            "the list {:?} goes on to {c:#x}, no container ({why})",
            names(&list)
        );
        assert!(
            !list.contains(&c),
            "{} is on the list twice (or the list loops): {:?} then {} ({why})",
            name(c),
            names(&list),
            name(c)
        );
        list.push(c);
        c = world.word(c + ORPHAN_NEXT);
    }
    for &c in &list {
        let head = world.word(c + HEAD);
        assert!(
            head & ORPHAN_FLAG != 0,
            "{} is on the list {:?} unflagged: head {head:#x} ({why})",
            name(c),
            names(&list)
        );
        assert_eq!(
            head & !ORPHAN_FLAG,
            KIND,
            "{}'s kind changed ({why})",
            name(c)
        );
    }
    list
}

/// The collector: the list walked and checked, then rewritten as the tree does. The list holds
/// exactly `listed` (the containers whose push CAS took, and those an earlier collection kept);
/// every other container is unflagged, unless in `leaked` (flagged: the leak to gc). Then the
/// containers with count 0 are kept (all are held here), the others (their change rolled back)
/// unflagged and dropped. What it kept, in list order.
fn collect(world: &World, listed: &BTreeSet<u64>, leaked: &BTreeSet<u64>, why: &str) -> Vec<u64> {
    let list = walk(world, why);
    let on: BTreeSet<u64> = list.iter().copied().collect();
    assert_eq!(
        &on,
        listed,
        "the list {:?} is not the containers whose push took, {:?} ({why})",
        names(&list),
        names(&listed.iter().copied().collect::<Vec<_>>())
    );
    for c in CONTAINERS.into_iter().filter(|c| !on.contains(c)) {
        let flagged = world.word(c + HEAD) & ORPHAN_FLAG != 0;
        assert_eq!(
            flagged,
            leaked.contains(&c),
            "{} is off the list, flagged: {flagged} ({why})",
            name(c)
        );
    }
    let keep: Vec<u64> = list
        .iter()
        .copied()
        .filter(|&c| world.word(c + REFCNT) == 0)
        .collect();
    for &c in list.iter().filter(|c| !keep.contains(c)) {
        world.set(c + HEAD, world.word(c + HEAD) & !ORPHAN_FLAG);
    }
    let mut first = 0;
    for &k in keep.iter().rev() {
        world.set(k + ORPHAN_NEXT, first);
        first = k;
    }
    world.set(ORPHANS, first);
    keep
}

// ---- the runner ---------------------------------------------------------------------------------

/// What one execution of a scenario with two killed pushers reports.
struct Run {
    spent: [u64; 2],
    /// The leak was reached: a push flagged its container and died before its CAS took.
    leaked: bool,
}

/// Runs `scenario(ka, kb)` as a loom model for every pair of kill points of its two killed
/// pushers, u64::MAX (not killed) included: first A's (counted unkilled), then for each B's
/// (counted with A killed there: what B does depends on it). Kill points are counted as the
/// most over every interleaving (a push's retries vary). How many executions reached the leak.
fn every_kill_pair_of_two(scenario: fn(u64, u64) -> Run) -> u64 {
    let run = |ka: u64, kb: u64| {
        let out = std::sync::Arc::new(std::sync::Mutex::new(([0u64; 2], 0u64, 0u64)));
        let o = out.clone();
        model(move || {
            let r = scenario(ka, kb);
            let mut o = o.lock().unwrap();
            o.0 = [o.0[0].max(r.spent[0]), o.0[1].max(r.spent[1])];
            o.1 += u64::from(r.leaked);
            o.2 += 1;
        });
        let r = *out.lock().unwrap();
        r
    };
    let ([na, _], _, _) = run(u64::MAX, u64::MAX);
    let (mut pairs, mut leaks, mut runs) = (0, 0, 0);
    for ka in (0..na).chain([u64::MAX]) {
        let ([_, nb], l, n) = run(ka, u64::MAX);
        (leaks, runs) = (leaks + l, runs + n);
        for kb in 0..nb {
            let (_, l, n) = run(ka, kb);
            (leaks, runs) = (leaks + l, runs + n);
        }
        pairs += nb + 1;
    }
    if std::env::var_os("LOOM_TESTS_VERBOSE").is_some() {
        eprintln!("{na} kill points of A, {pairs} pairs, {runs} executions, {leaks} with the leak");
    }
    leaks
}

// ---- 1. two pushers -----------------------------------------------------------------------------

fn two_pushers(ka: u64, kb: u64) -> Run {
    let world = Arc::new(World::new());
    let b = {
        let world = world.clone();
        thread::spawn(move || pusher(&world, Y, 2, kb))
    };
    let a = pusher(&world, X, 2, ka);
    let b = b.join().unwrap();
    let pushes = [a, b];
    let why = format!("{pushes:?}");
    let leaked = leaked(&pushes);
    collect(&world, &took(&pushes), &leaked, &why);
    Run {
        spent: [a.spent, b.spent],
        leaked: !leaked.is_empty(),
    }
}

#[test]
fn two_pushers_killed_anywhere_leave_a_well_formed_list() {
    let leaks = every_kill_pair_of_two(two_pushers);
    assert!(
        leaks > 0,
        "no execution reached the leak (flagged, off the list)"
    );
}

// ---- 2. three pushers ---------------------------------------------------------------------------

fn three_pushers(ka: u64, kb: u64) -> Run {
    let world = Arc::new(World::new());
    let spawn = |c: u64, k: u64| {
        let world = world.clone();
        thread::spawn(move || pusher(&world, c, 3, k))
    };
    let (b, z) = (spawn(Y, kb), spawn(Z, u64::MAX));
    let a = pusher(&world, X, 3, ka);
    let pushes = [a, b.join().unwrap(), z.join().unwrap()];
    let why = format!("{pushes:?}");
    let leaked = leaked(&pushes);
    collect(&world, &took(&pushes), &leaked, &why);
    Run {
        spent: [a.spent, pushes[1].spent],
        leaked: !leaked.is_empty(),
    }
}

#[test]
fn three_pushers_leave_a_well_formed_list() {
    every_kill_pair_of_two(three_pushers);
}

// ---- 3. a container pushed again ----------------------------------------------------------------

/// A pushes X (killed before its access `ka`, or not) beside a live push of Y; X's change is
/// rolled back (count 1: by A's recovery, or by A's own failure later); a collection if
/// `COLLECT`; X's count falls to 0 again and B pushes it (killed before its access `kb`, or
/// not) beside a live push of Z; then the collector.
fn pushed_again<const COLLECT: bool>(ka: u64, kb: u64) -> Run {
    let world = Arc::new(World::new());
    let y = {
        let world = world.clone();
        thread::spawn(move || pusher(&world, Y, 2, u64::MAX))
    };
    let a = pusher(&world, X, 2, ka);
    let first = [a, y.join().unwrap()];
    world.set(X + REFCNT, 1);
    let mut why = format!("first {first:?}");
    let mut listed = took(&first);
    let mut leaked = leaked(&first);
    if COLLECT {
        listed = collect(&world, &listed, &leaked, &why)
            .into_iter()
            .collect();
        why += ", collected";
    }
    let x_flagged = world.word(X + HEAD) & ORPHAN_FLAG != 0;
    world.set(X + REFCNT, 0);
    let z = {
        let world = world.clone();
        thread::spawn(move || pusher(&world, Z, 2, u64::MAX))
    };
    let b = pusher(&world, X, 2, kb);
    let then = [b, z.join().unwrap()];
    why += &format!(", then {then:?}");
    if b.spent > 0 {
        assert_eq!(
            b.found_flag, x_flagged,
            "B found the flag: {}, X flagged: {x_flagged} ({why})",
            b.found_flag
        );
    }
    listed.extend(took(&then));
    leaked.extend(self::leaked(&then));
    collect(&world, &listed, &leaked, &why);
    Run {
        spent: [a.spent, b.spent],
        leaked: !leaked.is_empty(),
    }
}

#[test]
fn a_container_pushed_again_is_listed_once() {
    every_kill_point(|ka| pushed_again::<false>(ka, u64::MAX).spent[0]);
    let leaks = every_kill_pair_of_two(pushed_again::<false>);
    assert!(
        leaks > 0,
        "no execution reached the leak (flagged, off the list)"
    );
    every_kill_pair_of_two(pushed_again::<true>);
}

// ---- 4. a walker through the head ---------------------------------------------------------------

/// What a walker that synchronizes through `orphans` alone reads: (container, head, next) of
/// each container it reaches, at most one step per container.
fn walk_through_head(world: &World) -> Vec<(u64, u64, u64)> {
    // Acquire: pairs with the pushes' Release (and their release sequence): the walker's only
    // synchronization with the pushers.
    let mut c = world.store.load(ORPHANS, Ordering::Acquire).unwrap();
    let mut seen = Vec::new();
    while c != 0 && seen.len() < CONTAINERS.len() {
        // Relaxed: ordered after the Acquire above.
        let head = world.store.load(c + HEAD, Ordering::Relaxed).unwrap();
        let next = world
            .store
            .load(c + ORPHAN_NEXT, Ordering::Relaxed)
            .unwrap();
        seen.push((c, head, next));
        c = next;
    }
    seen
}

#[test]
fn a_walker_through_the_head_reads_whole_links() {
    model(|| {
        let world = Arc::new(World::new());
        let walker = {
            let world = world.clone();
            thread::spawn(move || walk_through_head(&world))
        };
        let b = {
            let world = world.clone();
            thread::spawn(move || pusher(&world, Y, 2, u64::MAX))
        };
        let a = pusher(&world, X, 2, u64::MAX);
        let pushes = [a, b.join().unwrap()];
        let seen = walker.join().unwrap();
        let read: Vec<String> = seen
            .iter()
            .map(|&(c, head, next)| format!("{} (head {head:#x}) -> {}", name(c), name(next)))
            .collect();
        let why = format!("{pushes:?}; the walker read {read:?}");
        for &(c, head, next) in &seen {
            assert!(
                head & ORPHAN_FLAG != 0,
                "the walker reached {} unflagged: head {head:#x} ({why})",
                name(c)
            );
            let stored = world.word(c + ORPHAN_NEXT);
            assert_eq!(
                next,
                stored,
                "the walker read {}'s next {}, its pusher stored {} ({why})",
                name(c),
                name(next),
                name(stored)
            );
        }
        collect(&world, &took(&pushes), &leaked(&pushes), &why);
    });
}
