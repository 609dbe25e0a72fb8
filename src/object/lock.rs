//! The store lock: the writer word, the sequence word, the shared count (lock file, FORMAT.md
//! §8), and this process's record of which thread holds what.
//!
//! Lock file words (byte offsets in the lock file header, each on its own cache line):
//!
//! | offset | word | meaning |
//! |---|---|---|
//! | 64 | writer | 0 = free, else `(generation & 0xffff) << 16 \| (slot + 1)` of the owner |
//! | 128 | sequence | odd while a store-wide change is in progress (a single change on the store-wide path, a lockExcl section) |
//! | 192 | shared | lockShared holds, all participants together |
//! | 256 | waiters | threads sleeping on one of the words above (so releasers know to wake) |
//!
//! Invariants: `shared` = sum over attached slots of their slot's SHARED word; `sequence` is odd
//! only while `writer` is non-zero; a writer changes the store only while `shared` is zero.
//! The writer word is taken by CAS from 0; the shared count and the slot's count change only
//! under the writer word, logged in the undo log, so a holder killed between the two stores is
//! rolled back to a consistent pair.
//!
//! The writer word, the sequence, and the sleep and wake-up handshake are driven through
//! [`crate::store_lock`], the protocol the loom models check; this file adds the shared count,
//! the spin before a sleep, the kernel's futex (with its timeout) and which thread holds what.

use super::layout::lock_words;
use super::{slot_words, Error, ReadToken, Result, Store};
use crate::list_event::{EventOffsets, ListEvent, Wait};
use crate::region::lockfile;
use crate::region::Mapping;
use crate::store_lock::{owner_id, Futex, LockOffsets, StoreLock};
use crate::sync::{futex, AtomicU64, Ordering, WordStore};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Where [`StoreLock`] finds its words in the lock file.
pub const LOCK_OFFSETS: LockOffsets = LockOffsets {
    writer: lock_words::WRITER,
    seq: lock_words::SEQ,
    waiters: lock_words::WAITERS,
};

/// Where [`ListEvent`] finds its words in the lock file.
pub const EVENT_OFFSETS: EventOffsets = EventOffsets {
    event: lockfile::LIST_EVENT,
    bits: lockfile::WAITING_BITS,
    change_bits: lockfile::CHANGE_WAITING_BITS,
    bit_words: lockfile::WAITING_WORDS,
};

/// The thread id used by internal ops that belong to no Python thread (opening the store).
pub const ME_ANY_THREAD: u64 = u64::MAX;

/// A read token that needs no validation: the reader holds lockExcl.
const TOKEN_OWNER: u64 = u64::MAX;

/// Which lock word an operation found in its way, and the value it saw (to sleep on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// Another participant (or another thread of this process) holds the writer word.
    Writer(u64),
    /// lockShared holders keep writers out.
    Shared(u64),
    /// A change is in progress (the sequence word is odd).
    Seq(u64),
    /// A single change holds the container whose part word (version) is at this store
    /// offset (FORMAT.md §10.9); `word` is the odd value seen.
    Part { offset: u64, word: u64 },
    /// A single change of participant `slot` is past the gate (its `active` word is `word`):
    /// a section waits for it to end.
    Active { slot: u32, word: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    Excl,
    Shared,
}

/// The lock words of one store, resolved once.
pub(super) struct LockWords {
    pub(super) words: StoreLock<'static, Mapping>,
    pub(super) shared: &'static AtomicU64,
    me: u64,
    /// The store file and the lock file (part words and `active` words to sleep on).
    pub(super) store: &'static Mapping,
    pub(super) lock_file: &'static Mapping,
    /// Slot 0's `active` word in the lock file, and the distance between two slots' words.
    pub(super) active: u64,
    pub(super) stride: u64,
    /// The lock file's `slots high` word (`lockfile::SLOTS_HIGH`, read by every change).
    pub(super) slots_high: &'static AtomicU64,
    /// The list event word and the waiting bits (`list_event`).
    pub(super) event: ListEvent<'static, Mapping>,
    /// This participant's slot (its waiting bit).
    pub(super) slot: u32,
}

impl LockWords {
    /// This participant's value in the writer word.
    pub fn me(&self) -> u64 {
        self.me
    }

