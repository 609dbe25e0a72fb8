//! A store shared by the threads of one process, and the policy for waiting on the store lock.
//!
//! Problem. [`Store`] is one process's view of an open store, usable by one step at a time, and
//! its lock calls never block: they report what stands in the way ([`Error::Busy`]). Something
//! must run the threads' steps one at a time, sleep on a lock word without holding up the other
//! threads, retry unlocked reads that raced with a writer, look for a dead holder while it
//! waits, give back the holds of handles dropped in any thread, and make a forked child a
//! participant of its own. That is store policy, the same for every embedding: it lives here,
//! and the Python module only supplies what waiting means for it ([`Waiting`]: release the GIL,
//! check for Ctrl-C).
//!
//! Mechanism.
//! - The *step lock*: a word naming the thread inside a step (0: none). A step takes it by CAS
//!   and gives it back when its guard drops; a thread that finds it taken by another thread
//!   sleeps briefly through [`Waiting::sleep`] (never blocking while it holds what the step's
//!   owner may need, such as the GIL), and one that finds it taken by itself (a callback from
//!   inside a step, e.g. a finalizer) gets an error, not a deadlock. It is a word and not a
//!   `Mutex` because a forked child must be able to take over a step that a thread of its
//!   parent was inside (that thread does not exist in the child).
//! - Waiting: a step that reports `Busy` leaves the step lock and sleeps on the lock word with
//!   the futex (spinning first, `lock.rs`), in slices growing from [`FIRST_SLICE`] to
//!   [`WAIT_SLICE`], checking for interrupts and the deadline between slices. While the same
//!   `Busy` stays, each further wait first looks for dead participants and recovers them, so a
//!   dead holder is found within milliseconds.
//! - Reads run without the writer lock and are validated; one that fails validation
//!   [`READ_RETRIES`] times in a row (whether a change raced it or it found a part held),
//!   or [`LONG_READ_RETRIES`] times with [`LONG_READ`] since the first, runs as a change
//!   instead (writers keep racing it).
//! - Dropped handles: [`SharedStore::release`] only queues the container (it may run inside a
//!   step, from a garbage collector); the next step gives the holds back, and the next change
//!   collects orphans that were waiting for them.
//!
//! Invariants: at most one `StepGuard` exists per store; `store` is touched only through it;
//! `close` unmaps nothing while a thread sleeps on the lock words (`waiting`).

use super::{Busy, Error, ListWaiter, Result, Store, Waiter};
use crate::list_event::Wait;
use crate::region::OpenOptionsRegion;
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use std::cell::UnsafeCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// The longest single sleep: a waiter wakes this often to check interrupts and its deadline.
pub const WAIT_SLICE: Duration = Duration::from_millis(50);

/// The longest single sleep of a thread waiting for a list to gain items: it wakes this often
/// to check interrupts, its deadline, and whether the store is closing (a producer killed
/// between its commit and its wake-up delays it by this much at most, until that producer's
/// recovery wakes it).
pub const LIST_SLICE: Duration = Duration::from_millis(500);

/// A publication tried before a change (`SharedStore::publish_or_write_in`): `Ok(None)` when
/// it did not apply.
type Publication<'a, T, E> = dyn FnMut(&mut Store) -> Result<Option<T>, E> + 'a;

/// How often, at most, the waiters of one process look for dead participants (a dead holder
/// is found within about this much more).
pub const DEAD_LOOK_EVERY: Duration = Duration::from_millis(2);

/// The first sleep on a lock word (then doubling up to `WAIT_SLICE`).
pub const FIRST_SLICE: Duration = Duration::from_millis(1);

/// What a waiting step remembers between its waits ([`SharedStore::wait_for`]).
#[derive(Default)]
struct WaitState {
    /// The busy value of the last wait, and how many waits in a row met it.
    last: Option<(Busy, u32)>,
    /// The last wait saw the writer word freed (and returned for the try).
    saw_freed: bool,
}

/// Waits on one lock word and value, with no dead holder found, after which the word is looked
/// at for a state no live process leaves (`Store::repair_stale_lock`): about 30 ms in.
pub const STALE_AFTER: u32 = 5;

/// A read that failed validation this many times runs under the writer lock instead.
pub const READ_RETRIES: u32 = 64;

/// A read that failed validation [`LONG_READ_RETRIES`] times, and has been retried this long
/// since the first failure, runs under the writer lock instead.
const LONG_READ: Duration = Duration::from_millis(50);
const LONG_READ_RETRIES: u32 = 4;

