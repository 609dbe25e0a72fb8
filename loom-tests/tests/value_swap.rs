//! Value publications of blocks (commit 5de367a, "Block values replaced without a lock", and the
//! small values' path of db7bb1c; the tree at 5d0f6a1): a `d[k] = v` of a present key of a plain
//! dict that takes out, or puts in, a block (a str of more than 7 bytes, bytes, a float, a big
//! int, a packed value) with no part lock, each publisher killed anywhere and recovered (where
//! affordable its recoverer killed too), beside another block publication of the key, an inline
//! one, a dict delete (`dict_delete.rs`'s deleter), a validated reader and a gc: no block freed
//! twice, none freed while the dict holds it, none leaked, the claim left 0, and X what a serial
//! order of the publications explains.
//!
//! The protocol, as the tree has it (`object/parts.rs` `publish_value`, `settle_swapped`,
//! `claim_entries`, `give_back_unlinked`, `publish_dict_value`; FORMAT.md §10.9 "Publications",
//! steps 3a to 4a and the paragraph after the table; §10.7 step 0, journals 1 and 5). Publisher
//! `me` of key X at entry e of dict D (version word P), the block path (`publish_value`): (1)
//! `enter_publish` (`active[me]` = P | 1, SeqCst fence, gate checks; turned away: withdrawn);
//! (2) a new block: taken into block journal 1 (`OP`, `alloc_into`: journal 1 names it with the
//! taken bit) and written; (3) X looked up, its value word `old` read; loop: `old` not
//! replaceable (0, or a block whose head is not a one-block kind's: here a freed block, whose
//! first word is a free-stack link or POISON): withdrawn; a block and no claim: D's insert claim
//! taken (`claim_insert`, CAS 0 -> `insert_claim(me)`; held by another, `SPIN_LOOKS` more looks,
//! then withdrawn) and `old` read again; a block (under the claim): named as taken by block
//! journal 5 (`VALUE`, `journal_owned`) BEFORE the CAS; the CAS old -> new (`Parts::publish`,
//! new = the block, or the inline word); failed: journal 5 settled if it named `old`, again from
//! the word seen; (4) claim held: journal 5 settled unless it swapped, then the claim dropped
//! (`unclaim_insert`); (5) not swapped: the new block given back (`free_journaled(OP)`);
//! swapped: `settle_swapped`: journal 1 settled, then an old block freed
//! (`free_journaled(VALUE)`); (6) `end_publish` (P moved if swapped, `active` cleared). An inline
//! word's publication (`publish_dict_value`) looks first, before announcing: a value word that is
//! not an inline word sends it down the block path (with `node` None); an inline one down the
//! small values' path: announced, the key looked up, CAS from the inline word seen, withdrawn on
//! any other word (a block swapped in since the look, a delete's empty word). The recovery of a
//! dead publisher, in `object/recovery.rs`'s order: its block journals (`settle_journals`: a
//! journal naming a block as taken, `taken_by_dead`, is settled, `settle_dead`, the block freed
//! unless linked: journal 1 iff the undo log ends with its alloc entry or, the dead `active`
//! naming a dict, a live entry holds it, `inserted_by_dead`; journal 5 by the same dict rule),
//! then a claim naming it settled (`settle_insert_claim`), P moved (`bump_version`), `active`
//! cleared (`Parts::recover_dead`), then the heap's recovery of the slot (`recover_participant`:
//! its block cache given back). Every word step is the tree's own (`persist::part_lock`,
//! `persist::heap` on the real allocator with its block journals, taken bits and block caches;
//! `loom_tests::dict_table`'s table with X at entry 0); the control flow around them (the
//! publications, the delete, the recovery, the gc) is copied here, with the planted bugs in it.
//!
//! # What the models found: a block freed twice (a real fault of the tree, 5de367a to 5d0f6a1)
//!
//! The new block's journal 1 outlives the publisher's hold on the block. The tree drops the claim
//! (step 4) before it settles journal 1 (step 5, `settle_swapped`), and a publication whose old
//! value is an inline word takes no claim at all; so between the publisher's CAS and its settle of
//! journal 1 another publication may claim D, take the new block out of X's value word and free
//! it, and a recovery of the first publisher, killed before its settle, then finds journal 1
//! naming the block as taken, `active` naming D, no live entry holding it ("not linked"), and
//! frees it again. Model 1 (`two_block_publishers_link_or_free_each_block_once`, in the run with
//! the victim's pause, at LOOM_MAX_PREEMPTIONS=2), the words as the model leaves them:
//!
//! 1. The victim V (slot 0), X = B0 (a block): `active[0]` = P | 1; takes N (journal 1 of slot 0
//!    = N | taken) and writes it; reads X = B0; CLAIM = `insert_claim(0)`; reads B0 again;
//!    journal 5 of slot 0 = B0 | taken; CAS X: B0 -> N; CLAIM = 0 (`unclaim_insert`).
//! 2. The other publisher O (slot 1, a block publication; in model 2a an inline one, whose look
//!    found a block): reads X = N (its head a str's: replaceable); CLAIM = `insert_claim(1)`;
//!    journal 5 of slot 1 = N | taken; CAS X: N -> its value; CLAIM = 0;
//!    `free_journaled(VALUE, N)`: N freed (into its block cache); `end_publish`.
//! 3. V is killed before its `settle(OP)` (the first step of `settle_swapped`).
//! 4. V's recovery: journal 1 of slot 0 names N as taken, N is not in slot 0's block cache,
//!    `active[0]` names P, no live entry holds N: not linked, N freed again ("block 0x640 freed
//!    twice: freed by slot 1's publication (the old block it swapped out), then by the recovery
//!    of slot 0 (journal 1 unlinked)"). N may have been handed out again meanwhile: a live
//!    block freed.
//!
//! From X = I0 (an inline word: `two_block_publishers_from_an_inline_word`, found in its first
//! run, with no pause) V takes no claim at all: its CAS I0 -> N, then O claims, names N in its
//! journal 5, CASes N out and frees it; V killed before its settle; its recovery frees N again.
//! FORMAT.md §10.9 says of the block taken at step 3a "from the CAS on the entry does [hold
//! it]" and §10.7's journal 1 row "a value publication frees only the block its own CAS took
//! out, which no entry holds any more": the block O's CAS took out is one V's journal 1 still
//! names. (§10.9 step 4a lists journal 1 settled before the claim cleared, the code clears the
//! claim first; either order fails from an inline word, which has no claim.) It is the fault
//! `append_block.rs` found for appends (`append-unclaim-before-settle`): a block appender keeps
//! its tail claim (`fill_tail_held`) until its journal 1 is settled.
//!
//! **The fix, now the tree's (`claim-until-settled`):** a publication of a new block takes the
//! claim whatever the old word, as an insert does, and settles journal 1 before it drops it:
//! every model passes, at LOOM_MAX_PREEMPTIONS=2 and 3. The orders before it stay selectable
//! by `VALUE_SWAP_PROTOCOL`: `unclaim-before-settle` (5de367a to 5d0f6a1, the double free
//! above) and `settle-before-unclaim` (journal 1 settled before the claim is dropped, as
//! §10.9's table then listed, the claim still only over an old block): the runs from a block
//! pass; from an inline word they still fail (no claim). Where this doc says "the tree's
//! order" below, read `unclaim-before-settle`. A recovery then finds the claim of a dead publisher whose
//! journal 1 still names the block it swapped in, and nobody else took it out (the claim's
//! settling comes after the journals).
//!
//! # The models
//!
//! The victim (slot 0) is killed before each of its word accesses (`every_kill_point`, its
//! object words, lock file, heap store and heap participant table counted together), and also
//! runs to its end; a dead victim is recovered at once by a third participant (slot 2) and the
//! recovery is repeated at the end by slot 1. The blocks are of a cached class (`Class::Cached`:
//! one free block in each publisher's block cache, whose pop writes the taken bit before it takes
//! the block, and whose free puts it there while its journal still names it: no leak window)
//! except in model 5 and one run of 1b (`Class::Segment`: the segment's free stack, where a kill
//! between the take and the taken bit, or inside a `free_journaled` that settles then frees,
//! leaves the block to gc, and that allowance is all the accounting grants). Every model ends
//! with: X what a serial order explains (`explained`: each publication that swapped took out the
//! word before it in the order, X is the last one's word); the dict consistent
//! (`Table::live_with`), unclaimed, the scaffolding quiet (P free, records, logs, `active` words
//! empty); the accounting (`World::account`): X's block (if a block) allocated and holding the
//! contents its publication wrote (not a free-stack link, not POISON), every other block free
//! but the allowed windows, nothing freed twice (the block log, `Log`: a block freed again with
//! no allocation between fails at once naming both frees; then the heap's `check` and
//! `loom_tests::conserve_sized`: allocate until full, sweep, allocate again). The runs of a test
//! differ in their pauses (below, "What loom cannot see"): (victim, other) = (none, none),
//! (`BeforeSettle`, none), (`BeforeSettle`, `BeforeLook`) unless said otherwise.
//!
//! - Model 1: `two_block_publishers_link_or_free_each_block_once` (from X = B0, a block holding
//!   T0) and `two_block_publishers_from_an_inline_word` (from I0): the victim replaces X by a new
//!   block (TV) while a live participant replaces it by another (TO).
//! - Model 1b: `a_recoverer_killed_anywhere_settles_a_block_swap`: the victim alone replaces X
//!   (from B0; from I0; from B0 with `Class::Segment`) by a new block, killed anywhere; its first
//!   recoverer killed before each of its accesses (`every_kill_pair`), a second one finishes; then
//!   a live block publication (which must swap). After the first recoverer's death: a claim naming
//!   the victim, or a journal (1 or 5) naming as taken a block the dict holds, comes with the
//!   victim's `active` naming P (else the next recoverer leaves the claim, or frees the block).
//! - Model 2a: `a_block_publisher_and_an_inline_publisher_from_a_block` and
//!   `..._from_an_inline_word`: the victim publishes a new block (TV), a live participant an
//!   inline word (IO: the small values' path, or the block path with the claim where its look
//!   found a block).
//! - Model 2b: `an_inline_publisher_and_a_block_publisher_serialize`: the roles swapped (the victim
//!   the inline publication, IV), from B0 and from I0, each with the other's pause `BeforeLook` or
//!   none.
//! - Model 3: `a_block_publisher_and_a_dict_delete_serialize`: from X = I0, a block publication and
//!   `dict_delete.rs`'s delete (`claim_and_delete`, with the tree's handling of a seal that fails
//!   on a block: `settle_insert_claim` of its own claim, withdrawn), the victim the publication
//!   (pauses none, `BeforeSettle`) or the delete: either the delete popped I0 and X is gone, or the
//!   publication swapped I0 out and X holds its block, or neither; never both. (Every outcome is
//!   reached: at LOOM_MAX_PREEMPTIONS=2, of the executions, 46190 end popped, 837 swapped, and
//!   441 pass through a seal that failed on the block.)
//! - Model 4: `a_reader_never_keeps_a_freed_block`: the victim replaces B0 by a new block while a
//!   reader reads X's value word and, a block, its first word (a `yield_now` between the two),
//!   validated as the object layer validates (`read_validated`: `seq`, `publisher_in`, P
//!   unchanged); then the recovery. A kept read is (B0, T0) or (the new block, TV): never a freed
//!   block's link or POISON; kept at the first version it is B0, kept at the final version it is X.
//! - Model 5: `a_gc_racing_a_block_swap_frees_each_block_once`: the victim replaces B0 by a new
//!   block (`Class::Segment`) while a gc runs as `Store::gc` does (`append_block.rs`'s copy: writer
//!   word, sequence odd, `active` words drained recovering a dead publisher, the walk, then
//!   `named_blocks`, `for_each_allocated`, the real `Heap::sweep`): a block the gc freed was not
//!   freed by the publisher too.
//!
//! # Planted bugs
//!
//! `VALUE_SWAP_BROKEN` names one (unset: every step the tree's). Each was run with
//! the default order, `claim-until-settled` (with `unclaim-before-settle` models 1 and 2a fail
//! anyway), the whole file at LOOM_MAX_PREEMPTIONS=2; which models fail, and the first message:
//!
//! | variant | what it breaks | fails |
//! |---|---|---|
//! | `no-claim` | a block is taken out (and a new one put in) without the claim, the rest as if it were held | 1 (both), 2a from a block, 2b: "block 0xa40 freed twice: freed by slot 1's publication (the old block it swapped out), then by the recovery of slot 0 (journal 5 unlinked)" (the victim named B0 in journal 5 and died before its CAS; the other took B0 out and freed it); 1 from I0 by journal 1 (as the tree's fault) |
//! | `journal-after-cas` | the old block named in journal 5 after the CAS | 1 (both), 1b, 2a from a block, 2b, 4, 5: "left allocated: {Block(0xa40)}, 0 allowed" (killed between the CAS and the naming: nobody names the old block) |
//! | `free-after-end` | `settle_swapped` after `end_publish` (`active` cleared) | 5: "block 0x640 freed twice: freed by the gc, then by slot 0's publication (the old block it swapped out)" (the gc, no longer waiting for the publication, swept B0 between the settle of journal 5 and the free) |
//! | `inline-takes-block` | the small values' path CASes from a block it meets as from an inline word (no claim, no journal 5, nothing freed) | 2a from I0, 2b: "left allocated: {Block(0x640)}, 0 allowed" (no kill needed: its look saw I0, the block publication swapped in its block, the inline CAS took it out, and nobody frees it) |
//! | `recovery-frees-linked` | the recovery's rule for journal 5 always "not linked" | 1 (both), 1b, 2a from a block, 2b, 4, 5: "the dict holds block 0x840, whose first word is 0x1: freed while linked?" (killed between the naming and the CAS); 1b: "the live publication after the recovery withdrew" (it read the freed block's link as its head) |
//!
//! Not caught, and why: `free-after-end` by the reader (model 4). A reader that reads the freed
//! block's first word has read a store the publisher made after the SeqCst fence of its
//! `enter_publish`; its Acquire fence (`read_valid`) then orders its `publisher_in` load after
//! that fence (fence to fence): it sees `active` = P | 1 (and drops the read) or the 0 that
//! `end_publish` stored with Release after moving P, which its Acquire load synchronizes with (P
//! moved: dropped). So the free's place relative to `end_publish` does not matter to readers;
//! it matters to a gc (model 5): once `active` is clear nothing keeps a gc out, and a free that
//! settles its journal before it frees (an uncached class) lets the gc sweep the block between.
//! Model 3 catches none of the five: X starts inline, the delete never takes a block out (it
//! withdraws on one), and the block publication is the only one; what it checks is the delete's
//! seal failing on a block (its own claim settled) and the serial order.
//!
//! # What loom cannot see, and the pauses
//!
//! As in `dict_delete.rs` and `publish.rs`: a kill is a prefix of the victim's accesses in
//! program order; SeqCst accesses are checked as AcqRel; a `step` before a store counts that
//! kill point twice. Loom at LOOM_MAX_PREEMPTIONS=2 (and 3) did not reach the fault's
//! interleaving from a block without help (model 1 from B0 passes with no pause: it needs the
//! other preempted before it reads X and the victim preempted right after its claim's drop, two
//! preemptions that loom's bounded search did not combine; from I0 it found it at once). So a
//! publication has one scheduling point per run (`Pause`, a `thread::yield_now()`, no effect on
//! the words): the victim's `BeforeSettle` (after the claim's drop, or after the CAS with no
//! claim, before `settle_swapped`), the other's `BeforeLook` (before its first look), or none.
//! Without `BeforeLook`, 2a from I0 passed too (the inline publication's look, which picks its
//! path, came before the victim's CAS in every run). The reader yields once, between the value
//! word and the block's first word. Waiters spin with `yield_now`; a claimant looks at a held
//! claim `SPIN_LOOKS` more times.
//!
//! # Not modelled
//!
//! The block path's look before the announcement (its `poppable` read of the old block's head,
//! unclaimed) and the hints; the part paths after a withdrawal (a withdrawn publication counts as
//! not done: no `dict_set` or `dict_del` on the part, so no part taker races a publication here;
//! the gate handshake with part takers is `publish.rs`'s and `dict_delete.rs`'s); objects (their
//! block publications since db7bb1c: the same code on the same table), caches; flat tuples (the
//! `is_flat_tuple` walk), blocks with references, large blocks (a run freed to the page manager),
//! an encode that fails after the take; `Dict.incr`; insert publications (`dict_insert.rs`; since
//! db7bb1c an insert of a key block and a value block uses journal 5 too) and a growth; durable
//! stores; a key block (`inserted_by_dead` matches keys too: X's key is inline here); a killed
//! recoverer in the concurrent models (1b is sequential); a second reader, or a reader beside two
//! publishers; a gc beside two publishers; the heap's own recovery beyond `recover_participant`
//! (`taken_journal.rs`, `free_journaled.rs`).
//!
//! # Cost
//!
//! Release build, this 2-core machine, LOOM_MAX_PREEMPTIONS=2, each test on its own with
//! `cargo test`'s start; victim kill points per run, in the order the test runs them:
//!
//! | model | `unclaim-before-settle` | `claim-until-settled` (the tree) |
//! |---|---|---|
//! | 1 from B0 | fails, 10.6 s (49, 49: in the run with the victim's pause) | 7.5 s (49, 49, 49) |
//! | 1 from I0 | fails, 0.6 s (49: in the first run) | 5.9 s (49, 49, 48) |
//! | 1b | 16.2 s (46, 33, 95; 3635, 2216, 5505 (victim, recoverer) pairs) | 16.0 s (46, 38, 95; 3607, 2647, 5477 pairs) |
//! | 2a from B0 | fails, 5.4 s (48, 46: in the run with the victim's pause) | 6.5 s (48, 46, 48) |
//! | 2a from I0 | fails, 1.0 s (36, 34, 35: in the run with both pauses) | 1.9 s (41, 39, 40) |
//! | 2b | 5.5 s (48, 48, 47, 30) | 6.7 s (48, 48, 48, 30) |
//! | 3 | 38.1 s (33, 33, 42) | 39.3 s (42, 42, 37) |
//! | 4 | 2.3 s (46) | 2.3 s (46) |
//! | 5 | 1.9 s (95) | 1.9 s (95) |
//!
//! About 90 s for the file with `claim-until-settled` (one test thread); at
//! LOOM_MAX_PREEMPTIONS=3 all pass in 175 s. Each planted variant, the whole file
//! (`claim-until-settled`): 54 to 82 s.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::dict_table::{self, entry, hash, is_inline, probe, Kind, CAP, CLAIM, KEY, X};
use loom_tests::dict_table::{NENTRIES, USED, VALUE, WORDS};
use loom_tests::publication::{self, gate, log_of, owner, read_validated, Spin, View};
use loom_tests::publication::{OTHER, P, THIRD, VICTIM};
use loom_tests::{
    allocated_blocks, check, conserve_sized, every_kill_pair, every_kill_point, Budget, Planted,
    Victim, BLOCKS_PER_SEGMENT, CACHED_PER_SEGMENT, CACHED_SIZE, SIZE,
};
use persist::heap::{Block, Error, Heap};
use persist::part_lock::{
    bump_version, insert_claimant, published_part, publishing, settle_insert_claim, BUCKET_DELETED,
};
use persist::region::table;
use persist::store_lock::UndoLog;
use persist::sync::{AccessError, Liveness, MemLiveness, MemWords, Ordering, WordStore};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::ops::Deref;

