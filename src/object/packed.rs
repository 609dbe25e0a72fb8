//! The everyday value types (`datetime`, `date`, `time`, `timedelta`, `Decimal`, `UUID`),
//! stored as owned blocks of packed bytes: their layouts (FORMAT.md §10.2), the one validator
//! of a payload read from a file, and the form in which such a value is a dict key.
//!
//! Every payload read from the store goes through [`decode`], which checks every field
//! (ranges, lengths, flags, digits): a hostile or damaged file gives an error, never a
//! value Python would refuse to build or a panic. Encodings are canonical: one value of a
//! type has one payload (a Decimal keeps its exponent and digits: `Decimal('1.0')` and
//! `Decimal('1')` are two values, equal as keys).

use super::number::{Dec, Special};
use super::value::{hash, Kind};

/// The clock part of a datetime or time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock<'a> {
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micro: u32,
    pub fold: bool,
    /// A fixed offset from UTC in microseconds (|offset| < 24 h), and the timezone's name
    /// when one was given (`timezone(offset, name)`).
    pub tz: Option<(i64, Option<&'a [u8]>)>,
}

/// A decoded payload.
#[derive(Clone, Copy, Debug)]
pub enum Packed<'a> {
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        clock: Clock<'a>,
    },
    Time(Clock<'a>),
    TimeDelta {
        days: i32,
        seconds: u32,
        micros: u32,
    },
    Decimal(Dec<'a>),
    Uuid([u8; 16]),
}

const FOLD_BIT: u8 = 1;
const AWARE_BIT: u8 = 2;
const NAMED_BIT: u8 = 4;

const DEC_NEG_BIT: u8 = 1;
const DEC_SPECIAL_SHIFT: u8 = 1;
/// libmpdec's exponent limits on 64-bit hosts (MPD_MIN_ETINY, MPD_MAX_EMAX).
pub const DEC_EXP_MIN: i64 = -1_999_999_999_999_999_997;
pub const DEC_EXP_MAX: i64 = 999_999_999_999_999_999;
pub const TIMEDELTA_MAX_DAYS: i32 = 999_999_999;
const DAY_MICROS: i64 = 86_400_000_000;

/// Whether `k` is one of these kinds.
pub fn is_packed(k: Kind) -> bool {
    matches!(
        k,
        Kind::DateTime | Kind::Date | Kind::Time | Kind::TimeDelta | Kind::Decimal | Kind::Uuid
    )
}

pub fn is_leap(y: u16) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 0001-01-01 (Howard Hinnant's days_from_civil, shifted).
fn days_from_civil(y: u16, m: u8, d: u8) -> i64 {
    let y = y as i64 - (m <= 2) as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe
}

fn clock_bytes(c: &Clock, out: &mut Vec<u8>) {
    let mut flags = 0;
    if c.fold {
        flags |= FOLD_BIT;
    }
    if let Some((_, name)) = c.tz {
        flags |= AWARE_BIT;
        if name.is_some() {
            flags |= NAMED_BIT;
        }
    }
    out.extend_from_slice(&[c.hour, c.minute, c.second, flags]);
    out.extend_from_slice(&c.micro.to_le_bytes());
    if let Some((off, name)) = c.tz {
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(name.unwrap_or_default());
    }
}

/// The payload of `p` (checked by the caller: `decode(encode(p))` is `p` for every value
/// Python can make).
pub fn encode(p: &Packed) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    match p {
        Packed::Date { year, month, day } => {
            out.extend_from_slice(&year.to_le_bytes());
            out.extend_from_slice(&[*month, *day]);
        }
        Packed::DateTime {
            year,
            month,
            day,
            clock,
        } => {
            out.extend_from_slice(&year.to_le_bytes());
            out.extend_from_slice(&[*month, *day]);
            clock_bytes(clock, &mut out);
        }
        Packed::Time(c) => clock_bytes(c, &mut out),
        Packed::TimeDelta {
            days,
            seconds,
            micros,
        } => {
            out.extend_from_slice(&days.to_le_bytes());
            out.extend_from_slice(&seconds.to_le_bytes());
            out.extend_from_slice(&micros.to_le_bytes());
        }
        Packed::Decimal(d) => {
            let special = match d.special {
                Special::Finite => 0,
                Special::Infinity => 1,
                Special::NaN => 2,
                Special::SNaN => 3,
            };
            out.push((d.neg as u8 * DEC_NEG_BIT) | (special << DEC_SPECIAL_SHIFT));
            out.extend_from_slice(&d.exp.to_le_bytes());
            out.extend_from_slice(d.digits);
        }
        Packed::Uuid(b) => out.extend_from_slice(b),
    }
    out
}

fn le<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

fn decode_date(b: &[u8]) -> Result<(u16, u8, u8), String> {
    let (y, m, d) = (u16::from_le_bytes(le(b, 0)), b[2], b[3]);
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(format!("a date {y:04}-{m:02}-{d:02} that does not exist"));
    }
    Ok((y, m, d))
}

