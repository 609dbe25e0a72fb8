//! Where everything sits in the store file: the header's fields and the chunk arithmetic.
//!
//! FORMAT.md is the byte-by-byte description; this file is its executable form. The address
//! space after the header is cut into *areas*, laid end to end: area k holds `n_k` chunks, its
//! chunks' metadata first (one meta block per chunk), then their data pages. So a chunk's
//! metadata never becomes data and data never becomes metadata (type-stable metadata: a
//! process that stalls with a stale offset of a meta word can at worst lose a CAS, never
//! scribble on user data), and the data pages of one area are contiguous, so a run of whole
//! chunks (a huge block) can be as large as an area.
//!
//! An area's size is chosen when it is created (a CAS on its word in the header's area table),
//! so a huge block gets an area of exactly its own chunks when no existing area has room: it
//! costs what it weighs, rounded to chunks. (Format version 1 had fixed areas of 2^g chunks,
//! *generations*: a block of 51 chunks needed generation 6 and a file of every generation
//! before it, 2.3 times its size.)

/// The magic in the first 8 bytes. The whole header page is written by one write when a store
/// is created, into a file that is not yet linked at its name (or, for an empty file, under the
/// init lock), so no opener ever sees a store half-written.
pub const MAGIC: [u8; 8] = *b"PERSIST\0";
/// The format version in bytes 8..12. Any other value is refused with both versions named.
/// Version 2: areas sized when created (an area table in header bytes 768..2816); version 1
/// had fixed generations. Version 3: the everyday value kinds (datetime, date, time,
/// timedelta, Decimal, UUID, frozenset: object block kinds 6..12) and the numeric key hash
/// modulo 2^61 - 1 (numbers of every type hash by value), so a version-2 store's dict tables
/// would hash number keys differently. Version 4: single changes on part locks (FORMAT.md
/// §10.9): container versions move by 2 and are odd while a change holds the container, and
/// the undo log block holds the held-parts record before its entries. Version 5: the set
/// container (object block kind 19), which a version-4 reader would call damage. Version 6:
/// the list block's `start` word (the index of its first item in its items block), which a
/// version-5 reader would not know (it would read the items from word 0). Version 7: the
/// cache container (object block kind 20). Version 8: a list's `len` word may hold a claim on
/// its tail (bit 63, an append in flight, FORMAT.md §10.9), which a version-7 reader would take
/// for damage. Version 9: an appender of a block item holds its claim at the length with the
/// item until its journal is settled, and pops without a lock take block items (FORMAT.md
/// §10.9); a version-8 appender ends its claim first, which a version-9 popper could race into
/// freeing the block twice, so the two must not share a store. Version 10: a dict's delete
/// without a lock commits by emptying the entry's value word, with the entry named in the
/// dict's insert claim (bit 62, FORMAT.md §10.9 "Deletes"); a version-9 recoverer of a dead
/// deleter would leave the entry with its key and an empty value.
pub const FORMAT_VERSION: u32 = 10;
/// Bytes 04 03 02 01 at offset 12. Written and read as little-endian; the engine refuses to
/// build for big-endian targets (its shared words are native atomics), so a mismatch here means
/// a damaged or foreign header.
pub const ENDIAN_MARK: u32 = 0x0102_0304;

/// Header fields (byte offsets). 0..64 is immutable after creation and covered by the checksum.
pub mod hdr {
    pub const MAGIC: u64 = 0;
    pub const VERSION: u64 = 8;
    pub const ENDIAN: u64 = 12;
    pub const PAGE_SIZE: u64 = 16;
    pub const CHUNK_PAGES: u64 = 20;
    pub const HEADER_BYTES: u64 = 24;
    pub const FLAGS: u64 = 28;
    pub const STORE_ID: u64 = 32;
    pub const CREATED_NS: u64 = 40;
    pub const CHECKSUM: u64 = 56;
    /// End of the checksummed, immutable part.
    pub const IMMUTABLE_END: u64 = 56;

