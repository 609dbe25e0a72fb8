//! persist.Set: the proxy of a set in a store.
//!
//! As List and Dict (proxy.rs): the single-member changes and lookups are here, each one
//! change or one validated read; the methods that run Python code (operators, comparisons,
//! the multi-set updates) are in python/persist/_ops.py, on top of `_snapshot` and the
//! check-then-act primitive `_change_if`.

use super::convert::{key_arg, to_py, unstorable_member, KeyArg};
use super::errors;
use super::store::{Gil, LockGuard, Shared, StoreCore};
use crate::object::dict::NO_HINT;
use crate::object::{self, Container, Store};
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyFrozenSet, PyList, PySet, PyTuple};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn ops(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("persist._ops")
}

fn map(e: object::Error) -> PyErr {
    errors::map_object(e)
}

/// Creates a Set proxy for container `c` (holding it). Inside a read or op.
pub(crate) fn new_set<'py>(
    py: Python<'py>,
    st: &mut Store,
    shared: &Arc<Shared>,
    c: Container,
) -> PyResult<Bound<'py, PyAny>> {
    st.hold(c).map_err(map)?;
    Ok(Bound::new(
        py,
        Set {
            shared: shared.clone(),
            off: c,
            hint: AtomicU64::new(NO_HINT),
        },
    )?
    .into_any())
}

/// A member argument of `in`, `remove` and `discard`: a set (or a persist.Set) is looked up
/// as the frozenset of its members, as set does.
fn member_arg<'py>(k: &Bound<'py, PyAny>) -> PyResult<Option<KeyArg<'py>>> {
    if k.is_instance_of::<PySet>() || k.is_instance_of::<Set>() {
        let f = PyFrozenSet::new(k.py(), k.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
        return key_arg(f.as_any());
    }
    key_arg(k)
}

fn key_error(k: &Bound<'_, PyAny>) -> PyErr {
    // The member as the one argument (a tuple must not become the arguments).
    PyKeyError::new_err((k.clone().unbind(),))
}

/// A set in a store: behaves like :class:`set`, and every change goes to the store.
///
/// Not made directly: storing a :class:`set` (``root['s'] = {1, 2}``) copies it into the
/// store, and reading it back (``root['s']``) gives a ``persist.Set``, a proxy of the stored
/// set. It has every method and operator of :class:`set`, with the same exceptions, and is a
/// registered :class:`collections.abc.MutableSet`.
///
/// Where it differs from :class:`set`:
///
/// * Members are what a :class:`Dict` key may be: None, bool, int, float, str, bytes, the
///   everyday value types, and tuples and frozensets of these (``1``, ``1.0`` and ``True`` are
///   one member, as in Python).
/// * Every single call is atomic for all threads and processes (the ``*_update`` methods and
///   the in-place operators included); several calls that must be seen together need
///   :meth:`lockExcl` or :meth:`persist.Store.transaction`.
/// * Iterating raises :exc:`RuntimeError` if the size changes meanwhile, whichever process
///   changed it.
/// * :meth:`copy`, ``copy.copy``, ``copy.deepcopy``, :meth:`to_python` and the operators
///   (``|``, ``&``, ``-``, ``^``) give plain :class:`set` objects. Proxies are unhashable and
///   cannot be pickled.
///
/// Every method raises :exc:`persist.ClosedError` once the store is closed; every change raises
/// :exc:`persist.ReadOnlyError` in a store opened with ``readonly=True``,
/// :exc:`persist.StoreFullError` when the store cannot grow (nothing is changed then) and
/// :exc:`TypeError` for a member it cannot store (nothing is changed then either); a damaged
/// store raises :exc:`persist.CorruptionError`.
#[pyclass(module = "persist", name = "Set", frozen, weakref)]
pub(crate) struct Set {
    pub shared: Arc<Shared>,
    pub off: Container,
    /// The entry index of the last member looked up or added: a hint, checked before use.
    hint: AtomicU64,
}

impl Drop for Set {
    fn drop(&mut self) {
        self.shared.release(self.off);
    }
}

