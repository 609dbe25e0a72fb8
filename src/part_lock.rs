//! Part locks and the gate: the word protocol that lets single changes of different containers
//! run at once in many processes, while lockExcl and lockShared keep their store-wide meaning.
//! (Model-checked in `loom-tests/tests/part_lock.rs`; the object layer's single changes use it
//! through `object/parts.rs`: FORMAT.md §10.9 and papers/objects.md §11.)
//!
//! Problem. Today every change takes the store's one writer word and moves its one sequence
//! word ([`crate::store_lock`]), so changes never run in parallel and every change invalidates
//! every unlocked read in flight. A single change (`d[k] = v`, `l.append(x)`) touches one or a
//! few containers; two that touch different containers need not wait for each other, and a
//! reader of one container need not retry because another changed. A process may be SIGKILLed
//! at any instant; whoever notices must undo its change and release what it held.
//!
//! Mechanism. Three kinds of word:
//!
//! | word | where | values | written by |
//! |---|---|---|---|
//! | part word | a container's `version` (store file, container header +16) | even: free, the container's version; odd: held, [`locked`]`(owner) = owner << 32 \| 1` | a taker (CAS even v -> locked(me)); its holder (-> v + 2); the recoverer of a dead holder (locked(dead) -> seen + 2) |
//! | held-parts record | [`record::ENTRIES`] entries (version word offset, version seen) at the head of the participant's undo log block (store file) | offset 0: empty | its participant; the recoverer of a dead one (-> empty) |
//! | `active` | the participant's slot word 7 (lock file) | 1 while a single change of this participant is past the gate | its participant; the recoverer of a dead one (-> 0) |
//!
//! and the store lock's words (lock file header): `writer` and `seq` (now taken and moved by
//! lockExcl sections only), `shared`, `waiters`.
//!
//! A single change by participant `me` (owner id `me`, from [`crate::store_lock::owner_id`]):
//!
//! | step | word | what |
//! |---|---|---|
//! | 1 | `active[me]` | 1, then a SeqCst fence ([`Parts::enter`]) |
//! | 2 | `seq`, `shared` | read (Acquire). `seq` odd (a lockExcl section) or `shared` != 0: `active[me]` = 0, wake, report the word in the way (the caller sleeps on it and starts again) |
//! | 3 | record entry i | (offset of P's version word, v seen even) ([`Parts::try_take`]) |
//! | 4 | P's version | CAS v -> locked(me) (AcqRel), then a Release fence. Lost: entry i cleared, report the word seen (sleep on it if odd) |
//! | 5 | data | changed, each word logged in the undo log first (as today) |
//! | 6 | undo `len` | 0: the commit point (a failed change rolls its log back to 0 instead) |
//! | 7 | P's version | v + 2 (Release), for every part held ([`Parts::end`]) |
//! | 8 | `active[me]` | 0 (Release), or later by [`Parts::leave`] after the deferred releases |
//! | 9 | (wake) | one SeqCst fence, `waiters` read: if not 0, wake every part word released and `active[me]` |
//! | 10 | record | every entry cleared |
//!
//! A section taker: lockExcl takes the writer word, finds `shared` 0 and makes `seq` odd
//! ([`crate::store_lock::StoreLock::begin_change`], whose SeqCst fence is the one needed here);
//! lockShared takes the writer word, adds 1 to `shared`, gives the writer word back. Then both
//! wait until every other slot's `active` is 0 ([`Parts::first_active`]: a SeqCst fence, then
//! the loads), sleeping on a slot's word while it is 1 and recovering the slot if its
//! participant is dead.
//!
//! The gate is Dekker's handshake: the change stores `active` and then reads `seq` and
//! `shared`; the taker stores `seq` (or `shared`) and then reads `active`; a SeqCst fence sits
//! between the store and the loads on both sides. Of the two fences one comes first. If it is
//! the change's, the taker's load sees `active` = 1 (or a later 0, stored with Release after
//! the change ended, which its Acquire load synchronizes with: the section sees the change
//! whole) and waits. If it is the taker's, the change sees the odd `seq` or the non-zero
//! `shared` and withdraws before it takes any part. So no single change is ever past the gate
//! while a section is inside, and a section waits only for changes already past it. (SeqCst
//! accesses alone would do in C++20; loom checks SeqCst fences only, so the fences are
//! explicit, as in `store_lock`'s sleep.) The change's loads are Acquire too: a lockExcl
//! section moves no part word, so a change that passes the gate right after a section
//! synchronizes with the section's writes only through the even `seq` it reads (stored with
//! Release by `end_change`); with Relaxed loads it may read a word from before the section and
//! write it back, losing the section's update.
//!
//! Why the CAS that takes a part is AcqRel and followed by a Release fence. Acquire: the last
//! holder's changes (its Release v + 2, or a recoverer's store) are seen before ours begin, so
//! two writers of one part are serialized and no update is lost. That is all the writers need;
//! it is not enough for the others. Readers take no lock: a reader whose Relaxed load sees one
//! of our data stores must see the part word moved when it re-checks; the Release fence after
//! the CAS orders the CAS before every data store that follows and pairs with the reader's
//! Acquire fence (Boehm's seqlock writer side; an Acquire CAS alone does not order later
//! stores after it). And a waiter that repairs a part word naming nobody
//! ([`Parts::free_stale_part`]) must see the holder's attach before it decides that the id
//! names nobody: the CAS's Release side publishes it, as the writer word's `try_take` does.
//!
//! The commit point. A change's parts are released only after its undo log is committed (len
//! 0), so a part word is free only when the words under it hold committed values; a live
//! change that fails rolls its log back first, then releases. A recoverer of a dead
//! participant does the same, in the same order, whatever it finds ([`Parts::recover_dead`]):
//!
//! | dead in | log len | record | part word | recovery |
//! |---|---|---|---|---|
//! | steps 1-2 | 0 | empty | - | `active` = 0, wake |
//! | step 3 (entry written, no CAS) | 0 | names P | not locked(dead) | entry cleared (stale), wake P's sleepers |
//! | steps 4-5 | n >= 0 | names P | locked(dead) | log rolled back (as `store_lock`), P = seen + 2, wake, entry cleared, `active` = 0 |
//! | step 6 done (committed) | 0 | names P | locked(dead) | P = seen + 2 (the change stays), wake, entry cleared, `active` = 0 |
//! | steps 7-9 | 0 | names P | v + 2 or later, or another's | entry cleared (stale), wake, `active` = 0 |
//! | step 10 | 0 | empty | - | `active` = 0 |
//!
//! Every step is safe to repeat (one recoverer at a time, under the dead slot's recovery lock;
//! a recoverer killed at any point is followed by another): the rollback is `store_lock`'s; a
//! part is released only while its word is still locked(dead), and its entry is cleared after
//! the release and the wake-up, so a repeat finds the word released (stale: cleared) or still
//! locked (released again, to the same value: seen + 2 from the entry, never from the word).
//! Versions move by 2 per change, so a released part is never mistaken for a held one and a
//! reader's version never comes back (no ABA short of 2^63 changes of one container).
//!
//! A taker records its part before the CAS, so a taker killed right after the CAS is found by
//! its record; a record entry names a part only from before its CAS until after its release
//! (or its failed CAS), and at most one entry names a part, so the `seen` of the entry that
//! names a part locked by the dead is the version its CAS replaced. A change that needs more
//! parts than the record holds does not start as a single change: it runs store-wide (as a
//! lockExcl section does), and so does a change of a durable store (its log is named by the
//! store header alone, see FORMAT.md §10.8).
//!
//! Readers ([`ReadSet`]): the store's `seq` token first (odd: a lockExcl section, wait), then
//! each part's version as it is reached ([`ReadSet::observe`]: odd, wait on it), then the
//! reads, then [`ReadSet::valid`]: an Acquire fence, every observed version unchanged and `seq`
//! unchanged. A change of another part moves neither, so it never invalidates the read. A
//! reader that keeps a container it found in part P (a held-set entry) stores the entry, fences
//! (SeqCst) and then validates P; a writer that unlinks it took P (the CAS) and fences (SeqCst)
//! before it reads the held sets to decide whether to free it: either the reader sees P moved
//! and drops the entry, or the writer sees the entry.
//!
//! Sleeping: a part word is slept on with `store_lock`'s handshake ([`StoreLock::sleep`], the
//! one `waiters` count). The futex compares the low 32 bits: 1 for every held value, even for
//! every free one, so a sleeper goes to sleep only while the part is held, and the release
//! that follows (which makes the low bits even) comes after its count in the fences' order and
//! wakes it; a release and a new take between its re-read and its sleep leave it asleep on the
//! new holder, whose release wakes it. No wake-up is lost. The `active` words (0 or 1) are
//! slept on the same way.
//!
//! Publications ([`Parts::enter_publish`], [`Parts::publish`], [`Parts::end_publish`]): a
//! change that is one value word under P (a new inline value for an existing key) takes no
//! part. The publisher stores `active` = [`publishing`]`(P)`, fences (SeqCst), checks the gate
//! and that P is even, CASes the value word (Release), moves P by 2 by CAS unless P is held
//! then, and stores `active` = 0 (Release). A taker of P, right after its CAS on P, fences
//! (SeqCst) and waits while some other slot's `active` names P ([`Parts::publisher_of`]): the
//! gate's handshake again, on P, so a change under P never runs beside a publication and never
//! copies or restores a value word under it stale. A reader, after its Acquire fence, first
//! checks that no `active` names a part it read ([`Parts::publisher_in`]), then the versions:
//! a reader that saw a published word sees its publisher's `active` (the Release CAS orders the
//! store before it) or, once that is 0 again (Release, after the version moved), the moved
//! version; so it never keeps a word whose publication has not moved the version it checks,
//! and two publications in flight at once cannot be seen in opposite orders by two readers.
//! A dead publisher's recoverer moves P by 2 ([`bump_version`]) before it clears
//! `active`: the CAS happened whole or not at all, and nothing is logged.
//!
//! Appends and pops of a list are publications too, but change two words or more (an item and
//! `len`; a front pop also `start`). Their publishers order themselves by a claim in the list's
//! `len` word ([`Parts::claim_tail`]: CAS n -> [`tail_claim`]`(me, n)`), held for a few stores,
//! and every state a claim passes through stands for one whole list, the one before the change
//! or the one after ([`effective_list`]), for readers, recoverers and the next part holder
//! alike. A dead claimant's recoverer settles its claim ([`settle_dead_claim`]: dropped, or a
//! committed front pop finished) before it moves P. FORMAT.md §10.9, "Appends" and "Pops".
//!
//! Deadlock: a single change holding part P that waits for part Q must take its parts in one
//! global order (increasing offset) or let go of P first; sections take no parts; a change
//! past the gate never waits for a section. Those rules are the caller's.

