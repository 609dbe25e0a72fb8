//! Python values <-> the object layer: a Python value becomes a `Tree` (before any lock is
//! taken), a stored value word becomes a Python object (inside a validated read).
//!
//! Both directions walk without recursion. No Python code runs while converting: only the
//! concrete C-level APIs of the built-in types are used (a subclass of a built-in is stored as
//! its base value), and classes are found in `sys.modules` by dictionary lookups.

use super::store::Shared;
use super::{errors, proxy, set};
use crate::object::dict::Key;
use crate::object::number::{Dec, Special};
use crate::object::packed::{self, Clock, Packed};
use crate::object::tree::{Node, Tree};
use crate::object::value::{self, Kind};
use crate::object::view::{Payload, Value};
use crate::object::{Container, Store};
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PySet, PyTuple};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// The UTF-8 bytes of a str (lone surrogates encoded as "surrogatepass" does).
pub(crate) fn str_bytes<'py>(s: &Bound<'py, PyAny>) -> PyResult<Cow<'py, [u8]>> {
    let mut n: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a str (or subclass) object; the returned buffer belongs to it and lives as
    // long as it does, which is at least 'py (we hold a reference for 'py).
    let p = unsafe { ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut n) };
    if !p.is_null() {
        // SAFETY: CPython guarantees `n` bytes at `p`, owned by `s`.
        let b = unsafe { std::slice::from_raw_parts(p as *const u8, n as usize) };
        return Ok(Cow::Borrowed(b));
    }
    // Lone surrogates: clear the UnicodeEncodeError and encode with surrogatepass.
    let _ = PyErr::take(s.py());
    let b = s.call_method1("encode", ("utf-8", "surrogatepass"))?;
    Ok(Cow::Owned(b.cast::<PyBytes>()?.as_bytes().to_vec()))
}

