//! page manager: 4 KiB pages and runs of pages, lock-free.
//!
//! Terms: a *page* is `geometry.page_size` bytes (4 KiB in every real store); a *chunk* is
//! `chunk_pages` consecutive data pages (2 MiB) described by one *meta block* that lives apart
//! from the data (see `region::layout`: metadata never becomes data); an *area* is a group of
//! chunks laid out together, its meta blocks first, sized when it is created; a *run* is a
//! sequence of pages inside one chunk handed out as one unit; a *huge run* is a sequence of
//! whole chunks of one area.
//!
//! Mechanism. Each chunk has a bitmap of claimed pages, 32 pages per 64-bit word whose high half
//! is an ABA tag bumped by every CAS, and a page map with one word per page (run start: kind,
//! length, owner bits; continuation: distance back to the start). A page is claimed by a CAS on
//! its bitmap word, so two processes can never claim one page. Chunks are opened by a CAS on
//! `chunk_count` in the header (the break, in chunks), after the file has been grown to cover
//! their meta blocks (data pages are grown into just before they are claimed). The chunks of
//! the break lie in areas created before it by a CAS of their word in the area table, 0 to the
//! area's end (`areas.rs`); areas never change afterwards, so a participant keeps the last one
//! it looked up. There are no
//! free lists, so there is no ABA on list heads and no sentinel to wedge on: ownership of a page
//! changes only by a CAS on a word whose tag changes with every successful CAS; map entries and
//! chunk kinds are plain atomic stores by the owner of the pages they describe.
//!
//! Crash safety. Before claiming or releasing, a participant writes what it is about to do into
//! its *page journal* (a word of its slot in the lock file); it clears the journal when the map
//! agrees with the bitmap again. A page that is claimed in the bitmap but not covered by a run in
//! the map is in flight: either a live participant's journal names it, or its owner died, and
//! [`PageManager::recover_journal`] (or a full [`PageManager::sweep_unmapped`]) returns it.
//!
//! Invariant (outside in-flight windows): for every chunk, claimed pages = pages covered by the
//! runs its map describes. `check` verifies it.
//!
//! Files:
//! - `words.rs`: the packed words (kind word, bitmap word, map entry, journal word) and their bit
//!   layouts; nothing else shifts or masks a word.
//! - `map.rs`: runs in normal chunks: searching, claiming, releasing, and reading the map.
//! - `huge.rs`: huge runs: claiming and releasing whole chunks through their kind words.
//! - `areas.rs`: the area table: which area holds a chunk, and creating areas as chunks open.
//! - `journal.rs`: recovery: a dead participant's page journal, and the sweep for stray claims.
//! - `check.rs`: walks over every run, and the invariant check.
//! - this file: errors, the public types (a run's start offset, [`RunStart`], is what crosses
//!   the boundary to the heap), the manager and the addresses of its words.

mod areas;
mod check;
mod huge;
mod journal;
mod map;
mod words;

pub use words::{
    CHUNK_HUGE_HEAD, CHUNK_HUGE_RELEASING, CHUNK_HUGE_TAIL, CHUNK_NORMAL, RUN_LARGE, RUN_SEGMENT,
};

use crate::region::{hdr, table, Area, Geometry, Table, MAX_CHUNKS};
use crate::sync::{AccessError, Liveness, Ordering, WordStore};
use std::cell::Cell;
use std::fmt;
use words::{ChunkKind, JournalWord, UnknownKind};

/// Errors of the page and heap managers.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A word could not be reached, or the store could not grow.
    Access(AccessError),
    /// Something read from the file is inconsistent.
    Corrupt { what: String, offset: u64 },
    /// A request larger than the store can ever hold.
    TooLarge { bytes: u64 },
    /// `free` of an offset that is not an allocated block.
    BadFree { offset: u64, why: &'static str },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Access(e) => write!(f, "{e}"),
            Error::Corrupt { what, offset } => {
                write!(f, "allocator state is damaged at {offset:#x}: {what}")
            }
            Error::TooLarge { bytes } => write!(
                f,
                "cannot allocate {bytes} bytes: larger than a store can be"
            ),
            Error::BadFree { offset, why } => write!(f, "free of {offset:#x}: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<AccessError> for Error {
    fn from(e: AccessError) -> Self {
        Error::Access(e)
    }
}

fn corrupt<T>(what: impl Into<String>, offset: u64) -> Result<T, Error> {
    Err(Error::Corrupt {
        what: what.into(),
        offset,
    })
}

/// The offset of a run's first byte: what [`PageManager::alloc`] returns, [`Run::offset`]
/// reports and [`PageManager::free`] takes back.
///
/// A value the page manager handed out, or [`RunStart::from_word`] of an offset read out of a
/// file word. Either way `free` checks it against the page map before it changes anything, so
/// a wrong one is an error, never a release of someone else's pages.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunStart(u64);

impl RunStart {
    /// A run start read out of a file word (a journal's hand-off, a record of the caller's).
    /// Unchecked here: the page manager checks it against the page map where it is used.
    #[inline(always)]
    pub const fn from_word(w: u64) -> RunStart {
        RunStart(w)
    }

    /// The byte offset in the store file.
    #[inline(always)]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for RunStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunStart({:#x})", self.0)
    }
}