    pub fn new(
        m: &'static Mapping,
        store: &'static Mapping,
        active: u64,
        stride: u64,
        slot: u32,
        generation: u64,
    ) -> Result<LockWords> {
        Ok(LockWords {
            words: StoreLock::new(m, LOCK_OFFSETS)?,
            shared: m.word(lock_words::SHARED)?,
            me: owner_id(slot, generation),
            store,
            lock_file: m,
            active,
            stride,
            slots_high: m.word(crate::region::lockfile::SLOTS_HIGH)?,
            event: ListEvent::new(m, EVENT_OFFSETS)?,
            slot,
        })
    }

    /// Takes the writer word; `Busy` names its holder.
    pub(super) fn try_writer(&self) -> Result<()> {
        match self.words.try_take(self.me)? {
            Ok(()) => Ok(()),
            Err(v) => Err(Error::Busy(Busy::Writer(v))),
        }
    }

    pub(super) fn release_writer(&self) {
        let released = self.words.release_and_wake(&KERNEL);
        // Steps on the mapping are never refused (only the loom models' killable store
        // refuses them), so there is no error to lose.
        debug_assert!(released.is_ok());
    }

    /// Makes the sequence odd: a change begins.
    pub(super) fn seq_begin(&self) -> Result<()> {
        Ok(self.words.begin_change()?)
    }

    /// Ends a change: the sequence even again (committed), the writer word free, and one
    /// wake-up check for both.
    pub(super) fn end_change(&self) -> Result<()> {
        Ok(self.words.end_change_and_wake(&KERNEL)?)
    }

    /// Wakes `w`'s sleepers (after a change of it that no release reported).
    pub(super) fn wake(&self, w: &AtomicU64) {
        KERNEL.wake(w);
    }

    pub(super) fn wake_if_waiting(&self, w: &AtomicU64) {
        let woken = self.words.wake_if_waiting(w, &KERNEL);
        // Never refused on the mapping (see `release_writer`).
        debug_assert!(woken.is_ok());
    }

    /// After a change of a container: wakes the threads waiting for a list to gain items or
    /// for a container to change, in every process, if any participant waits (`list_event`).
    pub(super) fn notify_waiters(&self, grew: bool) {
        // Relaxed: a participant attaching after this load has no waiter yet that could miss
        // the change (its first try comes after its attach); `notify` fences before the bits.
        let slots = self.slots_high.load(Ordering::Relaxed);
        // Refused only when the lock file's pages vanished (FORMAT.md §8.1), which the change
        // that called this reports itself (`check_intact`); waiters then wake by their slice.
        let _ = self.event.notify(slots, grew, &KERNEL);
    }

    fn list_waiter(&self) -> ListWaiter {
        ListWaiter {
            event: self.event,
            slot: self.slot,
        }
    }

    fn waiter(&self) -> Waiter {
        Waiter {
            words: self.words,
            shared: self.shared,
            store: self.store,
            lock_file: self.lock_file,
            active: self.active,
            stride: self.stride,
        }
    }

    /// Sleeps until the word named by `busy` may have changed, or `timeout` passes.
    pub fn wait(&self, busy: Busy, timeout: Duration) {
        // SAFETY: these words belong to the store that owns `self`, which is open while
        // `self` exists.
        unsafe { self.waiter().wait(busy, timeout, false) };
    }
}

/// What this process's threads hold (process-local).
#[derive(Debug, Default)]
pub(super) struct LocalLocks {
    /// The thread in a lockExcl section, and its depth (lockExcl, lockShared and transaction()
    /// calls nested inside it).
    excl: Option<(u64, u32)>,
    /// Threads holding lockShared, and their depth.
    shared: HashMap<u64, u32>,
    /// Log marks of the single ops and savepoints open inside the current section.
    marks: Vec<u64>,
    /// The writer word is ours (a single op, a lockExcl section, or a moment's bookkeeping).
    pub writing: bool,
}

impl LocalLocks {
    /// No thread of this store holds lockExcl, lockShared or the writer word.
    pub(super) fn none_held(&self) -> bool {
        self.excl.is_none() && self.shared.is_empty() && !self.writing
    }