/// How long a thread sleeps while another thread of this process is inside a step.
const STEP_BUSY_SLEEP: Duration = Duration::from_micros(20);

/// What waiting means for the embedding: the Python module releases the GIL while it sleeps
/// and stops waiting on Ctrl-C; [`Plain`] just sleeps.
pub trait Waiting<E> {
    /// Called before each sleep: an error stops the wait (a pending signal, say).
    fn check_interrupt(&self) -> Result<(), E>;

    /// Runs `sleep`, letting go of whatever the calling thread holds that other threads need.
    fn sleep(&self, sleep: &mut (dyn FnMut() + Send));
}

/// Waiting for Rust callers: never interrupted, sleeps as it is.
pub struct Plain;

impl Waiting<Error> for Plain {
    fn check_interrupt(&self) -> Result<()> {
        Ok(())
    }

    fn sleep(&self, sleep: &mut (dyn FnMut() + Send)) {
        sleep()
    }
}

/// The calling thread, as the store lock and the step lock know it.
pub fn thread_id() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as u64 }
}

static NEXT_STORE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One open store, shared by the threads of this process (and, in Python, by its handle and
/// all its proxies).
pub struct SharedStore {
    /// The object layer, used by one step at a time: only through a `StepGuard`, which exists
    /// while `step_owner` names its thread (None once closed).
    store: UnsafeCell<Option<Store>>,
    /// The store's lock words, for sleeping outside a step (replaced after a fork).
    waiter: Mutex<Waiter>,
    /// Threads sleeping on the waiter's words (close waits for them to leave).
    waiting: AtomicU64,
    /// When a waiter of this process last looked for dead participants (`wait_for`).
    dead_look: Mutex<Option<Instant>>,
    /// Threads of this process waiting for a list to gain items (`wait_change`), and for a
    /// change (`wait_versions`): the participant's waiting bit of each kind is set while its
    /// count is not 0 (`list_event`).
    list_waiting: Mutex<[u32; 2]>,
    /// Containers whose handles were dropped (their holds are given back at the next step).
    pending: Mutex<Vec<super::Container>>,
    /// Whether `pending` may be non-empty (checked without its mutex on every step).
    has_pending: AtomicBool,
    /// The thread inside a step (the one that may use `store`), or 0.
    step_owner: AtomicU64,
    /// Orphans may be collectable: the next change collects them.
    collect: AtomicBool,
    closed: AtomicBool,
    id: u64,
    path: PathBuf,
    /// How it was opened (a child after fork re-opens the same way, never creating).
    options: OpenOptionsRegion,
}

// SAFETY: `store` is only reached through a `StepGuard`, and at most one exists at a time (it
// is created when `step_owner` goes from 0 to the calling thread and dropped when it goes back
// to 0), so the Store is never used by two threads at once; it is Send, so handing it from
// thread to thread this way is sound. Every other field is Sync.
unsafe impl Sync for SharedStore {}

impl SharedStore {
    /// Opens the store at `path` (`OpenOptionsRegion`: create, durable, readonly).
    pub fn open(path: PathBuf, options: OpenOptionsRegion) -> Result<Arc<SharedStore>> {
        let store = open_store(&path, options)?;
        let waiter = store.waiter();
        let shared = Arc::new(SharedStore {
            store: UnsafeCell::new(Some(store)),
            waiter: Mutex::new(waiter),
            waiting: AtomicU64::new(0),
            dead_look: Mutex::new(None),
            list_waiting: Mutex::new([0; 2]),
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
            step_owner: AtomicU64::new(0),
            collect: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            path,
            options,
        });
        registry().push(Arc::downgrade(&shared));
        Ok(shared)
    }

    /// A number that tells this open store from the others of this process.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release in `close`.
        self.closed.load(Ordering::Acquire)
    }

    /// The store, for one step. Never blocks while holding what the step's owner may need:
    /// another thread's step is waited for through `w.sleep`. A thread that is already inside
    /// a step (code it ran called back into the store) gets an error, not a hang.
    fn guard<E: From<Error>>(&self, w: &impl Waiting<E>) -> Result<StepGuard<'_>, E> {
        let me = thread_id();
        loop {
            // Acquire: pairs with the Release in `StepGuard::drop`, so this step sees
            // everything the previous step (in any thread) did to `store`.
            match self
                .step_owner
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(StepGuard { shared: self }),
                Err(owner) if owner == me => {
                    return Err(Error::Usage(
                        "persist was called back while a store operation was running in \
                         the same thread (from a finalizer?)"
                            .into(),
                    )
                    .into())
                }
                Err(_) => w.sleep(&mut || std::thread::sleep(STEP_BUSY_SLEEP)),
            }
        }
    }

    /// Gives back the holds of dropped handles.
    fn drain_pending(&self, st: &mut Store) {
        // Relaxed: a release that races with this check is handled at the next step. A plain
        // load first: the swap is a locked instruction, and this runs on every step.
        if !self.has_pending.load(Ordering::Relaxed)
            || !self.has_pending.swap(false, Ordering::Relaxed)
        {
            return;
        }
        let list = std::mem::take(&mut *lock(&self.pending));
        for c in list {
            if st.unhold(c).unwrap_or(false) {
                self.collect.store(true, Ordering::Relaxed);
            }
        }
    }

    /// A handle of container `c` went away: its hold is given back at the next step. Never
    /// takes the step lock (it may run inside a step, from a garbage collector).
    pub fn release(&self, c: super::Container) {
        lock(&self.pending).push(c);
        self.has_pending.store(true, Ordering::Relaxed);
    }

    /// Sleeps until `busy` may have cleared. `state` counts the waits on this same `busy` in a
    /// row (and whether the last one saw the writer word freed): while it stays, its holder may
    /// be dead, so dead participants are looked for before
    /// each further wait (a lock query per attached participant: cheap) and recovered. The
    /// sleeps grow from `FIRST_SLICE` to `WAIT_SLICE`.
    fn wait_for<E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        busy: Busy,
        deadline: Option<Instant>,
        state: &mut WaitState,
    ) -> Result<(), E> {
        // The last wait saw the writer word freed, and the try after it found the word taken
        // again by the same owner: that owner takes it straight back after freeing it, in a
        // loop, and is left the word for a moment when it frees it next.
        let retaken = matches!(busy, Busy::Writer(_))
            && state.saw_freed
            && matches!(state.last, Some((b, _)) if b == busy);
        let seen = &mut state.last;
        let rounds = match seen {
            // The same word and value again, but this process looked for dead participants
            // less than `DEAD_LOOK_EVERY` ago: a lock taken in turn by the same live process
            // shows the same value at every wait, and a look costs a liveness check of every
            // slot.
            Some((b, n)) if *b == busy && !self.dead_look_due() => *n,
            Some((b, n)) if *b == busy => {
                let recovered = self.with(w, |st| Ok::<_, E>(st.recover_dead()?))?;
                if recovered > 0 {
                    *seen = None;
                    return Ok(());
                }
                *n += 1;
                // Still the same word and value, and no dead holder: the lock file may hold a
                // state no live process left. Repaired (or, read-only, reported) by then.
                if *n >= STALE_AFTER
                    && self.with(w, |st| Ok::<_, E>(st.repair_stale_lock(busy)?))?
                {
                    *seen = None;
                    return Ok(());
                }
                *n
            }
            _ => {
                *seen = Some((busy, 0));
                0
            }
        };
        let slice = (FIRST_SLICE * (1 << rounds.min(8))).min(WAIT_SLICE);
        state.saw_freed = self.wait(w, busy, deadline, slice, retaken)?;
        Ok(())
    }

    /// Whether a waiter of this process may look for dead participants now (at most once per
    /// `DEAD_LOOK_EVERY`); if so, the time is taken as the last look.
    fn dead_look_due(&self) -> bool {
        let now = Instant::now();
        let mut last = lock(&self.dead_look);
        if last.is_some_and(|t| now.duration_since(t) < DEAD_LOOK_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Sleeps at most `slice` until `busy` may have cleared, outside any step; whether it saw
    /// the writer word freed ([`Waiter::wait`], which lets it be for a moment if `retaken`).
    fn wait<E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        busy: Busy,
        deadline: Option<Instant>,
        slice: Duration,
        retaken: bool,
    ) -> Result<bool, E> {
        w.check_interrupt()?;
        let slice = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(Error::Timeout.into());
                }
                (d - now).min(slice)
            }
            None => slice,
        };
        // SeqCst (the increment, the load of `closed` and the store of it in `close`, and
        // `close`'s load of `waiting`): either `close` sees this waiter and waits for it, or
        // this waiter sees the store closed and does not touch its words.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Closed.into());
        }
        let waiter = *lock(&self.waiter);
        let mut saw_freed = false;
        w.sleep(&mut || {
            // SAFETY: the store is open (checked above after registering as a waiter), and
            // `close` waits for `waiting` to drop to zero before it unmaps anything.
            saw_freed = unsafe { waiter.wait(busy, slice, retaken) };
        });
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        Ok(saw_freed)
    }

    /// Runs `f` as one change: takes the writer lock (waiting as needed), commits if `f`
    /// succeeds, rolls back everything `f` did if it fails.
    pub fn write<T, E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        f: impl FnMut(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        self.change_or_publish(w, None, None, f)
    }

    /// Runs `f`, a single change of container `c` alone, on `c`'s part lock where it can
    /// (FORMAT.md §10.9: parts on, a store neither durable nor read-only, no lock held in this
    /// process, no orphans to collect), so that changes of different containers run in
    /// parallel across processes; otherwise, or when `f` turns out to need more than `c` (it
    /// drops a reference to a container, stores one already stored: `Store::part_refuse`), as
    /// [`SharedStore::write`] does. `f` may run twice (rolled back in between).
    pub fn write_in<T, E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        c: super::Container,
        f: impl FnMut(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        self.change_or_publish(w, Some(c), None, f)
    }

    /// Runs `publish`, a publication (`Store::publish_dict_value`: one value word replaced by
    /// CAS, nothing held), and if it did not apply (`Ok(None)`: nothing changed), `f` as
    /// `write_in(c, f)` does, in the same step. Wakes `Store.wait` sleepers either way if
    /// something changed.
    pub fn publish_or_write_in<T, E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        c: super::Container,
        mut publish: impl FnMut(&mut Store) -> Result<Option<T>, E>,
        f: impl FnMut(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        self.change_or_publish(w, Some(c), Some(&mut publish), f)
    }

    /// `write` (`part` None), `write_in` (`part` the container) and `publish_or_write_in`
    /// (`publish` tried once, first, in the first step): each step tries the part first, if
    /// any, then the store-wide writer lock in the same step.
    fn change_or_publish<T, E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        part: Option<super::Container>,
        mut publish: Option<&mut Publication<'_, T, E>>,
        mut f: impl FnMut(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let tid = thread_id();
        let mut waits = WaitState::default();
        let mut first_step = true;
        loop {
            let busy = 'step: {
                let mut g = self.guard(w)?;
                let st = g.as_mut().ok_or(Error::Closed)?;
                st.check_intact()?;
                if std::mem::take(&mut first_step) {
                    // Kept through this call's steps, for the store-wide rerun of a try on a
                    // part (`Store::version`).
                    st.rolled_back_part = None;
                }
                self.drain_pending(st);
                // Orphans to collect (a proxy of one went): on the orphan list's own part
                // where it can, before a change that would take a part; else (parts off: one
                // process alone) the store-wide path below collects them.
                if part.is_some()
                    && self.collect.load(Ordering::Relaxed)
                    && st.parts_on()
                    && self.collect.swap(false, Ordering::Relaxed)
                {
                    let collected = st.collect_orphans_on_part();
                    let intact = st.check_intact();
                    if !matches!(collected, Ok(true)) || intact.is_err() || st.take_orphans_left() {
                        self.collect.store(true, Ordering::Relaxed);
                    }
                    intact?;
                    match collected {
                        Ok(_) => {}
                        Err(Error::Busy(b)) => break 'step b,
                        Err(e) => return Err(e.into()),
                    }
                }
                if let Some(p) = publish.take() {
                    let r = p(st);
                    // A publication that touched a vanished page fails with that cause.
                    let intact = st.check_intact();
                    let published = matches!(r, Ok(Some(_))) && intact.is_ok();
                    notify_if_changed(st, published);
                    intact?;
                    if let Some(v) = r? {
                        return Ok(v);
                    }
                }
                // Relaxed: a hint (see `run_change`). Orphans left to collect here (the try on
                // the list's part above refused) are collected store-wide.
                if let Some(c) = part.filter(|_| !self.collect.load(Ordering::Relaxed)) {
                    match st.begin_part(c) {
                        Ok(false) => {}
                        Ok(true) => {
                            let mut r = f(st);
                            if let Err(e) = st.check_intact() {
                                r = Err(e.into());
                            }
                            if r.is_err() && st.take_part_fallback() {
                                // `f` needs more than `c`: undone, and run again store-wide.
                                st.end_part(false)?;
                            } else {
                                let ended = st.end_part(r.is_ok());
                                if st.take_orphans_left() {
                                    self.collect.store(true, Ordering::Relaxed);
                                }
                                // Unless the commit's releases needed more than `c` (more
                                // than a part change runs before its commit point): then it
                                // was undone, and runs again store-wide.
                                if !(ended.is_err() && st.take_part_fallback()) {
                                    let ended = ended.and_then(|()| st.check_intact());
                                    notify_if_changed(st, r.is_ok() && ended.is_ok());
                                    let r = r?;
                                    ended?;
                                    return Ok(r);
                                }
                            }
                        }
                        Err(Error::Busy(b)) => break 'step b,
                        Err(e) => return Err(e.into()),
                    }
                }
                match st.begin_op(tid) {
                    Ok(()) => return self.run_change(st, &mut f),
                    Err(Error::Busy(b)) => b,
                    Err(e) => return Err(e.into()),
                }
            };
            self.wait_for(w, busy, None, &mut waits)?;
        }
    }

    /// The change begun in `write`: `f`, then orphans collected if some may be waiting, then
    /// the commit (or the rollback, if either failed).
    fn run_change<T, E: From<Error>>(
        &self,
        st: &mut Store,
        f: &mut impl FnMut(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        // A change that touched a vanished page (its writes there are lost) is rolled back
        // as far as the damaged mapping allows, and fails with that cause (whatever the zeros
        // it read made it report).
        let mut r = f(st);
        if let Err(e) = st.check_intact() {
            r = Err(e.into());
        }
        if r.is_ok()
            && self.collect.load(Ordering::Relaxed)
            && self.collect.swap(false, Ordering::Relaxed)
        {
            if let Err(e) = st.collect_orphans() {
                let _ = st.end_op(false);
                return Err(e.into());
            }
        }
        let ended = st.end_op(r.is_ok()).and_then(|()| st.check_intact());
        notify_if_changed(st, r.is_ok() && ended.is_ok());
        let r = r?;
        ended?;
        Ok(r)
    }

    /// Runs `f` as a change (on `part`'s part lock where it can, as `write_in` does) until it
    /// returns `Some`: between tries, sleeps until a container changes in any process
    /// (`list_event`), as `SharedStore::wait_event` does. `Ok(None)` when `timeout` passes or
    /// `cancel` is set first. `f` returns `None` for "nothing to take" (its change then commits
    /// nothing worth waking anyone for). After a wake-up, the list `watch` is read first (no
    /// lock, no change) and `f` runs only if it has items, so a wake-up for another container
    /// costs a read.
    #[allow(clippy::too_many_arguments)]
    pub fn wait_change<T, E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        part: Option<super::Container>,
        watch: super::Container,
        timeout: Option<Duration>,
        cancel: Option<&std::sync::atomic::AtomicBool>,
        mut f: impl FnMut(&mut Store) -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        let deadline = deadline_of(timeout);
        // The first try announces nothing: an item that is there costs no more than a pop.
        if let Some(v) = self.change_or_publish(w, part, None, &mut f)? {
            return Ok(Some(v));
        }
        self.wait_event(w, Wait::Items, deadline, cancel, || {
            // A read after the fence in `seen` sees what a change before the producer's fence
            // added, as the change would (`list_event`).
            if self.read(w, |st| Ok::<_, E>(st.list_len(watch)? > 0))? {
                return self.change_or_publish(w, part, None, &mut f);
            }
            Ok(None)
        })
    }

    /// Sleeps until the version of one of `cs` differs from `since` (one version per
    /// container, as this returns them), in any process: `Ok(Some(versions now))`, or
    /// `Ok(None)` when `timeout` passes or `cancel` is set first. With `since` None, returns
    /// the versions now at once. Every committed change of a container moves its version
    /// (FORMAT.md §10.9) and then wakes the waiters (`notify_if_changed`), so a change made
    /// after the caller read `since` is never slept through (`list_event`).
    pub fn wait_versions<E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        cs: &[super::Container],
        since: Option<&[u64]>,
        timeout: Option<Duration>,
        cancel: Option<&std::sync::atomic::AtomicBool>,
    ) -> Result<Option<Vec<u64>>, E> {
        let deadline = deadline_of(timeout);
        let now = || {
            self.read(w, |st| {
                cs.iter()
                    .map(|&c| st.read_version(c).map_err(E::from))
                    .collect::<Result<Vec<u64>, E>>()
            })
        };
        let changed = |v: Vec<u64>| match since {
            Some(s) if s == v.as_slice() => None,
            _ => Some(v),
        };
        // The first look announces nothing: a change already made costs one read.
        if let Some(v) = changed(now()?) {
            return Ok(Some(v));
        }
        self.wait_event(w, Wait::Change, deadline, cancel, || Ok(changed(now()?)))
    }

    /// The waiting side of `list_event` for one thread: announces this participant's waiting
    /// bit (its first waiting thread), then, until `ready` gives `Some`, the deadline passes
    /// or `cancel` is set: reads the event word (`seen`, after a SeqCst fence), runs `ready`,
    /// and sleeps while the event word holds `seen`, in slices of `LIST_SLICE`, checking for
    /// interrupts (Ctrl-C) before each look. Withdraws the bit when its participant's last
    /// waiting thread leaves.
    fn wait_event<T, E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        kind: Wait,
        deadline: Option<Instant>,
        cancel: Option<&std::sync::atomic::AtomicBool>,
        ready: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        let waiter = self.with(w, |st| Ok::<_, E>(st.list_waiter()))?;
        let i = kind as usize;
        self.outside(|| {
            let mut n = lock(&self.list_waiting);
            if n[i] == 0 {
                // SAFETY: `outside` runs this only while the store is open.
                unsafe { waiter.announce(kind) };
            }
            n[i] += 1;
        })?;
        let r = self.wait_event_loop(w, deadline, cancel, &waiter, ready);
        let _ = self.outside(|| {
            let mut n = lock(&self.list_waiting);
            n[i] -= 1;
            if n[i] == 0 {
                // SAFETY: as above.
                unsafe { waiter.withdraw(kind) };
            }
        });
        r
    }

    fn wait_event_loop<T, E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        deadline: Option<Instant>,
        cancel: Option<&std::sync::atomic::AtomicBool>,
        waiter: &ListWaiter,
        mut ready: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        loop {
            // Before each try: a pending signal (Ctrl-C) or a cancel ends the wait with
            // nothing taken, rather than after an item was taken that the caller then loses.
            w.check_interrupt()?;
            // Relaxed: the canceller wakes this thread after setting the flag (the futex
            // orders the two), and a late look costs one more slice at most.
            if cancel.is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed)) {
                return Ok(None);
            }
            // SAFETY: `outside` runs this only while the store is open.
            let seen = self.outside(|| unsafe { waiter.seen() })?;
            if let Some(v) = ready()? {
                return Ok(Some(v));
            }
            let slice = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    (d - now).min(LIST_SLICE)
                }
                None => LIST_SLICE,
            };
            self.waiting.fetch_add(1, Ordering::SeqCst);
            if self.closed.load(Ordering::SeqCst) {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(Error::Closed.into());
            }
            w.sleep(&mut || {
                // SAFETY: the store is open (checked above after registering as a waiter),
                // and `close` waits for `waiting` to drop to zero before it unmaps anything.
                unsafe { waiter.sleep(seen, slice) };
            });
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wakes every thread of this process that waits in [`SharedStore::wait_change`] (and,
    /// with them, those of other processes: each tries once and sleeps again), so that one
    /// whose `cancel` was set returns now.
    pub fn wake_list_waiters(&self) {
        let Ok(waiter) = self.with(&Plain, |st| Ok(st.list_waiter())) else {
            return;
        };
        // SAFETY: `outside` runs this only while the store is open.
        let _ = self.outside(|| unsafe { waiter.wake_all() });
    }

    /// Runs `f`, which touches the lock file's words outside a step, while the store is open:
    /// registered in `waiting`, so `close` unmaps nothing meanwhile (`Error::Closed` once
    /// closed).
    fn outside<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        // SeqCst: see `wait`.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Closed);
        }
        let r = f();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        Ok(r)
    }

    /// Runs `f` as a consistent read: without a lock, retried if a change raced with it. `f`
    /// may run several times; what an invalid run produced is dropped after the step ends
    /// (dropping handles must not happen inside it).
    pub fn read<T, E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        mut f: impl FnMut(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let tid = thread_id();
        let mut tries = 0;
        // When the first try failed: taken then, not before, so a read that succeeds at once
        // (nearly all of them) reads no clock.
        let mut failing_since = None;
        let mut waits = WaitState::default();
        loop {
            let (result, busy, vanished) = {
                let mut g = self.guard(w)?;
                let st = g.as_mut().ok_or(Error::Closed)?;
                st.check_intact()?;
                self.drain_pending(st);
                match st.read_begin(tid) {
                    Ok(token) => {
                        let r = f(st);
                        // What a read of a vanished page returned is zeros, not the store.
                        match st.check_intact() {
                            Err(e) => (Some(r), None, Some(e)),
                            Ok(()) if st.read_valid(token) => return r,
                            // A part found held: wait for it (and recover a dead holder).
                            Ok(()) => (Some(r), st.read_busy(), None),
                        }
                    }
                    Err(b) => (None, Some(b), None),
                }
            };
            // Whether `f` ran and was invalidated (rather than finding a part held at once).
            let raced = result.is_some();
            drop(result);
            if let Some(e) = vanished {
                return Err(e.into());
            }
            if let Some(b) = busy {
                self.wait_for(w, b, None, &mut waits)?;
            }
            // Every invalidated run counts, also one that found a part held: a read longer
            // than the gaps between one container's part-locked changes would otherwise
            // wait and run again for ever.
            tries += u32::from(raced);
            let failing_since = *failing_since.get_or_insert_with(Instant::now);
            // A long read goes to the lock sooner: while it retries, the writers racing it may
            // make what it reads (and so each try) longer still. (Not after one slow try: on
            // a loaded machine a short read is often descheduled for milliseconds.)
            if tries >= READ_RETRIES
                || (tries >= LONG_READ_RETRIES && failing_since.elapsed() >= LONG_READ)
            {
                // Writers keep racing with this read: take the writer lock for it.
                return self.write(w, f);
            }
        }
    }

    /// Runs a step that may report `Busy` (the lock calls, check, gc), waiting until it
    /// succeeds or `timeout` passes (`Error::Timeout`).
    pub fn blocking<T, E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        timeout: Option<Duration>,
        mut f: impl FnMut(&mut Store) -> Result<T>,
    ) -> Result<T, E> {
        let deadline = timeout.map(|t| Instant::now() + t.min(Duration::from_secs(1 << 30)));
        let mut waits = WaitState::default();
        loop {
            let busy = {
                let mut g = self.guard(w)?;
                let st = g.as_mut().ok_or(Error::Closed)?;
                st.check_intact()?;
                self.drain_pending(st);
                // A step that touched a vanished page fails, whatever it returned (dropped
                // after the step ends).
                match (f(st), st.check_intact()) {
                    (r, Err(e)) => (Err(e), Some(r)),
                    (Ok(v), Ok(())) => return Ok(v),
                    (Err(Error::Busy(b)), Ok(())) => (Ok(b), None),
                    (Err(e), Ok(())) => return Err(e.into()),
                }
            };
            let busy = match busy {
                (Ok(b), _) => b,
                (Err(e), dropped) => {
                    drop(dropped);
                    return Err(e.into());
                }
            };
            self.wait_for(w, busy, deadline, &mut waits)?;
        }
    }

    /// A step that needs the store open but no lock.
    pub fn with<T, E: From<Error>>(
        &self,
        w: &impl Waiting<E>,
        f: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let (r, intact) = {
            let mut g = self.guard(w)?;
            let st = g.as_mut().ok_or(Error::Closed)?;
            st.check_intact()?;
            let r = f(st);
            (r, st.check_intact())
        };
        // A step that touched a vanished page fails, whatever it returned (dropped here,
        // after the step ended).
        intact?;
        r
    }

    /// Closes the store: rolls back an open lockExcl section, detaches. Harmless twice.
    pub fn close<E: From<Error>>(&self, w: &impl Waiting<E>) -> Result<(), E> {
        let st = self.guard(w)?.take();
        let Some(st) = st else { return Ok(()) };
        // Threads of this process waiting for a list to gain items wake now, not at the end
        // of their slice (the store is still open here: this step holds it).
        if *lock(&self.list_waiting) != [0; 2] {
            // SAFETY: the store is open (taken out of the step just now, not yet closed).
            unsafe { st.list_waiter().wake_all() };
        }
        // SeqCst: see `wait`. Release for `is_closed`'s Acquire.
        self.closed.store(true, Ordering::SeqCst);
        // Waiters registered before the store left the step lock wake within one slice.
        w.sleep(&mut || {
            while self.waiting.load(Ordering::SeqCst) != 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        // No thread waits for a list any more, nor can start to: the bit goes with the
        // participant (a waiter cut short by the close left it set).
        // SAFETY: the store is still open (`st.close` below unmaps it).
        unsafe { st.list_waiter().withdraw_all() };
        Ok(st.close()?)
    }

    /// In a child process after fork: the inherited store belongs to the parent's slot, so
    /// the child attaches as a participant of its own and holds again what its handles hold.
    /// The inherited `Store` is forgotten, not closed: closing it would detach the parent.
    fn reattach_in_child(&self) -> Result<()> {
        // A step another thread of the parent was in never finishes here (only the forking
        // thread exists in the child); its Store is replaced below, so take the step over.
        let owner = self.step_owner.load(Ordering::Acquire);
        if owner != 0 && owner != thread_id() {
            self.step_owner.store(0, Ordering::Release);
        }
        let mut g = self.guard(&Plain)?;
        let Some(old) = g.take() else { return Ok(()) };
        let held = old.held_containers();
        std::mem::forget(old);
        // The store exists (the parent had it open): never create it again.
        let mut st = open_store(
            &self.path,
            OpenOptionsRegion {
                create: false,
                ..self.options
            },
        )?;
        for (c, n) in held {
            for _ in 0..n {
                st.hold(c)?;
            }
        }
        *lock(&self.waiter) = st.waiter();
        // No thread of the parent waits here (only the forking thread exists in the child).
        *lock(&self.list_waiting) = [0; 2];
        *g = Some(st);
        Ok(())
    }

    /// In the child after a fork (the Python package registers this with `os.register_at_fork`;
    /// a Rust program calls it from its own child): every store this process has open becomes
    /// a participant of the child's own. The child holds no lock: a lockExcl section open in
    /// the parent stays the parent's.
    pub fn reattach_all_in_child() -> Result<()> {
        let stores: Vec<Arc<SharedStore>> = registry().iter().filter_map(Weak::upgrade).collect();
        for s in stores {
            s.reattach_in_child()?;
        }
        Ok(())
    }
}

fn open_store(path: &Path, options: OpenOptionsRegion) -> Result<Store> {
    Store::open_region(
        path,
        OpenOptionsRegion {
            create: options.create && !options.readonly,
            ..options
        },
    )
}

/// When a wait of `timeout` that starts now ends (None: never).
fn deadline_of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t.min(Duration::from_secs(1 << 30)))
}

