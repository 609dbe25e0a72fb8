//! Sleeping until a container changes, across processes: the *event* word and the
//! participants' *waiting* bits in the lock file (FORMAT.md §6.1, §10.10). (Named for its
//! first use, lists gaining items; every wait for a change uses it.)
//!
//! Problem. A consumer blocked on an empty list (`List.pop(block=True)`, `popleft`, `move_to`)
//! and a thread in `Store.wait` (until a container's version differs from a token) must sleep,
//! not poll, and wake when a change in any process could end their wait; a change must not pay
//! a system call when nobody sleeps; a waiter SIGKILLed at any instant, asleep or not, must not
//! break any later wait.
//!
//! Producers: every committed change that moved a container's version (`bump_version`, so
//! every change of contents: list items added or taken, a dict's, set's or cache's change),
//! after its commit, or when made inside a lockExcl section (`notify_if_changed` in
//! `object/session.rs`). A waiter's *try* below is a pop's change, or `Store.wait`'s read of
//! the versions it compares with its token (`SharedStore::wait_versions`).
//!
//! Mechanism. One store-wide *event* word (a futex word: its low 32 bits) and two *waiting*
//! bits per participant slot (two sets of 1024 bits in 16 words each): the *items* bit while a
//! thread of it waits for a list to gain items, the *change* bit while one waits for any
//! change ([`Wait`]). A change that adds no list item reads only the change bits, so
//! consumers' pops never wake other consumers. The two sides (Dekker's handshake, as the
//! store lock's sleep and wake in `store_lock.rs`):
//!
//! | waiter ([`ListEvent::announce`], [`ListEvent::seen`], [`ListEvent::sleep`]) | producer ([`ListEvent::notify`]) |
//! |---|---|
//! | sets its slot's bit of its kind (once, while any thread of the participant waits so) | makes its change (committed) |
//! | fence(SeqCst), reads the event word: `seen` | fence(SeqCst) |
//! | tries (takes an item, or reads the versions): done if it got one, or a version moved | reads the change bits of the attached slots (and the items bits, if it added list items): if any is set, event += 1 and `futex_wake` (all) |
//! | `futex_wait(event, seen)`, then back to `seen` | |
//! | clears its bit when its participant's last waiter leaves | |
//!
//! Of the two fences one comes first. If the producer's does, the waiter's try (after its own
//! fence) sees the item. If the waiter's does, the producer sees the bit and moves the event
//! word; the waiter read `seen` either before that (then the kernel's compare in `futex_wait`
//! fails, or the wake-up finds it asleep) or after (then, its load having read the SeqCst
//! increment, its try sees the item added before it). So no wake-up is lost. A wake-up for
//! nothing (another list gained the item, another waiter took it, the change was rolled back)
//! costs the waiter one try and it sleeps again. Waiters sleep in slices (the caller's
//! timeout), so a producer killed between its commit and its wake-up delays a waiter by one
//! slice at most.
//!
//! A waiter killed anywhere leaves at most its bit set: producers then move the event word and
//! make a wake-up call for nobody, which costs a system call and nothing else, until the dead
//! participant's recovery (or the next participant to attach in its slot) clears the bit. The
//! kernel takes a killed sleeper off the futex queue. `loom-tests/tests/list_wake.rs` checks
//! the handshake (a futex without timeout, so a lost wake-up is a deadlock there) and the kills.

use crate::store_lock::Futex;
use crate::sync::{fence, AccessError, AtomicU64, Ordering, WordStore};

/// Where the words lie in the lock file.
#[derive(Clone, Copy, Debug)]
pub struct EventOffsets {
    /// The event word (a futex word).
    pub event: u64,
    /// The first of the *items* waiting-bit words (blocked pops): bit `s % 64` of word `s / 64`
    /// is slot `s`'s.
    pub bits: u64,
    /// The first of the *change* waiting-bit words (`Store.wait`), laid out as `bits`.
    pub change_bits: u64,
    /// How many bit words each set has (slots / 64, rounded up).
    pub bit_words: u64,
}

/// What a waiter waits for, and so which of its participant's two bits it sets: a blocked pop
/// cares only for lists that gain items, so the changes that add none (a pop, a dict's
/// change) need not wake it, and two consumers' pops do not wake each other's processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// A list to gain items.
    Items,
    /// Any change of a container.
    Change,
}

/// The list event's words, resolved once.
pub struct ListEvent<'a, W: WordStore> {
    lock_file: &'a W,
    event: &'a AtomicU64,
    at: EventOffsets,
}

impl<W: WordStore> Clone for ListEvent<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W: WordStore> Copy for ListEvent<'_, W> {}

