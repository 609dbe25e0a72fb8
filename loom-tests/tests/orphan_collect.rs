//! The orphan list collected on a part of its own (`object/orphans.rs`
//! `collect_orphans_on_part`, `unlink_collectable_orphans`, `unlink_orphan`, `orphan_before`,
//! `relist`; FORMAT.md §10.5, "Collection on a part"), beside the pushes of part changes
//! (`object/encode.rs` `push_orphan_on_part`), the collector killed anywhere and rolled back by
//! a recoverer (itself killed anywhere and repeated), two collectors taking turns, and a part
//! change that holds the container it pushes until it has committed or rolled back (`encode.rs`
//! `collect_container`, `parts.rs` `end_part`) beside a collector that reads the held sets and
//! the counts.
//!
//! The protocol. The store header's word `orphans` heads a singly linked list of containers
//! (0: empty), linked through each container's `orphan next` word; a listed container carries
//! ORPHAN_FLAG in its head word. Part changes push on it, several at once (`orphan_push.rs`):
//! the flag stored (Relaxed), then loop { `orphan next` = `first` (Relaxed); CAS `orphans`
//! `first` -> c (Release; Relaxed on failure, `first` = the word seen) }; a flagged container
//! is never pushed. A collector takes the list's own part word (`words::ORPHANS_PART`, even ->
//! odd, Acquire; one collector at a time, and every other writer of the list but the pushers
//! waits for it), then: `orphans` loaded (Acquire), `kept` = None; for each container c walked,
//! `next` = c's `orphan next` (Relaxed); c held by a process (fixed by the set-up in models 1
//! to 5; the pushed containers are all held, as a part change pushes only a held container;
//! models 6 and 7 read the held sets and the count, below): `kept` = c;
//! else (1) an `OrphanUnlinked` entry naming c appended to its undo log (the entry, then the
//! length, Release), (2) c taken off (`unlink_orphan`): `kept` = p: p's `orphan next` = `next`
//! (Relaxed); None: CAS `orphans` c -> `next` (Relaxed), and where it fails (pushed in front of
//! c since), the walk from the word it saw along `orphan next` to the p that links to c
//! (`orphan_before`), and p's `orphan next` = `next`; (3) c freed at the commit. The commit:
//! the log's length 0 (the commit point), then the frees (the model records them: a freed
//! container must not be reachable from `orphans`), then the part released (odd -> even,
//! Release). A collector killed before its commit point is rolled back by a recoverer (on its
//! thread here: the kernel's hand-over orders the dead's accesses before it) while the pushers
//! go on: each entry, newest first, by `relist` (c's head loaded, Acquire, flagged; the list
//! walked from `orphans`, Acquire, looking for c; not there: pushed back as a pusher pushes
//! it, its flag already set), the log's length set to 0 at the end, and only then the part
//! released (where the dead's held-parts record still names it). A recoverer killed part-way
//! is followed by another, which runs every entry again (found on the list: nothing done). A
//! collector killed after its commit point leaves nothing to relist (its recoverer finishes its
//! frees, and releases the part). Every word step is copied here (`push_orphan`, `collect`,
//! `unlink_orphan`, `orphan_before`, `relist`, `recoverer`, with the planted bugs in them):
//! `object` is not built under loom.
//!
//! The part change's hold (models 6, 7). A part change P drops container X (its count 1 -> 0)
//! while a process H holds it, and pushes X on the list before its commit point; P may still
//! roll back (a later release refuses the part: `part_commit`), which restores X's count to 1
//! and its parent's word to X (X then listed with a count above 0: collectors leave it to the
//! store-wide walk). Had H let go meanwhile, a collector could free X, and the rollback would
//! link a freed container. So P holds X itself (its held word = X, SeqCst, then a SeqCst fence,
//! as `HeldSet::hold`) before its push, and lets go of it (its word 0) only once its change has
//! committed or rolled back (`end_part`; a dead P's recovery clears its held set, step 4, after
//! its rollback, step 2). The collector reads the held sets (a SeqCst fence, then each held
//! word, SeqCst: `HeldScan::read`) after its Acquire of the head, and each walked container's
//! count (Relaxed; not 0: the part refused, nothing changed) after the held sets. A container X
//! it walked was pushed by a CAS its Acquire read (or one before it), so P's hold, stored before
//! that CAS, is seen by its scan, or P's unhold, stored after P's rollback; and a scan that
//! read the unhold (SeqCst, read by a SeqCst load: they synchronize) orders the rollback's
//! count 1 before the count the collector reads next: it refuses. So the held sets are read
//! right after the head (where the list is not empty), before any count, as the tree now reads
//! them (`unlink_collectable_orphans`). The tree's first order read them at its first
//! `held_now`, after the first orphan's `refcount` check (`count-before-scan` below): the count
//! of a pushed X read as 0 before P's rollback, then the held sets read after P's unhold and
//! H's, and X freed while the rollback links it. Models 6 and 7 found that.
//!
//! The head's CAS in `unlink_orphan` is Acquire on failure: it reads the head a push stored, and
//! `orphan_before` then reads the links of the containers pushed since. With Relaxed
//! (`relaxed-cas-failure` below; the first version of the tree had it, and this model found
//! it), nothing orders a pusher's store of its `orphan next` before those loads: the collector
//! may read the link a pushed container had before its push (0 here) and report `Corrupt` ("an
//! orphan being collected is not on the orphan list").
//!
//! # The models
//!
//! Seven. Models 1 to 5 each run the collector killed before each of its accesses and not at all
//! (its kill points counted as the most over every interleaving: the CAS-failed path makes more
//! accesses; the part's take is not one, `part_lock.rs` models it), the pushers live. After the
//! joins: the list is well formed (each word a container of the model, none twice, no loop, none
//! freed, each flagged with its kind kept), and it holds exactly the pushed containers (every push
//! takes), the held initial ones, and the initial ones no committed collection took off (all of
//! them where the collector died before its commit point, none of the unheld where it committed);
//! nothing freed twice; the part free and every log empty.
//!
//! 1. `a_collection_killed_anywhere_beside_two_pushes`: the list [A, B], none held, X and Y
//!    pushed beside the collection. The test asserts that some recoverer found an entry's
//!    orphan still on the list (killed between its log entry and its unlink).
//! 2. `a_collection_killed_anywhere_keeps_the_held`: the list [A, B, C] beside pushes of X and
//!    Y, B held (C is taken off through the link of kept B), then A held (B and C behind it).
//! 3. `the_head_is_taken_off_behind_pushes`: the list [A] beside pushes of X and Y: the
//!    head's CAS fails and A's predecessor is found 1 link (X) and 2 links (Y, X) from the
//!    head; the test asserts both are reached.
//! 4. `a_recoverer_killed_anywhere_is_repeated`: the list [A, B] beside a push of X; for each
//!    kill point of the collector, its first recoverer killed before each of its accesses
//!    (and not), then a second one whole. The test asserts that some repeat found on the list
//!    an orphan its killed predecessor had relisted.
//! 5. `two_collectors_take_turns`: the list [A, B] beside a push of X; collector 0 (killed
//!    anywhere, recovered as in 1) and collector 1 (live, in a thread of its own, spinning
//!    while the part is odd). Each asserts, on taking the part, that no other collector holds
//!    it (a dead one's hold lasts until its recoverer releases it); the second to take it
//!    walks a list holding every initial orphan the first did not free. Why `relist` runs
//!    before the part is released.
//! 6. `a_push_rolled_back_is_never_collected`: X (count 1, linked from its parent's word, held
//!    by H) dropped by a part change P: its parent's word 0 and its count 0 (logged, Relaxed);
//!    the held sets read (a SeqCst fence, then H's word); H's hold found: X held by P, then
//!    pushed (no hold found: X freed at P's commit, pushed nowhere); then P rolls back (count
//!    1, the parent's word X) and lets go. Beside it H lets go of X, and a live collector
//!    walks the list (empty, then [A], unheld): held words read after its head, a count not 0
//!    refused (nothing changed: its log is empty, since X, pushed last, is walked first), the
//!    others as in 1. P killed before each of its accesses and not: its recovery, on its
//!    thread, rolls the change back, then clears its held word. After the joins: X freed at
//!    most once, and not while its parent's word links it; the parent's word and X's count
//!    those of P's change (rolled back: X, 1; committed: 0, 0); the list well formed, holding
//!    the initial orphans not freed and X where P's CAS took and nobody freed it (P killed
//!    between its flag and its CAS leaks X, as in `orphan_push.rs`); the held words, the part
//!    and the log empty. At its commit point the collector asserts that neither H nor P holds
//!    an X it frees (the holds as the model records them). The test asserts that some
//!    collector kept X on P's hold alone (it read H's word after H let go), and that some met
//!    X with its count back to 1.
//! 7. `a_committed_push_is_collected_once`: as 6, but P commits (its log's length 0, the commit
//!    point) before it lets go; killed before its commit point, it is rolled back as in 6. X
//!    is freed by the collector (after P's unhold), or by P (its read of the held sets missed
//!    H's hold), or stays listed, never twice. The test asserts that some collector freed X,
//!    and some kept it on P's hold alone.
//!
//! # Planted bugs
//!
//! `ORPHAN_COLLECT_BROKEN` names one (unset: every step the tree's, but the order of the
//! collector's held sets and counts, above). Which models fail, at LOOM_MAX_PREEMPTIONS=2, and
//! the first message:
//!
//! | variant | what it breaks | fails |
//! |---|---|---|
//! | `log-after-unlink` | the entry logged after the unlink, not before | 1 to 5 (1's message): "the list ["Y", "X", "B"] is not ["A", "B", "X", "Y"] (pushed, and initial less freed []) (collector 0: walked ["A"], logged [], took off [A (head CAS)], killed after 3 accesses; [recoverer: relisted [], found []]; pushes [X: CAS took (1 failed), Y: CAS took (1 failed)])" (killed between the two: A lost); 5: "collector 1 walked ["B"] after collector 0, which did not free A (...)"; 6, 7 pass (no collector is killed there) |
//! | `relist-blind` | `relist` pushes back without looking for c on the list | 1 to 5 (1's message): "A is on the list twice (or the list loops): ["Y", "X", "A"] then A (collector 0: walked ["A"], logged ["A"], took off [], killed after 4 accesses; [recoverer: relisted ["A"], found []]; pushes [X: CAS took, Y: CAS took (1 failed)])" (killed between the entry and the unlink: A, still listed, pushed again); 5: "the collector's walk loops: ["A"] then A (collector 1: ...)"; 6, 7 pass (their refusals have nothing to relist) |
//! | `head-cas-blind` | the head's CAS failed: `orphans` = `next` stored anyway | 1 to 7 (1's message): "the list ["Y"] is not ["X", "Y"] (pushed, and initial less freed ["A", "B"]) (collector 0: walked ["A", "B"], logged ["A", "B"], took off [A (head CAS), B (CAS failed, head stored)], committed; []; pushes [X: CAS took (1 failed), Y: CAS took (1 failed)])" (X lost); 6 (and 7): "the list [] is not ["X"] (X if pushed, and initial, less freed ["A"]) (P: saw H's hold, push [X: CAS took], held X, rolled back; collector 0: walked ["A"], logged ["A"], took off [A (CAS failed, head stored)], held words read H X, P 0, committed)" |
//! | `no-predecessor` | the head's CAS failed: nothing done | 1 to 4, 6, 7 (1's message): "B is on the list ["Y", "X"] and freed (collector 0: walked ["A", "B"], logged ["A", "B"], took off [A (head CAS), B (CAS failed, left)], committed; []; pushes [X: CAS took (1 failed), Y: CAS took (1 failed)])"; 5: "B freed twice (... collector 1: walked ["X", "B"], logged ["B"], took off [B (after kept X)], committed; ...)"; 6 (and 7): "A is on the list ["X"] and freed (P: saw H's hold, push [X: CAS took], held X, rolled back; collector 0: walked ["A"], logged ["A"], took off [A (CAS failed, left)], held words read H X, P 0, committed)" |
//! | `release-before-relist` | the recoverer releases the part before it relists | 5 only: "collector 1 walked ["B"] after collector 0, which did not free A (collector 0: walked ["A", "B"], logged ["A"], took off [A (head CAS)], killed after 5 accesses; [recoverer: relisted ["A"], found []]; collector 1: walked ["B"], logged ["B"], took off [B (CAS failed, found A in 1)], committed; took the part in the order [0, 1]; pushes [X: CAS took])"; 1 to 4, 6, 7 pass (nobody else takes the part) |
//! | `relaxed-cas-failure` | the head's CAS Relaxed on failure (the tree's first version) | 1 to 7 (1's message): "an orphan being collected is not on the orphan list: B not found from X (walked ["X"], then 0)" (X's link read as before its push); 6, 7: "... A not found from X (walked ["X"], then 0)" |
//! | `relaxed-relist-walk` | `relist`'s walk Relaxed, not Acquire | 1, 2, 4, 5 (1's message): "the list ["Y", "B", "X"] is not ["A", "B", "X", "Y"] (pushed, and initial less freed []) (collector 0: walked ["A", "B"], logged ["A", "B"], took off [A (head CAS), B (head CAS)], killed after 9 accesses; [recoverer: relisted ["B"], found ["A"]]; pushes [X: CAS took (1 failed), Y: CAS took (1 failed)])" (X's link read as its pusher's first try, A: A taken to be listed, and lost); 3, 6, 7 pass |
//! | `no-pusher-hold` | P does not hold X (the tree before its fix) | 6, 7 only (6's message): "X freed while its parent links it (P: saw H's hold, push [X: CAS took], rolled back; collector 0: walked ["X"], logged ["X"], took off [X (head CAS)], held words read H 0, P 0, committed)" (H let go before the collector's scan, and P's rollback linked the freed X); 7 with P killed before its commit point (so rolled back): "X freed while its parent links it (P: saw H's hold, push [X: CAS took], killed after 8 accesses, rolled back; ...)"; a P that commits loses nothing by it |
//! | `hold-after-push` | P holds X after its push's CAS, not before | 6, 7 only (6's message): "X freed while its parent links it (P: saw H's hold, push [X: CAS took], held X, rolled back; collector 0: walked ["X"], logged ["X"], took off [X (head CAS)], held words read H 0, P 0, committed)" (the collector walked X and read the held words between P's CAS and its hold); 7: as `no-pusher-hold` |
//! | `unhold-before-rollback` | P lets go of X before its rollback (or its commit), not after | 6, 7 only (6's message): "X freed while its parent links it (P: saw H's hold, push [X: CAS took], held X, rolled back; collector 0: walked ["X"], logged ["X"], took off [X (head CAS)], held words read H 0, P 0, committed)" (its scan read P's unhold, its count read before the rollback); 7: "... killed after 10 accesses, rolled back; ..." |
//! | `count-before-scan` | the collector reads the held sets at the first held question, after the first orphan's count: the tree's first order | 6, 7 only (6's message): "X freed while its parent links it (P: saw H's hold, push [X: CAS took], held X, rolled back; collector 0: walked ["X"], logged ["X"], took off [X (head CAS)], held words read H 0, P 0, committed)" (X's count read as 0 before P's rollback, the held words after P's unhold and H's); 7: "... killed after 9 accesses, rolled back; ..." |
//!
//! # What loom cannot see
//!
//! A kill is a prefix of the collector's (or recoverer's) accesses in program order. The
//! recoverer runs on the dead collector's thread, so program order stands for the kernel's
//! hand-over (the liveness and recovery locks): the Acquire of the log's length adds nothing
//! here. What runs at once, and is tested, is the collector (or a recoverer) beside the
//! pushers, through `orphans` and the pushed containers' links (the walk's Acquire, the head
//! CAS's Acquire on failure, `relist`'s Acquire walk), and a collector beside the next one,
//! through the part word (its Release and Acquire). A pusher reads no container's words but
//! its own, and `orphans`: nothing the collector writes behind the head reaches it. The
//! collector's unlinking CAS is Relaxed on success: a pusher whose CAS follows it reads only
//! the word, and the next collector synchronizes through the part word.
//!
//! In models 6 and 7 a kill is a prefix of P's accesses, and its recovery runs on its thread
//! (the same hand-over); the collector is not killed (1 to 5 kill it; a kill rolls back as its
//! refusal does). What runs at once is P, H and the collector, through `orphans` (P's Release
//! CAS, the collector's Acquire), the held words (SeqCst), X's count and its parent's word.
//! The hold must come before the push (`hold-after-push` fails with no reordering at all: the
//! collector walks X and reads the held words between P's CAS and P's hold), but it needs
//! neither its SeqCst nor its fence here: P's Release CAS orders the hold before the
//! collector's scan, which follows its Acquire of the head, so the scan reads the hold or a
//! later store (a Relaxed hold with no fence passes 6 and 7 at LOOM_MAX_PREEMPTIONS=3; tried,
//! not planted). They are for the readers' handshake (`held.rs`: a reader's hold before its
//! re-check of the part), not modelled here: H's hold is set up before everything, and P's
//! read of the held sets only decides whether it pushes X or frees it.
//!
//! # Not modelled
//!
//! The part word's take and the held-parts record (`part_lock.rs`; here the take is uncounted,
//! and whether the part is still to release is the model's record); the held sets and their
//! scan in 1 to 5 (`held_now`: fixed by the set-up; in 6 and 7 one word per process, with no
//! held blocks, `slots high` nor read-only pins); what refuses the part
//! (`orphan_releases_on_part`, more releases than a part change logs; a count above 0 only in
//! 6 and 7): a refused collection rolls back through the same `relist`, on its own thread,
//! which a kill at the same point models; the store-wide collection that follows a refusal
//! (which takes X, linked again, off the list and unflags it); H's unhold's read of X's count
//! (a hint to collect); P and H in one process (then `hold` counts P's hold on H's entry); the
//! frees themselves (free-block entries, the release cursor, `finish_frees` after the part is
//! released: the freed containers are off the list since the commit point, and the model
//! records them); the other entries of the log; killed pushers (`orphan_push.rs`); the
//! store-wide writers of the list; durable stores' barriers.
//!
//! # Cost
//!
//! Release build, this 2-core machine: at LOOM_MAX_PREEMPTIONS=2 the whole file in 1.6 s of tests
//! (about 6 s with `cargo test`'s start); model 1: 17 kill points, 9619 executions, 0.5 s; 2: 15
//! and 12 kill points, 7168 executions, 0.4 s; 3: 10 kill points, 1770 executions, 0.1 s; 4: 15
//! kill points of the collector, 168 (collector, recoverer) runs, 3670 executions, 0.15 s; 5: 15
//! kill points, 15275 executions, 0.8 s. At 3: 8.8 s of tests (1: 44726 executions, 2.4 s; 2:
//! 28894, 1.6 s; 3: 5870, 0.3 s; 4: 7274, 0.3 s; 5: 89576, 4.8 s). With two pushers, model 4 takes
//! 9.6 s at 2 and model 5 56 s: one pusher there. Each planted variant: the whole file in under a
//! second. With models 6 and 7 (measured later, on a busier machine: 1 to 5 then took 2.3 s at 2):
//! the whole file in 2.5 to 2.8 s of tests at 2, 12.3 s at 3; model 6: 12 and 14 kill points of P
//! (list empty, then [A]), 1158 + 3678 executions, 0.25 s (at 3: 3872 + 16063, 1.1 s); 7: 11 and 13
//! kill points, 777 + 2845 executions, 0.2 s (at 3: 2336 + 12099, 0.8 s). Each planted variant: the
//! whole file in 0.2 to 2.5 s (the models it does not break run whole).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{model, Budget, KillableWords, Planted};
use persist::sync::{fence, AccessError, MemWords, Ordering, WordStore};
use std::collections::BTreeSet;
use std::sync::Mutex as StdMutex;