    /// A thread of this store holds the writer word (lockShared holds do not keep it).
    pub(super) fn writer_held(&self) -> bool {
        self.excl.is_some() || self.writing
    }
}

impl Store {
    /// Sleeps until the lock word named by `busy` may have changed (at most `timeout`).
    pub fn wait(&self, busy: Busy, timeout: Duration) {
        self.part.lock().wait(busy, timeout)
    }

    /// A handle for waiting without borrowing the store (the layer above waits with its own
    /// locks released). Valid while the store is open.
    pub fn waiter(&self) -> Waiter {
        self.part.lock().waiter()
    }

    /// A handle for waiting until a list gains items (`list_event`), as [`Store::waiter`].
    pub fn list_waiter(&self) -> ListWaiter {
        self.part.lock().list_waiter()
    }

    /// Whether a change since the last call changed a container, and whether it added items
    /// to a list (the caller then calls [`Store::notify_waiters`] once the change is committed
    /// or its section holds it).
    pub fn take_changed(&mut self) -> (bool, bool) {
        (
            std::mem::take(&mut self.changed),
            std::mem::take(&mut self.list_grew),
        )
    }

    /// Wakes the threads of every process that wait for a container to change, or, if the
    /// change added list items (`grew`), for a list to gain items, if any waits (`list_event`).
    pub fn notify_waiters(&self, grew: bool) {
        self.part.lock().notify_waiters(grew)
    }

    fn local_busy(&self) -> Busy {
        Busy::Writer(self.part.lock().words.writer_word().load(Ordering::Relaxed))
    }

    /// Starts a change for `thread`: takes the writer word (unless the thread's lockExcl
    /// section already holds it) and makes the sequence odd. Never blocks: `Busy` says what to
    /// wait for.
    pub fn begin_op(&mut self, thread: u64) -> Result<()> {
        self.part
            .refuse_if_readonly("the store is open read-only: it cannot be changed")?;
        if let Some((t, _)) = self.locks.excl {
            if t == thread {
                let mark = self.log.savepoint();
                self.locks.marks.push(mark);
                return Ok(());
            }
            return Err(Error::Busy(self.local_busy()));
        }
        self.start_writing(
            thread,
            "cannot change the store while holding lockShared (unlock first, or use lockExcl)",
        )?;
        self.locks.marks.push(0);
        Ok(())
    }

    /// Becomes the writer for `thread`, which holds no lockExcl: refused with `usage` if the
    /// thread holds lockShared, `Busy` while other lockShared holds or the writer word stand in
    /// the way. Then the sequence is odd.
    fn start_writing(&mut self, thread: u64, usage: &str) -> Result<()> {
        if !self.locks.shared.is_empty() {
            if self.locks.shared.contains_key(&thread) {
                return Err(Error::Usage(usage.into()));
            }
            return Err(Error::Busy(Busy::Shared(
                self.part.lock().shared.load(Ordering::Relaxed),
            )));
        }
        self.take_writer()?;
        self.part.lock().seq_begin()?;
        self.locks.writing = true;
        // The gate is closed (odd sequence, and `begin_change` fenced): the single changes
        // already past it end first.
        if let Err(e) = self.drain_gate(true) {
            self.locks.writing = false;
            let _ = self.part.lock().end_change();
            return Err(e);
        }
        Ok(())
    }

    pub(super) fn take_writer(&mut self) -> Result<()> {
        let lock = self.part.lock();
        lock.try_writer()?;
        // SeqCst: the writer word taken (CAS) is ordered before this read of the shared count,
        // and a lockShared taker increments the count only while holding the writer word.
        let shared = lock.shared.load(Ordering::SeqCst);
        if shared != 0 {
            lock.release_writer();
            return Err(Error::Busy(Busy::Shared(shared)));
        }
        Ok(())
    }

