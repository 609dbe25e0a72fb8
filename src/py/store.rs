//! An open store as Python sees it: `StoreCore`, the native handle `persist.Store` wraps, over
//! the object layer's [`SharedStore`] (which runs the steps, the waits and the retries).
//!
//! What this file adds is what waiting means in Python ([`Gil`]): the GIL is released while a
//! thread sleeps on the store lock, and a pending signal (Ctrl-C) ends the wait with its
//! exception.

use crate::object::{LockKind, SharedStore, Store, Waiting};
use crate::region::OpenOptionsRegion;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use crate::object::thread_id;

/// One open store, shared by its Python handle and all its proxies.
pub(crate) type Shared = SharedStore;

/// Waiting in Python: without the GIL, and interrupted by signals (Ctrl-C).
pub(crate) struct Gil<'py>(pub Python<'py>);

impl Waiting<PyErr> for Gil<'_> {
    fn check_interrupt(&self) -> PyResult<()> {
        self.0.check_signals()
    }

    fn sleep(&self, sleep: &mut (dyn FnMut() + Send)) {
        self.0.detach(sleep)
    }
}

/// A timeout argument: None (wait forever) or a non-negative number of seconds.
pub(crate) fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        Some(t) if t.is_nan() || t < 0.0 => Err(pyo3::exceptions::PyValueError::new_err(
            "timeout must be a non-negative number of seconds, or None",
        )),
        Some(t) => Ok(Some(Duration::from_secs_f64(t.min(1e9)))),
        None => Ok(None),
    }
}

/// Called in the child after `os.fork()` (registered by the persist package): every open
/// store becomes a new participant of the child's own. The child holds no lock: a lockExcl
/// section open in the parent stays the parent's.
#[pyfunction]
pub(crate) fn _after_fork_in_child() -> PyResult<()> {
    Ok(SharedStore::reattach_all_in_child()?)
}

/// The native handle of an open store (persist.Store wraps it).
#[pyclass(module = "persist._persist", name = "StoreCore", frozen)]
pub(crate) struct StoreCore {
    pub shared: Arc<Shared>,
}

/// What :meth:`persist.Store.transaction` returns: a context manager for one ``with`` block.
///
/// Entering takes the thread's :meth:`~persist.Dict.lockExcl` (inside one already held, it
/// marks a savepoint) and gives the :class:`persist.Store`; leaving rolls back every change made
/// in the block if it raised, and gives the lock back. Each block needs its own
/// ``store.transaction()``; it must end in the thread that began it (:exc:`RuntimeError`).
//
// Native rather than a `contextlib.contextmanager`, so that its exit cannot be cut short: a
// KeyboardInterrupt is raised only where Python code checks for signals, and `__exit__` runs
// none. It does the rollback (if any) and the unlock in one step of the store, which no other
// thread of the process interleaves, and waits without checking for signals. So whatever
// lands around the block, when control returns the section is committed or rolled back and
// the lock is released. (A signal that arrives after `__enter__` returns is raised inside the
// block, whose exit then rolls back.)
#[pyclass(module = "persist._persist", name = "Transaction", frozen)]
pub(crate) struct Transaction {
    shared: Arc<Shared>,
    store: Py<PyAny>,
    /// (thread, savepoint) while entered.
    entered: std::sync::Mutex<Option<(u64, u64)>>,
}

/// Waiting that ignores signals: for steps that must finish once begun (a transaction's exit).
struct Uninterrupted<'py>(Python<'py>);

impl Waiting<PyErr> for Uninterrupted<'_> {
    fn check_interrupt(&self) -> PyResult<()> {
        Ok(())
    }

    fn sleep(&self, sleep: &mut (dyn FnMut() + Send)) {
        self.0.detach(sleep)
    }
}

#[pymethods]
impl Transaction {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut entered = self.entered.lock().unwrap_or_else(|e| e.into_inner());
        if entered.is_some() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this transaction() is already open: call store.transaction() for each block",
            ));
        }
        let tid = thread_id();
        // The wait may end with Ctrl-C (or a timeout): then nothing is held.
        lock_excl(&self.shared, py, None)?;
        let mark = self
            .shared
            .with(&Uninterrupted(py), |st| Ok::<_, PyErr>(st.savepoint()));
        match mark {
            Ok(mark) => *entered = Some((tid, mark)),
            Err(e) => {
                let _ = self
                    .shared
                    .with(&Uninterrupted(py), |st| Ok::<_, PyErr>(st.unlock(tid)?));
                return Err(e);
            }
        }
        Ok(self.store.clone_ref(py))
    }

    #[pyo3(signature = (exc_type, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let taken = self
            .entered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some((tid, mark)) = taken else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "transaction() exited without being entered",
            ));
        };
        if tid != thread_id() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a transaction() block must end in the thread that began it",
            ));
        }
        let failed = exc_type.is_some_and(|t| !t.is_none());
        self.shared.with(&Uninterrupted(py), |st| {
            // The rollback first, then the unlock, whatever the rollback said: the lock is
            // never left held by a block that has ended.
            let rolled_back = if failed {
                st.rollback_savepoint(mark)
            } else {
                Ok(())
            };
            let unlocked = st.unlock(tid);
            rolled_back.and(unlocked)?;
            Ok::<_, PyErr>(false)
        })
    }
}

