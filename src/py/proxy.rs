//! persist.List and persist.Dict: proxies of containers in a store.
//!
//! A proxy is (store, [`Container`]): the object layer's typed container offset, which only
//! the object layer makes (from a decoded value, the root, or a new container), so a proxy can
//! never be pointed at a value word. While it lives, its container is in this process's held
//! set, so no process frees it. The hot methods are here; the ones that run Python code
//! (comparisons, sort keys, repr, views) are in python/persist/_ops.py, on top of the
//! primitives below, and call back in with check-then-act primitives (`_*_if(version, ...)`),
//! so no lock is held while Python code runs.

use super::convert::{
    flat_tuple_words, inline_word, key_arg, to_py, to_tree, unstorable_key, Keep,
};
use super::errors;
use super::incr::Arg;
use super::store::{Gil, LockGuard, Shared, StoreCore};
use crate::object::dict::NO_HINT;
use crate::object::list::Item;
use crate::object::value::Kind;
use crate::object::{self, Container, Store};
use pyo3::exceptions::{PyIndexError, PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice, PyTuple};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn ops(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("persist._ops")
}

fn map(e: object::Error) -> PyErr {
    errors::map_object(e)
}

/// Creates a List proxy for container `c` (holding it). Inside a read or op.
pub(crate) fn new_list<'py>(
    py: Python<'py>,
    st: &mut Store,
    shared: &Arc<Shared>,
    c: Container,
) -> PyResult<Bound<'py, PyAny>> {
    st.hold(c).map_err(map)?;
    Ok(Bound::new(
        py,
        List {
            shared: shared.clone(),
            off: c,
        },
    )?
    .into_any())
}

/// Creates a Dict proxy for container `c` (a dict, or a user object's attribute dict).
pub(crate) fn new_dict<'py>(
    py: Python<'py>,
    st: &mut Store,
    shared: &Arc<Shared>,
    c: Container,
) -> PyResult<Bound<'py, PyAny>> {
    st.hold(c).map_err(map)?;
    Ok(Bound::new(
        py,
        Dict {
            shared: shared.clone(),
            off: c,
            hint: AtomicU64::new(NO_HINT),
        },
    )?
    .into_any())
}

/// If `o` is a proxy (List, Dict, Set, or a bound pbase object), its container and whether it
/// belongs to `shared`'s store.
pub(crate) fn proxy_target(
    o: &Bound<'_, PyAny>,
    shared: &Arc<Shared>,
) -> PyResult<Option<(Container, bool)>> {
    if let Ok(l) = o.cast::<List>() {
        let l = l.get();
        return Ok(Some((l.off, Arc::ptr_eq(&l.shared, shared))));
    }
    if let Ok(d) = o.cast::<Dict>() {
        let d = d.get();
        return Ok(Some((d.off, Arc::ptr_eq(&d.shared, shared))));
    }
    if let Ok(s) = o.cast::<super::set::Set>() {
        let s = s.get();
        return Ok(Some((s.off, Arc::ptr_eq(&s.shared, shared))));
    }
    if let Ok(s) = o.cast::<super::cache::Cache>() {
        // An unstored description is no proxy (the tree builder makes it a new cache).
        if let Some((s, c)) = &s.get().at {
            return Ok(Some((*c, Arc::ptr_eq(s, shared))));
        }
    }
    // A bound pbase instance keeps its attribute dict proxy in __dict__['_p_core'].
    if let Ok(dict) = o.getattr("__dict__") {
        if let Ok(dict) = dict.cast::<pyo3::types::PyDict>() {
            if let Some(core) = dict.get_item("_p_core")? {
                if let Ok(d) = core.cast::<Dict>() {
                    let d = d.get();
                    return Ok(Some((d.off, Arc::ptr_eq(&d.shared, shared))));
                }
            }
        }
    }
    Ok(None)
}

/// Normalizes a Python index against `len` (IndexError when out of range).
fn index(i: isize, len: u64, what: &str) -> PyResult<u64> {
    let j = if i < 0 { i + len as isize } else { i };
    if j < 0 || j as u64 >= len {
        return Err(PyIndexError::new_err(format!("{what} index out of range")));
    }
    Ok(j as u64)
}

fn words_to_list<'py>(
    py: Python<'py>,
    st: &mut Store,
    shared: &Arc<Shared>,
    ws: &[u64],
) -> PyResult<Bound<'py, PyList>> {
    let items = ws
        .iter()
        .map(|&w| to_py(py, st, shared, w))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

// ---- List ---------------------------------------------------------------------------------

/// A list in a store: behaves like :class:`list`, and every change goes to the store.
///
/// Not made directly: storing a :class:`list` (``root['l'] = [1, 2]``) copies it into the
/// store, and reading it back (``root['l']``) gives a ``persist.List``, a proxy of the stored
/// list. It has every method and operator of :class:`list`, with the same exceptions, and is a
/// registered :class:`collections.abc.MutableSequence`.
///
/// Where it differs from :class:`list`:
///
/// * Values are stored by value: a plain list or dict given to it is copied in, and a later
///   change to the original does not reach the store. A proxy of the same store (a
///   ``persist.List``, ``persist.Dict`` or stored object) is stored as a reference instead.
/// * Every single call is atomic for all threads and processes; several calls that must be
///   seen together need :meth:`lockExcl` or :meth:`persist.Store.transaction`.
/// * Reading a container item gives a new proxy each time: compare proxies with ``==``, not
///   ``is``. Proxies are unhashable and cannot be pickled.
/// * :meth:`copy`, slices, ``+`` and ``*`` give plain :class:`list` objects, outside the store.
///
/// Every method raises :exc:`persist.ClosedError` once the store is closed; every change raises
/// :exc:`persist.ReadOnlyError` in a store opened with ``readonly=True``,
/// :exc:`persist.StoreFullError` when the store cannot grow (nothing is changed then) and
/// :exc:`TypeError` naming the type of a value it cannot store (nothing is changed then
/// either); a damaged store raises :exc:`persist.CorruptionError`.
#[pyclass(module = "persist", name = "List", frozen, weakref, sequence)]
pub(crate) struct List {
    pub shared: Arc<Shared>,
    pub off: Container,
}

impl Drop for List {
    fn drop(&mut self) {
        self.shared.release(self.off);
    }
}

impl List {
    fn tree_items<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyAny>,
        keep: &mut Keep<'py>,
    ) -> PyResult<object::tree::Tree<'py>> {
        // Materialize first (runs the iterable's Python code with no lock held).
        let l = PyList::new(py, values.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
        to_tree(l.as_any(), &self.shared, keep)
    }
}

/// A flag that ends a [`SharedStore::wait_change`](crate::object::SharedStore::wait_change)
/// early (the asyncio methods set it when their task is cancelled).
#[pyclass(module = "persist._persist", name = "_CancelFlag", frozen)]
pub(crate) struct CancelFlag {
    pub(crate) flag: std::sync::atomic::AtomicBool,
}

