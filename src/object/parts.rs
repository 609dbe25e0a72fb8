//! Single changes on their container's part lock, the gate that keeps them apart from
//! lockExcl and lockShared sections, and unlocked reads that validate the containers they read
//! (FORMAT.md §10.9; the word protocol is `crate::part_lock`, model-checked in
//! `loom-tests/tests/part_lock.rs`).
//!
//! Problem. Every change used to take the store's one writer word and move its one sequence
//! word: changes never ran in parallel, and every change invalidated every unlocked read in
//! flight. A single change of one container (`d[k] = 5`, `l.append("x")`) needs only that
//! container.
//!
//! Mechanism.
//! - A single change of container C ([`Store::begin_part`], [`Store::end_part`]): announce
//!   (`active` = 1) and pass the gate, name C's version word in the held-parts record (in the
//!   undo log block) and take it by CAS (even -> odd, naming us); change C, each word logged as
//!   any change logs it; commit (the log emptied); release C (version + 2); run the deferred
//!   frees; `active` = 0. What the change must not do under one part (drop a container that
//!   another reference reaches, store a reference to a container already stored, anything
//!   beyond C; a new container is new blocks, and may be written) makes it fail with the
//!   fallback flag set ([`Store::part_refuse`]): the caller rolls it back and runs it
//!   store-wide, as before.
//! - Store-wide changes, lockExcl and lockShared close the gate (odd sequence, or a shared
//!   count) and then wait until no other participant's `active` is 1 ([`Store::drain_gate`]),
//!   recovering dead ones; check, gc and stats do the same while parts are on.
//! - Unlocked reads ([`Store::read_begin`] in lock.rs, [`Store::observe`]): while parts are on,
//!   every container header a read reaches records its version (odd: the read is busy on that
//!   part); the read is valid if, after an Acquire fence, each recorded version and the
//!   sequence are unchanged. A change of another container moves neither.
//! - One process alone: the lock file's `slots high` word (the highest slot ever attached,
//!   plus one, since the lock file was built) stays 1, parts stay off: every change runs
//!   store-wide with nothing to drain and reads record nothing. A second participant raises it
//!   at attach, before it changes anything; a read that began with parts off and finds them on
//!   at validation is retried (the attach comes before every part change of the attacher in
//!   its program order, and its part CAS is followed by a Release fence, so a read that saw
//!   one of its writes sees the word raised).
//!
//! Invariants: `part_change` is Some exactly between a successful `begin_part` and its
//! `end_part`; a part is released only after the log that covers its words is empty; durable
//! stores never take parts (their log is named by the store header alone, FORMAT.md §10.8).

use super::key::Key;
use super::layout::{container, dict_header, journals, list_header, lock_words, undo};
use super::lock::{Busy, KERNEL};
use super::store::AppendDeath;
use super::tree::Node;
use super::value::{self, Kind};
use super::{Container, Error, Result, Store};
use crate::part_lock::{holder, tail_claimant, Closed, GateOffsets, Parts};
use crate::region::{lockfile, Mapping};
use crate::sync::{fence, AtomicU64, Ordering, WordStore};

/// Tries at a part whose version moved between the read and the CAS before reporting it busy.
const TAKE_TRIES: u32 = 64;

/// Spins on a part held by another live change before reporting it busy (a few microseconds).
const HELD_SPINS: u32 = 4096;

/// The most containers, and value words, a container dropped on a part may hold
/// (`Store::part_drop_check`): a larger tree is dropped store-wide, so that a part is held
/// for microseconds, and one drop adds far fewer log entries than a part change may
/// (`part_commit`).
const DROP_MOST_CONTAINERS: u32 = 64;
const DROP_MOST_WORDS: u32 = 256;

/// Spins while `word` still holds `seen`, counting in `spins` up to [`HELD_SPINS`]; whether it
/// changed (a part released, a publication ended) before the count ran out.
fn spin_until_changed(word: &AtomicU64, seen: u64, spins: &mut u32) -> bool {
    while *spins < HELD_SPINS {
        // Relaxed: a hint; the caller loads the word again with the ordering it needs.
        if word.load(Ordering::Relaxed) != seen {
            return true;
        }
        *spins += 1;
        std::hint::spin_loop();
    }
    false
}

/// What an append publishes: inline words, or an item that is one block it allocates.
#[derive(Clone, Copy)]
enum Appended<'n, 'a> {
    Words(&'n [u64]),
    Block(OneBlock<'n, 'a>),
}

/// A value that is one block with no references: a scalar's (a str, a float...), or a tuple's
/// whose items are inline words.
#[derive(Clone, Copy)]
enum OneBlock<'n, 'a> {
    Scalar(&'n Node<'a>),
    Tuple(&'n [u64]),
}

/// The key word `claim_and_insert` is given to look the key up under the claim and insert
/// nothing: the empty word, which no key is.
const ONLY_LOOK: u64 = value::EMPTY;
/// `claim_and_insert`'s journals when no block was taken.
const NOT_JOURNALED: [(bool, u64); 2] = [(false, journals::OP), (false, journals::VALUE)];

/// The most items a tuple appended or popped without a lock has (a longer one, even of inline
/// words, runs on the list's part): its items are read under the list's claim.
pub const FLAT_TUPLE_MAX: u64 = 32;

/// The value an insert without a lock stores: an inline word, or a scalar whose one block it
/// allocates.
#[derive(Clone, Copy)]
pub enum Inserted<'n, 'a> {
    Word(u64),
    Scalar(&'n Node<'a>),
}

/// What an unlocked read observed while parts are on (process-local; reset by each read).
#[derive(Debug, Default)]
pub(super) struct ReadParts {
    /// (version word offset, version seen) of every container the read reached.
    pub seen: Vec<(u64, u64)>,
}

impl Store {
    /// Whether another participant has attached since the lock file was built (`slots high`
    /// above 1): single changes then take parts, and readers validate versions.
    #[inline]
    pub(super) fn parts_on(&self) -> bool {
        self.slots_high() > 1
    }

    /// The lock file's `slots high` word, clamped to the table (a forged word scans no more).
    #[inline]
    fn slots_high(&self) -> u32 {
        // Relaxed: a hint for a writer (the store-wide path is always correct); a reader
        // re-reads it after its Acquire fence (`parts_valid`), and a section reads it after
        // its SeqCst fence (`drain_gate`).
        let high = self.part.lock().slots_high.load(Ordering::Relaxed);
        high.min(lockfile::SLOTS as u64) as u32
    }

    /// At attach: `slots high` raised to cover this participant's slot, before it changes or
    /// reads anything (SeqCst: ordered before its `active` store and every part CAS).
    pub(super) fn raise_slots_high(&self) -> Result<()> {
        let w = self.part.lock().slots_high;
        w.fetch_max(self.part.slot() as u64 + 1, Ordering::SeqCst);
        Ok(())
    }

    /// The part-lock words as this participant uses them; `slots` bounds a section's scan.
    fn parts(&self, slots: u32) -> Result<Parts<'_, Mapping>> {
        let lock = self.part.lock();
        let record = match self.log.block() {
            0 => 0,
            b => b + undo::RECORD,
        };
        Ok(Parts::new(
            lock.words,
            self.lock_mem(),
            self.mem(),
            GateOffsets {
                shared: lock_words::SHARED,
                active: lock.active,
                stride: lock.stride,
                slots,
            },
            self.part.slot(),
            lock.me(),
            record,
        )?)
    }

    // ---- a single change ------------------------------------------------------------------

    /// Begins a single change of `c` on its part lock. `Ok(false)`: it must run store-wide
    /// (parts off, a durable or read-only store, a lock held in this process). `Busy`: a
    /// section is open, or another change holds `c`; nothing is held then.
    pub fn begin_part(&mut self, c: Container) -> Result<bool> {
        self.begin_part_at(c.get() + container::VERSION, Some(c))
    }

