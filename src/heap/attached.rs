//! A store opened and attached as a participant: the region, the slot, and the heap over them.
//! This is what the object layer (and the tests and benchmarks of the allocator) start from.

use super::{Error as HeapError, Heap, HeapStats};
use crate::region::{self, AttachLiveness, Attachment, Mapping, OpenOptionsRegion, Region};
use crate::sync::{Liveness, Ordering, WordStore};
use std::path::Path;

/// Errors of opening and attaching.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    Region(region::Error),
    Heap(HeapError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Region(e) => write!(f, "{e}"),
            Error::Heap(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<region::Error> for Error {
    fn from(e: region::Error) -> Self {
        Error::Region(e)
    }
}

impl From<HeapError> for Error {
    fn from(e: HeapError) -> Self {
        Error::Heap(e)
    }
}

impl From<crate::sync::AccessError> for Error {
    fn from(e: crate::sync::AccessError) -> Self {
        Error::Region(e.into())
    }
}

/// Liveness while taking over a slot: the slot's previous occupant is dead.
struct Previous<'a> {
    live: &'a AttachLiveness,
    dead: u32,
}

impl Liveness for Previous<'_> {
    fn is_alive(&self, slot: u32) -> bool {
        slot != self.dead && self.live.is_alive(slot)
    }
}

/// What the layer above does for a dead participant before the heap recovers its slot and
/// frees it (the object layer rolls back its undo log and releases its locks). Runs under the
/// recovery lock, with the slot's liveness byte held (or the slot taken over by this process).
pub type SlotRecovery = Box<dyn Fn(&Attached, u32) -> Result<(), HeapError> + Send>;