fn int_node<'py>(o: &Bound<'py, PyAny>) -> PyResult<Node<'py>> {
    // SAFETY: `o` is an int (PyLong_Check passed); the call sets an OverflowError when the
    // value does not fit, which is cleared below.
    let v = unsafe { ffi::PyLong_AsLongLong(o.as_ptr()) };
    if v == -1 && PyErr::occurred(o.py()) {
        let _ = PyErr::take(o.py());
        let bits: u64 = o.call_method0("bit_length")?.extract()?;
        let kw = PyDict::new(o.py());
        kw.set_item("signed", true)?;
        let b = o.call_method("to_bytes", (bits / 8 + 1, "little"), Some(&kw))?;
        return Ok(Node::BigInt(b.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    Ok(Node::Int(v))
}

fn type_name(o: &Bound<'_, PyAny>) -> String {
    o.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A scalar node for `o`, or `None` if `o` is not a scalar.
fn scalar_node<'py>(o: &Bound<'py, PyAny>) -> PyResult<Option<Node<'py>>> {
    let p = o.as_ptr();
    // SAFETY: type checks on a live object.
    unsafe {
        if p == ffi::Py_None() {
            return Ok(Some(Node::None));
        }
        if ffi::PyBool_Check(p) != 0 {
            return Ok(Some(Node::Bool(p == ffi::Py_True())));
        }
        if ffi::PyLong_Check(p) != 0 {
            return Ok(Some(int_node(o)?));
        }
        if ffi::PyUnicode_Check(p) != 0 {
            return Ok(Some(Node::Str(str_bytes(o)?)));
        }
        if ffi::PyFloat_Check(p) != 0 {
            return Ok(Some(Node::Float(ffi::PyFloat_AsDouble(p))));
        }
        if ffi::PyBytes_Check(p) != 0 {
            let b: &Bound<'py, PyBytes> = o.cast()?;
            // SAFETY: the bytes buffer lives as long as the bytes object ('py).
            let s: &'py [u8] =
                std::slice::from_raw_parts(ffi::PyBytes_AsString(p) as *const u8, b.len()?);
            return Ok(Some(Node::Bytes(Cow::Borrowed(s))));
        }
    }
    packed_node(o)
}

// ---- the everyday value types (packed.rs) ------------------------------------------------

/// The classes of the everyday value types, imported once (standard library modules only).
struct Types {
    datetime: Py<PyAny>,
    date: Py<PyAny>,
    time: Py<PyAny>,
    timedelta: Py<PyAny>,
    timezone: Py<PyAny>,
    /// `timezone.utc`, the tzinfo of most aware values: written and read without a call.
    utc: Py<PyAny>,
    decimal: Py<PyAny>,
    uuid: Py<PyAny>,
}

static TYPES: PyOnceLock<Types> = PyOnceLock::new();

fn types(py: Python<'_>) -> PyResult<&'static Types> {
    TYPES.get_or_try_init(py, || {
        let dt = py.import("datetime")?;
        let get = |m: &Bound<'_, PyModule>, name: &str| m.getattr(name).map(Bound::unbind);
        Ok(Types {
            datetime: get(&dt, "datetime")?,
            date: get(&dt, "date")?,
            time: get(&dt, "time")?,
            timedelta: get(&dt, "timedelta")?,
            timezone: get(&dt, "timezone")?,
            utc: dt.getattr("timezone")?.getattr("utc")?.unbind(),
            decimal: get(&py.import("decimal")?, "Decimal")?,
            uuid: get(&py.import("uuid")?, "UUID")?,
        })
    })
}

/// How many frozensets may nest in one value (a lookup compares nested frozensets by
/// recursion, one level per frozenset).
pub(crate) const MAX_SET_DEPTH: u32 = 32;

/// An int attribute of a datetime-module value (a C getter: no user code runs).
/// The class `decimal.Decimal` (imported once).
pub(crate) fn decimal_type(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    Ok(types(py)?.decimal.bind(py))
}

fn field(o: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    o.getattr(name)?.extract::<i64>()
}

/// The packed date of a date or datetime (packed.rs: a date's whole payload, a datetime's
/// first part).
fn date_payload(o: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    Ok(packed::encode(&Packed::Date {
        year: field(o, "year")? as u16,
        month: field(o, "month")? as u8,
        day: field(o, "day")? as u8,
    }))
}

/// The packed clock of a datetime or time (packed.rs: a time's whole payload, a datetime's
/// after its date): its fields and its tzinfo (None, or a `datetime.timezone`).
fn clock_payload(o: &Bound<'_, PyAny>, t: &Types) -> PyResult<Vec<u8>> {
    let tz = o.getattr("tzinfo")?;
    let mut name = None;
    let offset = if tz.is_none() {
        None
    } else if tz.is(t.utc.bind(o.py())) {
        Some(0)
    } else if tz.get_type().is(t.timezone.bind(o.py())) {
        let off = tz.call_method1("utcoffset", (o.py().None(),))?;
        let micros = field(&off, "days")? * 86_400_000_000
            + field(&off, "seconds")? * 1_000_000
            + field(&off, "microseconds")?;
        // (offset,) or (offset, name): whether the timezone was given a name.
        let args = tz.call_method0("__getinitargs__")?;
        let args = args.cast::<PyTuple>()?;
        if args.len() == 2 {
            name = Some(str_bytes(&args.get_item(1)?)?.into_owned());
        }
        Some(micros)
    } else {
        return Err(PyTypeError::new_err(format!(
            "persist stores a {} with no tzinfo or a datetime.timezone (a fixed offset), not \
             a tzinfo of type '{}' (convert it first, e.g. with .astimezone(timezone.utc))",
            type_name(o),
            type_name(&tz)
        )));
    };
    let clock = Clock {
        hour: field(o, "hour")? as u8,
        minute: field(o, "minute")? as u8,
        second: field(o, "second")? as u8,
        micro: field(o, "microsecond")? as u32,
        fold: field(o, "fold")? != 0,
        tz: offset.map(|off| (off, name.as_deref())),
    };
    Ok(packed::encode(&Packed::Time(clock)))
}

/// The node of a datetime, date, time, timedelta, Decimal or UUID (exact types: a subclass
/// may carry state of its own that the store would drop), or None for anything else.
fn packed_node<'py>(o: &Bound<'py, PyAny>) -> PyResult<Option<Node<'py>>> {
    let py = o.py();
    let t = types(py)?;
    let ty = o.get_type();
    let (kind, bytes) = if ty.is(t.datetime.bind(py)) {
        let mut b = date_payload(o)?;
        b.extend_from_slice(&clock_payload(o, t)?);
        (Kind::DateTime, b)
    } else if ty.is(t.date.bind(py)) {
        (Kind::Date, date_payload(o)?)
    } else if ty.is(t.time.bind(py)) {
        (Kind::Time, clock_payload(o, t)?)
    } else if ty.is(t.timedelta.bind(py)) {
        let b = packed::encode(&Packed::TimeDelta {
            days: field(o, "days")? as i32,
            seconds: field(o, "seconds")? as u32,
            micros: field(o, "microseconds")? as u32,
        });
        (Kind::TimeDelta, b)
    } else if ty.is(t.decimal.bind(py)) {
        let s = o.str()?;
        let s = s.to_str()?;
        let (neg, special, exp, digits) = crate::object::number::parse_decimal(s.as_bytes())
            .ok_or_else(|| {
                PyTypeError::new_err(format!("persist cannot read the Decimal {s:?}"))
            })?;
        let b = packed::encode(&Packed::Decimal(Dec {
            neg,
            special,
            exp,
            digits: &digits,
        }));
        (Kind::Decimal, b)
    } else if ty.is(t.uuid.bind(py)) {
        let kw = PyDict::new(py);
        kw.set_item("signed", false)?;
        let b = o
            .getattr("int")?
            .call_method("to_bytes", (16, "big"), Some(&kw))?;
        (Kind::Uuid, b.cast::<PyBytes>()?.as_bytes().to_vec())
    } else {
        return Ok(None);
    };
    Ok(Some(Node::Packed(kind, bytes)))
}