    // Mutable words (atomics), 8-aligned.
    /// Bytes of the file that are reserved on disk and may be touched (grows only).
    pub const FILE_SIZE: u64 = 64;
    /// Chunks opened so far (the page manager's break, in chunks; grows only).
    pub const CHUNK_COUNT: u64 = 72;
    /// A hint: the chunk where the last page search succeeded.
    pub const PAGE_CURSOR: u64 = 80;
    /// Words 88..256 belong to the object layer (root, store lock, ...).
    pub const OBJECT_WORDS: u64 = 88;
    pub const OBJECT_WORDS_END: u64 = 256;
    /// The heap's size-class table: per class, two words (segment list head, hint).
    pub const CLASS_TABLE: u64 = 256;
    /// The area table: word k is the end (exclusive, in chunks) of area k, 0 while area k does
    /// not exist. Areas are created in order, so the words that exist are a prefix and grow.
    pub const AREA_TABLE: u64 = 768;
    /// The lock epoch: a random word that every writable open sets anew, in the store and in
    /// its lock file, so that a lock file whose epoch the store does not hold describes
    /// another state of the store (an earlier copy put back) and is rebuilt (FORMAT.md §6.1).
    pub const LOCK_EPOCH: u64 = 2816;
}

/// The shape of a store: fixed per file, recorded in its header. Real stores always use
/// [`Geometry::STANDARD`]; the loom models use a tiny one so that a model's simulated mapping
/// holds only a few thousand atomics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub page_size: u64,
    pub chunk_pages: u64,
    pub header_bytes: u64,
}

/// Chunks in a store at most: 2^21 - 1 chunks of 2 MiB, about 4 TiB of data. A store is
/// limited earlier by its address reservation (1 TiB, see `mapping`).
pub const MAX_CHUNKS: u64 = (1 << 21) - 1;

/// Words in the area table at most (a tiny geometry's header holds fewer).
pub const MAX_AREAS: u64 = 256;

/// One area: chunks `first..end`. It starts at byte `header + first * span` (every chunk
/// before it, in earlier areas, takes one meta block and one chunk of data), holds the meta
/// blocks of its `end - first` chunks, then their data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Area {
    /// Its index in the area table.
    pub index: u64,
    pub first: u64,
    pub end: u64,
}

impl Area {
    /// The area of no chunk: a cache that holds it never hits.
    pub const NONE: Area = Area {
        index: 0,
        first: 0,
        end: 0,
    };

    pub fn holds(&self, c: u64) -> bool {
        self.first <= c && c < self.end
    }

    pub fn chunks(&self) -> u64 {
        self.end - self.first
    }
}

impl Geometry {
    pub const STANDARD: Geometry = Geometry {
        page_size: 4096,
        chunk_pages: 512,
        header_bytes: 4096,
    };
    /// For models and unit tests only: 256-byte pages, 32 pages a chunk.
    pub const TINY: Geometry = Geometry {
        page_size: 256,
        chunk_pages: 32,
        header_bytes: 1024,
    };

    /// True when the numbers describe a geometry this code can use (a hostile header may lie).
    pub fn is_valid(&self) -> bool {
        self.page_size.is_power_of_two()
            && (256..=65536).contains(&self.page_size)
            && self.chunk_pages.is_power_of_two()
            && (32..=4096).contains(&self.chunk_pages)
            && self.header_bytes % self.page_size == 0
            && self.header_bytes >= 1024
            && self.header_bytes <= 1 << 20
    }

    pub fn chunk_bytes(&self) -> u64 {
        self.page_size * self.chunk_pages
    }

    /// Bitmap words of a chunk: 32 pages per word (the high half is an ABA tag).
    pub fn bitmap_words(&self) -> u64 {
        self.chunk_pages / 32
    }