// ---- planted bugs, and the protocol proposed ----------------------------------------------------

static BROKEN: Planted = Planted::new(
    "VALUE_SWAP_BROKEN",
    &[
        "no-claim",
        "journal-after-cas",
        "free-after-end",
        "inline-takes-block",
        "recovery-frees-linked",
    ],
);

/// Whether `VALUE_SWAP_BROKEN` names `variant` (module doc).
fn broken(variant: &str) -> bool {
    BROKEN.is(variant)
}

/// The orders the tree had before `claim-until-settled` (module doc, "What the models found"):
/// unset, the tree's since the fix (a new block's publication takes the claim whatever the old
/// value and settles journal 1 before it drops it). `unclaim-before-settle`: the order of
/// 5de367a to 5d0f6a1 (the claim only over an old block, dropped before journal 1 is settled);
/// `settle-before-unclaim`: the claim only over an old block, journal 1 settled first.
static PROTOCOL: Planted = Planted::new(
    "VALUE_SWAP_PROTOCOL",
    &["unclaim-before-settle", "settle-before-unclaim"],
);

/// Journal 1 of a new block settled before the claim is dropped.
fn settle_before_unclaim() -> bool {
    !PROTOCOL.is("unclaim-before-settle")
}

/// A new block's publication takes the claim whatever the old value, and keeps it until
/// journal 1 is settled.
fn claim_for_new_block() -> bool {
    !PROTOCOL.is("unclaim-before-settle") && !PROTOCOL.is("settle-before-unclaim")
}

