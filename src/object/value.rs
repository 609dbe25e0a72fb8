//! Value words, block kinds and the store's own hash.
//!
//! Every slot of a container (a list item, a dict key or value, an object attribute) holds one
//! 64-bit *value word*. Small values live in the word itself; everything else is the offset of
//! a block (blocks are 16-aligned, so an offset's low four bits are zero):
//!
//! | low bits | meaning | payload |
//! |---|---|---|
//! | `...1` | small int | the word as i64, shifted right by one: -2^62 ..= 2^62-1 |
//! | `0010` | None | |
//! | `1010` | False | |
//! | `1_0010` | True | |
//! | `100` | short str | bits 3..6: length 0..=7; bytes 1..=7: the UTF-8 bytes |
//! | `0000` (not 0) | block | the offset of an owned value or of a container |
//! | `0` (the whole word) | empty | no value (an unused slot) |
//!
//! Encodings are canonical: an int that fits the small range is always small and a str of at
//! most 7 UTF-8 bytes is always short, so two equal values of one type have one word, and
//! a short str never equals a block.

use super::tree::Node;
use super::Error;

pub const EMPTY: u64 = 0;
pub const NONE: u64 = 0b0010;
pub const FALSE: u64 = 0b1010;
pub const TRUE: u64 = 0b1_0010;

const SHORT_STR_TAG: u64 = 0b100;
const SHORT_STR_MASK: u64 = 0b111;
pub const SHORT_STR_MAX: usize = 7;

pub const SMALL_INT_MIN: i64 = -(1 << 62);
pub const SMALL_INT_MAX: i64 = (1 << 62) - 1;

/// Block kinds: the low byte of a block's head word (FORMAT.md §10.2). Every match on a kind is
/// over this enum, so a new kind is a compile error until each walker handles it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Owned values: exactly one value word refers to each (stored by value).
    Str = 1,
    Bytes = 2,
    BigInt = 3,
    Float = 4,
    Tuple = 5,
    /// The everyday value types, packed bytes (packed.rs), and frozenset.
    DateTime = 6,
    Date = 7,
    Time = 8,
    TimeDelta = 9,
    Decimal = 10,
    Uuid = 11,
    FrozenSet = 12,
    /// Containers: shared, reference counted.
    List = 16,
    Dict = 17,
    Object = 18,
    /// A mutable set: a dict block whose entries have no value (set.rs).
    Set = 19,
    /// A cache: a dict block with expiry and size limits (cache.rs).
    Cache = 20,
    /// Internal blocks, never named by a value word.
    ListItems = 32,
    DictTable = 33,
    UndoLog = 34,
    Held = 35,
}

impl Kind {
    /// The kind in a head word's low byte; None for a byte no kind has (a damaged block).
    pub fn from_code(code: u64) -> Option<Kind> {
        Some(match code {
            1 => Kind::Str,
            2 => Kind::Bytes,
            3 => Kind::BigInt,
            4 => Kind::Float,
            5 => Kind::Tuple,
            6 => Kind::DateTime,
            7 => Kind::Date,
            8 => Kind::Time,
            9 => Kind::TimeDelta,
            10 => Kind::Decimal,
            11 => Kind::Uuid,
            12 => Kind::FrozenSet,
            16 => Kind::List,
            17 => Kind::Dict,
            18 => Kind::Object,
            19 => Kind::Set,
            20 => Kind::Cache,
            32 => Kind::ListItems,
            33 => Kind::DictTable,
            34 => Kind::UndoLog,
            35 => Kind::Held,
            _ => return None,
        })
    }

    pub fn code(self) -> u64 {
        self as u64
    }

    pub fn is_container(self) -> bool {
        matches!(
            self,
            Kind::List | Kind::Dict | Kind::Object | Kind::Set | Kind::Cache
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Bytes => "bytes",
            Kind::BigInt => "int",
            Kind::Float => "float",
            Kind::Tuple => "tuple",
            Kind::DateTime => "datetime",
            Kind::Date => "date",
            Kind::Time => "time",
            Kind::TimeDelta => "timedelta",
            Kind::Decimal => "Decimal",
            Kind::Uuid => "UUID",
            Kind::FrozenSet => "frozenset",
            Kind::List => "list",
            Kind::Dict => "dict",
            Kind::Object => "object",
            Kind::Set => "set",
            Kind::Cache => "cache",
            Kind::ListItems => "list items",
            Kind::DictTable => "dict table",
            Kind::UndoLog => "undo log",
            Kind::Held => "held set",
        }
    }
}