    /// Offset of the page map inside a meta block (after the kind word and the bitmap).
    pub fn map_offset(&self) -> u64 {
        (8 * (1 + self.bitmap_words())).next_multiple_of(64)
    }

    /// Bytes of one chunk's meta block, a whole number of pages.
    pub fn meta_bytes(&self) -> u64 {
        // page_size is a power of two (`is_valid`): round up with a mask, not a division.
        (self.map_offset() + 8 * self.chunk_pages + self.page_size - 1) & !(self.page_size - 1)
    }

    /// Bytes one chunk takes in the file: its meta block and its data.
    pub fn chunk_span(&self) -> u64 {
        self.meta_bytes() + self.chunk_bytes()
    }

    /// Words of the area table this geometry's header holds.
    pub fn area_slots(&self) -> u64 {
        ((self.header_bytes - hdr::AREA_TABLE) / 8).min(MAX_AREAS)
    }

    /// The header word of area `k` (the end of the area, in chunks).
    pub fn area_word(&self, k: u64) -> u64 {
        hdr::AREA_TABLE + 8 * k
    }

    /// First byte of an area whose first chunk is `first`.
    pub fn area_start(&self, first: u64) -> u64 {
        self.header_bytes + first * self.chunk_span()
    }

    /// Offset of chunk `c`'s meta block; `c` lies in `area`.
    pub fn meta_of(&self, area: Area, c: u64) -> u64 {
        debug_assert!(area.holds(c));
        self.area_start(area.first) + (c - area.first) * self.meta_bytes()
    }

    /// Offset of chunk `c`'s first data page; `c` lies in `area`.
    pub fn data_of(&self, area: Area, c: u64) -> u64 {
        debug_assert!(area.holds(c));
        self.area_start(area.first)
            + area.chunks() * self.meta_bytes()
            + (c - area.first) * self.chunk_bytes()
    }

    /// Bytes the file must have for chunk `c`'s meta block (and all before it) to exist.
    pub fn end_of_meta(&self, area: Area, c: u64) -> u64 {
        self.meta_of(area, c) + self.meta_bytes()
    }

    /// The chunk whose span (in whichever area) holds `offset`: the area that holds that chunk
    /// holds the offset. `None` for the header and beyond the last chunk.
    pub fn span_of(&self, offset: u64) -> Option<u64> {
        let q = offset.checked_sub(self.header_bytes)? / self.chunk_span();
        (q < MAX_CHUNKS).then_some(q)
    }

    /// The chunk and page whose data holds `offset`, which lies in `area`'s bytes (see
    /// `span_of`); `None` for a meta block.
    pub fn locate_in(&self, area: Area, offset: u64) -> Option<(u64, u64)> {
        let data_start = self.area_start(area.first) + area.chunks() * self.meta_bytes();
        let rel = offset.checked_sub(data_start)?;
        // Pages and chunks are powers of two: shifts and masks, not divisions.
        let page_shift = self.page_size.trailing_zeros();
        let chunk_shift = page_shift + self.chunk_pages.trailing_zeros();
        let c = area.first + (rel >> chunk_shift);
        if c >= area.end {
            return None;
        }
        Some((c, (rel & ((1 << chunk_shift) - 1)) >> page_shift))
    }

    /// Chunks for a new area after `end` chunks, area number `k`, that must hold at least
    /// `need`: `need`, or an eighth of the chunks so far if that is more. So normal growth
    /// makes few areas (each at least an eighth larger than the store: 256 of them reach far
    /// beyond `MAX_CHUNKS`), and a huge block placed after a growing area leaves at most an
    /// eighth of the store's chunks unopened behind it. `None` when `need` chunks do not fit.
    pub fn new_area_chunks(&self, end: u64, k: u64, need: u64) -> Option<u64> {
        let left = MAX_CHUNKS.checked_sub(end)?;
        if need > left || k >= self.area_slots() {
            return None;
        }
        Some(need.max(end >> 3).max(1).min(left))
    }

