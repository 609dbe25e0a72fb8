//! A file mapped once over a large address reservation, so that it never moves.
//!
//! The whole reservation is mapped `MAP_SHARED` over the file at open. Bytes beyond the file's
//! end would fault (SIGBUS) if touched, so nothing is touched beyond the *published size*: a
//! word of the file itself (the header's `file_size`) that only grows, and only after the bytes
//! below it were reserved on disk with `posix_fallocate`. When another process grows the file,
//! this mapping already covers the new bytes: the process sees growth by re-reading the word,
//! with no remap (no remap storms, no "map full").
//!
//! A page can still vanish: another process truncates the file. Each mapping registers its
//! range with the SIGBUS handler (`vanish`), which turns the fault into a zero page and poisons
//! the mapping; every access after that fails ([`AccessError::Truncated`]).

use super::vanish::{self, Slot};
use crate::sync::{AccessError, AtomicBool, AtomicU64, IoFailure, Ordering, WordStore};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// Where the published size of a mapping lives.
#[derive(Clone, Copy)]
pub(crate) enum SizeSource {
    /// A fixed size (the lock file).
    Fixed(u64),
    /// The word at this offset of the mapping itself holds the published size.
    Word(u64),
}

pub struct Mapping {
    base: *mut u8,
    reserve: u64,
    file: Arc<File>,
    /// The file's path, for the errors of flushes and growth (never used to reopen it).
    path: std::path::PathBuf,
    source: SizeSource,
    /// The mapping's entry in the SIGBUS handler's table (or `own`, when the table was full):
    /// its `known` is this process's last view of the published size (a cache: only ever
    /// raised, except by the handler, which zeroes it and poisons the mapping).
    slot: *const Slot,
    /// The slot when the table was full (the mapping is then not protected).
    own: Option<Box<Slot>>,
    /// Growth steps never go past this (the address reservation, or a test's limit).
    limit: u64,
    /// Persist barriers flush (a durable store, FORMAT.md §10.8).
    durable: AtomicBool,
    /// Mapped with PROT_WRITE (a read-only store's mapping is not: a write would fault).
    writable: bool,
}

// SAFETY: the mapping is shared memory accessed only through atomics (`word`) or through
// raw pointers whose users follow the store's protocols; the struct itself holds no
// thread-affine state.
unsafe impl Send for Mapping {}
// SAFETY: as above: all shared access goes through `&AtomicU64` or checked raw ranges.
unsafe impl Sync for Mapping {}

/// Test support (the power-cut test, tests/power_cut.rs): a function called after every
/// completed flush of a store mapping in this process, when the file on disk is exactly what
/// the mapping held at the start of the flush. Not for production use.
static FLUSH_HOOK: std::sync::Mutex<Option<fn()>> = std::sync::Mutex::new(None);

#[doc(hidden)]
pub fn set_flush_hook(hook: Option<fn()>) {
    *FLUSH_HOOK.lock().unwrap_or_else(|e| e.into_inner()) = hook;
}

/// Reservations tried from largest to smallest: 1 TiB first, halving while the kernel refuses
/// (an address-space rlimit, many stores open at once), never below what the file needs.
const RESERVE_MAX: u64 = 1 << 40;

/// Store mappings of this process share a budget of address space: half of what the process
/// may map (64 TiB of the 128 TiB a 64-bit Linux process has, or half of its RLIMIT_AS), so
/// that opening store after store ends in a clear error while the process still has room for
/// everything else. Each store takes at most half of what is left (the first one all of it),
/// at most 1 TiB, never less than `RESERVE_FLOOR` or than its file.
const RESERVE_FLOOR: u64 = 64 << 20;

/// Bytes of address space reserved by the store mappings alive in this process.
static RESERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn reserve_budget() -> u64 {
    static BUDGET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        let r = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) };
        let space = if r == 0 && lim.rlim_cur != libc::RLIM_INFINITY {
            lim.rlim_cur
        } else {
            128 << 40
        };
        space.min(128 << 40) / 2
    })
}