/// A TypeError if node `n` cannot be a dict key (or a frozenset member) although Python
/// stores it: a signaling NaN, which Python refuses to hash.
fn check_key_node(n: &Node) -> PyResult<()> {
    if let Node::Packed(Kind::Decimal, b) = n {
        if let Ok(Packed::Decimal(Dec {
            special: Special::SNaN,
            ..
        })) = packed::decode(Kind::Decimal, b)
        {
            return Err(PyTypeError::new_err("Cannot hash a signaling NaN value"));
        }
    }
    Ok(())
}

/// The Python value of a packed payload.
fn packed_to_py<'py>(py: Python<'py>, p: &Packed) -> PyResult<Bound<'py, PyAny>> {
    let t = types(py)?;
    let tz = |c: &Clock| -> PyResult<Bound<'py, PyAny>> {
        Ok(match c.tz {
            None => py.None().into_bound(py),
            Some((0, None)) => t.utc.bind(py).clone(),
            Some((off, name)) => {
                let delta = t.timedelta.bind(py).call1((0i64, 0i64, off))?;
                match name {
                    None => t.timezone.bind(py).call1((delta,))?,
                    Some(n) => t.timezone.bind(py).call1((delta, decode_str(py, n)?))?,
                }
            }
        })
    };
    // fold=1 is a keyword argument; 0 is the default (no dict made).
    let fold = |c: &Clock| -> PyResult<Option<Bound<'py, PyDict>>> {
        if !c.fold {
            return Ok(None);
        }
        let kw = PyDict::new(py);
        kw.set_item("fold", 1)?;
        Ok(Some(kw))
    };
    match p {
        Packed::Date { year, month, day } => t.date.bind(py).call1((*year, *month, *day)),
        Packed::DateTime {
            year,
            month,
            day,
            clock: c,
        } => t.datetime.bind(py).call(
            (
                *year,
                *month,
                *day,
                c.hour,
                c.minute,
                c.second,
                c.micro,
                tz(c)?,
            ),
            fold(c)?.as_ref(),
        ),
        Packed::Time(c) => t.time.bind(py).call(
            (c.hour, c.minute, c.second, c.micro, tz(c)?),
            fold(c)?.as_ref(),
        ),
        Packed::TimeDelta {
            days,
            seconds,
            micros,
        } => t.timedelta.bind(py).call1((*days, *seconds, *micros)),
        Packed::Decimal(d) => {
            let mut s = String::with_capacity(d.digits.len() + 24);
            if d.neg {
                s.push('-');
            }
            let digits = std::str::from_utf8(d.digits).unwrap_or_default();
            match d.special {
                Special::Finite => {
                    s.push_str(digits);
                    s.push('E');
                    s.push_str(&d.exp.to_string());
                }
                Special::Infinity => s.push_str("Infinity"),
                Special::NaN => {
                    s.push_str("NaN");
                    s.push_str(digits);
                }
                Special::SNaN => {
                    s.push_str("sNaN");
                    s.push_str(digits);
                }
            }
            t.decimal.bind(py).call1((s,))
        }
        Packed::Uuid(b) => {
            let kw = PyDict::new(py);
            kw.set_item("bytes", PyBytes::new(py, b))?;
            t.uuid.bind(py).call((), Some(&kw))
        }
    }
}

/// A dict key from Python: its inline value word when it has one (most str and int keys: no
/// tree is built), else its tree.
pub(crate) enum KeyArg<'py> {
    Inline(u64),
    Tree(Tree<'py>),
}

