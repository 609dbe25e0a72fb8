//! persist.Cache: the proxy of a cache in a store (object/cache.rs), and the unstored
//! description of one that `persist.Cache(ttl=..., max_entries=..., max_bytes=...)` makes.
//!
//! As Dict (proxy.rs): single-key changes and lookups are here, each one change (on the
//! cache's part lock where it can) or one validated read; the methods that run Python code
//! (views, repr, comparisons, update's argument parsing) are in python/persist/_ops.py, on top
//! of `_snapshot` and `_update_pairs`. Every read takes its clock reading inside the read, so
//! a retried read reads the clock again.

use super::convert::{inline_word, key_arg, to_py, to_tree, unstorable_key, Keep};
use super::errors;
use super::store::{Gil, LockGuard, Shared, StoreCore};
use crate::object::cache::{now_ns, CacheEntry, CacheOpts, CacheSet};
use crate::object::dict::NO_HINT;
use crate::object::tree::{Node, Tree};
use crate::object::value::SMALL_INT_MAX;
use crate::object::{self, Container, Store};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn ops(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("persist._ops")
}

fn map(e: object::Error) -> PyErr {
    errors::map_object(e)
}

fn key_error(k: &Bound<'_, PyAny>) -> PyErr {
    PyKeyError::new_err((k.clone().unbind(),))
}

/// Creates a Cache proxy for container `c` (holding it). Inside a read or op.
pub(crate) fn new_cache<'py>(
    py: Python<'py>,
    st: &mut Store,
    shared: &Arc<Shared>,
    c: Container,
) -> PyResult<Bound<'py, PyAny>> {
    let opts = st.cache_opts(c).map_err(map)?;
    st.hold(c).map_err(map)?;
    Ok(Bound::new(
        py,
        Cache {
            at: Some((shared.clone(), c)),
            opts,
            refresh: (opts.max_entries != 0 || opts.max_bytes != 0) && !st.is_readonly(),
            hint: AtomicU64::new(NO_HINT),
        },
    )?
    .into_any())
}

/// Seconds as nanoseconds (positive; infinity: 0, never).
fn ttl_ns(ttl: f64) -> PyResult<u64> {
    if ttl.is_nan() || ttl <= 0.0 {
        return Err(PyValueError::new_err(format!(
            "ttl must be a positive number of seconds, not {ttl}"
        )));
    }
    if ttl.is_infinite() {
        return Ok(0);
    }
    Ok((ttl * 1e9).round().clamp(1.0, SMALL_INT_MAX as f64) as u64)
}

fn limit(n: Option<i64>, what: &str) -> PyResult<u64> {
    match n {
        None => Ok(0),
        Some(n) if n >= 1 => Ok(n as u64),
        Some(n) => Err(PyValueError::new_err(format!(
            "{what} must be at least 1, not {n}"
        ))),
    }
}

/// A value to store: its word, or its tree.
enum Val<'py> {
    Word(u64),
    Tree(Tree<'py>),
}

