//! Pages that vanish under a running process: the SIGBUS handler and its table of mappings.
//!
//! Owns the process-wide SIGBUS handler, the fixed table of the address ranges of this
//! process's store and lock file mappings (`Slot`), and each slot's *poisoned* flag and
//! cached size. FORMAT.md §8.1 gives the reasoning; in short:
//!
//! - Another process (or user) that truncates the store or the lock file makes every page of a
//!   shared mapping beyond the new end fault with SIGBUS when touched. Without a handler that
//!   kills the process (exit 135).
//! - The handler looks the faulting address up in `TABLE` (lock-free, allocation-free: a
//!   fixed array read with atomics). Inside a persist mapping it maps an anonymous zero page over
//!   the faulting page (`mmap` with `MAP_FIXED`: a raw system call; not on POSIX's list of
//!   async-signal-safe functions, but it takes no user-space lock and is used this way by real
//!   systems: garbage collectors, sanitizers, JVMs), marks the slot poisoned and zeroes its
//!   cached size, and returns: the faulting instruction runs again, now on the zero page.
//! - A poisoned mapping fails every later access (the zeroed cached size sends each access to
//!   the slow path, which sees the flag), and the session's steps check the flag when they end,
//!   so the operation that touched the page fails (`Error::Corrupt`, Python's
//!   `CorruptionError`) and every later one does too: what was written to the zero page is lost.
//! - Any other SIGBUS goes to the handler that was installed before ours (`SA_SIGINFO` or
//!   plain), or, if that was the default or "ignore", restores the default and returns, so that
//!   the instruction faults again and the process dies as it would have without persist.
//!
//! The handler is installed once per process, by the first mapping; a handler installed later
//! by someone else (Python's `faulthandler.enable()` after the first store was opened) takes
//! its place, and truncation kills the process again. It runs on the faulting thread's stack
//! (`SA_ONSTACK` uses an alternate stack where the thread has one: Rust threads do, Python's do
//! not) and needs a few hundred bytes of it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Slots in the table: two per open store (its file and its lock file). A mapping made when
/// every slot is taken works as before but is not protected (a truncation kills the process).
const SLOTS: usize = 1024;

/// One registered mapping: `[base, base + len)` when `base` is not 0.
pub(crate) struct Slot {
    /// The mapping's first byte; 0: the slot is free (or being filled).
    base: AtomicUsize,
    len: AtomicUsize,
    /// Taken by a mapping (set before `base`, cleared after it).
    taken: AtomicBool,
    /// A page of the mapping vanished: every later access fails.
    poisoned: AtomicBool,
    /// The mapping's cached published size (`Mapping`'s view; here so that the handler can
    /// zero it and so send every later access to the slow path, which sees `poisoned`).
    pub(crate) known: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            taken: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            known: AtomicU64::new(0),
        }
    }

    /// A slot outside the table, for a mapping made when the table is full (or a test).
    pub(crate) fn unregistered(known: u64) -> Box<Slot> {
        let s = Box::new(Slot::new());
        s.known.store(known, Ordering::Relaxed);
        s
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        // SeqCst: pairs with the handler's SeqCst stores and `Mapping::refresh`'s fetch_max
        // (see there): a cached size raised after the handler zeroed it is always caught.
        self.poisoned.load(Ordering::SeqCst)
    }

    /// Marks the mapping damaged (the handler; tests).
    fn poison(&self) {
        // SeqCst, the process-wide flag first, then the slot's, then the size: whoever sees
        // the zeroed size (or the slot's flag) and then reads the process-wide flag finds it
        // set; whoever raises the size afterwards reads the flag after raising (refresh).
        ANY_POISONED.store(true, Ordering::SeqCst);
        self.poisoned.store(true, Ordering::SeqCst);
        self.known.store(0, Ordering::SeqCst);
    }
}

static TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];

/// Set (for good) once any mapping of this process is poisoned: the per-step check
/// (`any_poisoned`) is one load of one word while nothing ever vanished, which is always but
/// for a damaged machine.
static ANY_POISONED: AtomicBool = AtomicBool::new(false);

/// Whether a mapping of this process was ever poisoned (then look at each: `Mapping::is_poisoned`).
pub fn any_poisoned() -> bool {
    // SeqCst: as `Slot::is_poisoned`; `poison` sets this first.
    ANY_POISONED.load(Ordering::SeqCst)
}

/// SIGBUS faults this process turned into errors (for tests and messages).
static CAUGHT: AtomicU64 = AtomicU64::new(0);

/// The page size, read once when the handler is installed (`sysconf` is not async-signal-safe).
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The handler that was installed before ours, called for faults outside persist mappings.
/// Written once, before ours is installed, and only read afterwards.
struct Previous(std::cell::UnsafeCell<libc::sigaction>);