// ---- words --------------------------------------------------------------------------------------

/// The object layer's block journals (`object/layout.rs` `journals`): a change's allocation,
/// which a value publication's new block uses, and a value publication's old block.
const OP: u64 = 1;
const VALUE_J: u64 = 5;

/// The heap participant that sets up and checks at the end.
const CHECKER: u32 = 3;
const HEAP_SLOTS: u32 = 4;

/// How many more times a claimant looks at a claim held by another before it gives up
/// (`claim_entries`' bounded spin; then the part path, not modelled: withdrawn).
const SPIN_LOOKS: u32 = 1;

/// A block's contents are its first word: a head of a one-block kind (a str's, say), which the
/// publisher writes before it links the block. A free into a block cache leaves the block's
/// words as they were: the model writes POISON over the first word of a block it is about to
/// free once it is out of the dict (the publisher's old block, the recovery's unlinked
/// blocks), as a reuse would. (A free onto a segment's free stack writes its link there too.)
const HEAD: u64 = 0x5757_0000;
const POISON: u64 = 0xdead_0000;
/// The initial block's contents, the victim's new block's, the other's.
const T0: u64 = HEAD | 0x11;
const TV: u64 = HEAD | 0x13;
const TO: u64 = HEAD | 0x15;

fn is_head(w: u64) -> bool {
    w & !0xff == HEAD
}

/// A value word naming a block (the heap's offsets are 16-aligned and never 0).
fn is_block(w: u64) -> bool {
    w != 0 && w & 0xf == 0
}

/// Inline values (odd: `dict_table::is_inline`): X's at first, the victim's, the other's.
const I0: u64 = 0x101;
const IV: u64 = 0x203;
const IO: u64 = 0x305;

/// The blocks' size class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// `CACHED_SIZE`: a block cache holds it. The victim's and the other's allocations pop the
    /// one block their caches hold (the pop writes the taken bit before the count store that
    /// takes it: no window), and a free (`free_journaled`) pushes it into the freeing
    /// participant's cache while its journal still names it (a kill inside leaves nothing).
    Cached,
    /// `SIZE`, not cached: taken off the segment's free stack (the take, then the taken bit: a
    /// kill between leaves the block to gc) and freed onto it (`free_journaled` settles, then
    /// frees: a kill between leaves the block to gc).
    Segment,
}

impl Class {
    fn size(self) -> u64 {
        match self {
            Class::Cached => CACHED_SIZE,
            Class::Segment => SIZE,
        }
    }

    fn per_segment(self) -> u64 {
        match self {
            Class::Cached => CACHED_PER_SEGMENT,
            Class::Segment => BLOCKS_PER_SEGMENT,
        }
    }
}

/// Where a publication has a scheduling point (`thread::yield_now`, no effect on the words).
/// Loom at LOOM_MAX_PREEMPTIONS=2 did not reach the interleavings in which another publication
/// takes the victim's new block out and frees it between the victim's CAS and its settle of
/// journal 1 (module doc, "What loom cannot see"): the runs place a pause in the victim's
/// publication there, and in the other's before its first look, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pause {
    Never,
    /// After the claim's drop (or, with no claim, after the CAS), before `settle_swapped`.
    BeforeSettle,
    /// Before the first look (`publish_inline`'s before the announcement, `publish_value`'s
    /// before it announces).
    BeforeLook,
}

/// What a publication stores: a new block with these contents, or an inline word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum New {
    Block(u64),
    Inline(u64),
}

// ---- the world ----------------------------------------------------------------------------------

/// What happened last to each block the models took or freed (kept outside loom: a plain
/// mutex, no interleavings): a block freed again with no allocation between fails the model
/// at once, naming both frees (the heap's check at the end would only find a damaged free
/// stack). A free is entered once the call that makes it returned (the gc's when its sweep
/// picks the block); a free whose maker was killed inside it goes unentered (the heap's check
/// still sees it).
#[derive(Default)]
struct Log {
    last: std::sync::Mutex<std::collections::BTreeMap<u64, String>>,
}

impl Log {
    fn allocated(&self, b: u64, by: &str) {
        self.last
            .lock()
            .unwrap()
            .insert(b, format!("allocated by {by}"));
    }

    fn freed(&self, b: u64, by: &str) {
        let mut last = self.last.lock().unwrap();
        if let Some(prev) = last.get(&b) {
            assert!(
                !prev.starts_with("freed"),
                "block {b:#x} freed twice: {prev}, then by {by}"
            );
        }
        last.insert(b, format!("freed by {by}"));
    }
}

/// The dict (`dict_table::World`: the scaffolding's words and the table, X at entry 0, which a
/// `World` derefs to) and the heap (`loom_tests::World`, its own store and participant table:
/// the real allocator, block journals and taken bits run on it). A value word naming a block
/// is the block's offset in the heap's store.
struct World {
    dict: dict_table::World,
    heap: loom_tests::World,
    /// A block of the one segment of the class: a participant's process has met that segment
    /// (`learn`), so its frees find the block's class without the page map.
    met: Block,
    class: Class,
    log: Log,
}

impl Deref for World {
    type Target = dict_table::World;

    fn deref(&self) -> &dict_table::World {
        &self.dict
    }
}

/// `dict_table::World`'s recovery hook, which this file does not use (its recovery needs the
/// heap: `recover`).
fn no_recover(_: &MemWords, _: &MemWords, _: u32, _: u32) -> Result<(), AccessError> {
    panic!("value_swap.rs recovers through `recover_live`")
}

impl World {
    /// A dict {X: first}, first a block of `class` holding T0 (`block_first`) or I0; the heap
    /// has one segment of the class, and (`Class::Cached`) one free block in each of the
    /// victim's and the other's block caches (their allocations pop them: no shared free stack
    /// moves); else the segment's other two blocks are free.
    fn new(block_first: bool, class: Class) -> World {
        let heap = loom_tests::World::new(1, HEAP_SLOTS);
        if class == Class::Cached {
            for s in [VICTIM, OTHER] {
                let h = heap.heap(s);
                let b = h.alloc(CACHED_SIZE).unwrap();
                h.settle(0).unwrap();
                h.free(b).unwrap();
            }
        }
        let (first, met) = {
            let h = heap.heap(CHECKER);
            let b = h.alloc(class.size()).unwrap();
            h.settle(0).unwrap();
            if block_first {
                heap.store.store(b.get(), T0, Ordering::Relaxed).unwrap();
                (b.get(), b)
            } else {
                h.free_uncached(b).unwrap();
                (I0, b)
            }
        };
        let dict = dict_table::World::new(Kind::Dict, no_recover, &[(X, first)], &[]);
        let log = Log::default();
        if block_first {
            log.allocated(first, "the set-up (X's first block)");
        }
        World {
            dict,
            heap,
            met,
            class,
            log,
        }
    }

    /// `heap` once its process has met the class's segment (a read-only lookup through the
    /// page map, as a free would make; not the operation under test: uncounted for a victim).
    fn learn<HW: WordStore>(&self, heap: &Heap<'_, HW, MemLiveness>, slot: u32) {
        heap.dead_cache_holds(slot, self.met).unwrap();
    }