    /// Ends a change begun by `begin_op`: commits it (or rolls it back) and, unless a lockExcl
    /// section continues, makes the sequence even and releases the writer word.
    pub fn end_op(&mut self, commit: bool) -> Result<()> {
        let mark = self.locks.marks.pop().unwrap_or(0);
        let rolled_back = if commit {
            Ok(())
        } else {
            self.rollback_to(mark)
        };
        if self.locks.excl.is_some() {
            return rolled_back;
        }
        let committed = if commit { self.commit_log() } else { Ok(()) };
        if rolled_back.is_err() || committed.is_err() {
            // A log that cannot be undone or committed is damage (a hostile file): it is
            // dropped and the writer word released, so the error reaches the caller and the
            // next change does not wait forever behind a word nobody will free.
            self.log.abandon(&self.part);
        }
        let finished = self.finish_op();
        rolled_back.and(committed).and(finished)
    }

    /// Leaves the writer's state: sequence even, writer word free.
    pub(super) fn finish_op(&mut self) -> Result<()> {
        // A durable change that ended without a commit (rolled back): its log is empty; the
        // header must stop naming it before the writer word goes. A disk that refuses that
        // flush is reported, but never keeps the writer word from others.
        let synced = self.log.end_durable_change(&self.part);
        if self.locks.writing {
            self.locks.writing = false;
            self.part.lock().end_change()?;
        }
        self.locks.marks.clear();
        synced
    }

    /// lockExcl for `thread` (reentrant). Never blocks.
    pub fn lock_excl(&mut self, thread: u64) -> Result<()> {
        self.part
            .refuse_if_readonly("lockExcl needs a store open for writing")?;
        if let Some((t, d)) = self.locks.excl {
            if t == thread {
                self.locks.excl = Some((t, d + 1));
                return Ok(());
            }
            return Err(Error::Busy(self.local_busy()));
        }
        self.start_writing(
            thread,
            "lockExcl while holding lockShared: a shared lock is never upgraded (unlock it first)",
        )?;
        self.locks.excl = Some((thread, 1));
        self.locks.marks.clear();
        Ok(())
    }

    /// lockShared for `thread` (reentrant; inside the thread's own lockExcl it nests in it).
    pub fn lock_shared(&mut self, thread: u64) -> Result<()> {
        // Its holds are undo-logged in the store file, so that a holder's death gives them back.
        self.part.refuse_if_readonly(
            "lockShared needs a store open for writing (each read of a read-only store is \
             atomic on its own)",
        )?;
        if let Some((t, d)) = self.locks.excl {
            if t == thread {
                self.locks.excl = Some((t, d + 1));
                return Ok(());
            }
            return Err(Error::Busy(self.local_busy()));
        }
        if let Some(d) = self.locks.shared.get_mut(&thread) {
            *d += 1;
            return Ok(());
        }
        // The writer word only (other lockShared holders do not keep readers out).
        self.part.lock().try_writer()?;
        self.as_writer_unsequenced(|st| st.add_shared(1))?;
        self.locks.shared.insert(thread, 1);
        // The gate is closed (the shared count is not 0): the single changes already past it
        // end first. A failure here gives the hold back, so the caller holds nothing.
        if let Err(e) = self.drain_gate(false) {
            self.locks.shared.remove(&thread);
            let _ = self.release_shared_hold();
            return Err(e);
        }
        Ok(())
    }

    /// Adds `n` (may be negative) to this slot's and the global shared count, logged.
    fn add_shared(&mut self, n: i64) -> Result<()> {
        let p = &self.part;
        let mine = p.table().word_offset(p.slot(), slot_words::SHARED);
        let my_count = p.lock_mem().load(mine, Ordering::SeqCst)?;
        let global = p.lock().shared.load(Ordering::SeqCst);
        self.log
            .put_lock_word(p, mine, my_count.wrapping_add(n as u64))?;
        self.log
            .put_lock_word(p, lock_words::SHARED, global.wrapping_add(n as u64))?;
        Ok(())
    }