    /// `begin_part` on the part word at `offset`: a container's version word (`of` names the
    /// container, whose publications it then waits for), or the orphan list's part word
    /// (`words::ORPHANS_PART`, `of` None).
    pub(super) fn begin_part_at(&mut self, offset: u64, of: Option<Container>) -> Result<bool> {
        if !self.parts_on()
            || self.part.is_readonly()
            || self.part.is_durable()
            || !self.locks.none_held()
        {
            return Ok(false);
        }
        debug_assert!(self.part_change.is_none());
        // The record lives in the log block: it must exist before the part is taken.
        self.log.ensure_block(&self.part)?;
        let parts = self.parts(0)?;
        match parts.enter(&KERNEL)? {
            Ok(()) => {}
            Err(Closed::Seq(v)) => return Err(Error::Busy(Busy::Seq(v))),
            Err(Closed::Shared(n)) => return Err(Error::Busy(Busy::Shared(n))),
        }
        let mut tries = 0;
        let mut spins = 0;
        let taken = loop {
            match parts.try_take(0, offset) {
                Ok(Ok(held)) => break Ok(held),
                Ok(Err(word)) if word % 2 == 0 && tries < TAKE_TRIES => tries += 1,
                Ok(Err(word))
                    if spins < HELD_SPINS && holder(word) != Some(self.part.lock().me()) =>
                {
                    // Held by another change, which holds a part for about a microsecond:
                    // wait here, past the gate, rather than leave it and sleep (a sleep and
                    // a wake-up cost more than the change). Bounded, so a dead or stalled
                    // holder is left to the waiting path, which recovers it.
                    spin_until_changed(self.mem().word(offset)?, word, &mut spins);
                }
                Ok(Err(word)) => break Err(Error::Busy(Busy::Part { offset, word })),
                Err(e) => break Err(e.into()),
            }
        };
        match taken {
            Ok(held) => {
                self.part_change = Some(held);
                // No publication under the part may still be running: wait for the last
                // ones (a publication is a few loads and a CAS). Only dicts, objects
                // (`publish_dict_value`, `publish_dict_insert`), sets (`publish_set_add`) and
                // lists (`publish_list_append`) have publications: the scan of the other
                // slots' `active` words is skipped for caches and the orphan list. On a
                // failure the part is released again (nothing was changed under it) and the
                // gate left.
                let waited = match of.map(|c| self.block_kind(c)) {
                    Some(Ok(Some(Kind::Dict | Kind::Object | Kind::Set | Kind::List))) => {
                        self.wait_publishers(offset)
                    }
                    Some(Err(e)) => Err(e),
                    _ => Ok(()),
                };
                if let Err(e) = waited {
                    let _ = self.end_part(false);
                    return Err(e);
                }
                Ok(true)
            }
            Err(e) => {
                parts.leave(&KERNEL)?;
                Err(e)
            }
        }
    }

    // ---- a publication: one value word by CAS, no part taken -------------------------------

    /// Whether this participant may publish under container `c` now: a store neither durable
    /// nor read-only, no lock held in this process, no single change or publication of its own
    /// in progress, and `c` of a kind `kind` accepts (only kinds whose part takers wait for
    /// publications, `begin_part`).
    fn may_publish(&self, c: Container, kind: impl Fn(Kind) -> bool) -> Result<bool> {
        if self.part.is_readonly()
            || self.part.is_durable()
            || !self.locks.none_held()
            || self.part_change.is_some()
            || self.unlogged_alloc.is_some()
        {
            return Ok(false);
        }
        Ok(self.block_kind(c)?.is_some_and(kind))
    }

    /// Replaces the value of existing key `key` of dict `c` by one CAS on its value word
    /// (FORMAT.md §10.9, "Publications"), where that alone is the whole change: a store
    /// neither durable nor read-only, no lock held in this process, the key present, the new
    /// value an inline word (nothing to allocate), and the old one an inline word or, in a
    /// dict or an object, one block with no references (a str, bytes, a float, a big int, a packed
    /// value, a tuple of inline words: freed whole after the CAS, before the publication ends).
    /// `f` makes the new word from the old one (None: not this path's to do). `Ok(None)`:
    /// nothing was changed; the caller runs the change on the dict's part (which waits for
    /// whatever was in the way here).
    pub fn publish_dict_value<T>(
        &mut self,
        c: Container,
        key: &Key,
        hint: &mut u64,
        mut f: impl FnMut(u64) -> Option<(u64, T)>,
    ) -> Result<Option<T>> {
        // Parts need not be on: with one process alone its steps are serialized anyway, and a
        // process that attaches meanwhile raises `slots high` before it reads or changes
        // anything, so it scans the `active` words (readers, takers, sections) and finds us.
        // Only a dict or an object: a part change of any other kind does not wait for
        // publications (`begin_part`).
        if !self.may_publish(c, |k| matches!(k, Kind::Dict | Kind::Object))? {
            return Ok(None);
        }
        // A look before the announcement: a key that is missing is not published (the change
        // path inserts it), and pays neither the announcement's fence nor a second full
        // lookup; one whose value is a block is the block path's (`publish_value`: a block
        // with no references is freed after the swap). Without the announcement a
        // part change of another process may be moving the table under this look, so it only
        // decides whether to try; the look after the announcement is the one that counts (and
        // starts at the entry found here). Small values keep this path to themselves: the
        // block path's code made it measurably slower.
        match self.dict_value_at(c.get(), key, hint) {
            Ok(None) => return Ok(None),
            Ok(Some(at)) if self.get(at).is_ok_and(|w| !value::is_inline(w)) => {
                return self.publish_value(c, key, hint, None, f);
            }
            _ => {}
        }
        let version = c.get() + container::VERSION;
        let parts = self.parts(0)?;
        if parts.enter_publish(version, &KERNEL)?.is_err() {
            return Ok(None);
        }
        let published = (|| {
            let Some(at) = self.dict_value_at(c.get(), key, hint)? else {
                return Ok(None);
            };
            let mut old = self.get(at)?;
            loop {
                // A block (swapped in since the look) is the part path's, which waits for
                // us; so is the empty word of a delete's commit.
                if !value::is_inline(old) {
                    return Ok(None);
                }
                let Some((new, t)) = f(old) else {
                    return Ok(None);
                };
                debug_assert!(value::is_inline(new));
                match parts.publish(at, old, new)? {
                    Ok(()) => return Ok(Some(t)),
                    Err(now) => old = now,
                }
            }
        })();
        let changed = matches!(published, Ok(Some(_)));
        parts.end_publish(version, changed, &KERNEL)?;
        if changed {
            self.changed = true;
        }
        published
    }

    /// Replaces the value of existing key `key` of dict (or object) `c` by `node`, a scalar that needs
    /// a block (a str of more than 7 bytes, bytes, a float, a big int, a packed value), with no
    /// part taken: the block is taken and written inside the publication (named by journal
    /// `OP` until the CAS that links it), and the old value is an inline word or such a block
    /// (freed after the CAS). `Ok(false)`: nothing was changed (the key is missing, the old
    /// value holds references, a section); the caller runs the change on the dict's part.
    pub fn publish_dict_replace(
        &mut self,
        c: Container,
        key: &Key,
        hint: &mut u64,
        node: &Node,
    ) -> Result<bool> {
        if value::inline_word(node).is_some() {
            return Ok(false);
        }
        Ok(self
            .publish_value(c, key, hint, Some(node), |_| Some((0, ())))?
            .is_some())
    }