/// The name of a head word's kind, for messages ("unknown" for a byte no kind has).
pub fn kind_name(head: u64) -> &'static str {
    head_kind(head).map_or("unknown", Kind::name)
}

/// The first word of a block: kind in the low byte, a length above it.
pub fn block_head(kind: Kind, len: u64) -> u64 {
    kind.code() | (len << 8)
}

/// The kind of a head word read from the file (None: damaged).
pub fn head_kind(head: u64) -> Option<Kind> {
    Kind::from_code(head & 0xff)
}

pub fn head_len(head: u64) -> u64 {
    head >> 8
}

pub fn small_int(v: i64) -> Option<u64> {
    (SMALL_INT_MIN..=SMALL_INT_MAX)
        .contains(&v)
        .then_some(((v as u64) << 1) | 1)
}

pub fn is_small_int(w: u64) -> bool {
    w & 1 == 1
}

pub fn small_int_value(w: u64) -> i64 {
    (w as i64) >> 1
}

/// The inline value word of a scalar node, if it has one (None, a bool, a small int, a
/// short str): the one form such a value is ever stored in.
pub fn inline_word(n: &Node) -> Option<u64> {
    match n {
        Node::None => Some(NONE),
        Node::Bool(false) => Some(FALSE),
        Node::Bool(true) => Some(TRUE),
        Node::Int(v) => small_int(*v),
        Node::Str(s) => short_str(s),
        _ => None,
    }
}

/// The stable hash of an inline value word (as `hash` gives for the value it stands for),
/// or None if `w` is not one.
pub fn inline_hash(w: u64) -> Option<u64> {
    Some(match w {
        NONE => hash::none(),
        FALSE => hash::int(0),
        TRUE => hash::int(1),
        w if is_small_int(w) => hash::int(small_int_value(w)),
        w if is_short_str(w) => {
            let n = (((w >> 3) & 0xf) as usize).min(SHORT_STR_MAX);
            // The str's bytes, little-endian from byte 1 of the word: zero-padded as
            // `hash::bytes` pads its tail.
            hash::short_bytes(hash::DOMAIN_STR, n, (w >> 8) & ((1u64 << (8 * n)) - 1))
        }
        _ => return None,
    })
}

pub fn short_str(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > SHORT_STR_MAX {
        return None;
    }
    let mut w = SHORT_STR_TAG | ((bytes.len() as u64) << 3);
    for (i, &b) in bytes.iter().enumerate() {
        w |= (b as u64) << (8 * (i + 1));
    }
    Some(w)
}

pub fn is_short_str(w: u64) -> bool {
    w & SHORT_STR_MASK == SHORT_STR_TAG
}

/// The bytes of a short str word, and how many of them are used.
pub fn short_str_bytes(w: u64) -> ([u8; SHORT_STR_MAX], usize) {
    let len = ((w >> 3) & 0xf) as usize;
    let mut b = [0u8; SHORT_STR_MAX];
    for (i, x) in b.iter_mut().enumerate() {
        *x = (w >> (8 * (i + 1))) as u8;
    }
    (b, len.min(SHORT_STR_MAX))
}

pub fn is_block(w: u64) -> bool {
    w != EMPTY && w & 0xf == 0
}

/// Whether `w` is an inline value (None, a bool, a small int, a short str): neither the empty
/// word nor a block. What a publication may store or take without allocating or freeing.
pub fn is_inline(w: u64) -> bool {
    w != EMPTY && !is_block(w)
}

/// Checks a word read from the store: a known tag, or a 16-aligned offset.
pub fn check_word(w: u64) -> Result<(), Error> {
    if w == EMPTY || is_small_int(w) || is_block(w) || matches!(w, NONE | FALSE | TRUE) {
        return Ok(());
    }
    if is_short_str(w) && ((w >> 3) & 0xf) as usize <= SHORT_STR_MAX {
        return Ok(());
    }
    Err(Error::Corrupt {
        what: format!("value word {w:#x} has no valid tag"),
        offset: 0,
    })
}

// ---- the store's own hash ---------------------------------------------------------------