fn decode_clock(b: &[u8]) -> Result<Clock<'_>, String> {
    if b.len() < 8 {
        return Err("a time payload is too short".into());
    }
    let (hour, minute, second, flags) = (b[0], b[1], b[2], b[3]);
    let micro = u32::from_le_bytes(le(b, 4));
    if hour > 23 || minute > 59 || second > 59 || micro > 999_999 {
        return Err(format!(
            "a time {hour}:{minute}:{second}.{micro} out of range"
        ));
    }
    if flags & !(FOLD_BIT | AWARE_BIT | NAMED_BIT) != 0
        || (flags & NAMED_BIT != 0 && flags & AWARE_BIT == 0)
    {
        return Err(format!("a time with unknown flags {flags:#x}"));
    }
    let tz = if flags & AWARE_BIT != 0 {
        if b.len() < 16 {
            return Err("an aware time without its offset".into());
        }
        let off = i64::from_le_bytes(le(b, 8));
        if off <= -DAY_MICROS || off >= DAY_MICROS {
            return Err(format!(
                "a UTC offset of {off} microseconds (not within a day)"
            ));
        }
        let name = &b[16..];
        if flags & NAMED_BIT == 0 && !name.is_empty() {
            return Err("an unnamed timezone with name bytes".into());
        }
        if std::str::from_utf8(name).is_err() {
            return Err("a timezone name that is not UTF-8".into());
        }
        Some((off, (flags & NAMED_BIT != 0).then_some(name)))
    } else {
        if b.len() != 8 {
            return Err("a naive time with extra bytes".into());
        }
        None
    };
    Ok(Clock {
        hour,
        minute,
        second,
        micro,
        fold: flags & FOLD_BIT != 0,
        tz,
    })
}

fn decode_decimal(b: &[u8]) -> Result<Dec<'_>, String> {
    if b.len() < 9 {
        return Err("a Decimal payload is too short".into());
    }
    let flags = b[0];
    if flags >> 3 != 0 {
        return Err(format!("a Decimal with unknown flags {flags:#x}"));
    }
    let special = match flags >> DEC_SPECIAL_SHIFT {
        0 => Special::Finite,
        1 => Special::Infinity,
        2 => Special::NaN,
        _ => Special::SNaN,
    };
    let exp = i64::from_le_bytes(le(b, 1));
    let digits = &b[9..];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err("a Decimal coefficient that is not decimal digits".into());
    }
    let ok = match special {
        Special::Finite => {
            // The adjusted exponent (of the leading digit) is what libmpdec bounds above.
            (DEC_EXP_MIN..=DEC_EXP_MAX).contains(&exp)
                && !digits.is_empty()
                && (digits[0] != b'0' || digits.len() == 1)
                && exp.saturating_add(digits.len() as i64 - 1) <= DEC_EXP_MAX
        }
        Special::Infinity => exp == 0 && digits.is_empty(),
        // A NaN's payload: no leading zero (Python drops them).
        Special::NaN | Special::SNaN => exp == 0 && digits.first() != Some(&b'0'),
    };
    if !ok {
        return Err("a Decimal that is not in its canonical form".into());
    }
    Ok(Dec {
        neg: flags & DEC_NEG_BIT != 0,
        special,
        exp,
        digits,
    })
}