use crate::store_lock::{Futex, OtherEntries, StoreLock, UndoLog};
use crate::sync::{fence, AccessError, AtomicU64, Ordering, WordStore};

/// A held part word's value for owner id `owner` (`store_lock::owner_id`: 32 bits).
pub const fn locked(owner: u64) -> u64 {
    (owner << 32) | 1
}

/// The owner id in a part word, if the part is held.
pub const fn holder(word: u64) -> Option<u64> {
    if word & 1 == 1 {
        Some(word >> 32)
    } else {
        None
    }
}

/// The `active` value of a participant that is publishing one value word under the part whose
/// version word is at store offset `version` (a *publication*, module doc): the offset (16-aligned,
/// never 0) with bit 0 set. A single change on parts stores plain 1.
pub const fn publishing(version: u64) -> u64 {
    version | 1
}

/// The part a publication names, from an `active` value (None for 0, and for 1: a single
/// change on parts).
pub const fn published_part(active: u64) -> Option<u64> {
    if active & 1 == 1 && active != 1 {
        Some(active & !1)
    } else {
        None
    }
}

/// The version a part is released to, from the version `seen` before it was taken: the next
/// even value (seen + 2; an odd `seen`, which only a damaged record holds, gives seen + 1).
pub const fn released(seen: u64) -> u64 {
    (seen | 1).wrapping_add(1)
}

/// The held-parts record: [`record::ENTRIES`] entries of two words, each the store offset of a
/// part word (0: empty) and the version seen before taking it. It sits at the head of the
/// participant's undo log block (FORMAT.md §10.9), so that the parts a change holds and the
/// log that undoes it are found together, and survive together what the store file survives.
pub mod record {
    /// The record's first byte in an undo log block (after head, len, cap and a free word; the
    /// log's entries follow the record). Not so yet: `store_lock::undo::ENTRIES` is still 32,
    /// and the wiring moves it to `IN_LOG_BLOCK + BYTES` (FORMAT.md §10.9); until then nothing
    /// may write a record into a log block.
    pub const IN_LOG_BLOCK: u64 = 32;
    /// Parts one single change may hold. A change that needs more runs store-wide.
    pub const ENTRIES: u64 = 4;
    pub const ENTRY_BYTES: u64 = 16;
    /// The part word's store offset (0: the entry is empty).
    pub const OFFSET: u64 = 0;
    /// The version seen (even) before the CAS that took the part.
    pub const SEEN: u64 = 8;
    pub const BYTES: u64 = ENTRIES * ENTRY_BYTES;
}

/// Where the gate's words are in the lock file.
#[derive(Clone, Copy, Debug)]
pub struct GateOffsets {
    /// The lockShared count (lock file header).
    pub shared: u64,
    /// Slot 0's `active` word; slot s's is `stride * s` bytes further.
    pub active: u64,
    pub stride: u64,
    /// Slots in the table.
    pub slots: u32,
}

/// What keeps a single change from starting, and the value seen (to sleep on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// A lockExcl section is open: `seq` is odd.
    Seq(u64),
    /// lockShared holds: `shared` is not 0.
    Shared(u64),
}

/// The version of the part at store offset `version` moved by 2 after a publication under it,
/// unless a change holds it (odd: that change waits for the publisher and its release moves the
/// version). Also run by the recoverer of a dead publisher: safe to repeat (a version that
/// moves once more only makes readers retry).
pub fn bump_version<W: WordStore>(store: &W, version: u64) -> Result<(), AccessError> {
    // Relaxed: a guess for the CAS.
    let mut v = store.load(version, Ordering::Relaxed)?;
    while v % 2 == 0 {
        store.step()?;
        // Release: a reader that sees the new version (Acquire fence, then its re-check) sees
        // the value word published before it. Relaxed on failure: a guess again.
        match store.cas(
            version,
            v,
            v.wrapping_add(2),
            Ordering::Release,
            Ordering::Relaxed,
        )? {
            Ok(()) => break,
            Err(now) => v = now,
        }
    }
    Ok(())
}

/// A list's `len` word while an append or pop publication owns the list's tail (FORMAT.md
/// §10.9, "Appends" and "Pops"): bit 63 set, [`TAIL_POPPED`] in bit 62 once a front pop has
/// committed, the claimant's slot in bits 48..58, a length in bits 0..48: the list's length
/// when the claim was made, or (popped) the length after the pop.
pub const TAIL_CLAIMED: u64 = 1 << 63;
/// Set in a claim whose front pop has committed: its length is the length after the pop.
pub const TAIL_POPPED: u64 = 1 << 62;
const TAIL_SLOT_SHIFT: u32 = 48;
const TAIL_SLOT: u64 = 0x3ff;
const TAIL_LEN: u64 = (1 << TAIL_SLOT_SHIFT) - 1;

/// The `len` word of a list of length `len` whose tail the participant in `slot` claims.
pub const fn tail_claim(slot: u32, len: u64) -> u64 {
    TAIL_CLAIMED | (((slot as u64) & TAIL_SLOT) << TAIL_SLOT_SHIFT) | (len & TAIL_LEN)
}

/// The claim of `slot` once its front pop has committed, the list's length now `len`.
pub const fn tail_claim_popped(slot: u32, len: u64) -> u64 {
    tail_claim(slot, len) | TAIL_POPPED
}

/// The length held in a list's `len` word, claimed or not (for a claim, see
/// [`effective_list`]: the list a reader sees also depends on its first item).
pub const fn tail_len(word: u64) -> u64 {
    if word & TAIL_CLAIMED != 0 {
        word & TAIL_LEN
    } else {
        word
    }
}

/// The slot that claims a list's tail, from its `len` word (None: not claimed).
pub const fn tail_claimant(word: u64) -> Option<u32> {
    if word & TAIL_CLAIMED != 0 {
        Some(((word >> TAIL_SLOT_SHIFT) & TAIL_SLOT) as u32)
    } else {
        None
    }
}

/// The list a `len` word, the stored `start` and the item word at `start` (`first`: read only
/// when the word's length is at least 1; else anything) stand for: (start, length). Every
/// state a claim passes through stands for the list before the change or after it, never a mix
/// (FORMAT.md §10.9, "Pops"), so a reader, a recoverer and a part holder that finds a claim
/// its claimant left all see one list: an append's claim, the list without the item; a front
/// pop's, the list with its first item until the pop commits (the first item word emptied),
/// and without it from then on, whether or not `start` has moved yet.
pub const fn effective_list(word: u64, start: u64, first: u64) -> (u64, u64) {
    if word & TAIL_CLAIMED == 0 {
        return (start, word);
    }
    let n = word & TAIL_LEN;
    let popped = word & TAIL_POPPED != 0;
    if popped {
        // The length is the one after the pop; `start` may not have moved yet (then the
        // emptied item word is still at `start`).
        if n == 0 {
            (0, 0)
        } else if first == EMPTY_ITEM {
            (start + 1, n)
        } else {
            (start, n)
        }
    } else if n >= 1 && first == EMPTY_ITEM {
        // A front pop committed (its item word emptied) before it marked the claim popped.
        if n == 1 {
            (0, 0)
        } else {
            (start + 1, n - 1)
        }
    } else {
        (start, n)
    }
}