/// The stable hash of dict keys: the same in every process and every run (never Python's
/// randomized `hash()`). Equal keys hash equal: numbers hash by value (1, 1.0, True and
/// Decimal(1) alike: number.rs, modulo 2^61 - 1), str and bytes by their bytes in separate
/// domains, tuples by their items, frozensets by their items in any order.
pub mod hash {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn mix(mut h: u64) -> u64 {
        // The finalizer of splitmix64.
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }

    pub const DOMAIN_STR: u64 = 1;
    pub const DOMAIN_BYTES: u64 = 2;
    // 3 was big ints' domain before format 3 (numbers now hash by value: number.rs).
    pub const DOMAIN_TUPLE: u64 = 4;
    pub const DOMAIN_SET: u64 = 5;

    /// `bytes` of at most 7 bytes, given as their length and their little-endian word.
    pub fn short_bytes(domain: u64, len: usize, word: u64) -> u64 {
        let h = domain.wrapping_mul(K) ^ (len as u64);
        if len == 0 {
            return mix(h);
        }
        mix((h.rotate_left(5) ^ word).wrapping_mul(K))
    }

    pub fn bytes(domain: u64, b: &[u8]) -> u64 {
        let mut h = domain.wrapping_mul(K) ^ (b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // The tail as a little-endian word, zero-padded (a loop: no memcpy call).
            let mut last = 0u64;
            for (i, &x) in rest.iter().enumerate() {
                last |= (x as u64) << (8 * i);
            }
            h = (h.rotate_left(5) ^ last).wrapping_mul(K);
        }
        mix(h)
    }

    /// A finite number, by its residue modulo 2^61 - 1 (number.rs).
    pub fn num(residue: u64) -> u64 {
        mix(residue ^ 0x5bd1_e995)
    }

    pub fn int(v: i64) -> u64 {
        num(super::super::number::residue_i64(v))
    }

    pub fn float_bits(bits: u64) -> u64 {
        mix(bits.rotate_left(17) ^ 0x27d4_eb2f_1656_67c5)
    }

    pub fn none() -> u64 {
        mix(0x1234_5678)
    }

    /// Combines item hashes of a tuple.
    pub fn tuple(items: impl Iterator<Item = u64>) -> u64 {
        let mut h = DOMAIN_TUPLE.wrapping_mul(K);
        let mut n = 0u64;
        for x in items {
            h = (h.rotate_left(7) ^ x).wrapping_mul(K);
            n += 1;
        }
        mix(h ^ n)
    }

    /// Combines member hashes of a frozenset, in any order.
    pub fn set(items: impl Iterator<Item = u64>) -> u64 {
        let mut sum = 0u64;
        let mut n = 0u64;
        for x in items {
            sum = sum.wrapping_add(mix(x ^ 0x6a09_e667_f3bc_c908));
            n += 1;
        }
        mix(sum ^ n.wrapping_mul(K) ^ DOMAIN_SET)
    }
}

/// A float's key view: integral floats compare and hash as the integer they equal.
pub enum FloatKey {
    Int(i64),
    /// Integral, outside i64: its minimal two's-complement little-endian bytes.
    Big(Vec<u8>),
    Other(f64),
}

pub fn float_key(f: f64) -> FloatKey {
    if f.is_finite() && f.fract() == 0.0 {
        // 2^63 is exact as a float.
        const TWO63: f64 = 9_223_372_036_854_775_808.0;
        if (-TWO63..TWO63).contains(&f) {
            return FloatKey::Int(f as i64);
        }
        return FloatKey::Big(float_to_int_bytes(f));
    }
    FloatKey::Other(f)
}