impl<'a, W: WordStore> ListEvent<'a, W> {
    pub fn new(lock_file: &'a W, at: EventOffsets) -> Result<Self, AccessError> {
        // Every bit word must exist (checked once, so `bit` below can only fail a kill).
        for k in 0..at.bit_words {
            lock_file.word(at.bits + 8 * k)?;
            lock_file.word(at.change_bits + 8 * k)?;
        }
        Ok(ListEvent {
            lock_file,
            event: lock_file.word(at.event)?,
            at,
        })
    }

    /// The event word (to sleep on).
    pub fn event_word(&self) -> &'a AtomicU64 {
        self.event
    }

    fn set_of(&self, wait: Wait) -> u64 {
        match wait {
            Wait::Items => self.at.bits,
            Wait::Change => self.at.change_bits,
        }
    }

    fn bit(&self, slot: u32, wait: Wait) -> Result<(&'a AtomicU64, u64), AccessError> {
        let k = slot as u64 / 64;
        let set = self.set_of(wait);
        if k >= self.at.bit_words {
            return Err(AccessError::OutOfBounds {
                offset: set + 8 * k,
                size: set + 8 * self.at.bit_words,
            });
        }
        Ok((self.lock_file.word(set + 8 * k)?, 1 << (slot % 64)))
    }

    /// The waiter's first step: sets `slot`'s waiting bit. The caller calls it once for all
    /// the threads of its participant that wait at the same time (the bit is the
    /// participant's), and [`ListEvent::withdraw`] when the last of them leaves.
    pub fn announce(&self, slot: u32, wait: Wait) -> Result<(), AccessError> {
        let (w, b) = self.bit(slot, wait)?;
        self.lock_file.step()?;
        // SeqCst: ordered before the fence in `seen` (the handshake is fence to fence).
        w.fetch_or(b, Ordering::SeqCst);
        Ok(())
    }

    /// Clears `slot`'s waiting bit: its participant's last waiter leaves, or the recovery of a
    /// dead participant (or the next to attach in its slot) clears what it left.
    pub fn withdraw(&self, slot: u32, wait: Wait) -> Result<(), AccessError> {
        let (w, b) = self.bit(slot, wait)?;
        self.lock_file.step()?;
        // Relaxed would do (a bit left set only costs wake-ups); SeqCst keeps it simple to
        // reason about next to `announce`.
        w.fetch_and(!b, Ordering::SeqCst);
        Ok(())
    }

    /// The waiter, after `announce` and before each try: the event value to sleep on if the
    /// try finds nothing.
    pub fn seen(&self) -> Result<u32, AccessError> {
        // SeqCst fence: the bit set in `announce` is ordered before the tries that follow.
        // Pairs with the fence in `notify`: if that one comes first, the try sees the item;
        // if this one does, the producer sees the bit.
        fence(Ordering::SeqCst);
        self.lock_file.step()?;
        // SeqCst (an Acquire would do): a value of `notify`'s increment makes the item it
        // followed visible to the try.
        Ok(self.event.load(Ordering::SeqCst) as u32)
    }

    /// Sleeps while the event word holds `seen` (returns early as [`Futex::wait`] does: the
    /// caller tries again).
    pub fn sleep<F: Futex>(&self, seen: u32, futex: &F) -> Result<(), AccessError> {
        self.lock_file.step()?;
        futex.wait(self.event, seen);
        Ok(())
    }

    /// Clears both of `slot`'s bits (the recovery of a dead participant, an attach).
    pub fn withdraw_all(&self, slot: u32) -> Result<(), AccessError> {
        self.withdraw(slot, Wait::Items)?;
        self.withdraw(slot, Wait::Change)
    }

    /// The producer's side, after a change of a container is committed (or its lockExcl
    /// section has it): wakes every waiter if any participant below `slots` (the `slots high`
    /// word) waits for a change, or, when the change added list items (`grew`), for items.
    /// Returns whether it woke.
    pub fn notify<F: Futex>(&self, slots: u64, grew: bool, futex: &F) -> Result<bool, AccessError> {
        // SeqCst fence: the change's stores are ordered before the loads of the bits below.
        // Pairs with the fence in `seen`.
        fence(Ordering::SeqCst);
        let words = slots.div_ceil(64).min(self.at.bit_words);
        for k in 0..words {
            let mut any = false;
            for set in [self.at.change_bits, self.at.bits]
                .into_iter()
                .take(1 + grew as usize)
            {
                self.lock_file.step()?;
                // SeqCst: see the fence above.
                any |= self.lock_file.word(set + 8 * k)?.load(Ordering::SeqCst) != 0;
            }
            if any {
                self.lock_file.step()?;
                // SeqCst: a waiter that reads the new value sees the change (see `seen`).
                self.event.fetch_add(1, Ordering::SeqCst);
                futex.wake(self.event);
                return Ok(true);
            }
        }
        Ok(false)
    }
}