/// A cache in a store: a dict whose entries expire and which evicts its least recently used
/// entries at a size limit.
///
/// ``persist.Cache(ttl=None, max_entries=None, max_bytes=None)`` describes a new empty cache;
/// storing it (``root['c'] = persist.Cache(ttl=60, max_entries=1000)``) makes one in the store,
/// and reading it back (``root['c']``) gives the ``persist.Cache`` proxy that every method
/// below works on (an unstored description only answers its options).
///
/// * ``ttl``: seconds an entry lives unless set with its own (``c.set(k, v, ttl=5)``); None:
///   entries live until removed.
/// * ``max_entries``: the most entries the cache holds; ``max_bytes``: the most bytes its
///   entries' blocks take in the store (key, value and entry; a container value counts
///   nothing). A change that would go over evicts the least recently used entries first, in the
///   same atomic change: no change returns with the cache over a limit.
///
/// It behaves like :class:`dict` (a registered :class:`collections.abc.MutableMapping`, with
/// equality to any mapping, ``|``, views and repr as dict's) with these differences:
///
/// * An entry past its expiry time is absent for every reader in every process (``in``,
///   ``[]``, :meth:`get`, ``len``, iteration), by the reader's own clock reading. Expiry uses
///   ``CLOCK_REALTIME`` (``time.time()``): a wall-clock step moves every expiry with it.
/// * Reading an entry with ``[]`` or :meth:`get` makes it the most recently used (in a cache
///   with a limit, that read is a small change of the store); ``in``, iteration and
///   :meth:`peek` do not.
/// * Iteration walks a snapshot of the live entries (least recently used first), so an entry
///   expiring meanwhile does not raise. ``len`` of a cache that holds entries with an expiry
///   time counts the live ones (a walk of the table); without any, it is one word.
/// * An unstored description equals only itself.
/// * Values and keys are what a :class:`persist.Dict` stores.
#[pyclass(module = "persist", name = "Cache", frozen, weakref, mapping)]
pub(crate) struct Cache {
    /// The store and container, once stored (None: a description to store).
    pub at: Option<(Arc<Shared>, Container)>,
    opts: CacheOpts,
    /// Whether reads move an entry to the end of the recency order (a limited cache in a
    /// writable store).
    refresh: bool,
    /// The entry index of the last key looked up: a hint, checked before use.
    hint: AtomicU64,
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some((shared, c)) = &self.at {
            shared.release(*c);
        }
    }
}

impl Cache {
    /// The store and container (a TypeError for an unstored description).
    fn at(&self) -> PyResult<(&Arc<Shared>, Container)> {
        match &self.at {
            Some((s, c)) => Ok((s, *c)),
            None => Err(PyTypeError::new_err(
                "this persist.Cache is not stored yet: store it (root['c'] = persist.Cache(...)) \
                 and use root['c']",
            )),
        }
    }

    /// The options of an unstored description, for the tree builder.
    pub(crate) fn unstored_opts(&self) -> Option<CacheOpts> {
        self.at.is_none().then_some(self.opts)
    }

    /// Expiry time for a set with `ttl` (None: the cache's default) at `now`.
    fn expires(&self, ttl: Option<f64>, now: u64) -> PyResult<u64> {
        let ns = match ttl {
            Some(t) => ttl_ns(t)?,
            None => self.opts.ttl,
        };
        Ok(if ns == 0 {
            0
        } else {
            now.saturating_add(ns).min(SMALL_INT_MAX as u64)
        })
    }

    /// The error of an entry of `n` bytes, more than max_bytes allows (nothing was changed).
    fn too_large(&self, n: u64) -> PyErr {
        PyValueError::new_err(format!(
            "the entry takes {n} bytes, more than the cache's max_bytes ({})",
            self.opts.max_bytes
        ))
    }

    /// Sets every (key, value) of `pairs` (a list of 2-tuples) in one change, the i-th to
    /// expire at `expiry(i, now)` (ns since the epoch, 0: never).
    fn set_pairs(
        &self,
        py: Python<'_>,
        pairs: &Bound<'_, PyList>,
        expiry: impl Fn(usize, u64) -> PyResult<u64>,
    ) -> PyResult<()> {
        let (shared, c) = self.at()?;
        let mut keep = Keep::default();
        let mut keys = Vec::with_capacity(pairs.len());
        let flat = PyList::empty(py);
        for p in pairs.iter() {
            let p = p.cast::<PyTuple>()?;
            let k = p.get_item(0)?;
            let Some(kt) = Self::key(&k)? else {
                return Err(unstorable_key(&k));
            };
            keys.push(kt);
            flat.append(p.get_item(1)?)?;
        }
        let hashed = keys
            .iter()
            .map(|kt| kt.key().map_err(map))
            .collect::<PyResult<Vec<_>>>()?;
        let vt = to_tree(flat.as_any(), shared, &mut keep)?;
        shared.write_in(&Gil(py), c, |st| {
            let ws = st.encode_items(&vt).map_err(map)?;
            keep.bind(py, st, shared)?;
            let now = now_ns();
            for (i, (key, w)) in hashed.iter().zip(ws).enumerate() {
                let x = expiry(i, now)?;
                if let CacheSet::TooLarge(n) = st
                    .cache_set(c, key, w, x, now, &mut NO_HINT.clone())
                    .map_err(map)?
                {
                    return Err(self.too_large(n));
                }
            }
            Ok(())
        })
    }

