//! The store as one process has it open: attaching and the root at open, the state of this
//! participant (its lock calls' bookkeeping, the change in progress, its held set), and
//! detaching at close. The words it reads and writes go through access.rs; the change's undo
//! log is undo.rs; the lock calls lock.rs.

use super::value::Kind;
use super::{container, held, lock, recovery, undo, words, Error, Result};
use crate::heap::{self, Attached, Heap};
use crate::region::{table, AttachLiveness, Mapping, OpenOptionsRegion};
use crate::sync::{Ordering, WordStore};
use std::path::{Path, PathBuf};

/// The object layer of one open store, as used by one process.
///
/// Not `Sync`: the layer above serializes calls (the Python layer's steps take an owner word).
/// Threads are told apart by the `thread` argument of the lock calls.
pub struct Store {
    // Field order matters: `heap` borrows from `attached` and is dropped first.
    pub(super) heap: Heap<'static, Mapping, AttachLiveness>,
    pub(super) lock: lock::LockWords,
    pub(super) attached: Box<Attached>,
    pub(super) path: PathBuf,
    pub(super) slot: u32,
    /// The writer word is ours (a single op or a lockExcl section).
    pub(super) writing: bool,
    pub(super) locks: lock::LocalLocks,
    /// The undo log of the change in progress.
    pub(super) log: undo::ChangeLog,
    pub(super) held: held::HeldSet,
    /// (node, offset) of every user object the last `encode` wrote (for binding the Python
    /// instances they came from).
    pub(super) encoded_objects: Vec<(u32, u64)>,
    pub(super) closed: bool,
    /// durable=True: every undo entry is on disk before the write it covers, and a commit is
    /// on disk before it returns.
    pub(super) durable: bool,
    /// readonly=True: the store file is mapped read-only; every step that would write it
    /// fails with `Error::ReadOnly` before touching it.
    pub(super) readonly: bool,
}

/// A snapshot of the sequence word taken by a reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadToken(pub(super) u64);

