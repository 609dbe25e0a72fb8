//! page manager: 4 KiB pages and runs of pages, lock-free.
//!
//! Terms: a *page* is `geometry.page_size` bytes (4 KiB in every real store); a *chunk* is
//! `chunk_pages` consecutive data pages (2 MiB) described by one *meta block* that lives apart
//! from the data (see `region::layout`: metadata never becomes data); a *run* is a sequence of
//! pages inside one chunk handed out as one unit; a *huge run* is a sequence of whole chunks of
//! one generation.
//!
//! Mechanism. Each chunk has a bitmap of claimed pages, 32 pages per 64-bit word whose high half
//! is an ABA tag bumped by every CAS, and a page map with one word per page (run start: kind,
//! length, owner bits; continuation: distance back to the start). A page is claimed by a CAS on
//! its bitmap word, so two processes can never claim one page. Chunks are opened by a CAS on
//! `chunk_count` in the header (the break, in chunks), after the file has been grown to cover
//! their meta blocks (data pages are grown into just before they are claimed). There are no
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

use crate::region::{hdr, table, Geometry, Table};
use crate::sync::{AccessError, Liveness, Ordering, WordStore};
use std::fmt;

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

// ---- bitmap words: low 32 bits claimed pages, high 32 bits a tag --------------------------

const BITS_MASK: u64 = 0xffff_ffff;
const TAG_ONE: u64 = 1 << 32;

fn bits(w: u64) -> u32 {
    (w & BITS_MASK) as u32
}

fn with_bits(old: u64, new_bits: u32) -> u64 {
    (old & !BITS_MASK).wrapping_add(TAG_ONE) | new_bits as u64
}

/// A mask of `n` bits starting at bit `start` (n in 1..=32).
fn mask(start: u64, n: u64) -> u32 {
    debug_assert!(n >= 1 && start + n <= 32);
    if n == 32 {
        u32::MAX
    } else {
        ((1u32 << n) - 1) << start
    }
}

// ---- chunk kind word (meta word 0) ---------------------------------------------------------

pub const CHUNK_NORMAL: u64 = 0;
pub const CHUNK_HUGE_HEAD: u64 = 1;
pub const CHUNK_HUGE_TAIL: u64 = 2;
/// A huge head whose run is being released (scanners skip it like a head).
pub const CHUNK_HUGE_RELEASING: u64 = 3;

// ---- page map entries ------------------------------------------------------------------------

/// Kinds of run, in bits 56..64 of a start entry.
pub const RUN_LARGE: u64 = 1;
pub const RUN_SEGMENT: u64 = 2;
const ENTRY_CONT: u64 = 3;
const KIND_SHIFT: u64 = 56;
const LEN_MASK: u64 = (1 << 24) - 1;
const USER_SHIFT: u64 = 24;
const USER_MASK: u64 = (1 << 32) - 1;

fn start_entry(kind: u64, len: u64, user: u64) -> u64 {
    (kind << KIND_SHIFT) | ((user & USER_MASK) << USER_SHIFT) | len
}

// ---- journal words ---------------------------------------------------------------------------

const J_CLAIM: u64 = 1;
const J_RELEASE: u64 = 2;
const J_HUGE_CLAIM: u64 = 3;
const J_HUGE_RELEASE: u64 = 4;

fn journal_run(op: u64, chunk: u64, first: u64, n: u64) -> u64 {
    (op << 60) | (chunk << 26) | (first << 13) | n
}

fn journal_huge(op: u64, chunk: u64, n: u64) -> u64 {
    (op << 60) | (chunk << 26) | n
}

/// A decoded page journal word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Journal {
    Run { chunk: u64, first: u64, n: u64 },
    Huge { claim: bool, chunk: u64, n: u64 },
}

fn decode_journal(v: u64) -> Option<Journal> {
    let op = v >> 60;
    let chunk = (v >> 26) & ((1 << 34) - 1);
    match op {
        J_CLAIM | J_RELEASE => Some(Journal::Run {
            chunk,
            first: (v >> 13) & 0x1fff,
            n: v & 0x1fff,
        }),
        J_HUGE_CLAIM | J_HUGE_RELEASE => Some(Journal::Huge {
            claim: op == J_HUGE_CLAIM,
            chunk,
            n: v & ((1 << 26) - 1),
        }),
        _ => None,
    }
}

/// What a run is, as the page map describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Offset of its first byte.
    pub offset: u64,
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
}

impl<W: WordStore, L: Liveness> Clone for PageManager<'_, W, L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W: WordStore, L: Liveness> Copy for PageManager<'_, W, L> {}

impl<'a, W: WordStore, L: Liveness> PageManager<'a, W, L> {
    pub fn new(store: &'a W, geo: Geometry, table: Table<'a, W, L>, me: u32) -> Self {
        PageManager {
            store,
            geo,
            table,
            me,
        }
    }

