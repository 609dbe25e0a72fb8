//! The packed words of the page manager: the only code that puts fields into a word or takes
//! them out.
//!
//! Four words: a chunk's kind word ([`ChunkKind`], meta word 0), its bitmap words
//! ([`BitmapWord`], meta words 1..), its page map entries ([`MapEntry`], [`StartEntry`]) and a
//! participant's page journal ([`JournalWord`], slot word 8 of the lock file). Each type's doc
//! gives its bit layout once, as a table; FORMAT.md §4 and §6.4 describe the same bits.
//!
//! Invariants:
//! - `to_word` gives exactly the words the page manager stores. Those bits are the file format:
//!   they never change (`tests::layout_is_pinned` pins one example of each word).
//! - `from_word` is total. It decodes every `u64` to a value, or to `None` (or an error) for an
//!   unknown tag, and never panics: its input comes from a file that may be damaged or hostile.
//!   Fields decode as raw bit ranges. Whether they fit the store (a chunk that is opened, a run
//!   that ends inside its chunk) is for the caller to check against the geometry.
//! - `to_word` debug-asserts that every field fits its bits. The geometry keeps them in range:
//!   fewer than 2^21 chunks, at most 4096 pages a chunk, huge runs of at most 2^20 chunks.

// ---- chunk kind word (meta word 0) ---------------------------------------------------------

pub const CHUNK_NORMAL: u64 = 0;
pub const CHUNK_HUGE_HEAD: u64 = 1;
pub const CHUNK_HUGE_TAIL: u64 = 2;
/// A huge head whose run is being released (scanners skip it like a head).
pub const CHUNK_HUGE_RELEASING: u64 = 3;

const CHUNK_KIND_BITS: u64 = 0xff;
const CHUNK_ARG_SHIFT: u64 = 8;
/// An argument has 56 bits.
const CHUNK_ARG_LIMIT: u64 = 1 << (64 - CHUNK_ARG_SHIFT);

/// What a chunk is: the kind word at the start of its meta block.
///
/// | bits | field |
/// |---|---|
/// | 0..8 | kind: 0 = normal, 1 = huge head, 2 = huge tail, 3 = huge releasing |
/// | 8..64 | argument: a head's (or releasing head's) length in chunks; a tail's distance k back to its head; 0 for a normal chunk |
///
/// An all-zero word is an empty normal chunk (a newly opened chunk's meta block is zero). A
/// normal chunk's argument is written 0 and ignored when read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkKind {
    /// Pages handed out as runs, described by the bitmap and the page map.
    Normal,
    /// The first chunk of a huge run of `chunks` chunks.
    HugeHead { chunks: u64 },
    /// Chunk `back` of the huge run whose head is `back` chunks before it.
    HugeTail { back: u64 },
    /// A huge head of `chunks` chunks whose release has begun.
    HugeReleasing { chunks: u64 },
}

/// A kind word whose kind (bits 0..8) names no kind: damage, or a hostile file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UnknownKind(pub u8);

impl ChunkKind {
    pub(crate) fn to_word(self) -> u64 {
        let (kind, arg) = match self {
            ChunkKind::Normal => (CHUNK_NORMAL, 0),
            ChunkKind::HugeHead { chunks } => (CHUNK_HUGE_HEAD, chunks),
            ChunkKind::HugeTail { back } => (CHUNK_HUGE_TAIL, back),
            ChunkKind::HugeReleasing { chunks } => (CHUNK_HUGE_RELEASING, chunks),
        };
        debug_assert!(
            arg < CHUNK_ARG_LIMIT,
            "chunk kind argument {arg} overflows 56 bits"
        );
        kind | (arg << CHUNK_ARG_SHIFT)
    }

    pub(crate) fn from_word(w: u64) -> Result<Self, UnknownKind> {
        let arg = w >> CHUNK_ARG_SHIFT;
        match w & CHUNK_KIND_BITS {
            CHUNK_NORMAL => Ok(ChunkKind::Normal),
            CHUNK_HUGE_HEAD => Ok(ChunkKind::HugeHead { chunks: arg }),
            CHUNK_HUGE_TAIL => Ok(ChunkKind::HugeTail { back: arg }),
            CHUNK_HUGE_RELEASING => Ok(ChunkKind::HugeReleasing { chunks: arg }),
            kind => Err(UnknownKind(kind as u8)),
        }
    }
}