// ---- planted bugs -------------------------------------------------------------------------------

static BROKEN: Planted = Planted::new(
    "ORPHAN_COLLECT_BROKEN",
    &[
        "log-after-unlink",
        "relist-blind",
        "head-cas-blind",
        "no-predecessor",
        "release-before-relist",
        "relaxed-cas-failure",
        "relaxed-relist-walk",
        "no-pusher-hold",
        "hold-after-push",
        "unhold-before-rollback",
        "count-before-scan",
    ],
);

/// Whether `ORPHAN_COLLECT_BROKEN` names `variant` (module doc).
fn broken(variant: &str) -> bool {
    BROKEN.is(variant)
}

// ---- words --------------------------------------------------------------------------------------

/// The header's `orphans` word (`object/layout.rs` `words::ORPHANS`; here at 8, 0 unused).
const ORPHANS: u64 = 8;
/// The orphan list's part word (`words::ORPHANS_PART`): even, free; odd, held.
const PART: u64 = 16;
/// Each collector's undo log: its length word, then `LOG_CAP` entries of one word each (the
/// container an `OrphanUnlinked` entry names).
const LOGS: u64 = 32;
const LOG_CAP: u64 = 4;
const LOG_BYTES: u64 = 8 + 8 * LOG_CAP;
/// A container's words (`object/layout.rs` `container`): head (kind | flags << 8), its count
/// (models 6 and 7 only: 0 elsewhere, and not read) and `orphan next`; the flag in the head.
const HEAD: u64 = 0;
const REFCNT: u64 = 8;
const ORPHAN_NEXT: u64 = 24;
const ORPHAN_FLAG: u64 = 1 << 8;
/// The containers' kind (a dict's), which the flag's store keeps.
const KIND: u64 = 17;
/// The containers, 32 bytes each: A, B, C on the list at the start; X, Y pushed beside the
/// collection.
const A: u64 = 128;
const B: u64 = 160;
const C: u64 = 192;
const X: u64 = 224;
const Y: u64 = 256;
const CONTAINERS: [u64; 5] = [A, B, C, X, Y];
/// Models 6 and 7: the word of X's parent that links it (X, or 0 once the part change unlinked it),
/// the held words of H (the process whose proxy holds X) and of P (the part change that drops
/// X), each X or 0 (one entry of each process's held set), and P's undo log's length (its
/// commit point).
const PARENT: u64 = 288;
const H_HELD: u64 = 296;
const P_HELD: u64 = 304;
const P_LOG: u64 = 312;
const STORE_BYTES: u64 = 320;