    fn chunk_count(&self) -> Result<u64, Error> {
        // Acquire pairs with the AcqRel CAS in `open_chunks`: the file covers every opened
        // chunk's meta block.
        let n = self.store.load(hdr::CHUNK_COUNT, Ordering::Acquire)?;
        if n > self.geo.max_chunks() {
            return corrupt(
                format!("chunk count {n} is beyond the last generation"),
                hdr::CHUNK_COUNT,
            );
        }
        Ok(n)
    }

    fn kind_word(&self, c: u64) -> u64 {
        self.geo.meta_of(c)
    }

    fn bitmap_word(&self, c: u64, i: u64) -> u64 {
        self.geo.meta_of(c) + 8 + 8 * i
    }

    fn entry_word(&self, c: u64, p: u64) -> u64 {
        self.geo.meta_of(c) + self.geo.map_offset() + 8 * p
    }

    fn page_offset(&self, c: u64, p: u64) -> u64 {
        self.geo.data_of(c) + p * self.geo.page_size
    }

    fn set_journal(&self, v: u64) -> Result<(), Error> {
        Ok(self.table.store(self.me, table::W_PAGE_JOURNAL, v)?)
    }

    fn load_kind(&self, c: u64) -> Result<(u64, u64), Error> {
        // Acquire pairs with the Release stores of kind words in `alloc_huge`/`free_huge`.
        let k = self.store.load(self.kind_word(c), Ordering::Acquire)?;
        Ok((k & 0xff, k >> 8))
    }

    // ---- allocation ----------------------------------------------------------------------

    /// Allocates a run of `pages` pages (any count; more than a chunk makes a huge run) and
    /// records `kind`/`user` in its map entry. Returns the offset of its first byte.
    ///
    /// `handoff`: a journal word of this participant that receives the run's offset *before*
    /// the page journal is cleared, so that the run is never unaccounted for in between (the
    /// heap hands large blocks and new segments over this way).
    pub fn alloc(
        &self,
        pages: u64,
        kind: u64,
        user: u64,
        handoff: Option<u64>,
    ) -> Result<u64, Error> {
        if pages == 0 {
            return Err(Error::TooLarge { bytes: 0 });
        }
        if pages > self.geo.chunk_pages {
            return self.alloc_huge(pages.div_ceil(self.geo.chunk_pages), handoff);
        }
        loop {
            let count = self.chunk_count()?;
            // Relaxed: the cursor is only a hint where to start looking.
            let cursor = self
                .store
                .load(hdr::PAGE_CURSOR, Ordering::Relaxed)?
                .min(count);
            let mut c = cursor;
            for _ in 0..count {
                if c >= count {
                    c = 0;
                }
                let (kind_c, arg) = self.load_kind(c)?;
                let step = if kind_c == CHUNK_HUGE_HEAD || kind_c == CHUNK_HUGE_RELEASING {
                    arg.max(1)
                } else {
                    1
                };
                if kind_c == CHUNK_NORMAL {
                    if let Some(off) = self.try_alloc_in(c, pages, kind, user, handoff)? {
                        if c != cursor {
                            self.store.store(hdr::PAGE_CURSOR, c, Ordering::Relaxed)?;
                        }
                        return Ok(off);
                    }
                }
                c += step;
            }
            // Nothing free in the chunks opened so far: open one more and try there first.
            self.open_chunks(count, 1)?;
            self.store
                .store(hdr::PAGE_CURSOR, count, Ordering::Relaxed)?;
        }
    }

    /// Tries to claim `n` pages in chunk `c`. `Ok(None)`: no room (or lost every race).
    fn try_alloc_in(
        &self,
        c: u64,
        n: u64,
        kind: u64,
        user: u64,
        handoff: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        let words = self.geo.bitmap_words();
        if n <= 32 {
            // A small run lies inside one bitmap word.
            for i in 0..words {
                let off = self.bitmap_word(c, i);
                let mut cur = self.store.load(off, Ordering::Acquire)?;
                while let Some(start) = find_zero_run(bits(cur), n) {
                    let first = i * 32 + start;
                    self.store.grow_to(self.page_offset(c, first + n))?;
                    self.set_journal(journal_run(J_CLAIM, c, first, n))?;
                    // SeqCst: the journal store above must be visible to any sweep that sees
                    // this claim (sweeps read bitmaps first, journals second).
                    self.store.barrier()?;
                    match self.store.cas(
                        off,
                        cur,
                        with_bits(cur, bits(cur) | mask(start, n)),
                        Ordering::SeqCst,
                        Ordering::Acquire,
                    )? {
                        Ok(()) => {
                            return self
                                .finish_claim(c, first, n, kind, user, handoff)
                                .map(Some)
                        }
                        Err(actual) => cur = actual,
                    }
                }
            }
            self.set_journal(0)?;
            return Ok(None);
        }
        // A large run starts on a word boundary and takes whole words, then part of one.
        let need_words = n.div_ceil(32);
        let mut i = 0;
        while i + need_words <= words {
            let mut all_free = true;
            for k in 0..need_words {
                if bits(
                    self.store
                        .load(self.bitmap_word(c, i + k), Ordering::Acquire)?,
                ) != 0
                {
                    all_free = false;
                    i += k + 1;
                    break;
                }
            }
            if !all_free {
                continue;
            }
            let first = i * 32;
            self.store.grow_to(self.page_offset(c, first + n))?;
            self.set_journal(journal_run(J_CLAIM, c, first, n))?;
            if self.claim_words(c, i, n)? {
                return self
                    .finish_claim(c, first, n, kind, user, handoff)
                    .map(Some);
            }
            i += 1;
        }
        self.set_journal(0)?;
        Ok(None)
    }