    /// The value publications: with `node` None, `f` makes the new inline word from the old
    /// one; with a scalar `node` that needs a block, the block is its new word (`f` only says
    /// whether to go on). The old value may be a block with no references, freed
    /// after the CAS.
    #[inline(never)]
    fn publish_value<T>(
        &mut self,
        c: Container,
        key: &Key,
        hint: &mut u64,
        node: Option<&Node>,
        mut f: impl FnMut(u64) -> Option<(u64, T)>,
    ) -> Result<Option<T>> {
        // Parts need not be on: with one process alone its steps are serialized anyway, and a
        // process that attaches meanwhile raises `slots high` before it reads or changes
        // anything, so it scans the `active` words (readers, takers, sections) and finds us.
        // Only a dict or an object: a part change of any other kind does not wait for
        // publications (`begin_part`); a dead publisher's journals are read by the container's
        // entries (`inserted_by_dead`).
        if !self.may_publish(c, |k| matches!(k, Kind::Dict | Kind::Object))? {
            return Ok(None);
        }
        // An old value this publication may replace: an inline word, or one
        // block with no references, which it frees.
        let replaceable =
            |st: &Self, w: u64| -> bool { value::is_inline(w) || st.poppable(w).unwrap_or(false) };
        // A look before the announcement: a key that is missing, or whose value holds
        // references, is not published (the change path inserts it, or releases them), and
        // pays neither the announcement's fence nor a second full lookup. Without the
        // announcement a part change of another process may be moving the table under this
        // look, so it only decides whether to try; the look after the announcement is the one
        // that counts (and starts at the entry found here).
        match self.dict_value_at(c.get(), key, hint) {
            Ok(None) => return Ok(None),
            Ok(Some(at)) if self.get(at).is_ok_and(|w| !replaceable(self, w)) => {
                return Ok(None);
            }
            _ => {}
        }
        let version = c.get() + container::VERSION;
        let entered = self.parts(0)?;
        if entered.enter_publish(version, &KERNEL)?.is_err() {
            return Ok(None);
        }
        // A new block is taken and written only now, past the gate, as an insert's (a gc
        // waits for this publication). A kill from here on leaves it named by journal `OP`,
        // linked iff a live entry of the dict holds it. Encoding changes this store: the parts
        // are made again after it (and only then: making them costs a few per cent of a
        // small value's publication).
        let mut block = 0;
        let parts = match node {
            None => entered,
            Some(node) => {
                self.unlogged_alloc = Some(0);
                let w = self.encode_scalar(node);
                block = self.unlogged_alloc.take().unwrap_or(0);
                if let Err(e) = w {
                    self.give_back_unlinked(block);
                    self.parts(0)?.end_publish(version, false, &KERNEL)?;
                    return Err(e);
                }
                self.maybe_die(AppendDeath::Taken);
                self.parts(0)?
            }
        };
        // Ok(Some((t, old))): published over `old`. A block goes into or out of a value word
        // only under the dict's insert claim (a delete or an insert takes it too; inline values
        // are published without it, and their CAS can neither take out a block nor put one
        // in). With the claim the old block is this publisher's to take, and is named by
        // journal `VALUE` as taken before the CAS, so a recovery of ours frees it iff no entry
        // holds it any more; and the new block's journal `OP` is settled before the claim
        // ends, so no other publication takes the new block out (and frees it) while a
        // recovery of ours could still take it for unlinked and free it again (loom,
        // `value_swap.rs`, found that double free when the claim ended first).
        let claim_at = c.get() + dict_header::INSERT_CLAIM;
        let mut claimed = false;
        let published = (|| {
            let Some(at) = self.dict_value_at(c.get(), key, hint)? else {
                return Ok(None);
            };
            let mut old = self.get(at)?;
            loop {
                // A value that is not one to replace (the empty word of a delete's commit, a
                // block with references that the part path put there before we announced):
                // the part path's, which waits for us.
                if !replaceable(self, old) {
                    return Ok(None);
                }
                if (value::is_block(old) || block != 0) && !claimed {
                    if !self.claim_entries(&parts, claim_at)? {
                        return Ok(None);
                    }
                    claimed = true;
                    // Read again: the block may have been taken out before the claim.
                    old = self.get(at)?;
                    continue;
                }
                let Some((new, t)) = f(old) else {
                    return Ok(None);
                };
                let new = if block != 0 { block } else { new };
                let old_block = value::is_block(old).then(|| crate::heap::Block::from_word(old));
                if let Some(b) = old_block {
                    self.part.heap().journal_owned(journals::VALUE, b)?;
                    self.maybe_die(AppendDeath::OldJournaled);
                }
                match parts.publish(at, old, new)? {
                    Ok(()) => {
                        self.maybe_die(AppendDeath::ValueSwapped);
                        // The new block is linked: its journal settled under the claim (one
                        // that cannot be written, its page vanished, still names a block an
                        // entry holds: a recovery keeps it).
                        if block != 0 {
                            let _ = self.part.heap().settle(journals::OP);
                        }
                        return Ok(Some((t, old)));
                    }
                    Err(now) => {
                        // Only an inline word moves under the claim (damage otherwise: the
                        // next look sends it to the part path).
                        if old_block.is_some() {
                            self.part.heap().settle(journals::VALUE)?;
                        }
                        old = now;
                    }
                }
            }
        })();
        if claimed {
            // A journal left naming the old block (an error past its naming) is settled: the
            // block stays where it is.
            if !matches!(published, Ok(Some(_))) {
                let _ = self.part.heap().settle(journals::VALUE);
            }
            parts.unclaim_insert(claim_at)?;
        }
        let changed = matches!(published, Ok(Some(_)));
        if !changed {
            self.give_back_unlinked(block);
        }
        let after = match &published {
            Ok(Some((_, old))) => self.settle_swapped(*old),
            _ => Ok(()),
        };
        parts.end_publish(version, changed, &KERNEL)?;
        if changed {
            self.changed = true;
        }
        after?;
        published.map(|p| p.map(|(t, _)| t))
    }

    /// After a value publication's CAS took `old` out (and its claim ended), before the
    /// publication ends: the old block (which journal `VALUE` names as taken: ours alone now)
    /// freed, as a pop's item is (gc waits for publications; a reader that read it before is
    /// invalidated by our `active`).
    fn settle_swapped(&self, old: u64) -> Result<()> {
        if value::is_block(old) {
            self.part
                .heap()
                .free_journaled(journals::VALUE, crate::heap::Block::from_word(old))?;
        }
        Ok(())
    }

    /// Inserts missing key `key` with value `value` into dict `c` with no part taken
    /// (FORMAT.md §10.9, "Inserts"): a publication under the dict's part that claims the dict's
    /// entries by CAS on its insert claim word, writes the entry after the last one and names
    /// it in a free bucket; the store of its key commits it. Only where that is the whole
    /// change: a store neither durable nor read-only, no lock held in this process, a dict or
    /// an object (not a set or cache), the key and the value scalars, each an inline word
    /// or one block (a str of more than 7 bytes, bytes, a float, a big int, a packed value:
    /// allocated inside the publication, named by journal `OP`, a value's after a key's by
    /// journal `VALUE`, until the entry commits),
    /// and room in the table (a growth replaces it: a part change). `Ok(false)`: nothing was
    /// changed (the key is there after all, no room, a claim held too long, a section): the
    /// caller runs the change on the dict's part. `hint` becomes the new entry's index.
    pub fn publish_dict_insert(
        &mut self,
        c: Container,
        key: &Key,
        hint: &mut u64,
        value: Inserted<'_, '_>,
    ) -> Result<bool> {
        if matches!(value, Inserted::Word(w) if w == value::EMPTY) {
            return Ok(false);
        }
        Ok(self.publish_insert(c, Kind::Dict, key, hint, value)? == Some(true))
    }

    /// Adds member `key` to set `c` with no part taken (FORMAT.md §10.9, "Inserts"): the insert
    /// of [`Store::publish_dict_insert`] with an empty value word, where the member is an
    /// inline word or a scalar's one block. `Ok(Some(added))`: done (`false`: it was a member
    /// already, as a look under the claim found: nothing changed); `Ok(None)`: nothing was
    /// changed, and the caller runs the add on the set's part.
    pub fn publish_set_add(
        &mut self,
        c: Container,
        key: &Key,
        hint: &mut u64,
    ) -> Result<Option<bool>> {
        self.publish_insert(c, Kind::Set, key, hint, Inserted::Word(value::EMPTY))
    }