/// Where collector `id`'s log lies.
fn log_of(id: u32) -> u64 {
    LOGS + id as u64 * LOG_BYTES
}

/// What a model starts from: the list's containers (in list order), those of them that a
/// process holds, and the containers pushed beside the collection (each held by a process:
/// a part change pushes only a container that a process holds). `scan` (models 6, 7): the
/// collector reads the held words H_HELD and P_HELD (after a SeqCst fence) instead of `held`,
/// and a walked container's count (refusing the part where it is not 0).
#[derive(Clone, Copy)]
struct Setup {
    initial: &'static [u64],
    held: &'static [u64],
    pushed: &'static [u64],
    scan: bool,
}

impl Setup {
    /// The containers a collector keeps: every held one, the pushed ones included.
    fn holds(&self, c: u64) -> bool {
        self.held.contains(&c) || self.pushed.contains(&c)
    }
}

struct World {
    store: MemWords,
    /// The collector that holds the part (or whose recoverer has yet to release it), as the
    /// model records it (outside the words), and the order in which collectors took it.
    holder: StdMutex<(Option<u32>, Vec<u32>)>,
    /// Models 6, 7: whether H's and P's held words name X now, as the model records it (outside
    /// the words: set and cleared with no loom step between the store and the record).
    holds_x: StdMutex<[bool; 2]>,
}

impl World {
    /// The list `setup.initial`, each of its containers flagged; the pushed ones unflagged,
    /// their `orphan next` 0; the part free; the logs empty.
    fn new(setup: &Setup) -> World {
        let store = MemWords::new(STORE_BYTES, STORE_BYTES);
        // Relaxed (all): before the threads are spawned.
        for c in CONTAINERS {
            store.store(c + HEAD, KIND, Ordering::Relaxed).unwrap();
        }
        let mut next = 0;
        for &c in setup.initial.iter().rev() {
            store
                .store(c + HEAD, KIND | ORPHAN_FLAG, Ordering::Relaxed)
                .unwrap();
            store
                .store(c + ORPHAN_NEXT, next, Ordering::Relaxed)
                .unwrap();
            next = c;
        }
        store.store(ORPHANS, next, Ordering::Relaxed).unwrap();
        World {
            store,
            holder: StdMutex::new((None, Vec::new())),
            holds_x: StdMutex::new([false; 2]),
        }
    }

    /// A word, read after the joins.
    fn word(&self, at: u64) -> u64 {
        // Relaxed: after the joins, which order every thread's stores before it.
        self.store.load(at, Ordering::Relaxed).unwrap()
    }
}

/// A container's name in the messages (0: the list's end).
fn name(c: u64) -> String {
    match c {
        0 => "0".into(),
        A => "A".into(),
        B => "B".into(),
        C => "C".into(),
        X => "X".into(),
        Y => "Y".into(),
        _ => format!("{c:#x}"),
    }
}