impl<'py> KeyArg<'py> {
    pub fn key(&self) -> Result<Key<'_, 'py>, crate::object::Error> {
        match self {
            KeyArg::Inline(w) => Key::inline(*w).ok_or_else(|| crate::object::Error::Corrupt {
                what: format!("{w:#x} is not an inline key word"),
                offset: 0,
            }),
            KeyArg::Tree(t) => Key::new(t, t.root),
        }
    }
}

/// `key_tree`, with the inline fast path.
pub(crate) fn key_arg<'py>(o: &Bound<'py, PyAny>) -> PyResult<Option<KeyArg<'py>>> {
    if let Some(w) = inline_word(o) {
        return Ok(Some(KeyArg::Inline(w)));
    }
    Ok(key_tree(o)?.map(KeyArg::Tree))
}

/// The inline value word of `o` if it is None, a bool, an int that fits a small int, or an
/// exact str of up to 7 UTF-8 bytes: the values stored in the word itself. `None` for
/// everything else (which takes the tree path, subclasses included).
/// The item words of `o` if it is a tuple of at most `FLAT_TUPLE_MAX` items that are each an
/// inline word: one block with no references, which an append may publish without a lock.
pub(crate) fn flat_tuple_words(o: &Bound<'_, PyAny>) -> Option<Vec<u64>> {
    let tup = o.cast::<PyTuple>().ok()?;
    if tup.len() as u64 > crate::object::FLAT_TUPLE_MAX {
        return None;
    }
    tup.iter().map(|item| inline_word(&item)).collect()
}

pub(crate) fn inline_word(o: &Bound<'_, PyAny>) -> Option<u64> {
    let p = o.as_ptr();
    // SAFETY: type checks and C-API reads of a live object; errors are cleared.
    unsafe {
        if ffi::PyUnicode_CheckExact(p) != 0 {
            let mut n: ffi::Py_ssize_t = 0;
            let s = ffi::PyUnicode_AsUTF8AndSize(p, &mut n);
            if s.is_null() {
                // Lone surrogates: the tree path encodes them.
                let _ = PyErr::take(o.py());
                return None;
            }
            // SAFETY: CPython guarantees `n` bytes at `s`, owned by the str.
            return value::short_str(std::slice::from_raw_parts(s as *const u8, n as usize));
        }
        if ffi::PyLong_CheckExact(p) != 0 {
            let mut overflow = 0;
            let v = ffi::PyLong_AsLongLongAndOverflow(p, &mut overflow);
            if overflow != 0 {
                return None;
            }
            if v == -1 && !ffi::PyErr_Occurred().is_null() {
                let _ = PyErr::take(o.py());
                return None;
            }
            return value::small_int(v);
        }
        if p == ffi::Py_None() {
            return Some(value::NONE);
        }
        if p == ffi::Py_True() {
            return Some(value::TRUE);
        }
        if p == ffi::Py_False() {
            return Some(value::FALSE);
        }
    }
    None
}

/// What a dict key may be, for messages.
const KEY_TYPES: &str = "keys and set members are None, bool, int, float, str, bytes, \
                         datetime, date, time, timedelta, Decimal, UUID, or tuples and \
                         frozensets of these";

fn too_deep() -> PyErr {
    pyo3::exceptions::PyValueError::new_err(format!(
        "persist stores frozensets nested at most {MAX_SET_DEPTH} deep"
    ))
}

/// The tree of a dict key, or `None` when `o` is hashable but cannot be a stored key (such a
/// key is never in the store). Unhashable values raise TypeError as dict does.
pub(crate) fn key_tree<'py>(o: &Bound<'py, PyAny>) -> PyResult<Option<Tree<'py>>> {
    if let Some(n) = scalar_node(o)? {
        check_key_node(&n)?;
        return Ok(Some(Tree::scalar(n)));
    }
    let mut t = Tree::default();
    if !key_into(o, &mut t)? {
        return Ok(None);
    }
    Ok(Some(t))
}

/// The TypeError for a key `key_arg` refused: names the value that cannot be stored (an item
/// of a tuple key, not the tuple), as `TypeError: unhashable type` names the item for a dict.
pub(crate) fn unstorable_key(k: &Bound<'_, PyAny>) -> PyErr {
    unstorable(k, "dict key")
}

/// `unstorable_key` for a set member.
pub(crate) fn unstorable_member(k: &Bound<'_, PyAny>) -> PyErr {
    unstorable(k, "set member")
}