// ---- bitmap words (meta words 1 .. 1 + chunk_pages / 32) -------------------------------------

const CLAIMED_BITS: u64 = 0xffff_ffff;
const TAG_SHIFT: u64 = 32;

/// One word of a chunk's bitmap of claimed pages: word i covers pages 32i .. 32i + 32.
///
/// | bits | field |
/// |---|---|
/// | 0..32 | claimed: bit b set means page 32i + b is claimed |
/// | 32..64 | tag: every successful CAS on the word adds 1 (wrapping) |
///
/// The tag makes a CAS against a stale read fail, so the bitmap has no ABA. Every `u64` is a
/// bitmap word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BitmapWord {
    pub claimed: u32,
    pub tag: u32,
}

impl BitmapWord {
    pub(crate) fn to_word(self) -> u64 {
        ((self.tag as u64) << TAG_SHIFT) | self.claimed as u64
    }

    pub(crate) fn from_word(w: u64) -> Self {
        BitmapWord {
            claimed: (w & CLAIMED_BITS) as u32,
            tag: (w >> TAG_SHIFT) as u32,
        }
    }

    /// The claimed bits of word `w`.
    pub(crate) fn claimed_of(w: u64) -> u32 {
        BitmapWord::from_word(w).claimed
    }

    /// The word a CAS from `w` stores to leave `claimed` claimed: the tag goes up by one.
    pub(crate) fn next(w: u64, claimed: u32) -> u64 {
        let old = BitmapWord::from_word(w);
        BitmapWord {
            claimed,
            tag: old.tag.wrapping_add(1),
        }
        .to_word()
    }

    /// A mask of `n` page bits starting at bit `start` (n in 1..=32).
    pub(crate) fn mask(start: u64, n: u64) -> u32 {
        debug_assert!(n >= 1 && start + n <= 32);
        if n == 32 {
            u32::MAX
        } else {
            ((1u32 << n) - 1) << start
        }
    }
}

/// The lowest start of `n` consecutive zero bits in `w` (n in 1..=32).
pub(crate) fn find_zero_run(w: u32, n: u64) -> Option<u64> {
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

// ---- page map entries (meta words map_offset / 8 ..) -----------------------------------------

/// Kinds of run, in bits 56..64 of a start entry.
pub const RUN_LARGE: u64 = 1;
pub const RUN_SEGMENT: u64 = 2;
const ENTRY_CONT: u64 = 3;
const ENTRY_KIND_SHIFT: u64 = 56;
const ENTRY_LEN_MASK: u64 = (1 << 24) - 1;
const ENTRY_USER_SHIFT: u64 = 24;

/// The kind of a run in a normal chunk, as its start entry records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunKind {
    /// A large block (`RUN_LARGE`).
    Large,
    /// A segment of small blocks (`RUN_SEGMENT`).
    Segment,
}

impl RunKind {
    /// `RUN_LARGE` or `RUN_SEGMENT`: the value `Run::kind` and the start entry hold.
    pub(crate) fn tag(self) -> u64 {
        match self {
            RunKind::Large => RUN_LARGE,
            RunKind::Segment => RUN_SEGMENT,
        }
    }

    pub(crate) fn from_tag(tag: u64) -> Option<Self> {
        match tag {
            RUN_LARGE => Some(RunKind::Large),
            RUN_SEGMENT => Some(RunKind::Segment),
            _ => None,
        }
    }
}

/// The map entry of the first page of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartEntry {
    pub kind: RunKind,
    /// The run's length in pages (1..=chunk_pages when written; read raw, so possibly 0 or too
    /// long in a damaged file).
    pub pages: u32,
    /// The bits the run's owner stored with it (the heap keeps a segment's size class here).
    pub user: u32,
}

