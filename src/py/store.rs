//! An open store as Python sees it: the object layer behind a mutex, and the loops that wait
//! for the store lock with the GIL released (Ctrl-C and timeouts work).
//!
//! Every call takes the mutex for one non-blocking step of the object layer. When that step
//! reports `Busy` (another thread or process holds what it needs), the mutex is released and
//! the thread sleeps on the lock word without the GIL, then tries again.

use super::errors::{self, ClosedError, LockTimeout};
use crate::object::{self, Busy, LockKind, Store, Waiter};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::cell::UnsafeCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest single sleep: a waiter wakes this often to check signals and its deadline.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// The first sleep on a lock word (then doubling up to `WAIT_SLICE`).
const FIRST_SLICE: Duration = Duration::from_millis(1);

/// A read that failed validation this many times runs under the writer lock instead.
const READ_RETRIES: u32 = 64;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// One open store, shared by its Python handle and all its proxies.
pub(crate) struct Shared {
    /// The object layer, used by one step at a time: only through a `StoreGuard`, which
    /// exists while `step_owner` names its thread (None once closed).
    store: UnsafeCell<Option<Store>>,
    /// The store's lock words, for sleeping without the mutex (replaced after a fork).
    waiter: Mutex<Waiter>,
    /// Threads sleeping on the waiter's words (close waits for them to leave).
    waiting: AtomicUsize,
    /// Containers whose proxies were dropped (their holds are given back at the next step).
    pending: Mutex<Vec<u64>>,
    /// The thread inside a step (the one that may use `store`), or 0.
    step_owner: AtomicU64,
    /// Whether `pending` may be non-empty (checked without its mutex on every step).
    has_pending: AtomicBool,
    /// Orphans may be collectable: the next change collects them.
    collect: AtomicBool,
    pub id: u64,
    pub path: PathBuf,
    /// Opened with durable=True (a child after fork re-opens the same way).
    durable: bool,
    /// Opened with readonly=True (likewise).
    readonly: bool,
}

/// The calling thread, as the store lock knows it.
pub(crate) fn thread_id() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as u64 }
}

pub(crate) fn closed_err() -> PyErr {
    ClosedError::new_err("the store is closed")
}

fn open_store(
    path: &std::path::Path,
    create: bool,
    durable: bool,
    readonly: bool,
) -> Result<Store, object::Error> {
    Store::open_region(
        path,
        crate::region::OpenOptionsRegion {
            create: create && !readonly,
            durable,
            readonly,
        },
    )
}

impl Shared {
    pub fn open(
        path: PathBuf,
        create: bool,
        durable: bool,
        readonly: bool,
    ) -> Result<Arc<Shared>, object::Error> {
        let store = open_store(&path, create, durable, readonly)?;
        let waiter = store.waiter();
        let shared = Arc::new(Shared {
            store: UnsafeCell::new(Some(store)),
            waiter: Mutex::new(waiter),
            waiting: AtomicUsize::new(0),
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
            step_owner: AtomicU64::new(0),
            collect: AtomicBool::new(false),
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            path,
            durable,
            readonly,
        });
        registry().push(Arc::downgrade(&shared));
        Ok(shared)
    }

    /// In a child process after fork: the inherited store belongs to the parent's slot, so
    /// the child attaches as a participant of its own and holds again what its proxies hold.
    /// The inherited handle is forgotten, not closed: closing it would detach the parent.
    fn reattach_in_child(&self) -> Result<(), object::Error> {
        // A step another thread of the parent was in never finishes here (only the forking
        // thread exists in the child); its Store is replaced below, so take the step over.
        let owner = self.step_owner.load(Ordering::Acquire);
        if owner != 0 && owner != thread_id() {
            self.step_owner.store(0, Ordering::Release);
        }
        let mut g = self
            .guard()
            .map_err(|e| object::Error::LockUsage(e.to_string()))?;
        let Some(old) = g.take() else { return Ok(()) };
        let held = old.held_containers();
        std::mem::forget(old);
        // The store exists (the parent had it open): never create it again.
        let mut st = open_store(&self.path, false, self.durable, self.readonly)?;
        for (c, n) in held {
            for _ in 0..n {
                st.hold(c)?;
            }
        }
        *self.waiter.lock().unwrap_or_else(|p| p.into_inner()) = st.waiter();
        *g = Some(st);
        Ok(())
    }

