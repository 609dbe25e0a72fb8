//! Numbers as dict keys: one hash and one equality across bool, int, float and Decimal, as a
//! Python dict has them (`1`, `1.0`, `True` and `Decimal(1)` are one key; `Decimal('0.5')`
//! and `0.5` are one key; `Decimal('0.1')` and `0.1` are not).
//!
//! Hash: every finite number is a rational `x`, and its hash is that of `x mod P` with
//! `P = 2^61 - 1` (a prime), as CPython's numeric hash is (`sys.hash_info.modulus`). The residue
//! needs no big arithmetic: an int by its bytes, a float `m * 2^e` with `2^-1 = 2^60 (mod P)`, a
//! Decimal `c * 10^e` by modular powers, so `Decimal('1E+999999999999999999')` hashes in 60
//! steps and equals the hash of the int it would be. Infinities hash as the float infinities;
//! NaNs by their bits (they equal nothing, themselves included, as in the store they always
//! have: a NaN key is found by no lookup).
//!
//! Equality is exact ([`Num`]): an integral value is an `i64` or minimal two's-complement bytes
//! whatever its type; a non-integral float stays an `f64`; a Decimal that is neither becomes
//! its normalized digits and exponent, compared with a float or a big int by exact (small,
//! bounded) big-number arithmetic.

use super::value::{self, FloatKey};

/// The modulus of the numeric hash: 2^61 - 1.
pub const P: u64 = (1 << 61) - 1;

/// `a * b mod P` for `a, b < P`: since 2^61 = 1 (mod P), the high bits fold onto the low.
fn mulp(a: u64, b: u64) -> u64 {
    let x = a as u128 * b as u128; // < 2^122
    let r = (x as u64 & P) + (x >> 61) as u64; // < 2^62
    let r = (r & P) + (r >> 61);
    if r >= P {
        r - P
    } else {
        r
    }
}

/// `a + b mod P` for `a, b < P`.
fn addp(a: u64, b: u64) -> u64 {
    let r = a + b;
    if r >= P {
        r - P
    } else {
        r
    }
}

fn powp(mut b: u64, mut e: u64) -> u64 {
    let mut r = 1u64;
    b %= P;
    while e > 0 {
        if e & 1 == 1 {
            r = mulp(r, b);
        }
        b = mulp(b, b);
        e >>= 1;
    }
    r
}

fn negp(r: u64, neg: bool) -> u64 {
    if neg && r != 0 {
        P - r
    } else {
        r
    }
}

/// The residue of an i64.
pub fn residue_i64(v: i64) -> u64 {
    negp(v.unsigned_abs() % P, v < 0)
}

/// The magnitude (big-endian order not needed: little-endian bytes) and sign of
/// two's-complement little-endian bytes.
fn twos_magnitude(b: &[u8]) -> (Vec<u8>, bool) {
    let neg = b.last().is_some_and(|x| x & 0x80 != 0);
    let mut m = b.to_vec();
    if neg {
        let mut carry = 1u16;
        for x in m.iter_mut() {
            let v = (!*x) as u16 + carry;
            *x = v as u8;
            carry = v >> 8;
        }
    }
    (m, neg)
}

/// The residue of an int given as two's-complement little-endian bytes.
pub fn residue_twos(b: &[u8]) -> u64 {
    let (m, neg) = twos_magnitude(b);
    // Seven bytes at a time, most significant first (the bytes are little-endian): the top
    // len % 7 bytes, then whole chunks; r = r * 2^56 + chunk.
    let (low, high) = m.split_at(m.len() - m.len() % 7);
    let mut r = 0u64;
    for chunk in std::iter::once(high).chain(low.rchunks_exact(7)) {
        let mut c = 0u64;
        for &x in chunk.iter().rev() {
            c = (c << 8) | x as u64;
        }
        r = addp(mulp(r, 1 << 56), c);
    }
    negp(r, neg)
}

/// A finite float's exact value `m * 2^e` (m odd, or 0).
fn float_parts(f: f64) -> (u64, i64, bool) {
    let bits = f.to_bits();
    let neg = bits >> 63 == 1;
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1 << 52) - 1);
    let (mut m, mut e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp - 1075)
    };
    if m == 0 {
        return (0, 0, neg);
    }
    let tz = m.trailing_zeros();
    m >>= tz;
    e += tz as i64;
    (m, e, neg)
}

