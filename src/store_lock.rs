//! The store lock's word protocol: who may change the store (the *writer word*), how unlocked
//! readers see each change whole (the *sequence word*, a seqlock), how a change is undone (the
//! undo log's word entries), and how the lock passes on when its owner dies.
//!
//! Problem. Changes are serialized by one lock word, and reads take no lock at all, so a reader
//! may run while a writer changes the very words it reads. Any process may be SIGKILLed at any
//! instant, including while it owns the lock half-way through a change: the next process must
//! undo that change and free the lock, and no reader may have kept a value of the change that
//! was undone.
//!
//! Mechanism. Three words in the lock file (FORMAT.md §10.4) and one undo log per participant
//! in the store file (§10.3):
//!
//! | word | values | written by |
//! |---|---|---|
//! | writer | 0 = free, else the owner's id `(generation & 0xffff) << 16 \| (slot + 1)` | a taker (CAS 0 -> id); its owner (-> 0); the recoverer of a dead owner (CAS id -> 0) |
//! | sequence | odd while a change is in flight | the writer word's owner, or the recoverer of a dead one |
//! | waiters | threads sleeping on a lock word | the waiters (the object layer's `Waiter`) |
//! | undo `len` | entries to undo | its participant; a recoverer shrinks it |
//!
//! What a writer killed at each stage of a change leaves, and what recovery does about it:
//!
//! | stage | writer | sequence | log len | recovery |
//! |---|---|---|---|---|
//! | before `try_take` | 0 | even | 0 | nothing |
//! | taken | owner | even | 0 | frees the writer word |
//! | in flight | owner | odd | n | undoes the n entries newest first, makes the sequence even, frees the word |
//! | committed | owner | odd | 0 | makes the sequence even, frees the word (the change stays) |
//! | freeing (cursor `end, done`) | owner | odd | 0 | frees the change's free-block entries from `done` to `end`, then as above |
//! | ended | owner or 0 | even | 0 | frees the writer word if it is still the dead owner's |
//!
//! Invariants: the sequence is odd only while the writer word is held (by a live owner, or by a
//! dead one until its recovery); an undo log is non-empty only while its participant holds the
//! writer word; every data word a change stores was logged (offset, old value) before the store.
//! A reader keeps what it read only if the sequence was even and the same before and after its
//! reads, so it never keeps a value of a change in flight, and only changes in flight are ever
//! rolled back. The reader side and the writer's fence follow Boehm, "Can seqlocks get along
//! with programming language memory models?" (MSPC 2012).
//!
//! The object layer (`object/lock.rs`, `object/recovery.rs`, and the undo log's append, commit
//! and rollback in `object/undo.rs`) runs this module on the mapped lock and store files;
//! `loom-tests/tests/store_lock.rs` runs it on loom atomics and kills the writer
//! and the recoverer between any two of their word accesses (`loom-tests/tests/committed_frees.rs`
//! does the same for a committed change's frees and the release cursor that finishes them). So every access a kill may precede
//! calls [`WordStore::step`] first (a no-op on the mapping). Readers make no such call: a reader
//! holds nothing, and killing one proves nothing.
//!
//! Sleeping and waking. A thread that finds a lock word in its way sleeps on it in the kernel
//! ([`Futex`]) until the word changes; the *waiters* word counts such sleepers, so that a
//! releaser pays for a wake-up only when somebody may sleep. The two sides, and the two SeqCst
//! fences that pair them (Dekker's handshake):
//!
//! | waiter ([`StoreLock::sleep`]) | releaser ([`StoreLock::release_and_wake`], [`StoreLock::end_change_and_wake`], [`StoreLock::wake_if_waiting`]) |
//! |---|---|
//! | `waiters += 1` | stores a new value in the word |
//! | fence(SeqCst) | fence(SeqCst) |
//! | re-reads the word: if it still holds the value seen, `wait(word, seen)` | reads `waiters`: if not 0, `wake(word)` |
//! | `waiters -= 1` | |
//!
//! Of the two fences one comes first. If it is the waiter's, the releaser's read of `waiters`
//! sees the increment and wakes. If it is the releaser's, the waiter's re-read sees the new
//! value (or a later one) and does not sleep. Between the re-read and the sleep the word may
//! still change and the wake may come before the waiter is asleep: the futex compares the word
//! with `seen` atomically with going to sleep, so that wake is not lost either. Hence no
//! wake-up is lost, and a sleeper wakes after every change of its word that follows its
//! increment. A waiter killed while counted leaves `waiters` high for good: releasers then make
//! a wake-up call for nobody, which is harmless. An owner killed between its store and its
//! wake-up leaves that wake-up to its recoverer ([`StoreLock::recover_dead`] reports sleepers
//! whether or not the dead owner still held the word). `loom-tests/tests/wake.rs` checks all of
//! this with a futex that never times out, so a lost wake-up is a deadlock there.
//!
//! Terms: an *owner id* is a writer-word value; a *change* is what one owner does between
//! [`StoreLock::begin_change`] and [`StoreLock::end_change`]; a *token* is the even sequence a
//! reader began with.

use crate::sync::{fence, AccessError, AtomicU64, Ordering, WordStore};

/// The writer word's value for the participant in `slot` with `generation`.
pub fn owner_id(slot: u32, generation: u64) -> u64 {
    ((generation & 0xffff) << 16) | (slot as u64 + 1)
}

/// Whether writer-word value `w` names the participant in `slot` with `generation` (the 16 bits
/// of each that the word keeps).
pub fn names_owner(w: u64, slot: u32, generation: u64) -> bool {
    w != 0 && (w & 0xffff) == slot as u64 + 1 && (w >> 16) & 0xffff == generation & 0xffff
}

/// Byte offsets of the lock's words in the lock file.
#[derive(Clone, Copy, Debug)]
pub struct LockOffsets {
    pub writer: u64,
    pub seq: u64,
    pub waiters: u64,
}