#[pymethods]
impl CancelFlag {
    #[new]
    fn py_new() -> CancelFlag {
        CancelFlag {
            flag: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Sets the flag (the waiting thread must then be woken: ``List._wake_waiters``).
    fn set(&self) {
        // Relaxed: the wake-up that follows orders it for the waiter (see `wait_change`).
        self.flag.store(true, Ordering::Relaxed);
    }
}

impl List {
    /// `dest` as a list of this store.
    fn dest_list(&self, dest: &Bound<'_, PyAny>) -> PyResult<Container> {
        let Ok(d) = dest.cast::<List>() else {
            return Err(PyTypeError::new_err(format!(
                "move_to() needs a persist.List as dest, not {}",
                dest.get_type().name()?
            )));
        };
        let d = d.get();
        if !Arc::ptr_eq(&d.shared, &self.shared) {
            return Err(PyValueError::new_err(
                "move_to() needs a dest list of the same store",
            ));
        }
        Ok(d.off)
    }

    /// pop, popleft and move_to: takes item `i` (0 or -1 for move_to), moved to `to` (the
    /// list, and whether to its front) or removed; waits with `block`.
    #[allow(clippy::too_many_arguments)]
    fn take<'py>(
        &self,
        py: Python<'py>,
        i: isize,
        block: bool,
        timeout: Option<f64>,
        to: Option<(Container, bool)>,
        empty: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = super::store::timeout_arg(timeout)?;
        match self.take_once(py, i, block, t, to, None)? {
            Some(o) => Ok(o.into_bound(py)),
            None => Err(PyIndexError::new_err(empty.to_string())),
        }
    }

    fn take_once(
        &self,
        py: Python<'_>,
        i: isize,
        block: bool,
        timeout: Option<std::time::Duration>,
        to: Option<(Container, bool)>,
        cancel: Option<&std::sync::atomic::AtomicBool>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let shared = &self.shared;
        let take = |st: &mut Store| -> PyResult<Option<Py<PyAny>>> {
            let len = st.list_len(self.off).map_err(map)?;
            if len == 0 {
                return Ok(None);
            }
            let j = index(i, len, "pop")?;
            let Some(w) = st.list_take(self.off, j, to.is_none()).map_err(map)? else {
                return Ok(None);
            };
            if let Some((d, front)) = to {
                // The same word, moved: no reference is added or dropped.
                if front {
                    st.list_splice(d, 0, 0, &[w]).map_err(map)?;
                } else {
                    st.list_append(d, w).map_err(map)?;
                }
            }
            // Decode before the op commits (a removed value is released then: a container,
            // held by the proxy made here, goes on the orphan list).
            Ok(Some(to_py(py, st, shared, w)?.unbind()))
        };
        // The first or the last item, a small value (its word), taken with no lock: a claim on
        // the list's tail (a publication); else, and for an empty list (which raises or
        // waits), the change below.
        if to.is_none() && (i == 0 || i == -1) {
            let publish = |st: &mut Store| -> PyResult<Option<Option<Py<PyAny>>>> {
                let decode = |st: &mut Store, w| to_py(py, st, shared, w).map(Bound::unbind);
                match st.publish_list_pop(self.off, i == 0, decode).map_err(map)? {
                    Some(v) => Ok(Some(Some(v?))),
                    None => Ok(None),
                }
            };
            if let Some(o) = self
                .shared
                .publish_or_write_in(&Gil(py), self.off, publish, take)?
            {
                return Ok(Some(o));
            }
            if !block {
                return Ok(None);
            }
        }
        // One list alone (pop, popleft) runs on its part lock where it can; a move changes two.
        let part = if to.is_none() { Some(self.off) } else { None };
        if block {
            return self
                .shared
                .wait_change(&Gil(py), part, self.off, timeout, cancel, take);
        }
        match part {
            Some(c) => self.shared.write_in(&Gil(py), c, take),
            None => self.shared.write(&Gil(py), take),
        }
    }
}

#[pymethods]
impl List {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn py_new(
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Self> {
        Err(PyTypeError::new_err(
            "persist.List objects are made by storing a list: root['k'] = [...]",
        ))
    }

    /// As :meth:`list.__init__`: replaces the contents with ``iterable``'s items, in one change.
    #[pyo3(signature = (iterable=None))]
    fn __init__(&self, py: Python<'_>, iterable: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let mut keep = Keep::default();
        let empty = PyTuple::empty(py);
        let values = iterable.unwrap_or(empty.as_any());
        let t = self.tree_items(py, values, &mut keep)?;
        // One list alone: on its part (store-wide if an item refers to a stored container, or
        // an old item is a container another reference reaches), as every change below that
        // touches this list alone.
        self.shared.write_in(&Gil(py), self.off, |st| {
            let ws = st.encode_items(&t).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            let len = st.list_len(self.off).map_err(map)?;
            st.list_splice(self.off, 0, len, &ws).map_err(map)?;
            Ok(())
        })
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self
            .shared
            .read(&Gil(py), |st| st.list_len(self.off).map_err(map))? as usize)
    }

    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.__len__(py)? > 0)
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shared = &self.shared;
        if let Ok(s) = i.cast::<PySlice>() {
            return self.shared.read(&Gil(py), |st| {
                let len = st.list_len(self.off).map_err(map)?;
                let ind = s.indices(len as isize)?;
                let ws = if ind.step == 1 {
                    st.list_range(self.off, ind.start as u64, ind.stop.max(ind.start) as u64)
                        .map_err(map)?
                } else {
                    let mut v = Vec::with_capacity(ind.slicelength);
                    let mut k = ind.start;
                    for _ in 0..ind.slicelength {
                        v.push(st.list_get(self.off, k as u64).map_err(map)?.unwrap_or(0));
                        k += ind.step;
                    }
                    v
                };
                Ok(words_to_list(py, st, shared, &ws)?.into_any())
            });
        }
        let i: isize = index_arg(i, "list")?;
        self.shared.read(&Gil(py), |st| {
            let len = st.list_len(self.off).map_err(map)?;
            let j = index(i, len, "list")?;
            let w = st.list_get(self.off, j).map_err(map)?.unwrap_or(0);
            to_py(py, st, shared, w)
        })
    }

    fn __setitem__<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
        v: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let mut keep = Keep::default();
        if let Ok(s) = i.cast::<PySlice>() {
            // As list: a zero step is refused before the value is looked at.
            s.indices(0)?;
            let t = self.tree_items(py, v, &mut keep)?;
            let n_new = match t.node(t.root) {
                object::tree::Node::List(r) => (r.end - r.start) as usize,
                _ => 0,
            };
            return self.shared.write_in(&Gil(py), self.off, |st| {
                let len = st.list_len(self.off).map_err(map)?;
                let ind = s.indices(len as isize)?;
                if ind.step == 1 {
                    let ws = st.encode_items(&t).map_err(map)?;
                    keep.bind(py, st, &self.shared)?;
                    let stop = ind.stop.max(ind.start) as u64;
                    st.list_splice(self.off, ind.start as u64, stop, &ws)
                        .map_err(map)?;
                    return Ok(());
                }
                if n_new != ind.slicelength {
                    return Err(PyValueError::new_err(format!(
                        "attempt to assign sequence of size {n_new} to extended slice of size {}",
                        ind.slicelength
                    )));
                }
                let ws = st.encode_items(&t).map_err(map)?;
                keep.bind(py, st, &self.shared)?;
                let mut plan: Vec<Item> = (0..len).map(Item::Old).collect();
                let mut k = ind.start;
                for w in ws {
                    plan[k as usize] = Item::New(w);
                    k += ind.step;
                }
                st.list_rebuild(self.off, &plan).map_err(map)
            });
        }
        let i: isize = index_arg(i, "list")?;
        let t = to_tree(v, &self.shared, &mut keep)?;
        // One list alone: a change on its part lock (store-wide if the value refers to a
        // stored container, or the old item is a container another reference reaches).
        self.shared.write_in(&Gil(py), self.off, |st| {
            let len = st.list_len(self.off).map_err(map)?;
            let j = index(i, len, "list assignment")?;
            st.list_set_encoded(self.off, j, |st| {
                let w = st.encode(&t).map_err(map)?;
                keep.bind(py, st, &self.shared)?;
                Ok::<u64, PyErr>(w)
            })
        })
    }

    fn __delitem__(&self, py: Python<'_>, i: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(s) = i.cast::<PySlice>() {
            return self.shared.write_in(&Gil(py), self.off, |st| {
                let len = st.list_len(self.off).map_err(map)?;
                let ind = s.indices(len as isize)?;
                if ind.slicelength == 0 {
                    return Ok(());
                }
                if ind.step == 1 {
                    st.list_splice(self.off, ind.start as u64, ind.stop as u64, &[])
                        .map_err(map)?;
                    return Ok(());
                }
                let mut drop = vec![false; len as usize];
                let mut k = ind.start;
                for _ in 0..ind.slicelength {
                    drop[k as usize] = true;
                    k += ind.step;
                }
                let plan: Vec<Item> = (0..len)
                    .filter(|&j| !drop[j as usize])
                    .map(Item::Old)
                    .collect();
                st.list_rebuild(self.off, &plan).map_err(map)
            });
        }
        let i: isize = index_arg(i, "list")?;
        // One list alone: on its part (store-wide if the item is a container another reference
        // reaches).
        self.shared.write_in(&Gil(py), self.off, |st| {
            let len = st.list_len(self.off).map_err(map)?;
            let j = index(i, len, "list assignment")?;
            st.list_splice(self.off, j, j + 1, &[]).map_err(map)?;
            Ok(())
        })
    }

    /// Appends ``v`` at the end, as :meth:`list.append`; one atomic change.
    ///
    /// ``v`` is stored by value (a plain list or dict is copied in, so later changes to the
    /// original do not reach the store); a proxy of the same store is stored as a reference.
    ///
    /// :raises TypeError: ``v`` is not storable (nothing is stored).
    /// :raises persist.StoreFullError: the store cannot grow.
    fn append(&self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(w) = inline_word(v) {
            // A small value is its word: appended by a claim on the list's tail (a publication,
            // no lock) where the items block has room; else a change on the list's part.
            let publish = |st: &mut object::Store| {
                Ok(st
                    .publish_list_append(self.off, w)
                    .map_err(map)?
                    .then_some(()))
            };
            let append = |st: &mut object::Store| st.list_append(self.off, w).map_err(map);
            return self
                .shared
                .publish_or_write_in(&Gil(py), self.off, publish, append);
        }
        if let Some(items) = flat_tuple_words(v) {
            // A tuple of small values is one block with no references, as a str is: appended
            // with no lock where there is room; else on the list's part.
            let publish = |st: &mut object::Store| {
                Ok(st
                    .publish_list_append_tuple(self.off, &items)
                    .map_err(map)?
                    .then_some(()))
            };
            let append = |st: &mut object::Store| {
                let w = st.encode_tuple_of(&items).map_err(map)?;
                st.list_append(self.off, w).map_err(map)
            };
            return self
                .shared
                .publish_or_write_in(&Gil(py), self.off, publish, append);
        }
        let mut keep = Keep::default();
        let t = to_tree(v, &self.shared, &mut keep)?;
        let append = |st: &mut object::Store| {
            let w = st.encode(&t).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            st.list_append(self.off, w).map_err(map)
        };
        // A scalar touches this list alone: its one block (a str, a float...) is written and
        // appended with no lock where there is room, as an inline word is; else a change on
        // the list's part lock.
        if let Some(node) = t.as_scalar() {
            let publish = |st: &mut object::Store| {
                Ok(st
                    .publish_list_append_scalar(self.off, node)
                    .map_err(map)?
                    .then_some(()))
            };
            return self
                .shared
                .publish_or_write_in(&Gil(py), self.off, publish, append);
        }
        // A new container: its blocks are written on the list's part (store-wide if it refers
        // to a stored container).
        self.shared.write_in(&Gil(py), self.off, append)
    }

    /// Appends every item of ``values``, as :meth:`list.extend`, in one atomic change.
    ///
    /// The iterable is read first, with no lock held. If any item anywhere inside it cannot be
    /// stored, nothing is appended.
    ///
    /// :raises TypeError: an item is not storable (the list is unchanged).
    /// :raises persist.StoreFullError: the store cannot grow (the list is unchanged).
    fn extend(&self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        // Materialized first (runs the iterable's Python code with no lock held).
        let l = PyList::new(py, values.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
        let words: Option<Vec<u64>> = l.iter().map(|v| inline_word(&v)).collect();
        if let Some(ws) = words.filter(|ws| !ws.is_empty()) {
            // Small values only, each its word: appended by one claim on the list's tail (a
            // publication, no lock) where the items block has room; else a change on the
            // list's part.
            let publish = |st: &mut object::Store| {
                Ok(st
                    .publish_list_extend(self.off, &ws)
                    .map_err(map)?
                    .then_some(()))
            };
            let extend = |st: &mut object::Store| st.list_extend(self.off, &ws).map_err(map);
            return self
                .shared
                .publish_or_write_in(&Gil(py), self.off, publish, extend);
        }
        let mut keep = Keep::default();
        let t = to_tree(l.as_any(), &self.shared, &mut keep)?;
        self.shared.write_in(&Gil(py), self.off, |st| {
            let ws = st.encode_items(&t).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            st.list_extend(self.off, &ws).map_err(map)
        })
    }

    fn __iadd__(&self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        self.extend(py, values)
    }

    /// Inserts ``v`` before index ``i``, as :meth:`list.insert` (an index past either end inserts
    /// at that end); one atomic change.
    ///
    /// :raises TypeError: ``i`` is not an integer, or ``v`` is not storable.
    fn insert(&self, py: Python<'_>, i: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let i: isize = ssize_arg(i)?;
        let mut keep = Keep::default();
        let t = to_tree(v, &self.shared, &mut keep)?;
        // One list alone: on its part lock (store-wide if the value refers to a stored
        // container).
        self.shared.write_in(&Gil(py), self.off, |st| {
            let len = st.list_len(self.off).map_err(map)? as isize;
            let j = if i < 0 { (i + len).max(0) } else { i.min(len) } as u64;
            let w = st.encode(&t).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            st.list_splice(self.off, j, j, &[w]).map_err(map)?;
            Ok(())
        })
    }

    /// Removes and returns the item at index ``i`` (the last by default), as :meth:`list.pop`.
    ///
    /// Taking the last or the first item (``pop()``, ``pop(0)``) moves no other item: O(1),
    /// so a list is a queue (see :meth:`popleft`).
    ///
    /// :param block: with ``True``, an empty list is waited on (the thread sleeps, without the
    ///     GIL and without polling, until an item is added by any thread or process) instead of
    ///     raising :exc:`IndexError`; ``i`` is applied once the list has items.
    /// :param timeout: with ``block=True``, seconds to wait at most (``None``: as long as it
    ///     takes); ignored without ``block``, as :meth:`queue.Queue.get` does.
    /// :returns: the removed value. A removed container comes back as a proxy, which keeps it
    ///     alive in the store until the proxy is dropped (or stored somewhere again).
    /// :raises IndexError: the list is empty (with ``block=True``: still empty when
    ///     ``timeout`` passed) or ``i`` is out of range.
    /// :raises ValueError: ``timeout`` is negative or NaN.
    /// :raises KeyboardInterrupt: Ctrl-C while waiting (nothing is removed then).
    // As list.pop(index=-1, /): positional, and None is not an index (a default of None
    // would accept it and show the wrong signature).
    #[pyo3(
        signature = (*args, block=false, timeout=None),
        text_signature = "($self, i=-1, /, *, block=False, timeout=None)"
    )]
    fn pop<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let i: isize = match args.len() {
            0 => -1,
            1 => ssize_arg(&args.get_item(0)?)?,
            n => {
                return Err(PyTypeError::new_err(format!(
                    "pop expected at most 1 argument, got {n}"
                )))
            }
        };
        self.take(py, i, block, timeout, None, "pop from empty list")
    }

    /// Removes and returns the first item, as :meth:`collections.deque.popleft`: O(1) (no item
    /// moves), so a list used with :meth:`append` and ``popleft`` is a FIFO queue shared by
    /// every thread and process.
    ///
    /// :param block: with ``True``, an empty list is waited on, as :meth:`pop` does.
    /// :param timeout: with ``block=True``, seconds to wait at most (``None``: as long as it
    ///     takes).
    /// :returns: the removed value (a container as a proxy, as :meth:`pop`).
    /// :raises IndexError: the list is empty (with ``block=True``: still empty when
    ///     ``timeout`` passed).
    /// :raises ValueError: ``timeout`` is negative or NaN.
    /// :raises KeyboardInterrupt: Ctrl-C while waiting (nothing is removed then).
    #[pyo3(signature = (*, block=false, timeout=None))]
    fn popleft<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.take(py, 0, block, timeout, None, "pop from empty list")
    }

    /// Moves one item from this list to the list ``dest`` in one atomic change, and returns
    /// it: a reliable hand-off, as Redis ``BLMOVE``. A consumer that moves each job into a list
    /// of its own (its in-progress list) and removes it there when done loses no job if it is
    /// killed at any instant: the job is in exactly one of the two lists, and a recoverer can
    /// move a dead consumer's jobs back.
    ///
    /// :param dest: a ``persist.List`` of the same store (this list itself rotates it).
    /// :param left: take the first item (``True``, the default: FIFO with :meth:`append`) or
    ///     the last.
    /// :param dest_left: put it first in ``dest`` (``True``) or last (the default).
    /// :param block: with ``True``, an empty list is waited on, as :meth:`pop` does.
    /// :param timeout: with ``block=True``, seconds to wait at most (``None``: as long as it
    ///     takes).
    /// :returns: the moved value (a container as a proxy).
    /// :raises IndexError: this list is empty (with ``block=True``: still empty when
    ///     ``timeout`` passed).
    /// :raises TypeError: ``dest`` is not a ``persist.List``.
    /// :raises ValueError: ``dest`` belongs to another store, or ``timeout`` is negative or
    ///     NaN.
    /// :raises KeyboardInterrupt: Ctrl-C while waiting (nothing is moved then).
    #[pyo3(signature = (dest, *, left=true, dest_left=false, block=false, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn move_to<'py>(
        &self,
        py: Python<'py>,
        dest: &Bound<'py, PyAny>,
        left: bool,
        dest_left: bool,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let d = self.dest_list(dest)?;
        let to = Some((d, dest_left));
        let i = if left { 0 } else { -1 };
        self.take(py, i, block, timeout, to, "move from empty list")
    }

    /// The blocking forms with a cancel flag (the asyncio methods' worker threads run them):
    /// ``_take_wait(i, dest, dest_left, block, timeout, cancel)``: ``(value,)``, or ``None``
    /// when the list was empty (with ``block``: until cancelled or timed out).
    #[pyo3(signature = (i, dest, dest_left, block, timeout, cancel))]
    #[allow(clippy::too_many_arguments)]
    fn _take_wait<'py>(
        &self,
        py: Python<'py>,
        i: isize,
        dest: Option<&Bound<'py, PyAny>>,
        dest_left: bool,
        block: bool,
        timeout: Option<f64>,
        cancel: &Bound<'py, CancelFlag>,
    ) -> PyResult<Option<(Bound<'py, PyAny>,)>> {
        let to = match dest {
            Some(d) => Some((self.dest_list(d)?, dest_left)),
            None => None,
        };
        let t = super::store::timeout_arg(timeout)?;
        let flag = &cancel.get().flag;
        let got = self.take_once(py, i, block, t, to, Some(flag))?;
        Ok(got.map(|o| (o.into_bound(py),)))
    }

    /// Wakes this process's threads that wait for a list of this store to gain items (so a
    /// cancelled asyncio wait ends now).
    fn _wake_waiters(&self) {
        self.shared.wake_list_waiters()
    }

    /// Awaitable :meth:`pop`: ``await lst.pop_async(block=True)`` waits without blocking the
    /// event loop. See :meth:`popleft_async` for how it waits and what cancelling does.
    #[pyo3(
        signature = (*args, block=false, timeout=None),
        text_signature = "($self, i=-1, /, *, block=False, timeout=None)"
    )]
    fn pop_async<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let i: isize = match args.len() {
            0 => -1,
            1 => ssize_arg(&args.get_item(0)?)?,
            n => {
                return Err(PyTypeError::new_err(format!(
                    "pop_async expected at most 1 argument, got {n}"
                )))
            }
        };
        super::store::timeout_arg(timeout)?;
        ops(slf.py())?.getattr("list_take_async")?.call1((
            slf,
            i,
            slf.py().None(),
            false,
            block,
            timeout,
        ))
    }

    /// Awaitable :meth:`popleft`: ``await q.popleft_async(block=True)`` waits for an item
    /// without blocking the event loop.
    ///
    /// The wait runs in a worker thread of a pool that persist keeps for these waits (32
    /// threads: more waits at once, in one process, queue for a free thread).
    /// Cancelling the awaiting task ends the wait; an item the worker took at that very moment
    /// is put back at the front of the list (by :meth:`pop_async`: at the end), so a cancelled
    /// wait loses nothing.
    #[pyo3(signature = (*, block=false, timeout=None))]
    fn popleft_async<'py>(
        slf: &Bound<'py, Self>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        super::store::timeout_arg(timeout)?;
        ops(slf.py())?.getattr("list_take_async")?.call1((
            slf,
            0,
            slf.py().None(),
            false,
            block,
            timeout,
        ))
    }

    /// Awaitable :meth:`move_to`, waiting as :meth:`popleft_async` does. An item moved at
    /// the moment the awaiting task was cancelled stays in ``dest`` (where a consumer's
    /// in-progress list keeps it for its recoverer), and is never lost.
    #[pyo3(signature = (dest, *, left=true, dest_left=false, block=false, timeout=None))]
    fn move_to_async<'py>(
        slf: &Bound<'py, Self>,
        dest: &Bound<'py, PyAny>,
        left: bool,
        dest_left: bool,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.get().dest_list(dest)?;
        super::store::timeout_arg(timeout)?;
        let i: isize = if left { 0 } else { -1 };
        ops(slf.py())?
            .getattr("list_take_async")?
            .call1((slf, i, dest, dest_left, block, timeout))
    }

    /// Removes every item, as :meth:`list.clear`; one atomic change.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.write_in(&Gil(py), self.off, |st| {
            st.list_rebuild(self.off, &[]).map_err(map)
        })
    }

    /// Reverses the list in place, as :meth:`list.reverse`; one atomic change.
    fn reverse(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.write_in(&Gil(py), self.off, |st| {
            st.list_reverse(self.off).map_err(map)
        })
    }

    /// A plain shallow copy: a :class:`list` whose nested containers are still proxies.
    ///
    /// Unlike :meth:`list.copy`, the copy is not of the same type: it is an ordinary Python list,
    /// outside the store. ``copy.copy(l)`` gives the same; :meth:`to_python` copies deeply.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self._snapshot(py).map(|(l, _)| l.into_any())
    }

    /// (items as a plain list, version): the basis of check-then-act helpers.
    fn _snapshot<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyList>, u64)> {
        let shared = &self.shared;
        self.shared.read(&Gil(py), |st| {
            let ws = st.list_words(self.off).map_err(map)?;
            let v = st.version(self.off).map_err(map)?;
            Ok((words_to_list(py, st, shared, &ws)?, v))
        })
    }

    /// Reorders the list by `perm` (old indices) if it has not changed since `version`.
    fn _permute_if(&self, py: Python<'_>, version: u64, perm: Vec<u64>) -> PyResult<bool> {
        self.shared.write_in(&Gil(py), self.off, |st| {
            if st.version(self.off).map_err(map)? != version {
                return Ok(false);
            }
            if perm.len() as u64 != st.list_len(self.off).map_err(map)? {
                return Ok(false);
            }
            let plan: Vec<Item> = perm.iter().map(|&i| Item::Old(i)).collect();
            st.list_rebuild(self.off, &plan).map_err(map)?;
            Ok(true)
        })
    }

    /// Deletes item `i` if the list has not changed since `version`.
    fn _delete_if(&self, py: Python<'_>, version: u64, i: u64) -> PyResult<bool> {
        self.shared.write_in(&Gil(py), self.off, |st| {
            if st.version(self.off).map_err(map)? != version {
                return Ok(false);
            }
            st.list_splice(self.off, i, i + 1, &[]).map_err(map)?;
            Ok(true)
        })
    }

    fn __iter__(slf: Bound<'_, Self>) -> ListIter {
        ListIter {
            list: slf.unbind(),
            next: std::sync::atomic::AtomicU64::new(0),
            reverse: false,
        }
    }

    fn __reversed__(slf: Bound<'_, Self>) -> PyResult<ListIter> {
        let len = slf.get().__len__(slf.py())? as u64;
        Ok(ListIter {
            list: slf.unbind(),
            next: std::sync::atomic::AtomicU64::new(len),
            reverse: true,
        })
    }

    #[getter]
    fn _ident(&self) -> (u64, u64) {
        (self.shared.id(), self.off.get())
    }

    #[getter]
    fn _store(&self) -> StoreCore {
        StoreCore {
            shared: self.shared.clone(),
        }
    }

    /// Takes the store's exclusive lock for the calling thread and returns a guard.
    ///
    /// The lock covers the whole store, not only this container: while a thread holds it, every
    /// other thread's and process's operations on the store wait, reads included. It is reentrant
    /// in the holding thread. The changes made under it are committed by the outermost matching
    /// :meth:`unlock` (or the end of the ``with`` block); if the holder dies, exits or closes the
    /// store first, they are rolled back.
    ///
    /// Use it as a plain call followed by :meth:`unlock`, as the 2004 programs do, or as a context
    /// manager: ``with root.lockExcl(): ...`` gives the lock back at the block's end.
    ///
    /// :param timeout: seconds to wait at most; ``None`` (the default) waits as long as it takes.
    /// :returns: a :class:`~persist._persist.LockGuard` (the lock is already held when it returns).
    /// :raises persist.LockTimeout: the lock was not granted within ``timeout``.
    /// :raises RuntimeError: the thread holds only :meth:`lockShared` (there is no silent
    ///     upgrade).
    /// :raises persist.ReadOnlyError: the store was opened with ``readonly=True``.
    /// :raises ValueError: ``timeout`` is negative or NaN.
    /// :raises KeyboardInterrupt: Ctrl-C while waiting (nothing is held then).
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockExcl(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        super::store::lock_excl(&self.shared, py, timeout)?;
        Ok(LockGuard::taken(&self.shared, "excl"))
    }

    /// Takes the store's shared lock for the calling thread and returns a guard.
    ///
    /// Holders of the shared lock read together, in every process, and every change to the store
    /// (by any other thread or process) waits until they give it back: a consistent view across
    /// several reads. The holding thread cannot change the store either (:exc:`RuntimeError`).
    /// Reentrant, and allowed inside the thread's own :meth:`lockExcl`; give it back with
    /// :meth:`unlock` or use it as ``with root.lockShared(): ...``.
    ///
    /// :param timeout: seconds to wait at most; ``None`` (the default) waits as long as it takes.
    /// :returns: a :class:`~persist._persist.LockGuard` (the lock is already held when it returns).
    /// :raises persist.LockTimeout: the lock was not granted within ``timeout``.
    /// :raises persist.ReadOnlyError: the store was opened with ``readonly=True``.
    /// :raises ValueError: ``timeout`` is negative or NaN.
    /// :raises KeyboardInterrupt: Ctrl-C while waiting (nothing is held then).
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockShared(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        super::store::lock_shared(&self.shared, py, timeout)?;
        Ok(LockGuard::taken(&self.shared, "shared"))
    }

    /// Gives back one level of the calling thread's lock (:meth:`lockExcl` or :meth:`lockShared`).
    ///
    /// The outermost ``unlock()`` of a :meth:`lockExcl` section commits its changes and lets the
    /// other threads and processes in.
    ///
    /// :raises RuntimeError: the calling thread holds no lock on this store.
    fn unlock(&self, py: Python<'_>) -> PyResult<()> {
        super::store::unlock(&self.shared, py)
    }

    /// Awaitable :meth:`lockExcl`, as :meth:`persist.Dict.lockExcl_async`.
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockExcl_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        super::store::timeout_arg(timeout)?;
        ops(slf.py())?
            .getattr("AsyncLock")?
            .call1((slf, true, timeout))
    }

    /// Awaitable :meth:`lockShared`, as :meth:`persist.Dict.lockShared_async`.
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockShared_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        super::store::timeout_arg(timeout)?;
        ops(slf.py())?
            .getattr("AsyncLock")?
            .call1((slf, false, timeout))
    }

    // Everything that runs Python code lives in _ops.py.
    fn __contains__(slf: &Bound<'_, Self>, v: &Bound<'_, PyAny>) -> PyResult<bool> {
        ops(slf.py())?
            .getattr("list_contains")?
            .call1((slf, v))?
            .extract()
    }
    /// index(v[, start[, stop]])
    ///
    /// The index of the first item equal to ``v``, as :meth:`list.index`, optionally searched
    /// between ``start`` and ``stop``.
    ///
    /// Compares a snapshot of the list taken in one consistent read (comparisons are Python code
    /// and run with no lock held).
    ///
    /// :raises ValueError: no such item.
    #[pyo3(signature = (*args))]
    fn index<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_index")?.call1((slf, args))
    }
    /// How many items equal ``v``, as :meth:`list.count` (counted on a consistent snapshot).
    fn count<'py>(slf: &Bound<'py, Self>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_count")?.call1((slf, v))
    }
    /// Removes the first item equal to ``v``, as :meth:`list.remove`.
    ///
    /// The comparisons run on a snapshot with no lock held; the removal is made only if the list
    /// has not changed meanwhile, else the search starts again, so the item removed is always one
    /// that was equal to ``v`` at the moment it was removed.
    ///
    /// :raises ValueError: no item equals ``v``.
    fn remove<'py>(slf: &Bound<'py, Self>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_remove")?.call1((slf, v))
    }
    /// Sorts the list in place, stable, as :meth:`list.sort` (keyword arguments only).
    ///
    /// ``key`` and the comparisons run on a snapshot with no lock held; the new order is written in
    /// one atomic change if the list has not changed since the snapshot, else the sort starts again
    /// (up to 3 times).
    ///
    /// :raises ValueError: the list kept changing during the sort (by the key function itself, or
    ///     by other threads or processes in all 3 attempts).
    /// :raises TypeError: items that cannot be compared, as :meth:`list.sort`.
    #[pyo3(signature = (*, key=None, reverse=false))]
    fn sort<'py>(
        slf: &Bound<'py, Self>,
        key: Option<Bound<'py, PyAny>>,
        reverse: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("list_sort")?
            .call1((slf, key, reverse))
    }
    fn __repr__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_repr")?.call1((slf,))
    }
    fn __richcmp__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
        op: pyo3::basic::CompareOp,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("list_richcmp")?
            .call1((slf, other, op as i32))
    }
    fn __add__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_add")?.call1((slf, other))
    }
    fn __radd__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_radd")?.call1((slf, other))
    }
    fn __mul__<'py>(slf: &Bound<'py, Self>, n: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_mul")?.call1((slf, n))
    }
    fn __rmul__<'py>(slf: &Bound<'py, Self>, n: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_mul")?.call1((slf, n))
    }
    fn __imul__<'py>(slf: &Bound<'py, Self>, n: &Bound<'py, PyAny>) -> PyResult<()> {
        ops(slf.py())?.getattr("list_imul")?.call1((slf, n))?;
        Ok(())
    }
    /// A plain deep copy: a :class:`list`, with plain lists and dicts all the way down (stored
    /// objects become plain dicts of their attributes).
    ///
    /// Shared references and cycles are kept, as :func:`copy.deepcopy` keeps them;
    /// ``copy.deepcopy`` of a proxy gives the same. The store is not changed. Nesting of any
    /// depth is copied without recursion.
    fn to_python<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("to_python")?.call1((slf,))
    }
    /// ``copy.copy(l)``: a plain shallow copy (a :class:`list` whose nested containers stay
    /// proxies), as :meth:`copy`.
    fn __copy__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.copy(py)
    }
    /// ``copy.deepcopy(l)``: a plain deep copy, as :meth:`to_python` (the store is not copied).
    fn __deepcopy__<'py>(
        slf: &Bound<'py, Self>,
        _memo: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("to_python")?.call1((slf,))
    }
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "persist.List cannot be pickled (use to_python() for a plain copy)",
        ))
    }
}