fn names<'a>(list: impl IntoIterator<Item = &'a u64>) -> Vec<String> {
    list.into_iter().map(|&c| name(c)).collect()
}

// ---- the push -----------------------------------------------------------------------------------

/// What a push did.
#[derive(Clone, Copy, Default)]
struct Push {
    c: u64,
    took: bool,
    failed_cas: u32,
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", name(self.c))?;
        if self.took {
            f.write_str(" CAS took")?;
        }
        if self.failed_cas > 0 {
            write!(f, " ({} failed)", self.failed_cas)?;
        }
        Ok(())
    }
}

/// `Store::push_orphan_on_part` of container `out.c` (live here but in models 6 and 7, where
/// its part change is killed anywhere; `orphan_push.rs` kills pushers).
fn push_orphan(store: &impl WordStore, out: &mut Push) -> Result<(), AccessError> {
    let c = out.c;
    // Relaxed: nobody else writes c's head now (its count fell on this part).
    let head = store.load(c + HEAD, Ordering::Relaxed)?;
    assert_eq!(
        head & ORPHAN_FLAG,
        0,
        "{} is flagged before its push",
        name(c)
    );
    // Relaxed: published by the CAS's Release.
    store.store(c + HEAD, head | ORPHAN_FLAG, Ordering::Relaxed)?;
    // Relaxed: a stale word only fails the CAS.
    let mut first = store.load(ORPHANS, Ordering::Relaxed)?;
    loop {
        // Relaxed: published by the CAS's Release.
        store.store(c + ORPHAN_NEXT, first, Ordering::Relaxed)?;
        // Release: c's flag and link before c is on the list.
        match store.cas(ORPHANS, first, c, Ordering::Release, Ordering::Relaxed)? {
            Ok(()) => break,
            Err(now) => {
                out.failed_cas += 1;
                // A CAS fails only when another CAS of the head took in between: another
                // push, a collector's, a relist's. Bounded: a livelock fails the model.
                assert!(
                    out.failed_cas <= 8,
                    "the push of {} failed its CAS {} times: no progress (expected {}, found {})",
                    name(c),
                    out.failed_cas,
                    name(first),
                    name(now)
                );
                first = now;
            }
        }
    }
    out.took = true;
    Ok(())
}

fn spawn_pushers(world: &Arc<World>, setup: &Setup) -> Vec<thread::JoinHandle<Push>> {
    setup
        .pushed
        .iter()
        .map(|&c| {
            let world = world.clone();
            thread::spawn(move || {
                let mut out = Push {
                    c,
                    ..Push::default()
                };
                push_orphan(&world.store, &mut out).unwrap();
                out
            })
        })
        .collect()
}

// ---- the collector ------------------------------------------------------------------------------

/// How the collector took an orphan off the list.
#[derive(Clone, Copy)]
enum How {
    /// By the CAS of the head.
    Head,
    /// By a store to the link of the orphan kept before it.
    After(u64),
    /// The head's CAS failed; by a store to the link of the orphan found before it (how many
    /// links the search followed).
    Found(u64, u32),
    /// `head-cas-blind`: the head stored with what followed it.
    Blind,
    /// `no-predecessor`: nothing done.
    Left,
}

/// What a collection did, as the model records it (outside the words): what its held-parts
/// record (`holding`) and its log say, and what it did.
#[derive(Clone, Default)]
struct Collection {
    id: u32,
    /// The part word's value while held (odd).
    part: u64,
    /// Its held-parts record names the part: its release (by it, or by its recoverer) is
    /// still to come.
    holding: bool,
    walked: Vec<u64>,
    logged: Vec<u64>,
    unlinked: Vec<(u64, How)>,
    /// Its commit point (the log emptied) passed: the orphans it took off are freed (by it, or
    /// by its recoverer).
    committed: bool,
    /// Models 6, 7: H's and P's held words as its scan read them.
    scan: Option<[u64; 2]>,
    /// Models 6, 7: it met a listed container whose count is not 0, rolled back and released the
    /// part (the tree's collection then runs store-wide).
    refused: bool,
    killed: bool,
    spent: u64,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "collector {}: walked {:?}, logged {:?}, took off [",
            self.id,
            names(&self.walked),
            names(&self.logged)
        )?;
        for (i, &(c, how)) in self.unlinked.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&name(c))?;
            match how {
                How::Head => f.write_str(" (head CAS)")?,
                How::After(p) => write!(f, " (after kept {})", name(p))?,
                How::Found(p, n) => write!(f, " (CAS failed, found {} in {n})", name(p))?,
                How::Blind => f.write_str(" (CAS failed, head stored)")?,
                How::Left => f.write_str(" (CAS failed, left)")?,
            }
        }
        f.write_str("]")?;
        if let Some([h, p]) = self.scan {
            write!(f, ", held words read H {}, P {}", name(h), name(p))?;
        }
        if self.refused {
            f.write_str(", refused (a count not 0)")?;
        }
        if self.committed {
            f.write_str(", committed")?;
        }
        if self.killed {
            write!(f, ", killed after {} accesses", self.spent)?;
        }
        Ok(())
    }
}

impl Collection {
    /// The orphans freed by this collection: those it took off, once it committed.
    fn freed(&self) -> BTreeSet<u64> {
        if self.committed {
            self.unlinked.iter().map(|&(c, _)| c).collect()
        } else {
            BTreeSet::new()
        }
    }
}

/// `begin_part_at(words::ORPHANS_PART)`: the part word from even to odd, waiting (spinning)
/// while it is odd. Not counted as the collection's accesses (the part word's take and its
/// held-parts record are `part_lock.rs`'s models): the collection holds it or has not begun.
fn take_part(world: &World, store: &impl WordStore, out: &mut Collection) {
    loop {
        // Relaxed: only the CAS below orders.
        let v = store.load(PART, Ordering::Relaxed).unwrap();
        if v % 2 == 1 {
            thread::yield_now();
            continue;
        }
        // Acquire: pairs with the release by the previous holder (or its recoverer): what it
        // did to the list is seen.
        if store
            .cas(PART, v, v + 1, Ordering::Acquire, Ordering::Relaxed)
            .unwrap()
            .is_ok()
        {
            let mut h = world.holder.lock().unwrap();
            assert!(
                h.0.is_none(),
                "collector {} took the part while collector {:?} holds it",
                out.id,
                h.0
            );
            h.0 = Some(out.id);
            h.1.push(out.id);
            (out.part, out.holding) = (v + 1, true);
            return;
        }
    }
}

/// The part released (odd -> even), for collection `col` (by it, or by its recoverer).
fn release_part(
    world: &World,
    store: &impl WordStore,
    col: &mut Collection,
) -> Result<(), AccessError> {
    // Cleared before the store (the word is still odd until it: nobody takes the part in
    // between), restored if the store is refused (killed).
    world.holder.lock().unwrap().0 = None;
    // Release: the collection's (or the rollback's) stores to the list before the next holder.
    match store.store(PART, col.part + 1, Ordering::Release) {
        Ok(()) => {
            col.holding = false;
            Ok(())
        }
        Err(e) => {
            world.holder.lock().unwrap().0 = Some(col.id);
            Err(e)
        }
    }
}

/// The `OrphanUnlinked` entry of `c` appended to the collector's log (`UndoLog::append`: the
/// entry, then the length, Release).
fn log_entry(store: &impl WordStore, col: &mut Collection, c: u64) -> Result<(), AccessError> {
    let log = log_of(col.id);
    let len = col.logged.len() as u64;
    assert!(len < LOG_CAP, "the log is full");
    // Relaxed: the length's Release below orders it.
    store.store(log + 8 + 8 * len, c, Ordering::Relaxed)?;
    // Release: pairs with the recoverer's Acquire of the length.
    store.store(log, len + 1, Ordering::Release)?;
    col.logged.push(c);
    Ok(())
}