/// After a change ends: if it changed a container and committed, wakes the waiters of every
/// process (`list_event`: a fence and a load of the waiting bits when nobody waits); the flag
/// is cleared either way. A change that changed nothing (a pop that found the list empty)
/// wakes nobody, so two waiters' empty tries never wake each other in turn.
fn notify_if_changed(st: &mut Store, committed: bool) {
    let (changed, grew) = st.take_changed();
    if changed && committed {
        st.notify_waiters(grew);
    }
}

/// A std mutex whose poisoning is ignored (the data it guards stays consistent: a list, a
/// copyable handle).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One step's exclusive use of the store.
struct StepGuard<'a> {
    shared: &'a SharedStore,
}

impl std::ops::Deref for StepGuard<'_> {
    type Target = Option<Store>;
    fn deref(&self) -> &Option<Store> {
        // SAFETY: this guard is the only one (see `unsafe impl Sync for SharedStore`).
        unsafe { &*self.shared.store.get() }
    }
}

impl std::ops::DerefMut for StepGuard<'_> {
    fn deref_mut(&mut self) -> &mut Option<Store> {
        // SAFETY: this guard is the only one, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.shared.store.get() }
    }
}

impl Drop for StepGuard<'_> {
    fn drop(&mut self) {
        // Release: the next step (Acquire in `guard`) sees what this one did.
        self.shared.step_owner.store(0, Ordering::Release);
    }
}

/// Every store opened in this process (for `reattach_all_in_child`).
fn registry() -> MutexGuard<'static, Vec<Weak<SharedStore>>> {
    static REGISTRY: Mutex<Vec<Weak<SharedStore>>> = Mutex::new(Vec::new());
    let mut g = lock(&REGISTRY);
    g.retain(|w| w.strong_count() > 0);
    g
}