impl Mapping {
    /// Maps `file` (opened at `path`) over a reservation of at least `min_reserve` bytes.
    pub(crate) fn new(
        file: Arc<File>,
        path: &std::path::Path,
        source: SizeSource,
        initial_size: u64,
        min_reserve: u64,
        writable: bool,
    ) -> io::Result<Mapping> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let min_reserve = min_reserve.next_multiple_of(4096).max(4096);
        let budgeted = matches!(source, SizeSource::Word(_));
        let mut reserve = match source {
            SizeSource::Fixed(n) => n.next_multiple_of(4096),
            SizeSource::Word(_) => {
                // Relaxed: a count for sizing; racing openers may each take a share of the
                // same remainder, which only leaves the budget a little over-spent.
                let held = RESERVED.load(Ordering::Relaxed);
                let left = reserve_budget().saturating_sub(held);
                // The first store may take the whole budget (a process with a tight RLIMIT_AS
                // and one store keeps the room it had); later ones half of what is left.
                let share = match if held == 0 { left } else { left / 2 } {
                    0 => 0,
                    n => 1u64 << (63 - n.leading_zeros()),
                };
                let mut reserve = RESERVE_MAX.min(share);
                if reserve < min_reserve.max(RESERVE_FLOOR) && held == 0 {
                    // The only store: let the kernel say whether what the file needs fits.
                    reserve = min_reserve.max(RESERVE_FLOOR);
                }
                if reserve < min_reserve.max(RESERVE_FLOOR) {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        format!(
                            "no address space left for another store in this process: the \
                             stores it has open reserve {held} bytes (up to 1 TiB each, {} \
                             in all); close some",
                            reserve_budget()
                        ),
                    ));
                }
                reserve
            }
        };
        loop {
            // SAFETY: a fresh mapping chosen by the kernel (addr null); the fd is open for the
            // call. MAP_NORESERVE: the reservation costs address space, not memory or swap.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    reserve as usize,
                    prot,
                    libc::MAP_SHARED | libc::MAP_NORESERVE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                if budgeted {
                    RESERVED.fetch_add(reserve, Ordering::Relaxed);
                }
                let (slot, own) = match vanish::register(p as usize, reserve as usize, initial_size)
                {
                    Some(s) => (s as *const Slot, None),
                    None => {
                        let b = Slot::unregistered(initial_size);
                        (&*b as *const Slot, Some(b))
                    }
                };
                return Ok(Mapping {
                    base: p as *mut u8,
                    reserve,
                    file,
                    path: path.to_path_buf(),
                    source,
                    slot,
                    own,
                    limit: reserve,
                    durable: AtomicBool::new(false),
                    writable,
                });
            }
            let err = io::Error::last_os_error();
            // ENOMEM: no room for the reservation; EINVAL: some tools (valgrind) refuse huge
            // lengths. Either way a smaller reservation may do.
            let retry = matches!(err.raw_os_error(), Some(libc::ENOMEM) | Some(libc::EINVAL));
            if !retry || reserve / 2 < min_reserve {
                return Err(if err.raw_os_error() == Some(libc::ENOMEM) {
                    io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        format!("no address space left to map the store ({min_reserve} bytes)"),
                    )
                } else {
                    err
                });
            }
            reserve /= 2;
        }
    }

    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    /// The mapping's slot (in the handler's table, or `own`).
    #[inline(always)]
    fn slot(&self) -> &Slot {
        // SAFETY: `slot` points into the static table or into `own`, which lives as long as
        // `self` (a Box does not move when the Mapping does).
        unsafe { &*self.slot }
    }

    /// Whether a page of this mapping vanished (the file was truncated under this process):
    /// every access fails from then on.
    pub fn is_poisoned(&self) -> bool {
        self.slot().is_poisoned()
    }

    /// The error of every access to a poisoned mapping, and of the step that touched the
    /// vanished page.
    #[cold]
    #[inline(never)]
    pub fn truncated_error(&self, offset: u64) -> AccessError {
        AccessError::Truncated {
            offset,
            path: self.path.clone(),
        }
    }

    /// Fails if a page of this mapping vanished (see [`Mapping::is_poisoned`]).
    pub fn check_intact(&self) -> Result<(), AccessError> {
        if self.is_poisoned() {
            return Err(self.truncated_error(0));
        }
        Ok(())
    }

    /// The first byte of the mapping (tests that poison it).
    #[doc(hidden)]
    pub fn base_address(&self) -> usize {
        self.base as usize
    }

    /// Lowers the growth limit (tests of a full store).
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit.min(self.reserve);
    }

    /// The published size as the file says now (not the cached view).
    fn published(&self) -> u64 {
        match self.source {
            SizeSource::Fixed(n) => n,
            SizeSource::Word(off) => {
                // The size word lies below every published size (it is in the header), so it
                // can be read without a bounds check beyond the reservation.
                debug_assert!(off + 8 <= self.reserve);
                // SAFETY: `off` is an 8-aligned offset inside the header, which exists in any
                // file this mapping was made for (checked at open).
                let w = unsafe { &*(self.base.add(off as usize) as *const AtomicU64) };
                // Acquire pairs with the AcqRel fetch_max in `grow_to`: bytes below the size
                // were reserved before it was published.
                w.load(Ordering::Acquire).min(self.reserve)
            }
        }
    }

    /// The error for an access at `end` beyond this process's bytes: out of bounds, unless
    /// the store is larger than this process's address reservation (another process with a
    /// larger one grew it), which is a limit of this process, not damage.
    fn beyond(&self, offset: u64, end: u64, size: u64) -> AccessError {
        if let SizeSource::Word(off) = self.source {
            // SAFETY: as in `published`.
            let w = unsafe { &*(self.base.add(off as usize) as *const AtomicU64) };
            let whole = w.load(Ordering::Acquire);
            if whole > self.reserve && end <= whole {
                return AccessError::Full {
                    wanted: whole,
                    reason: format!(
                        "this process could reserve only {} bytes of address space for the \
                         store (raise its address-space limit, or open fewer stores at once)",
                        self.reserve
                    ),
                };
            }
        }
        AccessError::OutOfBounds { offset, size }
    }

    /// The published size, raising the cache to it; 0 once the mapping is poisoned.
    fn refresh(&self) -> u64 {
        let slot = self.slot();
        if slot.is_poisoned() {
            return 0;
        }
        let mut p = self.published();
        // Relaxed: `known` is this process's cache; the Acquire above ordered the data. Only
        // a larger size is written (a read-modify-write on every call would cost a locked
        // instruction on a hot path).
        let known = slot.known.load(Ordering::Relaxed);
        if p > known {
            // A grower reserves the bytes before it publishes their size, so the file is at
            // least this long, unless the size word is damaged or hostile: then the bytes past
            // the file's end would fault (SIGBUS) when touched. One fstat per growth seen.
            p = match self.file.metadata() {
                Ok(m) => p.min(m.len()),
                Err(_) => known,
            };
            // SeqCst, and the flag read again after it: the handler stores the flag and then
            // zeroes the size (both SeqCst), so either this read sees the flag or the
            // handler's zero lands after this raise. Either way no access passes the fast
            // path of `bytes` once the flag is seen.
            slot.known.fetch_max(p, Ordering::SeqCst);
            if slot.is_poisoned() {
                slot.known.store(0, Ordering::SeqCst);
                return 0;
            }
        }
        p
    }

    /// A raw pointer to `len` bytes at `offset`, checked against the published size. The bytes
    /// may change under the caller at any time (other processes): use them only under the
    /// protocol that owns them, and never as a Rust reference that outlives that step.
    #[inline]
    pub fn bytes(&self, offset: u64, len: u64) -> Result<*mut u8, AccessError> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| AccessError::OutOfBounds {
                offset,
                size: self.size(),
            })?;
        let mut size = self.slot().known.load(Ordering::Relaxed);
        if end > size {
            size = self.refresh();
            if end > size {
                if self.is_poisoned() {
                    return Err(self.truncated_error(offset));
                }
                return Err(self.beyond(offset, end, size));
            }
        }
        // SAFETY: offset + len <= published size <= reserve, so the range is inside the mapping.
        Ok(unsafe { self.base.add(offset as usize) })
    }

    /// Makes every persist barrier ([`WordStore::barrier`]) flush the mapping: a durable store.
    pub fn set_durable(&self, durable: bool) {
        // Relaxed: read by this process's own threads, which got the store through a
        // synchronizing hand-over after this call.
        self.durable.store(durable, Ordering::Relaxed);
    }

    pub fn is_durable(&self) -> bool {
        self.durable.load(Ordering::Relaxed)
    }

    /// The error of a failed `op` on this mapping's file, naming the file. Cold and never
    /// inlined: `barrier` runs on every allocator step and must stay small enough to inline.
    #[cold]
    #[inline(never)]
    fn io_error(&self, op: &'static str, source: io::Error) -> AccessError {
        AccessError::Io(Box::new(IoFailure {
            op,
            path: Some(self.path.clone()),
            source,
        }))
    }

    /// Flushes the mapping's dirty pages below the published size to disk.
    pub fn sync(&self) -> io::Result<()> {
        if self.is_poisoned() {
            return Err(io::Error::other(self.truncated_error(0).to_string()));
        }
        let size = self.refresh();
        let base = self.base as *mut libc::c_void;
        // SAFETY: [base, base + size) lies inside the mapping.
        let r = unsafe { libc::msync(base, size as usize, libc::MS_SYNC) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let hook = *FLUSH_HOOK.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hook) = hook {
            hook();
        }
        Ok(())
    }
}