/// An index argument as list's subscripts take it (IndexError when it does not fit).
fn index_arg(i: &Bound<'_, PyAny>, what: &str) -> PyResult<isize> {
    match i.call_method0("__index__") {
        Ok(v) => v
            .extract::<isize>()
            .map_err(|_| PyIndexError::new_err("cannot fit 'int' into an index-sized integer")),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what} indices must be integers or slices, not {}",
            i.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))),
    }
}

/// An index argument as list.pop and list.insert take it (OverflowError when it does not fit).
fn ssize_arg(i: &Bound<'_, PyAny>) -> PyResult<isize> {
    match i.call_method0("__index__") {
        Ok(v) => v.extract::<isize>().map_err(|_| {
            pyo3::exceptions::PyOverflowError::new_err(
                "Python int too large to convert to C ssize_t",
            )
        }),
        Err(_) => Err(PyTypeError::new_err(format!(
            "'{}' object cannot be interpreted as an integer",
            i.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))),
    }
}

/// The iterator of a :class:`persist.List`: walks it by index, as a list's iterator does (items
/// appended meanwhile are reached; a list that shrinks ends the walk early).
#[pyclass(module = "persist", frozen)]
pub(crate) struct ListIter {
    list: Py<List>,
    next: std::sync::atomic::AtomicU64,
    reverse: bool,
}