    /// Runs `f` as the writer with the sequence left even, for a change no reader can see
    /// (lockShared's counts; check, gc and stats, which free only unreachable blocks): its log
    /// is committed if `f` succeeds and rolled back if not, then the writer word is released.
    /// The caller has just taken the writer word.
    pub(super) fn as_writer_unsequenced<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T>,
    ) -> Result<T> {
        self.locks.writing = true;
        let r = f(self);
        let ended = if r.is_ok() {
            self.commit_log()
        } else {
            self.rollback_to(0)
        };
        self.locks.writing = false;
        self.part.lock().release_writer();
        ended?;
        r
    }

    /// unlock for `thread`: the innermost lock it holds. The outermost unlock of a lockExcl
    /// section commits it.
    pub fn unlock(&mut self, thread: u64) -> Result<()> {
        if let Some((t, d)) = self.locks.excl {
            if t == thread {
                if d > 1 {
                    self.locks.excl = Some((t, d - 1));
                    return Ok(());
                }
                self.locks.excl = None;
                let committed = self.commit_log();
                self.finish_op()?;
                return committed;
            }
        }
        match self.locks.shared.get(&thread).copied() {
            Some(d) if d > 1 => {
                self.locks.shared.insert(thread, d - 1);
                Ok(())
            }
            Some(_) => {
                self.release_shared_hold()?;
                self.locks.shared.remove(&thread);
                Ok(())
            }
            None => Err(Error::Usage("unlock() without a lock".into())),
        }
    }

    /// Gives one shared hold back. Needs the writer word for a moment; writers that find the
    /// shared count non-zero let go of it at once, so this wait is short.
    fn release_shared_hold(&mut self) -> Result<()> {
        let mut waits = 0;
        loop {
            match self.part.lock().try_writer() {
                Ok(()) => break,
                Err(Error::Busy(b)) => self.wait_internal(b, &mut waits)?,
                Err(e) => return Err(e),
            }
        }
        let result = self.as_writer_unsequenced(|st| st.add_shared(-1));
        // Writers sleeping on the shared count may go now.
        let lock = self.part.lock();
        lock.wake_if_waiting(lock.shared);
        result
    }

    /// Releases every shared hold of this process (at close).
    pub(super) fn drop_shared_holds(&mut self) -> Result<()> {
        if self.locks.shared.is_empty() {
            return Ok(());
        }
        self.locks.shared.clear();
        // The slot's count covers all of this process's threads: give every hold back.
        let count = self
            .part
            .slot_word(slot_words::SHARED)?
            .load(Ordering::SeqCst);
        for _ in 0..count {
            self.release_shared_hold()?;
        }
        Ok(())
    }

    /// Whether a lockExcl section (of any thread of this process) is open.
    pub(super) fn locks_excl_open(&self) -> bool {
        self.locks.excl.is_some()
    }

    /// Which lock `thread` holds, if any.
    pub fn held_by(&self, thread: u64) -> Option<LockKind> {
        match self.locks.excl {
            Some((t, _)) if t == thread => Some(LockKind::Excl),
            _ if self.locks.shared.contains_key(&thread) => Some(LockKind::Shared),
            _ => None,
        }
    }

    /// Hands the lock thread `from` holds (lockExcl or lockShared, with its depth) to thread
    /// `to` (the asyncio forms take the lock in a worker thread and hand it to the event loop's
    /// thread). `to` may hold lockShared already when `from` holds lockShared (the depths add
    /// up); it can hold nothing when `from` holds lockExcl, which keeps out every other
    /// thread. The lock words do not move: they name the participant, and which of its threads
    /// holds what is this record.
    pub fn hand_over(&mut self, from: u64, to: u64) -> Result<()> {
        if from == to {
            return Ok(());
        }
        if let Some((t, d)) = self.locks.excl {
            if t == from {
                if self.locks.shared.contains_key(&to) {
                    return Err(Error::Usage(
                        "the thread to hand lockExcl to holds lockShared".into(),
                    ));
                }
                self.locks.excl = Some((to, d));
                return Ok(());
            }
        }
        if let Some(d) = self.locks.shared.remove(&from) {
            *self.locks.shared.entry(to).or_insert(0) += d;
            return Ok(());
        }
        Err(Error::Usage("the thread holds no lock to hand over".into()))
    }

    /// Opens a savepoint in `thread`'s lockExcl section (transaction() nesting).
    pub fn savepoint(&mut self) -> u64 {
        self.log.savepoint()
    }

    /// Rolls the section back to `mark` (a savepoint).
    pub fn rollback_savepoint(&mut self, mark: u64) -> Result<()> {
        self.rollback_to(mark)
    }

    // ---- readers -------------------------------------------------------------------------

    /// Begins an unlocked read by `thread`: `Busy` while a change is in progress. While
    /// parts are on, the read records the version of every container it reaches
    /// (`Store::observe`, parts.rs).
    pub fn read_begin(&self, thread: u64) -> Result<ReadToken, Busy> {
        if let Some((t, _)) = self.locks.excl {
            if t == thread {
                self.read_tracking.set(false);
                return Ok(ReadToken(TOKEN_OWNER));
            }
            return Err(self.local_busy());
        }
        let token = self
            .part
            .lock()
            .words
            .read_begin()
            .map(ReadToken)
            .map_err(Busy::Seq)?;
        self.parts_read_begin();
        Ok(token)
    }

    /// Whether everything read since `read_begin` is a consistent snapshot: the sequence
    /// unchanged (`read_valid` fences Acquire first), and then every container version the
    /// read recorded.
    pub fn read_valid(&self, token: ReadToken) -> bool {
        if token.0 == TOKEN_OWNER {
            return true;
        }
        let valid = self.part.lock().words.read_valid(token.0) && self.parts_valid();
        // Steps that follow (changes) record nothing.
        self.read_tracking.set(false);
        valid
    }
}