impl Store {
    /// Opens (creating if missing) the store at `path` and attaches to it. Creates the root
    /// dict if this is the first open of a new store.
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_with(path, false)
    }

    /// `open`, choosing durability (see `durable` and FORMAT.md §10.8).
    pub fn open_with(path: &Path, durable: bool) -> Result<Store> {
        Self::open_region(
            path,
            OpenOptionsRegion {
                create: true,
                durable,
                readonly: false,
            },
        )
    }

    /// Opens an existing store read-only: the store file is opened and mapped without write
    /// access and never written (the lock file is, as every participant's). Reads work as in
    /// any process; every change raises `Error::ReadOnly`. Such a participant never recovers
    /// killed processes (that writes the store): it waits for a writable one to do it.
    pub fn open_readonly(path: &Path) -> Result<Store> {
        Self::open_region(
            path,
            OpenOptionsRegion {
                create: false,
                durable: false,
                readonly: true,
            },
        )
    }

    /// Opens with every option: `create` (make a missing or empty file a new store), `durable`
    /// and `readonly` (as `open_with` and `open_readonly`).
    pub fn open_region(path: &Path, opts: OpenOptionsRegion) -> Result<Store> {
        let durable = opts.durable;
        let readonly = opts.readonly;
        let attached = Box::new(Attached::open_with(
            path,
            Box::new(recovery::recover_slot),
            opts,
        )?);
        let heap: Heap<'static, Mapping, AttachLiveness> =
            // SAFETY: `attached` is boxed (its address never changes) and is dropped after
            // `heap` and `lock` (field order), the only borrows of it that outlive this call.
            unsafe { std::mem::transmute(attached.heap()) };
        let lock_words: &'static Mapping =
            // SAFETY: as above: the lock file mapping lives inside `attached`.
            unsafe { &*(attached.region().lock_words() as *const Mapping) };
        let slot = attached.slot();
        let generation = attached
            .region()
            .table(&NoLiveness)
            .generation(slot)
            .map_err(Error::from)?;
        let lock = lock::LockWords::new(lock_words, slot, generation)?;
        let mut store = Store {
            heap,
            lock,
            attached,
            path: path.to_path_buf(),
            slot,
            writing: false,
            locks: lock::LocalLocks::default(),
            log: undo::ChangeLog::default(),
            held: held::HeldSet::default(),
            encoded_objects: Vec::new(),
            closed: false,
            durable,
            readonly,
        };
        if readonly {
            store.held.init_readonly(&store.attached, slot)?;
            if recovery::orphaned_undo(&store.attached)?.is_some() {
                return Err(Error::ReadOnly(
                    "the store holds a change cut short by a crash or power cut; open it once \
                     without readonly=True to roll it back"
                        .into(),
                ));
            }
            if store.mem().load(words::ROOT, Ordering::Acquire)? == 0 {
                return Err(Error::ReadOnly(
                    "the store has no root yet: open it once without readonly=True".into(),
                ));
            }
            return Ok(store);
        }
        // What an earlier life of the store left in flight (a reboot, a lock file deleted
        // while nobody was attached): the allocator's lost journals. The lock file says so
        // until a writable opener has repaired them (a read-only one that rebuilt it cannot).
        store.attached.repair_if_pending().map_err(Error::Open)?;
        // A durable change cut short by a reboot. Every opener looks (one word, 0 nearly
        // always), so one that attached right after another rebuilt the lock file cannot
        // start changing the store before the change is undone.
        recovery::roll_back_orphaned_undo(&store.attached)?;
        store.ensure_root()?;
        if durable {
            store.sync_directory()?;
            store.flush()?;
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn slot(&self) -> u32 {
        self.slot
    }

    pub(super) fn mem(&self) -> &Mapping {
        self.attached.region().store()
    }

    pub(super) fn lock_mem(&self) -> &Mapping {
        self.attached.region().lock_words()
    }

    /// The root dict's offset.
    pub fn root(&self) -> Result<u64> {
        let r = self.mem().load(words::ROOT, Ordering::Acquire)?;
        self.check_container(r, Some(Kind::Dict))?;
        Ok(r)
    }

    pub(super) fn ensure_root(&mut self) -> Result<()> {
        if self.mem().load(words::ROOT, Ordering::Acquire)? != 0 {
            return Ok(());
        }
        // The first opener creates it; a racing opener waits for the writer word.
        loop {
            match self.begin_op(lock::ME_ANY_THREAD) {
                Ok(()) => break,
                Err(Error::Busy(b)) => self.lock.wait(b, std::time::Duration::from_millis(20)),
                Err(e) => return Err(e),
            }
        }
        let result = (|| {
            if self.get(words::ROOT)? == 0 {
                let d = self.new_dict(0)?;
                self.put(d + container::REFCNT, 1)?;
                self.put(words::ROOT, d)?;
            }
            Ok(())
        })();
        self.end_op(result.is_ok())?;
        result
    }
}

impl Store {
    /// Whether the store holds any writer right now (for diagnostics).
    pub fn is_writing(&self) -> bool {
        self.writing
    }

    pub fn heap_check(&self) -> Result<heap::HeapStats> {
        Ok(self.heap.check()?)
    }

    /// Flushes the store file's mapping to disk.
    pub fn flush(&self) -> Result<()> {
        if self.readonly {
            return Ok(()); // nothing was written
        }
        Ok(self.attached.region().flush()?)
    }

    /// Recovers every participant that died while attached: its change or lockExcl section
    /// rolled back, its locks released, its slot freed. Returns how many.
    pub fn recover_dead(&self) -> Result<u32> {
        self.attached.recover_dead().map_err(Error::Open)
    }

    /// Shrinks the file of a store that no other process can have open (a copy just written
    /// under a private name, as `python -m persist compact` makes it) to the end of its last
    /// used page. Returns the file's size before and after. Lowering `file_size` is safe only
    /// because nobody else maps the file: a process that did could touch bytes that are gone.
    pub fn trim_unshared(path: &Path) -> Result<(u64, u64)> {
        let st = Store::open(path)?;
        if st.processes()? != 1 {
            return Err(Error::Usage(
                "another process has the store open: only a store nobody else uses can be \
                 trimmed"
                    .into(),
            ));
        }
        let end = st.heap.used_end()?.next_multiple_of(4096);
        let before = st.mem().size();
        st.close()?;
        let io = |source| Error::Io {
            op: "trimming".into(),
            path: Some(path.to_path_buf()),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if end >= before && end >= len {
            return Ok((len, len));
        }
        // The size word first: a file longer than `file_size` is a valid store (§7.3).
        use std::os::unix::fs::FileExt;
        file.write_all_at(
            &end.min(before).to_le_bytes(),
            crate::region::hdr::FILE_SIZE,
        )
        .map_err(io)?;
        file.set_len(end).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok((len, end))
    }

    /// Whether the store was opened read-only.
    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    /// `Error::ReadOnly(why)` on a read-only store.
    pub(super) fn refuse_if_readonly(&self, why: &str) -> Result<()> {
        if self.readonly {
            return Err(Error::ReadOnly(why.into()));
        }
        Ok(())
    }

    /// Number of attached participants that died and are not recovered yet.
    pub fn dead_processes(&self) -> Result<u64> {
        self.count_attached(false)
    }

    /// Number of attached participants that are alive.
    pub fn processes(&self) -> Result<u64> {
        self.count_attached(true)
    }

    /// Attached participants whose liveness is `alive`.
    pub(super) fn count_attached(&self, alive: bool) -> Result<u64> {
        let t = self.attached.region().table(&NoLiveness);
        let mut n = 0;
        for s in 0..t.slots {
            if t.status(s)? == table::STATUS_ATTACHED && self.attached.is_alive(s) == alive {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Closes: rolls back an open lockExcl section, releases shared holds and held objects,
    /// and detaches.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    pub(super) fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if self.writing {
            self.rollback_to(0)?;
            self.finish_op()?;
        }
        self.drop_shared_holds()?;
        self.release_all_held()?;
        self.release_log()?;
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// For reading table words (status, generation) without asking the kernel about liveness.
pub(super) struct NoLiveness;
impl crate::sync::Liveness for NoLiveness {
    fn is_alive(&self, _slot: u32) -> bool {
        true
    }
}

impl Store {
    /// Makes the store file's directory entry durable (a new store survives a power cut).
    pub(super) fn sync_directory(&self) -> Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| Error::Io {
                op: "fsync".into(),
                path: Some(dir),
                source,
            })
    }
}