/// An item word a front pop has taken: the empty value word, which no live item holds.
pub const EMPTY_ITEM: u64 = 0;

/// Where a list's words are, for the steps of a pop and for the recovery of a claimant.
#[derive(Clone, Copy, Debug)]
pub struct ListWords {
    /// The `len` word.
    pub len: u64,
    /// The `start` word.
    pub start: u64,
    /// Item word 0 of the items block (item i is `8 * i` bytes further).
    pub item0: u64,
    /// The items block's capacity (a `start` at or past it has no item word).
    pub cap: u64,
}

impl ListWords {
    fn item(&self, i: u64) -> u64 {
        self.item0 + 8 * i
    }
}

/// Recovery of a dead appender in `dead_slot` that published under the list whose `len` word
/// is at `len_at`: a claim it left is dropped (the list keeps its length; the item it may have
/// written lies past the end, where nothing reads it). A claim of another slot, or none, is
/// left alone. Safe to repeat. Only for a claim that no pop made: [`settle_dead_claim`] takes
/// every claim.
pub fn drop_tail_claim<W: WordStore>(
    store: &W,
    len_at: u64,
    dead_slot: u32,
) -> Result<(), AccessError> {
    // Relaxed: the CAS below decides; nothing is read through the word.
    let word = store.load(len_at, Ordering::Relaxed)?;
    if tail_claimant(word) == Some(dead_slot) {
        store.step()?;
        // Release: an appender that claims the tail next (Acquire CAS) sees the list as we
        // left it. Relaxed on failure: the word is no longer the dead slot's.
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

/// Recovery of a dead claimant in `dead_slot` of the list at `at` (its `active` still names the
/// list, so nobody else changes the list's words meanwhile): the list is left as
/// [`effective_list`] says its claim stands for, with a plain `len`. An append's or an
/// uncommitted pop's claim is dropped; a committed front pop is finished (marked popped
/// first, so that a recoverer killed after moving `start` leaves a claim that still says so).
/// A claim of another slot, or none, is left alone. Safe to repeat.
pub fn settle_dead_claim<W: WordStore>(
    store: &W,
    at: ListWords,
    dead_slot: u32,
) -> Result<(), AccessError> {
    // Acquire: the dead claimant's stores before its claim moved (an emptied item word before
    // a popped claim, stored with Release) are seen.
    let mut word = store.load(at.len, Ordering::Acquire)?;
    if tail_claimant(word) != Some(dead_slot) {
        return Ok(());
    }
    let start = store.load(at.start, Ordering::Relaxed)?;
    let n = tail_len(word);
    let first = |start: u64| -> Result<u64, AccessError> {
        if start < at.cap {
            store.load(at.item(start), Ordering::Relaxed)
        } else {
            Ok(!EMPTY_ITEM)
        }
    };
    if word & TAIL_POPPED == 0 {
        if n == 0 || first(start)? != EMPTY_ITEM {
            return drop_tail_claim(store, at.len, dead_slot);
        }
        // A front pop that committed: marked popped, as the popper does next.
        let popped = tail_claim_popped(dead_slot, n - 1);
        store.step()?;
        // Relaxed on success and failure: only we change the word now (the dead claimant's
        // recovery lock); the stores that follow are ordered by the final Release.
        if store
            .cas(at.len, word, popped, Ordering::Relaxed, Ordering::Relaxed)?
            .is_err()
        {
            return Ok(());
        }
        word = popped;
    }
    let (new_start, len) = effective_list(word, start, first(start)?);
    if new_start != start {
        store.step()?;
        // Relaxed: ordered by the Release below.
        store.store(at.start, new_start, Ordering::Relaxed)?;
    }
    store.step()?;
    // Release: a reader or claimant that sees the plain length sees `start` moved.
    let _ = store.cas(at.len, word, len, Ordering::Release, Ordering::Relaxed)?;
    Ok(())
}

/// A dict's insert claim word (bytes 64..72 of its block) while an insert publication owns the
/// dict's entries (FORMAT.md §10.9, "Inserts"): bit 63 set, the claimant's slot in bits 48..58;
/// 0 when nobody inserts.
pub const INSERT_CLAIMED: u64 = 1 << 63;

/// The insert claim word of the participant in `slot`.
pub const fn insert_claim(slot: u32) -> u64 {
    INSERT_CLAIMED | (((slot as u64) & TAIL_SLOT) << TAIL_SLOT_SHIFT)
}

/// Set in a dict's insert claim word while its claimant deletes a key whose value is an inline
/// word (FORMAT.md §10.9, "Deletes"), with the entry's index in bits 0..48: the entry whose
/// value word emptied is the delete's commit point. A set's delete never sets it (a set's
/// value words are all 0).
pub const DELETE_CLAIMED: u64 = 1 << 62;
const CLAIM_ENTRY: u64 = (1 << TAIL_SLOT_SHIFT) - 1;

/// The insert claim word of the participant in `slot` while it deletes entry `e` of a dict.
pub const fn delete_claim(slot: u32, e: u64) -> u64 {
    insert_claim(slot) | DELETE_CLAIMED | (e & CLAIM_ENTRY)
}

/// The entry a dict's delete names in claim word `word` (None: no claim, or an insert's or a
/// set delete's).
pub const fn deleting_entry(word: u64) -> Option<u64> {
    if word & INSERT_CLAIMED != 0 && word & DELETE_CLAIMED != 0 {
        Some(word & CLAIM_ENTRY)
    } else {
        None
    }
}

/// The slot that holds a dict's insert claim, from the word (None: not claimed, or not a
/// claim at all: a damaged word, which the next insert on the dict's part clears).
pub const fn insert_claimant(word: u64) -> Option<u32> {
    if word & INSERT_CLAIMED != 0 {
        Some(((word >> TAIL_SLOT_SHIFT) & TAIL_SLOT) as u32)
    } else {
        None
    }
}

/// A bucket of a dict table that once named an entry since deleted (`dict_table::DUMMY`).
pub const BUCKET_DELETED: u64 = u64::MAX;
/// The bytes of one entry of a dict table: hash, key word, value word.
pub const ENTRY_BYTES: u64 = 24;
const ENTRY_KEY: u64 = 8;
const ENTRY_VALUE: u64 = 16;

/// Where a dict's words are, for an insert publication and for the settling of a claim its
/// claimant left (checked by the caller: the table's buckets and `cap` entries lie in the
/// store).
#[derive(Clone, Copy, Debug)]
pub struct DictWords {
    /// The insert claim word.
    pub claim: u64,
    /// The `used` word (live entries).
    pub used: u64,
    /// The `nentries` word (entries written, deleted ones included).
    pub nentries: u64,
    /// Bucket 0 of the table (bucket i is `8 * i` bytes further).
    pub bucket0: u64,
    /// The number of buckets (a power of two).
    pub nbuckets: u64,
    /// Entry 0 of the table (entry e is `ENTRY_BYTES * e` bytes further).
    pub entry0: u64,
    /// The entries the table has room for.
    pub cap: u64,
}

impl DictWords {
    fn bucket(&self, i: u64) -> u64 {
        self.bucket0 + 8 * i
    }

    /// The offset of entry `e` (its hash word; the key and value follow).
    pub fn entry(&self, e: u64) -> u64 {
        self.entry0 + ENTRY_BYTES * e
    }
}

/// Settles the insert claim of a dict whose claimant is gone (its recoverer, with `claimant`
/// its slot: only that slot's claim; or a change of the dict that finds a claim nobody can
/// hold any more, `None`: any claim), with nobody else changing the dict's entries meanwhile.
/// An insert's commit point is the store of the entry's key word, a set delete's the store of
/// 0 there, and a dict delete's the store of 0 in the value word of the entry its claim names
/// (FORMAT.md §10.9, "Inserts", "Deletes"), so every state they leave is a dict with the entry
/// or without it, but for words no lookup goes by: the key word of a dict delete's entry whose
/// value is emptied is emptied here; an entry whose key word is 0 (an insert's staged entry, or
/// a committed delete's) may still be named by a bucket, which is marked deleted here, and keep
/// a value word, emptied here; and `used`, which is counted again from the entries. Then the
/// claim is cleared. Safe to repeat.
pub fn settle_insert_claim<W: WordStore>(
    store: &W,
    at: DictWords,
    claimant: Option<u32>,
) -> Result<(), AccessError> {
    // Acquire: the claimant's stores before it died (or before the lock file that named it
    // was lost) are seen.
    let word = store.load(at.claim, Ordering::Acquire)?;
    if word == 0 || (claimant.is_some() && insert_claimant(word) != claimant) {
        return Ok(());
    }
    // Relaxed: nobody else changes these words now (the caller's recovery lock, part or
    // section); the final Release orders them for the next claimant.
    let n = store.load(at.nentries, Ordering::Relaxed)?.min(at.cap);
    // A dict delete past its commit point (its entry's value emptied) whose key word is not
    // emptied yet: emptied now, as the deleter would have. Before the commit the value word
    // holds the value, and the entry stays.
    if let Some(e) = deleting_entry(word).filter(|&e| e < n) {
        let key = at.entry(e) + ENTRY_KEY;
        if store.load(key, Ordering::Relaxed)? != 0
            && store.load(at.entry(e) + ENTRY_VALUE, Ordering::Relaxed)? == 0
        {
            store.step()?;
            store.store(key, 0, Ordering::Relaxed)?;
        }
    }
    for i in 0..at.nbuckets {
        let b = store.load(at.bucket(i), Ordering::Relaxed)?;
        if (1..=n).contains(&b) && store.load(at.entry(b - 1) + ENTRY_KEY, Ordering::Relaxed)? == 0
        {
            store.step()?;
            store.store(at.bucket(i), BUCKET_DELETED, Ordering::Relaxed)?;
        }
    }
    let mut live = 0;
    for e in 0..n {
        if store.load(at.entry(e) + ENTRY_KEY, Ordering::Relaxed)? != 0 {
            live += 1;
        } else if store.load(at.entry(e) + ENTRY_VALUE, Ordering::Relaxed)? != 0 {
            store.step()?;
            store.store(at.entry(e) + ENTRY_VALUE, 0, Ordering::Relaxed)?;
        }
    }
    store.step()?;
    store.store(at.used, live, Ordering::Relaxed)?;
    store.step()?;
    // Release: the next claimant (Acquire CAS) sees the dict as settled.
    let _ = store.cas(at.claim, word, 0, Ordering::Release, Ordering::Relaxed)?;
    Ok(())
}

/// Why a publication cannot run now (the caller takes the single-change path, which waits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoPublish {
    /// The gate is closed (a section).
    Closed(Closed),
    /// A single change holds the part: its word (odd).
    Held(u64),
}

/// A part taken by [`Parts::try_take`]: its record entry, its word, and the version seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub entry: u64,
    pub offset: u64,
    pub seen: u64,
}