    /// The insert publication of a dict's key (`kind` Dict) or a set's member (`kind` Set, its
    /// value the empty word). `Ok(Some(true))`: inserted; `Ok(Some(false))`: the key is there,
    /// as the look under the claim found (only a set's add reports it: nothing to change);
    /// `Ok(None)`: not published.
    fn publish_insert(
        &mut self,
        c: Container,
        kind: Kind,
        key: &Key,
        hint: &mut u64,
        value: Inserted<'_, '_>,
    ) -> Result<Option<bool>> {
        // A key that is not inline must be a scalar's one block (not a tuple or frozenset).
        let key_block = match (key.inline, key.tree) {
            (Some(_), _) => false,
            (None, Some((kt, node)))
                if !matches!(kt.node(node), Node::Tuple(_) | Node::FrozenSet(_)) =>
            {
                true
            }
            _ => return Ok(None),
        };
        let value_block = match value {
            Inserted::Word(w) => {
                if value::is_block(w) {
                    return Ok(None);
                }
                false
            }
            Inserted::Scalar(node) => value::inline_word(node).is_none(),
        };
        if !self.may_publish(c, |k| same_table(kind, k))? {
            return Ok(None);
        }
        let cg = c.get();
        // A look before the announcement, which only decides whether to try (a part change of
        // another process may be replacing the table under it): a dict's key that is there is
        // the change path's to replace (and a block value is not allocated twice), and a table
        // without room grows on its part. A set's member that is there is looked at again under
        // the claim, where the answer holds (an add that changes nothing).
        // Ok(Some(seen)): try, the key seen there or not.
        let look = self.dict_parts(cg).and_then(|d| {
            if d.table == 0 {
                return Ok(None);
            }
            Ok(match self.find(&d, key)? {
                Some(_) => (kind == Kind::Set).then_some(true),
                None => (d.nentries < d.cap).then_some(false),
            })
        });
        let Ok(Some(seen)) = look else {
            return Ok(None);
        };
        let version = cg + container::VERSION;
        let parts = self.parts(0)?;
        if parts.enter_publish(version, &KERNEL)?.is_err() {
            return Ok(None);
        }
        // A set's member seen there is only looked at again: its block (if it needs one) is
        // not taken, and the look under the claim finds it there, or leaves the add to the
        // part path (`ONLY_LOOK`).
        if seen && key_block {
            let found = self.claim_and_insert(&parts, cg, key, ONLY_LOOK, 0, hint, NOT_JOURNALED);
            parts.end_publish(version, false, &KERNEL)?;
            return found;
        }
        // A block is taken and written only now, past the gate, as an append's (a gc waits for
        // this publication). A kill from here on leaves it named by journal `OP` (a value's
        // block after a key's: journal `VALUE`), linked iff a live entry of the dict holds it.
        self.unlogged_alloc = Some(0);
        self.unlogged_second = (key_block && value_block).then_some(0);
        let words = self.encode_key(key).and_then(|kw| {
            Ok((
                kw,
                match value {
                    Inserted::Word(w) => w,
                    Inserted::Scalar(node) => self.encode_scalar(node)?,
                },
            ))
        });
        let block = self.unlogged_alloc.take().unwrap_or(0);
        let second = self.unlogged_second.take().unwrap_or(0);
        // Encoding changed this store: the parts are made again.
        let parts = self.parts(0)?;
        let (kw, w) = match words {
            Ok(words) => words,
            Err(e) => {
                self.give_back_unlinked(block);
                self.give_back_in(journals::VALUE, second);
                parts.end_publish(version, false, &KERNEL)?;
                return Err(e);
            }
        };
        if block != 0 {
            self.maybe_die(AppendDeath::Taken);
        }
        let journaled = [(block != 0, journals::OP), (second != 0, journals::VALUE)];
        let inserted = self.claim_and_insert(&parts, cg, key, kw, w, hint, journaled);
        let changed = matches!(inserted, Ok(Some(true)));
        if !changed {
            self.give_back_unlinked(block);
            self.give_back_in(journals::VALUE, second);
        }
        parts.end_publish(version, changed, &KERNEL)?;
        if changed {
            self.changed = true;
        }
        match inserted {
            // Only a set's add reports a member found there (a dict's key is the change path's
            // to replace).
            Ok(Some(false)) if kind != Kind::Set => Ok(None),
            r => r,
        }
    }

    /// Insert steps under the announcement (FORMAT.md §10.9, "Inserts"): the dict's entries
    /// claimed, the key looked up (the table cannot move: part takers wait for us, and other
    /// inserters for the claim), the entry written and committed, the claim ended. With `kw`
    /// [`ONLY_LOOK`], only the look: `Some(false)` if the key is there, else `None`.
    #[allow(clippy::too_many_arguments)]
    fn claim_and_insert(
        &self,
        parts: &Parts<'_, Mapping>,
        c: u64,
        key: &Key,
        kw: u64,
        w: u64,
        hint: &mut u64,
        journaled: [(bool, u64); 2],
    ) -> Result<Option<bool>> {
        let claim_at = c + dict_header::INSERT_CLAIM;
        if !self.claim_entries(parts, claim_at)? {
            return Ok(None);
        }
        // Ok(Err(present)): no insert (the key is there, or no room).
        let found = (|| {
            let d = self.dict_parts(c)?;
            if d.table == 0 {
                return Ok(Err(false));
            }
            if let Some((_, e)) = self.find(&d, key)? {
                *hint = e;
                return Ok(Err(true));
            }
            if d.nentries >= d.cap || kw == ONLY_LOOK {
                return Ok(Err(false));
            }
            Ok(Ok((d, self.free_bucket(&d, key.hash)?)))
        })();
        let (d, bucket) = match found {
            Ok(Ok(f)) => f,
            Ok(Err(present)) => {
                parts.unclaim_insert(claim_at)?;
                return Ok(present.then_some(false));
            }
            Err(e) => {
                parts.unclaim_insert(claim_at)?;
                return Err(e);
            }
        };
        self.maybe_die(AppendDeath::Claimed);
        let words = d.words(c);
        let n = d.nentries;
        let me = Some(self.part.slot());
        let committed = parts
            .insert_entry_stage(words, n, bucket, key.hash, w)
            .and_then(|()| {
                self.maybe_die(AppendDeath::InsertStaged);
                parts.insert_entry_commit(words, n, kw)
            });
        if let Err(e) = committed {
            // A vanished page before the commit: the entry is not in the dict; what was written
            // is settled (the claim is ours), and the caller gives a block back.
            let _ = crate::part_lock::settle_insert_claim(self.mem(), words, me);
            return Err(e.into());
        }
        self.maybe_die(AppendDeath::InsertCommitted);
        *hint = n;
        // Committed: the entry holds its blocks now, and nothing below gives them back. Their
        // journals are settled (a recovery of ours would find them linked all the same: a live
        // entry holds them). A failure past the commit leaves the claim settled; the page that
        // vanished is reported by the next access that needs it.
        let settled = journaled
            .iter()
            .all(|&(named, j)| !named || self.part.heap().settle(j).is_ok());
        if !settled || parts.insert_entry_finish(words, d.used).is_err() {
            let _ = crate::part_lock::settle_insert_claim(self.mem(), words, me);
        }
        Ok(Some(true))
    }