    /// A live participant in `slot` on this world's own words.
    fn live(&self, slot: u32) -> Participant<'_, MemWords, MemWords> {
        let heap = self.heap.heap(slot);
        self.learn(&heap, slot);
        Participant::new(
            &self.lock_file,
            &self.store,
            heap,
            &self.heap.store,
            &self.heap.store,
            &self.log,
            self.class.size(),
            slot,
        )
        .unwrap()
    }

    /// The participant in `slot` dies: both lock files' locks drop.
    fn kill(&self, slot: u32) {
        self.live.set_alive(slot, false);
        self.heap.kill(slot);
    }

    fn is_alive(&self, slot: u32) -> bool {
        self.live.is_alive(slot)
    }

    /// The raw block journal `j` of `slot`.
    fn journal(&self, slot: u32, j: u64) -> u64 {
        self.heap
            .table()
            .load(slot, table::W_BLOCK_JOURNAL + j)
            .unwrap()
    }

    /// X's value once nothing is in flight (None: X is not in the dict), the dict checked
    /// (`Table::live_with`: a live value word is an inline word or a block).
    fn x(&self) -> Option<u64> {
        let live = self
            .table()
            .live_with(Kind::Dict, |v| is_inline(v) || is_block(v))
            .unwrap_or_else(|e| panic!("{e}"));
        live.get(&X).map(|&(_, v)| v)
    }

    /// The blocks the dict's live entries hold, as their words are now.
    fn linked(&self) -> BTreeSet<u64> {
        self.x().filter(|&w| is_block(w)).into_iter().collect()
    }

    /// What must hold after a recoverer of the dead victim died: a claim naming the victim
    /// comes with its `active` naming P, and so does a journal (1 or 5) still naming as taken
    /// a block the dict holds (else the next recoverer's rule says "not linked" and frees it).
    fn assert_recoverable(&self) {
        let active = self.active(VICTIM);
        if insert_claimant(self.word(CLAIM)) == Some(VICTIM) {
            assert_eq!(
                active,
                publishing(P),
                "the dead publisher's claim outlived the active word that leads to it"
            );
        }
        let n = self.word(NENTRIES).min(CAP);
        let held: Vec<u64> = (0..n)
            .filter(|&e| self.word(entry(e) + KEY) != 0)
            .map(|e| self.word(entry(e) + VALUE))
            .collect();
        for j in [OP, VALUE_J] {
            let w = self.journal(VICTIM, j);
            if w & table::JOURNAL_TAKEN != 0 && held.contains(&(w & !table::JOURNAL_TAKEN)) {
                assert_eq!(
                    active,
                    publishing(P),
                    "the dict holds block {:#x}, still named by journal {j}, and the dead \
                     `active` no longer names the dict: the next recoverer frees it",
                    w & !table::JOURNAL_TAKEN
                );
            }
        }
    }

    /// Once nothing is in flight and the dead are recovered: the dict consistent and
    /// unclaimed, and the scaffolding quiet (`Objects::assert_quiet`: P free, records, logs and
    /// `active` words empty, the store lock free).
    fn assert_quiet(&self) {
        self.x();
        assert_eq!(
            self.word(CLAIM),
            0,
            "the dict is left claimed: {:#x}",
            self.word(CLAIM)
        );
        self.objects.assert_quiet();
    }

    /// The block accounting at the end, every participant done or recovered: each heap slot
    /// recovered (its block cache given back, as its exit or its recovery would); every block
    /// the dict holds is allocated and still holds the contents `tag` (what the publication a
    /// wrote (a freed block's first word is its free-stack link); whatever else is allocated is
    /// at most `may_leave` blocks (the documented windows: to gc); nothing freed twice (the
    /// heap's check), and `loom_tests::conserve_sized` (allocating until full hands out no
    /// held block and none twice; a sweep frees exactly the leftovers).
    fn account(&self, tag: u64, may_leave: usize, why: &str) {
        let held: BTreeSet<Block> = self.linked().into_iter().map(Block::from_word).collect();
        for b in &held {
            let first = self.heap.store.load(b.get(), Ordering::Relaxed).unwrap();
            assert_eq!(
                first,
                tag,
                "the dict holds block {:#x}, whose first word is {first:#x}: freed while \
                 linked? ({why})",
                b.get()
            );
        }
        let h = self.heap.heap(CHECKER);
        for s in [VICTIM, OTHER, THIRD] {
            self.heap.kill(s);
            h.recover_participant(s).unwrap();
        }
        check(&h);
        let allocated = allocated_blocks(&h);
        for b in &held {
            assert!(
                allocated.contains(b),
                "block {:#x} is in the dict and free ({why})",
                b.get()
            );
        }
        let left: BTreeSet<Block> = allocated.difference(&held).copied().collect();
        assert!(
            left.len() <= may_leave,
            "left allocated: {left:?}, {may_leave} allowed ({why})"
        );
        conserve_sized(
            &self.heap,
            CHECKER,
            self.class.size(),
            self.class.per_segment(),
            &held,
            &left,
        );
    }
}

// ---- the recovery -------------------------------------------------------------------------------

/// `object/recovery.rs` `inserted_by_dead`: whether a live entry of the dict (below
/// `nentries`, its key word not 0) holds `block` as its key or its value, from the end.
/// (`dict_words`' checks of the table are abstracted: the table never moves here.)
fn inserted_by_dead<W: WordStore>(store: &W, block: u64) -> Result<bool, Error> {
    let n = store.load(NENTRIES, Ordering::Acquire)?;
    for e in (0..n.min(CAP)).rev() {
        let key = store.load(entry(e) + KEY, Ordering::Acquire)?;
        if key != 0 && (key == block || store.load(entry(e) + VALUE, Ordering::Acquire)? == block) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `object/recovery.rs` `appended_by_dead` on a dict: linked iff the dead `active` names a
/// publication (under P: the only container) and a live entry holds the block.
fn held_by_dict<W: WordStore>(
    parts: &persist::part_lock::Parts<'_, W>,
    store: &W,
    dead: u32,
    block: u64,
) -> Result<bool, Error> {
    let active = parts.active_word(dead)?.load(Ordering::SeqCst);
    let Some(p) = published_part(active) else {
        return Ok(false);
    };
    assert_eq!(p, P, "a publication under a part that is not the dict's");
    inserted_by_dead(store, block)
}

/// Step 0 of `object/recovery.rs` (`settle_journals`), journal 0 first: each journal naming a
/// block as taken (`Heap::taken_by_dead`) is settled (`Heap::settle_dead`), the block freed
/// unless linked: journal 1 (`OP`) iff the undo log's last entry is its alloc entry or the
/// dict holds it; journal 5 (`VALUE`) iff the dict holds it (broken,
/// `recovery-frees-linked`: never). `unlinked` is set before an unlinked block's free.
fn settle_journals<W: WordStore, HW: WordStore>(
    parts: &persist::part_lock::Parts<'_, W>,
    store: &W,
    heap: &Heap<'_, HW, MemLiveness>,
    dead: u32,
    unlinked: &Cell<bool>,
    raw: &MemWords,
    frees: &Log,
) -> Result<(), Error> {
    let log = UndoLog::new(store, log_of(dead));
    for j in 0..table::BLOCK_JOURNALS {
        let Some(b) = heap.taken_by_dead(dead, j)? else {
            continue;
        };
        let linked = match j {
            OP => {
                let len = log.published_len()?;
                log.ends_with_alloc(len, b.get())? || held_by_dict(parts, store, dead, b.get())?
            }
            VALUE_J if broken("recovery-frees-linked") => false,
            VALUE_J => held_by_dict(parts, store, dead, b.get())?,
            _ => false,
        };
        if !linked {
            unlinked.set(true);
            raw.store(b.get(), POISON, Ordering::Relaxed)?;
        }
        heap.settle_dead(dead, j, b, linked)?;
        if !linked {
            frees.freed(
                b.get(),
                &format!("the recovery of slot {dead} (journal {j} unlinked)"),
            );
        }
    }
    Ok(())
}

/// Recovers dead slot `dead` as slot `by` would, in `object/recovery.rs`'s order: its block
/// journals (step 0), then the publication its `active` names (a claim naming it settled,
/// `settle_insert_claim`, then P moved; step 2, continued), then `Parts::recover_dead` (its
/// log rolled back, its parts released, its `active` cleared; step 2b), then the heap's
/// recovery of the slot (its journals cleared, its block cache given back). Safe to repeat.
/// `unlinked` is set before it frees a block for the dead (a recoverer killed inside that
/// free leaves the block to gc, never to a second free).
#[allow(clippy::too_many_arguments)]
fn recover<W: WordStore, HW: WordStore>(
    lock_file: &W,
    store: &W,
    heap: &Heap<'_, HW, MemLiveness>,
    by: u32,
    dead: u32,
    unlinked: &Cell<bool>,
    raw: &MemWords,
    frees: &Log,
) -> Result<(), Error> {
    let (_, parts) = gate(lock_file, store, by)?;
    settle_journals(&parts, store, heap, dead, unlinked, raw, frees)?;
    // Relaxed: the death (learnt from the liveness flag, SeqCst) orders all the dead did.
    let active = parts.active_word(dead)?.load(Ordering::Relaxed);
    if let Some(part) = published_part(active) {
        assert_eq!(part, P, "a publication under a part that is not the dict's");
        let claim = store.load(CLAIM, Ordering::Acquire)?;
        if insert_claimant(claim) == Some(dead) {
            settle_insert_claim(store, WORDS, Some(dead))?;
        }
        bump_version(store, part)?;
    }
    publication::recover_dead(&parts, store, dead)?;
    unlinked.set(true);
    heap.recover_participant(dead)?;
    Ok(())
}

/// A live participant recovers dead slot `dead`, one recoverer at a time.
fn recover_live(world: &World, by: u32, dead: u32) {
    let _one_at_a_time = world.recovery.lock().unwrap();
    let h = world.heap.heap(by);
    recover(
        &world.lock_file,
        &world.store,
        &h,
        by,
        dead,
        &Cell::new(false),
        &world.heap.store,
        &world.log,
    )
    .unwrap();
}

// ---- participants -------------------------------------------------------------------------------

/// What a value publication did, as far as it got.
#[derive(Default)]
struct Swap {
    /// Its new block (set right after `alloc_into` returned).
    got: Cell<Option<Block>>,
    /// The word its CAS took out (set right after the CAS: the commit point).
    swapped: Cell<Option<u64>>,
    /// Inside a `free_journaled` (of its new block given back, or of the old one), which for
    /// `Class::Segment` settles, then frees: a kill between leaves the block to gc.
    freeing: Cell<bool>,
    /// The old block it freed (set after the free returned).
    freed: Cell<Option<u64>>,
}

/// A participant's view through `W` and `HW` (killable for a victim): the object layer's
/// words (`View`, which it derefs to: its parts and store lock), the heap, and the heap's
/// store (the blocks' words).
struct Participant<'a, W: WordStore, HW: WordStore> {
    view: View<'a, W>,
    heap: Heap<'a, HW, MemLiveness>,
    blocks: &'a HW,
    /// The heap's store, not killable: POISON's stores (no step of the protocol's).
    raw: &'a MemWords,
    log: &'a Log,
    /// The blocks' size (`Class`).
    size: u64,
}

impl<'a, W: WordStore, HW: WordStore> Deref for Participant<'a, W, HW> {
    type Target = View<'a, W>;

    fn deref(&self) -> &View<'a, W> {
        &self.view
    }
}

