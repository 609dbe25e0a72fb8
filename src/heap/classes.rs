//! Size classes: block sizes with at most 25% internal waste (four classes per doubling above
//! 128 bytes), all multiples of 16 so that every block is 16-aligned.

/// Block sizes of the classes, smallest first.
pub const CLASS_SIZES: [u64; 32] = [
    16, 32, 48, 64, 80, 96, 112, 128, //
    160, 192, 224, 256, 320, 384, 448, 512, //
    640, 768, 896, 1024, 1280, 1536, 1792, 2048, //
    2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192,
];

pub const NCLASSES: usize = CLASS_SIZES.len();

/// Requests above this many bytes get a run of pages of their own.
pub const MAX_SMALL: u64 = CLASS_SIZES[NCLASSES - 1];

/// The class of a request of `size` bytes (1..=MAX_SMALL).
pub fn class_of(size: u64) -> usize {
    debug_assert!((1..=MAX_SMALL).contains(&size));
    if size <= 128 {
        return (size.max(1) as usize - 1) / 16;
    }
    // Above 128: four classes per power of two.
    let log = 63 - (size - 1).leading_zeros() as usize; // size in (2^log, 2^(log+1)]
    let quarter = 1u64 << (log - 2);
    let base = 8 + (log - 7) * 4;
    base + ((size - 1 - (1u64 << log)) / quarter) as usize
}

/// The bytes of a segment of class `k` in a store whose chunks are `chunk_bytes` long: large
/// enough to hold many blocks (so segment creation is rare), never larger than a chunk.
pub fn segment_bytes(k: usize, chunk_bytes: u64) -> u64 {
    let target = if CLASS_SIZES[k] <= 1024 {
        64 << 10
    } else {
        256 << 10
    };
    target.min(chunk_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_gets_the_smallest_class_that_fits() {
        for size in 1..=MAX_SMALL {
            let k = class_of(size);
            assert!(CLASS_SIZES[k] >= size, "size {size} class {k}");
            assert!(k == 0 || CLASS_SIZES[k - 1] < size, "size {size} class {k}");
        }
    }
}
