//! persist.List and persist.Dict: proxies of containers in a store.
//!
//! A proxy is (store, [`Container`]): the object layer's typed container offset, which only
//! the object layer makes (from a decoded value, the root, or a new container), so a proxy can
//! never be pointed at a value word. While it lives, its container is in this process's held
//! set, so no process frees it. The hot methods are here; the ones that run Python code
//! (comparisons, sort keys, repr, views) are in python/persist/_ops.py, on top of the
//! primitives below, and call back in with check-then-act primitives (`_*_if(version, ...)`),
//! so no lock is held while Python code runs.

use super::convert::{inline_word, key_arg, to_py, to_tree, Keep};
use super::errors;
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

/// If `o` is a proxy (List, Dict, or a bound pbase object), its container and whether it
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

/// A list in a store: behaves like `list`, changes go to the store.
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

    /// As list.__init__: replaces the contents with `iterable`'s items, in one change.
    #[pyo3(signature = (iterable=None))]
    fn __init__(&self, py: Python<'_>, iterable: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let mut keep = Keep::default();
        let empty = PyTuple::empty(py);
        let values = iterable.unwrap_or(empty.as_any());
        let t = self.tree_items(py, values, &mut keep)?;
        self.shared.write(&Gil(py), |st| {
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
            return self.shared.write(&Gil(py), |st| {
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
        self.shared.write(&Gil(py), |st| {
            let len = st.list_len(self.off).map_err(map)?;
            let j = index(i, len, "list assignment")?;
            let w = st.encode(&t).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            st.list_set(self.off, j, w).map_err(map)
        })
    }

    fn __delitem__(&self, py: Python<'_>, i: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(s) = i.cast::<PySlice>() {
            return self.shared.write(&Gil(py), |st| {
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
        self.shared.write(&Gil(py), |st| {
            let len = st.list_len(self.off).map_err(map)?;
            let j = index(i, len, "list assignment")?;
            st.list_splice(self.off, j, j + 1, &[]).map_err(map)?;
            Ok(())
        })
    }

    fn append(&self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut keep = Keep::default();
        let t = to_tree(v, &self.shared, &mut keep)?;
        self.shared.write(&Gil(py), |st| {
            let w = st.encode(&t).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            st.list_append(self.off, w).map_err(map)
        })
    }

    fn extend(&self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut keep = Keep::default();
        let t = self.tree_items(py, values, &mut keep)?;
        self.shared.write(&Gil(py), |st| {
            let ws = st.encode_items(&t).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            st.list_extend(self.off, &ws).map_err(map)
        })
    }

    fn __iadd__(&self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        self.extend(py, values)
    }

    fn insert(&self, py: Python<'_>, i: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let i: isize = ssize_arg(i)?;
        let mut keep = Keep::default();
        let t = to_tree(v, &self.shared, &mut keep)?;
        self.shared.write(&Gil(py), |st| {
            let len = st.list_len(self.off).map_err(map)? as isize;
            let j = if i < 0 { (i + len).max(0) } else { i.min(len) } as u64;
            let w = st.encode(&t).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            st.list_splice(self.off, j, j, &[w]).map_err(map)?;
            Ok(())
        })
    }

    // As list.pop(index=-1, /): positional, and None is not an index (a default of None
    // would accept it and show the wrong signature).
    #[pyo3(signature = (*args), text_signature = "($self, i=-1, /)")]
    fn pop<'py>(&self, py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
        let i: isize = match args.len() {
            0 => -1,
            1 => ssize_arg(&args.get_item(0)?)?,
            n => {
                return Err(PyTypeError::new_err(format!(
                    "pop expected at most 1 argument, got {n}"
                )))
            }
        };
        let shared = &self.shared;
        self.shared.write(&Gil(py), |st| {
            let len = st.list_len(self.off).map_err(map)?;
            if len == 0 {
                return Err(PyIndexError::new_err("pop from empty list"));
            }
            let j = index(i, len, "pop")?;
            let removed = st.list_splice(self.off, j, j + 1, &[]).map_err(map)?;
            // Decode before the op commits (the value is released then).
            to_py(py, st, shared, removed[0])
        })
    }

    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.shared
            .write(&Gil(py), |st| st.list_rebuild(self.off, &[]).map_err(map))
    }

    fn reverse(&self, py: Python<'_>) -> PyResult<()> {
        self.shared
            .write(&Gil(py), |st| st.list_reverse(self.off).map_err(map))
    }

    /// A plain shallow copy (nested containers stay proxies).
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
        self.shared.write(&Gil(py), |st| {
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
        self.shared.write(&Gil(py), |st| {
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

    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockExcl(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        super::store::lock_excl(&self.shared, py, timeout)?;
        Ok(LockGuard::taken(&self.shared, "excl"))
    }

    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockShared(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        super::store::lock_shared(&self.shared, py, timeout)?;
        Ok(LockGuard::taken(&self.shared, "shared"))
    }

    fn unlock(&self, py: Python<'_>) -> PyResult<()> {
        super::store::unlock(&self.shared, py)
    }

    // Everything that runs Python code lives in _ops.py.
    fn __contains__(slf: &Bound<'_, Self>, v: &Bound<'_, PyAny>) -> PyResult<bool> {
        ops(slf.py())?
            .getattr("list_contains")?
            .call1((slf, v))?
            .extract()
    }
    #[pyo3(signature = (*args))]
    fn index<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_index")?.call1((slf, args))
    }
    fn count<'py>(slf: &Bound<'py, Self>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_count")?.call1((slf, v))
    }
    fn remove<'py>(slf: &Bound<'py, Self>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("list_remove")?.call1((slf, v))
    }
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
    fn to_python<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("to_python")?.call1((slf,))
    }
    /// `copy.copy`: a plain shallow copy (a `list`), as `copy()`.
    fn __copy__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.copy(py)
    }
    /// `copy.deepcopy`: a plain deep copy, as `to_python()` (the store is not copied).
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

/// Iterates a List by index, as list's iterator does.
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

/// A dict in a store: behaves like `dict`, changes go to the store.
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
    PyKeyError::new_err(k.clone().unbind())
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
            None => {
                return Err(PyTypeError::new_err(format!(
                    "persist cannot store a dict key of type '{}' (keys are None, bool, int, \
                     float, str, bytes or tuples of these)",
                    k.get_type().name()?
                )))
            }
        };
        let key = kt.key().map_err(map)?;
        // A small value (the counter's int) is its word: no tree, nothing to allocate or bind.
        let value = match inline_word(v) {
            Some(w) => Value::Word(w),
            None => Value::Tree(to_tree(v, &self.shared, &mut keep)?),
        };
        let mut hint = self.hint.load(Ordering::Relaxed);
        self.shared.write(&Gil(py), |st| {
            let w = match &value {
                Value::Word(w) => *w,
                Value::Tree(vt) => {
                    let w = st.encode(vt).map_err(map)?;
                    keep.bind(py, st, &self.shared)?;
                    w
                }
            };
            st.dict_set(self.off, &key, w, &mut hint).map_err(map)?;
            Ok(())
        })?;
        self.hint.store(hint, Ordering::Relaxed);
        Ok(())
    }

    fn __delitem__(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(kt) = key_arg(k)? else {
            return Err(key_error(k));
        };
        let key = kt.key().map_err(map)?;
        self.shared.write(&Gil(py), |st| {
            match st.dict_del(self.off, &key).map_err(map)? {
                Some(_) => Ok(()),
                None => Err(key_error(k)),
            }
        })
    }

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
        let r = self.shared.write(&Gil(py), |st| {
            match st.dict_del(self.off, &key).map_err(map)? {
                Some((_, vw)) => Ok(Some(to_py(py, st, shared, vw)?)),
                None => Ok(None),
            }
        })?;
        match r {
            Some(v) => Ok(v),
            None => missing(),
        }
    }

    fn popitem<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shared = &self.shared;
        self.shared.write(&Gil(py), |st| {
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

    #[pyo3(signature = (k, default=None))]
    fn setdefault<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        let Some(kt) = key_arg(k)? else {
            return Err(PyTypeError::new_err(format!(
                "persist cannot store a dict key of type '{}'",
                k.get_type().name()?
            )));
        };
        let mut keep = Keep::default();
        let vt = to_tree(&default, &self.shared, &mut keep)?;
        let shared = &self.shared;
        let key = kt.key().map_err(map)?;
        self.shared.write(&Gil(py), |st| {
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
                return Err(PyTypeError::new_err(format!(
                    "persist cannot store a dict key of type '{}'",
                    k.get_type().name()?
                )));
            };
            keys.push(kt);
            flat.append(p.get_item(1)?)?;
        }
        let mut hashed = Vec::with_capacity(keys.len());
        for kt in &keys {
            hashed.push(kt.key().map_err(map)?);
        }
        let vt = to_tree(flat.as_any(), &self.shared, &mut keep)?;
        self.shared.write(&Gil(py), |st| {
            let ws = st.encode_items(&vt).map_err(map)?;
            keep.bind(py, st, &self.shared)?;
            for (key, w) in hashed.iter().zip(ws) {
                st.dict_set(self.off, key, w, &mut NO_HINT.clone())
                    .map_err(map)?;
            }
            Ok(())
        })
    }

    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.shared
            .write(&Gil(py), |st| st.dict_clear(self.off).map_err(map))
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

    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockExcl(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        super::store::lock_excl(&self.shared, py, timeout)?;
        Ok(LockGuard::taken(&self.shared, "excl"))
    }

    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockShared(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        super::store::lock_shared(&self.shared, py, timeout)?;
        Ok(LockGuard::taken(&self.shared, "shared"))
    }

    fn unlock(&self, py: Python<'_>) -> PyResult<()> {
        super::store::unlock(&self.shared, py)
    }

    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("DictIter")?.call1((slf, 0))
    }
    fn __reversed__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("dict_reversed")?.call1((slf,))
    }
    fn keys<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("KeysView")?.call1((slf,))
    }
    fn values<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("ValuesView")?.call1((slf,))
    }
    fn items<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("ItemsView")?.call1((slf,))
    }
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
    /// A shallow copy in the same store (a persist.Dict that nothing refers to until it is
    /// stored somewhere; nested containers are shared, as dict.copy shares them).
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
    fn to_python<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("to_python")?.call1((slf,))
    }
    /// `copy.copy`: a plain shallow copy (a `dict` whose nested containers stay proxies).
    fn __copy__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("dict_copy")?.call1((slf,))
    }
    /// `copy.deepcopy`: a plain deep copy, as `to_python()` (the store is not copied).
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