    /// The store, for one step. Callers hold the GIL. Never block on the step lock with the
    /// GIL held: the holder may be running Python code (a finalizer run by the garbage
    /// collector while it builds objects) and need the GIL back to finish. A thread that
    /// already holds it (Python code it ran called back into the store) gets an error, not a
    /// hang.
    fn guard(&self) -> PyResult<StoreGuard<'_>> {
        let me = thread_id();
        loop {
            // Acquire: pairs with the Release in `StoreGuard::drop`, so this step sees
            // everything the previous step (in any thread) did to `store`.
            match self
                .step_owner
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(StoreGuard { shared: self }),
                Err(owner) if owner == me => {
                    return Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "persist was called back while a store operation was running in \
                         the same thread (from a finalizer?)",
                    ))
                }
                Err(_) => {
                    Python::attach(|py| py.detach(|| std::thread::sleep(Duration::from_micros(20))))
                }
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.guard().is_ok_and(|g| g.is_none())
    }

    /// Gives back the holds of dropped proxies.
    fn drain_pending(&self, st: &mut Store) {
        // Relaxed: a release that races with this check is handled at the next step. A plain
        // load first: the swap is a locked instruction, and this runs on every step.
        if !self.has_pending.load(Ordering::Relaxed)
            || !self.has_pending.swap(false, Ordering::Relaxed)
        {
            return;
        }
        let list = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for c in list {
            if st.unhold(c).unwrap_or(false) {
                self.collect.store(true, Ordering::Relaxed);
            }
        }
    }

    /// A proxy of container `c` went away.
    pub fn release(&self, c: u64) {
        // Never take the store mutex here: a proxy may be freed by the cyclic GC while this
        // thread is inside a step that holds it.
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(c);
        self.has_pending.store(true, Ordering::Relaxed);
    }

    /// Sleeps (GIL released) until `busy` may have cleared; raises on timeout or a signal.
    /// `seen` counts the waits on this same `busy` in a row: while it stays, its holder may be
    /// dead, so dead participants are looked for before each further wait (a lock query per
    /// attached participant: cheap) and recovered (their changes undone, their locks
    /// released). The sleeps grow from 1 ms to `WAIT_SLICE`, so a dead holder is found within
    /// milliseconds and a long-lived one costs a look every `WAIT_SLICE`.
    pub fn wait_for(
        &self,
        py: Python<'_>,
        busy: Busy,
        deadline: Option<Instant>,
        seen: &mut Option<(Busy, u32)>,
    ) -> PyResult<()> {
        let rounds = match seen {
            Some((b, n)) if *b == busy => {
                let recovered = self.with(|st| st.recover_dead().map_err(errors::map_object))?;
                if recovered > 0 {
                    *seen = None;
                    return Ok(());
                }
                *n += 1;
                *n
            }
            _ => {
                *seen = Some((busy, 0));
                0
            }
        };
        let slice = (FIRST_SLICE * (1 << rounds.min(8))).min(WAIT_SLICE);
        self.wait(py, busy, deadline, slice)
    }

    /// Sleeps (GIL released) at most `slice` until `busy` may have cleared; raises on timeout
    /// or a signal.
    pub fn wait(
        &self,
        py: Python<'_>,
        busy: Busy,
        deadline: Option<Instant>,
        slice: Duration,
    ) -> PyResult<()> {
        py.check_signals()?;
        let slice = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(LockTimeout::new_err("timed out waiting for the store lock"));
                }
                (d - now).min(slice)
            }
            None => slice,
        };
        self.waiting.fetch_add(1, Ordering::SeqCst);
        if self.is_closed() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(closed_err());
        }
        let waiter = *self.waiter.lock().unwrap_or_else(|p| p.into_inner());
        py.detach(|| {
            // SAFETY: the store is open (checked above after registering as a waiter), and
            // `close` waits for `waiting` to drop to zero before it unmaps anything.
            unsafe { waiter.wait(busy, slice) };
        });
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    /// Runs `f` as one change: takes the writer lock (waiting as needed), commits if `f`
    /// succeeds, rolls back everything `f` did if it fails.
    pub fn write<T>(
        self: &Arc<Self>,
        py: Python<'_>,
        mut f: impl FnMut(&mut Store) -> PyResult<T>,
    ) -> PyResult<T> {
        let tid = thread_id();
        let mut seen = None;
        loop {
            let busy = {
                let mut g = self.guard()?;
                let st = g.as_mut().ok_or_else(closed_err)?;
                self.drain_pending(st);
                match st.begin_op(tid) {
                    Ok(()) => {
                        let r = f(st);
                        if r.is_ok()
                            && self.collect.load(Ordering::Relaxed)
                            && self.collect.swap(false, Ordering::Relaxed)
                        {
                            if let Err(e) = st.collect_orphans() {
                                let _ = st.end_op(false);
                                return Err(errors::map_object(e));
                            }
                        }
                        let ended = st.end_op(r.is_ok());
                        let r = r?;
                        ended.map_err(errors::map_object)?;
                        return Ok(r);
                    }
                    Err(object::Error::Busy(b)) => b,
                    Err(e) => return Err(errors::map_object(e)),
                }
            };
            self.wait_for(py, busy, None, &mut seen)?;
        }
    }

    /// Runs `f` as a consistent read: without a lock, retried if a change raced with it.
    /// `f` may run several times; what an invalid run produced is dropped after the mutex is
    /// released (dropping proxies must not happen under it).
    pub fn read<T>(
        self: &Arc<Self>,
        py: Python<'_>,
        mut f: impl FnMut(&mut Store) -> PyResult<T>,
    ) -> PyResult<T> {
        let tid = thread_id();
        let mut tries = 0;
        let mut seen = None;
        loop {
            let (result, busy) = {
                let mut g = self.guard()?;
                let st = g.as_mut().ok_or_else(closed_err)?;
                self.drain_pending(st);
                match st.read_begin(tid) {
                    Ok(token) => {
                        let r = f(st);
                        if st.read_valid(token) {
                            return r;
                        }
                        (Some(r), None)
                    }
                    Err(b) => (None, Some(b)),
                }
            };
            drop(result);
            if let Some(b) = busy {
                self.wait_for(py, b, None, &mut seen)?;
                continue;
            }
            tries += 1;
            if tries >= READ_RETRIES {
                // Writers keep racing with this read: take the writer lock for it.
                return self.write(py, f);
            }
        }
    }

    /// Runs a step that may report `Busy` (the lock calls), waiting until it succeeds or
    /// `timeout` passes.
    pub fn blocking<T>(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        mut f: impl FnMut(&mut Store) -> Result<T, object::Error>,
    ) -> PyResult<T> {
        let deadline = match timeout {
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "timeout must be a non-negative number of seconds, or None",
                ))
            }
            Some(t) => Some(Instant::now() + Duration::from_secs_f64(t.min(1e9))),
            None => None,
        };
        let mut seen = None;
        loop {
            let busy = {
                let mut g = self.guard()?;
                let st = g.as_mut().ok_or_else(closed_err)?;
                self.drain_pending(st);
                match f(st) {
                    Ok(v) => return Ok(v),
                    Err(object::Error::Busy(b)) => b,
                    Err(e) => return Err(errors::map_object(e)),
                }
            };
            self.wait_for(py, busy, deadline, &mut seen)?;
        }
    }

    /// A step that needs the store open but no lock.
    pub fn with<T>(&self, f: impl FnOnce(&mut Store) -> PyResult<T>) -> PyResult<T> {
        let mut g = self.guard()?;
        let st = g.as_mut().ok_or_else(closed_err)?;
        f(st)
    }

    /// Closes the store: rolls back an open lockExcl section, detaches. Harmless twice.
    pub fn close(&self, py: Python<'_>) -> PyResult<()> {
        let st = self.guard()?.take();
        let Some(st) = st else { return Ok(()) };
        // Waiters registered before the store left the mutex wake within one slice.
        py.detach(|| {
            while self.waiting.load(Ordering::SeqCst) != 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        st.close().map_err(errors::map_object)
    }
}

// SAFETY: `store` is only reached through a `StoreGuard`, and at most one exists at a time
// (it is created when `step_owner` goes from 0 to the calling thread and dropped when it goes
// back to 0), so the Store is never used by two threads at once; it is Send, so handing it
// from thread to thread this way is sound. Every other field is Sync.
unsafe impl Sync for Shared {}

/// One step's exclusive use of the store.
struct StoreGuard<'a> {
    shared: &'a Shared,
}