/// One word of a chunk's page map: entry p describes page p.
///
/// | bits | start entry | continuation entry | nothing |
/// |---|---|---|---|
/// | 56..64 | kind: 1 = large (`RUN_LARGE`), 2 = segment (`RUN_SEGMENT`) | 3 | 0 |
/// | 24..56 | user | 0 | 0 |
/// | 0..24 | length in pages | distance back to the run's start page | 0 |
///
/// `from_word` gives `None` for "nothing": a kind of 0 (a page that no run has described) or
/// an unknown kind. It ignores bits 24..56 of a continuation (`check` compares whole words).
/// An entry counts only if its page is claimed and it leads to a start entry whose run covers
/// the page; releasing a run zeroes only its start entry, so others keep stale values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapEntry {
    Start(StartEntry),
    Cont { back: u32 },
}

impl MapEntry {
    /// The word of a page that no run describes, and what releasing a run leaves in its start
    /// entry.
    pub(crate) const NOTHING: u64 = 0;

    pub(crate) fn to_word(self) -> u64 {
        match self {
            MapEntry::Start(s) => {
                debug_assert!(
                    u64::from(s.pages) <= ENTRY_LEN_MASK,
                    "run of {} pages overflows 24 bits",
                    s.pages
                );
                (s.kind.tag() << ENTRY_KIND_SHIFT)
                    | (u64::from(s.user) << ENTRY_USER_SHIFT)
                    | u64::from(s.pages)
            }
            MapEntry::Cont { back } => {
                debug_assert!(
                    u64::from(back) <= ENTRY_LEN_MASK,
                    "continuation distance {back} overflows 24 bits"
                );
                (ENTRY_CONT << ENTRY_KIND_SHIFT) | u64::from(back)
            }
        }
    }

    pub(crate) fn from_word(w: u64) -> Option<Self> {
        let low = (w & ENTRY_LEN_MASK) as u32;
        match w >> ENTRY_KIND_SHIFT {
            ENTRY_CONT => Some(MapEntry::Cont { back: low }),
            tag => RunKind::from_tag(tag).map(|kind| {
                MapEntry::Start(StartEntry {
                    kind,
                    pages: low,
                    user: (w >> ENTRY_USER_SHIFT) as u32,
                })
            }),
        }
    }
}

// ---- page journal words (lock file slot word 8) ----------------------------------------------

const J_CLAIM: u64 = 1;
const J_RELEASE: u64 = 2;
const J_HUGE_CLAIM: u64 = 3;
const J_HUGE_RELEASE: u64 = 4;
const J_OP_SHIFT: u64 = 60;
const J_CHUNK_SHIFT: u64 = 26;
const J_CHUNK_LIMIT: u64 = 1 << 34;
const J_FIRST_SHIFT: u64 = 13;
const J_PAGE_MASK: u64 = (1 << 13) - 1;
const J_CHUNKS_MASK: u64 = (1 << 26) - 1;

/// The page step a participant is in, as its page journal names it. The word 0 names none.
///
/// | bits | `Claim` (op 1), `Release` (op 2) | `HugeClaim` (op 3), `HugeRelease` (op 4) |
/// |---|---|---|
/// | 60..64 | op | op |
/// | 26..60 | chunk | head: the huge run's first chunk |
/// | 13..26 | first: the run's first page within the chunk | chunks: the huge run's length in chunks (bits 0..26) |
/// | 0..13 | n: the run's length in pages (1..=chunk_pages) | (chunks) |
///
/// `from_word` gives `None` for 0 and for an unknown op (5..16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JournalWord {
    /// Claiming pages `first..first + n` of normal chunk `chunk`.
    Claim { chunk: u64, first: u64, n: u64 },
    /// Releasing the run of `n` pages at page `first` of normal chunk `chunk`.
    Release { chunk: u64, first: u64, n: u64 },
    /// Claiming the huge run of `chunks` chunks from chunk `head` on.
    HugeClaim { head: u64, chunks: u64 },
    /// Releasing the huge run of `chunks` chunks whose head is chunk `head`.
    HugeRelease { head: u64, chunks: u64 },
}