/// `Store::unlink_orphan`: orphan `c` (followed by `next`) taken off the list; `kept`, the last
/// orphan walked that stays on it (None: every orphan walked before `c` was taken off, so `c`
/// is first unless something was pushed in front of it since).
fn unlink_orphan(
    store: &impl WordStore,
    col: &mut Collection,
    kept: Option<u64>,
    c: u64,
    next: u64,
) -> Result<(), AccessError> {
    let (before, how) = match kept {
        Some(p) => (p, How::After(p)),
        None => {
            // Failure Acquire: the orphans pushed in front of `c` (their links) are seen; the
            // tree's CAS is Relaxed on failure (`relaxed-cas-failure`).
            let failure = if broken("relaxed-cas-failure") {
                Ordering::Relaxed
            } else {
                Ordering::Acquire
            };
            // Relaxed on success: this CAS publishes nothing (pushers read the head only to
            // link in front of it; the next collector synchronizes through the part word).
            match store.cas(ORPHANS, c, next, Ordering::Relaxed, failure)? {
                Ok(()) => {
                    col.unlinked.push((c, How::Head));
                    return Ok(());
                }
                Err(_) if broken("head-cas-blind") => {
                    // Relaxed: as the CAS.
                    store.store(ORPHANS, next, Ordering::Relaxed)?;
                    col.unlinked.push((c, How::Blind));
                    return Ok(());
                }
                Err(_) if broken("no-predecessor") => {
                    col.unlinked.push((c, How::Left));
                    return Ok(());
                }
                Err(first) => {
                    let (p, steps) = orphan_before(store, first, c)?;
                    (p, How::Found(p, steps))
                }
            }
        }
    };
    // Relaxed (`store_now`): only this part's holder writes the links behind the head.
    store.store(before + ORPHAN_NEXT, next, Ordering::Relaxed)?;
    col.unlinked.push((c, how));
    Ok(())
}

/// `Store::orphan_before`: the orphan whose link names `c`, walking from `from` (pushed in
/// front of `c` since it was first), and how many links that took. The tree reports
/// `Corrupt` ("an orphan being collected is not on the orphan list") where the walk ends
/// first: a failure of the model.
fn orphan_before(store: &impl WordStore, from: u64, c: u64) -> Result<(u64, u32), AccessError> {
    let mut at = from;
    let mut seen = Vec::new();
    for steps in 1..=CONTAINERS.len() as u32 {
        if at == 0 {
            break;
        }
        seen.push(at);
        // Relaxed (`get`): ordered after the head's CAS (its Acquire on failure).
        let after = store.load(at + ORPHAN_NEXT, Ordering::Relaxed)?;
        if after == c {
            return Ok((at, steps));
        }
        at = after;
    }
    panic!(
        "an orphan being collected is not on the orphan list: {} not found from {} (walked \
         {:?}, then {})",
        name(c),
        name(from),
        names(&seen),
        name(at)
    )
}

/// `collect_orphans_on_part` (the part already taken) and `unlink_collectable_orphans`:
/// each orphan walked that `setup` does not hold is logged, then taken off the list; then the
/// commit (the log emptied: the commit point; the frees after it are the model's record) and
/// the part released.
fn collect(
    world: &World,
    store: &impl WordStore,
    setup: &Setup,
    col: &mut Collection,
) -> Result<(), AccessError> {
    let mut kept = None;
    // Acquire: pairs with the pushers' Release CAS (their links and flags are seen).
    let mut c = store.load(ORPHANS, Ordering::Acquire)?;
    // Models 6, 7: the held sets read once the list is seen, before any count, as the tree
    // reads them (its first order, the count first, is `count-before-scan`, module doc).
    if setup.scan && c != 0 && !broken("count-before-scan") {
        col.scan = Some(scan_held(store)?);
    }
    while c != 0 {
        assert!(
            !col.walked.contains(&c) && col.walked.len() < CONTAINERS.len(),
            "the collector's walk loops: {:?} then {} ({col:?})",
            names(&col.walked),
            name(c)
        );
        col.walked.push(c);
        // Relaxed (`get`): ordered after the head's Acquire.
        let next = store.load(c + ORPHAN_NEXT, Ordering::Relaxed)?;
        let held = if setup.scan {
            // Relaxed (`refcount`, `get`): read after the held sets (the scan above), it sees
            // the count a rollback restored before its unhold that the scan saw.
            if store.load(c + REFCNT, Ordering::Relaxed)? != 0 {
                // Linked again (by a rolled back part change): `part_refuse`.
                return refuse(world, store, col);
            }
            if col.scan.is_none() {
                // `count-before-scan`: the scan at the first `held_now`, after this count.
                col.scan = Some(scan_held(store)?);
            }
            col.scan.is_some_and(|words| words.contains(&c))
        } else {
            setup.holds(c)
        };
        if held {
            kept = Some(c);
        } else {
            if !broken("log-after-unlink") {
                log_entry(store, col, c)?;
            }
            unlink_orphan(store, col, kept, c, next)?;
            if broken("log-after-unlink") {
                log_entry(store, col, c)?;
            }
        }
        c = next;
    }
    // The commit point. Release: as `set_len`.
    store.store(log_of(col.id), 0, Ordering::Release)?;
    col.committed = true;
    if setup.scan && col.unlinked.iter().any(|&(c, _)| c == X) {
        // No loom step since the store above: the holds as they stand at the commit point.
        let [h, p] = *world.holds_x.lock().unwrap();
        assert!(!h, "X freed while H holds it ({col:?})");
        assert!(!p, "X freed while P holds it ({col:?})");
    }
    release_part(world, store, col)
}

/// `HeldScan::read` (models 6, 7): a SeqCst fence, then each process's held word (SeqCst, as
/// `for_each_held`): H's, then P's.
fn scan_held(store: &impl WordStore) -> Result<[u64; 2], AccessError> {
    // SeqCst: as `HeldScan::read` (the part change or list seen before the held sets).
    fence(Ordering::SeqCst);
    Ok([
        store.load(H_HELD, Ordering::SeqCst)?,
        store.load(P_HELD, Ordering::SeqCst)?,
    ])
}

/// `part_refuse` met in the walk (models 6, 7: a listed container whose count is not 0), then
/// `end_part(false)` on the collector's thread: its log rolled back (each entry by `relist`,
/// newest first; empty in models 6 and 7, whose only pushed container is the head), the part
/// released. Nothing changed: the tree collects store-wide instead.
fn refuse(world: &World, store: &impl WordStore, col: &mut Collection) -> Result<(), AccessError> {
    col.refused = true;
    let mut out = Recovery::default();
    for &c in col.logged.iter().rev() {
        relist(store, c, &mut out)?;
    }
    if !col.logged.is_empty() {
        // Release: as `set_len`.
        store.store(log_of(col.id), 0, Ordering::Release)?;
    }
    release_part(world, store, col)
}

/// A collector `id` over `setup`, killed before its access `k` (u64::MAX: never); the part
/// is taken first (uncounted).
fn collector(world: &World, setup: &Setup, id: u32, k: u64) -> Collection {
    let budget = Budget::new(k);
    let store = KillableWords {
        inner: &world.store,
        budget: &budget,
    };
    let mut col = Collection {
        id,
        ..Collection::default()
    };
    budget.uncounted(|| take_part(world, &store, &mut col));
    if let Err(e) = collect(world, &store, setup, &mut col) {
        assert!(budget.killed(), "collector {id} failed unkilled: {e}");
        col.killed = true;
    }
    col.spent = budget.spent();
    col
}

// ---- the recovery -------------------------------------------------------------------------------

/// What a recoverer did.
#[derive(Clone, Default)]
struct Recovery {
    relisted: Vec<u64>,
    /// Entries whose orphan it found on the list.
    found: Vec<u64>,
    killed: bool,
    spent: u64,
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recoverer: relisted {:?}, found {:?}",
            names(&self.relisted),
            names(&self.found)
        )?;
        if self.killed {
            write!(f, ", killed after {} accesses", self.spent)?;
        }
        Ok(())
    }
}

/// `orphans.rs` `relist`: orphan `c` (flagged, taken off the list by a collection being
/// rolled back) put back on the list unless it is there, as a pusher pushes, its flag already
/// set.
fn relist(store: &impl WordStore, c: u64, out: &mut Recovery) -> Result<(), AccessError> {
    // Acquire: as the tree's.
    let head = store.load(c + HEAD, Ordering::Acquire)?;
    assert!(
        head & ORPHAN_FLAG != 0,
        "an unlinked orphan names no flagged container: {} head {head:#x}",
        name(c)
    );
    if !broken("relist-blind") {
        // Acquire (both): as the collector's walk (the head's pairs with the pushers' Release
        // CAS: the links of the orphans pushed since are seen).
        let walk = if broken("relaxed-relist-walk") {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        };
        let mut n = store.load(ORPHANS, walk)?;
        let mut steps = 0;
        while n != 0 {
            if n == c {
                out.found.push(c);
                return Ok(());
            }
            n = store.load(n + ORPHAN_NEXT, walk)?;
            steps += 1;
            assert!(steps <= CONTAINERS.len(), "relist: the orphan list loops");
        }
    }
    // Relaxed: a stale word only fails the CAS.
    let mut first = store.load(ORPHANS, Ordering::Relaxed)?;
    loop {
        store.store(c + ORPHAN_NEXT, first, Ordering::Relaxed)?;
        // Release: c's link before c is on the list, for any reader of the head.
        match store.cas(ORPHANS, first, c, Ordering::Release, Ordering::Relaxed)? {
            Ok(()) => {
                out.relisted.push(c);
                return Ok(());
            }
            Err(now) => first = now,
        }
    }
}