/// Decodes and checks the payload `b` of a block of kind `k` (one of [`is_packed`]).
pub fn decode(k: Kind, b: &[u8]) -> Result<Packed<'_>, String> {
    let size = |n: usize| -> Result<(), String> {
        if b.len() == n {
            Ok(())
        } else {
            Err(format!("a {} of {} bytes, not {n}", k.name(), b.len()))
        }
    };
    Ok(match k {
        Kind::Date => {
            size(4)?;
            let (year, month, day) = decode_date(b)?;
            Packed::Date { year, month, day }
        }
        Kind::DateTime => {
            if b.len() < 12 {
                return Err("a datetime payload is too short".into());
            }
            let (year, month, day) = decode_date(b)?;
            Packed::DateTime {
                year,
                month,
                day,
                clock: decode_clock(&b[4..])?,
            }
        }
        Kind::Time => Packed::Time(decode_clock(b)?),
        Kind::TimeDelta => {
            size(12)?;
            let days = i32::from_le_bytes(le(b, 0));
            let seconds = u32::from_le_bytes(le(b, 4));
            let micros = u32::from_le_bytes(le(b, 8));
            if days.unsigned_abs() > TIMEDELTA_MAX_DAYS as u32
                || seconds >= 86_400
                || micros > 999_999
            {
                return Err(format!(
                    "a timedelta ({days}, {seconds}, {micros}) out of range"
                ));
            }
            Packed::TimeDelta {
                days,
                seconds,
                micros,
            }
        }
        Kind::Decimal => Packed::Decimal(decode_decimal(b)?),
        Kind::Uuid => {
            size(16)?;
            Packed::Uuid(le(b, 0))
        }
        other => return Err(format!("a {} is not a packed value", other.name())),
    })
}

/// Hash domains of the packed kinds (value.rs `hash` uses 1..5).
const DOMAIN_DATE: u64 = 16;
const DOMAIN_DATETIME_NAIVE: u64 = 17;
const DOMAIN_DATETIME_AWARE: u64 = 18;
const DOMAIN_TIME_NAIVE: u64 = 19;
const DOMAIN_TIME_AWARE: u64 = 20;
const DOMAIN_TIMEDELTA: u64 = 21;
const DOMAIN_UUID: u64 = 22;
const DOMAIN_DECIMAL_NAN: u64 = 23;

fn clock_micros(c: &Clock) -> i64 {
    ((c.hour as i64 * 60 + c.minute as i64) * 60 + c.second as i64) * 1_000_000 + c.micro as i64
}

/// How a packed value is a dict key: a number (a Decimal, equal to ints and floats of its
/// value), or bytes in a domain of their own, equal exactly when the values are equal in
/// Python (an aware datetime by its instant, a naive one by its fields without `fold`; a
/// naive and an aware one never equal).
pub enum KeyForm<'a> {
    Num(Dec<'a>),
    Bytes(u64, Vec<u8>),
}

pub fn key_form<'a>(p: &Packed<'a>) -> KeyForm<'a> {
    let naive = |date: Option<(u16, u8, u8)>, c: &Clock| {
        let mut v = Vec::with_capacity(12);
        if let Some((y, m, d)) = date {
            v.extend_from_slice(&y.to_le_bytes());
            v.extend_from_slice(&[m, d]);
        }
        v.extend_from_slice(&clock_micros(c).to_le_bytes());
        v
    };
    match p {
        Packed::Date { year, month, day } => {
            let mut v = year.to_le_bytes().to_vec();
            v.extend_from_slice(&[*month, *day]);
            KeyForm::Bytes(DOMAIN_DATE, v)
        }
        Packed::DateTime {
            year,
            month,
            day,
            clock,
        } => match clock.tz {
            None => KeyForm::Bytes(
                DOMAIN_DATETIME_NAIVE,
                naive(Some((*year, *month, *day)), clock),
            ),
            Some((off, _)) => {
                let instant =
                    days_from_civil(*year, *month, *day) * DAY_MICROS + clock_micros(clock) - off;
                KeyForm::Bytes(DOMAIN_DATETIME_AWARE, instant.to_le_bytes().to_vec())
            }
        },
        Packed::Time(c) => match c.tz {
            None => KeyForm::Bytes(DOMAIN_TIME_NAIVE, naive(None, c)),
            Some((off, _)) => KeyForm::Bytes(
                DOMAIN_TIME_AWARE,
                (clock_micros(c) - off).to_le_bytes().to_vec(),
            ),
        },
        Packed::TimeDelta { .. } => KeyForm::Bytes(DOMAIN_TIMEDELTA, encode(p)),
        Packed::Uuid(b) => KeyForm::Bytes(DOMAIN_UUID, b.to_vec()),
        Packed::Decimal(d) => KeyForm::Num(*d),
    }
}