/// One participant's held-parts record in the store file.
pub struct HeldParts<'a, W: WordStore> {
    store: &'a W,
    base: u64,
}

// A reference and an offset: a copy is the same record.
impl<W: WordStore> Clone for HeldParts<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W: WordStore> Copy for HeldParts<'_, W> {}

impl<'a, W: WordStore> HeldParts<'a, W> {
    /// The record at store offset `base` (checked by each access).
    pub fn new(store: &'a W, base: u64) -> Self {
        HeldParts { store, base }
    }

    fn at(&self, entry: u64) -> u64 {
        self.base + entry * record::ENTRY_BYTES
    }

    /// Entry `entry`: (part word offset, version seen); offset 0 when empty.
    pub fn entry(&self, entry: u64) -> Result<(u64, u64), AccessError> {
        // Relaxed: read by the participant itself, or by the recoverer of a dead one (whose
        // death, learnt from the kernel, orders all it did before).
        let offset = self
            .store
            .load(self.at(entry) + record::OFFSET, Ordering::Relaxed)?;
        if offset == 0 {
            return Ok((0, 0));
        }
        let seen = self
            .store
            .load(self.at(entry) + record::SEEN, Ordering::Relaxed)?;
        Ok((offset, seen))
    }

    /// Names part word `offset`, seen at version `seen`, in entry `entry`: the version first,
    /// so that an entry that names a part always carries the version seen for it.
    fn set(&self, entry: u64, offset: u64, seen: u64) -> Result<(), AccessError> {
        // Relaxed (both): only a recoverer reads them, after this participant's death; program
        // order (what a kill leaves) is all that counts.
        self.store
            .store(self.at(entry) + record::SEEN, seen, Ordering::Relaxed)?;
        self.store
            .store(self.at(entry) + record::OFFSET, offset, Ordering::Relaxed)
    }

    fn clear(&self, entry: u64) -> Result<(), AccessError> {
        // Relaxed: as `set`.
        self.store
            .store(self.at(entry) + record::OFFSET, 0, Ordering::Relaxed)
    }
}

/// The part locks and the gate of one store, as participant `slot` (owner id `me`) uses them.
/// Store-file and lock-file words through `W` (the mapping, or a loom model's killable words).
pub struct Parts<'a, W: WordStore> {
    lock: StoreLock<'a, W>,
    lock_file: &'a W,
    store: &'a W,
    shared: &'a AtomicU64,
    at: GateOffsets,
    slot: u32,
    me: u64,
    record: HeldParts<'a, W>,
}

impl<'a, W: WordStore> Parts<'a, W> {
    /// `lock`: the store lock (its `seq`, `waiters` and sleep); `record`: the store offset of
    /// this participant's held-parts record.
    pub fn new(
        lock: StoreLock<'a, W>,
        lock_file: &'a W,
        store: &'a W,
        at: GateOffsets,
        slot: u32,
        me: u64,
        record: u64,
    ) -> Result<Self, AccessError> {
        Ok(Parts {
            lock,
            lock_file,
            store,
            shared: lock_file.word(at.shared)?,
            at,
            slot,
            me,
            record: HeldParts::new(store, record),
        })
    }