impl JournalWord {
    pub(crate) fn to_word(self) -> u64 {
        match self {
            JournalWord::Claim { chunk, first, n } => Self::run(J_CLAIM, chunk, first, n),
            JournalWord::Release { chunk, first, n } => Self::run(J_RELEASE, chunk, first, n),
            JournalWord::HugeClaim { head, chunks } => Self::huge(J_HUGE_CLAIM, head, chunks),
            JournalWord::HugeRelease { head, chunks } => Self::huge(J_HUGE_RELEASE, head, chunks),
        }
    }

    fn run(op: u64, chunk: u64, first: u64, n: u64) -> u64 {
        debug_assert!(
            chunk < J_CHUNK_LIMIT,
            "journal chunk {chunk} overflows 34 bits"
        );
        debug_assert!(
            first <= J_PAGE_MASK,
            "journal page {first} overflows 13 bits"
        );
        debug_assert!(
            n <= J_PAGE_MASK,
            "journal run of {n} pages overflows 13 bits"
        );
        (op << J_OP_SHIFT) | (chunk << J_CHUNK_SHIFT) | (first << J_FIRST_SHIFT) | n
    }

    fn huge(op: u64, head: u64, chunks: u64) -> u64 {
        debug_assert!(
            head < J_CHUNK_LIMIT,
            "journal chunk {head} overflows 34 bits"
        );
        debug_assert!(
            chunks <= J_CHUNKS_MASK,
            "huge run of {chunks} chunks overflows 26 bits"
        );
        (op << J_OP_SHIFT) | (head << J_CHUNK_SHIFT) | chunks
    }

