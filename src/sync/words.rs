//! The abstract word store and its in-memory implementation.

use super::{AtomicBool, AtomicU64, Ordering};
use std::fmt;

/// Why a word could not be reached or the store could not grow.
#[derive(Debug)]
#[non_exhaustive]
pub enum AccessError {
    /// The offset lies beyond the bytes this process may touch (a damaged or hostile offset).
    OutOfBounds { offset: u64, size: u64 },
    /// The offset is not a multiple of 8.
    Misaligned { offset: u64 },
    /// The store cannot grow to `wanted` bytes (disk full, file size limit, address reservation).
    Full { wanted: u64, reason: String },
    /// Another I/O failure: while growing, or while flushing at a persist barrier. Boxed, so
    /// that this error (which every allocator `Result` carries) stays as small as its other
    /// variants and the hot paths that return it compile as before.
    Io(Box<IoFailure>),
    /// A page of the mapped file vanished under this process (another process truncated the
    /// file): the access that touched it read zeros or wrote into nothing, and every access to
    /// the mapping fails from then on (FORMAT.md §8.1).
    Truncated {
        offset: u64,
        path: std::path::PathBuf,
    },
}

/// An I/O failure of a word store ([`AccessError::Io`]).
#[derive(Debug)]
pub struct IoFailure {
    /// The call: "posix_fallocate" (growing) or "msync" (a persist barrier).
    pub op: &'static str,
    /// The file, where the store knows it (a mapped file does; an in-memory store has none).
    pub path: Option<std::path::PathBuf>,
    pub source: std::io::Error,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::OutOfBounds { offset, size } => {
                write!(
                    f,
                    "offset {offset:#x} lies outside the store ({size} bytes)"
                )
            }
            AccessError::Misaligned { offset } => write!(f, "offset {offset:#x} is not 8-aligned"),
            AccessError::Full { wanted, reason } => {
                write!(f, "the store cannot grow to {wanted} bytes: {reason}")
            }
            AccessError::Truncated { offset, path } => write!(
                f,
                "{} was truncated by another process while this process had it mapped \
                 (a page it used vanished; access at offset {offset:#x}): what this process \
                 read or wrote there is lost; reopen the store and run check()",
                path.display()
            ),
            AccessError::Io(e) => match &e.path {
                Some(p) => write!(f, "{} of {} failed: {}", e.op, p.display(), e.source),
                None => write!(f, "{} of the store failed: {}", e.op, e.source),
            },
        }
    }
}

impl std::error::Error for AccessError {}

/// A flat, growable array of shared 64-bit atomic words addressed by byte offset.
///
/// Implementations check every offset: a damaged or hostile offset gives an error, never an
/// access outside the store. A reference returned by [`WordStore::word`] is valid as long as the
/// store is (the mapping never moves), but the word's *value* may change at any moment: read it
/// once into a local, check it, then use it.
pub trait WordStore {
    /// Bytes that may be accessed now (checked bounds). Grows, never shrinks.
    fn size(&self) -> u64;

    /// The word at `offset`: bounds- and alignment-checked.
    fn word(&self, offset: u64) -> Result<&AtomicU64, AccessError>;

    /// Makes at least `min_size` bytes accessible, reserving their space first so that a full
    /// disk is an error here and never a fault later. Idempotent and safe to race.
    fn grow_to(&self, min_size: u64) -> Result<(), AccessError>;

    /// The largest size this store can ever reach (its address reservation).
    fn max_size(&self) -> u64;

    /// Called before each atomic step on a word reference resolved earlier (hot paths keep
    /// references instead of asking `word` again). A no-op for real stores; the loom models'
    /// killable store counts it, so that a participant can be stopped between any two steps.
    #[inline]
    fn step(&self) -> Result<(), AccessError> {
        Ok(())
    }