/// An open store with this process attached to it as one participant.
///
/// Not `Sync`: a participant's slot (its journals and block cache) is written without atomic
/// read-modify-writes, so one thread at a time uses it. Threads that allocate at once attach
/// once each.
pub struct Attached {
    region: Region,
    attachment: Option<Attachment>,
    live: AttachLiveness,
    hook: Option<SlotRecovery>,
    _one_thread: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl Attached {
    /// Opens (creating if missing) the store at `path`, attaches, and recovers whatever dead
    /// participants left in flight.
    pub fn open(path: &Path) -> Result<Attached, Error> {
        Self::from_region(Region::open(
            path,
            OpenOptionsRegion {
                create: true,
                durable: false,
                readonly: false,
            },
        )?)
    }

    /// As `open`, with the layer above's recovery of dead participants (see [`SlotRecovery`]),
    /// and the region's options (durable: persist barriers that flush, FORMAT.md §10.8;
    /// readonly: a participant that never writes the store file, so never recovers others).
    pub fn open_with(
        path: &Path,
        hook: SlotRecovery,
        opts: OpenOptionsRegion,
    ) -> Result<Attached, Error> {
        Self::from_region_with(Region::open(path, opts)?, Some(hook))
    }

    pub fn from_region(region: Region) -> Result<Attached, Error> {
        Self::from_region_with(region, None)
    }

    fn from_region_with(region: Region, hook: Option<SlotRecovery>) -> Result<Attached, Error> {
        let attachment = region.attach()?;
        let live = attachment.liveness();
        let this = Attached {
            region,
            attachment: Some(attachment),
            live,
            hook,
            _one_thread: std::marker::PhantomData,
        };
        let att = this.attachment();
        if att.needs_recovery {
            att.lock_recovery()?;
            // The slot's previous occupant died; until `activate` the slot is its, so its
            // journals must count as a dead participant's, not as ours.
            let live = Previous {
                live: &this.live,
                dead: att.slot,
            };
            let table = this.region.table(&live);
            let result = match &this.hook {
                Some(hook) => hook(&this, att.slot),
                None => Ok(()),
            };
            let result = result.and_then(|_| {
                Heap::new(this.region.store(), this.region.geometry(), table, att.slot)
                    .recover_participant(att.slot)
            });
            att.unlock_recovery()?;
            result?;
        }
        att.activate(&this.region.table(&this.live))?;
        this.heap().vet_cache()?;
        this.recover_dead()?;
        Ok(this)
    }

    fn attachment(&self) -> &Attachment {
        self.attachment.as_ref().expect("attached until drop")
    }

    /// Whether the participant attached to `slot` is alive (asks the kernel).
    pub fn is_alive(&self, slot: u32) -> bool {
        slot == self.slot() || self.live.is_alive(slot)
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    pub fn slot(&self) -> u32 {
        self.attachment().slot
    }

    /// This participant's heap. Each call makes a fresh handle (its per-class hints start
    /// empty); keep one for a run of allocations.
    pub fn heap(&self) -> Heap<'_, Mapping, AttachLiveness> {
        let table = self.region.table(&self.live);
        Heap::new(
            self.region.store(),
            self.region.geometry(),
            table,
            self.slot(),
        )
    }

    /// Recovers every participant that died while attached: finishes or undoes its in-flight
    /// allocator step and frees its slot. Returns how many were recovered.
    pub fn recover_dead(&self) -> Result<u32, Error> {
        if self.region.is_readonly() {
            return Ok(0); // recovery writes the store file: a writable participant's job
        }
        let table = self.region.table(&self.live);
        let att = self.attachment();
        // A quick look first: most of the time nobody is dead and no lock is needed.
        let any_dead = (0..table.slots).try_fold(false, |found, slot| -> Result<bool, Error> {
            Ok(found
                || (slot != att.slot
                    && table.status(slot)? == region::table::STATUS_ATTACHED
                    && !self.live.is_alive(slot)))
        })?;
        if !any_dead {
            return Ok(0);
        }
        att.lock_recovery()?;
        let result = self.recover_dead_locked();
        att.unlock_recovery()?;
        result
    }

    fn recover_dead_locked(&self) -> Result<u32, Error> {
        let table = self.region.table(&self.live);
        let att = self.attachment();
        let mut n = 0;
        for slot in 0..table.slots {
            if slot == att.slot
                || table.status(slot)? != region::table::STATUS_ATTACHED
                || self.live.is_alive(slot)
            {
                continue;
            }
            if !att.try_lock_slot(slot)? {
                continue; // someone else is recovering it, or it came back to life (reused)
            }
            let result = (|| -> Result<(), Error> {
                // Re-check under the lock: another recoverer may have finished first.
                if table.status(slot)? == region::table::STATUS_ATTACHED {
                    if let Some(hook) = &self.hook {
                        hook(self, slot)?;
                    }
                    self.heap().recover_participant(slot)?;
                    table.release(slot)?;
                    n += 1;
                }
                Ok(())
            })();
            att.unlock_slot(slot)?;
            result?;
        }
        Ok(n)
    }

    /// Repairs what dead participants left when their journals were lost (a lock file deleted
    /// while nobody was attached): see [`Heap::repair`]. Runs under the recovery lock.
    pub fn repair(&self) -> Result<(), Error> {
        let att = self.attachment();
        att.lock_recovery()?;
        let result = self.heap().repair().map_err(Error::from);
        att.unlock_recovery()?;
        result
    }

    /// Runs [`Attached::repair`] if the lock file says a repair is pending (it was rebuilt, and
    /// no writable opener has repaired the store since), then clears that word.
    pub fn repair_if_pending(&self) -> Result<(), Error> {
        let pending = self
            .region
            .lock_words()
            .word(region::lockfile::REPAIR_PENDING)?;
        if pending.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        self.with_recovery_lock(|| -> Result<(), Error> {
            // Again under the lock: another opener may have repaired meanwhile.
            if pending.load(Ordering::SeqCst) != 0 {
                self.heap().repair()?;
                pending.store(0, Ordering::SeqCst);
            }
            Ok(())
        })
    }

    /// Runs `f` under the recovery lock (exclusive with every recovery and repair, in every
    /// process): for the layer above's own recovery steps.
    pub fn with_recovery_lock<T, E: From<Error>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let att = self.attachment();
        att.lock_recovery().map_err(|e| E::from(e.into()))?;
        let result = f();
        att.unlock_recovery().map_err(|e| E::from(e.into()))?;
        result
    }

    /// Allocator consistency check plus counts (exact when no one is mid-step).
    pub fn check(&self) -> Result<HeapStats, Error> {
        Ok(self.heap().check()?)
    }

    /// Detaches cleanly: the slot is marked free (any blocks still journaled become garbage
    /// for the next sweep). Its block cache stays in the slot for the next participant that
    /// attaches to it (FORMAT.md §6.5): a close moves no block, so a kill inside it loses none.
    pub fn close(mut self) -> Result<(), Error> {
        self.detach()
    }

    fn detach(&mut self) -> Result<(), Error> {
        if let Some(att) = self.attachment.take() {
            if !att.is_inherited() {
                att.detach(&self.region.table(&self.live))?;
            }
        }
        Ok(())
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.detach();
    }
}