/// The stable hash of a packed value as a key.
pub fn key_hash(p: &Packed) -> u64 {
    match key_form(p) {
        KeyForm::Bytes(domain, b) => hash::bytes(domain, &b),
        KeyForm::Num(d) => match d.special {
            Special::Finite => hash::num(super::number::residue_dec(&d)),
            Special::Infinity => hash::float_bits(
                if d.neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
                .to_bits(),
            ),
            Special::NaN | Special::SNaN => hash::bytes(DOMAIN_DECIMAL_NAN, &encode(p)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(tz: Option<(i64, Option<&[u8]>)>) -> Clock<'_> {
        Clock {
            hour: 12,
            minute: 30,
            second: 5,
            micro: 7,
            fold: false,
            tz,
        }
    }

    #[test]
    fn payloads_round_trip() {
        let values = [
            Packed::Date {
                year: 2024,
                month: 2,
                day: 29,
            },
            Packed::DateTime {
                year: 1,
                month: 1,
                day: 1,
                clock: clock(Some((-3_600_000_000, Some(b"CET")))),
            },
            Packed::Time(clock(None)),
            Packed::TimeDelta {
                days: -999_999_999,
                seconds: 86_399,
                micros: 999_999,
            },
            Packed::Decimal(Dec {
                neg: true,
                special: Special::SNaN,
                exp: 0,
                digits: b"12",
            }),
            Packed::Uuid([7; 16]),
        ];
        for p in values {
            let b = encode(&p);
            let k = match p {
                Packed::Date { .. } => Kind::Date,
                Packed::DateTime { .. } => Kind::DateTime,
                Packed::Time(_) => Kind::Time,
                Packed::TimeDelta { .. } => Kind::TimeDelta,
                Packed::Decimal(_) => Kind::Decimal,
                Packed::Uuid(_) => Kind::Uuid,
            };
            assert_eq!(encode(&decode(k, &b).unwrap()), b);
        }
    }

    #[test]
    fn bad_payloads_are_refused() {
        assert!(decode(Kind::Date, &[0xe8, 0x07, 2, 30]).is_err()); // 2024-02-30
        assert!(decode(Kind::Date, &[0xe7, 0x07, 2, 29]).is_err()); // 2023-02-29
        assert!(decode(Kind::Date, &[0xe8, 0x07, 2]).is_err());
        assert!(decode(Kind::Time, &[24, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(Kind::Time, &[0, 0, 0, 8, 0, 0, 0, 0]).is_err());
        let mut aware = vec![0, 0, 0, AWARE_BIT, 0, 0, 0, 0];
        aware.extend_from_slice(&DAY_MICROS.to_le_bytes());
        assert!(decode(Kind::Time, &aware).is_err());
        let mut d = vec![0u8];
        d.extend_from_slice(&0i64.to_le_bytes());
        d.extend_from_slice(b"01");
        assert!(decode(Kind::Decimal, &d).is_err());
        d.truncate(9);
        assert!(decode(Kind::Decimal, &d).is_err());
        // 12E+999999999999999999: its adjusted exponent is beyond what Python builds.
        let mut big = vec![0u8];
        big.extend_from_slice(&DEC_EXP_MAX.to_le_bytes());
        big.extend_from_slice(b"1");
        assert!(decode(Kind::Decimal, &big).is_ok());
        big.extend_from_slice(b"2");
        assert!(decode(Kind::Decimal, &big).is_err());
        d.push(b'x');
        assert!(decode(Kind::Decimal, &d).is_err());
        assert!(decode(Kind::Uuid, &[0; 15]).is_err());
    }

    #[test]
    fn aware_datetimes_key_by_instant() {
        let a = Packed::DateTime {
            year: 2020,
            month: 1,
            day: 1,
            clock: Clock {
                hour: 0,
                ..clock(Some((0, None)))
            },
        };
        let b = Packed::DateTime {
            year: 2020,
            month: 1,
            day: 1,
            clock: Clock {
                hour: 1,
                ..clock(Some((3_600_000_000, Some(b"CET"))))
            },
        };
        assert_eq!(key_hash(&a), key_hash(&b));
        let naive = Packed::DateTime {
            year: 2020,
            month: 1,
            day: 1,
            clock: Clock {
                hour: 0,
                ..clock(None)
            },
        };
        assert_ne!(key_hash(&a), key_hash(&naive));
    }
}