/// How a thread sleeps on a lock word until it changes, and how a releaser wakes it: the
/// kernel's futex in the object layer (each sleep with a timeout), a mutex and condition
/// variable in the loom models (no timeout, so that a lost wake-up is a deadlock there).
pub trait Futex {
    /// Sleeps while the low 32 bits of `word` equal `expected`. The comparison and going to
    /// sleep are one atomic step with respect to [`Futex::wake`] on the same word. May return
    /// early (a timeout, a signal, a spurious wake-up): the caller re-checks the word.
    fn wait(&self, word: &AtomicU64, expected: u32);

    /// Wakes every thread sleeping on `word`, in any process.
    fn wake(&self, word: &AtomicU64);
}

/// The store lock's words, resolved once (hot paths keep the references).
pub struct StoreLock<'a, W: WordStore> {
    lock_file: &'a W,
    writer: &'a AtomicU64,
    seq: &'a AtomicU64,
    waiters: &'a AtomicU64,
}

// References only: a copy is the same lock (a `Waiter` keeps one to sleep without the store).
impl<W: WordStore> Clone for StoreLock<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W: WordStore> Copy for StoreLock<'_, W> {}

impl<'a, W: WordStore> StoreLock<'a, W> {
    pub fn new(lock_file: &'a W, at: LockOffsets) -> Result<Self, AccessError> {
        Ok(StoreLock {
            lock_file,
            writer: lock_file.word(at.writer)?,
            seq: lock_file.word(at.seq)?,
            waiters: lock_file.word(at.waiters)?,
        })
    }