impl WordStore for Mapping {
    fn size(&self) -> u64 {
        self.refresh()
    }

    #[inline]
    fn word(&self, offset: u64) -> Result<&AtomicU64, AccessError> {
        if offset % 8 != 0 {
            return Err(AccessError::Misaligned { offset });
        }
        let p = self.bytes(offset, 8)?;
        // SAFETY: `p` is 8-aligned (base is page-aligned, offset 8-aligned) and points to 8
        // bytes inside the published part of the mapping, which stays mapped as long as
        // `self` lives; shared words are only ever accessed atomically.
        Ok(unsafe { &*(p as *const AtomicU64) })
    }

    fn grow_to(&self, min_size: u64) -> Result<(), AccessError> {
        self.check_intact()?;
        if min_size > self.size() && !self.writable {
            return Err(AccessError::Full {
                wanted: min_size,
                reason: "the store is open read-only".into(),
            });
        }
        let SizeSource::Word(size_off) = self.source else {
            return if min_size <= self.size() {
                Ok(())
            } else {
                Err(AccessError::Full {
                    wanted: min_size,
                    reason: "fixed-size mapping".into(),
                })
            };
        };
        loop {
            let cur = self.refresh();
            if cur >= min_size {
                return Ok(());
            }
            if min_size > self.limit {
                return Err(AccessError::Full {
                    wanted: min_size,
                    reason: format!(
                        "the store's address reservation is {} bytes (close other stores or raise \
                         the address-space limit)",
                        self.limit
                    ),
                });
            }
            // Grow by at least 1/8 of the size and at least 1 MiB, so that growth costs a
            // logarithmic number of system calls, but never past the limit.
            let mut target = min_size
                .max(cur + cur / 8)
                .next_multiple_of(1 << 20)
                .min(self.limit)
                .max(min_size);
            let mut r = fallocate(&self.file, cur, target);
            if r != 0 && target > min_size && matches!(r, libc::ENOSPC | libc::EFBIG | libc::EDQUOT)
            {
                // The generous step does not fit: take only what this request needs, so that
                // "full" means the room is really used up.
                target = min_size
                    .next_multiple_of(4096)
                    .min(self.limit)
                    .max(min_size);
                r = fallocate(&self.file, cur, target);
            }
            if r != 0 {
                let err = io::Error::from_raw_os_error(r);
                return Err(match r {
                    libc::ENOSPC | libc::EFBIG | libc::EDQUOT => AccessError::Full {
                        wanted: target,
                        reason: err.to_string(),
                    },
                    _ => self.io_error("posix_fallocate", err),
                });
            }
            // The reservation (the file's new length) on disk before a size that claims it.
            self.barrier()?;
            let w = self.word(size_off)?;
            // AcqRel: the Release half publishes the reservation made above (pairs with the
            // Acquire in `published`); racing growers may each fallocate, the largest wins.
            w.fetch_max(target, Ordering::AcqRel);
        }
    }

    fn max_size(&self) -> u64 {
        self.limit
    }

    fn barrier(&self) -> Result<(), AccessError> {
        if self.is_durable() {
            self.sync()
                .map_err(|source| self.io_error("msync", source))?;
        }
        Ok(())
    }
}

/// Reserves bytes `from..to` of `file` on disk; returns 0 or an errno.
fn fallocate(file: &File, from: u64, to: u64) -> i32 {
    // SAFETY: plain system call on an open descriptor.
    unsafe {
        libc::posix_fallocate(
            file.as_raw_fd(),
            from as libc::off_t,
            (to - from) as libc::off_t,
        )
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.own.is_none() {
            // SAFETY: a slot of the table (`own` is None), given to this mapping by `register`.
            vanish::unregister(unsafe { &*self.slot });
        }
        // SAFETY: unmapping exactly the range mapped in `new`; no reference into it outlives
        // `self` (every `&AtomicU64` handed out borrows `self`).
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.reserve as usize);
        }
        if matches!(self.source, SizeSource::Word(_)) {
            RESERVED.fetch_sub(self.reserve, Ordering::Relaxed);
        }
    }
}