// SAFETY: written only in `install`, inside a `Once`, before the handler that reads it is
// installed; read-only afterwards.
unsafe impl Sync for Previous {}

static PREVIOUS: Previous = Previous(std::cell::UnsafeCell::new(
    // SAFETY: sigaction is a plain C struct for which all-zero bytes are valid (SIG_DFL).
    unsafe { std::mem::zeroed() },
));

/// How many SIGBUS faults inside persist mappings this process survived.
pub fn caught() -> u64 {
    CAUGHT.load(Ordering::Relaxed)
}

/// Registers `[base, base + len)`: faults there become errors. Returns the slot, or None if the
/// table is full (the caller then keeps its size in a slot of its own, unprotected).
pub(crate) fn register(base: usize, len: usize, known: u64) -> Option<&'static Slot> {
    install();
    for s in TABLE.iter() {
        // Acquire: pairs with the Release in `unregister`, so the previous owner is done.
        if s.taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            s.len.store(len, Ordering::Relaxed);
            s.poisoned.store(false, Ordering::SeqCst);
            s.known.store(known, Ordering::SeqCst);
            // Release: the handler that sees `base` (Acquire) sees `len` and the cleared flag.
            s.base.store(base, Ordering::Release);
            return Some(s);
        }
    }
    None
}

/// Forgets a slot of `register` (before its mapping is unmapped).
pub(crate) fn unregister(s: &'static Slot) {
    // Release: ordered before the slot can be taken again (Acquire in `register`).
    s.base.store(0, Ordering::Release);
    s.taken.store(false, Ordering::Release);
}

/// Test support: poisons the mapping that contains `addr`, as the handler would.
#[doc(hidden)]
pub fn poison_at(addr: usize) -> bool {
    match find(addr) {
        Some(s) => {
            s.poison();
            true
        }
        None => false,
    }
}

/// The registered slot whose range contains `addr`. Async-signal-safe: atomic loads only.
fn find(addr: usize) -> Option<&'static Slot> {
    TABLE.iter().find(|s| {
        // Acquire: pairs with the Release in `register` (len is written before base).
        let base = s.base.load(Ordering::Acquire);
        base != 0 && addr.wrapping_sub(base) < s.len.load(Ordering::Relaxed)
    })
}

fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: querying (new action null) into PREVIOUS, which nothing reads yet: our
        // handler is not installed.
        unsafe {
            libc::sigaction(libc::SIGBUS, std::ptr::null(), PREVIOUS.0.get());
        }
        // SAFETY: a zeroed sigaction is valid; the fields set below make it our handler.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_sigbus as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: the mask is a field of `act`.
        unsafe { libc::sigemptyset(&mut act.sa_mask) };
        // SAFETY: installs a handler that is a valid `extern "C"` function of the SA_SIGINFO
        // signature. The previous action was saved above (a handler installed by another
        // thread between the two calls would be replaced without being chained: noted in
        // FORMAT.md §8.1).
        unsafe {
            libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut());
        }
    });
}

/// The SIGBUS handler. Async-signal-safe: atomics, `mmap`, `sigaction` and the previous handler.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // Only a fault the kernel reported (si_code > 0) has a meaningful address: a SIGBUS sent
    // with kill or raise (si_code <= 0) carries a pid there.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    if code > 0 {
        if let Some(slot) = find(addr) {
            let page = PAGE.load(Ordering::Relaxed);
            let at = addr & !(page - 1);
            // SAFETY: replaces exactly one page inside a mapping this process registered and
            // has not unmapped (it is unregistered before munmap) with private zero memory;
            // nothing holds a Rust reference to the page's bytes beyond an atomic, whose
            // memory stays valid (now zero).
            let p = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                slot.poison();
                CAUGHT.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // No memory for the page: die as before.
        }
    }
    chain(sig, info, ctx);
}

/// Passes a fault to the handler installed before ours.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREVIOUS is read-only once our handler is installed.
    let prev = unsafe { &*PREVIOUS.0.get() };
    let h = prev.sa_sigaction;
    // SAFETY: the kernel passes a valid siginfo.
    let sent = unsafe { (*info).si_code } <= 0;
    if h == libc::SIG_IGN && sent {
        // An ignored SIGBUS that someone sent stays ignored.
    } else if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore the default and return: a fault re-executes its instruction and dies of it
        // as if persist had never been there (the kernel kills for an ignored fault too); a
        // sent SIGBUS is raised again (still blocked here, it arrives when the handler
        // returns).
        // SAFETY: a zeroed sigaction is SIG_DFL with an empty mask.
        let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
        dfl.sa_sigaction = libc::SIG_DFL;
        // SAFETY: sigaction and raise are async-signal-safe.
        unsafe {
            libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
            if sent {
                libc::raise(sig);
            }
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            // SAFETY: the previous owner installed this as an SA_SIGINFO handler.
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the previous owner installed this as a plain handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}