/// lockExcl for the calling thread (the proxies' and the store's).
pub(crate) fn lock_excl(shared: &Shared, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
    let tid = thread_id();
    shared.blocking(&Gil(py), timeout_arg(timeout)?, |st| st.lock_excl(tid))
}

/// lockShared for the calling thread.
pub(crate) fn lock_shared(shared: &Shared, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
    let tid = thread_id();
    shared.blocking(&Gil(py), timeout_arg(timeout)?, |st| st.lock_shared(tid))
}

/// Waiting in a worker thread of the asyncio forms: without the GIL, and ended by a flag
/// (the awaiting task was cancelled) instead of by signals, which only the main thread gets.
struct Cancellable<'py, 'a>(Python<'py>, &'a std::sync::atomic::AtomicBool);

impl Waiting<PyErr> for Cancellable<'_, '_> {
    fn check_interrupt(&self) -> PyResult<()> {
        // Relaxed: a late look costs one more slice (50 ms) of waiting at most.
        if self.1.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(pyo3::exceptions::PyInterruptedError::new_err(
                "the awaiting task was cancelled",
            ));
        }
        Ok(())
    }

    fn sleep(&self, sleep: &mut (dyn FnMut() + Send)) {
        self.0.detach(sleep)
    }
}

/// The asyncio forms' wait, in a worker thread: takes lockExcl (`excl`) or lockShared for the
/// calling thread; `Ok(false)` when `cancel` was set first (nothing held then). A lock taken
/// after `cancel` was set is given back at once.
pub(crate) fn lock_wait(
    shared: &Shared,
    py: Python<'_>,
    excl: bool,
    timeout: Option<f64>,
    cancel: &std::sync::atomic::AtomicBool,
) -> PyResult<bool> {
    let tid = thread_id();
    let t = timeout_arg(timeout)?;
    let w = Cancellable(py, cancel);
    let r = shared.blocking(&w, t, |st| {
        if excl {
            st.lock_excl(tid)
        } else {
            st.lock_shared(tid)
        }
    });
    match r {
        Ok(()) if cancel.load(std::sync::atomic::Ordering::Relaxed) => {
            unlock(shared, py)?;
            Ok(false)
        }
        Ok(()) => Ok(true),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyInterruptedError>(py) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hands the lock worker thread `from` took (`lock_wait`) to the calling thread, and returns
/// its guard.
pub(crate) fn adopt_lock(shared: &Arc<Shared>, py: Python<'_>, from: u64) -> PyResult<LockGuard> {
    let to = thread_id();
    let kind = shared.with(&Gil(py), |st| {
        let kind = st.held_by(from);
        st.hand_over(from, to)?;
        Ok::<_, PyErr>(kind)
    })?;
    Ok(LockGuard::taken(
        shared,
        match kind {
            Some(LockKind::Shared) => "shared",
            _ => "excl",
        },
    ))
}

/// What :meth:`~persist.Dict.lockExcl` and :meth:`~persist.Dict.lockShared` return.
///
/// The lock is already held when you get it (the call took it, as a plain call always has).
/// Used as a context manager, ``with root.lockExcl(): ...``, leaving the block gives one level
/// of the lock back, as :meth:`~persist.Dict.unlock` would, whether the block raised or not;
/// the block must end in the thread that took the lock (:exc:`RuntimeError`). Dropped without
/// ``with``, it does nothing: the lock stays held until ``unlock()``.
//
// Native for the same reason as [`Transaction`]: nothing can interrupt its exit between the
// block's end and the unlock.
#[pyclass(module = "persist._persist", name = "LockGuard", frozen)]
pub(crate) struct LockGuard {
    shared: Arc<Shared>,
    /// The thread that took the lock (and must give it back).
    thread: u64,
    /// "excl" or "shared", for the repr.
    kind: &'static str,
}

impl LockGuard {
    pub(crate) fn taken(shared: &Arc<Shared>, kind: &'static str) -> LockGuard {
        LockGuard {
            shared: shared.clone(),
            thread: thread_id(),
            kind,
        }
    }
}

#[pymethods]
impl LockGuard {
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (_exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if self.thread != thread_id() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a lock block must end in the thread that took the lock",
            ));
        }
        self.shared.with(&Uninterrupted(py), |st| {
            Ok::<_, PyErr>(st.unlock(self.thread)?)
        })?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<persist lock guard ({})>", self.kind)
    }
}