    fn key<'py>(k: &Bound<'py, PyAny>) -> PyResult<Option<super::convert::KeyArg<'py>>> {
        key_arg(k)
    }

    /// Sets `k` to `v` with `ttl` (None: default): one change, on the cache's part lock
    /// (store-wide if the value refers to a stored container, or an old or evicted value is a
    /// container another reference reaches).
    fn store(
        &self,
        py: Python<'_>,
        k: &Bound<'_, PyAny>,
        v: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<()> {
        let (shared, c) = self.at()?;
        let mut keep = Keep::default();
        let Some(kt) = Self::key(k)? else {
            return Err(unstorable_key(k));
        };
        let key = kt.key().map_err(map)?;
        let value = match inline_word(v) {
            Some(w) => Val::Word(w),
            None => Val::Tree(to_tree(v, shared, &mut keep)?),
        };
        self.expires(ttl, 0)?;
        let mut hint = self.hint.load(Ordering::Relaxed);
        let set = |st: &mut Store| {
            let w = match &value {
                Val::Word(w) => *w,
                Val::Tree(t) => {
                    let w = st.encode(t).map_err(map)?;
                    keep.bind(py, st, shared)?;
                    w
                }
            };
            let now = now_ns();
            let expires = self.expires(ttl, now)?;
            match st
                .cache_set(c, &key, w, expires, now, &mut hint)
                .map_err(map)?
            {
                CacheSet::Done => Ok(()),
                CacheSet::TooLarge(n) => Err(self.too_large(n)),
            }
        };
        shared.write_in(&Gil(py), c, set)?;
        self.hint.store(hint, Ordering::Relaxed);
        Ok(())
    }

    /// The live value of `k` (moving it to the end of the recency order if `touch` and the
    /// cache refreshes).
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        touch: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (shared, c) = self.at()?;
        let Some(kt) = Self::key(k)? else {
            return Ok(None);
        };
        let key = kt.key().map_err(map)?;
        let mut hint = self.hint.load(Ordering::Relaxed);
        let v = if touch && self.refresh {
            shared.write_in(&Gil(py), c, |st| {
                match st
                    .cache_touch(c, &key, None, now_ns(), &mut hint)
                    .map_err(map)?
                {
                    Some(e) => Ok(Some(to_py(py, st, shared, e.value)?)),
                    None => Ok(None),
                }
            })?
        } else {
            shared.read(&Gil(py), |st| {
                match st.cache_get(c, &key, now_ns(), &mut hint).map_err(map)? {
                    Some(e) => Ok(Some(to_py(py, st, shared, e.value)?)),
                    None => Ok(None),
                }
            })?
        };
        self.hint.store(hint, Ordering::Relaxed);
        Ok(v)
    }

    /// The live entry of `k` (no refresh).
    fn entry(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<Option<CacheEntry>> {
        let (shared, c) = self.at()?;
        let Some(kt) = Self::key(k)? else {
            return Ok(None);
        };
        let key = kt.key().map_err(map)?;
        shared.read(&Gil(py), |st| {
            st.cache_get(c, &key, now_ns(), &mut NO_HINT.clone())
                .map_err(map)
        })
    }
}

fn seconds(ns: u64) -> Option<f64> {
    (ns != 0).then(|| ns as f64 / 1e9)
}