fn unstorable(k: &Bound<'_, PyAny>, what: &str) -> PyErr {
    let mut stack = vec![k.clone()];
    let mut bad = k.clone();
    while let Some(x) = stack.pop() {
        if let Ok(tup) = x.cast::<PyTuple>() {
            stack.extend(tup.iter().rev());
        } else if let Ok(set) = x.cast::<PyFrozenSet>() {
            stack.extend(set.iter());
        } else if !matches!(scalar_node(&x), Ok(Some(_))) {
            bad = x;
            break;
        }
    }
    if bad.hash().is_err() {
        return PyTypeError::new_err(format!("unhashable type: '{}'", type_name(&bad)));
    }
    PyTypeError::new_err(format!(
        "persist cannot store a {what} of type '{}' ({KEY_TYPES})",
        type_name(&bad)
    ))
}

/// Builds key `o` into `t` (tuples and frozensets of scalars, iteratively); false if not
/// storable.
fn key_into<'py>(o: &Bound<'py, PyAny>, t: &mut Tree<'py>) -> PyResult<bool> {
    if o.is_instance_of::<PyTuple>() || o.is_instance_of::<PyFrozenSet>() {
        // (value, its slot in its parent, frozensets above it)
        let mut stack: Vec<(Bound<'py, PyAny>, Option<usize>, u32)> = vec![(o.clone(), None, 0)];
        while let Some((x, slot, sets)) = stack.pop() {
            let idx = if let Some(n) = scalar_node(&x)? {
                check_key_node(&n)?;
                t.push(n)
            } else if let Ok(tup) = x.cast::<PyTuple>() {
                let (i, start) = t.push_parent(tup.len() as u32, Node::Tuple);
                for (j, item) in tup.iter().enumerate().rev() {
                    stack.push((item, Some(start as usize + j), sets));
                }
                i
            } else if let Ok(set) = x.cast::<PyFrozenSet>() {
                if sets + 1 > MAX_SET_DEPTH {
                    return Err(too_deep());
                }
                let members: Vec<Bound<'py, PyAny>> = set.iter().collect();
                let (i, start) = t.push_parent(members.len() as u32, Node::FrozenSet);
                for (j, m) in members.into_iter().enumerate().rev() {
                    stack.push((m, Some(start as usize + j), sets + 1));
                }
                i
            } else {
                if x.hash().is_err() {
                    return Err(PyTypeError::new_err(format!(
                        "unhashable type: '{}'",
                        type_name(&x)
                    )));
                }
                return Ok(false);
            };
            if let Some(s) = slot {
                t.children[s] = idx;
            } else {
                t.root = idx;
            }
        }
        return Ok(true);
    }
    // Not a scalar, not a tuple or frozenset: raise as dict would for unhashables.
    o.hash()?;
    Ok(false)
}

/// What the converter needs to know about this store's proxies and pbase.
pub(crate) struct Classes<'py> {
    pub pbase: Option<Bound<'py, PyAny>>,
}