    /// The writer word (to sleep on and to wake).
    pub fn writer_word(&self) -> &'a AtomicU64 {
        self.writer
    }

    /// The sequence word (to sleep on and to wake).
    pub fn seq_word(&self) -> &'a AtomicU64 {
        self.seq
    }

    /// The waiter count.
    pub fn waiters_word(&self) -> &'a AtomicU64 {
        self.waiters
    }

    // ---- writers ---------------------------------------------------------------------------

    /// Takes the writer word for owner id `me` if it is free; `Ok(Err(holder))` if it is not.
    pub fn try_take(&self, me: u64) -> Result<Result<(), u64>, AccessError> {
        self.lock_file.step()?;
        // Acquire on success: the previous owner's changes (the Release stores in `release`
        // and `end_change`, or a recoverer's CAS in `release_dead`) are seen before ours
        // begin. Release too: what the taker did before (attaching: its slot's status and
        // generation) is seen by whoever reads its id with Acquire, as `free_stale_writer`'s
        // caller does before asking whether the id names an attached participant. Relaxed on
        // failure: the holder's value is only something to wait on.
        Ok(self
            .writer
            .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
            .map(|_| ()))
    }

    /// Gives the writer word back without a change having begun (the sequence stays even).
    /// Returns whether threads wait (the caller wakes the writer word's sleepers).
    pub fn release(&self) -> Result<bool, AccessError> {
        self.lock_file.step()?;
        // Release: everything this owner did is visible to the next owner (Acquire in
        // `try_take`).
        self.writer.store(0, Ordering::Release);
        self.waiters_present()
    }

    /// [`StoreLock::release`], then wakes the writer word's sleepers if any thread sleeps.
    pub fn release_and_wake<F: Futex>(&self, futex: &F) -> Result<(), AccessError> {
        if self.release()? {
            futex.wake(self.writer);
        }
        Ok(())
    }

    /// Whether a thread may be sleeping on a lock word (called after changing one: the
    /// releaser's side of the handshake in the module doc).
    pub fn waiters_present(&self) -> Result<bool, AccessError> {
        // SeqCst fence: the caller's store to a lock word is ordered before the load of
        // `waiters` below (a store followed by a load of another word may otherwise be
        // reordered, and both sides would miss each other). Pairs with the fence in `sleep`:
        // if that one comes first, the load below sees the waiter's increment; if this one
        // does, the waiter's re-read sees our store.
        fence(Ordering::SeqCst);
        self.lock_file.step()?;
        Ok(self.waiters.load(Ordering::SeqCst) != 0)
    }

    /// Wakes `word`'s sleepers if any thread sleeps (called after changing `word` by other
    /// means than this lock's own releases, e.g. the shared count).
    pub fn wake_if_waiting<F: Futex>(
        &self,
        word: &AtomicU64,
        futex: &F,
    ) -> Result<(), AccessError> {
        if self.waiters_present()? {
            futex.wake(word);
        }
        Ok(())
    }

    /// The waiter's side of the handshake (module doc): sleeps on `word`, one of the lock
    /// words, if it still holds `seen`; returns when it may have changed (or early, as
    /// [`Futex::wait`] does: the caller re-checks). Spinning first, if it pays, is the
    /// caller's business.
    pub fn sleep<F: Futex>(
        &self,
        word: &AtomicU64,
        seen: u64,
        futex: &F,
    ) -> Result<(), AccessError> {
        self.lock_file.step()?;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // SeqCst fence: the increment above is ordered before the re-read below. Pairs with
        // the fence in `waiters_present`: if that one comes first, the re-read sees the
        // releaser's store; if this one does, the releaser sees our increment and wakes us.
        // (A SeqCst increment and a SeqCst re-read would do without it in C++20, but loom
        // treats SeqCst accesses as AcqRel and checks the fences only; the fence costs
        // nothing next to the system call that follows.)
        fence(Ordering::SeqCst);
        // A waiter killed from here to the decrement stays counted for good: every release
        // then makes a wake-up call, for nobody when nobody sleeps, which costs a system call
        // and nothing else.
        self.lock_file.step()?;
        // SeqCst: see the fence above.
        if word.load(Ordering::SeqCst) == seen {
            // The futex compares the low half only: a change of the high half alone between
            // the re-read and the sleep would go unseen, and its wake-up could come too early.
            // None happens: writer-word values fit in the low half, and the sequence and the
            // shared count would have to move by a multiple of 2^32 in that window.
            futex.wait(word, seen as u32);
        }
        self.lock_file.step()?;
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    /// Makes the sequence odd: a change begins. Only the writer word's owner calls this.
    pub fn begin_change(&self) -> Result<(), AccessError> {
        self.lock_file.step()?;
        // Relaxed: only the writer word's owner writes the sequence, and taking the word
        // (Acquire in `try_take`) ordered the last owner's (or recoverer's) store before us.
        let s = self.seq.load(Ordering::Relaxed);
        // An odd sequence under a word we hold is no change in flight: only a damaged or
        // forged lock file shows one (see `inspect_sequence`). Stepping over it keeps the
        // change's sequence odd and different from any a reader may hold.
        let odd = if s % 2 == 0 {
            s.wrapping_add(1)
        } else {
            s.wrapping_add(2)
        };
        self.lock_file.step()?;
        // Relaxed: the fence below orders it before the change's data stores.
        self.seq.store(odd, Ordering::Relaxed);
        // SeqCst fence: the odd sequence is ordered before every data store that follows
        // (seqlock writer side: a reader whose data load sees one of those stores, then
        // Acquire-fences, sees the sequence moved), and before this writer's reads of other
        // participants' held sets (the store-then-check handshake with readers registering a
        // hold, object/held.rs).
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// [`StoreLock::end_change`], then wakes the sequence's and the writer word's sleepers if
    /// any thread sleeps.
    pub fn end_change_and_wake<F: Futex>(&self, futex: &F) -> Result<(), AccessError> {
        if self.end_change()? {
            futex.wake(self.seq);
            futex.wake(self.writer);
        }
        Ok(())
    }

    /// Ends a change: the sequence even again (committed), the writer word free, and one
    /// wake-up check for both (one fence instead of two). Returns whether threads wait (the
    /// caller wakes the sequence's and the writer word's sleepers).
    pub fn end_change(&self) -> Result<bool, AccessError> {
        self.lock_file.step()?;
        // Relaxed: our own last store (see `begin_change`).
        let s = self.seq.load(Ordering::Relaxed);
        debug_assert!(s % 2 == 1);
        self.lock_file.step()?;
        // Release (both): the change's data stores are visible to a reader that sees the even
        // sequence (Acquire in `read_begin`), and to the next writer that takes the word
        // (Acquire in `try_take`).
        self.seq.store(s.wrapping_add(1), Ordering::Release);
        self.lock_file.step()?;
        // Release: as the store above.
        self.writer.store(0, Ordering::Release);
        self.waiters_present()
    }

    // ---- readers ---------------------------------------------------------------------------

    /// Begins an unlocked read: the token to validate with, or `Err(seq)` while a change is in
    /// flight (the odd value, to sleep on).
    pub fn read_begin(&self) -> Result<u64, u64> {
        // Acquire: pairs with the Release store that ended the last change (`end_change`), or
        // the recoverer's store that ended a dead writer's (`release_dead`): its data stores
        // are seen by the reads that follow.
        let s = self.seq.load(Ordering::Acquire);
        if s % 2 == 1 {
            return Err(s);
        }
        Ok(s)
    }

    /// Whether everything read since `read_begin` returned `token` is a consistent snapshot.
    /// The data loads may be Relaxed: this fence orders them before the re-check.
    pub fn read_valid(&self, token: u64) -> bool {
        // Acquire fence: the data loads before it are ordered before the re-check below
        // (seqlock reader side). If one of them saw a store of a change, the writer's SeqCst
        // fence in `begin_change` makes this load see the odd sequence or a later one.
        fence(Ordering::Acquire);
        // Relaxed: the fence above orders it after the data loads.
        self.seq.load(Ordering::Relaxed) == token
    }

    // ---- words a damaged or forged lock file may hold ---------------------------------------

    /// Looks at the sequence as the writer word's owner `me`, so that nobody changes it
    /// meanwhile: odd there is a state no run of this protocol leaves (the sequence is odd only
    /// while the word is held, and every owner, or the recoverer of a dead one, makes it even
    /// before it lets go), so the mark of a damaged or forged lock file, on which readers would
    /// wait forever. With `repair`, makes it even. Returns `None` if the word was held (nothing
    /// learnt), else whether the sequence was odd, and whether threads wait (the caller wakes
    /// the sequence's and the writer word's sleepers).
    ///
    /// Deciding this from outside the word cannot be done: a reader's loads of the sequence
    /// and the writer word may see one new and one old value (`loom-tests` found such a check
    /// reporting a live change as stale).
    pub fn inspect_sequence(
        &self,
        me: u64,
        repair: bool,
    ) -> Result<Option<(bool, bool)>, AccessError> {
        if self.try_take(me)?.is_err() {
            return Ok(None);
        }
        self.lock_file.step()?;
        // Relaxed: taking the word (Acquire) ordered every earlier owner's store before this.
        let s = self.seq.load(Ordering::Relaxed);
        let odd = s % 2 == 1;
        if odd && repair {
            self.lock_file.step()?;
            // Release: as `end_change`.
            self.seq.store(s.wrapping_add(1), Ordering::Release);
        }
        let waiters = self.release()?;
        Ok(Some((odd, waiters)))
    }

    /// Frees the writer word if it still holds `seen` and `names_nobody(seen)` says that id
    /// names no attached participant (a damaged or forged lock file: nobody would ever free or
    /// recover it). Returns whether it freed the word (the caller wakes its sleepers).
    ///
    /// The id is re-read with Acquire and must still be `seen`: a taker's CAS is a Release
    /// (`try_take`), so its attach is then visible to `names_nobody`, which cannot mistake a
    /// live owner for nobody. The CAS frees only that value: a word taken since stays taken.
    pub fn free_stale_writer(
        &self,
        seen: u64,
        names_nobody: impl FnOnce(u64) -> Result<bool, AccessError>,
    ) -> Result<bool, AccessError> {
        self.lock_file.step()?;
        if seen == 0 || self.writer.load(Ordering::Acquire) != seen || !names_nobody(seen)? {
            return Ok(false);
        }
        self.lock_file.step()?;
        // SeqCst: one order with the takers' and releasers' accesses of the word.
        Ok(self
            .writer
            .compare_exchange(seen, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok())
    }

    // ---- a dead owner ----------------------------------------------------------------------

    /// Hands the lock over from the dead participant in `slot` (of `generation`): rolls its
    /// undo log back (`log`: the log and its published length, checked by the caller, its
    /// release cursor too), or, if its change had committed and its frees were under way,
    /// finishes them ([`UndoLog::finish_frees`], through [`OtherEntries::free_committed`]);
    /// then, if the writer word still names it, makes the sequence even and frees the word. Returns
    /// whether threads may sleep on the lock words (the caller wakes the writer word's and the
    /// sequence's sleepers): checked whether or not it freed the word, since the dead owner
    /// may have freed it itself and died before its wake-up call.
    ///
    /// One recoverer at a time (the caller holds the dead slot's recovery lock). Every step is
    /// safe to repeat: a recoverer killed at any point can be followed by another.
    ///
    /// `past_gate`: the dead participant's `active` word is 1 (a single change on a part,
    /// FORMAT.md §10.9, which runs its frees after its commit point and before it leaves the
    /// gate). No gc and no section runs while that word is 1 (both wait for every `active`
    /// word, and recover a dead holder first), so its committed frees are finished as under
    /// the writer word.
    pub fn recover_dead<S: WordStore, O: OtherEntries>(
        &self,
        log: Option<(&UndoLog<'_, S>, u64)>,
        slot: u32,
        generation: u64,
        past_gate: bool,
        other: &mut O,
    ) -> Result<bool, O::Error> {
        if let Some((log, len)) = log {
            let (end, done) = log.frees_cursor()?;
            if len > 0 && end > 0 {
                // Killed between the cursor and the commit point: the change is rolled back,
                // so it frees nothing. The cursor goes first: a rollback that ends at length 0
                // and is then cut short must not leave the frees looking due.
                log.clear_frees()?;
            } else if len == 0 && end > 0 {
                // Killed after the commit point, freeing: the change stays, and its frees are
                // finished from the cursor on, while the writer word still names the dead
                // owner, or its `active` word is 1 (no other writer, and no gc, runs
                // meanwhile). A cursor under neither is none of this owner's (a damaged file):
                // forgotten, its blocks left to gc.
                self.lock_file.step()?;
                let w = self.writer.load(Ordering::SeqCst);
                if past_gate || names_owner(w, slot, generation) {
                    // The entry the cursor had just passed: its free may have been cut short.
                    if done > 0 {
                        let (tagged, _) = log.entry(done - 1)?;
                        if tagged & undo::TAG_MASK == undo::T_FREE_BLOCK {
                            other.free_passed(
                                log.entry_offset(done - 1),
                                tagged & !undo::TAG_MASK,
                            )?;
                        }
                    }
                    log.finish_frees(end, done, |entry, block| other.free_committed(entry, block))?;
                } else {
                    log.clear_frees()?;
                }
            }
            if len > 0 {
                // SeqCst fence: the restores that follow are ordered before a reader's
                // re-check, as the dead owner's own stores were by its fence in
                // `begin_change`. A restore may write a value of the change itself (a word
                // logged twice, once per savepoint), and a reader whose load sees it must then
                // see the odd sequence. The caller's Acquire load of `len` (`published_len`,
                // pairing with the owner's Release in `set_len`) ordered the owner's odd
                // sequence before this fence. Without it, the loom model
                // `savepoint_rolled_back_and_writer_killed_at_every_point` has a reader keep
                // such a value.
                fence(Ordering::SeqCst);
            }
            log.roll_back(len, other)?;
        }
        self.release_dead(slot, generation)?;
        Ok(self.waiters_present()?)
    }

    /// The second half of [`StoreLock::recover_dead`]: its change is undone, so the sequence is
    /// made even again, then the word freed. In this order, so that whoever takes the word next
    /// finds the sequence even; and by CAS from the dead owner's id, so that a repeat never
    /// frees a word that a live participant took meanwhile.
    fn release_dead(&self, slot: u32, generation: u64) -> Result<(), AccessError> {
        self.lock_file.step()?;
        let w = self.writer.load(Ordering::SeqCst);
        if !names_owner(w, slot, generation) {
            return Ok(());
        }
        self.lock_file.step()?;
        let s = self.seq.load(Ordering::SeqCst);
        if s % 2 == 1 {
            self.lock_file.step()?;
            self.seq.store(s.wrapping_add(1), Ordering::SeqCst);
        }
        self.lock_file.step()?;
        // A failed CAS: a live participant took the word meanwhile (after a repeat freed it).
        let _ = self
            .writer
            .compare_exchange(w, 0, Ordering::SeqCst, Ordering::SeqCst);
        Ok(())
    }
}

/// The undo log block's layout (FORMAT.md §10.3), the one definition every user of the log
/// reads: a head word (`kind | cap << 8`, written by the object layer), `len`, `cap`, the
/// release cursor, the held-parts record of a single change (`part_lock::record`, bytes
/// 32..96), then `cap` entries of two words (a tagged offset, a value).
pub mod undo {
    /// The published length (entries).
    pub const LEN: u64 = 8;
    /// The capacity (entries), also in the head word's length field.
    pub const CAP: u64 = 16;
    /// The release cursor of a committed change's frees: `end << 32 | done` (0: none). `end`
    /// is the log's length at the commit; the free-block entries below `done` are freed (or
    /// being freed), those from `done` to `end` are not yet (`UndoLog::finish_frees`).
    pub const FREES: u64 = 24;
    /// The held-parts record (`part_lock::record`): 4 entries of two words.
    pub const RECORD: u64 = 32;
    /// The first entry.
    pub const ENTRIES: u64 = 96;
    pub const ENTRY_BYTES: u64 = 16;
    /// Entry tags are the low bits of the entry's first word (offsets are 8-aligned, blocks
    /// 16-aligned, so the tag never hides an offset bit).
    pub const TAG_MASK: u64 = 7;
    /// A data word of the store file: (offset | T_WORD, old value). The only tag the store
    /// lock's protocol knows itself; the others are undone through [`super::OtherEntries`].
    pub const T_WORD: u64 = 0;
    /// A block allocated by the change: (block | T_ALLOC, 0). Rollback frees it.
    pub const T_ALLOC: u64 = 1;
    /// A value word released at commit: (T_RELEASE, value word). Rollback: nothing.
    pub const T_RELEASE: u64 = 2;
    /// A block freed at commit: (block | T_FREE_BLOCK, 0). Rollback: nothing.
    pub const T_FREE_BLOCK: u64 = 3;
    /// A lock-file word: (lock file offset | T_LOCK_WORD, old value). Rollback restores it.
    pub const T_LOCK_WORD: u64 = 4;
    /// An orphan taken off the orphan list by the change (to be freed at commit):
    /// (container | T_ORPHAN_UNLINKED, 0). Rollback puts it back on the list unless it is
    /// there (FORMAT.md §10.5).
    pub const T_ORPHAN_UNLINKED: u64 = 5;

    /// The bytes of a log block with room for `cap` entries.
    pub const fn block_bytes(cap: u64) -> u64 {
        ENTRIES + cap * ENTRY_BYTES
    }

    /// One entry, decoded.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Entry {
        /// Store-file word `offset` held `old` before the change.
        Word { offset: u64, old: u64 },
        /// The change allocated `block`.
        Alloc { block: u64 },
        /// The change dropped value word `value`: released at commit.
        Release { value: u64 },
        /// The change unlinked `block`: freed at commit.
        FreeBlock { block: u64 },
        /// Lock-file word `offset` held `old` before the change.
        LockWord { offset: u64, old: u64 },
        /// The change took orphan `container` off the orphan list.
        OrphanUnlinked { container: u64 },
    }

    impl Entry {
        /// The entry's two words.
        pub fn to_words(self) -> (u64, u64) {
            match self {
                Entry::Word { offset, old } => (offset | T_WORD, old),
                Entry::Alloc { block } => (block | T_ALLOC, 0),
                Entry::Release { value } => (T_RELEASE, value),
                Entry::FreeBlock { block } => (block | T_FREE_BLOCK, 0),
                Entry::LockWord { offset, old } => (offset | T_LOCK_WORD, old),
                Entry::OrphanUnlinked { container } => (container | T_ORPHAN_UNLINKED, 0),
            }
        }

        /// Decodes two words read from the file; None for an unknown tag (a damaged log).
        pub fn from_words(tagged: u64, value: u64) -> Option<Entry> {
            let offset = tagged & !TAG_MASK;
            Some(match tagged & TAG_MASK {
                T_WORD => Entry::Word { offset, old: value },
                T_ALLOC => Entry::Alloc { block: offset },
                T_RELEASE => Entry::Release { value },
                T_FREE_BLOCK => Entry::FreeBlock { block: offset },
                T_LOCK_WORD => Entry::LockWord { offset, old: value },
                T_ORPHAN_UNLINKED => Entry::OrphanUnlinked { container: offset },
                _ => return None,
            })
        }
    }
}

/// How a rollback undoes the entries that are not data words (the object layer's lock-file
/// words and allocations; the loom models have none).
pub trait OtherEntries {
    type Error: From<AccessError>;

    /// Whether undoing `tagged` must never happen twice (freeing a block): the log then drops
    /// the entry before `undo` runs, so a recoverer killed in between leaks rather than
    /// repeating it. Otherwise (restoring a word) `undo` runs first and the log drops the entry
    /// after it, so a recoverer killed in between repeats it with the same result.
    fn once_only(&self, tagged: u64) -> bool;

    /// Undoes the entry at byte `entry` of the store file: `tagged` (offset and tag), `value`.
    fn undo(&mut self, entry: u64, tagged: u64, value: u64) -> Result<(), Self::Error>;

    /// Frees `block`, named by the free-block entry at byte `entry` of a dead owner's log
    /// whose change had committed and whose frees were under way
    /// ([`StoreLock::recover_dead`]; the log's cursor has already moved past the entry). The
    /// default leaves the block to gc (a log with no heap behind it).
    fn free_committed(&mut self, entry: u64, block: u64) -> Result<(), Self::Error> {
        let _ = (entry, block);
        Ok(())
    }

    /// The free-block entry at byte `entry` of a dead owner's log is the one its release
    /// cursor had just passed ([`StoreLock::recover_dead`]): the owner may have died inside the
    /// free of `block`. Frees it if the implementation can tell that free did not happen (and
    /// frees the same way, so that a repeat can tell again). The default leaves the block to gc.
    fn free_passed(&mut self, entry: u64, block: u64) -> Result<(), Self::Error> {
        let _ = (entry, block);
        Ok(())
    }

    /// Refuses a word entry (at byte `entry`) that names a word no change ever logs: a
    /// damaged or hostile log must not restore, say, the header's size word. Every word is
    /// accepted unless the implementation knows the layout.
    fn check_word(&self, entry: u64, offset: u64) -> Result<(), Self::Error> {
        let _ = (entry, offset);
        Ok(())
    }
}

/// One participant's undo log block in the store file. Only its participant appends to it
/// (while holding the writer word); a recoverer of the dead participant rolls it back.
pub struct UndoLog<'a, S: WordStore> {
    store: &'a S,
    block: u64,
}

impl<'a, S: WordStore> UndoLog<'a, S> {
    pub fn new(store: &'a S, block: u64) -> Self {
        UndoLog { store, block }
    }

    /// The log's published length.
    pub fn published_len(&self) -> Result<u64, AccessError> {
        // Acquire: pairs with the Release length store in `append`: the entries it covers are
        // seen by the reads that follow.
        self.store.load(self.block + undo::LEN, Ordering::Acquire)
    }

    /// The entry at index `i`: (tagged offset, value).
    pub fn entry(&self, i: u64) -> Result<(u64, u64), AccessError> {
        let e = self.entry_offset(i);
        // Relaxed: the length was loaded with Acquire before (`published_len`), or this is the
        // log's own writer.
        Ok((
            self.store.load(e, Ordering::Relaxed)?,
            self.store.load(e + 8, Ordering::Relaxed)?,
        ))
    }

    /// Whether the last of the log's `len` entries is the alloc entry of `block`. A change
    /// logs each block it allocates right after taking it, before it links it or allocates
    /// another (`Store::alloc`), so for the block a dead participant's journal names as taken,
    /// this says whether the rollback of its log frees it (yes) or nobody will (no: it was
    /// never logged, so never linked either). An entry of `block` further down the log is an
    /// earlier allocation of the same change, which cannot be the block's current one unless
    /// the block was freed in between, and a change frees nothing before its commit.
    pub fn ends_with_alloc(&self, len: u64, block: u64) -> Result<bool, AccessError> {
        if len == 0 || block & undo::TAG_MASK != 0 {
            return Ok(false);
        }
        Ok(self.entry(len - 1)?.0 == block | undo::T_ALLOC)
    }

    fn entry_offset(&self, i: u64) -> u64 {
        self.block + undo::ENTRIES + i * undo::ENTRY_BYTES
    }

    /// Appends an entry at index `len` (the writer keeps the length; the caller has checked
    /// that the block holds it): the entry first, then the length, so a recoverer that sees
    /// the length sees the entry, and a writer killed in between leaves a length that does not
    /// cover the half-written entry. (A durable store's barrier in `set_len` gives the disk
    /// the same order.)
    pub fn append(&self, len: u64, tagged: u64, value: u64) -> Result<(), AccessError> {
        let e = self.entry_offset(len);
        // Relaxed (both): the Release store of the length below orders them before it.
        self.store.store(e, tagged, Ordering::Relaxed)?;
        self.store.store(e + 8, value, Ordering::Relaxed)?;
        self.set_len(len + 1)
    }

    /// Appends a word entry: data word `offset` held `old` before this change.
    pub fn append_word(&self, len: u64, offset: u64, old: u64) -> Result<(), AccessError> {
        debug_assert!(offset & undo::TAG_MASK == 0);
        self.append(len, offset | undo::T_WORD, old)
    }

    /// Publishes a new length: 0 commits (the change stays), a shorter one forgets entries
    /// already undone.
    pub fn set_len(&self, n: u64) -> Result<(), AccessError> {
        // The entries stored before (by `append`) and the words restored before (by
        // `roll_back`) on disk before the length that covers or forgets them (a durable store).
        self.store.barrier()?;
        // Release: pairs with the Acquire in `published_len`; the same order in memory.
        self.store
            .store(self.block + undo::LEN, n, Ordering::Release)
    }

    // The cursor's accesses are Relaxed. Only the log's own participant writes the cursor,
    // and nobody else reads it while that participant lives: its recoverer reads it after the
    // death, and everything the dead process stored happens before that (the kernel drops the
    // dead process's liveness lock when it exits, and the recoverer takes that byte's lock and
    // the recovery lock before it reads). A recoverer killed in turn is followed by the next
    // the same way. `check()` reads the cursors of live participants under the writer word,
    // which a participant holds from before it sets its cursor until after it clears it.

    /// The release cursor: `(end, done)`, `(0, 0)` when no committed frees are under way.
    pub fn frees_cursor(&self) -> Result<(u64, u64), AccessError> {
        // Relaxed: see above.
        let c = self
            .store
            .load(self.block + undo::FREES, Ordering::Relaxed)?;
        Ok((c >> 32, c & 0xffff_ffff))
    }

    fn set_frees_cursor(&self, end: u64, done: u64) -> Result<(), AccessError> {
        debug_assert!(end < 1 << 32 && done <= end);
        // Relaxed: see above.
        self.store.store(
            self.block + undo::FREES,
            end << 32 | done,
            Ordering::Relaxed,
        )
    }

    /// Forgets the release cursor: a change that is rolled back frees nothing.
    pub fn clear_frees(&self) -> Result<(), AccessError> {
        // Relaxed: see above.
        self.store
            .store(self.block + undo::FREES, 0, Ordering::Relaxed)
    }

    /// Commits a change of `len` entries whose log holds free-block entries: the release
    /// cursor `(len, 0)` first, then the length 0 (the commit point, [`UndoLog::set_len`]).
    /// A writer killed between the two leaves a non-empty log, which its recoverer rolls back
    /// after clearing the cursor; one killed after them leaves the frees to
    /// [`UndoLog::finish_frees`] in its recoverer.
    pub fn commit_with_frees(&self, len: u64) -> Result<(), AccessError> {
        // The Release store of the length (`set_len`) keeps this store before it, in memory,
        // and its barrier on disk.
        self.set_frees_cursor(len, 0)?;
        self.set_len(0)
    }

    /// Frees the committed change's free-block entries from index `done` to `end` (the
    /// cursor), each exactly once: the cursor moves past an entry before `free` runs for it,
    /// so a process killed in between leaks that one block (to gc) and never frees it twice;
    /// the process that finishes (the writer itself, or the recoverer of a dead one) starts
    /// at the cursor. Entries of other kinds are passed over. Ends with the cursor cleared.
    /// `free(entry, block)`: the entry's byte offset and the block it names. The writer may
    /// start at its first free-block entry instead of `done` = 0 (the entries before it are of
    /// other kinds).
    pub fn finish_frees<E: From<AccessError>>(
        &self,
        end: u64,
        done: u64,
        mut free: impl FnMut(u64, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        for i in done..end {
            let (tagged, _) = self.entry(i)?;
            if tagged & undo::TAG_MASK != undo::T_FREE_BLOCK {
                continue;
            }
            self.set_frees_cursor(end, i + 1)?;
            free(self.entry_offset(i), tagged & !undo::TAG_MASK)?;
        }
        self.clear_frees()?;
        Ok(())
    }

    /// Rewrites the first word of entry `i` to `tagged`, in place: an entry that a rollback
    /// passes over turned into another such (a release into a free block), so that a process
    /// killed on either side of the store leaves a log that rolls back the same.
    pub fn retag(&self, i: u64, tagged: u64) -> Result<(), AccessError> {
        // Relaxed: the entry is read back by this writer, or by a recoverer after its death
        // (see the cursor's accesses above); the commit's Release store of the length, and its
        // barrier on disk, come after it.
        self.store
            .store(self.entry_offset(i), tagged, Ordering::Relaxed)
    }

    /// Undoes entries `len - 1` down to 0, newest first: a dead owner's change, as
    /// [`UndoLog::roll_back_to`] with mark 0.
    pub fn roll_back<O: OtherEntries>(&self, len: u64, other: &mut O) -> Result<(), O::Error> {
        self.roll_back_to(len, 0, other)
    }

    /// Undoes entries `len - 1` down to `mark`, newest first (the oldest value of a word logged
    /// twice is the one that stays), and leaves the log `mark` entries long. Every rollback
    /// runs this: a live change that fails (mark 0), a transaction's savepoint (its mark), the
    /// recovery of a dead owner and of an orphaned durable change (mark 0).
    ///
    /// Word entries are restored without shrinking the log: a writer or recoverer killed
    /// half-way leaves a log whose every entry a recoverer restores again, to the same values
    /// (entries below the mark included: they hold the values from before the change). The
    /// length drops past an entry that must not be undone twice (`once_only`) before it is
    /// undone, and to `mark` at the end, each time after the words restored before (a durable
    /// store's barrier in `set_len` puts them on disk first).
    pub fn roll_back_to<O: OtherEntries>(
        &self,
        len: u64,
        mark: u64,
        other: &mut O,
    ) -> Result<(), O::Error> {
        let mut i = len;
        while i > mark {
            i -= 1;
            let (tagged, value) = self.entry(i)?;
            let entry = self.entry_offset(i);
            if tagged & undo::TAG_MASK == undo::T_WORD {
                other.check_word(entry, tagged & !undo::TAG_MASK)?;
                // Relaxed: readers keep nothing they read while the sequence is odd; the store
                // that makes it even (`end_change`, or `release_dead` for a dead owner)
                // publishes the restored words to readers and to the next owner.
                self.store
                    .store(tagged & !undo::TAG_MASK, value, Ordering::Relaxed)?;
            } else if other.once_only(tagged) {
                self.set_len(i)?;
                other.undo(entry, tagged, value)?;
            } else {
                other.undo(entry, tagged, value)?;
            }
        }
        if len > mark {
            self.set_len(mark)?;
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::MemWords;

    const AT: LockOffsets = LockOffsets {
        writer: 0,
        seq: 8,
        waiters: 16,
    };
    const LOG: u64 = 64;
    const DATA: u64 = 256;

    /// A log with word entries only.
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
        (MemWords::new(64, 64), MemWords::new(512, 512))
    }

    #[test]
    fn owner_ids_round_trip() {
        let id = owner_id(3, 0x1_0007);
        assert_eq!(id, (7 << 16) | 4);
        assert!(names_owner(id, 3, 7));
        assert!(!names_owner(id, 3, 8));
        assert!(!names_owner(id, 2, 7));
        assert!(!names_owner(0, u32::MAX, 0xffff));
    }

    #[test]
    fn a_change_commits() {
        let (lock_file, store) = world();
        let lock = StoreLock::new(&lock_file, AT).unwrap();
        let log = UndoLog::new(&store, LOG);
        let me = owner_id(0, 1);
        lock.try_take(me).unwrap().unwrap();
        assert_eq!(lock.try_take(owner_id(1, 1)).unwrap(), Err(me));
        lock.begin_change().unwrap();
        assert_eq!(lock.read_begin(), Err(1));
        log.append_word(0, DATA, 0).unwrap();
        store.store(DATA, 5, Ordering::Relaxed).unwrap();
        log.set_len(0).unwrap();
        assert!(!lock.end_change().unwrap());
        let token = lock.read_begin().unwrap();
        assert_eq!(token, 2);
        assert!(lock.read_valid(token));
        assert_eq!(store.load(DATA, Ordering::Relaxed).unwrap(), 5);
        assert_eq!(lock_file.load(AT.writer, Ordering::Relaxed).unwrap(), 0);
    }

    #[test]
    fn a_dead_owners_change_is_undone_once_and_again() {
        let (lock_file, store) = world();
        let lock = StoreLock::new(&lock_file, AT).unwrap();
        let log = UndoLog::new(&store, LOG);
        lock.try_take(owner_id(2, 9)).unwrap().unwrap();
        lock.begin_change().unwrap();
        // The same word twice (1 -> 2 -> 3): the oldest value wins.
        store.store(DATA, 1, Ordering::Relaxed).unwrap();
        log.append_word(0, DATA, 1).unwrap();
        store.store(DATA, 2, Ordering::Relaxed).unwrap();
        log.append_word(1, DATA, 2).unwrap();
        store.store(DATA, 3, Ordering::Relaxed).unwrap();
        let len = log.published_len().unwrap();
        // Nobody sleeps: nobody to wake.
        assert!(!lock
            .recover_dead(Some((&log, len)), 2, 9, false, &mut WordsOnly)
            .unwrap());
        assert_eq!(store.load(DATA, Ordering::Relaxed).unwrap(), 1);
        assert_eq!(log.published_len().unwrap(), 0);
        assert_eq!(lock.read_begin(), Ok(2));
        assert_eq!(lock_file.load(AT.writer, Ordering::Relaxed).unwrap(), 0);
        // A repeat finds nothing to do, and never frees a word a live participant took since.
        lock.try_take(owner_id(1, 1)).unwrap().unwrap();
        lock.recover_dead(Some((&log, 0)), 2, 9, false, &mut WordsOnly)
            .unwrap();
        assert_eq!(
            lock_file.load(AT.writer, Ordering::Relaxed).unwrap(),
            owner_id(1, 1)
        );
    }

    /// Frees recorded, for the committed-frees tests.
    #[derive(Default)]
    struct Frees(Vec<u64>);

    impl OtherEntries for Frees {
        type Error = AccessError;

        fn once_only(&self, _tagged: u64) -> bool {
            false
        }

        fn undo(&mut self, _entry: u64, _tagged: u64, _value: u64) -> Result<(), AccessError> {
            Ok(()) // free-block entries: nothing to undo
        }

        fn free_committed(&mut self, _entry: u64, block: u64) -> Result<(), AccessError> {
            self.0.push(block);
            Ok(())
        }
    }

    /// A change that unlinks `DATA` and logs three free-block entries (blocks 0x100, 0x110,
    /// 0x120), by the owner in slot 2 of generation 9, up to its commit point if `commit`.
    fn change_with_frees<'a>(
        lock_file: &'a MemWords,
        store: &'a MemWords,
        commit: bool,
    ) -> (StoreLock<'a, MemWords>, UndoLog<'a, MemWords>) {
        let lock = StoreLock::new(lock_file, AT).unwrap();
        let log = UndoLog::new(store, LOG);
        lock.try_take(owner_id(2, 9)).unwrap().unwrap();
        lock.begin_change().unwrap();
        log.append_word(0, DATA, 1).unwrap();
        store.store(DATA, 2, Ordering::Relaxed).unwrap();
        for (i, b) in [0x100u64, 0x110, 0x120].into_iter().enumerate() {
            log.append(1 + i as u64, b | undo::T_FREE_BLOCK, 0).unwrap();
        }
        if commit {
            log.commit_with_frees(4).unwrap();
        }
        (lock, log)
    }

    #[test]
    fn a_dead_owners_committed_frees_are_finished_from_the_cursor() {
        let (lock_file, store) = world();
        let (lock, log) = change_with_frees(&lock_file, &store, true);
        assert_eq!(log.frees_cursor().unwrap(), (4, 0));
        // The owner freed the first block (the cursor past entry 1), then died.
        let mut owner = Frees::default();
        let first_only = log.finish_frees(4, 0, |_, b| {
            owner.0.push(b);
            Err(AccessError::Misaligned { offset: b }) // dies right after it
        });
        assert!(first_only.is_err());
        assert_eq!(owner.0, [0x100]);
        assert_eq!(log.frees_cursor().unwrap(), (4, 2));
        let mut rec = Frees::default();
        lock.recover_dead(Some((&log, 0)), 2, 9, false, &mut rec)
            .unwrap();
        assert_eq!(
            rec.0,
            [0x110, 0x120],
            "each block freed once, from the cursor on"
        );
        assert_eq!(log.frees_cursor().unwrap(), (0, 0));
        assert_eq!(
            store.load(DATA, Ordering::Relaxed).unwrap(),
            2,
            "the change stays"
        );
        assert_eq!(lock_file.load(AT.writer, Ordering::Relaxed).unwrap(), 0);
        // A repeat frees nothing.
        lock.recover_dead(Some((&log, 0)), 2, 9, false, &mut rec)
            .unwrap();
        assert_eq!(rec.0.len(), 2);
    }

    #[test]
    fn a_change_killed_before_its_commit_point_frees_nothing() {
        let (lock_file, store) = world();
        let (lock, log) = change_with_frees(&lock_file, &store, false);
        // Killed between the cursor and the length: the log is not empty.
        log.set_frees_cursor(4, 0).unwrap();
        let mut rec = Frees::default();
        lock.recover_dead(Some((&log, 4)), 2, 9, false, &mut rec)
            .unwrap();
        assert!(rec.0.is_empty(), "a rolled-back change freed {:?}", rec.0);
        assert_eq!(
            store.load(DATA, Ordering::Relaxed).unwrap(),
            1,
            "rolled back"
        );
        assert_eq!(log.frees_cursor().unwrap(), (0, 0));
    }

    #[test]
    fn a_dead_part_changers_committed_frees_are_finished_too() {
        let (lock_file, store) = world();
        let (lock, log) = change_with_frees(&lock_file, &store, true);
        // A single change on a part holds no writer word (here: another owner's, or none);
        // its `active` word, 1, says its frees are due.
        lock.release().unwrap();
        let mut rec = Frees::default();
        lock.recover_dead(Some((&log, 0)), 2, 9, true, &mut rec)
            .unwrap();
        assert_eq!(rec.0, [0x100, 0x110, 0x120]);
        assert_eq!(log.frees_cursor().unwrap(), (0, 0));
        lock.recover_dead(Some((&log, 0)), 2, 9, true, &mut rec)
            .unwrap();
        assert_eq!(rec.0.len(), 3, "a repeat frees nothing");
    }

    #[test]
    fn a_cursor_under_someone_elses_word_frees_nothing() {
        let (lock_file, store) = world();
        let (lock, log) = change_with_frees(&lock_file, &store, true);
        // The word names another owner (a damaged file): the cursor is forgotten.
        lock_file
            .store(AT.writer, owner_id(1, 1), Ordering::Relaxed)
            .unwrap();
        let mut rec = Frees::default();
        lock.recover_dead(Some((&log, 0)), 2, 9, false, &mut rec)
            .unwrap();
        assert!(rec.0.is_empty());
        assert_eq!(log.frees_cursor().unwrap(), (0, 0));
        assert_eq!(
            lock_file.load(AT.writer, Ordering::Relaxed).unwrap(),
            owner_id(1, 1)
        );
    }

    /// A futex that records its calls and never sleeps.
    #[derive(Default)]
    struct Calls {
        waits: std::cell::Cell<u32>,
        wakes: std::cell::Cell<u32>,
    }

    impl Futex for Calls {
        fn wait(&self, _word: &AtomicU64, _expected: u32) {
            self.waits.set(self.waits.get() + 1);
        }

        fn wake(&self, _word: &AtomicU64) {
            self.wakes.set(self.wakes.get() + 1);
        }
    }

    #[test]
    fn a_waiter_sleeps_only_on_the_value_it_saw_and_is_counted_meanwhile() {
        let (lock_file, _) = world();
        let lock = StoreLock::new(&lock_file, AT).unwrap();
        let futex = Calls::default();
        let me = owner_id(0, 1);
        lock.try_take(me).unwrap().unwrap();
        lock.sleep(lock.writer_word(), owner_id(1, 1), &futex)
            .unwrap();
        assert_eq!(futex.waits.get(), 0, "slept on a word that had changed");
        lock.sleep(lock.writer_word(), me, &futex).unwrap();
        assert_eq!(futex.waits.get(), 1);
        assert_eq!(lock.waiters_word().load(Ordering::Relaxed), 0);
        // No sleeper: no wake-up call.
        lock.release_and_wake(&futex).unwrap();
        assert_eq!(futex.wakes.get(), 0);
        // One counted: the releaser calls.
        lock.waiters_word().store(1, Ordering::Relaxed);
        lock.try_take(me).unwrap().unwrap();
        lock.begin_change().unwrap();
        lock.end_change_and_wake(&futex).unwrap();
        assert_eq!(
            futex.wakes.get(),
            2,
            "the sequence's and the writer word's sleepers"
        );
    }
}
