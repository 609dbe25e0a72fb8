//! `Dict.incr` and `Dict.decr`: an atomic counter step, one change of the dict.
//!
//! The step is `d[k] = d.get(k, default) + by` (`- by` for `decr`) with the look-up, the
//! arithmetic and the store done in one change, so it is atomic across processes and a SIGKILL
//! leaves the old value or the new one. A small int stored plus a small int `by` giving a small
//! int is one CAS on the value word (a publication: `Store::publish_dict_value`); everything
//! else is a change on the dict's part lock (or
//! store-wide under the writer word: `SharedStore::write_in`), with its undo log as for
//! `d[k] = v`.
//!
//! Only numbers take part: int (any size; bool counts as int, as in Python), float and
//! Decimal, with Python's `+` and `-` deciding the result's type and value (int + float is a
//! float, Decimal + float raises TypeError, Decimal rounds to the calling thread's context).
//! The fast path, a small int word plus a small int `by`, is i128 arithmetic on the words; the
//! rest calls CPython's number protocol on exact int, float or Decimal objects only (`by` and
//! `default` are converted to exact types before the change), so no Python code of a user's
//! runs while the dict's lock is held.

use super::convert::{decimal_type, inline_word, to_py, to_tree, Keep};
use super::errors;
use super::store::{Gil, Shared};
use crate::object::dict::Key;
use crate::object::value::{self, Kind};
use crate::object::view::Value as Stored;
use crate::object::{Container, Store};
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An argument of `incr`/`decr` that may be left out (`by` is then 1, `default` 0): pyo3's
/// defaults are Rust values, and `Option` would make an explicit None mean "left out" too.
pub(crate) enum Arg<'py> {
    Int(i64),
    Given(Bound<'py, PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Arg<'py> {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Arg::Given(obj.to_owned()))
    }
}

impl<'py> Arg<'py> {
    /// The argument as an operand, if it is a number.
    fn number(&self) -> PyResult<Option<Num<'py>>> {
        match self {
            Arg::Int(v) => Ok(Some(Num::Small(*v))),
            Arg::Given(o) => number(o),
        }
    }
}

/// An operand: a small int as a machine integer, or an exact int, float or Decimal object.
#[derive(Clone)]
enum Num<'py> {
    Small(i64),
    Obj(Bound<'py, PyAny>),
}

impl<'py> Num<'py> {
    fn obj(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Num::Small(v) => v.into_pyobject(py)?.into_any(),
            Num::Obj(o) => o.clone(),
        })
    }
}

fn type_name(o: &Bound<'_, PyAny>) -> String {
    o.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `o` as an operand, if it is a number: bool and int as int, float, Decimal; subclasses are
/// converted to their base type here, outside any lock (that may run their Python code).
fn number<'py>(o: &Bound<'py, PyAny>) -> PyResult<Option<Num<'py>>> {
    let py = o.py();
    let p = o.as_ptr();
    // SAFETY: type checks on a live object.
    let (is_int, exact_int, is_float, exact_float) = unsafe {
        (
            ffi::PyLong_Check(p) != 0,
            ffi::PyLong_CheckExact(p) != 0 || ffi::PyBool_Check(p) != 0,
            ffi::PyFloat_Check(p) != 0,
            ffi::PyFloat_CheckExact(p) != 0,
        )
    };
    if is_int {
        let o = if exact_int {
            o.clone()
        } else {
            py.get_type::<PyInt>().call1((o,))?
        };
        // True and False are 1 and 0, as `True + 1` has it; a small int is its value.
        if let Some(w) = inline_word(&o) {
            return Ok(Some(Num::Small(match w {
                value::TRUE => 1,
                value::FALSE => 0,
                w => value::small_int_value(w),
            })));
        }
        return Ok(Some(Num::Obj(o)));
    }
    if is_float {
        return Ok(Some(Num::Obj(if exact_float {
            o.clone()
        } else {
            py.get_type::<PyFloat>().call1((o,))?
        })));
    }
    let dec = decimal_type(py)?;
    if o.get_type().is(dec) {
        return Ok(Some(Num::Obj(o.clone())));
    }
    if o.is_instance(dec)? {
        return Ok(Some(Num::Obj(dec.call1((o,))?)));
    }
    Ok(None)
}

/// The TypeError of `a + b` (or `a - b`) when one side is not a number.
fn not_a_number(what: &str, op: char, a: &str, b: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{what} works on numbers (int, float, Decimal): unsupported operand type(s) for \
         {op}: '{a}' and '{b}'"
    ))
}