/// The recovery of dead collection `dead` (`recover_dead`: its log rolled back newest first,
/// each `OrphanUnlinked` entry by `relist`, the length set to 0 at the end; then its part
/// released, where its record still names it), by a recoverer killed before its access `k`.
/// A committed collection's log is empty: its frees (the model's record) are finished, and the
/// part released.
fn recoverer(world: &World, dead: &mut Collection, k: u64) -> Recovery {
    let budget = Budget::new(k);
    let store = KillableWords {
        inner: &world.store,
        budget: &budget,
    };
    let mut out = Recovery::default();
    let mut recover = |out: &mut Recovery| -> Result<(), AccessError> {
        if broken("release-before-relist") && dead.holding {
            release_part(world, &store, dead)?;
        }
        let log = log_of(dead.id);
        // Acquire: as `published_len` (the kernel's hand-over orders the dead's stores anyway:
        // here the recoverer runs on the dead's thread).
        let len = store.load(log, Ordering::Acquire)?;
        for i in (0..len).rev() {
            // Relaxed: ordered by the length's Acquire.
            let c = store.load(log + 8 + 8 * i, Ordering::Relaxed)?;
            relist(&store, c, out)?;
        }
        if len > 0 {
            // Release: as `set_len`.
            store.store(log, 0, Ordering::Release)?;
        }
        if dead.holding {
            release_part(world, &store, dead)?;
        }
        Ok(())
    };
    if let Err(e) = recover(&mut out) {
        assert!(budget.killed(), "the recoverer failed unkilled: {e}");
        out.killed = true;
    }
    out.spent = budget.spent();
    out
}

/// A collector killed before its access `k1`, then (if killed) its recoverers on its thread:
/// the first killed before its access `k2`, the next ones whole. The collection, the
/// recoveries, the first recoverer's accesses.
fn collect_and_recover(
    world: &World,
    setup: &Setup,
    id: u32,
    k1: u64,
    k2: u64,
) -> (Collection, Vec<Recovery>, u64) {
    let mut col = collector(world, setup, id, k1);
    let mut recoveries = Vec::new();
    let mut spent = 0;
    if col.killed {
        let first = recoverer(world, &mut col, k2);
        spent = first.spent;
        let again = first.killed;
        recoveries.push(first);
        if again {
            recoveries.push(recoverer(world, &mut col, u64::MAX));
        }
    }
    (col, recoveries, spent)
}

// ---- the checks ---------------------------------------------------------------------------------

/// The list from `orphans` along `orphan next`, after the joins. Well formed: each word a
/// container of the model, none twice (no loop), none freed, each flagged with its kind kept.
fn walk(world: &World, freed: &BTreeSet<u64>, why: &str) -> Vec<u64> {
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
        assert!(
            !freed.contains(&c),
            "{} is on the list {:?} and freed ({why})",
            name(c),
            names(&list)
        );
        list.push(c);
        c = world.word(c + ORPHAN_NEXT);
    }
    for &c in &list {
        let head = world.word(c + HEAD);
        assert_eq!(
            head,
            KIND | ORPHAN_FLAG,
            "{} is on the list {:?} with head {head:#x}, not flagged ({why})",
            name(c),
            names(&list)
        );
    }
    list
}

/// After the joins (every collection committed or recovered): the list well formed, and
/// exactly the pushed containers, the held initial ones, and the initial ones no committed
/// collection took off; no orphan freed twice; the part free, every log empty.
fn check(world: &World, setup: &Setup, cols: &[&Collection], why: &str) {
    let mut freed = BTreeSet::new();
    for col in cols {
        for c in col.freed() {
            assert!(freed.insert(c), "{} freed twice ({why})", name(c));
        }
    }
    let list = walk(world, &freed, why);
    let on: BTreeSet<u64> = list.iter().copied().collect();
    let expected: BTreeSet<u64> = setup
        .pushed
        .iter()
        .chain(setup.initial)
        .copied()
        .filter(|c| !freed.contains(c))
        .collect();
    assert_eq!(
        on,
        expected,
        "the list {:?} is not {:?} (pushed, and initial less freed {:?}) ({why})",
        names(&list),
        names(&expected),
        names(&freed)
    );
    for col in cols {
        assert!(
            !col.holding,
            "collector {}'s part is left held ({why})",
            col.id
        );
        assert_eq!(
            world.word(log_of(col.id)),
            0,
            "collector {}'s log is left with entries ({why})",
            col.id
        );
    }
    assert_eq!(world.word(PART) % 2, 0, "the part is left held ({why})");
    assert_eq!(world.holder.lock().unwrap().0, None);
}

// ---- the runner ---------------------------------------------------------------------------------

/// What one execution reports.
#[derive(Clone, Copy, Default)]
struct Report {
    /// The accesses of the victim (the collector) and of its first recoverer.
    spent: [u64; 2],
    /// Paths reached ([`REACHED`]).
    reached: [bool; 4],
}

/// The paths a run counts the executions of: the head's CAS failed and the orphan was found
/// 1, and 2 links behind the head; a recoverer found an entry's orphan on the list (the
/// collector was killed between its log entry and its unlink); a repeated recoverer found on
/// the list an orphan its killed predecessor had relisted.
const REACHED: [&str; 4] = [
    "found 1 link behind",
    "found 2 links behind",
    "relist found it listed",
    "the repeat found it relisted",
];

/// What a collection and its recoveries reached ([`REACHED`]).
fn reached(cols: &[&Collection], recoveries: &[Recovery]) -> [bool; 4] {
    let links = |n: u32| {
        cols.iter().any(|col| {
            col.unlinked
                .iter()
                .any(|&(_, how)| matches!(how, How::Found(_, m) if m == n))
        })
    };
    let repeat = recoveries.len() == 2
        && recoveries[1]
            .found
            .iter()
            .any(|c| recoveries[0].relisted.contains(c));
    [
        links(1),
        links(2),
        recoveries.iter().any(|r| !r.found.is_empty()),
        repeat,
    ]
}

/// Runs `scenario(k1, k2)` as a loom model for each kill point k1 of the collector (before each
/// of its accesses, and u64::MAX: not killed), and, if `pairs`, for each kill point k2 of its
/// first recoverer (and u64::MAX) too; else k2 is u64::MAX. Kill points are counted as the
/// most over every interleaving (the CAS-failed path makes more accesses). Returns how many
/// executions reached each of [`REACHED`].
fn every_kill_point_of(scenario: fn(u64, u64) -> Report, pairs: bool) -> [u64; 4] {
    let run = |k1: u64, k2: u64| {
        let out = std::sync::Arc::new(std::sync::Mutex::new(([0u64; 2], [0u64; 4], 0u64)));
        let o = out.clone();
        model(move || {
            let r = scenario(k1, k2);
            let mut o = o.lock().unwrap();
            o.0 = [o.0[0].max(r.spent[0]), o.0[1].max(r.spent[1])];
            for (n, did) in o.1.iter_mut().zip(r.reached) {
                *n += u64::from(did);
            }
            o.2 += 1;
        });
        let r = *out.lock().unwrap();
        r
    };
    let mut reached = [0u64; 4];
    let (mut points, mut runs) = (0, 0);
    let mut add = |r: [u64; 4], n: u64| {
        for (m, k) in reached.iter_mut().zip(r) {
            *m += k;
        }
        (points, runs) = (points + 1, runs + n);
    };
    let ([n1, _], r, n) = run(u64::MAX, u64::MAX);
    add(r, n);
    for k1 in 0..n1 {
        let ([_, n2], r, n) = run(k1, u64::MAX);
        add(r, n);
        if pairs {
            for k2 in 0..n2 {
                let (_, r, n) = run(k1, k2);
                add(r, n);
            }
        }
    }
    if std::env::var_os("LOOM_TESTS_VERBOSE").is_some() {
        let counts: Vec<String> = REACHED
            .iter()
            .zip(reached)
            .map(|(what, n)| format!("{what}: {n}"))
            .collect();
        eprintln!(
            "{n1} kill points of the collector, {points} runs of the model, {runs} executions \
             ({})",
            counts.join(", ")
        );
    }
    reached
}