    /// Takes dict `c`'s insert claim at `claim_at`, waiting a bounded time while another
    /// insert or delete holds it for its few stores; `false`: not taken (a dead claimant, or a
    /// claim left with its lock file, is the part path's).
    fn claim_entries(&self, parts: &Parts<'_, Mapping>, claim_at: u64) -> Result<bool> {
        let mut spins = 0;
        loop {
            match parts.claim_insert(claim_at)? {
                Ok(()) => return Ok(true),
                Err(now) => {
                    if !spin_until_changed(self.mem().word(claim_at)?, now, &mut spins) {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Removes member `key` from set `c` with no part taken (FORMAT.md §10.9, "Deletes"): a
    /// publication under the set's part that takes its insert claim, looks the member up, and
    /// empties its entry's key word (the commit point), then marks the entry's bucket deleted
    /// and counts it out of `used`. Only where that is the whole change: a store neither
    /// durable nor read-only, no lock held in this process, and a member that is an inline
    /// word (a small int, None, a bool, a str of up to 7 bytes), whose removal frees nothing,
    /// and that a look before the announcement finds in the set. `Ok(Some(removed))`: done
    /// (`false`: no member, as the look under the claim found); `Ok(None)`: nothing was
    /// changed, and the caller runs the removal on the set's part.
    pub fn publish_set_discard(&mut self, c: Container, key: &Key) -> Result<Option<bool>> {
        Ok(self
            .publish_delete(c, Kind::Set, key)?
            .map(|removed| removed.is_some()))
    }

    /// Deletes key `key` of dict `c` with no part taken (FORMAT.md §10.9, "Deletes"): the
    /// delete of [`Store::publish_set_discard`], whose commit point is the entry's value word
    /// emptied by CAS (a value publication that comes after finds the word empty and runs on
    /// the dict's part, which waits for this delete), then its key word emptied. Only where
    /// that is the whole change: a dict or an object (not a cache), and a key and value
    /// that are inline words (nothing to free). `Ok(Some(Some(w)))`: deleted, its value was
    /// `w`; `Ok(Some(None))`: no such key, as the look under the claim found; `Ok(None)`:
    /// nothing was changed, and the caller runs the delete on the dict's part.
    pub fn publish_dict_delete(&mut self, c: Container, key: &Key) -> Result<Option<Option<u64>>> {
        self.publish_delete(c, Kind::Dict, key)
    }

    /// The delete publication of a set's member (`kind` Set) or a dict's key (`kind` Dict).
    fn publish_delete(
        &mut self,
        c: Container,
        kind: Kind,
        key: &Key,
    ) -> Result<Option<Option<u64>>> {
        if key.inline.is_none() || !self.may_publish(c, |k| same_table(kind, k))? {
            return Ok(None);
        }
        let cg = c.get();
        // A look before the announcement, which only decides whether to try (a part change of
        // another process may be moving the table under it): a key not seen there is left to
        // the part path, which answers for sure at what a removal of nothing cost before, and
        // so is a dict's key whose value is not an inline word (a block to free).
        let seen = self.dict_parts(cg).and_then(|d| {
            if d.table == 0 {
                return Ok(false);
            }
            let Some((_, e)) = self.find(&d, key)? else {
                return Ok(false);
            };
            Ok(kind == Kind::Set || value::is_inline(self.entry(&d, e)?.2))
        });
        if !matches!(seen, Ok(true)) {
            return Ok(None);
        }
        let version = cg + container::VERSION;
        let parts = self.parts(0)?;
        if parts.enter_publish(version, &KERNEL)?.is_err() {
            return Ok(None);
        }
        let removed = self.claim_and_delete(&parts, cg, kind, key);
        let changed = matches!(removed, Ok(Some(Some(_))));
        parts.end_publish(version, changed, &KERNEL)?;
        if changed {
            self.changed = true;
        }
        removed
    }

    /// Delete steps under the announcement (FORMAT.md §10.9, "Deletes"): the entries claimed,
    /// the key looked up (the table cannot move: part takers wait for us, and inserters and
    /// other deleters for the claim); a dict's value word emptied (its commit point, after the
    /// claim names the entry); the key word emptied (a set's commit point), the bucket marked
    /// deleted, `used` moved, the claim ended. Key and value are inline words: nothing to
    /// free. `Some(Some(value))`: deleted (a set's value is the empty word); `Some(None)`: no
    /// such key; `None`: left to the part path.
    fn claim_and_delete(
        &self,
        parts: &Parts<'_, Mapping>,
        c: u64,
        kind: Kind,
        key: &Key,
    ) -> Result<Option<Option<u64>>> {
        let claim_at = c + dict_header::INSERT_CLAIM;
        if !self.claim_entries(parts, claim_at)? {
            return Ok(None);
        }
        // Ok(Ok(None)): no such key; Ok(Ok(Some(..))): its bucket, entry and value;
        // Ok(Err(())): left to the part path: a set's entry with a value word (damage, which
        // the part path refuses), a dict's whose value is a block (to free) or empty (damage).
        let found = (|| {
            let d = self.dict_parts(c)?;
            let Some((b, e)) = self.find(&d, key)? else {
                return Ok(Ok(None));
            };
            let v = self.entry(&d, e)?.2;
            let deletable = match kind {
                Kind::Set => v == value::EMPTY,
                _ => value::is_inline(v),
            };
            if !deletable {
                return Ok(Err(()));
            }
            Ok(Ok(Some((d, b, e, v))))
        })();
        let (d, b, e, mut v) = match found {
            Ok(Ok(Some(f))) => f,
            Ok(Ok(None)) => {
                parts.unclaim_insert(claim_at)?;
                return Ok(Some(None));
            }
            Ok(Err(())) => {
                parts.unclaim_insert(claim_at)?;
                return Ok(None);
            }
            Err(e) => {
                parts.unclaim_insert(claim_at)?;
                return Err(e);
            }
        };
        self.maybe_die(AppendDeath::Claimed);
        let words = d.words(c);
        let me = Some(self.part.slot());
        // A dict's commit point: the value word emptied, from the value a value publication
        // (which takes no claim) may still replace with another inline word. A vanished page is
        // settled as a dead deleter's would be (the claim is ours): the entry stays iff its
        // value does.
        // Ok(false): a value word that no value publication leaves (damage): the delete is
        // left to the part path.
        let committed = (|| -> std::result::Result<bool, crate::sync::AccessError> {
            if kind == Kind::Set {
                parts.delete_entry_commit(words, e)?;
                return Ok(true);
            }
            parts.delete_claim_entry(words, e)?;
            loop {
                match parts.delete_value_commit(words, e, v)? {
                    Ok(()) => break,
                    Err(now) if value::is_inline(now) => v = now,
                    Err(_) => return Ok(false),
                }
            }
            self.maybe_die(AppendDeath::DeleteSealed);
            parts.delete_entry_commit(words, e)?;
            Ok(true)
        })();
        match committed {
            Ok(true) => {}
            Ok(false) => {
                crate::part_lock::settle_insert_claim(self.mem(), words, me)?;
                return Ok(None);
            }
            Err(err) => {
                let _ = crate::part_lock::settle_insert_claim(self.mem(), words, me);
                return Err(err.into());
            }
        }
        self.maybe_die(AppendDeath::DeleteCommitted);
        if parts.delete_entry_finish(words, b, e, d.used).is_err() {
            let _ = crate::part_lock::settle_insert_claim(self.mem(), words, me);
        }
        // A set's value is the empty word (checked above).
        Ok(Some(Some(v)))
    }

    /// Appends inline word `w` to list `c` with no part taken (FORMAT.md §10.9, "Appends"): a
    /// publication under the list's part that claims the list's tail by CAS on its `len` word,
    /// stores the item after the last one and moves `len` on. Only where that is the whole
    /// change: a store neither durable nor read-only, no lock held in this process, and room
    /// in the items block after the last item (a growth replaces the block: a part change).
    /// `Ok(false)`: nothing was changed; the caller runs the append on the list's part (which
    /// waits for whatever was in the way here).
    pub fn publish_list_append(&mut self, c: Container, w: u64) -> Result<bool> {
        self.publish_list_extend(c, &[w])
    }

    /// As [`Store::publish_list_append`], for several inline words at once (`l.extend(ws)`):
    /// one claim, the items stored in order, one move of `len`; all or nothing.
    pub fn publish_list_extend(&mut self, c: Container, ws: &[u64]) -> Result<bool> {
        if ws.is_empty() || !ws.iter().all(|&w| value::is_inline(w)) {
            return Ok(false);
        }
        self.append_published(c, Appended::Words(ws))
    }

    /// As [`Store::publish_list_append`], for a scalar that is not an inline word (a str of
    /// more than 7 bytes, bytes, a float, a big int, a datetime...): its one block is
    /// allocated and written inside the publication, named by the `OP` journal alone until the
    /// item links it (a dead appender's recovery frees it unless its list holds it).
    pub fn publish_list_append_scalar(&mut self, c: Container, node: &Node) -> Result<bool> {
        match value::inline_word(node) {
            Some(w) => self.publish_list_append(c, w),
            None => self.append_published(c, Appended::Block(OneBlock::Scalar(node))),
        }
    }

    /// As [`Store::publish_list_append_scalar`], for a tuple whose items are the inline words
    /// `items` (at most [`FLAT_TUPLE_MAX`]): one block with no references, as a str's is.
    pub fn publish_list_append_tuple(&mut self, c: Container, items: &[u64]) -> Result<bool> {
        if items.len() as u64 > FLAT_TUPLE_MAX || !items.iter().all(|&w| value::is_inline(w)) {
            return Ok(false);
        }
        self.append_published(c, Appended::Block(OneBlock::Tuple(items)))
    }

    fn append_published(&mut self, c: Container, item: Appended<'_, '_>) -> Result<bool> {
        if !self.may_publish(c, |k| k == Kind::List)? {
            return Ok(false);
        }
        let cg = c.get();
        // A look before the announcement, which only decides whether to try (a part change of
        // another process may be replacing the items block under it): a list without room
        // after its last item grows on its part, and pays no announcement first.
        let need = match item {
            Appended::Words(ws) => ws.len() as u64,
            Appended::Block(_) => 1,
        };
        match self.list_parts(cg) {
            Ok(p) if p.items != 0 && need <= p.cap - p.start - p.len => {}
            _ => return Ok(false),
        }
        let version = cg + container::VERSION;
        let parts = self.parts(0)?;
        if parts.enter_publish(version, &KERNEL)?.is_err() {
            return Ok(false);
        }
        // A block is taken and written only now, past the gate: a gc (a section) waits for
        // this publication, so it never walks the allocator while we take the block, nor
        // sweeps a block of ours that a recovery frees too. A kill from here on leaves the
        // block named by journal `OP`, linked iff the list holds it.
        let mut one = [0];
        let (ws, block, parts): (&[u64], u64, _) = match item {
            Appended::Words(ws) => (ws, 0, parts),
            // Encoding changes this store: the parts are made again after it.
            Appended::Block(fresh) => {
                self.unlogged_alloc = Some(0);
                let w = match fresh {
                    OneBlock::Scalar(node) => self.encode_scalar(node),
                    OneBlock::Tuple(items) => self.encode_tuple_of(items),
                };
                let block = self.unlogged_alloc.take().unwrap_or(0);
                match w {
                    Ok(w) => {
                        one[0] = w;
                        (&one, block, self.parts(0)?)
                    }
                    Err(e) => {
                        self.give_back_unlinked(block);
                        self.parts(0)?.end_publish(version, false, &KERNEL)?;
                        return Err(e);
                    }
                }
            }
        };
        if block != 0 {
            self.maybe_die(AppendDeath::Taken);
        }
        let appended = self.claim_and_fill(&parts, cg, ws, block != 0);
        if block != 0 {
            if matches!(appended, Ok(true)) {
                self.maybe_die(AppendDeath::Linked);
                // Linked: the list holds it now. The claim, which still stands (for the list
                // with the item), ends only after the journal is settled: a pop without a
                // lock could otherwise take the item and free its block while a recovery of
                // ours, finding the journal and the list without the block, frees it again.
                let settled = self.part.heap().settle(super::journals::OP);
                let unclaimed = parts.unclaim_tail(cg + list_header::LEN);
                if let Err(e) = settled {
                    let _ = parts.end_publish(version, true, &KERNEL);
                    return Err(e.into());
                }
                if let Err(e) = unclaimed {
                    let _ = parts.end_publish(version, true, &KERNEL);
                    return Err(e.into());
                }
            } else {
                self.give_back_unlinked(block);
            }
        }
        let changed = matches!(appended, Ok(true));
        parts.end_publish(version, changed, &KERNEL)?;
        if changed {
            self.changed = true;
            self.list_grew = true;
        }
        appended
    }

    /// Takes the first item (`front`) or the last of list `c` with no part taken (FORMAT.md
    /// §10.9, "Pops"): a publication under the list's part that claims the list's tail, as an
    /// append does, and commits the pop under the claim. Only where that is the whole change:
    /// a store neither durable nor read-only, no lock held in this process, and the item an
    /// inline word or a scalar's one block (a str of more than 7 bytes, bytes, a float, a big
    /// int, a packed value: freeing it is the whole release). `decode` reads the item once it is
    /// this participant's own (for a block: before the block is freed, and the publication
    /// ended after that). `Ok(Some(_))`: the item taken and decoded; `Ok(None)`: nothing was changed (an
    /// empty list, an item with references, a claim held too long, a section): the caller
    /// runs the pop on the list's part.
    pub fn publish_list_pop<R>(
        &mut self,
        c: Container,
        front: bool,
        decode: impl FnOnce(&mut Store, u64) -> R,
    ) -> Result<Option<R>> {
        if !self.may_publish(c, |k| k == Kind::List)? {
            return Ok(None);
        }
        let cg = c.get();
        // A look before the announcement: an empty list, or an item with references, is not
        // published (the part path raises, waits, or releases them). A part change of another
        // process may be changing the list under it, and a pop freeing the item it reads, so it
        // only decides whether to try: what it cannot read sends the pop to the part path,
        // which reports real damage.
        let look = self.list_parts(cg).and_then(|p| {
            if p.len == 0 {
                return Ok(false);
            }
            let w = self.get(p.slot(if front { 0 } else { p.len - 1 }))?;
            self.poppable(w)
        });
        if !matches!(look, Ok(true)) {
            return Ok(None);
        }
        let version = cg + container::VERSION;
        let parts = self.parts(0)?;
        if parts.enter_publish(version, &KERNEL)?.is_err() {
            return Ok(None);
        }
        let taken = self.claim_and_pop(&parts, cg, front);
        let w = match taken {
            Ok(Some(w)) => w,
            Ok(None) => {
                parts.end_publish(version, false, &KERNEL)?;
                return Ok(None);
            }
            Err(e) => {
                let _ = parts.end_publish(version, false, &KERNEL);
                return Err(e);
            }
        };
        if !value::is_block(w) {
            parts.end_publish(version, true, &KERNEL)?;
            self.changed = true;
            return Ok(Some(decode(self, w)));
        }
        // A block item is this participant's now, named by journal `OP` (a recovery of ours
        // frees it, the list no longer holding it). It is read and given back before the
        // publication ends: gc, a section, waits for publications, and could otherwise sweep
        // the block between the journal's settling and the free, which would then free it a
        // second time.
        self.maybe_die(AppendDeath::PopTaken);
        let r = decode(self, w);
        self.give_back_unlinked(w);
        self.parts(0)?.end_publish(version, true, &KERNEL)?;
        self.changed = true;
        Ok(Some(r))
    }

    /// Whether a pop publication may take item `w`: an inline word, or a block that is a
    /// value's whole (a scalar's, or a tuple's of inline words: freed, not released). Empty
    /// item words and blocks with references (other tuples, containers) go to the part path.
    fn poppable(&self, w: u64) -> Result<bool> {
        if w == value::EMPTY {
            return Ok(false);
        }
        if !value::is_block(w) {
            return Ok(true);
        }
        match value::head_kind(self.get(w)?) {
            Some(k) if is_one_block(k) => Ok(true),
            Some(Kind::Tuple) => self.is_flat_tuple(w),
            _ => Ok(false),
        }
    }

    /// Whether block `w` (a tuple) holds at most [`FLAT_TUPLE_MAX`] items, all inline words:
    /// then it is one block with no references, freed whole.
    fn is_flat_tuple(&self, w: u64) -> Result<bool> {
        let super::view::Value::Tuple { block, len } = self.value(w)? else {
            return Ok(false);
        };
        if len > FLAT_TUPLE_MAX {
            return Ok(false);
        }
        for i in 0..len {
            let item = self.tuple_item(block, i)?;
            if !value::is_inline(item) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Pop steps under the announcement (FORMAT.md §10.9, "Pops"): the tail claimed, the list
    /// read under the claim, the item checked (a block named by journal `OP`, before the
    /// commit point), the pop committed.
    fn claim_and_pop(
        &self,
        parts: &Parts<'_, Mapping>,
        c: u64,
        front: bool,
    ) -> Result<Option<u64>> {
        let len_at = c + list_header::LEN;
        // An empty list is not claimed: the part path raises or waits.
        let Some(word) = self.claim_list_tail(parts, len_at, |len| len > 0)? else {
            return Ok(None);
        };
        let p = match self.list_parts(c) {
            Ok(p) if p.items != 0 && p.len == word => p,
            Ok(_) => {
                parts.unclaim_tail(len_at)?;
                return Ok(None);
            }
            Err(e) => {
                parts.unclaim_tail(len_at)?;
                return Err(e);
            }
        };
        let at = p.slot(if front { 0 } else { p.len - 1 });
        let w = match self.get(at).and_then(|w| Ok((w, self.poppable(w)?))) {
            Ok((w, true)) => w,
            Ok((_, false)) => {
                parts.unclaim_tail(len_at)?;
                return Ok(None);
            }
            Err(e) => {
                parts.unclaim_tail(len_at)?;
                return Err(e);
            }
        };
        let block = value::is_block(w);
        if block {
            // Named before the commit point: a recovery then frees it iff the list no longer
            // holds it (the journal rule of appends, recovery.rs `appended_by_dead`).
            let heap = self.part.heap();
            if let Err(e) =
                heap.journal_owned(super::journals::OP, crate::heap::Block::from_word(w))
            {
                parts.unclaim_tail(len_at)?;
                return Err(e.into());
            }
            self.maybe_die(AppendDeath::PopJournaled);
        }
        let words = crate::part_lock::ListWords {
            len: len_at,
            start: c + list_header::START,
            item0: super::layout::list_items::item(p.items, 0),
            cap: p.cap,
        };
        let committed = if front {
            parts.pop_front_commit(words, p.start)
        } else {
            parts.pop_back(len_at, word)
        };
        if let Err(e) = committed {
            // Not committed: the journal is settled while `active` still names the list (a
            // recovery would otherwise take the block the list holds for unlinked).
            if block {
                self.part.heap().settle(super::journals::OP)?;
            }
            parts.unclaim_tail(len_at)?;
            return Err(e.into());
        }
        // Past the commit point the item is taken; a step that fails here (a vanished page)
        // leaves the rest to a recoverer of this participant or to the next change
        // (`list_parts_mut`), and a block to gc.
        if front {
            self.maybe_die(AppendDeath::PopCommitted);
            parts.pop_front_mark(words, word)?;
            self.maybe_die(AppendDeath::PopMarked);
            parts.pop_front_finish(words, word, p.start)?;
        }
        Ok(Some(w))
    }

    /// Gives back a block that journal `OP` names as taken and no word links (0: none), and
    /// settles the journal (`Heap::free_journaled`: a kill in between leaks nothing when the
    /// block goes to the cache, and at most the block to gc otherwise).
    fn give_back_unlinked(&self, block: u64) {
        self.give_back_in(journals::OP, block);
    }

    /// As [`Store::give_back_unlinked`], for a block that journal `j` names.
    fn give_back_in(&self, j: u64, block: u64) {
        if block == 0 {
            return;
        }
        let heap = self.part.heap();
        let _ = heap.free_journaled(j, crate::heap::Block::from_word(block));
    }

    /// Claims the tail of the list whose `len` word is at `len_at` (FORMAT.md §10.9, "Appends"
    /// steps 3 and 4), announced under its part: `Some(n)`, the length claimed. `None`: the
    /// length seen is not one `wanted` accepts, or another claimant kept the tail longer than
    /// a spin (it may be stalled or dead: then the part path, which waits for it or recovers
    /// it).
    fn claim_list_tail(
        &self,
        parts: &Parts<'_, Mapping>,
        len_at: u64,
        wanted: impl Fn(u64) -> bool,
    ) -> Result<Option<u64>> {
        let mut spins = 0;
        loop {
            let word = self.get(len_at)?;
            if tail_claimant(word).is_some() {
                if spin_until_changed(self.mem().word(len_at)?, word, &mut spins) {
                    continue;
                }
                return Ok(None);
            }
            if !wanted(word) {
                return Ok(None);
            }
            if parts.claim_tail(len_at, word)?.is_ok() {
                self.maybe_die(AppendDeath::Claimed);
                return Ok(Some(word));
            }
        }
    }

    /// Append steps 3 to 6 (FORMAT.md §10.9, "Appends"), announced under list `c`'s part:
    /// claims the tail, stores `ws` after the last item, moves `len` on. `Ok(false)`: no room,
    /// or another appender kept the tail claimed longer than a spin.
    fn claim_and_fill(
        &self,
        parts: &Parts<'_, Mapping>,
        c: u64,
        ws: &[u64],
        keep_claim: bool,
    ) -> Result<bool> {
        let len_at = c + list_header::LEN;
        let n = ws.len() as u64;
        let Some(word) = self.claim_list_tail(parts, len_at, |_| true)? else {
            return Ok(false);
        };
        // Read under the claim: the items block, `start` and `cap` cannot move now (a part
        // taker waits for us before it reads or writes under the part, and every other
        // change of the list's words is a claimant's or a part holder's).
        let room = match self.list_parts(c) {
            Ok(p) if p.items != 0 && p.len == word && n <= p.cap - p.start - p.len => Ok(p),
            Ok(_) => Err(None),
            Err(e) => Err(Some(e)),
        };
        let p = match room {
            Ok(p) => p,
            Err(e) => {
                parts.unclaim_tail(len_at)?;
                return e.map_or(Ok(false), Err);
            }
        };
        let filled = if keep_claim {
            parts.fill_tail_held(len_at, word, p.slot(word), ws)
        } else {
            parts.fill_tail_with(len_at, word, p.slot(word), ws)
        };
        if let Err(e) = filled {
            let _ = parts.unclaim_tail(len_at);
            return Err(e.into());
        }
        Ok(true)
    }

    /// After taking the part whose version word is at `offset`: waits until no other
    /// participant publishes under it, holding the part (spinning first; then sleeping on the
    /// publisher's `active` word inside the step, which recovers a dead publisher every few
    /// waits). Letting go of the part instead would release its version before the
    /// publication's value, whose own version bump gave up on the held word (the loom model
    /// `a_version_names_one_state` caught that): a reader could then keep the old value with
    /// the final version.
    fn wait_publishers(&mut self, offset: u64) -> Result<()> {
        let mut waits = 0;
        let mut spins = 0;
        loop {
            // SeqCst fence before `slots high` (as `drain_gate`): a participant that attached
            // and published with its fence before ours raised it before, and the scan covers
            // its slot (`publisher_of` fences again for the handshake on the part word).
            fence(Ordering::SeqCst);
            let high = self.slots_high();
            let parts = self.parts(high)?;
            let Some((slot, word)) = parts.publisher_of(offset)? else {
                return Ok(());
            };
            // `publisher_of` fences and loads again after the spin.
            if !spin_until_changed(parts.active_word(slot)?, word, &mut spins) {
                self.wait_internal(Busy::Active { slot, word }, &mut waits)?;
            }
        }
    }

    /// Ends the single change begun by `begin_part`: commits its log (or rolls it back),
    /// releases the part, performs the deferred frees (the release cursor's, as `commit_log`),
    /// leaves the gate.
    pub fn end_part(&mut self, commit: bool) -> Result<()> {
        let Some(held) = self.part_change else {
            return Ok(());
        };
        // Still on the part for the commit: its releases may refuse (more than a part change
        // runs before its commit point), and then it is undone and runs again store-wide.
        let ended = if commit {
            self.part_commit()
        } else {
            self.rollback_to(0).map(|()| (None, Vec::new()))
        };
        self.part_change = None;
        // Committed or rolled back: the orphans it pushed are let go of (an orphan left with no
        // holder is for the caller to collect). A failed unhold (a vanished mapping, which the
        // caller's intact check reports) must not keep the part from being released.
        for c in std::mem::take(&mut self.pushed_on_part) {
            if self.held.unhold(&self.part, c).unwrap_or(false) {
                self.orphans_left = true;
            }
        }
        // Rolled back (asked for, or a commit that refused the part): the part is released
        // to its next version, which its store-wide rerun, if any, knows for its own.
        self.rolled_back_part = match ended {
            Ok(_) if commit => None,
            _ => Some(held),
        };
        if ended.is_err() {
            // A log that can be neither undone nor committed is damage (as in `end_op`): it is
            // dropped, so the part is released and nobody waits for it forever.
            self.log.abandon(&self.part);
        }
        let (frees, later) = match ended {
            Ok((frees, later)) if frees.is_some() || !later.is_empty() => (frees, later),
            ended => {
                // Nothing deferred: the part released and the gate left with one wake-up
                // check.
                self.parts(0)?.end(&[held], true, &KERNEL)?;
                return ended.map(|_| ());
            }
        };
        self.parts(0)?.end(&[held], false, &KERNEL)?;
        // The deferred frees while still past the gate (a section waits for them). A kill
        // here leaves the release cursor to the recoverer, as after a store-wide commit.
        let mut released = Ok(());
        if let Some(end) = frees {
            released = self.log.finish_frees(&self.part, end);
        }
        if released.is_ok() && !later.is_empty() {
            released = self.release_all(later);
        }
        self.parts(0)?.leave(&KERNEL)?;
        released
    }

    /// The commit of a single change on a part, as `commit_log` makes it but stopping at the
    /// commit point: the log's length for the release cursor's frees (if any), and the
    /// releases left for after it.
    fn part_commit(&mut self) -> Result<(Option<u64>, Vec<super::encode::Release>)> {
        if !self.log.has_releases() && !self.log.has_frees() {
            return Ok((self.log.commit(&self.part)?, Vec::new()));
        }
        // A part change's releases run whole before its commit point, still on the part: one
        // longer than the log allows there (more than `LOGGED_RELEASES_MOST` entries) runs
        // store-wide, where the rest runs after the commit point under the writer word.
        let released = self
            .release_in_change()
            .and_then(|later| match later.is_empty() {
                true => Ok(later),
                false => self.part_refuse().map(|()| later),
            });
        let later = match released {
            Ok(later) => later,
            Err(e) => {
                // Before the commit point: the change is undone, releases and all (a release
                // that refused the part runs again store-wide, unless the undo failed too).
                if let Err(undo) = self.rollback_to(0) {
                    self.part_fallback = false;
                    return Err(undo);
                }
                return Err(e);
            }
        };
        Ok((self.log.commit(&self.part)?, later))
    }

    /// Whether a single change let go of an orphan that nobody else holds (`end_part`): the
    /// caller should collect soon, as after a dropped proxy. Clears it.
    pub fn take_orphans_left(&mut self) -> bool {
        std::mem::take(&mut self.orphans_left)
    }

    /// Whether the single change in progress asked to run store-wide (`part_refuse`); clears
    /// the request.
    pub fn take_part_fallback(&mut self) -> bool {
        std::mem::take(&mut self.part_fallback)
    }

    /// Inside a single change on a part: refuses what one part does not cover (the caller
    /// rolls back and runs the change store-wide). Outside one: Ok.
    pub(super) fn part_refuse(&mut self) -> Result<()> {
        if self.part_change.is_none() {
            return Ok(());
        }
        self.part_fallback = true;
        Err(Error::Usage(
            "internal: a single change needs the store-wide path".into(),
        ))
    }

    /// Inside a single change on a part: refuses releasing `w` unless its release touches no
    /// other change's words: an owned leaf (str, bytes, int, float...), a tuple or frozenset
    /// of such, or a container tree that is this reference's alone (`part_drop_check`).
    pub(super) fn part_release_check(&mut self, w: u64) -> Result<()> {
        if self.part_change.is_none() || !value::is_block(w) {
            return Ok(());
        }
        if value::head_kind(self.get(w)?).is_some_and(is_one_block) {
            return Ok(());
        }
        self.part_drop_check(w)
    }

    /// Whether dropping value word `w` on a part frees only what no other change can reach
    /// (FORMAT.md §10.9, "Containers dropped on a part"): every container in its tree (at
    /// most `DROP_MOST_CONTAINERS`, `DROP_MOST_WORDS` words walked) a list, dict, object or
    /// set whose reference count is 1 and that is not on the orphan list. Its one reference
    /// is then the dropped word (or a word of a container so reached), which only this part
    /// reaches: no other change writes those counts (counts rise store-wide only, and fall on
    /// a part only from 1). Whether a process holds one is asked at its collection
    /// (`collect_container`). Else the change runs store-wide.
    fn part_drop_check(&mut self, w: u64) -> Result<()> {
        use super::view::Value;
        let mut work = vec![w];
        let (mut containers, mut words) = (0u32, 0u32);
        while let Some(w) = work.pop() {
            words += 1;
            if words > DROP_MOST_WORDS {
                return self.part_refuse();
            }
            if !value::is_block(w) {
                continue;
            }
            let v = self.value(w)?;
            match v {
                Value::Tuple { .. } | Value::FrozenSet { .. } => {}
                Value::List(c) | Value::Dict(c) | Value::Object(c) | Value::Set(c) => {
                    containers += 1;
                    let c = c.get();
                    if containers > DROP_MOST_CONTAINERS
                        || self.refcount(c)? != 1
                        || self.get(c)? & container::ORPHAN_FLAG != 0
                    {
                        return self.part_refuse();
                    }
                }
                Value::Cache(_) => return self.part_refuse(),
                _ => continue,
            }
            self.child_words(v, &mut work)?;
        }
        Ok(())
    }

    // ---- sections ---------------------------------------------------------------------------

    /// After the gate was closed (odd sequence, or this participant's shared hold counted):
    /// waits until every other participant's `active` is 0, recovering dead ones. `fenced`:
    /// the caller has issued a SeqCst fence since it closed the gate (`begin_change` does).
    pub(super) fn drain_gate(&mut self, fenced: bool) -> Result<()> {
        // SeqCst fence (unless the caller's is the one): the store that closed the gate is
        // ordered before the load of `slots high` (a participant raises it before it
        // announces a change: either we see it, or its change sees the gate closed).
        // `first_active` fences again before its loads.
        if !fenced {
            fence(Ordering::SeqCst);
        }
        let high = self.slots_high();
        if high <= 1 {
            return Ok(()); // no other participant ever attached
        }
        let mut from = 0;
        let mut waits = 0;
        loop {
            let first = self.parts(high)?.first_active(from)?;
            match first {
                None => return Ok(()),
                Some((slot, word)) => {
                    from = slot;
                    self.wait_internal(Busy::Active { slot, word }, &mut waits)?;
                }
            }
        }
    }

    // ---- readers ----------------------------------------------------------------------------

    /// Records the version of container `c` for the unlocked read in progress (every
    /// container header a read reaches comes through here). A held part makes the read busy.
    #[inline]
    pub(super) fn observe(&self, c: u64) {
        if !self.read_tracking.get() {
            return; // no read in progress, or parts off (every change's path)
        }
        if self.read_busy.get().is_some() {
            return;
        }
        let mut r = self.reads.borrow_mut();
        let offset = c + container::VERSION;
        // Acquire: pairs with the Release store that released the part (`Parts::end`, or a
        // recoverer's): what that change wrote is seen by the reads that follow.
        let v = match self.mem().load(offset, Ordering::Acquire) {
            Ok(v) => v,
            Err(_) => return, // the access that follows reports the bad offset
        };
        if v % 2 == 1 {
            self.read_busy.set(Some(Busy::Part { offset, word: v }));
            return;
        }
        if r.seen.len() < 16 && r.seen.iter().any(|&(o, _)| o == offset) {
            return;
        }
        r.seen.push((offset, v));
    }

    /// Starts recording for a read that begins now.
    #[inline]
    pub(super) fn parts_read_begin(&self) {
        self.read_busy.set(None);
        let on = self.parts_on();
        self.read_tracking.set(on);
        if on {
            self.reads.borrow_mut().seen.clear();
        }
    }

    /// The part the read found held, if any.
    #[inline]
    pub fn read_busy(&self) -> Option<Busy> {
        self.read_busy.get()
    }

    /// The read's part side of validation, after the caller's Acquire fence: every version
    /// unchanged, no part found held, and parts not turned on since a read that recorded none.
    #[inline]
    pub(super) fn parts_valid(&self) -> bool {
        if self.read_busy.get().is_some() {
            return false;
        }
        if !self.read_tracking.get() {
            // Acquire fence (the caller's) first: a read that saw a part change's write sees
            // `slots high` raised by that participant's attach.
            return !self.parts_on();
        }
        let r = self.reads.borrow();
        // A publication under a part the read observed may have written what it read without
        // having moved the version yet: the read waits for it (the scan comes before the
        // version loads: a publication seen ended has its version bump seen too).
        if !r.seen.is_empty() {
            let observed = |p: u64| r.seen.iter().any(|&(o, _)| o == p);
            let Ok(parts) = self.parts(self.slots_high()) else {
                return false;
            };
            match parts.publisher_in(observed) {
                Ok(None) => {}
                Ok(Some((slot, word))) => {
                    // A publication takes a few loads and a CAS: wait for it here, and try
                    // the read again (its version has moved by then). One that does not end
                    // (a publisher stopped or killed) is waited for outside the step, which
                    // recovers a dead one.
                    let ended = parts
                        .active_word(slot)
                        .is_ok_and(|a| spin_until_changed(a, word, &mut 0));
                    if !ended {
                        self.read_busy.set(Some(Busy::Active { slot, word }));
                    }
                    return false;
                }
                Err(_) => return false,
            }
        }
        let mem = self.mem();
        r.seen.iter().all(|&(offset, v)| {
            // Relaxed: ordered after the data loads by the caller's Acquire fence.
            mem.load(offset, Ordering::Relaxed).ok() == Some(v)
        })
    }

    /// Whether part word value `word` names this participant while it holds no part: only a
    /// forged word does, and only this process can tell.
    pub(super) fn part_forged_me(&self, word: u64) -> bool {
        self.part_change.is_none() && holder(word) == Some(self.part.lock().me())
    }
}

/// Whether a value of kind `k` is one block with no references (a str, bytes, a big int, a
/// float, a packed value: datetime, date, time, timedelta, Decimal, UUID), so that freeing
/// that block is its whole release.
/// Whether a container of kind `k` takes the insert and delete publications asked for as
/// `asked` (Dict or Set): an object's attributes are a dict's entries (a cache's are not: its
/// entries carry expiry times).
fn same_table(asked: Kind, k: Kind) -> bool {
    k == asked || (asked == Kind::Dict && k == Kind::Object)
}

fn is_one_block(k: Kind) -> bool {
    matches!(k, Kind::Str | Kind::Bytes | Kind::BigInt | Kind::Float) || super::packed::is_packed(k)
}