/// One `incr` (`sub` false) or `decr` (`sub` true) of key `k` in dict `off`; returns the new
/// value. `k` is a storable key (checked by the caller).
#[allow(clippy::too_many_arguments)]
pub(crate) fn step<'py>(
    py: Python<'py>,
    shared: &Arc<Shared>,
    off: Container,
    hint_cell: &AtomicU64,
    key: &Key<'_, 'py>,
    by: &Arg<'py>,
    default: &Arg<'py>,
    sub: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let what = if sub { "decr" } else { "incr" };
    let op = if sub { '-' } else { '+' };
    let name = |o: &Arg<'py>| match o {
        Arg::Int(_) => "int".to_string(),
        Arg::Given(o) => type_name(o),
    };
    let Some(by_n) = by.number()? else {
        // As Python's `0 + 'x'`: the stored side is not known yet; name the default's type.
        return Err(not_a_number(what, op, &name(default), &name(by)));
    };
    // Checked only when it is used, as `d.get(k, default) + by` does.
    let default_n = default.number()?;
    // The entry index last found (both closures below look the key up).
    let hint = std::cell::Cell::new(hint_cell.load(Ordering::Relaxed));
    // A small int stored, a small int result: one CAS on the value word, no lock (a
    // publication, `Store::publish_dict_value`); else the change below.
    let publish = |st: &mut Store| -> PyResult<Option<Num<'py>>> {
        let Num::Small(b) = by_n else {
            return Ok(None);
        };
        let mut h = hint.get();
        let r = st.publish_dict_value(off, key, &mut h, |old| {
            let a = match old {
                value::FALSE => 0,
                value::TRUE => 1,
                w if value::is_small_int(w) => value::small_int_value(w),
                _ => return None,
            };
            small_step(a, b, sub).map(|(w, sum)| (w, Num::Small(sum)))
        });
        hint.set(h);
        r.map_err(errors::map_object)
    };
    let result = shared.publish_or_write_in(&Gil(py), off, publish, |st: &mut Store| {
        let mut h = hint.get();
        let r = st.dict_modify(off, key, &mut h, |st, old| {
            let base = match old {
                None => match &default_n {
                    Some(n) => n.clone(),
                    None => return Err(not_a_number(what, op, &name(default), &name(by))),
                },
                Some(w) => match st.value(w).map_err(errors::map_object)? {
                    Stored::Int(v) => Num::Small(v),
                    Stored::Bool(b) => Num::Small(b as i64),
                    Stored::BigInt(_) | Stored::Float { .. } => Num::Obj(to_py(py, st, shared, w)?),
                    Stored::Packed {
                        kind: Kind::Decimal,
                        ..
                    } => Num::Obj(to_py(py, st, shared, w)?),
                    other => return Err(not_a_number(what, op, stored_name(&other), &name(by))),
                },
            };
            // The fast path: two small ints whose sum is a small int is one word, no
            // allocation.
            if let (Num::Small(a), Num::Small(b)) = (&base, &by_n) {
                if let Some((w, sum)) = small_step(*a, *b, sub) {
                    return Ok((w, Num::Small(sum)));
                }
            }
            let (a, b) = (base.obj(py)?, by_n.obj(py)?);
            // Exact int, float and Decimal objects: CPython's C number code, no user code.
            let new = if sub { a.sub(&b)? } else { a.add(&b)? };
            let w = match inline_word(&new) {
                Some(w) => w,
                None => {
                    let mut keep = Keep::default();
                    let t = to_tree(&new, shared, &mut keep)?;
                    st.encode(&t).map_err(errors::map_object)?
                }
            };
            Ok((w, Num::Obj(new)))
        });
        hint.set(h);
        r
    })?;
    hint_cell.store(hint.get(), Ordering::Relaxed);
    result.obj(py)
}

/// `a + b` (`a - b` if `sub`) as a small int's value word and value, if the result is one: the
/// step with no allocation (i128, so it never overflows).
fn small_step(a: i64, b: i64, sub: bool) -> Option<(u64, i64)> {
    let sum = if sub {
        a as i128 - b as i128
    } else {
        a as i128 + b as i128
    };
    let sum = i64::try_from(sum).ok()?;
    Some((value::small_int(sum)?, sum))
}

/// The Python type name of a stored value that is not a number, for the TypeError.
fn stored_name(v: &Stored) -> &'static str {
    match v {
        Stored::None => "NoneType",
        Stored::ShortStr(_) | Stored::Str(_) => "str",
        Stored::Bytes(_) => "bytes",
        Stored::Tuple { .. } => "tuple",
        Stored::FrozenSet { .. } => "frozenset",
        Stored::Packed { kind, .. } => kind.name(),
        Stored::List(_) => "List",
        Stored::Dict(_) => "Dict",
        Stored::Object(_) => "object",
        _ => "?",
    }
}