/// The residue of a finite float.
pub fn residue_float(f: f64) -> u64 {
    let (m, e, neg) = float_parts(f);
    // 2^61 = 1 (mod P), so 2^e = 2^(e mod 61) for any e, negative ones included.
    let scale = 1u64 << e.rem_euclid(61);
    negp(mulp(m % P, scale), neg)
}

/// A Decimal as stored (packed.rs): sign, kind, exponent and ASCII coefficient digits.
#[derive(Clone, Copy, Debug)]
pub struct Dec<'a> {
    pub neg: bool,
    pub special: Special,
    pub exp: i64,
    pub digits: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    Finite,
    Infinity,
    NaN,
    SNaN,
}

/// The residue of a finite Decimal.
pub fn residue_dec(d: &Dec) -> u64 {
    let mut c = 0u64;
    for &x in d.digits {
        c = addp(mulp(c, 10), (x - b'0') as u64);
    }
    let scale = if d.exp >= 0 {
        powp(10, d.exp as u64)
    } else {
        // The inverse of 10 mod P (Fermat).
        powp(powp(10, P - 2), d.exp.unsigned_abs())
    };
    negp(mulp(c, scale), d.neg)
}

/// Parses what `str(Decimal)` gives (`-1.23E+5`, `0.000`, `-Infinity`, `sNaN12`) into sign,
/// kind, exponent and canonical coefficient digits (no leading zero but a lone `0`; a NaN's
/// payload without leading zeros). None for anything else.
pub fn parse_decimal(s: &[u8]) -> Option<(bool, Special, i64, Vec<u8>)> {
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let strip = |d: &[u8]| -> Vec<u8> {
        let i = d.iter().position(|&x| x != b'0').unwrap_or(d.len());
        d[i..].to_vec()
    };
    let payload = |d: &[u8]| d.iter().all(u8::is_ascii_digit).then(|| strip(d));
    if s == b"Infinity" || s == b"Inf" {
        return Some((neg, Special::Infinity, 0, Vec::new()));
    }
    if let Some(d) = s.strip_prefix(b"sNaN") {
        return Some((neg, Special::SNaN, 0, payload(d)?));
    }
    if let Some(d) = s.strip_prefix(b"NaN") {
        return Some((neg, Special::NaN, 0, payload(d)?));
    }
    let (mant, exp) = match s.iter().position(|&x| x == b'E' || x == b'e') {
        Some(i) => {
            let e = std::str::from_utf8(&s[i + 1..]).ok()?.parse::<i64>().ok()?;
            (&s[..i], e)
        }
        None => (s, 0),
    };
    let (int, frac) = match mant.iter().position(|&x| x == b'.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, &[][..]),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut digits = int.to_vec();
    digits.extend_from_slice(frac);
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut digits = strip(&digits);
    if digits.is_empty() {
        digits.push(b'0');
    }
    Some((
        neg,
        Special::Finite,
        exp.checked_sub(frac.len() as i64)?,
        digits,
    ))
}

/// A number as keys compare it.
#[derive(Debug)]
pub enum Num {
    I(i64),
    /// An integer outside i64: minimal two's-complement little-endian bytes.
    B(Vec<u8>),
    /// A float that is not integral (or infinite, or NaN).
    F(f64),
    /// A finite Decimal that is not an integer in i64: normalized (no trailing zero digit, not
    /// zero).
    D {
        neg: bool,
        digits: Vec<u8>,
        exp: i64,
    },
}

pub fn float_num(f: f64) -> Num {
    match value::float_key(f) {
        FloatKey::Int(v) => Num::I(v),
        FloatKey::Big(b) => Num::B(b),
        FloatKey::Other(f) => Num::F(f),
    }
}

pub fn int_bytes_num(b: &[u8]) -> Num {
    match value::twos_to_i64(b) {
        Some(v) => Num::I(v),
        None => Num::B(value::minimal_twos(b.to_vec())),
    }
}

pub fn dec_num(d: &Dec) -> Num {
    match d.special {
        Special::Infinity => {
            return Num::F(if d.neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        Special::NaN | Special::SNaN => return Num::F(f64::NAN),
        Special::Finite => {}
    }
    let mut digits = d.digits;
    let mut exp = d.exp;
    while digits.len() > 1 && digits[digits.len() - 1] == b'0' {
        digits = &digits[..digits.len() - 1];
        exp = exp.saturating_add(1);
    }
    if digits.iter().all(|&x| x == b'0') {
        return Num::I(0);
    }
    if exp >= 0 && digits.len() as i64 + exp <= 19 {
        let mut v: u128 = 0;
        for &x in digits {
            v = v * 10 + (x - b'0') as u128;
        }
        for _ in 0..exp {
            v *= 10;
        }
        let v = if d.neg { -(v as i128) } else { v as i128 };
        if let Ok(v) = i64::try_from(v) {
            return Num::I(v);
        }
    }
    Num::D {
        neg: d.neg,
        digits: digits.to_vec(),
        exp,
    }
}

/// Exact equality of two numbers (NaN equals nothing).
pub fn num_eq(a: &Num, b: &Num) -> bool {
    match (a, b) {
        (Num::I(x), Num::I(y)) => x == y,
        (Num::B(x), Num::B(y)) => x == y,
        (Num::F(x), Num::F(y)) => x == y,
        (
            Num::D {
                neg: n1,
                digits: d1,
                exp: e1,
            },
            Num::D {
                neg: n2,
                digits: d2,
                exp: e2,
            },
        ) => n1 == n2 && d1 == d2 && e1 == e2,
        (Num::D { neg, digits, exp }, Num::B(b)) | (Num::B(b), Num::D { neg, digits, exp }) => {
            dec_eq_big(*neg, digits, *exp, b)
        }
        (Num::D { neg, digits, exp }, Num::F(f)) | (Num::F(f), Num::D { neg, digits, exp }) => {
            dec_eq_float(*neg, digits, *exp, *f)
        }
        // An i64 integer never equals a D (not an i64 integer), a B (outside i64) or an F (not
        // integral); a B never equals an F.
        _ => false,
    }
}

// ---- small big numbers (little-endian u32 limbs) -------------------------------------

fn mul_small(a: &mut Vec<u32>, m: u32, add: u32) {
    let mut carry = add as u64;
    for x in a.iter_mut() {
        let v = *x as u64 * m as u64 + carry;
        *x = v as u32;
        carry = v >> 32;
    }
    if carry != 0 {
        a.push(carry as u32);
    }
}

fn from_digits(digits: &[u8]) -> Vec<u32> {
    let mut a = Vec::new();
    for chunk in digits.chunks(9) {
        let mut v = 0u32;
        for &x in chunk {
            v = v * 10 + (x - b'0') as u32;
        }
        mul_small(&mut a, 10u32.pow(chunk.len() as u32), v);
    }
    trim(a)
}

fn trim(mut a: Vec<u32>) -> Vec<u32> {
    while a.last() == Some(&0) {
        a.pop();
    }
    a
}

fn from_le_bytes(b: &[u8]) -> Vec<u32> {
    let a = b
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect();
    trim(a)
}

/// Whether `(-1)^neg * digits * 10^exp` (an integer when exp >= 0) equals the big int `b`.
fn dec_eq_big(neg: bool, digits: &[u8], exp: i64, b: &[u8]) -> bool {
    if exp < 0 {
        return false;
    }
    let (mag, bneg) = twos_magnitude(b);
    if neg != bneg {
        return false;
    }
    // The Decimal has n digits: 10^(n-1) <= |d| < 10^n; the int's magnitude is below
    // 2^(8 len). Only when the sizes can match is the Decimal built (so its size is bounded
    // by the stored int's: a huge exponent is refused here, not computed).
    let n = digits.len() as f64 + exp as f64;
    let bits = 8.0 * mag.len() as f64;
    if (n - 1.0) * std::f64::consts::LOG2_10 > bits + 1.0 {
        return false;
    }
    let mut a = from_digits(digits);
    let mut e = exp;
    while e > 0 {
        let k = e.min(9) as u32;
        mul_small(&mut a, 10u32.pow(k), 0);
        e -= k as i64;
        if a.len() > mag.len() / 4 + 2 {
            return false;
        }
    }
    a == from_le_bytes(&mag)
}

/// Whether the normalized Decimal `(-1)^neg * digits * 10^exp` equals float `f`.
fn dec_eq_float(neg: bool, digits: &[u8], exp: i64, f: f64) -> bool {
    if !f.is_finite() || f.is_sign_negative() != neg || exp >= 0 {
        return false;
    }
    // f = m * 2^-j (m odd, j > 0 as f is not integral) and d = c * 10^-k (c not a multiple of
    // 10, k > 0) are equal when c * 2^j = m * 5^k * 2^k. If j > k the left side is even and
    // the right odd; if j < k then c = m * 5^k * 2^(k-j) is a multiple of 10. So k == j and
    // c == m * 5^j.
    let (m, e, _) = float_parts(f);
    if e >= 0 || exp != e || digits.len() > 800 {
        return false;
    }
    let mut a = from_le_bytes(&m.to_le_bytes());
    for _ in 0..e.unsigned_abs() {
        mul_small(&mut a, 5, 0);
    }
    a == from_digits(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str, exp: i64) -> Dec<'_> {
        Dec {
            neg: false,
            special: Special::Finite,
            exp,
            digits: s.as_bytes(),
        }
    }

    #[test]
    fn decimal_strings_parse_to_coefficient_and_exponent() {
        let p = |s: &str| parse_decimal(s.as_bytes()).unwrap();
        assert_eq!(p("1.23E+4"), (false, Special::Finite, 2, b"123".to_vec()));
        assert_eq!(p("-0.000"), (true, Special::Finite, -3, b"0".to_vec()));
        assert_eq!(p("0E-7"), (false, Special::Finite, -7, b"0".to_vec()));
        assert_eq!(p("0.00012"), (false, Special::Finite, -5, b"12".to_vec()));
        assert_eq!(p("-sNaN12"), (true, Special::SNaN, 0, b"12".to_vec()));
        assert_eq!(p("NaN"), (false, Special::NaN, 0, Vec::new()));
        assert_eq!(p("-Infinity"), (true, Special::Infinity, 0, Vec::new()));
        assert!(parse_decimal(b"1x").is_none());
        assert!(parse_decimal(b".").is_none());
    }

    #[test]
    fn residues_agree_across_types() {
        assert_eq!(residue_dec(&dec("1", 0)), residue_i64(1));
        assert_eq!(residue_dec(&dec("100", -2)), residue_i64(1));
        assert_eq!(residue_dec(&dec("5", -1)), residue_float(0.5));
        assert_eq!(residue_float(3.0), residue_i64(3));
        assert_eq!(mulp(P - 1, P - 1), 1);
        assert_eq!(residue_twos(&[0xff; 40]), P - 1);
        for f in [
            1e300,
            -1.25e300,
            2f64.powi(63),
            -(2f64.powi(64)),
            123456789.0,
        ] {
            let b = match value::float_key(f) {
                FloatKey::Big(b) => b,
                FloatKey::Int(v) => v.to_le_bytes().to_vec(),
                FloatKey::Other(_) => unreachable!("integral"),
            };
            assert_eq!(residue_float(f), residue_twos(&b), "{f}");
        }
        let mut big = vec![0u8; 30];
        big.push(1);
        // 2^240 = 2^(240 mod 61) = 2^57.
        assert_eq!(residue_twos(&big), 1 << 57);
        assert_eq!(mulp(residue_float(0.25), 4), 1);
        assert_eq!(residue_float(-0.75), P - mulp(3, powp(1 << 60, 2)));
        assert_eq!(residue_i64(-1), P - 1);
        assert_eq!(residue_twos(&[0xff]), P - 1);
        let big = value::minimal_twos((1u128 << 70).to_le_bytes().to_vec());
        assert_eq!(residue_twos(&big), residue_float(2f64.powi(70)));
        assert_eq!(
            residue_dec(&dec("1180591620717411303424", 0)),
            residue_twos(&big)
        );
    }

    #[test]
    fn decimals_equal_ints_and_floats_exactly() {
        assert!(num_eq(&dec_num(&dec("100", -2)), &Num::I(1)));
        assert!(num_eq(&dec_num(&dec("5", -1)), &float_num(0.5)));
        assert!(!num_eq(&dec_num(&dec("1", -1)), &float_num(0.1)));
        // 0.1 as a float is exactly 0.1000000000000000055511151231257827021181583404541015625.
        let exact = "1000000000000000055511151231257827021181583404541015625";
        assert!(num_eq(&dec_num(&dec(exact, -55)), &float_num(0.1)));
        let big = value::minimal_twos((1u128 << 70).to_le_bytes().to_vec());
        assert!(num_eq(
            &dec_num(&dec("1180591620717411303424", 0)),
            &Num::B(big.clone())
        ));
        assert!(!num_eq(
            &dec_num(&dec("1180591620717411303425", 0)),
            &Num::B(big.clone())
        ));
        assert!(!num_eq(
            &dec_num(&dec("1", 999_999_999_999_999_999)),
            &Num::B(big)
        ));
        assert!(matches!(
            dec_num(&dec("5", 18)),
            Num::I(5_000_000_000_000_000_000)
        ));
        assert!(matches!(dec_num(&dec("0", 77)), Num::I(0)));
    }
}