    /// This participant's held-parts record.
    pub fn record(&self) -> HeldParts<'a, W> {
        self.record
    }

    /// The `active` word of `slot` (to sleep on, and to wake).
    pub fn active_word(&self, slot: u32) -> Result<&'a AtomicU64, AccessError> {
        self.lock_file
            .word(self.at.active + slot as u64 * self.at.stride)
    }

    // ---- a single change -----------------------------------------------------------------

    /// Steps 1 and 2: announces a single change and passes the gate, or withdraws (waking a
    /// section taker that sleeps on our `active`) and says what is in the way.
    pub fn enter<F: Futex>(&self, futex: &F) -> Result<Result<(), Closed>, AccessError> {
        let active = self.active_word(self.slot)?;
        self.lock_file.step()?;
        // Relaxed: the fence below orders it before the loads of `seq` and `shared`.
        active.store(1, Ordering::Relaxed);
        // SeqCst fence: our side of the gate's handshake (module doc). Pairs with the taker's
        // fence between its store of `seq` or `shared` and its loads of `active`.
        fence(Ordering::SeqCst);
        self.lock_file.step()?;
        // Acquire (both): an even `seq` or a 0 `shared` stored (Release) by the end of a
        // section makes what that section did visible to this change. A lockExcl section moves
        // no part versions, so the CAS on a part would not: without it, a change that passes
        // the gate right after a section may read the data from before the section and lose
        // its update (the loom model `the_gate_keeps_a_change_and_a_lockexcl_section_apart`
        // found this with Relaxed loads here).
        let seq = self.lock.seq_word().load(Ordering::Acquire);
        let closed = if seq % 2 == 1 {
            Some(Closed::Seq(seq))
        } else {
            self.lock_file.step()?;
            match self.shared.load(Ordering::Acquire) {
                0 => None,
                n => Some(Closed::Shared(n)),
            }
        };
        match closed {
            None => Ok(Ok(())),
            Some(c) => {
                self.leave(futex)?;
                Ok(Err(c))
            }
        }
    }

    /// Step 8 on its own: `active` = 0, and the section takers sleeping on it woken.
    pub fn leave<F: Futex>(&self, futex: &F) -> Result<(), AccessError> {
        let active = self.active_word(self.slot)?;
        self.lock_file.step()?;
        // Release: a section taker that reads 0 (Acquire, `first_active`) sees everything the
        // change did.
        active.store(0, Ordering::Release);
        if self.lock.waiters_present()? {
            futex.wake(active);
        }
        Ok(())
    }

    /// Steps 3 and 4: takes the part whose version word is at store offset `offset`, naming
    /// it in record entry `entry` (one not in use: the caller numbers its parts 0, 1, ...).
    /// `Ok(Err(word))` if the part is held (`word` odd: sleep on it; `holder(word)` may be
    /// `me`, a part this change holds already, which the caller must not ask for twice) or
    /// moved under us (`word` even: try again); the entry is then empty again.
    pub fn try_take(&self, entry: u64, offset: u64) -> Result<Result<Held, u64>, AccessError> {
        assert!(entry < record::ENTRIES, "record entry {entry} out of range");
        // Relaxed: only a guess for the CAS, which checks it.
        let seen = self.store.load(offset, Ordering::Relaxed)?;
        if seen % 2 == 1 {
            return Ok(Err(seen));
        }
        self.record.set(entry, offset, seen)?;
        // AcqRel on success, and the Release fence after it: the module doc says why each.
        // Relaxed on failure: the value is only something to wait on.
        match self.store.cas(
            offset,
            seen,
            locked(self.me),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )? {
            Ok(()) => {
                // Release fence: the CAS is ordered before every data store of the change
                // (seqlock writer side; pairs with the Acquire fence in `ReadSet::valid`).
                fence(Ordering::Release);
                Ok(Ok(Held {
                    entry,
                    offset,
                    seen,
                }))
            }
            Err(now) => {
                self.record.clear(entry)?;
                Ok(Err(now))
            }
        }
    }

    /// Steps 7 to 10, after the change committed (undo `len` 0) or rolled back: every part in
    /// `held` released to its next version, `active` = 0 too if `leave` (else call
    /// [`Parts::leave`] later), one wake-up check for all, then the record emptied.
    pub fn end<F: Futex>(&self, held: &[Held], leave: bool, futex: &F) -> Result<(), AccessError> {
        for h in held {
            // Release: the change's data stores are visible to the next taker (AcqRel CAS) and
            // to a reader that sees the new version (Acquire in `observe`).
            self.store
                .store(h.offset, released(h.seen), Ordering::Release)?;
        }
        let active = self.active_word(self.slot)?;
        if leave {
            self.lock_file.step()?;
            // Release: as in `leave`.
            active.store(0, Ordering::Release);
        }
        // The wake-ups before the record forgets the parts: a participant killed before them
        // leaves the entries to its recoverer, which wakes every word they name.
        if self.lock.waiters_present()? {
            for h in held {
                futex.wake(self.store.word(h.offset)?);
            }
            if leave {
                futex.wake(active);
            }
        }
        for h in held {
            self.record.clear(h.entry)?;
        }
        Ok(())
    }

    // ---- a publication: one value word, no part taken ---------------------------------------

    /// Publication step 1: announces a publication under the part whose version word is at
    /// `version` and checks the gate and the part. `Ok(v)`: past the gate, the part free at
    /// version `v` (even): until [`Parts::end_publish`] no change takes the part without waiting
    /// for us. `NoPublish`: withdrawn (`active` = 0, a sleeper woken).
    pub fn enter_publish<F: Futex>(
        &self,
        version: u64,
        futex: &F,
    ) -> Result<Result<u64, NoPublish>, AccessError> {
        let active = self.active_word(self.slot)?;
        self.lock_file.step()?;
        // Relaxed: the fence below orders it before the loads of `seq`, `shared` and the part.
        active.store(publishing(version), Ordering::Relaxed);
        // SeqCst fence: our side of two handshakes. The gate's (as `enter`), and the part's:
        // a taker CASes the part word and fences before it loads the `active` words
        // (`publisher_of`), so either it sees us or we see its odd word below.
        fence(Ordering::SeqCst);
        self.lock_file.step()?;
        // Acquire (all three): as in `enter`; and an even part word stored (Release) by the
        // last holder's release makes the table we are about to read visible.
        let seq = self.lock.seq_word().load(Ordering::Acquire);
        let no = if seq % 2 == 1 {
            NoPublish::Closed(Closed::Seq(seq))
        } else {
            self.lock_file.step()?;
            match self.shared.load(Ordering::Acquire) {
                0 => match self.store.load(version, Ordering::Acquire)? {
                    v if v % 2 == 0 => return Ok(Ok(v)),
                    held => NoPublish::Held(held),
                },
                n => NoPublish::Closed(Closed::Shared(n)),
            }
        };
        self.leave(futex)?;
        Ok(Err(no))
    }

    /// Publication step 2: replaces value word `old` at store offset `at` with `new` by CAS.
    /// `Ok(Err(now))`: the word was `now` (another publication won): compute again from it.
    pub fn publish(&self, at: u64, old: u64, new: u64) -> Result<Result<(), u64>, AccessError> {
        // Release: a reader whose load sees `new` and then fences Acquire sees our `active`
        // store (and, if it sees `active` back at 0, our version bump): it cannot keep the
        // new word without noticing the publication (`publisher_in`).
        // Relaxed on failure: the value is only the next guess.
        self.store
            .cas(at, old, new, Ordering::Release, Ordering::Relaxed)
    }

    /// Publication step 3: moves the part's version by 2 (if a change holds the part now, its
    /// release moves it), then `active` = 0 and the sleepers on it woken. `changed`: false when
    /// nothing was published (the version stays).
    pub fn end_publish<F: Futex>(
        &self,
        version: u64,
        changed: bool,
        futex: &F,
    ) -> Result<(), AccessError> {
        if changed {
            bump_version(self.store, version)?;
        }
        self.leave(futex)
    }

    /// Append step 1, inside a publication under the list's part: claims the list's tail by
    /// CAS on its `len` word at `len_at`, from `seen` (an unclaimed length) to
    /// [`tail_claim`]`(me, seen)`. `Ok(Err(now))`: the word was `now` (another append moved it,
    /// or claims it now).
    pub fn claim_tail(&self, len_at: u64, seen: u64) -> Result<Result<(), u64>, AccessError> {
        debug_assert!(tail_claimant(seen).is_none());
        self.store.step()?;
        // Acquire: pairs with the Release that ended the last claim, a recoverer's drop of a
        // dead appender's claim included (`drop_tail_claim`): the dead appender's item store
        // into the word we are about to write comes before ours, so ours is the one that
        // stays (with Relaxed the loom model `appenders_land_at_distinct_indexes` keeps the
        // dead item and loses a live append). Relaxed on failure: the value is only the next
        // guess.
        self.store.cas(
            len_at,
            seen,
            tail_claim(self.slot, seen),
            Ordering::Acquire,
            Ordering::Relaxed,
        )
    }

    /// Append step 2: with the tail claimed at length `len`, stores `item` in the item word at
    /// `item_at` (the word right after the last item) and then `len + 1` in the `len` word,
    /// which ends the claim.
    pub fn fill_tail(
        &self,
        len_at: u64,
        len: u64,
        item_at: u64,
        item: u64,
    ) -> Result<(), AccessError> {
        self.fill_tail_with(len_at, len, item_at, &[item])
    }

    /// [`Parts::fill_tail`] for several items (an extend): stored from `first_at` on, one
    /// word each, then `len + items.len()` in the `len` word.
    pub fn fill_tail_with(
        &self,
        len_at: u64,
        len: u64,
        first_at: u64,
        items: &[u64],
    ) -> Result<(), AccessError> {
        self.fill_items(len_at, first_at, items, len + items.len() as u64)
    }

    /// [`Parts::fill_tail_with`] that keeps the claim: the items stored, then the claim at the
    /// new length, `tail_claim(me, len + items.len())`, which stands for the list with them
    /// (§10.2), and which [`Parts::unclaim_tail`] ends. An append of a block item ends its
    /// claim only after settling the block's journal, so that no pop without a lock takes the
    /// item (and frees its block) while a recovery of the appender could take the block for
    /// unlinked (FORMAT.md §10.9, "Appends").
    pub fn fill_tail_held(
        &self,
        len_at: u64,
        len: u64,
        first_at: u64,
        items: &[u64],
    ) -> Result<(), AccessError> {
        let held = tail_claim(self.slot, len + items.len() as u64);
        self.fill_items(len_at, first_at, items, held)
    }

    /// The items stored from `first_at` on, one word each, then `len_word` (a plain length,
    /// or a claim at it) in the `len` word.
    fn fill_items(
        &self,
        len_at: u64,
        first_at: u64,
        items: &[u64],
        len_word: u64,
    ) -> Result<(), AccessError> {
        for (k, &item) in items.iter().enumerate() {
            self.store.step()?;
            // Relaxed: the Release store of the length below orders it before; nobody reads
            // the word while it lies past the end.
            self.store
                .store(first_at + 8 * k as u64, item, Ordering::Relaxed)?;
        }
        self.store.step()?;
        // Release: a reader that sees the new length (then fences Acquire; from a claim it
        // takes the low bits) sees the items, and our `active` word naming the list (stored
        // before the claim), as the value CAS of a dict publication orders it.
        self.store.store(len_at, len_word, Ordering::Release)
    }

    /// Pop from the back, with the tail claimed at length `len` (>= 1): `len - 1` stored
    /// plain, which both commits the pop and ends the claim (the item word stays past the end).
    pub fn pop_back(&self, len_at: u64, len: u64) -> Result<(), AccessError> {
        self.store.step()?;
        // Release: as `fill_tail`'s store of the length.
        self.store.store(len_at, len - 1, Ordering::Release)
    }

    /// Pop from the front, step 1 of 3, with the tail claimed at length `len` (>= 1) and
    /// `start` read under the claim: the first item word emptied. The commit point: from here
    /// every state of the claim stands for the list without that item ([`effective_list`]).
    pub fn pop_front_commit(&self, at: ListWords, start: u64) -> Result<(), AccessError> {
        self.store.step()?;
        // Relaxed: the Release store of the popped claim (step 2) orders it before.
        self.store
            .store(at.item(start), EMPTY_ITEM, Ordering::Relaxed)
    }

    /// Pop from the front, step 2: the claim marked popped, with the length after the pop.
    pub fn pop_front_mark(&self, at: ListWords, len: u64) -> Result<(), AccessError> {
        self.store.step()?;
        // Release: a recoverer or reader that loads the popped claim (Acquire) sees the
        // emptied item word.
        self.store.store(
            at.len,
            tail_claim_popped(self.slot, len - 1),
            Ordering::Release,
        )
    }

    /// Pop from the front, step 3: `start` moved on (to 0 when the list is now empty), then
    /// the plain length stored, which ends the claim.
    pub fn pop_front_finish(&self, at: ListWords, len: u64, start: u64) -> Result<(), AccessError> {
        let new_start = if len == 1 { 0 } else { start + 1 };
        self.store.step()?;
        // Relaxed: ordered by the Release below.
        self.store.store(at.start, new_start, Ordering::Relaxed)?;
        self.store.step()?;
        // Release: a reader that sees the plain length (then fences Acquire) sees `start`.
        self.store.store(at.len, len - 1, Ordering::Release)
    }

    /// A claim this participant made and cannot fill (an access failed): dropped again.
    pub fn unclaim_tail(&self, len_at: u64) -> Result<(), AccessError> {
        drop_tail_claim(self.store, len_at, self.slot)
    }

    /// Insert step 1, inside a publication under the dict's part: claims the dict's entries by
    /// CAS on its insert claim word at `claim_at`, from 0 to [`insert_claim`]`(me)`.
    /// `Ok(Err(now))`: the word was `now` (another insert holds it, or one left it).
    pub fn claim_insert(&self, claim_at: u64) -> Result<Result<(), u64>, AccessError> {
        self.store.step()?;
        // Acquire: pairs with the Release that ended the last claim (an insert's, or a
        // settling's): the entries, buckets and counts it wrote are seen before we read them.
        // Relaxed on failure: the value is only waited on.
        self.store.cas(
            claim_at,
            0,
            insert_claim(self.slot),
            Ordering::Acquire,
            Ordering::Relaxed,
        )
    }

    /// Insert step 2, with the claim held, the key looked up and found missing: entry `n`
    /// (= `nentries`) written as a deleted entry (hash, value, empty key), counted in
    /// `nentries`, and named by bucket `bucket` (empty or deleted, the first such on the key's
    /// probe sequence). Every state up to here is the dict without the entry (FORMAT.md
    /// §10.9, "Inserts").
    pub fn insert_entry_stage(
        &self,
        at: DictWords,
        n: u64,
        bucket: u64,
        hash: u64,
        value: u64,
    ) -> Result<(), AccessError> {
        debug_assert!(n < at.cap && bucket < at.nbuckets);
        let e = at.entry(n);
        self.store.step()?;
        // Relaxed: the Release stores below order these before them.
        self.store.store(e, hash, Ordering::Relaxed)?;
        self.store.step()?;
        self.store
            .store(e + ENTRY_VALUE, value, Ordering::Relaxed)?;
        self.store.step()?;
        self.store.store(e + ENTRY_KEY, 0, Ordering::Relaxed)?;
        self.store.step()?;
        // Release: a reader that sees the entry counted sees its empty key (a deleted entry).
        self.store.store(at.nentries, n + 1, Ordering::Release)?;
        self.store.step()?;
        // Release: a lookup that reads `nentries` after the bucket finds the entry counted.
        // One that read the count before it (a look without the part) reads it again before
        // taking the bucket for damage (`Store::find`).
        self.store
            .store(at.bucket(bucket), n + 1, Ordering::Release)
    }

    /// Insert step 3, the commit point: the key of entry `n` stored. From here every state is
    /// the dict with the entry, but for `used` until step 4.
    pub fn insert_entry_commit(&self, at: DictWords, n: u64, key: u64) -> Result<(), AccessError> {
        debug_assert!(key != 0);
        self.store.step()?;
        // Release: a reader that sees the key sees the hash and value; and (as a dict value's
        // publication) our `active` naming the dict, or the version moved.
        self.store
            .store(at.entry(n) + ENTRY_KEY, key, Ordering::Release)
    }

    /// Insert step 4: `used` moved from `used` to `used + 1`, and the claim ended.
    pub fn insert_entry_finish(&self, at: DictWords, used: u64) -> Result<(), AccessError> {
        self.store.step()?;
        // Relaxed: ordered by the Release below.
        self.store.store(at.used, used + 1, Ordering::Relaxed)?;
        self.store.step()?;
        // Release: the next claimant (Acquire CAS) sees all of the above.
        self.store.store(at.claim, 0, Ordering::Release)
    }

    /// A dict's delete, with the claim held and the key found in live entry `e` (whose value
    /// is an inline word): the claim marked as a delete of `e`, so that a recoverer knows the
    /// entry whose emptied value word commits it (FORMAT.md §10.9, "Deletes").
    pub fn delete_claim_entry(&self, at: DictWords, e: u64) -> Result<(), AccessError> {
        debug_assert!(e < at.cap);
        self.store.step()?;
        // Relaxed: read by a recoverer of ours once we are dead (it sees every store we made),
        // or by a claimant, which only waits for the word to be 0.
        self.store
            .store(at.claim, delete_claim(self.slot, e), Ordering::Relaxed)
    }

    /// A dict's delete, after [`Parts::delete_claim_entry`]: the commit point, entry `e`'s
    /// value word emptied by CAS from `old` (`Err(now)`: a value publication replaced it
    /// first; try again with `now`, if it is an inline word). From here every state is the
    /// dict without the key: a value publication that meets the empty word runs on the dict's
    /// part, which waits for this delete; then step 1 empties the key word.
    pub fn delete_value_commit(
        &self,
        at: DictWords,
        e: u64,
        old: u64,
    ) -> Result<Result<(), u64>, AccessError> {
        debug_assert!(e < at.cap && old != 0);
        self.store.step()?;
        // Release: the claim word stored before is seen by whoever sees the value emptied
        // with an Acquire load. Relaxed on failure: the word read is an inline value (no
        // offset to follow), only the next guess.
        self.store.cas(
            at.entry(e) + ENTRY_VALUE,
            old,
            0,
            Ordering::Release,
            Ordering::Relaxed,
        )
    }

    /// Delete step 1, with the claim held and the key found in live entry `e`: entry `e`'s key
    /// word emptied, a set's commit point (a dict's is [`Parts::delete_value_commit`], before).
    /// From here every state is the dict without the key, but for its bucket, value word and
    /// `used` until step 2 (FORMAT.md §10.9, "Deletes").
    pub fn delete_entry_commit(&self, at: DictWords, e: u64) -> Result<(), AccessError> {
        debug_assert!(e < at.cap);
        self.store.step()?;
        // Release: a reader that sees the key gone sees it gone with everything this
        // participant stored before (a set's delete stores nothing before).
        self.store
            .store(at.entry(e) + ENTRY_KEY, 0, Ordering::Release)
    }

    /// Delete step 2: bucket `bucket` (which named entry `e`) marked deleted, the entry's
    /// value word emptied, `used` moved from `used` to `used - 1`, and the claim ended.
    pub fn delete_entry_finish(
        &self,
        at: DictWords,
        bucket: u64,
        e: u64,
        used: u64,
    ) -> Result<(), AccessError> {
        debug_assert!(bucket < at.nbuckets && e < at.cap);
        self.store.step()?;
        // Relaxed (these three): ordered by the Release below.
        self.store
            .store(at.bucket(bucket), BUCKET_DELETED, Ordering::Relaxed)?;
        self.store.step()?;
        self.store
            .store(at.entry(e) + ENTRY_VALUE, 0, Ordering::Relaxed)?;
        self.store.step()?;
        self.store
            .store(at.used, used.saturating_sub(1), Ordering::Relaxed)?;
        self.store.step()?;
        // Release: the next claimant (Acquire CAS) sees all of the above.
        self.store.store(at.claim, 0, Ordering::Release)
    }

    /// A claim this participant made and leaves before writing anything: cleared.
    pub fn unclaim_insert(&self, claim_at: u64) -> Result<(), AccessError> {
        self.store.step()?;
        // Release: pairs with the next claimant's Acquire CAS. Relaxed on failure: the word
        // is not ours (nothing to do).
        let _ = self.store.cas(
            claim_at,
            insert_claim(self.slot),
            0,
            Ordering::Release,
            Ordering::Relaxed,
        )?;
        Ok(())
    }

    /// After taking the part at `version` ([`Parts::try_take`]): the first other slot whose
    /// `active` names a publication under it, and the value seen (to wait on: a taker may
    /// change the part's words only once none does). Publications that start after our CAS
    /// see the part held and withdraw. The caller reads the bound of the scan (`slots high`)
    /// after a SeqCst fence of its own, and waits holding the part: a release while a
    /// publication is named would move the version before the publication's value (whose own
    /// version move gives up on the held word).
    pub fn publisher_of(&self, version: u64) -> Result<Option<(u32, u64)>, AccessError> {
        // SeqCst fence: the taker's side of the part's handshake (`enter_publish`).
        fence(Ordering::SeqCst);
        self.publisher_in(|p| p == version)
    }

    /// The first other slot whose `active` names a publication under a part (its version
    /// word's offset) that `observed` accepts: a reader's check before it keeps what it read,
    /// ahead of its version re-checks (the caller has fenced Acquire).
    pub fn publisher_in(
        &self,
        observed: impl Fn(u64) -> bool,
    ) -> Result<Option<(u32, u64)>, AccessError> {
        for s in 0..self.at.slots {
            if s == self.slot {
                continue;
            }
            // Acquire: a publication that ended (0, Release) is seen whole, its version bump
            // included.
            let a = self.active_word(s)?.load(Ordering::Acquire);
            if let Some(p) = published_part(a) {
                if observed(p) {
                    return Ok(Some((s, a)));
                }
            }
        }
        Ok(None)
    }

    /// The writer's side of the held-set handshake (module doc): called after taking the part
    /// that linked a container, before reading the held sets to decide whether to free it.
    pub fn before_reading_held_sets(&self) {
        // SeqCst fence: our CAS on the part is ordered before the loads of the held sets.
        // Pairs with the reader's fence between its held-set store and its re-check of the
        // part: either the reader sees the part moved, or we see its entry.
        fence(Ordering::SeqCst);
    }

    // ---- a section taker ------------------------------------------------------------------

    /// The first slot from `from` on, other than this participant's, whose `active` is not 0,
    /// and the value seen (to sleep on with `StoreLock::sleep`, or to recover the slot if its
    /// participant is dead); None when every one is 0. Called by a lockExcl taker after it made
    /// `seq` odd and by a lockShared taker after it added its hold, until it returns None
    /// (starting again from the slot it returned: the slots before it stay drained, since a
    /// change that announces itself after our fence finds the gate closed).
    pub fn first_active(&self, from: u32) -> Result<Option<(u32, u64)>, AccessError> {
        // SeqCst fence: the taker's side of the gate's handshake (module doc): its store of
        // `seq` or `shared` is ordered before the loads below.
        fence(Ordering::SeqCst);
        for s in from..self.at.slots {
            if s == self.slot {
                continue;
            }
            let word = self.active_word(s)?;
            self.lock_file.step()?;
            // Acquire: pairs with the Release store of 0 that ended a change (or withdrew it,
            // or a recoverer's): the section sees that change whole.
            let a = word.load(Ordering::Acquire);
            if a != 0 {
                return Ok(Some((s, a)));
            }
        }
        Ok(None)
    }

    // ---- a dead participant ---------------------------------------------------------------

    /// Releases what the dead participant in `dead_slot` (owner id `dead`) held as a single
    /// change: rolls its undo log back (`log`: the log and its published length, checked by the
    /// caller), then releases every part its record (`dead_record`) names that is still
    /// locked(dead), wakes each part word the record names, empties the record, and clears
    /// its `active` (waking). The caller holds the dead slot's recovery lock. Every step is
    /// safe to repeat (module doc).
    #[allow(clippy::too_many_arguments)]
    pub fn recover_dead<O: OtherEntries, F: Futex>(
        &self,
        log: Option<(&UndoLog<'_, W>, u64)>,
        dead_record: HeldParts<'_, W>,
        dead_slot: u32,
        dead: u64,
        other: &mut O,
        futex: &F,
    ) -> Result<(), O::Error> {
        if let Some((log, len)) = log {
            if len > 0 {
                // SeqCst fence: the restores are ordered before a reader's re-check, as the
                // dead writer's own stores were by the fence after its CAS (the part is still
                // locked(dead) while they happen). As in `StoreLock::recover_dead`.
                fence(Ordering::SeqCst);
            }
            log.roll_back(len, other)?;
        }
        for e in 0..record::ENTRIES {
            let (offset, seen) = dead_record.entry(e)?;
            if offset == 0 {
                continue;
            }
            // SeqCst (both): one order with the takers' CASes.
            if self.store.load(offset, Ordering::SeqCst)? == locked(dead) {
                // A failed CAS: impossible (only the dead owner, now gone, or a recoverer
                // holding the dead slot's recovery lock changes a word locked(dead)), but a
                // word that moved is left as it is.
                let _ = self.store.cas(
                    offset,
                    locked(dead),
                    released(seen),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )?;
            }
            // Whether or not we released it: the dead may have released it and died before
            // its wake-up.
            if self.lock.waiters_present()? {
                futex.wake(self.store.word(offset)?);
            }
            dead_record.clear(e)?;
        }
        let active = self.active_word(dead_slot)?;
        self.lock_file.step()?;
        // SeqCst: as the release of the part words; a taker's Acquire load synchronizes.
        active.store(0, Ordering::SeqCst);
        if self.lock.waiters_present()? {
            futex.wake(active);
        }
        Ok(())
    }

    /// Frees part word `offset` if it still holds `seen` (held) and `names_nobody(holder)` says
    /// the holder's id names no attached participant (a damaged or forged file, or a part held
    /// when the machine went down and the lock file was rebuilt: no record will release it).
    /// Returns whether it freed the word (the caller wakes its sleepers). The version is lost
    /// with the record: the word gets `seen + 1`, even and unlike every value it held while the
    /// holder's id was in it.
    pub fn free_stale_part(
        &self,
        offset: u64,
        seen: u64,
        names_nobody: impl FnOnce(u64) -> Result<bool, AccessError>,
    ) -> Result<bool, AccessError> {
        let Some(owner) = holder(seen) else {
            return Ok(false);
        };
        // Acquire: the holder's CAS is a Release, so its attach is visible to `names_nobody`.
        if self.store.load(offset, Ordering::Acquire)? != seen || !names_nobody(owner)? {
            return Ok(false);
        }
        // SeqCst: one order with the takers' CASes. Only that value is freed.
        Ok(self
            .store
            .cas(
                offset,
                seen,
                seen.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )?
            .is_ok())
    }
}