impl fmt::LowerHex for RunStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// What a run is, as the page map describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Offset of its first byte.
    pub offset: RunStart,
    /// Its length in pages.
    pub pages: u64,
    /// RUN_LARGE, RUN_SEGMENT, or 0 for a huge run.
    pub kind: u64,
    /// The bits its owner stored with it (the heap keeps the size class here).
    pub user: u64,
}

/// Page accounting, from [`PageManager::check`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageStats {
    pub chunks: u64,
    pub pages_total: u64,
    pub pages_used: u64,
    pub pages_free: u64,
    pub runs: u64,
    pub huge_runs: u64,
}

/// The page manager of one store, as used by one participant (`me`, a slot of `table`).
pub struct PageManager<'a, W: WordStore, L: Liveness> {
    pub store: &'a W,
    pub geo: Geometry,
    pub table: Table<'a, W, L>,
    pub me: u32,
    /// The area of the last chunk looked up (process-local; areas never change once created).
    area: Cell<Area>,
}

impl<W: WordStore, L: Liveness> Clone for PageManager<'_, W, L> {
    fn clone(&self) -> Self {
        PageManager {
            area: Cell::new(self.area.get()),
            ..*self
        }
    }
}

impl<'a, W: WordStore, L: Liveness> PageManager<'a, W, L> {
    pub fn new(store: &'a W, geo: Geometry, table: Table<'a, W, L>, me: u32) -> Self {
        PageManager {
            store,
            geo,
            table,
            me,
            area: Cell::new(Area::NONE),
        }
    }

    fn chunk_count(&self) -> Result<u64, Error> {
        // Acquire pairs with the AcqRel CAS in `open_chunks`: the file covers every opened
        // chunk's meta block.
        let n = self.store.load(hdr::CHUNK_COUNT, Ordering::Acquire)?;
        if n > MAX_CHUNKS {
            return corrupt(
                format!("chunk count {n} is beyond the largest store"),
                hdr::CHUNK_COUNT,
            );
        }
        Ok(n)
    }

    /// Offset of chunk `c`'s meta block.
    pub(crate) fn meta_of(&self, c: u64) -> Result<u64, Error> {
        Ok(self.geo.meta_of(self.area_of(c)?, c))
    }

    /// Offset of chunk `c`'s first data page.
    fn data_of(&self, c: u64) -> Result<u64, Error> {
        Ok(self.geo.data_of(self.area_of(c)?, c))
    }

    fn kind_word(&self, c: u64) -> Result<u64, Error> {
        self.meta_of(c)
    }

    fn bitmap_word(&self, c: u64, i: u64) -> Result<u64, Error> {
        Ok(self.meta_of(c)? + 8 + 8 * i)
    }

    fn entry_word(&self, c: u64, p: u64) -> Result<u64, Error> {
        Ok(self.meta_of(c)? + self.geo.map_offset() + 8 * p)
    }

    fn page_offset(&self, c: u64, p: u64) -> Result<u64, Error> {
        Ok(self.data_of(c)? + p * self.geo.page_size)
    }

    /// Names the page step this participant is about to take in its page journal.
    fn set_journal(&self, j: JournalWord) -> Result<(), Error> {
        Ok(self
            .table
            .store(self.me, table::W_PAGE_JOURNAL, j.to_word())?)
    }

    /// Clears this participant's page journal: the map and the bitmap agree again.
    fn clear_journal(&self) -> Result<(), Error> {
        Ok(self.table.store(self.me, table::W_PAGE_JOURNAL, 0)?)
    }

    /// Chunk `c`'s kind, or the unknown kind its kind word holds.
    fn load_kind(&self, c: u64) -> Result<Result<ChunkKind, UnknownKind>, Error> {
        // Acquire pairs with the Release stores of kind words in `claim_huge`/`finish_release`.
        let k = self.store.load(self.kind_word(c)?, Ordering::Acquire)?;
        Ok(ChunkKind::from_word(k))
    }
}
