//! object manager: values, containers, reference counts, the store lock, the undo log.
//!
//! Terms: a *value word* is what a container slot holds (value.rs); a *container* is a list,
//! dict or object block (shared, reference counted); an *owned* value (str, bytes, big int,
//! float, tuple) belongs to exactly one value word. An *op* is one change made under the
//! writer lock: a single operation, or everything inside a lockExcl section.
//!
//! Concurrency (FORMAT.md §8):
//! - Writers are serialized by the *writer word* in the lock file (a robust mutex: the owner's
//!   slot and generation). A single change takes it briefly; lockExcl keeps it until the
//!   outermost unlock. lockShared holders are counted under it, and writers wait for the count
//!   to be zero.
//! - Readers take no lock: the store *sequence* word is odd while a writer changes anything
//!   (for a lockExcl section: the whole section), and a reader validates that it was even and
//!   unchanged around its reads (a seqlock). So a reader sees every change whole, never a
//!   change that may still be rolled back, and waits only while a change is in progress.
//! - Reclamation: a block is freed only by a writer holding the writer word, after the change
//!   that unlinked it has been committed. Readers that raced with it read memory that stays
//!   mapped (the file never shrinks) and discard what they read, because the sequence moved.
//!   So no reader ever *uses* a freed block; nothing waits on a reader. Containers that a
//!   process's proxies hold are listed in that process's *held set* (in the file), and are not
//!   freed while any held set names them.
//! - Undo: every word a writer changes is logged (offset, old value) in its slot's undo log
//!   before the change; blocks allocated are logged so that a rollback frees them; references
//!   dropped are logged and released only at commit. So a transaction() that raises, a lockExcl
//!   section whose holder dies, and a single change cut short all roll back from the log.

pub mod dict;
mod encode;
mod held;
mod layout;
pub mod list;
mod lock;
mod recovery;
pub mod tree;
mod undo;
pub mod value;
pub mod view;
mod walk;

pub use layout::{container, slot_words, words};
pub use lock::{Busy, LockKind, Waiter};
pub use walk::{CheckReport, GcReport, Stats};

use crate::heap::{self, Attached, Heap};
use crate::region::{table, AttachLiveness, Mapping, OpenOptionsRegion};
use crate::store_lock::undo::Entry;
use crate::sync::{AtomicU64, Ordering, WordStore};
use std::path::{Path, PathBuf};
use value::Kind;