/// Parts one unlocked read may observe.
pub const READ_SET: usize = 8;

/// What an unlocked read observed: the store's `seq` token and the version of each part it
/// read from. Readers make no `step` calls (a reader holds nothing; killing one proves nothing).
pub struct ReadSet<'a, W: WordStore> {
    lock: StoreLock<'a, W>,
    store: &'a W,
    token: u64,
    parts: [(u64, u64); READ_SET],
    n: usize,
}

/// Why a read cannot go on now: the word in the way and the odd value seen (to sleep on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBusy {
    /// A lockExcl section: the store's `seq`.
    Seq(u64),
    /// A change holds the part whose version word is at this offset.
    Part { offset: u64, word: u64 },
}

impl<'a, W: WordStore> ReadSet<'a, W> {
    /// Begins a read: the `seq` token (Acquire, as `StoreLock::read_begin`).
    pub fn begin(lock: StoreLock<'a, W>, store: &'a W) -> Result<Self, ReadBusy> {
        let token = lock.read_begin().map_err(ReadBusy::Seq)?;
        Ok(ReadSet {
            lock,
            store,
            token,
            parts: [(0, 0); READ_SET],
            n: 0,
        })
    }

    /// Observes the part whose version word is at `offset`: its even version, kept for
    /// validation; `ReadBusy::Part` while a change holds it. Panics past [`READ_SET`] parts.
    pub fn observe(&mut self, offset: u64) -> Result<Result<u64, ReadBusy>, AccessError> {
        // Acquire: pairs with the Release store that released the part (`Parts::end`, or a
        // recoverer's): the change's data stores are seen by the reads that follow.
        let v = self.store.load(offset, Ordering::Acquire)?;
        if v % 2 == 1 {
            return Ok(Err(ReadBusy::Part { offset, word: v }));
        }
        assert!(
            self.n < READ_SET,
            "a read observed more than {READ_SET} parts"
        );
        self.parts[self.n] = (offset, v);
        self.n += 1;
        Ok(Ok(v))
    }