#[pymethods]
impl ListIter {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        use std::sync::atomic::Ordering::Relaxed;
        let l = self.list.get();
        let shared = l.shared.clone();
        let i = self.next.load(Relaxed);
        if self.reverse {
            if i == 0 || i == u64::MAX {
                return Ok(None);
            }
            let r = l.shared.read(&Gil(py), |st| {
                match st.list_get(l.off, i - 1).map_err(map)? {
                    Some(w) => Ok(Some(to_py(py, st, &shared, w)?)),
                    None => Ok(None),
                }
            })?;
            self.next
                .store(if r.is_some() { i - 1 } else { 0 }, Relaxed);
            return Ok(r);
        }
        if i == u64::MAX {
            return Ok(None);
        }
        let r = l
            .shared
            .read(&Gil(py), |st| match st.list_get(l.off, i).map_err(map)? {
                Some(w) => Ok(Some(to_py(py, st, &shared, w)?)),
                None => Ok(None),
            })?;
        self.next
            .store(if r.is_some() { i + 1 } else { u64::MAX }, Relaxed);
        Ok(r)
    }
}

// ---- Dict ---------------------------------------------------------------------------------

/// A value to store: its inline word, or the tree to encode.
enum Value<'py> {
    Word(u64),
    Tree(object::tree::Tree<'py>),
}