/// Waits on the lock words without borrowing the store.
#[derive(Clone, Copy)]
pub struct Waiter {
    words: StoreLock<'static, Mapping>,
    shared: &'static AtomicU64,
    store: &'static Mapping,
    lock_file: &'static Mapping,
    active: u64,
    stride: u64,
}

impl Waiter {
    /// Whether it saw the writer word freed while it spun. If `retaken` (its owner takes it
    /// straight back after freeing it), it then lets the word be for a moment
    /// (`RELEASER_GRACE`) before it returns for the try.
    ///
    /// # Safety
    /// The store this waiter came from must still be open (its mappings alive).
    pub unsafe fn wait(&self, busy: Busy, timeout: Duration, retaken: bool) -> bool {
        let (word, seen) = match busy {
            Busy::Writer(v) => (self.words.writer_word(), v),
            Busy::Shared(v) => (self.shared, v),
            Busy::Seq(v) => (self.words.seq_word(), v),
            Busy::Part { offset, word } => match self.store.word(offset) {
                Ok(w) => (w, word),
                // An offset no container has (a damaged file): nothing to sleep on.
                Err(_) => {
                    std::thread::sleep(timeout.min(Duration::from_millis(1)));
                    return false;
                }
            },
            Busy::Active { slot, word } => {
                match self.lock_file.word(self.active + slot as u64 * self.stride) {
                    Ok(w) => (w, word),
                    Err(_) => {
                        std::thread::sleep(timeout.min(Duration::from_millis(1)));
                        return false;
                    }
                }
            }
        };
        // Spin first: lock holders keep the word for a single change (about a microsecond),
        // and a futex sleep and wake-up costs several. Yielding lets a holder that shares
        // this CPU finish.
        for i in 0..SPINS {
            // Relaxed: a hint only; `sleep` re-reads the word in its handshake.
            let now = word.load(Ordering::Relaxed);
            if now != seen {
                let freed = now == 0 && matches!(busy, Busy::Writer(_));
                if freed && retaken {
                    leave_to_releaser();
                }
                return freed;
            }
            if i % 16 == 15 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let slept = self.words.sleep(word, seen, &Kernel { timeout });
        // Never refused on the mapping (see `LockWords::release_writer`).
        debug_assert!(slept.is_ok());
        false
    }
}

/// The list event's waiting side for one participant, usable outside a step (the layer above
/// sleeps with its own locks released): `list_event`'s handshake on the mapped lock file.
#[derive(Clone, Copy)]
pub struct ListWaiter {
    event: ListEvent<'static, Mapping>,
    slot: u32,
}

impl ListWaiter {
    /// Sets this participant's waiting bit of kind `wait` (its first thread waiting so).
    ///
    /// # Safety
    /// The store this waiter came from must still be open (its mappings alive).
    pub unsafe fn announce(&self, wait: Wait) {
        // Refused only when the lock file's pages vanished (FORMAT.md §8.1): the step that
        // follows reports that; a bit that could not be set only costs this waiter a slice.
        let _ = self.event.announce(self.slot, wait);
    }