// ---- 1, 2, 3: one collector beside pushers ------------------------------------------------------

/// The collector over `SETUP` beside live pushers of `SETUP.pushed`, killed before its access
/// `k1` (or not); if killed, its recoverer (killed before its access `k2`, then repeated)
/// runs on its thread while the pushers push. Then the checks.
fn beside_pushers(setup: &Setup, k1: u64, k2: u64) -> Report {
    let world = Arc::new(World::new(setup));
    let pushers = spawn_pushers(&world, setup);
    let (col, recoveries, spent) = collect_and_recover(&world, setup, 0, k1, k2);
    let pushes: Vec<Push> = pushers.into_iter().map(|p| p.join().unwrap()).collect();
    let why = format!("{col:?}; {recoveries:?}; pushes {pushes:?}");
    for p in &pushes {
        assert!(p.took, "the push of {} did not take ({why})", name(p.c));
    }
    check(&world, setup, &[&col], &why);
    Report {
        spent: [col.spent, spent],
        reached: reached(&[&col], &recoveries),
    }
}

const TWO_BESIDE_TWO: Setup = Setup {
    initial: &[A, B],
    held: &[],
    pushed: &[X, Y],
    scan: false,
};

#[test]
fn a_collection_killed_anywhere_beside_two_pushes() {
    let reached = every_kill_point_of(|k1, k2| beside_pushers(&TWO_BESIDE_TWO, k1, k2), false);
    assert!(
        reached[2] > 0,
        "no recoverer found an entry's orphan still on the list"
    );
}

const THREE_ONE_HELD: Setup = Setup {
    initial: &[A, B, C],
    held: &[B],
    pushed: &[X, Y],
    scan: false,
};

const THREE_HEAD_HELD: Setup = Setup {
    initial: &[A, B, C],
    held: &[A],
    pushed: &[X, Y],
    scan: false,
};

#[test]
fn a_collection_killed_anywhere_keeps_the_held() {
    every_kill_point_of(|k1, k2| beside_pushers(&THREE_ONE_HELD, k1, k2), false);
    every_kill_point_of(|k1, k2| beside_pushers(&THREE_HEAD_HELD, k1, k2), false);
}

const ONE_BESIDE_TWO: Setup = Setup {
    initial: &[A],
    held: &[],
    pushed: &[X, Y],
    scan: false,
};

#[test]
fn the_head_is_taken_off_behind_pushes() {
    let reached = every_kill_point_of(|k1, k2| beside_pushers(&ONE_BESIDE_TWO, k1, k2), false);
    assert!(
        reached[0] > 0,
        "no execution took the first orphan off behind one push"
    );
    assert!(
        reached[1] > 0,
        "no execution took the first orphan off behind two pushes"
    );
}

const TWO_BESIDE_ONE: Setup = Setup {
    initial: &[A, B],
    held: &[],
    pushed: &[X],
    scan: false,
};

#[test]
fn a_recoverer_killed_anywhere_is_repeated() {
    let reached = every_kill_point_of(|k1, k2| beside_pushers(&TWO_BESIDE_ONE, k1, k2), true);
    assert!(
        reached[3] > 0,
        "no repeated recoverer found an orphan its killed predecessor relisted"
    );
}

// ---- 5. two collectors --------------------------------------------------------------------------

/// Collector 0 (killed before its access `k1`, or not; then its recoverers as in 1) and
/// collector 1 (live) over `SETUP` beside live pushers: they take the part in turns; the second
/// to take it walks a list that holds every initial orphan the first did not free. Then the
/// checks.
fn two_collectors(setup: &Setup, k1: u64, k2: u64) -> Report {
    let world = Arc::new(World::new(setup));
    let second = {
        let (world, setup) = (world.clone(), *setup);
        thread::spawn(move || collector(&world, &setup, 1, u64::MAX))
    };
    let pushers = spawn_pushers(&world, setup);
    let (col, recoveries, spent) = collect_and_recover(&world, setup, 0, k1, k2);
    let other = second.join().unwrap();
    let pushes: Vec<Push> = pushers.into_iter().map(|p| p.join().unwrap()).collect();
    let order = world.holder.lock().unwrap().1.clone();
    let why = format!(
        "{col:?}; {recoveries:?}; {other:?}; took the part in the order {order:?}; pushes \
         {pushes:?}"
    );
    let (first, then) = if order == [0, 1] {
        (&col, &other)
    } else {
        assert_eq!(order, [1, 0], "({why})");
        (&other, &col)
    };
    let freed = first.freed();
    for &c in setup.initial {
        assert!(
            freed.contains(&c) || then.walked.contains(&c),
            "collector {} walked {:?} after collector {}, which did not free {} ({why})",
            then.id,
            names(&then.walked),
            first.id,
            name(c)
        );
    }
    check(&world, setup, &[&col, &other], &why);
    Report {
        spent: [col.spent, spent],
        reached: reached(&[&col, &other], &recoveries),
    }
}

#[test]
fn two_collectors_take_turns() {
    every_kill_point_of(|k1, k2| two_collectors(&TWO_BESIDE_ONE, k1, k2), false);
}

// ---- 6, 7: a part change that pushes, then rolls back or commits -------------------------------

/// What P, the part change that drops X (its count 1 -> 0) while H holds it, did (models 6,
/// 7).
#[derive(Clone, Copy, Default)]
struct Change {
    /// How many of its logged stores (X's parent word 0, then X's count 0) stand: what a
    /// rollback undoes.
    logged: u32,
    /// Its read of the held sets found H's hold (then X is pushed; else P frees X at its
    /// commit).
    saw_h: Option<bool>,
    /// Its held word names X.
    holding: bool,
    /// Whether it held X at all (the planted `no-pusher-hold`: never).
    held: bool,
    push: Push,
    committed: bool,
    rolled_back: bool,
    killed: bool,
    spent: u64,
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("P:")?;
        match self.saw_h {
            Some(true) => write!(f, " saw H's hold, push [{:?}]", self.push)?,
            Some(false) => f.write_str(" saw no hold (X freed at its commit)")?,
            None => {}
        }
        if self.held {
            f.write_str(", held X")?;
        }
        if self.killed {
            write!(f, ", killed after {} accesses", self.spent)?;
        }
        if self.committed {
            f.write_str(", committed")?;
        }
        if self.rolled_back {
            f.write_str(", rolled back")?;
        }
        Ok(())
    }
}

/// `HeldSet::hold` by P: its held word = X (SeqCst), then a SeqCst fence.
fn hold(world: &World, store: &impl WordStore, ch: &mut Change) -> Result<(), AccessError> {
    // SeqCst (store and fence): as `hold`.
    store.store(P_HELD, X, Ordering::SeqCst)?;
    world.holds_x.lock().unwrap()[1] = true;
    (ch.holding, ch.held) = (true, true);
    fence(Ordering::SeqCst);
    Ok(())
}

/// `HeldSet::unhold` by P (`end_part`, or the recovery's step 4): its held word = 0 (SeqCst).
fn unhold(world: &World, store: &impl WordStore, ch: &mut Change) -> Result<(), AccessError> {
    if ch.holding {
        // SeqCst: as `unhold`.
        store.store(P_HELD, 0, Ordering::SeqCst)?;
        world.holds_x.lock().unwrap()[1] = false;
        ch.holding = false;
    }
    Ok(())
}

/// P's change undone, newest first: X's count back to 1, X's parent word back to X
/// (`roll_back`; Relaxed: as the undo log's stores).
fn roll_back(store: &impl WordStore, ch: &mut Change) -> Result<(), AccessError> {
    if ch.logged == 2 {
        store.store(X + REFCNT, 1, Ordering::Relaxed)?;
        ch.logged = 1;
    }
    if ch.logged == 1 {
        store.store(PARENT, X, Ordering::Relaxed)?;
        ch.logged = 0;
    }
    ch.rolled_back = true;
    Ok(())
}