    /// A persist barrier, called before a write whose order on disk matters for a power cut
    /// (FORMAT.md §10.8): a durable store puts every write made before it, by any process, on
    /// disk before returning, so the disk only ever holds states a SIGKILL could leave. A
    /// no-op otherwise, and in the loom models (which model SIGKILL, where memory order is
    /// all that counts; `step` is their kill point).
    #[inline]
    fn barrier(&self) -> Result<(), AccessError> {
        Ok(())
    }

    fn load(&self, offset: u64, order: Ordering) -> Result<u64, AccessError> {
        Ok(self.word(offset)?.load(order))
    }

    fn store(&self, offset: u64, value: u64, order: Ordering) -> Result<(), AccessError> {
        self.word(offset)?.store(value, order);
        Ok(())
    }

    /// Compare-and-swap; `Ok(Ok(()))` when it took, `Ok(Err(actual))` when it lost.
    fn cas(
        &self,
        offset: u64,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Result<(), u64>, AccessError> {
        Ok(self
            .word(offset)?
            .compare_exchange(current, new, success, failure)
            .map(|_| ()))
    }
}

/// Tells whether the participant in a slot is still running.
///
/// The real implementation asks the kernel (an open-file-description lock that dies with its
/// process, see `ofd`); the loom models flip a flag when they "kill" a thread.
pub trait Liveness {
    /// True while the participant that attached to `slot` may still run. False is final: a dead
    /// participant never runs again (its slot may later be reused by a new one).
    fn is_alive(&self, slot: u32) -> bool;
}

/// A word store in ordinary memory: the loom models' simulated mapping, and a convenient store
/// for unit tests. `size` starts at `initial` and grows (without limit checks beyond
/// `capacity`) when asked, so growth paths are exercised too.
pub struct MemWords {
    words: Vec<AtomicU64>,
    size: AtomicU64,
}

impl MemWords {
    pub fn new(initial: u64, capacity: u64) -> Self {
        assert!(initial <= capacity && capacity % 8 == 0);
        let words = (0..capacity / 8).map(|_| AtomicU64::new(0)).collect();
        MemWords {
            words,
            size: AtomicU64::new(initial),
        }
    }
}

impl WordStore for MemWords {
    fn size(&self) -> u64 {
        // Acquire pairs with the Release in `grow_to`: a grown size is seen with its words.
        self.size.load(Ordering::Acquire)
    }

    fn word(&self, offset: u64) -> Result<&AtomicU64, AccessError> {
        if offset % 8 != 0 {
            return Err(AccessError::Misaligned { offset });
        }
        let size = self.size();
        if offset >= size {
            return Err(AccessError::OutOfBounds { offset, size });
        }
        self.words
            .get((offset / 8) as usize)
            .ok_or(AccessError::OutOfBounds { offset, size })
    }

    fn grow_to(&self, min_size: u64) -> Result<(), AccessError> {
        let cap = self.max_size();
        if min_size > cap {
            return Err(AccessError::Full {
                wanted: min_size,
                reason: "simulated store is full".into(),
            });
        }
        // Release pairs with the Acquire in `size`.
        self.size.fetch_max(min_size, Ordering::AcqRel);
        Ok(())
    }

    fn max_size(&self) -> u64 {
        self.words.len() as u64 * 8
    }
}

/// Liveness flags in memory, for the loom models and unit tests.
pub struct MemLiveness {
    alive: Vec<AtomicBool>,
}

impl MemLiveness {
    pub fn new(slots: usize) -> Self {
        MemLiveness {
            alive: (0..slots).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    pub fn set_alive(&self, slot: u32, alive: bool) {
        // SeqCst: a kill must be ordered before everything the recoverer does after learning of
        // it, and a birth before the new participant's first step.
        self.alive[slot as usize].store(alive, Ordering::SeqCst);
    }
}

impl Liveness for MemLiveness {
    fn is_alive(&self, slot: u32) -> bool {
        self.alive
            .get(slot as usize)
            .is_some_and(|a| a.load(Ordering::SeqCst))
    }
}