    /// Claims pages `32*i .. 32*i + n` whose words were seen free, word by word, undoing the
    /// words already taken if one is lost. `false`: lost a race (nothing stays claimed).
    fn claim_words(&self, c: u64, i: u64, n: u64) -> Result<bool, Error> {
        let need_words = n.div_ceil(32);
        for k in 0..need_words {
            let take = (n - 32 * k).min(32);
            let off = self.bitmap_word(c, i + k);
            let cur = self.store.load(off, Ordering::Acquire)?;
            let ok = bits(cur) & mask(0, take) == 0 && {
                self.store.barrier()?;
                // SeqCst: see `try_alloc_in`.
                self.store
                    .cas(
                        off,
                        cur,
                        with_bits(cur, bits(cur) | mask(0, take)),
                        Ordering::SeqCst,
                        Ordering::Acquire,
                    )?
                    .is_ok()
            };
            if !ok {
                for j in 0..k {
                    self.clear_bits(c, i + j, mask(0, (n - 32 * j).min(32)))?;
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes the map entries of a freshly claimed run and clears the journal.
    fn finish_claim(
        &self,
        c: u64,
        first: u64,
        n: u64,
        kind: u64,
        user: u64,
        handoff: Option<u64>,
    ) -> Result<u64, Error> {
        for p in first + 1..first + n {
            // Relaxed: published by the Release store of the start entry below.
            self.store.store(
                self.entry_word(c, p),
                (ENTRY_CONT << KIND_SHIFT) | (p - first),
                Ordering::Relaxed,
            )?;
        }
        let offset = self.page_offset(c, first);
        // The handoff comes before the start entry: once the run exists, some journal of
        // this participant names it until the caller is done with it. (Recovery of a handoff
        // whose run never got its start entry finds no run there and does nothing.)
        if let Some(w) = handoff {
            self.table.store(self.me, w, offset)?;
        }
        // SeqCst: a sweep that reads this entry after the journal clear must see it (the
        // journal clear below is SeqCst too).
        self.store.barrier()?;
        self.store.store(
            self.entry_word(c, first),
            start_entry(kind, n, user),
            Ordering::SeqCst,
        )?;
        self.set_journal(0)?;
        Ok(offset)
    }

    fn clear_bits(&self, c: u64, i: u64, m: u32) -> Result<(), Error> {
        let off = self.bitmap_word(c, i);
        let mut cur = self.store.load(off, Ordering::Acquire)?;
        loop {
            // SeqCst (Release would do for the pages' last uses, which must happen before
            // another claimer sees them free; SeqCst also orders it with the journal handshake
            // of recovery, see `sweep_unmapped_range`).
            self.store.barrier()?;
            match self.store.cas(
                off,
                cur,
                with_bits(cur, bits(cur) & !m),
                Ordering::SeqCst,
                Ordering::Acquire,
            )? {
                Ok(()) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Opens `n` more chunks after `seen` (the chunk count this caller saw). Racing openers:
    /// one CAS wins, the others see the larger count and go on.
    fn open_chunks(&self, seen: u64, n: u64) -> Result<(), Error> {
        let new = seen + n;
        if new > self.geo.max_chunks() {
            return Err(Error::TooLarge {
                bytes: self.geo.data_of(new.min(self.geo.max_chunks())),
            });
        }
        // The file must hold every opened chunk's meta block before the count is published.
        self.store.grow_to(self.geo.end_of_meta(new - 1))?;
        // AcqRel: publishes the growth (pairs with the Acquire in `chunk_count`).
        self.store.barrier()?;
        let _ = self.store.cas(
            hdr::CHUNK_COUNT,
            seen,
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        )?;
        Ok(())
    }

    /// A huge run of `nchunks` whole chunks of one generation.
    fn alloc_huge(&self, nchunks: u64, handoff: Option<u64>) -> Result<u64, Error> {
        if nchunks > 1u64 << (crate::region::MAX_GENERATIONS - 1) {
            return Err(Error::TooLarge {
                bytes: nchunks.saturating_mul(self.geo.chunk_bytes()),
            });
        }
        loop {
            let count = self.chunk_count()?;
            // Look for `nchunks` consecutive empty chunks of one generation.
            let mut run_start = 0;
            let mut run_len = 0;
            let mut c = 0;
            let mut found = None;
            while c < count {
                let (kind, arg) = self.load_kind(c)?;
                if kind == CHUNK_HUGE_HEAD || kind == CHUNK_HUGE_RELEASING {
                    c += arg.max(1);
                    run_len = 0;
                    continue;
                }
                let same_gen =
                    run_len > 0 && self.geo.gen_of_chunk(c).0 == self.geo.gen_of_chunk(run_start).0;
                if kind == CHUNK_NORMAL && self.chunk_is_empty(c)? {
                    if !same_gen {
                        run_start = c;
                        run_len = 0;
                    }
                    run_len += 1;
                    if run_len == nchunks {
                        found = Some(run_start);
                        break;
                    }
                } else {
                    run_len = 0;
                }
                c += 1;
            }
            let start = match found {
                Some(s) => s,
                None => {
                    // Open fresh chunks: at the break if the generation has room, else at the
                    // start of the first generation large enough (skipped chunks stay free).
                    let mut s = count;
                    let (g, _) = self.geo.gen_of_chunk(s);
                    let mut g = g;
                    while s + nchunks > self.geo.first_chunk(g + 1) {
                        g += 1;
                        s = self.geo.first_chunk(g);
                        if g >= crate::region::MAX_GENERATIONS {
                            return Err(Error::TooLarge {
                                bytes: nchunks * self.geo.chunk_bytes(),
                            });
                        }
                    }
                    self.store
                        .grow_to(self.geo.data_of(s + nchunks - 1) + self.geo.chunk_bytes())?;
                    self.open_chunks(count, s + nchunks - count)?;
                    if self.chunk_count()? < s + nchunks {
                        continue;
                    }
                    s
                }
            };
            self.store
                .grow_to(self.geo.data_of(start + nchunks - 1) + self.geo.chunk_bytes())?;
            self.set_journal(journal_huge(J_HUGE_CLAIM, start, nchunks))?;
            let mut claimed = 0;
            while claimed < nchunks && self.claim_words(start + claimed, 0, self.geo.chunk_pages)? {
                claimed += 1;
            }
            if claimed < nchunks {
                for k in 0..claimed {
                    for i in 0..self.geo.bitmap_words() {
                        self.clear_bits(start + k, i, u32::MAX)?;
                    }
                }
                self.set_journal(0)?;
                continue;
            }
            for k in 1..nchunks {
                // Release: pairs with the Acquire in `load_kind`.
                self.store.barrier()?;
                self.store.store(
                    self.kind_word(start + k),
                    CHUNK_HUGE_TAIL | (k << 8),
                    Ordering::Release,
                )?;
            }
            // The handoff before the head, as in `finish_claim`: once the run exists, a journal
            // of this participant names it.
            let offset = self.geo.data_of(start);
            if let Some(w) = handoff {
                self.table.store(self.me, w, offset)?;
            }
            // SeqCst: the head's kind is what makes the claim complete in recovery's eyes.
            self.store.barrier()?;
            self.store.store(
                self.kind_word(start),
                CHUNK_HUGE_HEAD | (nchunks << 8),
                Ordering::SeqCst,
            )?;
            self.set_journal(0)?;
            return Ok(offset);
        }
    }

    fn chunk_is_empty(&self, c: u64) -> Result<bool, Error> {
        for i in 0..self.geo.bitmap_words() {
            if bits(self.store.load(self.bitmap_word(c, i), Ordering::Acquire)?) != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    // ---- lookup and release ------------------------------------------------------------------

    /// The run that holds `offset`, from the page map. Every word is checked: an offset that
    /// points at no run gives an error.
    pub fn run_at(&self, offset: u64) -> Result<Run, Error> {
        let Some((c, p)) = self.geo.locate(offset) else {
            return Err(Error::BadFree {
                offset,
                why: "not inside a data page",
            });
        };
        let count = self.chunk_count()?;
        if c >= count {
            return Err(Error::BadFree {
                offset,
                why: "beyond the opened chunks",
            });
        }
        let (kind, arg) = self.load_kind(c)?;
        match kind {
            CHUNK_HUGE_RELEASING => {
                return Err(Error::BadFree {
                    offset,
                    why: "inside a huge run that is being released",
                })
            }
            CHUNK_HUGE_HEAD => {
                // The length comes from the file: it must stay inside the opened chunks.
                if arg == 0 || arg > count - c {
                    return corrupt(
                        format!("huge run of {arg} chunks overruns the opened chunks"),
                        self.kind_word(c),
                    );
                }
                return Ok(Run {
                    offset: self.geo.data_of(c),
                    pages: arg * self.geo.chunk_pages,
                    kind: 0,
                    user: 0,
                });
            }
            CHUNK_HUGE_TAIL => {
                if arg == 0 || arg > c {
                    return corrupt("huge tail points before chunk 0", self.kind_word(c));
                }
                let head = c - arg;
                let (hk, hn) = self.load_kind(head)?;
                if hk != CHUNK_HUGE_HEAD || hn <= arg || hn > count - head {
                    return corrupt("huge tail without its head", self.kind_word(c));
                }
                return Ok(Run {
                    offset: self.geo.data_of(head),
                    pages: hn * self.geo.chunk_pages,
                    kind: 0,
                    user: 0,
                });
            }
            CHUNK_NORMAL => {}
            _ => return corrupt(format!("unknown chunk kind {kind}"), self.kind_word(c)),
        }
        let e = self.store.load(self.entry_word(c, p), Ordering::Acquire)?;
        let start = match e >> KIND_SHIFT {
            ENTRY_CONT => {
                let d = e & LEN_MASK;
                if d == 0 || d > p {
                    return corrupt(
                        "page map continuation points outside its chunk",
                        self.entry_word(c, p),
                    );
                }
                p - d
            }
            RUN_LARGE | RUN_SEGMENT => p,
            _ => {
                return Err(Error::BadFree {
                    offset,
                    why: "page is not part of an allocated run",
                })
            }
        };
        let s = self
            .store
            .load(self.entry_word(c, start), Ordering::Acquire)?;
        let (kind, len) = (s >> KIND_SHIFT, s & LEN_MASK);
        if !(kind == RUN_LARGE || kind == RUN_SEGMENT)
            || len == 0
            || start + len > self.geo.chunk_pages
            || p >= start + len
        {
            return Err(Error::BadFree {
                offset,
                why: "page map does not describe a run here",
            });
        }
        Ok(Run {
            offset: self.page_offset(c, start),
            pages: len,
            kind,
            user: (s >> USER_SHIFT) & USER_MASK,
        })
    }

    /// Returns the run that starts at `offset` to the free pages.
    pub fn free(&self, offset: u64) -> Result<(), Error> {
        let run = self.run_at(offset)?;
        if run.offset != offset {
            return Err(Error::BadFree {
                offset,
                why: "not the start of a run",
            });
        }
        let (c, first) = self.geo.locate(offset).expect("run_at located it");
        if run.kind == 0 {
            return self.free_huge(c, run.pages / self.geo.chunk_pages);
        }
        self.set_journal(journal_run(J_RELEASE, c, first, run.pages))?;
        // SeqCst: the run stops being covered before its pages stop being claimed.
        self.store.barrier()?;
        self.store
            .store(self.entry_word(c, first), 0, Ordering::SeqCst)?;
        self.release_bits(c, first, run.pages)?;
        self.set_journal(0)
    }

    fn release_bits(&self, c: u64, first: u64, n: u64) -> Result<(), Error> {
        let mut p = first;
        while p < first + n {
            let i = p / 32;
            let start = p % 32;
            let take = (32 - start).min(first + n - p);
            self.clear_bits(c, i, mask(start, take))?;
            p += take;
        }
        Ok(())
    }

    fn free_huge(&self, head: u64, nchunks: u64) -> Result<(), Error> {
        self.set_journal(journal_huge(J_HUGE_RELEASE, head, nchunks))?;
        // SeqCst: marks the release as started; recovery redoes a release only while the
        // head still says so (the chunks cannot change hands before the head is normal).
        self.store.barrier()?;
        self.store.store(
            self.kind_word(head),
            CHUNK_HUGE_RELEASING | (nchunks << 8),
            Ordering::SeqCst,
        )?;
        self.finish_release(head, nchunks)?;
        self.set_journal(0)
    }

    /// Turns the chunks of a huge run whose head says RELEASING back into empty normal chunks:
    /// tails first, then the head, then the bits. Repeatable while the head says RELEASING.
    fn finish_release(&self, head: u64, n: u64) -> Result<(), Error> {
        for k in 1..n {
            // Release: pairs with the Acquire in `load_kind`.
            self.store.barrier()?;
            self.store
                .store(self.kind_word(head + k), CHUNK_NORMAL, Ordering::Release)?;
        }
        self.store.barrier()?;
        self.store
            .store(self.kind_word(head), CHUNK_NORMAL, Ordering::SeqCst)?;
        for k in 0..n {
            for i in 0..self.geo.bitmap_words() {
                self.clear_bits(head + k, i, u32::MAX)?;
            }
        }
        Ok(())
    }

    /// True when a live participant's page journal names a huge claim or release that
    /// overlaps chunks `c..c+n`.
    fn huge_journaled(&self, c: u64, n: u64) -> Result<bool, Error> {
        let mut hit = false;
        self.table.for_each_live_journal(|_, w, v| {
            if w == table::W_PAGE_JOURNAL {
                if let Some(Journal::Huge { chunk, n: m, .. }) = decode_journal(v) {
                    if chunk < c + n && c < chunk + m {
                        hit = true;
                    }
                }
            }
        })?;
        Ok(hit)
    }

    // ---- recovery ------------------------------------------------------------------------------

    /// Finishes or undoes the page step a dead participant left in its journal `value`. The
    /// caller holds the dead participant's slot exclusively (its byte lock).
    pub fn recover_journal(&self, value: u64) -> Result<(), Error> {
        match decode_journal(value) {
            None => Ok(()),
            Some(Journal::Run { chunk, first, n }) => {
                if chunk >= self.chunk_count()? || first + n > self.geo.chunk_pages || n == 0 {
                    return corrupt("page journal names pages outside the store", 0);
                }
                self.sweep_unmapped_range(chunk, first, n)
            }
            Some(Journal::Huge { claim, chunk, n }) => {
                if n == 0 || chunk + n > self.chunk_count()? {
                    return corrupt("page journal names chunks outside the store", 0);
                }
                let (kind, arg) = self.load_kind(chunk)?;
                if !claim && kind == CHUNK_HUGE_RELEASING && arg == n {
                    // The release had started and nobody can have taken the chunks since.
                    return self.finish_release(chunk, n);
                }
                if claim && kind == CHUNK_NORMAL && !self.huge_journaled(chunk, n)? {
                    // A claim that did not complete (no head was written at `chunk`, and no
                    // live participant is claiming there): the tails pointing back to
                    // `chunk` are the dead claimer's.
                    for k in 1..n {
                        let (tk, targ) = self.load_kind(chunk + k)?;
                        if tk == CHUNK_HUGE_TAIL && targ == k {
                            self.store.barrier()?;
                            self.store.store(
                                self.kind_word(chunk + k),
                                CHUNK_NORMAL,
                                Ordering::SeqCst,
                            )?;
                        }
                    }
                }
                // Whatever else happened (a completed claim is the dead participant's run,
                // left for a sweep; a release that had not begun leaves the run allocated; a
                // finished one may have been reused), only pages that are claimed in normal
                // chunks, covered by no run and named by no live journal are taken back.
                for k in 0..n {
                    self.sweep_unmapped_range(chunk + k, 0, self.geo.chunk_pages)?;
                }
                Ok(())
            }
        }
    }

    /// True when page `p` of chunk `c` is covered by a run in the map.
    fn covered(&self, c: u64, p: u64) -> Result<bool, Error> {
        let e = self.store.load(self.entry_word(c, p), Ordering::SeqCst)?;
        let start = match e >> KIND_SHIFT {
            RUN_LARGE | RUN_SEGMENT => p,
            ENTRY_CONT => {
                let d = e & LEN_MASK;
                if d == 0 || d > p {
                    return Ok(false);
                }
                p - d
            }
            _ => return Ok(false),
        };
        let s = self
            .store
            .load(self.entry_word(c, start), Ordering::SeqCst)?;
        Ok(matches!(s >> KIND_SHIFT, RUN_LARGE | RUN_SEGMENT) && start + (s & LEN_MASK) > p)
    }

    /// Pages `first..first+n` of normal chunk `c` that are claimed, covered by no run and named
    /// by no live participant's journal are in flight for a dead participant: clear them.
    ///
    /// Order matters: bitmap word first, journals second, map third. A claimer writes its
    /// journal, then CASes the bitmap, then the map, then clears the journal, so seeing the
    /// claim implies seeing either its journal or its map entries. The final CAS expects the
    /// exact (tagged) word read first, so a claim that raced in after our read is never undone.
    pub fn sweep_unmapped_range(&self, c: u64, first: u64, n: u64) -> Result<(), Error> {
        let (kind, _) = self.load_kind(c)?;
        if kind != CHUNK_NORMAL {
            return Ok(());
        }
        let mut i = first / 32;
        while i * 32 < first + n {
            'retry: loop {
                let off = self.bitmap_word(c, i);
                let cur = self.store.load(off, Ordering::SeqCst)?;
                let mut candidates = 0u32;
                for b in 0..32 {
                    let p = i * 32 + b;
                    if p >= first && p < first + n && bits(cur) & (1 << b) != 0 {
                        candidates |= 1 << b;
                    }
                }
                if candidates == 0 {
                    break;
                }
                let mut journaled = 0u32;
                let mut result = Ok(());
                self.table.for_each_live_journal(|_slot, w, v| {
                    // Only page journals name pages; block journals name blocks.
                    if w != table::W_PAGE_JOURNAL {
                        return;
                    }
                    match decode_journal(v) {
                        Some(Journal::Run {
                            chunk,
                            first: f,
                            n: m,
                        }) if chunk == c => {
                            for b in 0..32 {
                                let p = i * 32 + b;
                                if p >= f && p < f + m {
                                    journaled |= 1 << b;
                                }
                            }
                        }
                        Some(Journal::Huge { chunk, n: m, .. }) if c >= chunk && c < chunk + m => {
                            journaled = u32::MAX
                        }
                        Some(_) => {}
                        None => result = corrupt("undecodable page journal", 0),
                    }
                })?;
                result?;
                let mut stray = 0u32;
                for b in 0..32 {
                    if candidates & journaled & (1 << b) == 0
                        && candidates & (1 << b) != 0
                        && !self.covered(c, i * 32 + b)?
                    {
                        stray |= 1 << b;
                    }
                }
                if stray == 0 {
                    break;
                }
                // SeqCst: ordered after the journal and map reads above.
                self.store.barrier()?;
                match self.store.cas(
                    off,
                    cur,
                    with_bits(cur, bits(cur) & !stray),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )? {
                    Ok(()) => break,
                    Err(_) => continue 'retry,
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// Repairs what dead participants left in flight when their journals are gone (a lock file
    /// deleted while nobody was attached): huge releases that had begun, tails of huge claims
    /// that never got their head, and stray page claims. Takes nothing a live participant's
    /// journal names; safe while others allocate.
    pub fn sweep_unmapped(&self) -> Result<(), Error> {
        let count = self.chunk_count()?;
        let mut c = 0;
        while c < count {
            let (kind, arg) = self.load_kind(c)?;
            match kind {
                CHUNK_HUGE_HEAD => {
                    c += arg.max(1);
                    continue;
                }
                CHUNK_HUGE_RELEASING => {
                    if arg == 0 || c + arg > count {
                        return corrupt(
                            "huge run extends past the opened chunks",
                            self.kind_word(c),
                        );
                    }
                    if !self.huge_journaled(c, arg)? {
                        self.finish_release(c, arg)?;
                    }
                    c += arg;
                    continue;
                }
                CHUNK_HUGE_TAIL => {
                    // A tail is orphaned when the chunk it points back to heads no run
                    // covering it, and no live claimer is writing that run.
                    let head = c.checked_sub(arg).filter(|_| arg > 0);
                    let orphan = match head {
                        None => true,
                        Some(h) => {
                            let (hk, hn) = self.load_kind(h)?;
                            !((hk == CHUNK_HUGE_HEAD || hk == CHUNK_HUGE_RELEASING) && hn > arg)
                                && !self.huge_journaled(h, arg + 1)?
                        }
                    };
                    if orphan {
                        self.store.barrier()?;
                        self.store
                            .store(self.kind_word(c), CHUNK_NORMAL, Ordering::SeqCst)?;
                        continue; // look at it again as a normal chunk
                    }
                }
                _ => self.sweep_unmapped_range(c, 0, self.geo.chunk_pages)?,
            }
            c += 1;
        }
        Ok(())
    }

    // ---- walking and checking ------------------------------------------------------------------

    /// Calls `f` with every allocated run (large, segment and huge), in address order.
    /// The end of the last byte in use: the last opened chunk's meta block, or the end of the
    /// last run, whichever is further. Bytes beyond it are free pages at the file's tail.
    pub fn used_end(&self) -> Result<u64, Error> {
        let count = self.chunk_count()?;
        let mut end = self.geo.header_bytes;
        if count > 0 {
            end = end.max(self.geo.end_of_meta(count - 1));
        }
        let page = self.geo.page_size;
        self.for_each_run(|r| {
            end = end.max(r.offset + r.pages * page);
            Ok(())
        })?;
        Ok(end)
    }

    pub fn for_each_run(&self, mut f: impl FnMut(Run) -> Result<(), Error>) -> Result<(), Error> {
        let count = self.chunk_count()?;
        let mut c = 0;
        while c < count {
            let (kind, arg) = self.load_kind(c)?;
            match kind {
                CHUNK_HUGE_RELEASING if arg > 0 => {
                    // Being released: no longer allocated.
                    c += arg;
                    continue;
                }
                CHUNK_HUGE_HEAD => {
                    if arg == 0 || c + arg > count {
                        return corrupt(
                            "huge run extends past the opened chunks",
                            self.kind_word(c),
                        );
                    }
                    f(Run {
                        offset: self.geo.data_of(c),
                        pages: arg * self.geo.chunk_pages,
                        kind: 0,
                        user: 0,
                    })?;
                    c += arg;
                    continue;
                }
                CHUNK_NORMAL => {
                    let mut p = 0;
                    while p < self.geo.chunk_pages {
                        let e = self.store.load(self.entry_word(c, p), Ordering::Acquire)?;
                        let k = e >> KIND_SHIFT;
                        let len = e & LEN_MASK;
                        if (k == RUN_LARGE || k == RUN_SEGMENT)
                            && len > 0
                            && p + len <= self.geo.chunk_pages
                            && self.page_claimed(c, p)?
                        {
                            f(Run {
                                offset: self.page_offset(c, p),
                                pages: len,
                                kind: k,
                                user: (e >> USER_SHIFT) & USER_MASK,
                            })?;
                            p += len;
                        } else {
                            p += 1;
                        }
                    }
                }
                // A tail whose head was skipped over is a huge claim in flight (tails are
                // written before the head); `check` judges tails, walks pass over them.
                CHUNK_HUGE_TAIL => {}
                _ => return corrupt(format!("unknown chunk kind {kind}"), self.kind_word(c)),
            }
            c += 1;
        }
        Ok(())
    }

    fn page_claimed(&self, c: u64, p: u64) -> Result<bool, Error> {
        let w = self
            .store
            .load(self.bitmap_word(c, p / 32), Ordering::Acquire)?;
        Ok(bits(w) & (1 << (p % 32)) != 0)
    }

    /// Checks that the bitmaps and the map agree (every claimed page covered by exactly one
    /// run, every run's pages claimed) and counts pages. Exact only while no participant is in
    /// the middle of a page step (call it quiescent, or after recovery).
    pub fn check(&self) -> Result<PageStats, Error> {
        let count = self.chunk_count()?;
        let mut st = PageStats {
            chunks: count,
            pages_total: count * self.geo.chunk_pages,
            ..Default::default()
        };
        let mut c = 0;
        while c < count {
            let (kind, arg) = self.load_kind(c)?;
            match kind {
                CHUNK_HUGE_RELEASING => {
                    return corrupt(
                        "a huge run is half released (its releaser died: recover first)",
                        self.kind_word(c),
                    )
                }
                CHUNK_HUGE_HEAD => {
                    if arg == 0 || c + arg > count {
                        return corrupt(
                            "huge run extends past the opened chunks",
                            self.kind_word(c),
                        );
                    }
                    for k in 0..arg {
                        if k > 0 {
                            let (tk, targ) = self.load_kind(c + k)?;
                            if tk != CHUNK_HUGE_TAIL || targ != k {
                                return corrupt(
                                    "huge run's tail chunk is not marked as such",
                                    self.kind_word(c + k),
                                );
                            }
                        }
                        for i in 0..self.geo.bitmap_words() {
                            if bits(
                                self.store
                                    .load(self.bitmap_word(c + k, i), Ordering::Acquire)?,
                            ) != u32::MAX
                            {
                                return corrupt(
                                    "huge run has unclaimed pages",
                                    self.bitmap_word(c + k, i),
                                );
                            }
                        }
                    }
                    st.pages_used += arg * self.geo.chunk_pages;
                    st.huge_runs += 1;
                    c += arg;
                    continue;
                }
                CHUNK_NORMAL => {
                    let mut covered = vec![false; self.geo.chunk_pages as usize];
                    let mut p = 0;
                    while p < self.geo.chunk_pages {
                        let e = self.store.load(self.entry_word(c, p), Ordering::Acquire)?;
                        let k = e >> KIND_SHIFT;
                        let len = e & LEN_MASK;
                        if (k == RUN_LARGE || k == RUN_SEGMENT) && self.page_claimed(c, p)? {
                            if len == 0 || p + len > self.geo.chunk_pages {
                                return corrupt(
                                    format!("run of {len} pages at page {p} overflows its chunk"),
                                    self.entry_word(c, p),
                                );
                            }
                            for q in p..p + len {
                                if !self.page_claimed(c, q)? {
                                    return corrupt(
                                        format!("page {q} of a run is not claimed"),
                                        self.bitmap_word(c, q / 32),
                                    );
                                }
                                if q > p {
                                    let ce = self
                                        .store
                                        .load(self.entry_word(c, q), Ordering::Acquire)?;
                                    if ce != (ENTRY_CONT << KIND_SHIFT) | (q - p) {
                                        return corrupt(format!("page {q} is inside a run but its map entry is {ce:#x}"), self.entry_word(c, q));
                                    }
                                }
                                covered[q as usize] = true;
                            }
                            st.runs += 1;
                            p += len;
                        } else {
                            p += 1;
                        }
                    }
                    for q in 0..self.geo.chunk_pages {
                        let claimed = self.page_claimed(c, q)?;
                        if claimed && !covered[q as usize] {
                            return corrupt(
                                format!("page {q} of chunk {c} is claimed but belongs to no run"),
                                self.bitmap_word(c, q / 32),
                            );
                        }
                        if claimed {
                            st.pages_used += 1;
                        }
                    }
                }
                CHUNK_HUGE_TAIL => {
                    return corrupt(
                        "huge tail chunk without a head before it",
                        self.kind_word(c),
                    )
                }
                _ => return corrupt(format!("unknown chunk kind {kind}"), self.kind_word(c)),
            }
            c += 1;
        }
        st.pages_free = st.pages_total - st.pages_used;
        Ok(st)
    }
}

/// The lowest start of `n` consecutive zero bits in `w` (n in 1..=32).
fn find_zero_run(w: u32, n: u64) -> Option<u64> {
    let free = !w;
    if n == 32 {
        return (free == u32::MAX).then_some(0);
    }
    // Bit i of `run` is set when bits i..i+n of `free` are all set.
    let mut run = free;
    for k in 1..n {
        run &= free >> k;
    }
    // Bits that would run past bit 31 were shifted in as zeros, so they are already excluded.
    (run != 0).then(|| run.trailing_zeros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_runs() {
        assert_eq!(find_zero_run(0, 1), Some(0));
        assert_eq!(find_zero_run(0b1, 1), Some(1));
        assert_eq!(find_zero_run(0b1011, 1), Some(2));
        assert_eq!(find_zero_run(0b1011, 2), Some(4));
        assert_eq!(find_zero_run(u32::MAX, 1), None);
        assert_eq!(find_zero_run(0x8000_0000, 31), Some(0));
        assert_eq!(find_zero_run(0x0000_0001, 31), Some(1));
        assert_eq!(find_zero_run(0x0000_0001, 32), None);
        assert_eq!(find_zero_run(0x7fff_ffff, 1), Some(31));
    }

    #[test]
    fn journal_words_round_trip() {
        assert_eq!(
            decode_journal(journal_run(J_CLAIM, 12345, 511, 4096)),
            Some(Journal::Run {
                chunk: 12345,
                first: 511,
                n: 4096
            })
        );
        assert_eq!(
            decode_journal(journal_huge(J_HUGE_RELEASE, 77, 9)),
            Some(Journal::Huge {
                claim: false,
                chunk: 77,
                n: 9
            })
        );
        assert_eq!(decode_journal(0), None);
    }
}