impl<'py> Classes<'py> {
    pub fn get(py: Python<'py>) -> PyResult<Classes<'py>> {
        let pbase = py
            .import("persist._pbase")
            .and_then(|m| m.getattr("pbase"))
            .ok();
        Ok(Classes { pbase })
    }
}

/// What a tree borrows from (kept alive until the value is written), and the pbase
/// instances it stores, to be bound to their stored objects once written.
#[derive(Default)]
pub(crate) struct Keep<'py> {
    alive: Vec<Bound<'py, PyAny>>,
    objects: Vec<(u32, Bound<'py, PyAny>)>,
}

impl<'py> Keep<'py> {
    /// Binds every pbase instance of the tree just encoded to its stored object: its
    /// attributes now live in the store (user objects: a class name and an attribute dict). Inside the op that wrote them.
    pub fn bind(&self, py: Python<'py>, st: &mut Store, shared: &Arc<Shared>) -> PyResult<()> {
        if self.objects.is_empty() {
            return Ok(());
        }
        let written: HashMap<u32, Container> = st.encoded_objects().collect();
        for (node, inst) in &self.objects {
            let Some(&off) = written.get(node) else {
                continue;
            };
            let core = proxy::new_dict(py, st, shared, off)?;
            let d = inst.getattr("__dict__")?;
            let d = d.cast::<PyDict>()?;
            d.clear();
            d.set_item("_p_core", core)?;
        }
        Ok(())
    }
}

/// Converts a Python value to a tree for the store `shared`. Raises TypeError naming the type
/// for anything that cannot be stored; stores nothing.
pub(crate) fn to_tree<'py>(
    o: &Bound<'py, PyAny>,
    shared: &Arc<Shared>,
    keep: &mut Keep<'py>,
) -> PyResult<Tree<'py>> {
    if let Some(n) = scalar_node(o)? {
        return Ok(Tree::scalar(n));
    }
    let py = o.py();
    let classes = Classes::get(py)?;
    let mut t = Tree::default();
    let mut memo: HashMap<usize, u32> = HashMap::new();
    // (value, its slot in its parent, context): context 0 is a value; 1 a dict key; k > 1 a
    // member of k - 1 nested frozensets (keys and members are hashable values only).
    let mut stack: Vec<(Bound<'py, PyAny>, Option<usize>, u32)> = vec![(o.clone(), None, 0)];
    while let Some((x, slot, ctx)) = stack.pop() {
        let idx = if let Some(n) = scalar_node(&x)? {
            if ctx > 0 {
                check_key_node(&n)?;
            }
            t.push(n)
        } else if let Ok(tup) = x.cast::<PyTuple>() {
            let (i, start) = t.push_parent(tup.len() as u32, Node::Tuple);
            for (j, item) in tup.iter().enumerate().rev() {
                stack.push((item, Some(start as usize + j), ctx));
            }
            keep.alive.push(x.clone());
            i
        } else if let Ok(set) = x.cast::<PyFrozenSet>() {
            let inner = ctx.max(1) + 1;
            if inner - 1 > MAX_SET_DEPTH {
                return Err(too_deep());
            }
            let members: Vec<Bound<'py, PyAny>> = set.iter().collect();
            let (i, start) = t.push_parent(members.len() as u32, Node::FrozenSet);
            for (j, m) in members.into_iter().enumerate().rev() {
                stack.push((m, Some(start as usize + j), inner));
            }
            keep.alive.push(x.clone());
            i
        } else if ctx > 0 {
            if x.hash().is_err() {
                return Err(PyTypeError::new_err(format!(
                    "unhashable type: '{}'",
                    type_name(&x)
                )));
            }
            return Err(PyTypeError::new_err(format!(
                "persist cannot store a {} of type '{}' ({KEY_TYPES})",
                if ctx == 1 {
                    "dict key or set member"
                } else {
                    "frozenset member"
                },
                type_name(&x)
            )));
        } else if let Some(&seen) = memo.get(&(x.as_ptr() as usize)) {
            t.push(Node::Shared(seen))
        } else if let Some(n) = super::cache::unstored_node(&x) {
            // An unstored persist.Cache(...): a new empty cache.
            let i = t.push(n);
            memo.insert(x.as_ptr() as usize, i);
            keep.alive.push(x.clone());
            i
        } else if let Some((off, same)) = proxy::proxy_target(&x, shared)? {
            if same {
                t.push(Node::Ref(off))
            } else {
                // A container of another store is copied.
                let plain = x.call_method0("to_python")?;
                keep.alive.push(plain.clone());
                stack.push((plain, slot, 0));
                continue;
            }
        } else if let Ok(l) = x.cast::<PyList>() {
            let items: Vec<Bound<'py, PyAny>> = l.iter().collect();
            let (i, start) = t.push_parent(items.len() as u32, Node::List);
            memo.insert(x.as_ptr() as usize, i);
            for (j, item) in items.into_iter().enumerate().rev() {
                stack.push((item, Some(start as usize + j), 0));
            }
            keep.alive.push(x.clone());
            i
        } else if let Ok(d) = x.cast::<PyDict>() {
            let i = push_pairs(&mut t, &mut stack, d, None)?;
            memo.insert(x.as_ptr() as usize, i);
            keep.alive.push(x.clone());
            i
        } else if let Ok(set) = x.cast::<PySet>() {
            // Members are hashable values, as dict keys (context 1).
            let members: Vec<Bound<'py, PyAny>> = set.iter().collect();
            let (i, start) = t.push_parent(members.len() as u32, Node::Set);
            memo.insert(x.as_ptr() as usize, i);
            for (j, m) in members.into_iter().enumerate().rev() {
                stack.push((m, Some(start as usize + j), 1));
            }
            keep.alive.push(x.clone());
            i
        } else if classes
            .pbase
            .as_ref()
            .is_some_and(|pb| x.is_instance(pb).unwrap_or(false))
        {
            // An unbound pbase instance: its class name and its __dict__ (minus our own slot).
            let ty = x.get_type();
            let module: String = ty.getattr("__module__")?.extract()?;
            let qual: String = ty.getattr("__qualname__")?.extract()?;
            let d = x.getattr("__dict__")?;
            let d = d.cast::<PyDict>()?.copy()?;
            let _ = d.del_item("_p_core");
            let i = push_pairs(&mut t, &mut stack, &d, Some(format!("{module}:{qual}")))?;
            memo.insert(x.as_ptr() as usize, i);
            keep.objects.push((i, x.clone()));
            keep.alive.push(d.into_any());
            keep.alive.push(x.clone());
            i
        } else {
            return Err(PyTypeError::new_err(format!(
                "persist cannot store a value of type '{}' (it stores None, bool, int, float, \
                 str, bytes, tuple, list, dict, set, frozenset, datetime, date, time, \
                 timedelta, Decimal, UUID and pbase objects)",
                type_name(&x)
            )));
        };
        if let Some(s) = slot {
            t.children[s] = idx;
        } else {
            t.root = idx;
        }
    }
    Ok(t)
}