/// A dict in a store: behaves like :class:`dict`, and every change goes to the store.
///
/// Not made directly: a store's root is one (:func:`persist.root`, :attr:`persist.Store.root`),
/// and storing a :class:`dict` (``root['d'] = {'a': 1}``) copies it into the store; reading it
/// back gives a ``persist.Dict``, a proxy of the stored dict. It has every method and operator
/// of :class:`dict` (insertion order, live views, ``|`` and ``|=``), with the same exceptions,
/// and is a registered :class:`collections.abc.MutableMapping`.
///
/// Where it differs from :class:`dict`:
///
/// * Keys are storable immutable values: None, bool, int, float, str, bytes and tuples of
///   these (``1``, ``1.0`` and ``True`` are one key, as in Python). Values are stored by value,
///   as :class:`List` stores them; a proxy of the same store is stored as a reference.
/// * Every single call is atomic for all threads and processes (:meth:`update` and
///   :meth:`setdefault` included); several calls that must be seen together need
///   :meth:`lockExcl` or :meth:`persist.Store.transaction`.
/// * Iterating raises :exc:`RuntimeError` if the size changes meanwhile, whichever process
///   changed it.
/// * :meth:`copy` gives a new ``persist.Dict`` in the same store; ``copy.copy``, ``|`` and
///   :meth:`to_python` give plain dicts. Proxies are unhashable and cannot be pickled.
/// * :meth:`has_key` is kept for the 2004 programs.
///
/// Every method raises :exc:`persist.ClosedError` once the store is closed; every change raises
/// :exc:`persist.ReadOnlyError` in a store opened with ``readonly=True``,
/// :exc:`persist.StoreFullError` when the store cannot grow (nothing is changed then) and
/// :exc:`TypeError` naming the type of a value it cannot store (nothing is changed then
/// either); a damaged store raises :exc:`persist.CorruptionError`.
#[pyclass(module = "persist", name = "Dict", frozen, weakref, mapping)]
pub(crate) struct Dict {
    pub shared: Arc<Shared>,
    pub off: Container,
    /// The entry index of the last key looked up (`root[k] += 1` finds `k` twice): a hint,
    /// checked against the table before use. Relaxed: a stale hint only costs a probe.
    hint: AtomicU64,
}