#[pymethods]
impl Set {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn py_new(
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Self> {
        Err(PyTypeError::new_err(
            "persist.Set objects are made by storing a set: root['k'] = {...}",
        ))
    }

    /// As :meth:`set.__init__`: replaces the members with ``iterable``'s, in one change (the
    /// iterable is read first, with no lock held; nothing changes if a member cannot be stored).
    #[pyo3(signature = (iterable=None, /))]
    fn __init__(&self, py: Python<'_>, iterable: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let members = match iterable {
            Some(it) if it.is_instance_of::<Set>() => it.call_method0("_snapshot")?.get_item(0)?,
            Some(it) => PyList::new(py, it.try_iter()?.collect::<PyResult<Vec<_>>>()?)?.into_any(),
            None => PyList::empty(py).into_any(),
        };
        let mut trees = Vec::new();
        for k in members.try_iter()? {
            let k = k?;
            match key_arg(&k)? {
                Some(kt) => trees.push(kt),
                None => return Err(unstorable_member(&k)),
            }
        }
        let keys = trees.iter().map(KeyArg::key).collect::<Result<Vec<_>, _>>();
        let keys = keys.map_err(map)?;
        // One set alone: on its part, as every change below that touches this set alone.
        self.shared.write_in(&Gil(py), self.off, |st| {
            st.set_clear(self.off).map_err(map)?;
            for key in &keys {
                st.set_add(self.off, key, &mut NO_HINT.clone())
                    .map_err(map)?;
            }
            Ok(())
        })
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self
            .shared
            .read(&Gil(py), |st| st.set_len(self.off).map_err(map))? as usize)
    }

    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.__len__(py)? > 0)
    }

    fn __contains__(&self, py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Some(kt) = member_arg(k)? else {
            return Ok(false);
        };
        let key = kt.key().map_err(map)?;
        let mut hint = self.hint.load(Ordering::Relaxed);
        let r = self.shared.read(&Gil(py), |st| {
            st.set_contains(self.off, &key, &mut hint).map_err(map)
        })?;
        self.hint.store(hint, Ordering::Relaxed);
        Ok(r)
    }

    /// Adds ``elem``, as :meth:`set.add` (nothing changes if an equal member is there).
    ///
    /// :raises TypeError: ``elem`` is unhashable, or hashable but not storable.
    #[pyo3(signature = (elem, /))]
    fn add(&self, py: Python<'_>, elem: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(kt) = key_arg(elem)? else {
            return Err(unstorable_member(elem));
        };
        let key = kt.key().map_err(map)?;
        let hint = std::cell::Cell::new(self.hint.load(Ordering::Relaxed));
        // A member already there: the add changes nothing, and a validated read says so (as
        // `in` does, with no lock and nothing written).
        let mut h = hint.get();
        let there = self.shared.read(&Gil(py), |st| {
            st.set_contains(self.off, &key, &mut h).map_err(map)
        })?;
        hint.set(h);
        if there {
            self.hint.store(h, Ordering::Relaxed);
            return Ok(());
        }
        // A member that is an inline word or a scalar's one block: an insert without a lock
        // where the table has room; else on the set's part lock (store-wide if the member needs
        // a block that is not a scalar).
        let publish = |st: &mut object::Store| {
            let mut h = hint.get();
            let r = st.publish_set_add(self.off, &key, &mut h);
            hint.set(h);
            r.map(|added| added.map(|_| ())).map_err(map)
        };
        let add = |st: &mut object::Store| {
            let mut h = hint.get();
            st.set_add(self.off, &key, &mut h).map_err(map)?;
            hint.set(h);
            Ok(())
        };
        self.shared
            .publish_or_write_in(&Gil(py), self.off, publish, add)?;
        self.hint.store(hint.get(), Ordering::Relaxed);
        Ok(())
    }

    /// Removes ``elem`` if it is a member, as :meth:`set.discard`.
    #[pyo3(signature = (elem, /))]
    fn discard(&self, py: Python<'_>, elem: &Bound<'_, PyAny>) -> PyResult<()> {
        self.remove_member(py, elem)?;
        Ok(())
    }

    /// Removes ``elem``, as :meth:`set.remove`.
    ///
    /// :raises KeyError: ``elem`` is not a member.
    #[pyo3(signature = (elem, /))]
    fn remove(&self, py: Python<'_>, elem: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.remove_member(py, elem)? {
            Ok(())
        } else {
            Err(key_error(elem))
        }
    }

    /// Removes and returns a member, as :meth:`set.pop`.
    ///
    /// :raises KeyError: the set is empty.
    fn pop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shared = &self.shared;
        self.shared.write_in(&Gil(py), self.off, |st| {
            match st.set_pop(self.off).map_err(map)? {
                Some(w) => to_py(py, st, shared, w),
                None => Err(PyKeyError::new_err("pop from an empty set")),
            }
        })
    }

    /// Removes every member, as :meth:`set.clear`; one atomic change.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.shared
            .write_in(&Gil(py), self.off, |st| st.set_clear(self.off).map_err(map))
    }

    /// (members, version): the basis of the Python helpers.
    fn _snapshot<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyList>, u64)> {
        let shared = &self.shared;
        self.shared.read(&Gil(py), |st| {
            let ws = st.set_members(self.off).map_err(map)?;
            let v = st.version(self.off).map_err(map)?;
            let items = ws
                .iter()
                .map(|&w| to_py(py, st, shared, w))
                .collect::<PyResult<Vec<_>>>()?;
            Ok((PyList::new(py, items)?, v))
        })
    }

    /// The member at or after table position `pos`: (next pos, member, len) or None.
    fn _next<'py>(
        &self,
        py: Python<'py>,
        pos: u64,
    ) -> PyResult<Option<(u64, Bound<'py, PyAny>, u64)>> {
        let shared = &self.shared;
        self.shared.read(&Gil(py), |st| {
            let len = st.set_len(self.off).map_err(map)?;
            match st.set_next(self.off, pos).map_err(map)? {
                None => Ok(None),
                Some((e, w)) => Ok(Some((e + 1, to_py(py, st, shared, w)?, len))),
            }
        })
    }

    /// In one change, if the set's version is still `version` (or `version` is None): removes
    /// the members of `remove`, then adds those of `add`. Returns whether it changed the set
    /// (false: the version moved; the caller takes a new snapshot). Nothing changes if a
    /// member of `add` cannot be stored.
    #[pyo3(signature = (version, add, remove))]
    fn _change_if(
        &self,
        py: Python<'_>,
        version: Option<u64>,
        add: &Bound<'_, PyList>,
        remove: &Bound<'_, PyList>,
    ) -> PyResult<bool> {
        let mut adds = Vec::with_capacity(add.len());
        for k in add.iter() {
            match key_arg(&k)? {
                Some(kt) => adds.push(kt),
                None => return Err(unstorable_member(&k)),
            }
        }
        let mut removes = Vec::with_capacity(remove.len());
        for k in remove.iter() {
            // Not `member_arg`: set's updates hash their members as they are (a set raises).
            if let Some(kt) = key_arg(&k)? {
                removes.push(kt);
            }
        }
        let adds = adds.iter().map(KeyArg::key).collect::<Result<Vec<_>, _>>();
        let adds = adds.map_err(map)?;
        let removes = removes
            .iter()
            .map(KeyArg::key)
            .collect::<Result<Vec<_>, _>>();
        let removes = removes.map_err(map)?;
        if adds.is_empty() && removes.is_empty() && version.is_none() {
            return Ok(true);
        }
        self.shared.write_in(&Gil(py), self.off, |st| {
            if version.is_some_and(|v| st.version(self.off).map_err(map).ok() != Some(v)) {
                return Ok(false);
            }
            for key in &removes {
                st.set_discard(self.off, key).map_err(map)?;
            }
            for key in &adds {
                st.set_add(self.off, key, &mut NO_HINT.clone())
                    .map_err(map)?;
            }
            Ok(true)
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

    /// Takes the store's exclusive lock for the calling thread and returns a guard, as
    /// :meth:`persist.Dict.lockExcl` (the lock covers the whole store).
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockExcl(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        super::store::lock_excl(&self.shared, py, timeout)?;
        Ok(LockGuard::taken(&self.shared, "excl"))
    }

    /// Takes the store's shared lock for the calling thread and returns a guard, as
    /// :meth:`persist.Dict.lockShared`.
    #[pyo3(signature = (timeout=None))]
    #[allow(non_snake_case)]
    fn lockShared(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockGuard> {
        super::store::lock_shared(&self.shared, py, timeout)?;
        Ok(LockGuard::taken(&self.shared, "shared"))
    }

    /// Gives back one level of the calling thread's lock, as :meth:`persist.Dict.unlock`.
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

    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("SetIter")?.call1((slf,))
    }
    fn __repr__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_repr")?.call1((slf,))
    }
    fn __richcmp__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
        op: pyo3::basic::CompareOp,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("set_richcmp")?
            .call1((slf, other, op as i32))
    }
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "persist.Set cannot be pickled (use to_python() for a plain copy)",
        ))
    }
    // ---- the methods that are Python code in _ops.py, called with the proxy first ----

    fn __or__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_or")?.call1((slf, other))
    }

    fn __ror__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_ror")?.call1((slf, other))
    }

    fn __and__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_and")?.call1((slf, other))
    }

    fn __rand__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_rand")?.call1((slf, other))
    }

    fn __sub__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_sub")?.call1((slf, other))
    }

    fn __rsub__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_rsub")?.call1((slf, other))
    }

    fn __xor__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_xor")?.call1((slf, other))
    }

    fn __rxor__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_rxor")?.call1((slf, other))
    }

    fn __ior__<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<()> {
        ops(slf.py())?.getattr("set_ior")?.call1((slf, other))?;
        Ok(())
    }

    fn __iand__<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<()> {
        ops(slf.py())?.getattr("set_iand")?.call1((slf, other))?;
        Ok(())
    }

    fn __isub__<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<()> {
        ops(slf.py())?.getattr("set_isub")?.call1((slf, other))?;
        Ok(())
    }

    fn __ixor__<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<()> {
        ops(slf.py())?.getattr("set_ixor")?.call1((slf, other))?;
        Ok(())
    }

    /// Whether every member is in ``other`` (any iterable), as :meth:`set.issubset`.
    #[pyo3(signature = (other, /))]
    fn issubset<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_issubset")?.call1((slf, other))
    }

    /// Whether every member of ``other`` (any iterable) is in the set, as :meth:`set.issuperset`.
    #[pyo3(signature = (other, /))]
    fn issuperset<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("set_issuperset")?
            .call1((slf, other))
    }

    /// Whether the set and ``other`` (any iterable) have no member in common, as
    /// :meth:`set.isdisjoint`.
    #[pyo3(signature = (other, /))]
    fn isdisjoint<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("set_isdisjoint")?
            .call1((slf, other))
    }

    /// Keeps the members that are in ``other`` or in the set but not both, as
    /// :meth:`set.symmetric_difference_update`, in one atomic change.
    #[pyo3(signature = (other, /))]
    fn symmetric_difference_update<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("set_symmetric_difference_update")?
            .call1((slf, other))
    }

    /// A plain :class:`set` of the members in the set or ``other`` but not both.
    #[pyo3(signature = (other, /))]
    fn symmetric_difference<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("set_symmetric_difference")?
            .call1((slf, other))
    }

    /// A plain :class:`set` of the members (``copy.copy`` gives the same).
    fn copy<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_copy")?.call1((slf,))
    }

    /// ``copy.copy(s)``: a plain :class:`set`.
    fn __copy__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_copy")?.call1((slf,))
    }

    /// A plain :class:`set` of the members (members are immutable values: a deep copy).
    fn to_python<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_copy")?.call1((slf,))
    }

    /// Adds the members of every iterable in ``others``, as :meth:`set.update`, in one atomic
    /// change (the iterables are read first, with no lock held).
    #[pyo3(signature = (*others))]
    fn update<'py>(
        slf: &Bound<'py, Self>,
        others: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_update")?.call1((slf, others))
    }

    /// Keeps only the members found in every iterable of ``others``, as
    /// :meth:`set.intersection_update`, in one atomic change.
    #[pyo3(signature = (*others))]
    fn intersection_update<'py>(
        slf: &Bound<'py, Self>,
        others: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("set_intersection_update")?
            .call1((slf, others))
    }

    /// Removes the members of every iterable of ``others``, as :meth:`set.difference_update`,
    /// in one atomic change.
    #[pyo3(signature = (*others))]
    fn difference_update<'py>(
        slf: &Bound<'py, Self>,
        others: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("set_difference_update")?
            .call1((slf, others))
    }

    /// A plain :class:`set` of the members of the set and of every iterable of ``others``.
    #[pyo3(signature = (*others))]
    fn union<'py>(
        slf: &Bound<'py, Self>,
        others: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_union")?.call1((slf, others))
    }

    /// A plain :class:`set` of the members found in the set and in every iterable of ``others``.
    #[pyo3(signature = (*others))]
    fn intersection<'py>(
        slf: &Bound<'py, Self>,
        others: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("set_intersection")?
            .call1((slf, others))
    }

    /// A plain :class:`set` of the members that are in no iterable of ``others``.
    #[pyo3(signature = (*others))]
    fn difference<'py>(
        slf: &Bound<'py, Self>,
        others: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?
            .getattr("set_difference")?
            .call1((slf, others))
    }

    /// ``copy.deepcopy(s)``: a plain :class:`set`.
    fn __deepcopy__<'py>(
        slf: &Bound<'py, Self>,
        _memo: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        ops(slf.py())?.getattr("set_copy")?.call1((slf,))
    }
}

impl Set {
    /// Removes `elem` if it is a member; whether it was.
    fn remove_member(&self, py: Python<'_>, elem: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Some(kt) = member_arg(elem)? else {
            return Ok(false);
        };
        let key = kt.key().map_err(map)?;
        // A member that is an inline word: a delete without a lock; else (and for no member)
        // on the set's part lock (store-wide if the member owns a tuple or frozenset).
        let publish = |st: &mut object::Store| st.publish_set_discard(self.off, &key).map_err(map);
        let discard =
            |st: &mut object::Store| Ok(st.set_discard(self.off, &key).map_err(map)?.is_some());
        self.shared
            .publish_or_write_in(&Gil(py), self.off, publish, discard)
    }
}