fn push_pairs<'py>(
    t: &mut Tree<'py>,
    stack: &mut Vec<(Bound<'py, PyAny>, Option<usize>, u32)>,
    d: &Bound<'py, PyDict>,
    class: Option<String>,
) -> PyResult<u32> {
    let pairs: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)> = d.iter().collect();
    let (i, start) = t.push_parent(2 * pairs.len() as u32, |r| match class {
        Some(c) => Node::Object(c, r),
        None => Node::Dict(r),
    });
    for (j, (key, v)) in pairs.into_iter().enumerate().rev() {
        stack.push((v, Some(start as usize + 2 * j + 1), 0));
        stack.push((key, Some(start as usize + 2 * j), 1));
    }
    Ok(i)
}

// ---- store -> Python --------------------------------------------------------------------

/// The Python object for value word `w`. Containers become proxies (held by this process);
/// everything else a plain value. Call inside a read or op; the caller validates the read.
pub(crate) fn to_py<'py>(
    py: Python<'py>,
    st: &mut Store,
    shared: &Arc<Shared>,
    w: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let e = errors::map_object;
    match st.value(w).map_err(e)? {
        Value::None => Ok(py.None().into_bound(py)),
        Value::Bool(b) => Ok(pyo3::types::PyBool::new(py, b).to_owned().into_any()),
        Value::Int(v) => Ok(v.into_pyobject(py)?.into_any()),
        Value::ShortStr(sw) => {
            let (b, n) = value::short_str_bytes(sw);
            decode_str(py, &b[..n])
        }
        Value::Str(p) => with_payload(st, p, |b| decode_str(py, b)),
        Value::Bytes(p) => with_payload(st, p, |b| Ok(PyBytes::new(py, b).into_any())),
        Value::BigInt(p) => with_payload(st, p, |b| {
            let kw = PyDict::new(py);
            kw.set_item("signed", true)?;
            py.import("builtins")?.getattr("int")?.call_method(
                "from_bytes",
                (PyBytes::new(py, b), "little"),
                Some(&kw),
            )
        }),
        Value::Float { block } => {
            let bits = st.float_bits(block).map_err(e)?;
            Ok(pyo3::types::PyFloat::new(py, f64::from_bits(bits)).into_any())
        }
        Value::Tuple { .. } | Value::FrozenSet { .. } => tuple_to_py(py, st, shared, w),
        Value::Packed { kind, payload } => st
            .packed(kind, payload, |p| packed_to_py(py, &p))
            .map_err(e)?
            .map_err(|err| {
                errors::CorruptionError::new_err(format!(
                    "a stored {} Python refuses ({err}) at {w:#x}",
                    kind.name()
                ))
            }),
        Value::List(c) => proxy::new_list(py, st, shared, c),
        Value::Dict(c) => proxy::new_dict(py, st, shared, c),
        Value::Object(c) => object_to_py(py, st, shared, c),
        Value::Set(c) => set::new_set(py, st, shared, c),
        Value::Cache(c) => super::cache::new_cache(py, st, shared, c),
        Value::Empty => Err(errors::CorruptionError::new_err(format!(
            "an empty word where a value belongs (at {w:#x})"
        ))),
    }
}

/// Runs `f` on a payload's bytes, in place in the mapping (no copy).
fn with_payload<'py>(
    st: &Store,
    p: Payload,
    f: impl FnOnce(&[u8]) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let ptr = st.payload(p).map_err(errors::map_object)?;
    // SAFETY: `ptr..ptr+len` lies in the mapping (checked by `Store::value` and `payload`),
    // which stays mapped while the store is open. A racing writer may change the bytes; the
    // caller's validation then discards what `f` made of them. `f` only copies them.
    let b = unsafe { std::slice::from_raw_parts(ptr, p.len as usize) };
    f(b)
}