/// Where a key is, as a lookup found it: its bucket and entry, and `used` as read.
struct Found {
    bucket: u64,
    entry: u64,
    used: u64,
}

impl<'a, W: WordStore, HW: WordStore> Participant<'a, W, HW> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        lock_file: &'a W,
        store: &'a W,
        heap: Heap<'a, HW, MemLiveness>,
        blocks: &'a HW,
        raw: &'a MemWords,
        log: &'a Log,
        size: u64,
        slot: u32,
    ) -> Result<Self, Error> {
        Ok(Participant {
            view: View::new(lock_file, store, slot)?,
            heap,
            blocks,
            raw,
            log,
            size,
        })
    }

    fn load(&self, at: u64) -> Result<u64, Error> {
        // Relaxed: as the object layer's `get`.
        Ok(self.store.load(at, Ordering::Relaxed)?)
    }

    /// A lookup of `key` (`dict_parts`: `used` and `nentries`; `find`: the probe). Under the
    /// announcement the table does not move (a part taker waits for us), and only a delete
    /// under the claim empties a key word.
    fn find(&self, key: u64) -> Result<Option<Found>, Error> {
        let used = self.load(USED)?;
        let n = self.load(NENTRIES)?;
        for i in probe(hash(key)) {
            let b = self.load(dict_table::bucket(i))?;
            if b == 0 {
                break;
            }
            if b != BUCKET_DELETED {
                let e = b - 1;
                assert!(e < n, "bucket {i} names entry {e} past nentries {n}");
                if self.load(entry(e))? == hash(key) && self.load(entry(e) + KEY)? == key {
                    return Ok(Some(Found {
                        bucket: i,
                        entry: e,
                        used,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// `Store::claim_entries`: the claim taken by CAS (held by another: `SPIN_LOOKS` more looks
    /// at it, then give up). False: not taken.
    fn claim_entries(&self) -> Result<bool, Error> {
        let mut looks = 0;
        loop {
            match self.parts.claim_insert(CLAIM)? {
                Ok(()) => return Ok(true),
                Err(now) => {
                    assert_ne!(insert_claimant(now), Some(self.slot), "our own claim");
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

    /// `replaceable`: an inline word, or a block with no references (`poppable`: its head,
    /// read here unclaimed, is a one-block kind's; a block freed meanwhile has POISON or its
    /// free-stack link there instead, and is not replaced: withdrawn).
    fn replaceable(&self, w: u64) -> Result<bool, Error> {
        if is_inline(w) {
            return Ok(true);
        }
        Ok(is_block(w) && is_head(self.blocks.load(w, Ordering::Relaxed)?))
    }

    /// The loop of `publish_value` (the closure `published`): the key looked up, its value
    /// word read; while it is replaceable: an old block and no claim, the claim taken (given
    /// up: withdrawn) and the word read again; an old block, named by journal 5 as taken
    /// (`journal_owned`) before the CAS; the CAS (`Parts::publish`) old -> new; failed, journal
    /// 5 settled if it named the old block, and again from the word seen. The old word if it
    /// swapped; None: withdrawn. Broken: `no-claim` (the claim never taken, the rest as if it
    /// were), `journal-after-cas` (the old block named after the CAS). Proposed
    /// (`claim-until-settled`): a new block's publication takes the claim over an inline word
    /// too.
    fn swap_loop(
        &self,
        key: u64,
        new: u64,
        block: u64,
        claimed: &mut bool,
        out: &Swap,
    ) -> Result<Option<u64>, Error> {
        let Some(f) = self.find(key)? else {
            return Ok(None);
        };
        let at = entry(f.entry) + VALUE;
        let mut old = self.load(at)?;
        loop {
            if !self.replaceable(old)? {
                return Ok(None);
            }
            let wants_claim = is_block(old) || (block != 0 && claim_for_new_block());
            if wants_claim && !*claimed {
                if !broken("no-claim") && !self.claim_entries()? {
                    return Ok(None);
                }
                *claimed = true;
                // Read again: the block may have been taken out before the claim.
                old = self.load(at)?;
                continue;
            }
            let new = if block != 0 { block } else { new };
            let old_block = is_block(old);
            let named_first = old_block && !broken("journal-after-cas");
            if named_first {
                self.heap.journal_owned(VALUE_J, Block::from_word(old))?;
            }
            match self.parts.publish(at, old, new)? {
                Ok(()) => {
                    out.swapped.set(Some(old));
                    if old_block && !named_first {
                        self.heap.journal_owned(VALUE_J, Block::from_word(old))?;
                    }
                    return Ok(Some(old));
                }
                Err(now) => {
                    if named_first {
                        self.heap.settle(VALUE_J)?;
                    }
                    old = now;
                }
            }
        }
    }

    /// `Store::publish_dict_value` of inline word `w` for `key` (the tree since db7bb1c): a
    /// look before the announcement (`dict_value_at`, the value word read; unvalidated, it only
    /// decides the path): missing, withdrawn; not an inline word, `publish_value` (the block
    /// path, which takes the claim over a block); an inline word, the small values' path:
    /// announced under P (turned away: withdrawn), the key looked up, its value word read;
    /// while it is an inline word, the CAS from it (failed: again from the word seen); any
    /// other word (a block swapped in since the look, the empty word of a delete's commit):
    /// withdrawn, the part path's; then `end_publish`. Broken `inline-takes-block`: this path
    /// CASes from a block it meets as from an inline word (no claim, no journal 5; it frees
    /// nothing, as the path does). The old word if it swapped; None: withdrawn.
    fn publish_inline(
        &self,
        key: u64,
        w: u64,
        out: &Swap,
        pause: Pause,
    ) -> Result<Option<u64>, Error> {
        if pause == Pause::BeforeLook {
            thread::yield_now();
        }
        let Some(f) = self.find(key)? else {
            return Ok(None);
        };
        if !is_inline(self.load(entry(f.entry) + VALUE)?) {
            let pause = if pause == Pause::BeforeLook {
                Pause::Never
            } else {
                pause
            };
            return self.publish_value(key, New::Inline(w), out, pause);
        }
        if self.parts.enter_publish(P, &Spin)?.is_err() {
            return Ok(None);
        }
        let published = (|| {
            let Some(f) = self.find(key)? else {
                return Ok(None);
            };
            let at = entry(f.entry) + VALUE;
            let mut old = self.load(at)?;
            loop {
                let taken = is_block(old) && broken("inline-takes-block");
                if !is_inline(old) && !taken {
                    return Ok(None);
                }
                match self.parts.publish(at, old, w)? {
                    Ok(()) => {
                        out.swapped.set(Some(old));
                        return Ok(Some(old));
                    }
                    Err(now) => old = now,
                }
            }
        })();
        let changed = matches!(published, Ok(Some(_)));
        self.parts.end_publish(P, changed, &Spin)?;
        published
    }

    /// A publication of `new` for `key`: an inline word's (`publish_inline`), or a new block's
    /// (`publish_value`).
    fn publish(&self, key: u64, new: New, out: &Swap, pause: Pause) -> Result<Option<u64>, Error> {
        match new {
            New::Inline(w) => self.publish_inline(key, w, out, pause),
            New::Block(_) => self.publish_value(key, new, out, pause),
        }
    }

    /// `publish_value` / `publish_dict_replace` of `new` for `key`: announced under P
    /// (`enter_publish`; turned away: withdrawn); a new block taken into journal 1
    /// (`alloc_into`) and written, past the gate; the loop (`swap_loop`); with the claim held:
    /// journal 5 settled unless it swapped (proposed: journal 1 settled first if it swapped a
    /// new block in), then the claim dropped (`unclaim_insert`); a new block not linked given
    /// back (`free_journaled(OP)`, errors ignored); swapped: `settle_swapped` (journal 1
    /// settled, an old block freed with `free_journaled(VALUE)`); then `end_publish` (P moved if
    /// it swapped). Broken `free-after-end`: `settle_swapped` after `end_publish`. The old word
    /// if it swapped; None: withdrawn (the object layer then runs the change on the part: not
    /// modelled).
    fn publish_value(
        &self,
        key: u64,
        new: New,
        out: &Swap,
        pause: Pause,
    ) -> Result<Option<u64>, Error> {
        if pause == Pause::BeforeLook {
            thread::yield_now();
        }
        if self.parts.enter_publish(P, &Spin)?.is_err() {
            return Ok(None);
        }
        let mut block = 0;
        let mut inline = 0;
        match new {
            New::Block(tag) => {
                let b = self.heap.alloc_into(self.size, OP)?;
                out.got.set(Some(b));
                self.log
                    .allocated(b.get(), &format!("slot {}'s publication", self.slot));
                self.blocks.store(b.get(), tag, Ordering::Relaxed)?;
                block = b.get();
            }
            New::Inline(w) => inline = w,
        }
        let mut claimed = false;
        let published = self.swap_loop(key, inline, block, &mut claimed, out);
        let changed = matches!(published, Ok(Some(_)));
        let mut op_settled = false;
        if claimed {
            if !changed {
                let _ = self.heap.settle(VALUE_J);
            } else if block != 0 && settle_before_unclaim() {
                self.heap.settle(OP)?;
                op_settled = true;
            }
            self.parts.unclaim_insert(CLAIM)?;
        }
        if changed && pause == Pause::BeforeSettle {
            thread::yield_now();
        }
        if !changed && block != 0 {
            // `give_back_unlinked`: errors ignored.
            out.freeing.set(true);
            if self
                .heap
                .free_journaled(OP, Block::from_word(block))
                .is_ok()
            {
                out.freeing.set(false);
                self.log.freed(
                    block,
                    &format!(
                        "slot {}'s publication (its new block given back)",
                        self.slot
                    ),
                );
            }
        }
        let late = broken("free-after-end");
        let after = match &published {
            Ok(Some(old)) if !late => self.settle_swapped(block, *old, op_settled, out),
            _ => Ok(()),
        };
        self.parts.end_publish(P, changed, &Spin)?;
        if let (true, Ok(Some(old))) = (late, &published) {
            self.settle_swapped(block, *old, op_settled, out)?;
        }
        after?;
        published
    }

    /// `settle_swapped`: journal 1 settled (the entry holds the new block), then the old block
    /// (journal 5 names it as taken: ours alone now) freed with `free_journaled(VALUE)`.
    fn settle_swapped(
        &self,
        block: u64,
        old: u64,
        op_settled: bool,
        out: &Swap,
    ) -> Result<(), Error> {
        if block != 0 && !op_settled {
            self.heap.settle(OP)?;
        }
        if is_block(old) {
            self.raw.store(old, POISON, Ordering::Relaxed)?;
            out.freeing.set(true);
            self.heap.free_journaled(VALUE_J, Block::from_word(old))?;
            out.freeing.set(false);
            self.log.freed(
                old,
                &format!(
                    "slot {}'s publication (the old block it swapped out)",
                    self.slot
                ),
            );
            out.freed.set(Some(old));
        }
        Ok(())
    }

    /// `Store::publish_dict_delete` (`claim_and_delete`, `Kind::Dict`): announced under P
    /// (turned away: withdrawn, None); the claim taken (given up: None); the key looked up
    /// under it (missing: the claim dropped, `Some(None)`); its value read (not an inline word:
    /// the claim dropped, None); the claim names the entry (`delete_claim_entry`); the value
    /// word sealed (`delete_value_commit`, THE COMMIT POINT, retried from an inline word a
    /// value publication put there; failed on any other word: the claim settled as a dead
    /// deleter's, `settle_insert_claim(me)`, None); the key emptied, the rest finished; then
    /// `end_publish` (P moved if it deleted). `popped` is set at the commit point.
    fn delete(&self, key: u64, popped: &Cell<Option<u64>>) -> Result<Option<Option<u64>>, Error> {
        if self.parts.enter_publish(P, &Spin)?.is_err() {
            return Ok(None);
        }
        let out = self.claim_and_delete(key, popped);
        let changed = matches!(out, Ok(Some(Some(_))));
        self.parts.end_publish(P, changed, &Spin)?;
        out
    }

    fn claim_and_delete(
        &self,
        key: u64,
        popped: &Cell<Option<u64>>,
    ) -> Result<Option<Option<u64>>, Error> {
        if !self.claim_entries()? {
            return Ok(None);
        }
        let found = self.find(key).and_then(|f| match f {
            Some(f) => {
                let v = self.load(entry(f.entry) + VALUE)?;
                Ok(Some((f, v)))
            }
            None => Ok(None),
        });
        let (f, mut v) = match found {
            Ok(Some((f, v))) if is_inline(v) => (f, v),
            Ok(Some(_)) => {
                self.parts.unclaim_insert(CLAIM)?;
                return Ok(None);
            }
            Ok(None) => {
                self.parts.unclaim_insert(CLAIM)?;
                return Ok(Some(None));
            }
            Err(e) => {
                self.parts.unclaim_insert(CLAIM)?;
                return Err(e);
            }
        };
        let me = Some(self.slot);
        self.parts.delete_claim_entry(WORDS, f.entry)?;
        loop {
            match self.parts.delete_value_commit(WORDS, f.entry, v)? {
                Ok(()) => break,
                Err(now) if is_inline(now) => v = now,
                Err(_) => {
                    settle_insert_claim(self.store, WORDS, me)?;
                    return Ok(None);
                }
            }
        }
        popped.set(Some(v));
        self.parts.delete_entry_commit(WORDS, f.entry)?;
        self.parts
            .delete_entry_finish(WORDS, f.bucket, f.entry, f.used)?;
        Ok(Some(Some(v)))
    }
}

/// Runs `f` as victim `slot` through killable words with budget `k` (its object words, lock
/// file, heap store and participant table all count against it); a victim that is killed
/// dies. Returns whether it was killed and the accesses it made.
fn as_victim(
    world: &World,
    slot: u32,
    k: u64,
    f: impl FnOnce(
        &Participant<'_, loom_tests::KillableWords<'_>, loom_tests::KillableWords<'_>>,
    ) -> Result<(), Error>,
) -> (bool, u64) {
    let budget = Budget::new(k);
    let (lock_file, store) = world.killable(&budget);
    let v = Victim::new(&world.heap, &budget);
    let heap = v.heap(slot);
    budget.uncounted(|| world.learn(&heap, slot));
    let r = Participant::new(
        &lock_file,
        &store,
        heap,
        &v.store,
        &world.heap.store,
        &world.log,
        world.class.size(),
        slot,
    )
    .and_then(|p| f(&p));
    if let Err(e) = r {
        assert!(
            budget.killed(),
            "the victim failed without being killed: {e}"
        );
        world.kill(slot);
    }
    (budget.killed(), budget.spent())
}

/// The victim publishing `new` for X, killed after `k` accesses: what it did, whether it was
/// killed, its raw journal 1 right after (before any recovery), and its accesses.
fn victim_publish(world: &World, k: u64, new: New, pause: Pause) -> (Swap, bool, u64, u64) {
    let out = Swap::default();
    let (killed, spent) = as_victim(world, VICTIM, k, |p| {
        p.publish(X, new, &out, pause).map(|_| ())
    });
    let raw = world.journal(VICTIM, OP);
    (out, killed, raw, spent)
}

/// A live participant in `slot` publishes `new` for X (pausing where `pause` says).
fn live_publish(world: &World, slot: u32, new: New, pause: Pause) -> Swap {
    let out = Swap::default();
    let p = world.live(slot);
    let r = p.publish(X, new, &out, pause).unwrap();
    assert_eq!(r, out.swapped.get());
    out
}

/// What the victim may leave to gc (`Class::Segment` only): killed between the allocator's
/// take and the taken bit (its journal 1 names a block without the bit, and it never got the
/// block), or inside a `free_journaled` (settled, not yet freed). With `Class::Cached`,
/// nothing: a cache pop writes the bit before the count store that takes the block, and a free
/// into the cache puts the block there while its journal still names it.
fn victim_window(world: &World, out: &Swap, killed: bool, raw: u64) -> usize {
    if world.class == Class::Cached {
        return 0;
    }
    let in_take = out.got.get().is_none() && raw != 0 && raw & table::JOURNAL_TAKEN == 0;
    usize::from(in_take) + usize::from(killed && out.freeing.get())
}

/// The word a publication of `new` stores (its block, once taken).
fn word_of(new: New, out: &Swap) -> u64 {
    match new {
        New::Block(_) => out.got.get().map_or(0, |b| b.get()),
        New::Inline(w) => w,
    }
}

/// What a publication of `new` writes into its block (0: an inline word, no block).
fn contents(new: New) -> u64 {
    match new {
        New::Block(t) => t,
        New::Inline(_) => 0,
    }
}

/// The value X ends with must be what a serial order of the publications that swapped
/// explains, from `first`: each swapped publication took out the word before it in the
/// order (its `swapped`), and X is the last one's word (`first` if none swapped). `first`
/// and `pubs`: (the word, what its block holds); `pubs` also what it swapped out. What X's
/// block must hold (`World::account`).
fn explained(
    first: (u64, u64),
    pubs: &[(u64, Option<u64>, u64)],
    x: Option<u64>,
    why: &str,
) -> u64 {
    let done: Vec<(u64, u64, u64)> = pubs
        .iter()
        .filter_map(|&(new, old, tag)| old.map(|o| (new, o, tag)))
        .collect();
    let (w0, t0) = first;
    let last = match done[..] {
        [] => (x == Some(w0)).then_some(t0),
        [(n, o, t)] => (o == w0 && x == Some(n)).then_some(t),
        [(n1, o1, t1), (n2, o2, t2)] => {
            if o1 == w0 && o2 == n1 && x == Some(n2) {
                Some(t2)
            } else if o2 == w0 && o1 == n2 && x == Some(n1) {
                Some(t1)
            } else {
                None
            }
        }
        _ => unreachable!(),
    };
    last.unwrap_or_else(|| {
        panic!(
            "no serial order explains X = {x:x?} from {w0:#x} with (new, swapped out, contents) \
             {pubs:x?} ({why})"
        )
    })
}

// ---- 1. two block publishers --------------------------------------------------------------------

/// The victim (killed before each of its accesses; recovered at once by a third participant
/// once dead) replaces X's block (T0) by a new block (TV) while a live participant replaces it
/// by another (TO); then the recovery is repeated. X is the block of the publication a serial
/// order puts last (or the first block), every block linked once or freed once, the claim 0.
fn scenario_two_blocks(k: u64, block_first: bool, pause: Pause, other_pause: Pause) -> u64 {
    let world = Arc::new(World::new(block_first, Class::Cached));
    let b0 = world.x().unwrap();
    let victim = {
        let world = world.clone();
        thread::spawn(move || {
            let r = victim_publish(&world, k, New::Block(TV), pause);
            if !world.is_alive(VICTIM) {
                recover_live(&world, THIRD, VICTIM);
            }
            r
        })
    };
    let other = live_publish(&world, OTHER, New::Block(TO), other_pause);
    let (out, killed, raw, spent) = victim.join().unwrap();
    if !world.is_alive(VICTIM) {
        recover_live(&world, OTHER, VICTIM);
    }
    let (v, o) = (
        word_of(New::Block(TV), &out),
        word_of(New::Block(TO), &other),
    );
    let why = format!(
        "victim killed: {killed}, took {:?} and swapped out {:x?}; other took {:?} and swapped \
         out {:x?}",
        out.got.get(),
        out.swapped.get(),
        other.got.get(),
        other.swapped.get()
    );
    let tag = explained(
        (b0, T0),
        &[(v, out.swapped.get(), TV), (o, other.swapped.get(), TO)],
        world.x(),
        &why,
    );
    world.assert_quiet();
    world.account(tag, victim_window(&world, &out, killed, raw), &why);
    spent
}

#[test]
fn two_block_publishers_link_or_free_each_block_once() {
    every_kill_point(|k| scenario_two_blocks(k, true, Pause::Never, Pause::Never));
    every_kill_point(|k| scenario_two_blocks(k, true, Pause::BeforeSettle, Pause::Never));
    every_kill_point(|k| scenario_two_blocks(k, true, Pause::BeforeSettle, Pause::BeforeLook));
}

/// Model 1 from X = I0: the victim's publication takes no claim in the tree.
#[test]
fn two_block_publishers_from_an_inline_word() {
    every_kill_point(|k| scenario_two_blocks(k, false, Pause::Never, Pause::Never));
    every_kill_point(|k| scenario_two_blocks(k, false, Pause::BeforeSettle, Pause::Never));
    every_kill_point(|k| scenario_two_blocks(k, false, Pause::BeforeSettle, Pause::BeforeLook));
}

/// The victim alone replaces X's value (`block_first`: the block T0; else I0) by a new block
/// (TV), killed before each of its accesses; its first recoverer is killed before each of its
/// accesses, a second one finishes; then a live participant replaces X by another block (TO).
/// Sequential: what is checked is the state each death leaves (`assert_recoverable`), and at
/// the end the serial order and the accounting of model 1.
fn scenario_recoverer(k1: u64, k2: u64, block_first: bool, class: Class) -> (u64, u64) {
    let world = World::new(block_first, class);
    let first = world.x().unwrap();
    let (out, killed, raw, spent) = victim_publish(&world, k1, New::Block(TV), Pause::Never);
    let mut recoverer_spent = 0;
    let mut recoverer_window = false;
    let mut recoverer_killed = false;
    if !world.is_alive(VICTIM) {
        let budget = Budget::new(k2);
        let (lock_file, store) = world.killable(&budget);
        let v = Victim::new(&world.heap, &budget);
        let h = v.heap(THIRD);
        let unlinked = Cell::new(false);
        if let Err(e) = recover(
            &lock_file,
            &store,
            &h,
            THIRD,
            VICTIM,
            &unlinked,
            &world.heap.store,
            &world.log,
        ) {
            assert!(budget.killed(), "the recoverer failed unkilled: {e}");
        }
        recoverer_spent = budget.spent();
        recoverer_killed = budget.killed();
        // Killed between a journal's clearing and the end of the free it makes for the dead:
        // the block is left named by journal 0 without the bit, a leak to gc.
        recoverer_window = recoverer_killed && unlinked.get();
        world.assert_recoverable();
        if recoverer_killed {
            world.kill(THIRD);
        }
        recover_live(&world, OTHER, VICTIM);
        if recoverer_killed {
            world.heap.heap(OTHER).recover_participant(THIRD).unwrap();
        }
    }
    let other = live_publish(&world, OTHER, New::Block(TO), Pause::Never);
    let (v, o) = (
        word_of(New::Block(TV), &out),
        word_of(New::Block(TO), &other),
    );
    let why = format!(
        "victim killed: {killed}, took {:?}, swapped out {:x?}; recoverer killed: \
         {recoverer_killed}",
        out.got.get(),
        out.swapped.get()
    );
    assert!(
        other.swapped.get().is_some(),
        "the live publication after the recovery withdrew ({why})"
    );
    let tag = explained(
        (first, T0),
        &[(v, out.swapped.get(), TV), (o, other.swapped.get(), TO)],
        world.x(),
        &why,
    );
    world.assert_quiet();
    let may = victim_window(&world, &out, killed, raw) + usize::from(recoverer_window);
    world.account(tag, may, &why);
    (spent, recoverer_spent)
}

#[test]
fn a_recoverer_killed_anywhere_settles_a_block_swap() {
    every_kill_pair(|k1, k2| scenario_recoverer(k1, k2, true, Class::Cached));
    every_kill_pair(|k1, k2| scenario_recoverer(k1, k2, false, Class::Cached));
    every_kill_pair(|k1, k2| scenario_recoverer(k1, k2, true, Class::Segment));
}

// ---- 2. a block publisher and an inline publisher -----------------------------------------------

/// The victim (killed before each of its accesses; recovered at once by a third participant)
/// publishes `victim_new` for X while a live participant publishes `other_new`; X starts as a
/// block (T0) or I0; then the recovery is repeated. A serial order explains X; every block
/// linked once or freed once; the claim 0.
fn scenario_mixed(
    k: u64,
    block_first: bool,
    victim_new: New,
    other_new: New,
    pause: Pause,
    other_pause: Pause,
) -> u64 {
    let world = Arc::new(World::new(block_first, Class::Cached));
    let first = world.x().unwrap();
    let victim = {
        let world = world.clone();
        thread::spawn(move || {
            let r = victim_publish(&world, k, victim_new, pause);
            if !world.is_alive(VICTIM) {
                recover_live(&world, THIRD, VICTIM);
            }
            r
        })
    };
    let other = live_publish(&world, OTHER, other_new, other_pause);
    let (out, killed, raw, spent) = victim.join().unwrap();
    if !world.is_alive(VICTIM) {
        recover_live(&world, OTHER, VICTIM);
    }
    let (v, o) = (word_of(victim_new, &out), word_of(other_new, &other));
    let why = format!(
        "victim ({victim_new:x?}) killed: {killed}, took {:?} and swapped out {:x?}; other \
         ({other_new:x?}) took {:?} and swapped out {:x?}",
        out.got.get(),
        out.swapped.get(),
        other.got.get(),
        other.swapped.get()
    );
    let tag = explained(
        (first, T0),
        &[
            (v, out.swapped.get(), contents(victim_new)),
            (o, other.swapped.get(), contents(other_new)),
        ],
        world.x(),
        &why,
    );
    world.assert_quiet();
    world.account(tag, victim_window(&world, &out, killed, raw), &why);
    spent
}

/// Model 2a from X = T0's block.
#[test]
fn a_block_publisher_and_an_inline_publisher_from_a_block() {
    use Pause::{BeforeLook, BeforeSettle, Never};
    every_kill_point(|k| scenario_mixed(k, true, New::Block(TV), New::Inline(IO), Never, Never));
    every_kill_point(|k| {
        scenario_mixed(
            k,
            true,
            New::Block(TV),
            New::Inline(IO),
            BeforeSettle,
            Never,
        )
    });
    every_kill_point(|k| {
        scenario_mixed(
            k,
            true,
            New::Block(TV),
            New::Inline(IO),
            BeforeSettle,
            BeforeLook,
        )
    });
}

/// Model 2a from X = I0: the block publication takes no claim in the tree.
#[test]
fn a_block_publisher_and_an_inline_publisher_from_an_inline_word() {
    use Pause::{BeforeLook, BeforeSettle, Never};
    every_kill_point(|k| scenario_mixed(k, false, New::Block(TV), New::Inline(IO), Never, Never));
    every_kill_point(|k| {
        scenario_mixed(
            k,
            false,
            New::Block(TV),
            New::Inline(IO),
            BeforeSettle,
            Never,
        )
    });
    every_kill_point(|k| {
        scenario_mixed(
            k,
            false,
            New::Block(TV),
            New::Inline(IO),
            BeforeSettle,
            BeforeLook,
        )
    });
}

/// Model 2b: the victim publishes an inline word (IV), a live participant a new block (TO).
#[test]
fn an_inline_publisher_and_a_block_publisher_serialize() {
    use Pause::{BeforeLook, Never};
    every_kill_point(|k| scenario_mixed(k, true, New::Inline(IV), New::Block(TO), Never, Never));
    every_kill_point(|k| {
        scenario_mixed(k, true, New::Inline(IV), New::Block(TO), Never, BeforeLook)
    });
    every_kill_point(|k| scenario_mixed(k, false, New::Inline(IV), New::Block(TO), Never, Never));
    every_kill_point(|k| {
        scenario_mixed(k, false, New::Inline(IV), New::Block(TO), Never, BeforeLook)
    });
}

// ---- 3. a block publisher and a dict delete -----------------------------------------------------

/// From {X: I0}, a block publication of X (TV) and a delete of X (`dict_delete.rs`'s deleter),
/// one of them the victim (killed before each of its accesses; recovered at once by a third
/// participant), the other live; then the recovery is repeated. Either the delete popped I0
/// and X is gone (the publication did not swap), or the publication swapped I0 out and X holds
/// its block (the delete did not pop: it withdrew on the block, or found X's word sealed), or
/// neither; every block linked once or freed once; the claim 0.
fn scenario_delete(k: u64, victim_deletes: bool, pause: Pause) -> u64 {
    let world = Arc::new(World::new(false, Class::Cached));
    let victim = {
        let world = world.clone();
        thread::spawn(move || {
            let swap = Swap::default();
            let popped = Cell::new(None);
            let (killed, spent) = as_victim(&world, VICTIM, k, |p| {
                if victim_deletes {
                    p.delete(X, &popped).map(|_| ())
                } else {
                    p.publish_value(X, New::Block(TV), &swap, pause).map(|_| ())
                }
            });
            let raw = world.journal(VICTIM, OP);
            if !world.is_alive(VICTIM) {
                recover_live(&world, THIRD, VICTIM);
            }
            (swap, popped.get(), killed, raw, spent)
        })
    };
    let p = world.live(OTHER);
    let (live_swap, live_popped) = (Swap::default(), Cell::new(None));
    if victim_deletes {
        let r = p
            .publish_value(X, New::Block(TV), &live_swap, Pause::Never)
            .unwrap();
        assert_eq!(r, live_swap.swapped.get());
    } else if let Some(r) = p.delete(X, &live_popped).unwrap() {
        assert_eq!(r, live_popped.get());
    }
    drop(p);
    let (victim_swap, victim_popped, killed, raw, spent) = victim.join().unwrap();
    if !world.is_alive(VICTIM) {
        recover_live(&world, OTHER, VICTIM);
    }
    let (swap, popped) = if victim_deletes {
        (&live_swap, victim_popped)
    } else {
        (&victim_swap, live_popped.get())
    };
    let v = word_of(New::Block(TV), swap);
    let x = world.x();
    let why = format!(
        "victim ({}) killed: {killed}; the publication took {:?} and swapped out {:x?}; the \
         delete popped {popped:x?}",
        if victim_deletes {
            "the delete"
        } else {
            "the publication"
        },
        swap.got.get(),
        swap.swapped.get()
    );
    match (popped, swap.swapped.get()) {
        (Some(p), None) => {
            assert_eq!(p, I0, "the delete popped {p:#x} ({why})");
            assert_eq!(x, None, "X was popped and is in the dict ({why})");
        }
        (None, Some(o)) => {
            assert_eq!(o, I0, "the publication swapped out {o:#x} ({why})");
            assert_eq!(x, Some(v), "X is not the block swapped in ({why})");
        }
        (None, None) => assert_eq!(x, Some(I0), "({why})"),
        (Some(_), Some(_)) => panic!("both the delete and the publication took effect ({why})"),
    }
    world.assert_quiet();
    let may = if victim_deletes {
        0
    } else {
        victim_window(&world, swap, killed, raw)
    };
    world.account(TV, may, &why);
    spent
}

#[test]
fn a_block_publisher_and_a_dict_delete_serialize() {
    every_kill_point(|k| scenario_delete(k, false, Pause::Never));
    every_kill_point(|k| scenario_delete(k, false, Pause::BeforeSettle));
    every_kill_point(|k| scenario_delete(k, true, Pause::Never));
}

// ---- 4. a reader --------------------------------------------------------------------------------

/// The victim (killed before each of its accesses) replaces X's block (T0) by a new block (TV)
/// while a reader reads X's value word and, a block, its contents (a `yield_now` between the
/// two), validated (`read_validated`: seq, `publisher_in`, P unchanged); then the recovery. A
/// kept read never holds a freed block's contents (its free-stack link): it is (T0's block,
/// T0) or (the new block, TV); one kept at the first version is the first, one kept at the
/// final version the final value.
fn scenario_reader(k: u64) -> u64 {
    let world = Arc::new(World::new(true, Class::Cached));
    let b0 = world.x().unwrap();
    let reader = {
        let world = world.clone();
        thread::spawn(move || {
            read_validated(&world.objects, THIRD, true, || {
                let w = world
                    .store
                    .load(entry(0) + VALUE, Ordering::Relaxed)
                    .unwrap();
                thread::yield_now();
                let c = if is_block(w) {
                    world.heap.store.load(w, Ordering::Relaxed).unwrap()
                } else {
                    0
                };
                (w, c)
            })
        })
    };
    let (out, killed, raw, spent) = victim_publish(&world, k, New::Block(TV), Pause::Never);
    if !world.is_alive(VICTIM) {
        recover_live(&world, OTHER, VICTIM);
    }
    let v = word_of(New::Block(TV), &out);
    let x = world.x().unwrap();
    let why = format!(
        "victim killed: {killed}, took {:?}, swapped out {:x?}",
        out.got.get(),
        out.swapped.get()
    );
    if let Some((ver, (w, c))) = reader.join().unwrap() {
        assert!(
            (w, c) == (b0, T0) || (w, c) == (v, TV),
            "a reader kept block {w:#x} with contents {c:#x} ({why})"
        );
        if ver == 0 {
            assert_eq!(w, b0, "the first version names the first block ({why})");
        }
        if ver == world.word(P) {
            assert_eq!(w, x, "the final version names the final value ({why})");
        }
    }
    let tag = explained((b0, T0), &[(v, out.swapped.get(), TV)], Some(x), &why);
    world.assert_quiet();
    world.account(tag, victim_window(&world, &out, killed, raw), &why);
    spent
}

#[test]
fn a_reader_never_keeps_a_freed_block() {
    every_kill_point(scenario_reader);
}

// ---- 5. a gc ------------------------------------------------------------------------------------

/// What the object layer's gc does (`Store::gc`, `gc_locked`; `append_block.rs`'s copy), by
/// slot THIRD: the writer word taken and the sequence made odd (the gate closed), the `active`
/// words drained (a dead publisher recovered), the walk (the blocks the dict holds), what the
/// attached slots name (`Heap::named_blocks`), the allocated blocks walked
/// (`for_each_allocated`), and every allocated block neither reached nor named freed by the
/// real `Heap::sweep`. The blocks it freed.
fn gc(world: &World) -> BTreeSet<Block> {
    let p = world.live(THIRD);
    assert_eq!(p.lock.try_take(owner(THIRD)).unwrap(), Ok(()));
    p.lock.begin_change().unwrap();
    let mut from = 0;
    while let Some((s, _)) = p.parts.first_active(from).unwrap() {
        from = s;
        if world.is_alive(s) {
            thread::yield_now();
        } else {
            recover_live(world, THIRD, s);
        }
    }
    let reached: BTreeSet<Block> = world.linked().into_iter().map(Block::from_word).collect();
    let named: BTreeSet<Block> = p.heap.named_blocks().unwrap().into_iter().collect();
    let mut all = BTreeSet::new();
    if let Err(e) = p.heap.for_each_allocated(|b, _| {
        all.insert(b);
    }) {
        panic!("the gc's walk of the allocated blocks failed: {e}");
    }
    let garbage: BTreeSet<Block> = all
        .difference(&reached)
        .filter(|b| !named.contains(b))
        .copied()
        .collect();
    let mut freed = BTreeSet::new();
    p.heap
        .sweep(|b| {
            let g = garbage.contains(&b);
            if g {
                world.log.freed(b.get(), "the gc");
                freed.insert(b);
            }
            g
        })
        .unwrap();
    p.lock.end_change().unwrap();
    freed
}

/// The victim (killed before each of its accesses) replaces X's block (T0) by a new block (TV)
/// while a gc runs (it waits for the victim's publication, recovering it if dead); then the
/// victim is recovered. A block the gc freed was not freed by the publisher too; X is T0's
/// block or the new one; every block linked once or freed once.
fn scenario_gc(k: u64) -> u64 {
    let world = Arc::new(World::new(true, Class::Segment));
    let b0 = world.x().unwrap();
    let victim = {
        let world = world.clone();
        thread::spawn(move || victim_publish(&world, k, New::Block(TV), Pause::Never))
    };
    let collected = gc(&world);
    let (out, killed, raw, spent) = victim.join().unwrap();
    if let Some(f) = out.freed.get() {
        assert!(
            !collected.contains(&Block::from_word(f)),
            "the gc freed block {f:#x}, which the publisher (killed: {killed}) freed too"
        );
    }
    if !world.is_alive(VICTIM) {
        recover_live(&world, OTHER, VICTIM);
    }
    let v = word_of(New::Block(TV), &out);
    let why = format!(
        "victim killed: {killed}, took {:?}, swapped out {:x?}; the gc freed {collected:?}",
        out.got.get(),
        out.swapped.get()
    );
    let tag = explained((b0, T0), &[(v, out.swapped.get(), TV)], world.x(), &why);
    world.assert_quiet();
    world.account(tag, victim_window(&world, &out, killed, raw), &why);
    spent
}

#[test]
fn a_gc_racing_a_block_swap_frees_each_block_once() {
    every_kill_point(scenario_gc);
}