#[pymethods]
impl Cache {
    #[new]
    #[pyo3(signature = (*, ttl=None, max_entries=None, max_bytes=None))]
    fn py_new(
        ttl: Option<f64>,
        max_entries: Option<i64>,
        max_bytes: Option<i64>,
    ) -> PyResult<Self> {
        Ok(Cache {
            at: None,
            opts: CacheOpts {
                ttl: match ttl {
                    Some(t) => ttl_ns(t)?,
                    None => 0,
                },
                max_entries: limit(max_entries, "max_entries")?,
                max_bytes: limit(max_bytes, "max_bytes")?,
            },
            refresh: false,
            hint: AtomicU64::new(NO_HINT),
        })
    }

    /// The default time to live of an entry, in seconds (None: entries set without a ttl never
    /// expire).
    #[getter]
    fn ttl(&self) -> Option<f64> {
        seconds(self.opts.ttl)
    }

    /// The most entries the cache holds (None: no limit).
    #[getter]
    fn max_entries(&self) -> Option<u64> {
        (self.opts.max_entries != 0).then_some(self.opts.max_entries)
    }

    /// The most bytes the cache's entries take in the store (None: no limit).
    #[getter]
    fn max_bytes(&self) -> Option<u64> {
        (self.opts.max_bytes != 0).then_some(self.opts.max_bytes)
    }