impl std::ops::Deref for StoreGuard<'_> {
    type Target = Option<Store>;
    fn deref(&self) -> &Option<Store> {
        // SAFETY: this guard is the only one (see `unsafe impl Sync for Shared`).
        unsafe { &*self.shared.store.get() }
    }
}

impl std::ops::DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Option<Store> {
        // SAFETY: this guard is the only one, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.shared.store.get() }
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        // Release: the next step (Acquire in `guard`) sees what this one did.
        self.shared.step_owner.store(0, Ordering::Release);
    }
}

/// Every store opened in this process (for the fork handler).
fn registry() -> MutexGuard<'static, Vec<std::sync::Weak<Shared>>> {
    static REGISTRY: Mutex<Vec<std::sync::Weak<Shared>>> = Mutex::new(Vec::new());
    let mut g = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    g.retain(|w| w.strong_count() > 0);
    g
}

/// Called in the child after `os.fork()` (registered by the persist package): every open
/// store becomes a new participant of the child's own. The child holds no lock: a lockExcl
/// section open in the parent stays the parent's.
#[pyfunction]
pub(crate) fn _after_fork_in_child() -> PyResult<()> {
    let stores: Vec<Arc<Shared>> = registry().iter().filter_map(|w| w.upgrade()).collect();
    for s in stores {
        s.reattach_in_child().map_err(errors::map_object)?;
    }
    Ok(())
}