    /// Whether everything read since `begin` is a consistent snapshot of the parts observed:
    /// an Acquire fence, then every observed version and the `seq` token unchanged.
    pub fn valid(&self) -> Result<bool, AccessError> {
        // Acquire fence: the data loads before it are ordered before the re-checks below. If
        // one of them saw a change's store, that change's part CAS (Release fence after it)
        // or section's odd `seq` (SeqCst fence) is seen by the re-check, or a later value.
        fence(Ordering::Acquire);
        for &(offset, v) in &self.parts[..self.n] {
            // Relaxed: the fence above orders it after the data loads.
            if self.store.load(offset, Ordering::Relaxed)? != v {
                return Ok(false);
            }
        }
        // The fence above is the one `read_valid` would issue again: cheap, and its own.
        Ok(self.lock.read_valid(self.token))
    }

    /// [`ReadSet::valid`], for a reader that has just stored a container it found here in
    /// its held set: the reader's side of the held-set handshake (module doc).
    pub fn valid_after_hold(&self) -> Result<bool, AccessError> {
        // SeqCst fence: the held-set store is ordered before the re-checks. Pairs with the
        // writer's fence in `Parts::before_reading_held_sets`.
        fence(Ordering::SeqCst);
        self.valid()
    }

    /// The `seq` token the read began with.
    pub fn token(&self) -> u64 {
        self.token
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::store_lock::{owner_id, LockOffsets};
    use crate::sync::MemWords;
    use std::cell::Cell;

    const AT: LockOffsets = LockOffsets {
        writer: 0,
        seq: 8,
        waiters: 16,
    };
    const GATE: GateOffsets = GateOffsets {
        shared: 24,
        active: 32,
        stride: 8,
        slots: 4,
    };
    const PART: u64 = 64;
    const DATA: u64 = 72;
    const RECORD: [u64; 2] = [128, 256];
    const LOG: [u64; 2] = [512, 1024];

    #[derive(Default)]
    struct Calls {
        wakes: Cell<u32>,
    }

    impl Futex for Calls {
        fn wait(&self, _word: &AtomicU64, _expected: u32) {}

        fn wake(&self, _word: &AtomicU64) {
            self.wakes.set(self.wakes.get() + 1);
        }
    }

    struct WordsOnly;

    impl OtherEntries for WordsOnly {
        type Error = AccessError;

        fn once_only(&self, _tagged: u64) -> bool {
            false
        }

        fn undo(&mut self, _entry: u64, tagged: u64, _value: u64) -> Result<(), AccessError> {
            panic!("not a word entry: {tagged:#x}")
        }
    }

    fn world() -> (MemWords, MemWords) {
        (MemWords::new(64, 64), MemWords::new(2048, 2048))
    }

    fn parts<'a>(lock_file: &'a MemWords, store: &'a MemWords, slot: u32) -> Parts<'a, MemWords> {
        let lock = StoreLock::new(lock_file, AT).unwrap();
        Parts::new(
            lock,
            lock_file,
            store,
            GATE,
            slot,
            owner_id(slot, 1),
            RECORD[slot as usize],
        )
        .unwrap()
    }

    #[test]
    fn words_encode_as_documented() {
        assert_eq!(locked(owner_id(2, 7)), ((7 << 16 | 3) << 32) | 1);
        assert_eq!(holder(locked(owner_id(2, 7))), Some(owner_id(2, 7)));
        assert_eq!(holder(6), None);
        assert_eq!(released(6), 8);
        assert_eq!(released(7), 8);
        // The futex sees 1 for every held value, an even number for every free one.
        assert_eq!(locked(u32::MAX as u64) as u32, 1);
    }

    #[test]
    fn a_change_takes_and_releases_and_readers_of_other_parts_stay_valid() {
        let (lock_file, store) = world();
        let futex = Calls::default();
        let a = parts(&lock_file, &store, 0);
        let b = parts(&lock_file, &store, 1);
        let other_part = PART + 256;
        let mut read = ReadSet::begin(StoreLock::new(&lock_file, AT).unwrap(), &store).unwrap();
        assert_eq!(read.observe(other_part).unwrap(), Ok(0));
        a.enter(&futex).unwrap().unwrap();
        let held = a.try_take(0, PART).unwrap().unwrap();
        assert_eq!(held.seen, 0);
        assert_eq!(a.record().entry(0).unwrap(), (PART, 0));
        assert_eq!(b.try_take(0, PART).unwrap(), Err(locked(owner_id(0, 1))));
        assert_eq!(
            b.record().entry(0).unwrap(),
            (0, 0),
            "a lost take keeps no entry"
        );
        store.store(DATA, 5, Ordering::Relaxed).unwrap();
        assert_eq!(b.first_active(0).unwrap(), Some((0, 1)));
        a.end(&[held], true, &futex).unwrap();
        assert_eq!(store.load(PART, Ordering::Relaxed).unwrap(), 2);
        assert_eq!(a.record().entry(0).unwrap(), (0, 0));
        assert_eq!(b.first_active(0).unwrap(), None);
        assert_eq!(futex.wakes.get(), 0, "nobody sleeps: no wake-up call");
        assert!(
            read.valid().unwrap(),
            "a change of another part invalidated a read"
        );
        let mut read2 = ReadSet::begin(StoreLock::new(&lock_file, AT).unwrap(), &store).unwrap();
        assert_eq!(read2.observe(PART).unwrap(), Ok(2));
    }

    #[test]
    fn the_gate_turns_changes_away_while_a_section_is_open() {
        let (lock_file, store) = world();
        let futex = Calls::default();
        let a = parts(&lock_file, &store, 0);
        lock_file.store(AT.seq, 3, Ordering::Relaxed).unwrap();
        assert_eq!(a.enter(&futex).unwrap(), Err(Closed::Seq(3)));
        assert_eq!(a.active_word(0).unwrap().load(Ordering::Relaxed), 0);
        lock_file.store(AT.seq, 4, Ordering::Relaxed).unwrap();
        lock_file.store(GATE.shared, 2, Ordering::Relaxed).unwrap();
        assert_eq!(a.enter(&futex).unwrap(), Err(Closed::Shared(2)));
        lock_file.store(GATE.shared, 0, Ordering::Relaxed).unwrap();
        assert_eq!(a.enter(&futex).unwrap(), Ok(()));
    }

    #[test]
    fn a_dead_holder_is_rolled_back_released_and_recovered_again_harmlessly() {
        let (lock_file, store) = world();
        let futex = Calls::default();
        let dead = parts(&lock_file, &store, 0);
        dead.enter(&futex).unwrap().unwrap();
        store.store(PART, 6, Ordering::Relaxed).unwrap();
        store.store(DATA, 1, Ordering::Relaxed).unwrap();
        let held = dead.try_take(0, PART).unwrap().unwrap();
        let log = UndoLog::new(&store, LOG[0]);
        log.append_word(0, DATA, 1).unwrap();
        store.store(DATA, 9, Ordering::Relaxed).unwrap();
        // Entry 1 is stale: it names a part the dead never took.
        dead.record().set(1, PART + 320, 4).unwrap();
        store.store(PART + 320, 10, Ordering::Relaxed).unwrap();
        let _ = held;
        let rec = parts(&lock_file, &store, 1);
        for _ in 0..2 {
            let len = log.published_len().unwrap();
            rec.recover_dead(
                Some((&log, len)),
                HeldParts::new(&store, RECORD[0]),
                0,
                owner_id(0, 1),
                &mut WordsOnly,
                &futex,
            )
            .unwrap();
            assert_eq!(store.load(DATA, Ordering::Relaxed).unwrap(), 1);
            assert_eq!(store.load(PART, Ordering::Relaxed).unwrap(), 8);
            assert_eq!(store.load(PART + 320, Ordering::Relaxed).unwrap(), 10);
            assert_eq!(dead.record().entry(0).unwrap(), (0, 0));
            assert_eq!(dead.record().entry(1).unwrap(), (0, 0));
            assert_eq!(rec.first_active(0).unwrap(), None);
        }
    }

    #[test]
    fn a_part_naming_nobody_is_freed_and_a_live_holders_is_not() {
        let (lock_file, store) = world();
        let a = parts(&lock_file, &store, 0);
        let ghost = locked(owner_id(3, 9));
        store.store(PART, ghost, Ordering::Relaxed).unwrap();
        assert!(!a.free_stale_part(PART, ghost, |_| Ok(false)).unwrap());
        assert!(!a.free_stale_part(PART, ghost + 2, |_| Ok(true)).unwrap());
        assert!(a.free_stale_part(PART, ghost, |_| Ok(true)).unwrap());
        let v = store.load(PART, Ordering::Relaxed).unwrap();
        assert_eq!(v % 2, 0);
        assert_eq!(a.try_take(0, PART).unwrap().unwrap().seen, v);
    }
}