impl Drop for Dict {
    fn drop(&mut self) {
        self.shared.release(self.off);
    }
}

fn key_error(k: &Bound<'_, PyAny>) -> PyErr {
    // The key as the one argument (a tuple key must not become the arguments).
    PyKeyError::new_err((k.clone().unbind(),))
}

#[pymethods]
impl Dict {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn py_new(
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Self> {
        Err(PyTypeError::new_err(
            "persist.Dict objects are made by storing a dict: root['k'] = {...}",
        ))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self
            .shared
            .read(&Gil(py), |st| st.dict_len(self.off).map_err(map))? as usize)
    }

    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.__len__(py)? > 0)
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.lookup(py, k)? {
            Some(v) => Ok(v),
            None => Err(key_error(k)),
        }
    }

    /// ``self[k]`` if ``k`` is in the dict, else ``default``, as :meth:`dict.get`.
    ///
    /// A key that cannot be stored (a list, a set...) is simply not there: the default is returned.
    #[pyo3(signature = (k, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.lookup(py, k)? {
            Some(v) => v,
            None => default.unwrap_or_else(|| py.None().into_bound(py)),
        })
    }

    fn __contains__(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Some(kt) = key_arg(k)? else {
            return Ok(false);
        };
        let key = kt.key().map_err(map)?;
        self.shared.read(&Gil(py), |st| {
            Ok(st
                .dict_get(self.off, &key, &mut NO_HINT.clone())
                .map_err(map)?
                .is_some())
        })
    }

    /// ``k in self``: kept from Python 2 for the 2004 programs
    /// (``if not root.has_key('Joe'): ...``).
    fn has_key(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.__contains__(py, k)
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        k: &Bound<'_, PyAny>,
        v: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let mut keep = Keep::default();
        let kt = match key_arg(k)? {
            Some(t) => t,
            None => return Err(unstorable_key(k)),
        };
        let key = kt.key().map_err(map)?;
        // A small value (the counter's int) is its word: no tree, nothing to allocate or bind.
        let value = match inline_word(v) {
            Some(w) => Value::Word(w),
            None => Value::Tree(to_tree(v, &self.shared, &mut keep)?),
        };
        // The entry index last found (both closures below look the key up).
        let hint = std::cell::Cell::new(self.hint.load(Ordering::Relaxed));
        let set = |st: &mut object::Store| {
            let w = match &value {
                Value::Word(w) => *w,
                Value::Tree(vt) => {
                    let w = st.encode(vt).map_err(map)?;
                    keep.bind(py, st, &self.shared)?;
                    w
                }
            };
            let mut h = hint.get();
            st.dict_set(self.off, &key, w, &mut h).map_err(map)?;
            hint.set(h);
            Ok(())
        };
        match &value {
            Value::Word(w) => {
                let w = *w;
                // A new inline value for an existing key whose value is inline too, or a block
                // with no references (freed after): one CAS (a publication); for a missing key,
                // an insert under the dict's insert claim (a publication too); else a change on
                // the dict's part (store-wide if the old value is a container).
                let publish = |st: &mut object::Store| {
                    let mut h = hint.get();
                    let mut r = st.publish_dict_value(self.off, &key, &mut h, |_| Some((w, ())));
                    if matches!(r, Ok(None)) {
                        r = st
                            .publish_dict_insert(self.off, &key, &mut h, object::Inserted::Word(w))
                            .map(|inserted| inserted.then_some(()));
                    }
                    hint.set(h);
                    r.map_err(map)
                };
                self.shared
                    .publish_or_write_in(&Gil(py), self.off, publish, set)?;
            }
            // A scalar touches this dict alone (unless the old value is a container: then it
            // runs store-wide after all): for a missing key whose key needs no block of its
            // own, an insert without a lock; for a present one whose value holds no
            // references, its block written and swapped in without a lock; else a change on
            // the dict's part.
            Value::Tree(vt) => match vt.as_scalar() {
                Some(node) => {
                    let publish = |st: &mut object::Store| {
                        let mut h = hint.get();
                        let mut r = st.publish_dict_insert(
                            self.off,
                            &key,
                            &mut h,
                            object::Inserted::Scalar(node),
                        );
                        if matches!(r, Ok(false)) {
                            r = st.publish_dict_replace(self.off, &key, &mut h, node);
                        }
                        hint.set(h);
                        r.map(|done| done.then_some(())).map_err(map)
                    };
                    self.shared
                        .publish_or_write_in(&Gil(py), self.off, publish, set)?;
                }
                // A container: its new blocks are written on the dict's part, which no other
                // container's change needs (store-wide if it refers to a stored container, or
                // replaces one that another reference reaches).
                None => {
                    let set_tree = |st: &mut object::Store| {
                        let mut h = hint.get();
                        st.dict_set_encoded(self.off, &key, &mut h, |st| {
                            let w = st.encode(vt).map_err(map)?;
                            keep.bind(py, st, &self.shared)?;
                            Ok::<u64, PyErr>(w)
                        })?;
                        hint.set(h);
                        Ok(())
                    };
                    self.shared.write_in(&Gil(py), self.off, set_tree)?
                }
            },
        }
        self.hint.store(hint.get(), Ordering::Relaxed);
        Ok(())
    }

    fn __delitem__(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(kt) = key_arg(k)? else {
            return Err(key_error(k));
        };
        let key = kt.key().map_err(map)?;
        // A key and value that are inline words: a delete without a lock; else on the dict's
        // part lock (store-wide if the value is a container).
        let publish = |st: &mut object::Store| match st.publish_dict_delete(self.off, &key) {
            Ok(Some(Some(_))) => Ok(Some(())),
            Ok(Some(None)) => Err(key_error(k)),
            Ok(None) => Ok(None),
            Err(e) => Err(map(e)),
        };
        let del = |st: &mut object::Store| match st.dict_del(self.off, &key).map_err(map)? {
            Some(_) => Ok(()),
            None => Err(key_error(k)),
        };
        self.shared
            .publish_or_write_in(&Gil(py), self.off, publish, del)
    }

    /// pop(k[, default])
    ///
    /// Removes ``k`` and returns its value, as :meth:`dict.pop`; ``default`` if ``k`` is missing.
    ///
    /// A removed container comes back as a proxy, which keeps it alive in the store until the proxy
    /// is dropped (or stored somewhere again).
    ///
    /// :raises KeyError: ``k`` is missing and no default was given.
    #[pyo3(signature = (k, *default))]
    fn pop<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        default: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
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
        // As dict.pop: an empty dict answers without hashing the key.
        if self.__len__(py)? == 0 {
            return missing();
        }
        let Some(kt) = key_arg(k)? else {
            return missing();
        };
        let shared = &self.shared;
        let key = kt.key().map_err(map)?;
        // A key and value that are inline words: a delete without a lock; else on the dict's
        // part (a container comes back held, on the orphan list).
        let publish =
            |st: &mut object::Store| match st.publish_dict_delete(self.off, &key).map_err(map)? {
                Some(Some(vw)) => Ok(Some(Some(to_py(py, st, shared, vw)?))),
                Some(None) => Ok(Some(None)),
                None => Ok(None),
            };
        let pop = |st: &mut object::Store| match st.dict_del(self.off, &key).map_err(map)? {
            Some((_, vw)) => Ok(Some(to_py(py, st, shared, vw)?)),
            None => Ok(None),
        };
        let r = self
            .shared
            .publish_or_write_in(&Gil(py), self.off, publish, pop)?;
        match r {
            Some(v) => Ok(v),
            None => missing(),
        }
    }

    /// Removes and returns the last inserted ``(key, value)`` pair, as :meth:`dict.popitem`.
    ///
    /// :raises KeyError: the dict is empty.
    fn popitem<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shared = &self.shared;
        // One dict alone: on its part, as `pop` (the value returned is held inside the change).
        self.shared.write_in(&Gil(py), self.off, |st| {
            match st.dict_popitem(self.off).map_err(map)? {
                Some((kw, vw)) => {
                    let k = to_py(py, st, shared, kw)?;
                    let v = to_py(py, st, shared, vw)?;
                    Ok(PyTuple::new(py, [k, v])?.into_any())
                }
                None => Err(PyKeyError::new_err("popitem(): dictionary is empty")),
            }
        })
    }

    /// ``self[k]`` if ``k`` is in the dict; else stores ``default`` under ``k`` and returns it, as
    /// :meth:`dict.setdefault`. The look-up and the store are one atomic change: two processes that
    /// race on a missing key both get the value that one of them stored.
    ///
    /// :raises TypeError: ``k`` or ``default`` is not storable.
    #[pyo3(signature = (k, default=None))]
    fn setdefault<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        let Some(kt) = key_arg(k)? else {
            return Err(unstorable_key(k));
        };
        let mut keep = Keep::default();
        let vt = to_tree(&default, &self.shared, &mut keep)?;
        let shared = &self.shared;
        let key = kt.key().map_err(map)?;
        // One dict alone: on its part (store-wide if the default refers to a stored
        // container). The value returned is held inside the change: a drop of it needs this
        // dict's part, or runs store-wide, and neither runs beside it.
        self.shared.write_in(&Gil(py), self.off, |st| {
            let mut hint = NO_HINT;
            if let Some(w) = st.dict_get(self.off, &key, &mut hint).map_err(map)? {
                return to_py(py, st, shared, w);
            }
            let w = st.encode(&vt).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            st.dict_set(self.off, &key, w, &mut hint).map_err(map)?;
            to_py(py, st, shared, w)
        })
    }

    /// Adds ``by`` to the number under ``k`` and returns the new value, in one atomic change:
    /// ``self[k] = self.get(k, default) + by``, with no update lost between processes and
    /// without :meth:`lockExcl`. A missing ``k`` is set to ``default + by``.
    ///
    /// ``by``, ``default`` and the stored value are numbers: int of any size (a bool counts as
    /// an int, as in ``True + 1``), float or :class:`decimal.Decimal`, and the result is what
    /// Python's ``+`` gives (``1 + 0.5`` is ``1.5``; a Decimal rounds to the calling thread's
    /// context). A small int plus a small int is one word written in place; a process killed
    /// during the call leaves the old value or the new one, never anything else.
    ///
    /// :raises TypeError: ``by``, the stored value or (for a missing ``k``) ``default`` is not a
    ///     number, or Python's ``+`` refuses the pair (Decimal and float); the dict is unchanged.
    /// :raises persist.ReadOnlyError: the store was opened with ``readonly=True``.
    #[pyo3(signature = (k, by=Arg::Int(1), default=Arg::Int(0)), text_signature = "($self, k, by=1, default=0)")]
    fn incr<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        by: Arg<'py>,
        default: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.counter(py, k, by, default, false)
    }

    /// Subtracts ``by`` from the number under ``k`` and returns the new value, in one atomic
    /// change: ``self[k] = self.get(k, default) - by`` (``incr(k, -by, default)``), as
    /// :meth:`incr` in everything else.
    ///
    /// :raises TypeError: as :meth:`incr`; the dict is unchanged.
    /// :raises persist.ReadOnlyError: the store was opened with ``readonly=True``.
    #[pyo3(signature = (k, by=Arg::Int(1), default=Arg::Int(0)), text_signature = "($self, k, by=1, default=0)")]
    fn decr<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        by: Arg<'py>,
        default: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.counter(py, k, by, default, true)
    }

    /// Sets every (key, value) of `pairs` (a list of 2-tuples) in one change.
    fn _update_pairs(&self, py: Python<'_>, pairs: &Bound<'_, PyList>) -> PyResult<()> {
        // As a dict node: keys and values alternate; key equality is checked per pair below.
        let mut keep = Keep::default();
        let mut keys = Vec::with_capacity(pairs.len());
        let flat = PyList::empty(py);
        for p in pairs.iter() {
            let p = p.cast::<PyTuple>()?;
            let k = p.get_item(0)?;
            let Some(kt) = key_arg(&k)? else {
                return Err(unstorable_key(&k));
            };
            keys.push(kt);
            flat.append(p.get_item(1)?)?;
        }
        let mut hashed = Vec::with_capacity(keys.len());
        for kt in &keys {
            hashed.push(kt.key().map_err(map)?);
        }
        let vt = to_tree(flat.as_any(), &self.shared, &mut keep)?;
        // One dict alone: on its part (store-wide if a value refers to a stored container, or
        // a value replaced is a container that another reference reaches).
        self.shared.write_in(&Gil(py), self.off, |st| {
            let ws = st.encode_items(&vt).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            for (key, w) in hashed.iter().zip(ws) {
                st.dict_set(self.off, key, w, &mut NO_HINT.clone())
                    .map_err(map)?;
            }
            Ok(())
        })
    }

    /// Removes every entry, as :meth:`dict.clear`; one atomic change.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.write_in(&Gil(py), self.off, |st| {
            st.dict_clear(self.off).map_err(map)
        })
    }

    /// (keys, values, version) as plain lists: the basis of the Python helpers.
    fn _snapshot<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>, u64)> {
        let shared = &self.shared;
        self.shared.read(&Gil(py), |st| {
            let items = st.dict_items(self.off).map_err(map)?;
            let v = st.version(self.off).map_err(map)?;
            let ks: Vec<u64> = items.iter().map(|p| p.0).collect();
            let vs: Vec<u64> = items.iter().map(|p| p.1).collect();
            Ok((
                words_to_list(py, st, shared, &ks)?,
                words_to_list(py, st, shared, &vs)?,
                v,
            ))
        })
    }

    /// The live entry at or after `pos`: (next pos, key, value, len) or None.
    fn _next<'py>(
        &self,
        py: Python<'py>,
        pos: u64,
        want: u8,
    ) -> PyResult<Option<(u64, Bound<'py, PyAny>, u64)>> {
        let shared = &self.shared;
        self.shared.read(&Gil(py), |st| {
            let len = st.dict_len(self.off).map_err(map)?;
            match st.dict_next(self.off, pos).map_err(map)? {
                None => Ok(None),
                Some((e, kw, vw)) => {
                    let o = match want {
                        0 => to_py(py, st, shared, kw)?,
                        1 => to_py(py, st, shared, vw)?,
                        _ => PyTuple::new(
                            py,
                            [to_py(py, st, shared, kw)?, to_py(py, st, shared, vw)?],
                        )?
                        .into_any(),
                    };
                    Ok(Some((e + 1, o, len)))
                }
            }
        })
    }

    /// The class name stored with a user object (None for a plain dict).
    fn _class_name<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let shared = &self.shared;
        self.shared.read(&Gil(py), |st| {
            if st.block_kind(self.off).map_err(map)? != Some(Kind::Object) {
                return Ok(None);
            }
            let cw = st.object_class(self.off).map_err(map)?;
            Ok(Some(to_py(py, st, shared, cw)?))
        })
    }

    #[getter]
    fn _ident(&self) -> (u64, u64) {
        (self.shared.id(), self.off.get())
    }

    #[getter]
    fn _store(&self) -> StoreCore {
        StoreCore {
            shared: self.shared.clone(),
        }
    }

    /// Takes the store's exclusive lock for the calling thread and returns a guard.
    ///
    /// The lock covers the whole store, not only this container: while a thread holds it, every
    /// other thread's and process's operations on the store wait, reads included. It is reentrant
    /// in the holding thread. The changes made under it are committed by the outermost matching
    /// :meth:`unlock` (or the end of the ``with`` block); if the holder dies, exits or closes the
    /// store first, they are rolled back.
    ///
    /// Use it as a plain call followed by :meth:`unlock`, as the 2004 programs do, or as a context
    /// manager: ``with root.lockExcl(): ...`` gives the lock back at the block's end.
    ///
    /// :param timeout: seconds to wait at most; ``None`` (the default) waits as long as it takes.
    /// :returns: a :class:`~persist._persist.LockGuard` (the lock is already held when it returns).
    /// :raises persist.LockTimeout: the lock was not granted within ``timeout``.
    /// :raises RuntimeError: the thread holds only :meth:`lockShared` (there is no silent
    ///     upgrade).
    /// :raises persist.ReadOnlyError: the store was opened with ``readonly=True``.
    /// :raises ValueError: ``timeout`` is negative or NaN.
    /// :raises KeyboardInterrupt: Ctrl-C while waiting (nothing is held then).
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockExcl(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        super::store::lock_excl(&self.shared, py, timeout)?;
        Ok(LockGuard::taken(&self.shared, "excl"))
    }

    /// Takes the store's shared lock for the calling thread and returns a guard.
    ///
    /// Holders of the shared lock read together, in every process, and every change to the store
    /// (by any other thread or process) waits until they give it back: a consistent view across
    /// several reads. The holding thread cannot change the store either (:exc:`RuntimeError`).
    /// Reentrant, and allowed inside the thread's own :meth:`lockExcl`; give it back with
    /// :meth:`unlock` or use it as ``with root.lockShared(): ...``.
    ///
    /// :param timeout: seconds to wait at most; ``None`` (the default) waits as long as it takes.
    /// :returns: a :class:`~persist._persist.LockGuard` (the lock is already held when it returns).
    /// :raises persist.LockTimeout: the lock was not granted within ``timeout``.
    /// :raises persist.ReadOnlyError: the store was opened with ``readonly=True``.
    /// :raises ValueError: ``timeout`` is negative or NaN.
    /// :raises KeyboardInterrupt: Ctrl-C while waiting (nothing is held then).
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockShared(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        super::store::lock_shared(&self.shared, py, timeout)?;
        Ok(LockGuard::taken(&self.shared, "shared"))
    }

    /// Gives back one level of the calling thread's lock (:meth:`lockExcl` or :meth:`lockShared`).
    ///
    /// The outermost ``unlock()`` of a :meth:`lockExcl` section commits its changes and lets the
    /// other threads and processes in.
    ///
    /// :raises RuntimeError: the calling thread holds no lock on this store.
    fn unlock(&self, py: Python<'_>) -> PyResult<()> {
        super::store::unlock(&self.shared, py)
    }

    /// Awaitable :meth:`lockExcl`: ``guard = await root.lockExcl_async()`` takes the store's
    /// exclusive lock without blocking the event loop (the wait runs in one of persist's worker
    /// threads), and ``async with root.lockExcl_async(): ...`` gives it back at the block's end.
    ///
    /// The lock then belongs to the event loop's thread, as :meth:`lockExcl` belongs to the
    /// calling thread: the other tasks of that loop run inside the section too (their changes
    /// are part of it), and a task of the same loop that awaits the lock again while it is
    /// held gets it at once (reentrant). Cancelling the awaiting task ends the wait; a lock
    /// taken at that very moment is given back.
    ///
    /// :param timeout: seconds to wait at most; ``None`` (the default) waits as long as it takes.
    /// :returns: an awaitable (giving a :class:`~persist._persist.LockGuard`) and async
    ///     context manager.
    /// :raises persist.LockTimeout: the lock was not granted within ``timeout``.
    /// :raises persist.ReadOnlyError: the store was opened with ``readonly=True``.
    /// :raises ValueError: ``timeout`` is negative or NaN.
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockExcl_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        super::store::timeout_arg(timeout)?;
        ops(slf.py())?
            .getattr("AsyncLock")?
            .call1((slf, true, timeout))
    }

    /// Awaitable :meth:`lockShared`, as :meth:`lockExcl_async` is for :meth:`lockExcl`.
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockShared_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        super::store::timeout_arg(timeout)?;
        ops(slf.py())?
            .getattr("AsyncLock")?
            .call1((slf, false, timeout))
    }

    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("DictIter")?.call1((slf, 0))
    }
    fn __reversed__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("dict_reversed")?.call1((slf,))
    }
    /// A live view of the keys, as :meth:`dict.keys` (a :class:`collections.abc.KeysView`).
    ///
    /// Iterating it raises :exc:`RuntimeError` if the dict's size changes meanwhile, by any thread
    /// or process.
    fn keys<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("KeysView")?.call1((slf,))
    }
    /// A live view of the values, as :meth:`dict.values` (a :class:`collections.abc.ValuesView`).
    fn values<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("ValuesView")?.call1((slf,))
    }
    /// A live view of the ``(key, value)`` pairs, as :meth:`dict.items` (a
    /// :class:`collections.abc.ItemsView`).
    fn items<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("ItemsView")?.call1((slf,))
    }
    /// update([other], **kwargs)
    ///
    /// Sets every pair of ``other`` (a mapping, or an iterable of ``(key, value)`` pairs) and of
    /// ``kwargs``, as :meth:`dict.update`, in one atomic change.
    ///
    /// ``other`` is read first, with no lock held. If any key or value cannot be stored, nothing
    /// changes.
    ///
    /// :raises TypeError: a key or value is not storable, or ``other`` is not a mapping or pairs.
    /// :raises ValueError: an element of ``other`` is not a pair.
    #[pyo3(signature = (*args, **kwargs))]
    fn update<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, pyo3::types::PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("dict_update")?
            .call1((slf, args, kwargs))
    }
    /// A plain :class:`dict` with every item of ``iterable`` as a key, each mapped to ``value``.
    ///
    /// Unlike :meth:`dict.fromkeys`, the result is not of this type: a class method has no store
    /// to make a :class:`persist.Dict` in. Store it to persist it:
    /// ``root['seen'] = persist.Dict.fromkeys(names, False)``.
    #[classmethod]
    #[pyo3(signature = (iterable, value=None, /))]
    fn fromkeys<'py>(
        cls: &Bound<'py, pyo3::types::PyType>,
        iterable: &Bound<'py, PyAny>,
        value: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let py = cls.py();
        let value = value.unwrap_or_else(|| py.None().into_bound(py));
        let d = pyo3::types::PyDict::new(py);
        for k in iterable.try_iter()? {
            d.set_item(k?, &value)?;
        }
        Ok(d)
    }

    /// A shallow copy in the same store: a new :class:`persist.Dict`, linked nowhere until it is
    /// stored (nested containers are shared with this dict, as :meth:`dict.copy` shares them).
    ///
    /// Unlike ``copy.copy(d)``, which gives a plain :class:`dict`, and :meth:`to_python`, which
    /// gives a plain deep copy.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (ks, vs, _) = self._snapshot(py)?;
        let plain = pyo3::types::PyDict::new(py);
        for (k, v) in ks.iter().zip(vs.iter()) {
            plain.set_item(k, v)?;
        }
        let mut keep = Keep::default();
        let t = to_tree(plain.as_any(), &self.shared, &mut keep)?;
        let shared = &self.shared;
        self.shared.write(&Gil(py), |st| {
            let c = st.create_unlinked(&t).map_err(map)?;
            new_dict(py, st, shared, c)
        })
    }
    fn __repr__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("dict_repr")?.call1((slf,))
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
    /// A plain deep copy: a :class:`dict`, with plain lists and dicts all the way down (stored
    /// objects become plain dicts of their attributes).
    ///
    /// Shared references and cycles are kept, as :func:`copy.deepcopy` keeps them;
    /// ``copy.deepcopy`` of a proxy gives the same. The store is not changed. Nesting of any
    /// depth is copied without recursion.
    fn to_python<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("to_python")?.call1((slf,))
    }
    /// ``copy.copy(d)``: a plain shallow copy (a :class:`dict` whose nested containers stay
    /// proxies).
    fn __copy__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("dict_copy")?.call1((slf,))
    }
    /// ``copy.deepcopy(d)``: a plain deep copy, as :meth:`to_python` (the store is not copied).
    fn __deepcopy__<'py>(
        slf: &Bound<'py, Self>,
        _memo: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("to_python")?.call1((slf,))
    }
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "persist.Dict cannot be pickled (use to_python() for a plain copy)",
        ))
    }
}

impl Dict {
    /// `incr` (`sub` false) and `decr` (incr.rs).
    fn counter<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        by: Arg<'py>,
        default: Arg<'py>,
        sub: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(kt) = key_arg(k)? else {
            return Err(unstorable_key(k));
        };
        let key = kt.key().map_err(map)?;
        super::incr::step(
            py,
            &self.shared,
            self.off,
            &self.hint,
            &key,
            &by,
            &default,
            sub,
        )
    }

    fn lookup<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(kt) = key_arg(k)? else {
            return Ok(None);
        };
        let key = kt.key().map_err(map)?;
        let shared = &self.shared;
        let mut hint = self.hint.load(Ordering::Relaxed);
        let v = self.shared.read(&Gil(py), |st| {
            match st.dict_get(self.off, &key, &mut hint).map_err(map)? {
                Some(w) => Ok(Some(to_py(py, st, shared, w)?)),
                None => Ok(None),
            }
        })?;
        self.hint.store(hint, Ordering::Relaxed);
        Ok(v)
    }
}