/// P's steps: X unlinked from its parent and its count 1 -> 0 (logged stores, Relaxed: as
/// `put`); `collect_container` on a part: the held sets read (`held_now`: a SeqCst fence, then
/// H's word; P's own names nothing yet), and H's hold found: X held by P (`hold`), then pushed
/// (`push_orphan_on_part`), or, no hold found, X freed at P's commit (the model's record); then
/// the commit point (P's log's length 0) or the rollback (`commit` false: a later release
/// refused the part); then `end_part`'s unhold.
fn part_change(
    world: &World,
    store: &impl WordStore,
    commit: bool,
    ch: &mut Change,
) -> Result<(), AccessError> {
    store.store(PARENT, 0, Ordering::Relaxed)?;
    ch.logged = 1;
    store.store(X + REFCNT, 0, Ordering::Relaxed)?;
    ch.logged = 2;
    // SeqCst (fence and load): as `HeldScan::read`.
    fence(Ordering::SeqCst);
    let h = store.load(H_HELD, Ordering::SeqCst)?;
    ch.saw_h = Some(h == X);
    if h == X {
        if !broken("no-pusher-hold") && !broken("hold-after-push") {
            hold(world, store, ch)?;
        }
        push_orphan(store, &mut ch.push)?;
        if broken("hold-after-push") {
            hold(world, store, ch)?;
        }
    }
    if broken("unhold-before-rollback") {
        unhold(world, store, ch)?;
    }
    if commit {
        // The commit point. Release: as `set_len`.
        store.store(P_LOG, 0, Ordering::Release)?;
        ch.committed = true;
    } else {
        roll_back(store, ch)?;
    }
    unhold(world, store, ch)
}

/// P killed before its access `k` (u64::MAX: never); if killed, its recovery on its thread
/// (`recovery.rs`: step 2 rolls its change back unless it committed, step 4 then clears its
/// held set), whole.
fn change_killed_at(world: &World, commit: bool, k: u64) -> Change {
    let budget = Budget::new(k);
    let store = KillableWords {
        inner: &world.store,
        budget: &budget,
    };
    let mut ch = Change {
        push: Push {
            c: X,
            ..Push::default()
        },
        ..Change::default()
    };
    if let Err(e) = part_change(world, &store, commit, &mut ch) {
        assert!(budget.killed(), "P failed unkilled: {e}");
        ch.killed = true;
        if !ch.committed {
            roll_back(&world.store, &mut ch).unwrap();
        }
        unhold(world, &world.store, &mut ch).unwrap();
    }
    ch.spent = budget.spent();
    ch
}

/// The paths models 6 and 7 count the executions of: the collector kept X on P's hold alone
/// (its scan read H's word after H let go); it refused the part (X linked again); it freed X.
const REACHED_6: [&str; 3] = [
    "kept X on P's hold alone",
    "refused X linked again",
    "freed X",
];

/// X (count 1, linked from PARENT, held by H) dropped by P (killed before its access `k`, or
/// not; rolled back or, if `commit`, committed) beside H letting go of X and a collector
/// (live) of the list `initial` (none held). Then the checks: X freed at most once, and not
/// while its parent links it; the list well formed, holding the initial orphans the collector
/// did not free and X where P's push took and the collector did not free it; the held words,
/// the part and the log left empty. Returns P's accesses and the paths reached
/// ([`REACHED_6`]).
fn dropped_beside_a_collection(initial: &'static [u64], commit: bool, k: u64) -> (u64, [bool; 3]) {
    let setup = Setup {
        initial,
        held: &[],
        pushed: &[],
        scan: true,
    };
    let world = Arc::new(World::new(&setup));
    // Relaxed (all): before the threads are spawned.
    world.store.store(X + REFCNT, 1, Ordering::Relaxed).unwrap();
    world.store.store(PARENT, X, Ordering::Relaxed).unwrap();
    world.store.store(H_HELD, X, Ordering::Relaxed).unwrap();
    world.holds_x.lock().unwrap()[0] = true;
    let h = {
        let world = world.clone();
        thread::spawn(move || {
            // SeqCst: as `unhold`.
            world.store.store(H_HELD, 0, Ordering::SeqCst).unwrap();
            world.holds_x.lock().unwrap()[0] = false;
        })
    };
    let collection = {
        let world = world.clone();
        thread::spawn(move || collector(&world, &setup, 0, u64::MAX))
    };
    let ch = change_killed_at(&world, commit, k);
    h.join().unwrap();
    let col = collection.join().unwrap();
    let why = format!("{ch:?}; {col:?}");
    let mut freed = col.freed();
    if ch.committed && ch.saw_h == Some(false) {
        assert!(freed.insert(X), "X freed twice ({why})");
    }
    let (parent, count) = (world.word(PARENT), world.word(X + REFCNT));
    assert!(
        parent != X || !freed.contains(&X),
        "X freed while its parent links it ({why})"
    );
    let expected = if ch.committed { (0, 0) } else { (X, 1) };
    assert_eq!(
        (parent, count),
        expected,
        "X's parent word and count are not P's change's ({why})"
    );
    let list = walk(&world, &freed, &why);
    let on: BTreeSet<u64> = list.iter().copied().collect();
    let expected: BTreeSet<u64> = initial
        .iter()
        .copied()
        .chain(ch.push.took.then_some(X))
        .filter(|c| !freed.contains(c))
        .collect();
    assert_eq!(
        on,
        expected,
        "the list {:?} is not {:?} (X if pushed, and initial, less freed {:?}) ({why})",
        names(&list),
        names(&expected),
        names(&freed)
    );
    assert_eq!(world.word(H_HELD), 0, "H's held word is left ({why})");
    assert_eq!(world.word(P_HELD), 0, "P's held word is left ({why})");
    assert!(!col.holding, "the collector's part is left held ({why})");
    assert_eq!(
        world.word(log_of(0)),
        0,
        "the log is left with entries ({why})"
    );
    assert_eq!(world.word(PART) % 2, 0, "the part is left held ({why})");
    let kept_on_p =
        col.scan == Some([0, X]) && col.walked.contains(&X) && !col.refused && !freed.contains(&X);
    (ch.spent, [kept_on_p, col.refused, col.freed().contains(&X)])
}

/// Runs `scenario(k)` as a loom model for each kill point k of P (before each of its accesses,
/// counted as the most over every interleaving, and u64::MAX: not killed). Returns how many
/// executions reached each of [`REACHED_6`].
fn every_kill_point_of_p(scenario: fn(u64) -> (u64, [bool; 3])) -> [u64; 3] {
    let run = |k: u64| {
        let out = std::sync::Arc::new(std::sync::Mutex::new((0u64, [0u64; 3], 0u64)));
        let o = out.clone();
        model(move || {
            let (spent, r) = scenario(k);
            let mut o = o.lock().unwrap();
            o.0 = o.0.max(spent);
            for (n, did) in o.1.iter_mut().zip(r) {
                *n += u64::from(did);
            }
            o.2 += 1;
        });
        let r = *out.lock().unwrap();
        r
    };
    let (n, mut reached, mut runs) = run(u64::MAX);
    for k in 0..n {
        let (_, r, m) = run(k);
        for (a, b) in reached.iter_mut().zip(r) {
            *a += b;
        }
        runs += m;
    }
    if std::env::var_os("LOOM_TESTS_VERBOSE").is_some() {
        let counts: Vec<String> = REACHED_6
            .iter()
            .zip(reached)
            .map(|(what, n)| format!("{what}: {n}"))
            .collect();
        eprintln!(
            "{n} kill points of P, {} runs of the model, {runs} executions ({})",
            n + 1,
            counts.join(", ")
        );
    }
    reached
}

#[test]
fn a_push_rolled_back_is_never_collected() {
    for scenario in [
        (|k| dropped_beside_a_collection(&[], false, k)) as fn(u64) -> (u64, [bool; 3]),
        |k| dropped_beside_a_collection(&[A], false, k),
    ] {
        let reached = every_kill_point_of_p(scenario);
        assert!(
            reached[0] > 0,
            "no collector kept X on P's hold alone (H let go before its scan)"
        );
        assert!(reached[1] > 0, "no collector met X linked again");
    }
}

#[test]
fn a_committed_push_is_collected_once() {
    for scenario in [
        (|k| dropped_beside_a_collection(&[], true, k)) as fn(u64) -> (u64, [bool; 3]),
        |k| dropped_beside_a_collection(&[A], true, k),
    ] {
        let reached = every_kill_point_of_p(scenario);
        assert!(
            reached[0] > 0,
            "no collector kept X on P's hold alone (H let go before its scan)"
        );
        assert!(reached[2] > 0, "no collector freed X");
    }
}