    /// Offset of class `k`'s two words in the header.
    pub fn class_words(&self, k: usize) -> u64 {
        hdr::CLASS_TABLE + 16 * k as u64
    }
}

/// FNV-1a, 64-bit: the header checksum. Not cryptographic; it catches torn or damaged headers.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The lock file beside a store (`<store>.lock`): the volatile coordination state. See FORMAT.md.
pub mod lockfile {
    pub const MAGIC: [u8; 8] = *b"PERSISTL";
    /// 2: slots of 96 words with a block cache. 3: the boot id in the header. 4: slots of 256
    /// words, a block cache of 13 entries a class. 5: the recovery of a dead participant reads
    /// the release cursor of its undo log block (FORMAT.md §10.3), which older builds leave
    /// unwritten: the two must never share a store. 6: the `slots high` word (parts, FORMAT.md
    /// §10.9). 7: the taken bit of block journals (FORMAT.md §6.4), which an older build's
    /// sweeps would read as part of the offset (and so free a block a live participant of this
    /// build holds unlinked). 8: the list event word and the waiting bits (FORMAT.md §6.1,
    /// §10.10), which an older build's appends would never move (its producers would leave
    /// this build's consumers asleep). 9: the change waiting bits (words 640..768), and every
    /// committed change of a container moves the event word while one is set (`Store.wait`,
    /// FORMAT.md §10.10), where an older build moves it only when a list gains items. 10: a
    /// free slot keeps the block cache its last participant left (FORMAT.md §6.5), which an
    /// older build's gc would free as garbage and this build's next attacher would hand out
    /// again. 11: the orphan list collected on its own part (store header word
    /// `orphans part`, undo entries of kind 5, FORMAT.md §10.5), which an older build's
    /// store-wide collection would know nothing of, and whose undo entries its recovery of a
    /// dead collector would refuse as damage.
    pub const VERSION: u32 = 11;
    /// Header: magic (8), version (4), slot count (4), store id (8), boot id (16).
    pub const HEADER_BYTES: u64 = 4096;
    pub const SLOTS: u32 = 1024;
    pub const SLOT_BYTES: u64 = super::super::table::SLOT_WORDS * 8;
    pub const FILE_BYTES: u64 = HEADER_BYTES + SLOTS as u64 * SLOT_BYTES;
    /// OFD-lock byte guarding initialisation of the lock file and of an empty store file.
    pub const INIT_LOCK_BYTE: u64 = 0;
    /// OFD-lock byte making recovery and repair exclusive across processes (see `heap`).
    pub const RECOVERY_LOCK_BYTE: u64 = 1;
    /// OFD-lock byte of slot i is LIVENESS_BYTE_BASE + i (beyond the end of the file, which
    /// fcntl allows: the bytes are names, not data).
    pub const LIVENESS_BYTE_BASE: u64 = 1 << 32;
    /// The bytes the open checks: magic, version, slot count, store id, boot id.
    pub const CHECKED_BYTES: usize = 40;
    /// Header word: 1 from a rebuild of the lock file until a writable opener has repaired what
    /// the store's earlier life left in flight (FORMAT.md §6.1); a read-only opener that
    /// rebuilds the file cannot repair, so the next writable one does.
    pub const REPAIR_PENDING: u64 = 320;
    /// Header word `slots high`: the highest slot ever attached, plus one, since the file was
    /// built (FORMAT.md §10.9). While it is 1, single changes run store-wide and unlocked
    /// reads check only the sequence (one participant: no part is ever held); sections scan
    /// the `active` words of the slots below it.
    pub const SLOTS_HIGH: u64 = 384;
    /// Header word `event`: a futex word moved by a committed change while some participant
    /// waits for it (`list_event`, FORMAT.md §10.10).
    pub const LIST_EVENT: u64 = 448;
    /// Header words 512..640 `waiting`: bit `s % 64` of word `s / 64` is set while a thread of
    /// the participant in slot `s` waits for a list to gain items.
    pub const WAITING_BITS: u64 = 512;
    pub const WAITING_WORDS: u64 = (SLOTS as u64).div_ceil(64);
    const _: () = assert!(WAITING_BITS + 8 * WAITING_WORDS <= 640);
    /// Header words 640..768 `change waiting`: as `waiting`, set while a thread of the
    /// participant waits for any change of a container (`Store.wait`).
    pub const CHANGE_WAITING_BITS: u64 = 640;
    const _: () = assert!(CHANGE_WAITING_BITS + 8 * WAITING_WORDS <= 768);
    /// Header words `epoch` (768) and `next epoch` (776): the store's lock epoch
    /// (`hdr::LOCK_EPOCH`) that this file's caches and journals belong to, and the one a
    /// writable opener is setting (written first: a kill between the store's word and
    /// `epoch` leaves the store holding `next epoch`). Read and written under the init lock.
    pub const EPOCH: u64 = 768;
    pub const NEXT_EPOCH: u64 = 776;
    const _: () = assert!(NEXT_EPOCH == EPOCH + 8); // read together, one pread
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_tile_the_address_space() {
        for geo in [Geometry::STANDARD, Geometry::TINY] {
            assert!(geo.is_valid());
            // Areas of 1, 3 and 51 chunks, end to end.
            let areas = [
                Area {
                    index: 0,
                    first: 0,
                    end: 1,
                },
                Area {
                    index: 1,
                    first: 1,
                    end: 4,
                },
                Area {
                    index: 2,
                    first: 4,
                    end: 55,
                },
            ];
            let mut prev_end = geo.header_bytes;
            for a in areas {
                assert_eq!(geo.area_start(a.first), prev_end, "areas lie end to end");
                for c in a.first..a.end {
                    let m = geo.meta_of(a, c);
                    let d = geo.data_of(a, c);
                    assert!(m >= geo.header_bytes && d > m);
                    assert_eq!(d % geo.page_size, 0);
                    for off in [m, d, d + geo.chunk_bytes() - 1] {
                        let q = geo.span_of(off).unwrap();
                        assert!(a.holds(q), "the span of an offset names its area");
                    }
                    assert_eq!(geo.locate_in(a, d), Some((c, 0)));
                    assert_eq!(
                        geo.locate_in(a, d + geo.chunk_bytes() - 1),
                        Some((c, geo.chunk_pages - 1))
                    );
                    assert_eq!(geo.locate_in(a, m), None);
                    if c + 1 < a.end {
                        // Data of consecutive chunks of one area is contiguous.
                        assert_eq!(d + geo.chunk_bytes(), geo.data_of(a, c + 1));
                    }
                }
                prev_end = geo.data_of(a, a.end - 1) + geo.chunk_bytes();
            }
            assert_eq!(geo.span_of(0), None);
        }
    }

    #[test]
    fn new_areas_are_what_they_hold_or_an_eighth() {
        let geo = Geometry::STANDARD;
        assert_eq!(geo.new_area_chunks(0, 0, 1), Some(1));
        assert_eq!(geo.new_area_chunks(1, 1, 51), Some(51));
        assert_eq!(geo.new_area_chunks(800, 20, 1), Some(100));
        assert_eq!(geo.new_area_chunks(800, 20, 101), Some(101));
        assert_eq!(geo.new_area_chunks(800, geo.area_slots(), 1), None);
        assert_eq!(geo.new_area_chunks(MAX_CHUNKS - 1, 5, 2), None);
        assert_eq!(Geometry::TINY.area_slots(), 32);
        assert_eq!(geo.area_slots(), MAX_AREAS);
    }

    #[test]
    fn standard_meta_block_is_two_pages() {
        assert_eq!(Geometry::STANDARD.meta_bytes(), 8192);
        assert_eq!(Geometry::STANDARD.bitmap_words(), 16);
    }
}