/// Shrinks a store file that no other process has open to its last used page (for
/// `python -m persist compact` and `load`, which build under a private name first).
#[pyfunction]
pub(crate) fn _trim_unshared(py: Python<'_>, path: PathBuf) -> PyResult<(u64, u64)> {
    Ok(py.detach(|| Store::trim_unshared(&path))?)
}

/// unlock for the calling thread.
pub(crate) fn unlock(shared: &Shared, py: Python<'_>) -> PyResult<()> {
    let tid = thread_id();
    shared.with(&Gil(py), |st| Ok(st.unlock(tid)?))
}

impl StoreCore {
    /// The containers behind the proxies `objs` (Dict, List, Set, Cache), each of this store.
    fn containers(&self, objs: &[Bound<'_, PyAny>]) -> PyResult<Vec<crate::object::Container>> {
        if objs.is_empty() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "wait() and change_token() need at least one container",
            ));
        }
        objs.iter()
            .map(|o| {
                let at = if let Ok(d) = o.cast::<super::proxy::Dict>() {
                    Some((d.get().shared.clone(), d.get().off))
                } else if let Ok(l) = o.cast::<super::proxy::List>() {
                    Some((l.get().shared.clone(), l.get().off))
                } else if let Ok(x) = o.cast::<super::set::Set>() {
                    Some((x.get().shared.clone(), x.get().off))
                } else if let Ok(c) = o.cast::<super::cache::Cache>() {
                    c.get().at.clone()
                } else {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "wait() and change_token() take persist.Dict, List, Set or Cache \
                         objects, not {}",
                        o.get_type().name()?
                    )));
                };
                match at {
                    Some((s, c)) if Arc::ptr_eq(&s, &self.shared) => Ok(c),
                    Some(_) => Err(pyo3::exceptions::PyValueError::new_err(
                        "wait() and change_token() take containers of this store only",
                    )),
                    None => Err(pyo3::exceptions::PyValueError::new_err(
                        "this persist.Cache is not stored yet: store it, then wait on what \
                         the store gives back",
                    )),
                }
            })
            .collect()
    }
}