/// The exact integer value of an integral float beyond i64, as minimal two's-complement LE
/// bytes (what `int.to_bytes(..., 'little', signed=True)` gives for `int(f)`).
fn float_to_int_bytes(f: f64) -> Vec<u8> {
    let bits = f.to_bits();
    let neg = bits >> 63 == 1;
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mant = (bits & ((1 << 52) - 1)) | (1 << 52);
    // magnitude = mant << exp (exp >= 11 here, as |f| >= 2^63).
    let shift = exp.max(0) as usize;
    let nbytes = (53 + shift).div_ceil(8) + 1;
    let mut mag = vec![0u8; nbytes];
    let byte_shift = shift / 8;
    let bit_shift = shift % 8;
    let m = (mant as u128) << bit_shift;
    for i in 0..9 {
        if byte_shift + i < nbytes {
            mag[byte_shift + i] = (m >> (8 * i)) as u8;
        }
    }
    if neg {
        // Two's complement: invert and add one.
        let mut carry = 1u16;
        for b in mag.iter_mut() {
            let v = (!*b) as u16 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
    }
    minimal_twos(mag)
}

/// Trims redundant sign bytes from two's-complement LE bytes.
pub fn minimal_twos(mut b: Vec<u8>) -> Vec<u8> {
    while b.len() > 1 {
        let last = b[b.len() - 1];
        let prev = b[b.len() - 2];
        if (last == 0 && prev & 0x80 == 0) || (last == 0xff && prev & 0x80 != 0) {
            b.pop();
        } else {
            break;
        }
    }
    b
}

/// Two's-complement LE bytes as an i64, if they fit.
pub fn twos_to_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 8 {
        return None;
    }
    let neg = b[b.len() - 1] & 0x80 != 0;
    let mut buf = if neg { [0xffu8; 8] } else { [0u8; 8] };
    buf[..b.len()].copy_from_slice(b);
    Some(i64::from_le_bytes(buf))
}

#[cfg(test)]
mod tests {
    #[test]
    fn inline_hash_is_the_hash_of_the_value() {
        for text in ["", "x", "ab", "héé", "1234567", "\u{1F600}"] {
            let w = short_str(text.as_bytes()).unwrap();
            assert_eq!(
                inline_hash(w),
                Some(hash::bytes(hash::DOMAIN_STR, text.as_bytes())),
                "{text:?}"
            );
        }
        for v in [0, 1, -1, SMALL_INT_MIN, SMALL_INT_MAX] {
            assert_eq!(inline_hash(small_int(v).unwrap()), Some(hash::int(v)));
        }
        assert_eq!(inline_hash(TRUE), Some(hash::int(1)));
        assert_eq!(inline_hash(NONE), Some(hash::none()));
    }

    use super::*;

    #[test]
    fn small_ints_round_trip_at_the_edges() {
        for v in [0, 1, -1, SMALL_INT_MIN, SMALL_INT_MAX, 12345, -98765] {
            let w = small_int(v).unwrap();
            assert!(is_small_int(w) && !is_block(w));
            assert_eq!(small_int_value(w), v);
        }
        assert!(small_int(SMALL_INT_MAX + 1).is_none());
        assert!(small_int(SMALL_INT_MIN - 1).is_none());
    }

    #[test]
    fn short_strs_are_canonical_and_distinct_from_other_tags() {
        for s in ["", "a", "Joe", "1234567", "é", "😀"] {
            let w = short_str(s.as_bytes()).unwrap();
            assert!(is_short_str(w) && !is_block(w) && !is_small_int(w));
            assert!(![NONE, FALSE, TRUE].contains(&w));
            let (b, n) = short_str_bytes(w);
            assert_eq!(&b[..n], s.as_bytes());
            check_word(w).unwrap();
        }
        assert!(short_str(b"12345678").is_none());
    }

    #[test]
    fn integral_floats_key_as_ints() {
        assert!(matches!(float_key(1.0), FloatKey::Int(1)));
        assert!(matches!(float_key(-0.0), FloatKey::Int(0)));
        assert!(matches!(float_key(1.5), FloatKey::Other(_)));
        // 2^64 = 0x1_0000_0000_0000_0000: bytes 00 x8, 01, then a 00 sign byte is not needed.
        match float_key(18446744073709551616.0) {
            FloatKey::Big(b) => assert_eq!(b, vec![0, 0, 0, 0, 0, 0, 0, 0, 1]),
            _ => panic!("2^64 is integral and big"),
        }
        match float_key(-18446744073709551616.0) {
            FloatKey::Big(b) => assert_eq!(b, vec![0, 0, 0, 0, 0, 0, 0, 0, 0xff]),
            _ => panic!("-2^64 is integral and big"),
        }
        match float_key(-9_223_372_036_854_775_808.0) {
            FloatKey::Int(v) => assert_eq!(v, i64::MIN),
            _ => panic!("-2^63 fits i64"),
        }
    }

    #[test]
    fn twos_complement_helpers() {
        assert_eq!(minimal_twos(vec![0xff, 0xff]), vec![0xff]);
        assert_eq!(minimal_twos(vec![0x80, 0x00]), vec![0x80, 0x00]);
        assert_eq!(twos_to_i64(&[0xfe]), Some(-2));
        assert_eq!(twos_to_i64(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