/// Errors of the object layer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The store's contents are damaged (or a racing read saw a change in progress: readers
    /// check the sequence before reporting this).
    Corrupt { what: String, offset: u64 },
    /// The store cannot grow (the disk or the file size limit is full).
    Full(String),
    /// An operating-system call failed (a flush, an fsync, growing or trimming the file).
    /// A change it interrupted was rolled back, unless the message says it was made.
    Io {
        /// The call and what it did, e.g. "msync".
        op: String,
        path: Option<PathBuf>,
        source: std::io::Error,
    },
    /// Opening failed (not a store, another version, I/O...).
    Open(heap::OpenError),
    /// The operation needs the writer lock and another thread or process holds it.
    Busy(Busy),
    /// A lock call out of order (unlock without a lock, lockExcl under lockShared).
    LockUsage(String),
    /// A value too large for the store (a single block beyond the address space).
    TooLarge(String),
    /// A change (or a step that writes the store file) on a store opened read-only.
    ReadOnly(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Corrupt { what, offset } => write!(f, "{what} (at offset {offset:#x})"),
            Error::Full(s) => write!(f, "{s}"),
            Error::Io {
                op,
                path: Some(p),
                source,
            } => write!(f, "{op} of {} failed: {source}", p.display()),
            Error::Io {
                op,
                path: None,
                source,
            } => write!(f, "{op} failed: {source}"),
            Error::Open(e) => write!(f, "{e}"),
            Error::Busy(b) => write!(f, "the store is busy ({b:?})"),
            Error::LockUsage(s) => write!(f, "{s}"),
            Error::TooLarge(s) => write!(f, "{s}"),
            Error::ReadOnly(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::sync::AccessError> for Error {
    fn from(e: crate::sync::AccessError) -> Self {
        match e {
            crate::sync::AccessError::Full { .. } => Error::Full(e.to_string()),
            crate::sync::AccessError::OutOfBounds { offset, .. }
            | crate::sync::AccessError::Misaligned { offset } => Error::Corrupt {
                what: e.to_string(),
                offset,
            },
            crate::sync::AccessError::Io { op, source } => Error::Io {
                op: format!("{op} of the store"),
                path: None,
                source,
            },
        }
    }
}

impl From<heap::Error> for Error {
    fn from(e: heap::Error) -> Self {
        match e {
            heap::Error::Access(a) => a.into(),
            heap::Error::TooLarge { bytes } => Error::TooLarge(format!(
                "a block of {bytes} bytes is larger than a store can hold"
            )),
            // The heap's own damage keeps its offset (and the heap's wording); the object
            // layer's checks that run over heap errors (recovery, the log) keep theirs.
            heap::Error::Corrupt { what, offset } => Error::Corrupt { what, offset },
            e @ heap::Error::BadFree { offset, .. } => Error::Corrupt {
                what: e.to_string(),
                offset,
            },
        }
    }
}

impl From<crate::region::Error> for Error {
    fn from(e: crate::region::Error) -> Self {
        match e {
            crate::region::Error::Io { path, op, source } => Error::Io {
                op: op.into(),
                path: (!path.as_os_str().is_empty()).then_some(path),
                source,
            },
            e => Error::Open(heap::OpenError::Region(e)),
        }
    }
}

impl From<heap::OpenError> for Error {
    fn from(e: heap::OpenError) -> Self {
        Error::Open(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The object layer of one open store, as used by one process.
///
/// Not `Sync`: the layer above serializes calls (the Python layer's steps take an owner word).
/// Threads are told apart by the `thread` argument of the lock calls.
pub struct Store {
    // Field order matters: `heap` borrows from `attached` and is dropped first.
    heap: Heap<'static, Mapping, AttachLiveness>,
    lock: lock::LockWords,
    attached: Box<Attached>,
    path: PathBuf,
    slot: u32,
    /// The writer word is ours (a single op or a lockExcl section).
    writing: bool,
    locks: lock::LocalLocks,
    /// The undo log of the change in progress.
    log: undo::ChangeLog,
    held: held::HeldSet,
    /// (node, offset) of every user object the last `encode` wrote (for binding the Python
    /// instances they came from).
    encoded_objects: Vec<(u32, u64)>,
    closed: bool,
    /// durable=True: every undo entry is on disk before the write it covers, and a commit is
    /// on disk before it returns.
    durable: bool,
    /// readonly=True: the store file is mapped read-only; every step that would write it
    /// fails with `Error::ReadOnly` before touching it.
    readonly: bool,
}

/// A snapshot of the sequence word taken by a reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadToken(u64);

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

    fn mem(&self) -> &Mapping {
        self.attached.region().store()
    }

    fn lock_mem(&self) -> &Mapping {
        self.attached.region().lock_words()
    }

    /// The root dict's offset.
    pub fn root(&self) -> Result<u64> {
        let r = self.mem().load(words::ROOT, Ordering::Acquire)?;
        self.check_container(r, Some(Kind::Dict))?;
        Ok(r)
    }

    fn ensure_root(&mut self) -> Result<()> {
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

    // ---- word access -------------------------------------------------------------------

    /// A data word. Under the seqlock a Relaxed load suffices: the reader's Acquire load of
    /// the sequence comes before and its Acquire fence before the re-check comes after;
    /// writers hold the writer word.
    #[inline]
    fn get(&self, off: u64) -> Result<u64> {
        Ok(self.mem().load(off, Ordering::Relaxed)?)
    }

    /// `N` consecutive data words from `off`, with one bounds check.
    fn get_words<const N: usize>(&self, off: u64) -> Result<[u64; N]> {
        if off % 8 != 0 {
            return Err(Error::Corrupt {
                what: "misaligned word offset".into(),
                offset: off,
            });
        }
        let p = self.bytes_ptr(off, 8 * N as u64)? as *const AtomicU64;
        // SAFETY: `p` is 8-aligned (the mapping is page-aligned, `off` 8-aligned) and the N
        // words lie inside the mapping (checked); shared words are only accessed atomically.
        // Relaxed, as `get`.
        Ok(std::array::from_fn(|i| unsafe {
            (*p.add(i)).load(Ordering::Relaxed)
        }))
    }

    /// Writes a data word inside an op, logging its old value first.
    fn put(&mut self, off: u64, new: u64) -> Result<()> {
        debug_assert!(self.writing);
        let old = self.get(off)?;
        if old == new {
            return Ok(());
        }
        self.log_word(off, old)?;
        // Relaxed: readers validate the sequence (Release-stored at the end of the op).
        self.mem().store(off, new, Ordering::Relaxed)?;
        Ok(())
    }

    /// Writes a word of a block allocated in this op and not yet linked: no undo needed (a
    /// rollback frees the whole block).
    fn init(&self, off: u64, v: u64) -> Result<()> {
        self.mem().store(off, v, Ordering::Relaxed)?;
        Ok(())
    }

    /// Copies `n` words from `src` to `dst`, a block allocated in this op and not linked yet
    /// (growing a list: one copy instead of a checked load and store per word).
    fn copy_words(&self, src: u64, dst: u64, n: u64) -> Result<()> {
        let len = n
            .checked_mul(8)
            .ok_or_else(|| Error::TooLarge("copy too large".into()))?;
        let from = self.bytes_ptr(src, len)?;
        let to = self.bytes_ptr(dst, len)?;
        if src.max(dst) < src.min(dst) + len {
            return Err(Error::Corrupt {
                what: "overlapping blocks".into(),
                offset: dst,
            });
        }
        // SAFETY: both ranges lie inside the mapping (checked) and do not overlap (checked).
        // `dst` belongs to a block this op allocated and has not linked, so no one else
        // writes it; `src` is only changed by the writer, which is this op.
        unsafe { std::ptr::copy_nonoverlapping(from, to, len as usize) };
        Ok(())
    }

    /// Raw bytes of the store, checked.
    fn bytes_ptr(&self, off: u64, len: u64) -> Result<*mut u8> {
        Ok(self.mem().bytes(off, len)?)
    }

    /// Copies `len` bytes at `off` out of the store.
    pub fn read_bytes(&self, off: u64, len: u64) -> Result<Vec<u8>> {
        let p = self.bytes_ptr(off, len)?;
        let mut v = vec![0u8; len as usize];
        // SAFETY: `p..p+len` lies inside the mapping (checked); other processes may write these
        // bytes at the same time (a racing reader validates the sequence afterwards and drops
        // the copy), which is why this is a raw copy and never a Rust reference to the bytes.
        unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), len as usize) };
        Ok(v)
    }

    /// A raw pointer to `len` bytes at `off` (checked), for the layer above to copy from
    /// straight into its own objects. Valid until the store is closed; the bytes are only
    /// meaningful if the read is validated afterwards.
    pub fn raw_bytes(&self, off: u64, len: u64) -> Result<*const u8> {
        Ok(self.bytes_ptr(off, len)? as *const u8)
    }

    fn write_bytes(&self, off: u64, b: &[u8]) -> Result<()> {
        let p = self.bytes_ptr(off, b.len() as u64)?;
        // SAFETY: the range is inside the mapping (checked) and belongs to a block this op
        // allocated and has not linked yet, so no other process writes it.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len()) };
        Ok(())
    }

    /// Checks that `off` is a container block (of kind `want`, if given) and returns its kind.
    pub fn check_container(&self, off: u64, want: Option<Kind>) -> Result<Kind> {
        if !value::is_block(off) {
            return Err(Error::Corrupt {
                what: format!("expected a container, found word {off:#x}"),
                offset: off,
            });
        }
        let head = self.get(off)?;
        let found = value::head_kind(head);
        match (found, want) {
            (Some(k), Some(w)) if k == w || (w == Kind::Dict && k == Kind::Object) => Ok(k),
            (Some(k), None) if k.is_container() => Ok(k),
            _ => Err(Error::Corrupt {
                what: format!(
                    "expected a {}, found a block of kind {} ({})",
                    want.map_or("container", Kind::name),
                    head & 0xff,
                    value::kind_name(head)
                ),
                offset: off,
            }),
        }
    }

    /// The user objects the last `encode` wrote: (tree node, offset).
    pub fn encoded_objects(&self) -> &[(u32, u64)] {
        &self.encoded_objects
    }

    /// The kind of the block `off` (None: a byte no kind has).
    pub fn block_kind(&self, off: u64) -> Result<Option<Kind>> {
        Ok(value::head_kind(self.get(off)?))
    }

    /// A container's version (bumped by every change).
    pub fn version(&self, obj: u64) -> Result<u64> {
        self.get(obj + container::VERSION)
    }

    /// Not logged: a version only has to change when the contents do. After a rollback it
    /// has moved on anyway, which costs a check-then-act caller one retry at most.
    fn bump_version(&mut self, obj: u64) -> Result<()> {
        let v = self.get(obj + container::VERSION)?;
        // Relaxed and no persist barrier: any value on disk is as good as another.
        self.mem().store(
            obj + container::VERSION,
            v.wrapping_add(1),
            Ordering::Relaxed,
        )?;
        Ok(())
    }

    // ---- allocation --------------------------------------------------------------------

    /// Allocates a block for this op: logged, so a rollback frees it.
    fn alloc(&mut self, size: u64) -> Result<u64> {
        const J: u64 = 1;
        let b = self.heap.alloc_into(size.max(16), J)?;
        let logged = self.log_entry(Entry::Alloc { block: b });
        self.heap.settle(J)?;
        if let Err(e) = logged {
            // The block is ours and unlinked: give it back before reporting.
            let _ = self.heap.free(b);
            return Err(e);
        }
        Ok(b)
    }

    /// Frees a block this op no longer links, at commit (a rollback keeps it).
    fn free_at_commit(&mut self, block: u64) -> Result<()> {
        self.log_entry(Entry::FreeBlock { block })
    }

    /// Releases a value word at commit: frees an owned value, drops a container reference.
    fn release_at_commit(&mut self, w: u64) -> Result<()> {
        if value::is_block(w) {
            self.log_entry(Entry::Release { value: w })?;
        }
        Ok(())
    }

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
            return Err(Error::LockUsage(
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
    fn count_attached(&self, alive: bool) -> Result<u64> {
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

    fn shutdown(&mut self) -> Result<()> {
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
struct NoLiveness;
impl crate::sync::Liveness for NoLiveness {
    fn is_alive(&self, _slot: u32) -> bool {
        true
    }
}

impl Store {
    /// Makes the store file's directory entry durable (a new store survives a power cut).
    fn sync_directory(&self) -> Result<()> {
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