#[pymethods]
impl StoreCore {
    #[new]
    #[pyo3(signature = (path, durable=false, readonly=false, create=true))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        durable: bool,
        readonly: bool,
        create: bool,
    ) -> PyResult<Self> {
        let options = OpenOptionsRegion {
            create,
            durable,
            readonly,
        };
        let shared = py.detach(|| Shared::open(path, options))?;
        Ok(StoreCore { shared })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.shared.path().to_path_buf()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.shared.is_closed()
    }

    #[getter]
    fn id(&self) -> u64 {
        self.shared.id()
    }

    fn root<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // No read protocol needed: the root word never changes once set and the root dict is
        // never freed (the header's word holds a reference), so this never waits for a lock.
        let shared = self.shared.clone();
        self.shared.with(&Gil(py), |st| {
            let r = st.root()?;
            super::proxy::new_dict(py, st, &shared, r)
        })
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.close(&Gil(py))
    }

    #[pyo3(signature = (timeout=None))]
    fn lock_excl(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        lock_excl(&self.shared, py, timeout)
    }

    #[pyo3(signature = (timeout=None))]
    fn lock_shared(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        lock_shared(&self.shared, py, timeout)
    }

    fn unlock(&self, py: Python<'_>) -> PyResult<()> {
        unlock(&self.shared, py)
    }

    /// The asyncio lock forms' wait, in a worker thread: whether it took the lock (``False``:
    /// cancelled first).
    fn _lock_wait(
        &self,
        py: Python<'_>,
        excl: bool,
        timeout: Option<f64>,
        cancel: &Bound<'_, super::proxy::CancelFlag>,
    ) -> PyResult<bool> {
        lock_wait(&self.shared, py, excl, timeout, &cancel.get().flag)
    }

    /// Hands the lock worker thread ``thread`` took to the calling thread; returns its guard.
    fn _adopt_lock(&self, py: Python<'_>, thread: u64) -> PyResult<LockGuard> {
        adopt_lock(&self.shared, py, thread)
    }

    /// "excl", "shared" or None: what the calling thread holds.
    fn held(&self, py: Python<'_>) -> PyResult<Option<&'static str>> {
        let tid = thread_id();
        self.shared.with(&Gil(py), |st| {
            Ok(match st.held_by(tid) {
                Some(LockKind::Excl) => Some("excl"),
                Some(LockKind::Shared) => Some("shared"),
                None => None,
            })
        })
    }

    fn savepoint(&self, py: Python<'_>) -> PyResult<u64> {
        let tid = thread_id();
        self.shared.with(&Gil(py), |st| {
            if st.held_by(tid) != Some(LockKind::Excl) {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "a savepoint needs the thread's lockExcl",
                ));
            }
            Ok(st.savepoint())
        })
    }

    fn rollback_savepoint(&self, py: Python<'_>, mark: u64) -> PyResult<()> {
        let tid = thread_id();
        self.shared.with(&Gil(py), |st| {
            if st.held_by(tid) != Some(LockKind::Excl) {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "rollback needs the thread's lockExcl",
                ));
            }
            Ok(st.rollback_savepoint(mark)?)
        })
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.with(&Gil(py), |st| Ok(st.flush()?))
    }

    /// The versions of `containers` now (`Store.change_token`).
    fn _versions(&self, py: Python<'_>, containers: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<u64>> {
        let cs = self.containers(&containers)?;
        let got = self.shared.wait_versions(&Gil(py), &cs, None, None, None)?;
        Ok(got.unwrap_or_default())
    }

    /// `Store.wait`: sleeps until a version of `containers` differs from `since`; the new
    /// versions, or None when `timeout` passed (or `cancel` was set) first.
    #[pyo3(signature = (containers, since, timeout=None, cancel=None))]
    fn _wait(
        &self,
        py: Python<'_>,
        containers: Vec<Bound<'_, PyAny>>,
        since: Vec<u64>,
        timeout: Option<f64>,
        cancel: Option<&Bound<'_, super::proxy::CancelFlag>>,
    ) -> PyResult<Option<Vec<u64>>> {
        let cs = self.containers(&containers)?;
        if since.len() != cs.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "since holds {} versions for {} containers: pass what change_token() gave for \
                 the same containers",
                since.len(),
                cs.len()
            )));
        }
        let t = timeout_arg(timeout)?;
        let flag = cancel.map(|c| &c.get().flag);
        self.shared
            .wait_versions(&Gil(py), &cs, Some(&since), t, flag)
    }

    /// Wakes this process's threads that wait in `Store.wait` (and list pops) on this store,
    /// so a cancelled asyncio wait ends now.
    fn _wake_waiters(&self) {
        self.shared.wake_list_waiters()
    }

    /// A `transaction()` block of the calling thread; `store` is what `with ... as` gives.
    fn transaction(&self, store: Py<PyAny>) -> Transaction {
        Transaction {
            shared: self.shared.clone(),
            store,
            entered: std::sync::Mutex::new(None),
        }
    }

    #[pyo3(signature = (timeout=None))]
    fn check<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let tid = thread_id();
        let r = self
            .shared
            .blocking(&Gil(py), timeout_arg(timeout)?, |st| st.check(tid))?;
        let d = PyDict::new(py);
        d.set_item("objects", r.objects)?;
        d.set_item("live_blocks", r.live_blocks)?;
        d.set_item("live_bytes", r.live_bytes)?;
        d.set_item("unreachable_blocks", r.unreachable_blocks)?;
        d.set_item("unreachable_bytes", r.unreachable_bytes)?;
        d.set_item("leaked_references", r.leaked_references)?;
        d.set_item("orphans", r.orphans)?;
        d.set_item("held", r.held)?;
        Ok(d)
    }

    #[pyo3(signature = (timeout=None))]
    fn gc<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let tid = thread_id();
        let r = self
            .shared
            .blocking(&Gil(py), timeout_arg(timeout)?, |st| st.gc(tid))?;
        let d = PyDict::new(py);
        d.set_item("objects", r.objects)?;
        d.set_item("blocks", r.blocks)?;
        d.set_item("bytes", r.bytes)?;
        Ok(d)
    }

    #[pyo3(signature = (timeout=None))]
    fn stats<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let tid = thread_id();
        let s = self
            .shared
            .blocking(&Gil(py), timeout_arg(timeout)?, |st| st.stats(tid))?;
        let d = PyDict::new(py);
        d.set_item("file_size", s.file_size)?;
        d.set_item("pages_used", s.pages_used)?;
        d.set_item("pages_free", s.pages_free)?;
        d.set_item("live_bytes", s.live_bytes)?;
        let objects = PyDict::new(py);
        for (k, v) in s.objects {
            objects.set_item(k, v)?;
        }
        d.set_item("objects", objects)?;
        d.set_item("processes", s.processes)?;
        Ok(d)
    }
}