fn decode_str<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `b` is a valid slice; PyUnicode_DecodeUTF8 copies it. "surrogatepass" restores
    // lone surrogates stored the same way.
    unsafe {
        let o = ffi::PyUnicode_DecodeUTF8(
            b.as_ptr() as *const std::os::raw::c_char,
            b.len() as ffi::Py_ssize_t,
            c"surrogatepass".as_ptr(),
        );
        Bound::from_owned_ptr_or_err(py, o)
    }
    .map_err(|e| {
        if e.is_instance_of::<pyo3::exceptions::PyUnicodeDecodeError>(py) {
            // Only a damaged or hostile file holds such bytes: the store writes valid UTF-8.
            errors::CorruptionError::new_err(format!("a stored str is not valid UTF-8 ({e})"))
        } else {
            e
        }
    })
}

/// Tuples and frozensets, iteratively (a 100,000-deep tuple must not overflow the stack).
fn tuple_to_py<'py>(
    py: Python<'py>,
    st: &mut Store,
    shared: &Arc<Shared>,
    w: u64,
) -> PyResult<Bound<'py, PyAny>> {
    struct Frame<'py> {
        block: u64,
        n: u64,
        set: bool,
        items: Vec<Bound<'py, PyAny>>,
    }
    let e = errors::map_object;
    let frame = |v: Value| match v {
        Value::Tuple { block, len } | Value::FrozenSet { block, len } => Some(Frame {
            block,
            n: len,
            set: matches!(v, Value::FrozenSet { .. }),
            items: Vec::with_capacity(len.min(1 << 16) as usize),
        }),
        _ => None,
    };
    let Some(first) = frame(st.value(w).map_err(e)?) else {
        return Err(errors::CorruptionError::new_err(format!(
            "no tuple at {w:#x}"
        )));
    };
    let mut stack = vec![first];
    loop {
        let top = stack.last_mut().expect("non-empty");
        if top.items.len() as u64 == top.n {
            let f = stack.pop().expect("non-empty");
            let t = if f.set {
                // Members are hashable values (checked as they were read): building the set
                // fails only on a damaged file (a member Python cannot hash).
                PyFrozenSet::new(py, f.items.iter())
                    .map_err(|err| {
                        errors::CorruptionError::new_err(format!(
                            "a stored frozenset Python refuses ({err})"
                        ))
                    })?
                    .into_any()
            } else {
                PyTuple::new(py, f.items)?.into_any()
            };
            match stack.last_mut() {
                Some(parent) => parent.items.push(t),
                None => return Ok(t),
            }
            continue;
        }
        let i = top.items.len() as u64;
        let item = if top.set {
            let m = st.set_member(top.block, i).map_err(e)?.1;
            if st.value(m).map_err(e)?.container().is_some() {
                return Err(errors::CorruptionError::new_err(format!(
                    "a frozenset member is a container (at {m:#x})"
                )));
            }
            m
        } else {
            st.tuple_item(top.block, i).map_err(e)?
        };
        if let Some(f) = frame(st.value(item).map_err(e)?) {
            if stack.len() > 1 << 22 {
                return Err(errors::CorruptionError::new_err("tuples nest too deeply"));
            }
            stack.push(f);
        } else {
            let o = to_py(py, st, shared, item)?;
            stack.last_mut().expect("non-empty").items.push(o);
        }
    }
}

/// A user object: an instance of its class if the reader has imported it (and it derives
/// from pbase), else a persist.Object. Never imports or runs the class's code.
fn object_to_py<'py>(
    py: Python<'py>,
    st: &mut Store,
    shared: &Arc<Shared>,
    w: Container,
) -> PyResult<Bound<'py, PyAny>> {
    let cw = st.object_class(w).map_err(errors::map_object)?;
    // A str, checked before it is converted: any other word (the object itself, in a hostile
    // file) would be converted as a value, and could lead back here without end.
    let is_str = matches!(
        st.value(cw).map_err(errors::map_object)?,
        Value::ShortStr(_) | Value::Str(_)
    );
    if !is_str {
        return Err(errors::CorruptionError::new_err(format!(
            "object at {w:#x} has a class name that is not a str"
        )));
    }
    let class_name = to_py(py, st, shared, cw)?;
    let class_name: String = class_name.extract().map_err(|_| {
        errors::CorruptionError::new_err(format!("object at {w:#x} has no class name"))
    })?;
    let core = proxy::new_dict(py, st, shared, w)?;
    let pb = py.import("persist._pbase")?;
    pb.getattr("_revive")?.call1((class_name, core))
}