/// The native handle of an open store (persist.Store wraps it).
#[pyclass(module = "persist._persist", name = "StoreCore", frozen)]
pub(crate) struct StoreCore {
    pub shared: Arc<Shared>,
}

/// lockExcl for the calling thread (the proxies' and the store's).
pub(crate) fn lock_excl(shared: &Shared, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
    let tid = thread_id();
    shared.blocking(py, timeout, |st| st.lock_excl(tid))
}

/// lockShared for the calling thread.
pub(crate) fn lock_shared(shared: &Shared, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
    let tid = thread_id();
    shared.blocking(py, timeout, |st| st.lock_shared(tid))
}

/// Shrinks a store file that no other process has open to its last used page (for
/// `python -m persist compact` and `load`, which build under a private name first).
#[pyfunction]
pub(crate) fn _trim_unshared(py: Python<'_>, path: PathBuf) -> PyResult<(u64, u64)> {
    py.detach(|| Store::trim_unshared(&path))
        .map_err(errors::map_object)
}

/// unlock for the calling thread.
pub(crate) fn unlock(shared: &Shared) -> PyResult<()> {
    let tid = thread_id();
    shared.with(|st| st.unlock(tid).map_err(errors::map_object))
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
        let shared = py
            .detach(|| Shared::open(path, create, durable, readonly))
            .map_err(errors::map_object)?;
        Ok(StoreCore { shared })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.shared.path.clone()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.shared.is_closed()
    }

    #[getter]
    fn id(&self) -> u64 {
        self.shared.id
    }

    fn root<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // No read protocol needed: the root word never changes once set and the root dict is
        // never freed (the header's word holds a reference), so this never waits for a lock.
        let shared = self.shared.clone();
        self.shared.with(|st| {
            let r = st.root().map_err(errors::map_object)?;
            super::proxy::new_dict(py, st, &shared, r)
        })
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.close(py)
    }

    #[pyo3(signature = (timeout=None))]
    fn lock_excl(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        lock_excl(&self.shared, py, timeout)
    }

    #[pyo3(signature = (timeout=None))]
    fn lock_shared(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        lock_shared(&self.shared, py, timeout)
    }

    fn unlock(&self) -> PyResult<()> {
        unlock(&self.shared)
    }

    /// "excl", "shared" or None: what the calling thread holds.
    fn held(&self) -> PyResult<Option<&'static str>> {
        let tid = thread_id();
        self.shared.with(|st| {
            Ok(match st.held_by(tid) {
                Some(LockKind::Excl) => Some("excl"),
                Some(LockKind::Shared) => Some("shared"),
                None => None,
            })
        })
    }

    fn savepoint(&self) -> PyResult<u64> {
        let tid = thread_id();
        self.shared.with(|st| {
            if st.held_by(tid) != Some(LockKind::Excl) {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "a savepoint needs the thread's lockExcl",
                ));
            }
            Ok(st.savepoint())
        })
    }

    fn rollback_savepoint(&self, mark: u64) -> PyResult<()> {
        let tid = thread_id();
        self.shared.with(|st| {
            if st.held_by(tid) != Some(LockKind::Excl) {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "rollback needs the thread's lockExcl",
                ));
            }
            st.rollback_savepoint(mark).map_err(errors::map_object)
        })
    }

    fn flush(&self) -> PyResult<()> {
        self.shared
            .with(|st| st.flush().map_err(errors::map_object))
    }

    #[pyo3(signature = (timeout=None))]
    fn check<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let tid = thread_id();
        let r = self.shared.blocking(py, timeout, |st| st.check(tid))?;
        let d = PyDict::new(py);
        d.set_item("objects", r.objects)?;
        d.set_item("live_blocks", r.live_blocks)?;
        d.set_item("live_bytes", r.live_bytes)?;
        d.set_item("unreachable_blocks", r.unreachable_blocks)?;
        d.set_item("unreachable_bytes", r.unreachable_bytes)?;
        d.set_item("orphans", r.orphans)?;
        d.set_item("held", r.held)?;
        Ok(d)
    }

    #[pyo3(signature = (timeout=None))]
    fn gc<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let tid = thread_id();
        let r = self.shared.blocking(py, timeout, |st| st.gc(tid))?;
        let d = PyDict::new(py);
        d.set_item("objects", r.objects)?;
        d.set_item("blocks", r.blocks)?;
        d.set_item("bytes", r.bytes)?;
        Ok(d)
    }

    #[pyo3(signature = (timeout=None))]
    fn stats<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let tid = thread_id();
        let s = self.shared.blocking(py, timeout, |st| st.stats(tid))?;
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