    /// Clears this participant's waiting bit of kind `wait` (its last thread waiting so
    /// leaves).
    ///
    /// # Safety
    /// As [`ListWaiter::announce`].
    pub unsafe fn withdraw(&self, wait: Wait) {
        // As in `announce`: a bit left set only costs producers wake-ups.
        let _ = self.event.withdraw(self.slot, wait);
    }

    /// Clears both of this participant's waiting bits (a closing store).
    ///
    /// # Safety
    /// As [`ListWaiter::announce`].
    pub unsafe fn withdraw_all(&self) {
        let _ = self.event.withdraw_all(self.slot);
    }

    /// The event value to sleep on, read before a try.
    ///
    /// # Safety
    /// As [`ListWaiter::announce`].
    pub unsafe fn seen(&self) -> u32 {
        self.event.seen().unwrap_or(0)
    }

    /// Sleeps while the event word holds `seen`, `timeout` at most.
    ///
    /// # Safety
    /// As [`ListWaiter::announce`].
    pub unsafe fn sleep(&self, seen: u32, timeout: Duration) {
        let _ = self.event.sleep(seen, &Kernel { timeout });
    }

    /// Wakes this process's own sleepers on the event word (a cancelled wait), and every other
    /// sleeper with them (they try once and sleep again).
    ///
    /// # Safety
    /// As [`ListWaiter::announce`].
    pub unsafe fn wake_all(&self) {
        let w = self.event.event_word();
        // SeqCst: as `notify`'s increment.
        w.fetch_add(1, Ordering::SeqCst);
        futex::wake(w, i32::MAX);
    }
}

/// Checks of the lock word before a waiter sleeps in the kernel.
const SPINS: u32 = 64;

/// How long a spinning waiter lets the writer word be after seeing it freed, when its owner
/// takes it straight back after freeing it.
const RELEASER_GRACE: Duration = Duration::from_micros(3);

/// Waits [`RELEASER_GRACE`] after seeing the writer word freed, then returns for the try.
///
/// Why: a process that changes the store in a loop (`lockExcl; root['x'] += 1; unlock`) takes
/// the word again a fraction of a microsecond after it frees it. A waiter on another core that
/// wins that race moves the lock's and the change's cache lines to its core, and the loser
/// becomes a waiter in turn, so the processes together make fewer changes than one alone.
/// Only a waiter whose try right after a release lost to the same owner waits so
/// (`SharedStore::wait_for`): an owner with work of its own between its sections is not back
/// that soon, and a waiter that let it be would leave the word idle while it could be doing
/// its own section. Measured on 2 cores (`benches/python/lock_handoff.py`, builds alternated):
/// with 4 processes in such a loop the word changed hands at 22% to 25% of the sections, and at
/// 5% to 8% with the grace; with `--work 60` (about a microsecond of Python between sections)
/// nothing changed. A grace for every waiter cut the hand-offs further but cost a third of the
/// throughput with `--work 60`.
///
/// The waiter still tries once the grace is over, whether or not the word was taken again, so
/// it is never shut out: its try wins whenever it falls between two of the releaser's
/// sections. (A waiter that instead went back to waiting whenever the releaser came back would
/// never get the word from a process that frees it for less than the grace.) A waiter that
/// slept in the kernel tries as soon as it wakes: it has waited long already.
fn leave_to_releaser() {
    let seen_free = Instant::now();
    while seen_free.elapsed() < RELEASER_GRACE {
        std::hint::spin_loop();
    }
}

/// The store lock's sleep and wake-up ([`Futex`]) on the kernel's futex, shared between
/// processes. Every sleep ends after `timeout` at the latest, so that a waiter can look for a
/// dead holder (`sync::futex`).
pub(super) struct Kernel {
    timeout: Duration,
}

/// What releasers wake with (a wake-up has no timeout).
pub(super) const KERNEL: Kernel = Kernel {
    timeout: Duration::ZERO,
};

impl Futex for Kernel {
    fn wait(&self, word: &AtomicU64, expected: u32) {
        futex::wait(word, expected, self.timeout);
    }

    fn wake(&self, word: &AtomicU64) {
        futex::wake(word, i32::MAX);
    }
}