    /// The bytes the entries take now, as counted against ``max_bytes`` (expired entries not
    /// yet reclaimed included).
    #[getter]
    fn size_bytes(&self, py: Python<'_>) -> PyResult<u64> {
        let (shared, c) = self.at()?;
        shared.read(&Gil(py), |st| st.cache_bytes(c).map_err(map))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let (shared, c) = self.at()?;
        Ok(shared.read(&Gil(py), |st| st.cache_len(c, now_ns()).map_err(map))? as usize)
    }

    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.__len__(py)? > 0)
    }

    fn __contains__(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.entry(py, k)?.is_some())
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.lookup(py, k, true)? {
            Some(v) => Ok(v),
            None => Err(key_error(k)),
        }
    }

    /// ``self[k]`` if ``k`` is live in the cache, else ``default``, as :meth:`dict.get`; the
    /// entry becomes the most recently used.
    #[pyo3(signature = (k, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.lookup(py, k, true)? {
            Some(v) => v,
            None => default.unwrap_or_else(|| py.None().into_bound(py)),
        })
    }

    /// As :meth:`get`, without making the entry the most recently used (a plain read).
    #[pyo3(signature = (k, default=None))]
    fn peek<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.lookup(py, k, false)? {
            Some(v) => v,
            None => default.unwrap_or_else(|| py.None().into_bound(py)),
        })
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        k: &Bound<'_, PyAny>,
        v: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.store(py, k, v, None)
    }

    /// Sets ``k`` to ``v``, expiring ``ttl`` seconds from now (None: the cache's default ttl;
    /// ``math.inf``: never), in one atomic change; the entry becomes the most recently used,
    /// and least recently used entries are evicted if the cache would go over a limit.
    ///
    /// :raises ValueError: ``ttl`` is not positive, or the entry alone is over ``max_bytes``.
    /// :raises TypeError: ``k`` or ``v`` cannot be stored.
    #[pyo3(signature = (k, v, ttl=None))]
    fn set(
        &self,
        py: Python<'_>,
        k: &Bound<'_, PyAny>,
        v: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<()> {
        self.store(py, k, v, ttl)
    }

    /// Gives live entry ``k`` a new expiry time, ``ttl`` seconds from now (None: the cache's
    /// default; ``math.inf``: never), and makes it the most recently used. Returns whether
    /// ``k`` was live.
    #[pyo3(signature = (k, ttl=None))]
    fn touch(&self, py: Python<'_>, k: &Bound<'_, PyAny>, ttl: Option<f64>) -> PyResult<bool> {
        let (shared, c) = self.at()?;
        let Some(kt) = Self::key(k)? else {
            return Ok(false);
        };
        let key = kt.key().map_err(map)?;
        self.expires(ttl, 0)?;
        shared.write_in(&Gil(py), c, |st| {
            let now = now_ns();
            let x = self.expires(ttl, now)?;
            Ok(st
                .cache_touch(c, &key, Some(x), now, &mut NO_HINT.clone())
                .map_err(map)?
                .is_some())
        })
    }

    /// When live entry ``k`` expires, as a POSIX timestamp (``time.time()``'s clock); None if
    /// it never does.
    ///
    /// :raises KeyError: ``k`` is not live in the cache.
    fn expires_at(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        match self.entry(py, k)? {
            Some(e) => Ok(seconds(e.expires)),
            None => Err(key_error(k)),
        }
    }

    /// Removes every expired entry now, in one change; returns how many. (Expired entries are
    /// invisible anyway, and reclaimed bit by bit by later changes: this frees their space at
    /// once.)
    fn expire(&self, py: Python<'_>) -> PyResult<u64> {
        let (shared, c) = self.at()?;
        shared.write_in(&Gil(py), c, |st| st.cache_expire(c, now_ns()).map_err(map))
    }

    fn __delitem__(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<()> {
        let (shared, c) = self.at()?;
        let Some(kt) = Self::key(k)? else {
            return Err(key_error(k));
        };
        let key = kt.key().map_err(map)?;
        shared
            .write_in(&Gil(py), c, |st| {
                match st.cache_del(c, &key, now_ns()).map_err(map)? {
                    Some(_) => Ok(true),
                    None => Ok(false),
                }
            })?
            .then_some(())
            .ok_or_else(|| key_error(k))
    }

    /// pop(k[, default])
    ///
    /// Removes live entry ``k`` and returns its value, as :meth:`dict.pop`; ``default`` if
    /// ``k`` is missing or expired.
    ///
    /// :raises KeyError: ``k`` is missing and no default was given.
    #[pyo3(signature = (k, *default))]
    fn pop<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        default: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (shared, c) = self.at()?;
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!(
                "pop expected at most 2 arguments, got {}",
                default.len() + 1
            )));
        }
        let missing = || -> PyResult<Bound<'py, PyAny>> {
            match default.get_item(0) {
                Ok(d) => Ok(d),
                Err(_) => Err(key_error(k)),
            }
        };
        let Some(kt) = Self::key(k)? else {
            return missing();
        };
        let key = kt.key().map_err(map)?;
        let r = shared.write_in(&Gil(py), c, |st| {
            match st.cache_del(c, &key, now_ns()).map_err(map)? {
                Some((_, e)) => Ok(Some(to_py(py, st, shared, e.value)?)),
                None => Ok(None),
            }
        })?;
        match r {
            Some(v) => Ok(v),
            None => missing(),
        }
    }

    /// Removes and returns the most recently used live ``(key, value)`` pair, as
    /// :meth:`dict.popitem`.
    ///
    /// :raises KeyError: the cache is empty.
    fn popitem<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (shared, c) = self.at()?;
        shared.write_in(&Gil(py), c, |st| {
            match st.cache_popitem(c, now_ns()).map_err(map)? {
                Some((kw, e)) => {
                    let k = to_py(py, st, shared, kw)?;
                    let v = to_py(py, st, shared, e.value)?;
                    Ok(PyTuple::new(py, [k, v])?.into_any())
                }
                None => Err(PyKeyError::new_err("popitem(): cache is empty")),
            }
        })
    }

    /// ``self[k]`` if ``k`` is live; else sets ``k`` to ``default`` (with the default ttl) and
    /// returns it, as :meth:`dict.setdefault`, in one atomic change.
    #[pyo3(signature = (k, default=None))]
    fn setdefault<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (shared, c) = self.at()?;
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        let Some(kt) = Self::key(k)? else {
            return Err(unstorable_key(k));
        };
        let key = kt.key().map_err(map)?;
        let mut keep = Keep::default();
        let vt = to_tree(&default, shared, &mut keep)?;
        shared.write_in(&Gil(py), c, |st| {
            let now = now_ns();
            let mut hint = NO_HINT;
            if let Some(e) = st.cache_touch(c, &key, None, now, &mut hint).map_err(map)? {
                return to_py(py, st, shared, e.value);
            }
            let w = st.encode(&vt).map_err(map)?;
            keep.bind(py, st, shared)?;
            let x = self.expires(None, now)?;
            match st.cache_set(c, &key, w, x, now, &mut hint).map_err(map)? {
                CacheSet::Done => to_py(py, st, shared, w),
                CacheSet::TooLarge(n) => Err(self.too_large(n)),
            }
        })
    }

    /// Sets every (key, value) of `pairs` (a list of 2-tuples) in one change, each with the
    /// default ttl (or `ttl`).
    #[pyo3(signature = (pairs, ttl=None))]
    fn _update_pairs(
        &self,
        py: Python<'_>,
        pairs: &Bound<'_, PyList>,
        ttl: Option<f64>,
    ) -> PyResult<()> {
        self.expires(ttl, 0)?; // a bad ttl fails before anything is converted
        self.set_pairs(py, pairs, |_, now| self.expires(ttl, now))
    }

    /// Sets the entries of `entries`, a list of (key, value, expiry time in ns since the
    /// epoch or 0), in one change (the CLI's load: expiry times kept).
    fn _load_entries(&self, py: Python<'_>, entries: &Bound<'_, PyList>) -> PyResult<()> {
        let pairs = PyList::empty(py);
        let mut times = Vec::with_capacity(entries.len());
        for e in entries.iter() {
            let (k, v, x): (Bound<'_, PyAny>, Bound<'_, PyAny>, u64) = e.extract()?;
            pairs.append((k, v))?;
            times.push(x.min(SMALL_INT_MAX as u64));
        }
        self.set_pairs(py, &pairs, |i, _| Ok(times[i]))
    }

    /// Removes every entry, as :meth:`dict.clear`; one atomic change.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let (shared, c) = self.at()?;
        shared.write_in(&Gil(py), c, |st| st.cache_clear(c).map_err(map))
    }

    /// (keys, values, version) of the live entries, least recently used first: the basis of
    /// the Python helpers.
    fn _snapshot<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>, u64)> {
        let (shared, c) = self.at()?;
        shared.read(&Gil(py), |st| {
            let items = st.cache_items(c, now_ns()).map_err(map)?;
            let v = st.version(c).map_err(map)?;
            let ks = PyList::empty(py);
            let vs = PyList::empty(py);
            for (kw, e) in items {
                ks.append(to_py(py, st, shared, kw)?)?;
                vs.append(to_py(py, st, shared, e.value)?)?;
            }
            Ok((ks, vs, v))
        })
    }

    /// The live entries with their expiry times: a list of (key, value, expiry ns or 0),
    /// least recently used first (the CLI's dump).
    fn _entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let (shared, c) = self.at()?;
        shared.read(&Gil(py), |st| {
            let items = st.cache_items(c, now_ns()).map_err(map)?;
            let out = PyList::empty(py);
            for (kw, e) in items {
                let k = to_py(py, st, shared, kw)?;
                let v = to_py(py, st, shared, e.value)?;
                out.append((k, v, e.expires))?;
            }
            Ok(out)
        })
    }

    #[getter]
    fn _ident(&self) -> PyResult<(u64, u64)> {
        let (shared, c) = self.at()?;
        Ok((shared.id(), c.get()))
    }

    #[getter]
    fn _store(&self) -> PyResult<StoreCore> {
        let (shared, _) = self.at()?;
        Ok(StoreCore {
            shared: shared.clone(),
        })
    }

    /// Takes the store's exclusive lock for the calling thread and returns a guard, as
    /// :meth:`persist.Dict.lockExcl` (the lock covers the whole store).
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockExcl(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        let (shared, _) = self.at()?;
        super::store::lock_excl(shared, py, timeout)?;
        Ok(LockGuard::taken(shared, "excl"))
    }

    /// Takes the store's shared lock for the calling thread and returns a guard, as
    /// :meth:`persist.Dict.lockShared`.
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockShared(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        let (shared, _) = self.at()?;
        super::store::lock_shared(shared, py, timeout)?;
        Ok(LockGuard::taken(shared, "shared"))
    }

    /// Gives back one level of the calling thread's lock, as :meth:`persist.Dict.unlock`.
    fn unlock(&self, py: Python<'_>) -> PyResult<()> {
        let (shared, _) = self.at()?;
        super::store::unlock(shared, py)
    }

    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("cache_iter")?.call1((slf, 0))
    }
    fn __reversed__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("dict_reversed")?.call1((slf,))
    }
    /// A view of the live keys, as :meth:`dict.keys` (iterating it walks a snapshot).
    fn keys<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("CacheKeysView")?.call1((slf,))
    }
    /// A view of the live values, as :meth:`dict.values`.
    fn values<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("CacheValuesView")?.call1((slf,))
    }
    /// A view of the live ``(key, value)`` pairs, as :meth:`dict.items`.
    fn items<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("CacheItemsView")?.call1((slf,))
    }
    /// update([other], **kwargs)
    ///
    /// Sets every pair of ``other`` (a mapping, or an iterable of ``(key, value)`` pairs) and of
    /// ``kwargs`` with the default ttl, as :meth:`dict.update`, in one atomic change.
    #[pyo3(signature = (*args, **kwargs))]
    fn update<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("dict_update")?
            .call1((slf, args, kwargs))
    }
    /// A plain :class:`dict` with every item of ``iterable`` as a key, each mapped to ``value``
    /// (as :meth:`persist.Dict.fromkeys`).
    #[classmethod]
    #[pyo3(signature = (iterable, value=None, /))]
    fn fromkeys<'py>(
        cls: &Bound<'py, pyo3::types::PyType>,
        iterable: &Bound<'py, PyAny>,
        value: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let py = cls.py();
        let value = value.unwrap_or_else(|| py.None().into_bound(py));
        let d = PyDict::new(py);
        for k in iterable.try_iter()? {
            d.set_item(k?, &value)?;
        }
        Ok(d)
    }
    /// A plain :class:`dict` of the live entries (``copy.copy`` gives the same).
    fn copy<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("dict_copy")?.call1((slf,))
    }
    fn __repr__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("cache_repr")?.call1((slf,))
    }
    fn __richcmp__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
        op: pyo3::basic::CompareOp,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("dict_richcmp")?
            .call1((slf, other, op as i32))
    }
    fn __or__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("dict_or")?.call1((slf, other))
    }
    fn __ror__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("dict_ror")?.call1((slf, other))
    }
    fn __ior__<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<()> {
        ops(slf.py())?.getattr("dict_ior")?.call1((slf, other))?;
        Ok(())
    }
    /// A plain deep copy of the live entries: a :class:`dict`.
    fn to_python<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("to_python")?.call1((slf,))
    }
    /// ``copy.copy(c)``: a plain shallow :class:`dict` of the live entries.
    fn __copy__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("dict_copy")?.call1((slf,))
    }
    /// ``copy.deepcopy(c)``: as :meth:`to_python`.
    fn __deepcopy__<'py>(
        slf: &Bound<'py, Self>,
        _memo: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("to_python")?.call1((slf,))
    }
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "persist.Cache cannot be pickled (use to_python() for a plain copy)",
        ))
    }
}

/// The tree node of an unstored cache description (`to_tree`).
pub(crate) fn unstored_node(o: &Bound<'_, PyAny>) -> Option<Node<'static>> {
    let c = o.cast::<Cache>().ok()?;
    c.get().unstored_opts().map(Node::Cache)
}
