//! Where everything sits in the store file: the header's fields and the chunk arithmetic.
//!
//! FORMAT.md is the byte-by-byte description; this file is its executable form. The address
//! space after the header is cut into *generations*: generation g holds 2^g chunks, its chunks'
//! metadata first (one meta block per chunk), then their data pages. So a chunk's metadata never
//! becomes data and data never becomes metadata (type-stable metadata: a process that stalls
//! with a stale offset of a meta word can at worst lose a CAS, never scribble on user data), and
//! the data pages of one generation are contiguous, so a run of whole chunks (a huge block) can
//! be as large as a generation.

/// The magic in the first 8 bytes. The whole header page is written by one write when a store
/// is created, into a file that is not yet linked at its name (or, for an empty file, under the
/// init lock), so no opener ever sees a store half-written.
pub const MAGIC: [u8; 8] = *b"PERSIST\0";
/// The format version in bytes 8..12. Any other value is refused with both versions named.
pub const FORMAT_VERSION: u32 = 1;
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

/// Generations are numbered 0..MAX_GENERATIONS (2^21 - 1 chunks of 2 MiB: about 4 TiB of
/// address space). A store is limited earlier by its address reservation (1 TiB, see
/// `mapping`), which ends inside generation 18.
pub const MAX_GENERATIONS: u32 = 21;

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

    /// First byte of generation `g`.
    pub fn gen_start(&self, g: u32) -> u64 {
        self.header_bytes + ((1u64 << g) - 1) * (self.meta_bytes() + self.chunk_bytes())
    }

    /// Generation and index within it of chunk number `c`.
    pub fn gen_of_chunk(&self, c: u64) -> (u32, u64) {
        let g = 63 - (c + 1).leading_zeros();
        (g, c + 1 - (1u64 << g))
    }

    /// First chunk number of generation `g`.
    pub fn first_chunk(&self, g: u32) -> u64 {
        (1u64 << g) - 1
    }

    /// Offset of chunk `c`'s meta block.
    pub fn meta_of(&self, c: u64) -> u64 {
        let (g, i) = self.gen_of_chunk(c);
        self.gen_start(g) + i * self.meta_bytes()
    }

    /// Offset of chunk `c`'s first data page.
    pub fn data_of(&self, c: u64) -> u64 {
        let (g, i) = self.gen_of_chunk(c);
        self.gen_start(g) + (1u64 << g) * self.meta_bytes() + i * self.chunk_bytes()
    }

    /// The chunk and page whose data holds `offset`; `None` for the header, a meta block, or
    /// beyond the last generation.
    pub fn locate(&self, offset: u64) -> Option<(u64, u64)> {
        let rel = offset.checked_sub(self.header_bytes)?;
        // Generation g spans [(2^g - 1) * span, (2^(g+1) - 1) * span) after the header.
        let span = self.meta_bytes() + self.chunk_bytes();
        let g = 63 - (rel / span + 1).leading_zeros();
        if g >= MAX_GENERATIONS {
            return None;
        }
        let data_start = self.gen_start(g) + (1u64 << g) * self.meta_bytes();
        if offset < data_start {
            return None;
        }
        // Pages and chunks are powers of two: shifts and masks, not divisions (this is on the
        // free path).
        let rel = offset - data_start;
        let page_shift = self.page_size.trailing_zeros();
        let chunk_shift = page_shift + self.chunk_pages.trailing_zeros();
        let c = self.first_chunk(g) + (rel >> chunk_shift);
        Some((c, (rel & ((1 << chunk_shift) - 1)) >> page_shift))
    }

    /// Chunks in total over all generations.
    pub fn max_chunks(&self) -> u64 {
        (1u64 << MAX_GENERATIONS) - 1
    }

    /// Bytes the file must have for chunk `c`'s meta block (and all before it) to exist.
    pub fn end_of_meta(&self, c: u64) -> u64 {
        self.meta_of(c) + self.meta_bytes()
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
    /// words, a block cache of 13 entries a class.
    pub const VERSION: u32 = 4;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_tile_the_address_space() {
        for geo in [Geometry::STANDARD, Geometry::TINY] {
            assert!(geo.is_valid());
            let mut prev_end = geo.header_bytes;
            for c in 0..200u64 {
                let m = geo.meta_of(c);
                let d = geo.data_of(c);
                assert!(m >= geo.header_bytes && d > m);
                assert_eq!(d % geo.page_size, 0);
                assert_eq!(geo.locate(d), Some((c, 0)));
                assert_eq!(
                    geo.locate(d + geo.chunk_bytes() - 1),
                    Some((c, geo.chunk_pages - 1))
                );
                assert_eq!(geo.locate(m), None);
                assert!(d + geo.chunk_bytes() > prev_end);
                prev_end = d + geo.chunk_bytes();
            }
            // Data of consecutive chunks of one generation is contiguous.
            assert_eq!(geo.data_of(3) + geo.chunk_bytes(), geo.data_of(4));
            assert_eq!(geo.locate(0), None);
        }
    }

    #[test]
    fn standard_meta_block_is_two_pages() {
        assert_eq!(Geometry::STANDARD.meta_bytes(), 8192);
        assert_eq!(Geometry::STANDARD.bitmap_words(), 16);
    }
}