    pub(crate) fn from_word(v: u64) -> Option<Self> {
        let chunk = (v >> J_CHUNK_SHIFT) & (J_CHUNK_LIMIT - 1);
        let first = (v >> J_FIRST_SHIFT) & J_PAGE_MASK;
        let n = v & J_PAGE_MASK;
        let chunks = v & J_CHUNKS_MASK;
        match v >> J_OP_SHIFT {
            J_CLAIM => Some(JournalWord::Claim { chunk, first, n }),
            J_RELEASE => Some(JournalWord::Release { chunk, first, n }),
            J_HUGE_CLAIM => Some(JournalWord::HugeClaim {
                head: chunk,
                chunks,
            }),
            J_HUGE_RELEASE => Some(JournalWord::HugeRelease {
                head: chunk,
                chunks,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spread of words, hostile ones included: every decoder must take them without panicking.
    fn garbage() -> Vec<u64> {
        let mut words = vec![0, 1, u64::MAX, u64::MAX - 1, 1 << 63, 0x8000_0000_ffff_ffff];
        for shift in 0..64 {
            words.push(1 << shift);
            words.push(u64::MAX >> shift);
            words.push(u64::MAX << shift);
        }
        for top in 0..256u64 {
            words.push(top << 56);
            words.push((top << 56) | 0x00ff_ffff_ffff_ffff);
            words.push((top << 56) | 0x0012_3456_789a_bcde);
        }
        for op in 0..16u64 {
            words.push(op << 60);
            words.push((op << 60) | 0x0fff_ffff_ffff_ffff);
        }
        // A fixed xorshift sequence: the same words every run.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            words.push(x);
        }
        words
    }

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
    fn masks() {
        assert_eq!(BitmapWord::mask(0, 1), 1);
        assert_eq!(BitmapWord::mask(3, 2), 0b11000);
        assert_eq!(BitmapWord::mask(31, 1), 0x8000_0000);
        assert_eq!(BitmapWord::mask(0, 31), 0x7fff_ffff);
        assert_eq!(BitmapWord::mask(1, 31), 0xffff_fffe);
        assert_eq!(BitmapWord::mask(0, 32), u32::MAX);
    }

    #[test]
    fn chunk_kinds_round_trip_at_their_limits() {
        let max = CHUNK_ARG_LIMIT - 1;
        for arg in [1, 2, 512, 1 << 20, max] {
            for kind in [
                ChunkKind::HugeHead { chunks: arg },
                ChunkKind::HugeTail { back: arg },
                ChunkKind::HugeReleasing { chunks: arg },
            ] {
                assert_eq!(ChunkKind::from_word(kind.to_word()), Ok(kind));
            }
        }
        assert_eq!(ChunkKind::Normal.to_word(), 0);
        assert_eq!(ChunkKind::from_word(0), Ok(ChunkKind::Normal));
        // A normal chunk's argument is ignored.
        assert_eq!(ChunkKind::from_word(7 << 8), Ok(ChunkKind::Normal));
    }

    #[test]
    fn unknown_chunk_kinds_are_errors() {
        for kind in 4..=255u64 {
            for arg in [0, 1, CHUNK_ARG_LIMIT - 1] {
                let w = kind | (arg << 8);
                assert_eq!(ChunkKind::from_word(w), Err(UnknownKind(kind as u8)));
            }
        }
    }

    #[test]
    fn bitmap_words_round_trip_and_tag() {
        for (claimed, tag) in [
            (0, 0),
            (u32::MAX, u32::MAX),
            (1, u32::MAX),
            (0x8000_0001, 7),
        ] {
            let b = BitmapWord { claimed, tag };
            assert_eq!(BitmapWord::from_word(b.to_word()), b);
            assert_eq!(BitmapWord::claimed_of(b.to_word()), claimed);
        }
        // A CAS replaces the claimed bits and bumps the tag, wrapping at 2^32.
        assert_eq!(
            BitmapWord::next(0x0000_0005_0000_00f0, 0x0f),
            0x0000_0006_0000_000f
        );
        assert_eq!(BitmapWord::next(0xffff_ffff_0000_0001, 0), 0);
        assert_eq!(
            BitmapWord::next(0xffff_fffe_ffff_ffff, 3),
            0xffff_ffff_0000_0003
        );
    }

    #[test]
    fn map_entries_round_trip_at_their_limits() {
        for kind in [RunKind::Large, RunKind::Segment] {
            assert_eq!(RunKind::from_tag(kind.tag()), Some(kind));
            for pages in [0, 1, 512, 4096, ENTRY_LEN_MASK as u32] {
                for user in [0, 1, 31, u32::MAX] {
                    let e = MapEntry::Start(StartEntry { kind, pages, user });
                    assert_eq!(MapEntry::from_word(e.to_word()), Some(e));
                }
            }
        }
        for back in [0, 1, 511, 4095, ENTRY_LEN_MASK as u32] {
            let e = MapEntry::Cont { back };
            assert_eq!(MapEntry::from_word(e.to_word()), Some(e));
        }
        assert_eq!(RunKind::from_tag(0), None);
        assert_eq!(RunKind::from_tag(3), None);
    }

    #[test]
    fn map_entries_of_no_kind_are_none() {
        assert_eq!(MapEntry::from_word(0), None);
        for kind in (0..=255u64).filter(|k| !(1..=3).contains(k)) {
            assert_eq!(MapEntry::from_word(kind << 56), None);
            assert_eq!(
                MapEntry::from_word((kind << 56) | 0x00ff_ffff_ffff_ffff),
                None
            );
        }
        // A continuation's middle bits are ignored.
        assert_eq!(
            MapEntry::from_word((3 << 56) | (5 << 24) | 2),
            Some(MapEntry::Cont { back: 2 })
        );
    }

    #[test]
    fn journal_words_round_trip_at_their_limits() {
        let chunk_max = J_CHUNK_LIMIT - 1;
        for chunk in [0, 1, 12345, (1 << 21) - 2, chunk_max] {
            for (first, n) in [(0, 1), (511, 1), (0, 512), (4095, 4096), (8191, 8191)] {
                for w in [
                    JournalWord::Claim { chunk, first, n },
                    JournalWord::Release { chunk, first, n },
                ] {
                    assert_eq!(JournalWord::from_word(w.to_word()), Some(w));
                }
            }
            for chunks in [1, 9, 1 << 20, J_CHUNKS_MASK] {
                for w in [
                    JournalWord::HugeClaim {
                        head: chunk,
                        chunks,
                    },
                    JournalWord::HugeRelease {
                        head: chunk,
                        chunks,
                    },
                ] {
                    assert_eq!(JournalWord::from_word(w.to_word()), Some(w));
                }
            }
        }
    }

    #[test]
    fn journal_words_of_no_op_are_none() {
        assert_eq!(JournalWord::from_word(0), None);
        for op in [0u64, 5, 6, 7, 8, 15] {
            assert_eq!(JournalWord::from_word(op << 60), None);
            assert_eq!(
                JournalWord::from_word((op << 60) | 0x0fff_ffff_ffff_ffff),
                None
            );
        }
    }

    /// Every decoder takes every garbage word without panicking, and a word it accepts encodes
    /// back to itself where the layout has no ignored bits.
    #[test]
    fn garbage_decodes_without_panicking() {
        for w in garbage() {
            let b = BitmapWord::from_word(w);
            assert_eq!(b.to_word(), w);
            match ChunkKind::from_word(w) {
                Ok(ChunkKind::Normal) => assert_eq!(w & 0xff, 0),
                Ok(k) => assert_eq!(k.to_word(), w),
                Err(UnknownKind(k)) => assert_eq!(u64::from(k), w & 0xff),
            }
            match MapEntry::from_word(w) {
                Some(e @ MapEntry::Start(_)) => assert_eq!(e.to_word(), w),
                Some(e @ MapEntry::Cont { .. }) => {
                    assert_eq!(e.to_word(), w & !(0xffff_ffff << 24))
                }
                None => assert!(!(1..=3).contains(&(w >> 56))),
            }
            match JournalWord::from_word(w) {
                Some(j) => assert_eq!(j.to_word(), w),
                None => assert!(!(1..=4).contains(&(w >> 60))),
            }
        }
    }

    /// One example of each word, bit for bit (FORMAT.md §4 and §6.4). A failure here is a change
    /// of the file format.
    #[test]
    fn layout_is_pinned() {
        assert_eq!(
            ChunkKind::HugeHead { chunks: 3 }.to_word(),
            0x0000_0000_0000_0301
        );
        assert_eq!(
            ChunkKind::HugeTail { back: 2 }.to_word(),
            0x0000_0000_0000_0202
        );
        assert_eq!(
            ChunkKind::HugeReleasing { chunks: 0x12_3456 }.to_word(),
            0x0000_0000_1234_5603
        );
        assert_eq!(
            BitmapWord {
                claimed: 0x0000_00f0,
                tag: 0x0000_0102
            }
            .to_word(),
            0x0000_0102_0000_00f0
        );
        assert_eq!(
            MapEntry::Start(StartEntry {
                kind: RunKind::Segment,
                pages: 16,
                user: 0x0000_0007,
            })
            .to_word(),
            0x0200_0000_0700_0010
        );
        assert_eq!(
            MapEntry::Start(StartEntry {
                kind: RunKind::Large,
                pages: 512,
                user: 0,
            })
            .to_word(),
            0x0100_0000_0000_0200
        );
        assert_eq!(MapEntry::Cont { back: 5 }.to_word(), 0x0300_0000_0000_0005);
        // op 1, chunk 12345 (0x3039) << 26, first 511 << 13, n 4096.
        assert_eq!(
            JournalWord::Claim {
                chunk: 12345,
                first: 511,
                n: 4096
            }
            .to_word(),
            0x1000_00c0_e43f_f000
        );
        assert_eq!(
            JournalWord::Release {
                chunk: 1,
                first: 2,
                n: 3
            }
            .to_word(),
            0x2000_0000_0400_4003
        );
        assert_eq!(
            JournalWord::HugeClaim { head: 7, chunks: 2 }.to_word(),
            0x3000_0000_1c00_0002
        );
        assert_eq!(
            JournalWord::HugeRelease {
                head: 77,
                chunks: 9
            }
            .to_word(),
            0x4000_0001_3400_0009
        );
    }
}
