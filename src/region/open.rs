//! Opening, creating and attaching to a store file (the operating-system side of region).

use super::mapping::{Mapping, SizeSource};
use super::trust::{self, Dir};
use super::{fnv1a, hdr, lockfile, table, Geometry, Table, ENDIAN_MARK, FORMAT_VERSION, MAGIC};

use crate::sync::{ofd, AccessError, IoFailure, Liveness, Ordering, WordStore};
use std::ffi::{CStr, CString};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;
use std::sync::Arc;

/// What can go wrong below the allocator.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file is not a store (no magic, too short): nothing was changed.
    NotAStore { path: PathBuf, reason: String },
    /// The file is a store of another format version.
    Version {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// The file claims to be a store but something in it is inconsistent.
    Corrupt { what: String, offset: Option<u64> },
    /// The store cannot grow (disk full, file size limit, address reservation).
    Full { wanted: u64, reason: String },
    /// Every participant slot is taken by a live process.
    NoSlot { slots: u32 },
    /// A file (or the directory) that persist does not trust or may not use: a symbolic
    /// link where a store or lock file should be, a lock file owned or writable by someone
    /// who may not write the store, one that is not persist's to rewrite, a lock file this
    /// user may not write (FORMAT.md §6.6). Nothing was changed. Python raises it as
    /// `PermissionError` (errno `EACCES`) with `path` as its file name.
    Refused { path: PathBuf, why: String },
    /// An operating-system call failed.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotAStore { path, reason } => {
                write!(f, "{} is not a persist store ({reason}); it was left unchanged", path.display())
            }
            Error::Version { path, found, expected } => write!(
                f,
                "{} is a persist store of format version {found}, but this persist reads version \
                 {expected}: use a matching persist to `dump` it and this one to `load` it",
                path.display()
            ),
            Error::Corrupt { what, offset: Some(o) } => write!(f, "store is damaged at offset {o:#x}: {what}"),
            Error::Corrupt { what, offset: None } => write!(f, "store is damaged: {what}"),
            Error::Full { wanted, reason } => write!(f, "store is full: cannot grow to {wanted} bytes ({reason})"),
            Error::NoSlot { slots } => write!(
                f,
                "all {slots} participant slots are held by live processes; close some stores and retry"
            ),
            Error::Refused { path, why } => write!(f, "{}: {why}", path.display()),
            Error::Io { path, op, source } => write!(f, "{op} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

impl From<AccessError> for Error {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::OutOfBounds { offset, size } => Error::Corrupt {
                what: format!("an offset points outside the store ({size} bytes)"),
                offset: Some(offset),
            },
            AccessError::Misaligned { offset } => Error::Corrupt {
                what: "a word offset is not 8-aligned".into(),
                offset: Some(offset),
            },
            AccessError::Full { wanted, reason } => Error::Full { wanted, reason },
            e @ AccessError::Truncated { offset, .. } => Error::Corrupt {
                what: e.to_string(),
                offset: Some(offset),
            },
            AccessError::Io(e) => {
                let IoFailure { op, path, source } = *e;
                Error::Io {
                    path: path.unwrap_or_default(),
                    op,
                    source,
                }
            }
        }
    }
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { path, op, source }
}

/// The first 64 bytes of a store, decoded and checked. Public so that tests and tools can
/// validate a header without mapping anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub geometry: Geometry,
    pub store_id: u64,
    pub created_ns: u64,
}

impl Header {
    /// Checks `bytes` (the first 64 bytes of a file), in the order that gives the most useful
    /// error: magic, version, byte order, checksum, geometry.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Header, Error> {
        let not_a_store = |reason: &str| Error::NotAStore {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        if bytes.len() < 64 {
            return Err(not_a_store("the file is shorter than a store header"));
        }
        if bytes[0..8] != MAGIC {
            return Err(not_a_store("its first bytes are not the persist magic"));
        }
        let u32_at =
            |o: u64| u32::from_le_bytes(bytes[o as usize..o as usize + 4].try_into().unwrap());
        let u64_at =
            |o: u64| u64::from_le_bytes(bytes[o as usize..o as usize + 8].try_into().unwrap());
        let version = u32_at(hdr::VERSION);
        if version != FORMAT_VERSION {
            return Err(Error::Version {
                path: path.to_path_buf(),
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        if u32_at(hdr::ENDIAN) != ENDIAN_MARK {
            return Err(Error::Corrupt {
                what: "byte-order mark is wrong (a big-endian store?)".into(),
                offset: Some(hdr::ENDIAN),
            });
        }
        let sum = fnv1a(&bytes[..hdr::IMMUTABLE_END as usize]);
        if sum != u64_at(hdr::CHECKSUM) {
            return Err(Error::Corrupt {
                what: "header checksum does not match".into(),
                offset: Some(hdr::CHECKSUM),
            });
        }
        let geometry = Geometry {
            page_size: u32_at(hdr::PAGE_SIZE) as u64,
            chunk_pages: u32_at(hdr::CHUNK_PAGES) as u64,
            header_bytes: u32_at(hdr::HEADER_BYTES) as u64,
        };
        if geometry != Geometry::STANDARD {
            return Err(Error::Corrupt {
                what: format!("unsupported geometry {geometry:?}"),
                offset: Some(hdr::PAGE_SIZE),
            });
        }
        Ok(Header {
            version,
            geometry,
            store_id: u64_at(hdr::STORE_ID),
            created_ns: u64_at(hdr::CREATED_NS),
        })
    }

    /// The header page of a new, empty store.
    pub fn new_image(geometry: Geometry) -> Vec<u8> {
        let mut page = vec![0u8; geometry.header_bytes as usize];
        let put32 = |p: &mut Vec<u8>, o: u64, v: u32| {
            p[o as usize..o as usize + 4].copy_from_slice(&v.to_le_bytes())
        };
        let put64 = |p: &mut Vec<u8>, o: u64, v: u64| {
            p[o as usize..o as usize + 8].copy_from_slice(&v.to_le_bytes())
        };
        page[..8].copy_from_slice(&MAGIC);
        put32(&mut page, hdr::VERSION, FORMAT_VERSION);
        put32(&mut page, hdr::ENDIAN, ENDIAN_MARK);
        put32(&mut page, hdr::PAGE_SIZE, geometry.page_size as u32);
        put32(&mut page, hdr::CHUNK_PAGES, geometry.chunk_pages as u32);
        put32(&mut page, hdr::HEADER_BYTES, geometry.header_bytes as u32);
        put64(&mut page, hdr::STORE_ID, random_u64());
        put64(&mut page, hdr::CREATED_NS, now_ns());
        let sum = fnv1a(&page[..hdr::IMMUTABLE_END as usize]);
        put64(&mut page, hdr::CHECKSUM, sum);
        put64(&mut page, hdr::FILE_SIZE, geometry.header_bytes);
        page
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A random 64-bit number from the kernel (store ids; never for anything secret).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 8, 0) };
    if n == 8 {
        u64::from_le_bytes(b)
    } else {
        now_ns() ^ ((std::process::id() as u64) << 32)
    }
}

/// The process's start time in clock ticks since boot (field 22 of /proc/self/stat): with the
/// pid it names one process, for messages.
pub fn process_start_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Options for [`Region::open`].
#[derive(Clone, Copy, Debug)]
pub struct OpenOptionsRegion {
    pub create: bool,
    /// Persist barriers flush the store file (FORMAT.md §10.8), from the first write on.
    pub durable: bool,
    /// The store file is opened and mapped read-only (never created, never written; the lock
    /// file is still written, as every participant's is).
    pub readonly: bool,
}

/// An open store file with its lock file.
pub struct Region {
    path: PathBuf,
    header: Header,
    store: Mapping,
    lock: Mapping,
    lock_file: Arc<File>,
    /// The directory both files were opened in, and the lock file's name there: every
    /// attachment reopens the lock file through them (and checks that it is the same file).
    dir: Dir,
    lock_name: CString,
    readonly: bool,
}

impl Region {
    /// Opens the store at `path`, creating it when it is missing (or empty) and `create` is set.
    ///
    /// Neither file is reached through a symbolic link, and the lock file must meet the trust
    /// rules of FORMAT.md §6.6 ([`Error::Refused`] otherwise).
    pub fn open(path: &Path, opts: OpenOptionsRegion) -> Result<Region, Error> {
        let create = opts.create && !opts.readonly;
        let (dir, name) = Dir::of(path)?;
        let flags = if opts.readonly {
            libc::O_RDONLY
        } else {
            libc::O_RDWR
        };
        let file = match dir.open(&name, flags, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                create_atomically(&dir, &name, path)?
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(trust::refuse_link(path, &dir.link_target(&name), false))
            }
            Err(e) => return Err(io_err(path, "open the store")(e)),
        };
        let meta = file.metadata().map_err(io_err(path, "stat the store"))?;
        if meta.is_dir() {
            return Err(io_err(path, "open the store")(
                io::Error::from_raw_os_error(libc::EISDIR),
            ));
        }
        if !meta.is_file() {
            return Err(Error::NotAStore {
                path: path.to_path_buf(),
                reason: "it is not a regular file".into(),
            });
        }
        let file = Arc::new(file);
        let mut len = meta.len();
        if len == 0 && create {
            init_empty(path, &file)?;
            len = file
                .metadata()
                .map_err(io_err(path, "stat the store"))?
                .len();
        }
        let mut first = [0u8; 64];
        let n = read_prefix(&file, &mut first).map_err(io_err(path, "read the store"))?;
        let header = Header::decode(path, &first[..n])?;
        let geo = header.geometry;
        if len < geo.header_bytes {
            return Err(Error::Corrupt {
                what: format!("file is {len} bytes, shorter than its header"),
                offset: None,
            });
        }
        let store = Mapping::new(
            file.clone(),
            path,
            SizeSource::Word(hdr::FILE_SIZE),
            geo.header_bytes,
            len,
            !opts.readonly,
        )
        .map_err(|e| {
            if e.kind() == io::ErrorKind::OutOfMemory {
                // Address space, not disk: still "the store does not fit" (StoreFullError).
                Error::Full {
                    wanted: len,
                    reason: e.to_string(),
                }
            } else {
                io_err(path, "map the store")(e)
            }
        })?;
        store.set_durable(opts.durable);
        // The published size is read atomically (other processes raise it with atomics), and
        // the file's length after it: a store reserves space before it publishes a larger
        // size, so a length read second is never smaller than an honest published size.
        let published = store.word(hdr::FILE_SIZE)?.load(Ordering::Acquire);
        let len = file
            .metadata()
            .map_err(io_err(path, "stat the store"))?
            .len();
        if published < geo.header_bytes || published > len || published % geo.page_size != 0 {
            return Err(Error::Corrupt {
                what: format!("header says the store has {published} bytes but the file has {len}"),
                offset: Some(hdr::FILE_SIZE),
            });
        }
        let meta = file.metadata().map_err(io_err(path, "stat the store"))?;
        let lock_name = trust::lock_name(&name);
        let (lock_file, lock) = open_lock_file(
            &dir,
            &lock_name,
            path,
            &meta,
            header.store_id,
            &store,
            !opts.readonly,
        )?;
        Ok(Region {
            path: path.to_path_buf(),
            header,
            store,
            lock,
            lock_file,
            dir,
            lock_name,
            readonly: opts.readonly,
        })
    }

    /// Whether the store file is mapped read-only.
    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn geometry(&self) -> Geometry {
        self.header.geometry
    }

    /// The store file's words.
    pub fn store(&self) -> &Mapping {
        &self.store
    }

    /// Lowers the store's growth limit (for tests of a full store).
    pub fn set_size_limit(&mut self, limit: u64) {
        self.store.set_limit(limit);
    }

    /// The lock file's words (the participant table).
    pub fn lock_words(&self) -> &Mapping {
        &self.lock
    }

    pub fn table<'a, L: Liveness>(&'a self, live: &'a L) -> Table<'a, Mapping, L> {
        Table {
            words: &self.lock,
            live,
            base: lockfile::HEADER_BYTES,
            slots: lockfile::SLOTS,
        }
    }

    /// Attaches a new participant: claims a slot whose byte lock nobody holds. The caller must
    /// recover the slot's previous occupant if [`Attachment::needs_recovery`] says so, then
    /// call [`Attachment::activate`].
    pub fn attach(&self) -> Result<Attachment, Error> {
        let path = lock_path(&self.path);
        let fd = self
            .dir
            .open(&self.lock_name, libc::O_RDWR, 0)
            .map_err(io_err(&path, "open the lock file"))?;
        let (now, mapped) = (
            fd.metadata().map_err(io_err(&path, "stat the lock file"))?,
            self.lock_file
                .metadata()
                .map_err(io_err(&path, "stat the lock file"))?,
        );
        if (now.dev(), now.ino()) != (mapped.dev(), mapped.ino()) {
            return Err(Error::Refused {
                path,
                why: "the store's lock file was replaced while this process opened the store \
                      (removed by another process?): open the store again"
                    .into(),
            });
        }
        let table = self.table(&NoLiveness);
        for slot in 0..lockfile::SLOTS {
            if ofd::try_lock(fd.as_raw_fd(), lockfile::LIVENESS_BYTE_BASE + slot as u64)
                .map_err(io_err(&path, "lock the lock file"))?
            {
                let needs_recovery = table.status(slot)? == table::STATUS_ATTACHED;
                if needs_recovery && self.readonly {
                    // Recovering the dead occupant writes the store file: leave the slot to a
                    // writable opener.
                    ofd::unlock(fd.as_raw_fd(), lockfile::LIVENESS_BYTE_BASE + slot as u64)
                        .map_err(io_err(&path, "unlock the lock file"))?;
                    continue;
                }
                fork_guard::register(fd.as_raw_fd());
                return Ok(Attachment {
                    slot,
                    fd,
                    needs_recovery,
                    path,
                });
            }
        }
        Err(Error::NoSlot {
            slots: lockfile::SLOTS,
        })
    }

    /// The byte lock of the lock file's descriptor held by this region (for flush etc.).
    pub fn lock_file(&self) -> &File {
        &self.lock_file
    }

    /// Flushes the store's mapped pages to disk.
    pub fn flush(&self) -> Result<(), Error> {
        self.store
            .sync()
            .map_err(io_err(&self.path, "msync the store"))
    }
}

/// A claimed participant slot. Holding it (the OFD lock on the slot's byte) is what makes the
/// participant alive in every other process's eyes; dropping it (or dying) ends that.
pub struct Attachment {
    pub slot: u32,
    fd: File,
    pub needs_recovery: bool,
    /// The lock file's path, for the errors of its byte locks.
    path: PathBuf,
}

impl Attachment {
    /// Records this process in the slot (after any recovery of its previous occupant).
    pub fn activate<L: Liveness>(&self, table: &Table<'_, Mapping, L>) -> Result<(), Error> {
        table.activate(self.slot, std::process::id() as u64, process_start_ticks())?;
        Ok(())
    }

    /// True in a forked child, whose inherited slot belongs to the parent.
    pub fn is_inherited(&self) -> bool {
        fork_guard::closed(self.fd.as_raw_fd())
    }

    /// Liveness as seen through this participant's own descriptor.
    pub fn liveness(&self) -> AttachLiveness {
        AttachLiveness {
            fd: self.fd.as_raw_fd(),
            me: self.slot,
        }
    }

    /// Takes the byte lock of `slot` (another participant's) without waiting; `true` means its
    /// owner is dead (or the slot was free) and the caller may recover it exclusively until
    /// [`Attachment::unlock_slot`].
    pub fn try_lock_slot(&self, slot: u32) -> Result<bool, Error> {
        if slot == self.slot {
            return Ok(false);
        }
        ofd::try_lock(
            self.fd.as_raw_fd(),
            lockfile::LIVENESS_BYTE_BASE + slot as u64,
        )
        .map_err(|source| Error::Io {
            path: self.path.clone(),
            op: "lock a byte of the lock file",
            source,
        })
    }

    pub fn unlock_slot(&self, slot: u32) -> Result<(), Error> {
        if slot == self.slot {
            return Ok(());
        }
        ofd::unlock(
            self.fd.as_raw_fd(),
            lockfile::LIVENESS_BYTE_BASE + slot as u64,
        )
        .map_err(|source| Error::Io {
            path: self.path.clone(),
            op: "unlock a byte of the lock file",
            source,
        })
    }

    /// Takes the store's recovery lock (waiting for it): recoveries of dead participants and
    /// repairs run one at a time across all processes. The kernel drops it if we die.
    pub fn lock_recovery(&self) -> Result<(), Error> {
        ofd::lock_wait(self.fd.as_raw_fd(), lockfile::RECOVERY_LOCK_BYTE).map_err(|source| {
            Error::Io {
                path: self.path.clone(),
                op: "lock a byte of the lock file",
                source,
            }
        })
    }

    pub fn unlock_recovery(&self) -> Result<(), Error> {
        ofd::unlock(self.fd.as_raw_fd(), lockfile::RECOVERY_LOCK_BYTE).map_err(|source| Error::Io {
            path: self.path.clone(),
            op: "unlock a byte of the lock file",
            source,
        })
    }

    /// Marks the slot free and lets it go (a clean detach).
    pub fn detach<L: Liveness>(self, table: &Table<'_, Mapping, L>) -> Result<(), Error> {
        table.release(self.slot)?;
        Ok(())
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        fork_guard::unregister(self.fd.as_raw_fd());
    }
}

/// Liveness through the kernel's OFD locks, as seen from one attachment.
/// It borrows the attachment's descriptor by number: keep the [`Attachment`] alive as long.
pub struct AttachLiveness {
    fd: RawFd,
    me: u32,
}

impl Liveness for AttachLiveness {
    fn is_alive(&self, slot: u32) -> bool {
        if slot == self.me {
            return true;
        }
        // An error here (it should not happen) counts as alive: the safe answer, which at
        // worst delays a recovery.
        ofd::is_locked_by_other(self.fd, lockfile::LIVENESS_BYTE_BASE + slot as u64).unwrap_or(true)
    }
}

/// Liveness that knows nothing (only used to read slot words, never to decide).
struct NoLiveness;
impl Liveness for NoLiveness {
    fn is_alive(&self, _: u32) -> bool {
        true
    }
}

/// After `fork`, the child shares its parent's open file descriptions, and so the parent's OFD
/// liveness locks: a dead parent would look alive while the child lives. A `pthread_atfork`
/// child handler closes every liveness descriptor in the child; an attachment whose
/// descriptor was closed this way knows it was inherited and must not be used.
mod fork_guard {
    use super::AtomicI32;
    use std::sync::atomic::Ordering;
    use std::sync::Once;

    const MAX: usize = 256;
    static FDS: [AtomicI32; MAX] = [const { AtomicI32::new(-1) }; MAX];
    static CLOSED: [AtomicI32; MAX] = [const { AtomicI32::new(-1) }; MAX];
    static INSTALL: Once = Once::new();

    extern "C" fn in_child() {
        // Only async-signal-safe work here: atomics and close(2).
        for (i, slot) in FDS.iter().enumerate() {
            let fd = slot.swap(-1, Ordering::SeqCst);
            if fd >= 0 {
                // Keep the number taken (dup2 of /dev/null would be kinder, but close is
                // enough: the File's later close fails harmlessly with EBADF... unless the
                // number is reused, so we park a placeholder on it instead).
                // SAFETY: `fd` was registered by an Attachment and is open in the parent.
                unsafe {
                    let devnull =
                        libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    if devnull >= 0 {
                        libc::dup2(devnull, fd);
                        libc::close(devnull);
                    } else {
                        libc::close(fd);
                    }
                }
                CLOSED[i].store(fd, Ordering::SeqCst);
            }
        }
    }

    pub fn register(fd: i32) {
        INSTALL.call_once(|| {
            // SAFETY: installing a handler that only does async-signal-safe work.
            unsafe {
                libc::pthread_atfork(None, None, Some(in_child));
            }
        });
        for slot in FDS.iter() {
            if slot
                .compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
        }
        // More than MAX attachments in one process: the extra ones are not fork-guarded.
    }

    pub fn unregister(fd: i32) {
        for slot in FDS.iter() {
            let _ = slot.compare_exchange(fd, -1, Ordering::SeqCst, Ordering::SeqCst);
        }
        for slot in CLOSED.iter() {
            let _ = slot.compare_exchange(fd, -1, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    pub fn closed(fd: i32) -> bool {
        CLOSED.iter().any(|s| s.load(Ordering::SeqCst) == fd)
    }
}

/// `<store>.lock`
pub fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

fn read_prefix(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Writes a new store into an unnamed file in `dir` and links it into place as `name`. If
/// another process linked first, opens theirs. Where the file system has no O_TMPFILE, the new
/// store is written to a named temporary (`.NAME.RANDOM.tmp`) and hard-linked: a creator
/// killed between the two leaves that temporary behind (never a half-made store at `path`).
/// The new file's mode is `0666 & ~umask`, as `open(2)` would give it.
fn create_atomically(dir: &Dir, name: &CStr, path: &Path) -> Result<File, Error> {
    let image = Header::new_image(Geometry::STANDARD);
    let linked = match dir.open(c".", libc::O_TMPFILE | libc::O_RDWR, 0o666) {
        Ok(tmp) => {
            tmp.write_all_at(&image, 0)
                .map_err(io_err(path, "write the store"))?;
            let proc_path =
                CString::new(format!("/proc/self/fd/{}", tmp.as_raw_fd())).expect("no NUL");
            // SAFETY: plain system call with valid descriptors and C strings.
            let r = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    proc_path.as_ptr(),
                    dir.raw(),
                    name.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if r == 0 {
                return Ok(tmp);
            }
            io::Error::last_os_error()
        }
        // Any other refusal (no write permission, a read-only file system, no space...) would
        // refuse a named file too: it is reported for the store's own name.
        Err(e) if !tmpfile_unsupported(&e) => return Err(io_err(path, "create the store")(e)),
        Err(_) => {
            // No O_TMPFILE on this file system: a named temporary, linked, then unlinked.
            let tmp_name = CString::new(format!(
                ".{}.{}.tmp",
                String::from_utf8_lossy(name.to_bytes()),
                random_u64()
            ))
            .expect("no NUL");
            // A failure names the store, never the temporary: the user knows only the former.
            let tmp = dir
                .open(
                    &tmp_name,
                    libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                    0o666,
                )
                .map_err(io_err(path, "create the store"))?;
            let result = tmp
                .write_all_at(&image, 0)
                .and_then(|_| dir.link(&tmp_name, name));
            dir.unlink(&tmp_name);
            match result {
                Ok(()) => return Ok(tmp),
                Err(e) => e,
            }
        }
    };
    if linked.kind() == io::ErrorKind::AlreadyExists {
        // Another creator won: share its store (never through a link planted meanwhile).
        return match dir.open(name, libc::O_RDWR, 0) {
            Ok(f) => Ok(f),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                Err(trust::refuse_link(path, &dir.link_target(name), false))
            }
            Err(e) => Err(io_err(path, "open the store")(e)),
        };
    }
    Err(io_err(path, "create the store")(linked))
}

/// Whether `open(O_TMPFILE)` failed because the kernel or the file system lacks it (the
/// errors open(2) lists for that; EISDIR from kernels older than O_TMPFILE, which see only its
/// O_DIRECTORY bit), rather than refusing this user or this directory.
fn tmpfile_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
    )
}

/// An existing empty file becomes a new store. Two processes may find it empty at once: the
/// OFD lock on its first byte lets one write the header; the other then sees it.
fn init_empty(path: &Path, file: &File) -> Result<(), Error> {
    ofd::lock_wait(file.as_raw_fd(), lockfile::INIT_LOCK_BYTE)
        .map_err(io_err(path, "lock the store"))?;
    let result = (|| {
        if file
            .metadata()
            .map_err(io_err(path, "stat the store"))?
            .len()
            == 0
        {
            // One write of one page: a process killed here leaves the file empty or whole.
            file.write_all_at(&Header::new_image(Geometry::STANDARD), 0)
                .map_err(io_err(path, "write the store"))?;
        }
        Ok(())
    })();
    let _ = ofd::unlock(file.as_raw_fd(), lockfile::INIT_LOCK_BYTE);
    result
}

/// The kernel's id of the current boot (16 bytes, from /proc/sys/kernel/random/boot_id).
/// A lock file written under another boot id is stale: every process of that boot is gone,
/// and its words (never synced) may hold any mix of what was written before the reboot.
/// Zero bytes if the kernel does not say (a lock file then only goes stale by its other
/// fields, as before).
fn boot_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    if let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        let hex: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        if hex.len() == 32 {
            for (i, pair) in hex.chunks_exact(2).enumerate() {
                let digits = std::str::from_utf8(pair).unwrap_or("00");
                id[i] = u8::from_str_radix(digits, 16).unwrap_or(0);
            }
        }
    }
    id
}

/// Opens (creating and initialising when needed) the lock file `lock_name` in `dir` of the
/// store `store_id` (FORMAT.md §6.6). A new lock file is made with `O_EXCL`, only by a user
/// who may write the store, and takes the store file's group, owner (when made by root) and
/// mode; an existing one must meet the trust rules of [`trust::check_lock_file`]. A (re)built
/// file says so in its repair-pending word: no participant of an earlier life of the store can
/// be recovered from it (their journals and undo logs are gone), and the next writable opener
/// repairs what they may have left in the store file. An invalid lock file is rebuilt only if
/// it is provably persist's: one name, and empty, or a persist lock file (its magic), or a
/// rebuild cut short (a zero header). A lock file of another state of the store (its epoch is
/// not the store's, FORMAT.md §6.1: an earlier copy of the store file was put back) is invalid
/// too: its free slots' block caches name blocks that this state may use. A `writable` opener
/// then sets a new epoch in both files.
fn open_lock_file(
    dir: &Dir,
    lock_name: &CStr,
    store_path: &Path,
    store: &std::fs::Metadata,
    store_id: u64,
    store_words: &Mapping,
    writable: bool,
) -> Result<(Arc<File>, Mapping), Error> {
    let path = lock_path(store_path);
    let (file, created) = open_or_create_lock(dir, lock_name, &path, store_path, store)?;
    let meta = file
        .metadata()
        .map_err(io_err(&path, "stat the lock file"))?;
    trust::check_lock_file(&path, &meta, store_path, store)?;
    ofd::lock_wait(file.as_raw_fd(), lockfile::INIT_LOCK_BYTE)
        .map_err(io_err(&path, "lock the lock file"))?;
    let boot = boot_id();
    let result = (|| {
        let mut head = [0u8; lockfile::CHECKED_BYTES];
        let n = read_prefix(&file, &mut head).map_err(io_err(&path, "read the lock file"))?;
        let len = file
            .metadata()
            .map_err(io_err(&path, "stat the lock file"))?
            .len();
        let version = u32::from_le_bytes(head[8..12].try_into().unwrap());
        // This store's lock file, whatever its version.
        let ours_any_version = n == lockfile::CHECKED_BYTES
            && head[..8] == lockfile::MAGIC
            && u64::from_le_bytes(head[16..24].try_into().unwrap()) == store_id;
        let valid = ours_any_version
            && version == lockfile::VERSION
            && u32::from_le_bytes(head[12..16].try_into().unwrap()) == lockfile::SLOTS
            && head[24..40] == boot
            && len == lockfile::FILE_BYTES;
        let store_epoch = store_words.load(hdr::LOCK_EPOCH, Ordering::SeqCst)?;
        // A lock file of this store, but of another state of it.
        let other_state = valid && {
            let mut w = [0u8; 16];
            file.read_exact_at(&mut w, lockfile::EPOCH)
                .map_err(io_err(&path, "read the lock file"))?;
            let epoch = u64::from_le_bytes(w[..8].try_into().unwrap());
            let next = u64::from_le_bytes(w[8..].try_into().unwrap());
            store_epoch != epoch && (next == 0 || store_epoch != next)
        };
        if !valid || other_state {
            // A new, damaged or foreign lock file: rebuild it, unless a live process still uses
            // it (then it is that process's, and we refuse rather than pull it from under it).
            for slot in 0..lockfile::SLOTS {
                if ofd::is_locked_by_other(
                    file.as_raw_fd(),
                    lockfile::LIVENESS_BYTE_BASE + slot as u64,
                )
                .map_err(io_err(&path, "lock the lock file"))?
                {
                    if ours_any_version && version != lockfile::VERSION {
                        // This store's lock file, in use by a process of another build, whose
                        // protocol this one does not speak: not damage.
                        return Err(Error::Refused {
                            path: path.clone(),
                            why: format!(
                                "in use by a process of another persist version (lock file \
                                 version {version}; this persist uses version {}): close the \
                                 store in every process of the other version first",
                                lockfile::VERSION
                            ),
                        });
                    }
                    let what = if other_state {
                        format!(
                            "the store file holds another state than its lock file {}, which is \
                             in use (was an earlier copy of the store put back while processes \
                             had it open?)",
                            path.display()
                        )
                    } else {
                        format!(
                            "lock file {} does not belong to this store but is in use",
                            path.display()
                        )
                    };
                    return Err(Error::Corrupt { what, offset: None });
                }
            }
            // Only persist's own files are rewritten (whatever else sits at this name stays).
            let ours =
                len == 0 || head[..8] == lockfile::MAGIC || head[..n].iter().all(|&b| b == 0);
            let links = meta.nlink();
            if !created && (links != 1 || !ours) {
                return Err(trust::refuse_rewrite(&path, store_path, links));
            }
            file.set_len(0)
                .map_err(io_err(&path, "truncate the lock file"))?;
            // SAFETY: plain system call on an open descriptor.
            let r = unsafe {
                libc::posix_fallocate(file.as_raw_fd(), 0, lockfile::FILE_BYTES as libc::off_t)
            };
            if r != 0 {
                return Err(Error::Full {
                    wanted: lockfile::FILE_BYTES,
                    reason: io::Error::from_raw_os_error(r).to_string(),
                });
            }
            // The repair-pending word first, the header last: a rebuild cut short leaves a file
            // that is empty or has a zero header, and is rebuilt again.
            file.write_all_at(&1u64.to_le_bytes(), lockfile::REPAIR_PENDING)
                .map_err(io_err(&path, "write the lock file"))?;
            file.write_all_at(&store_epoch.to_le_bytes(), lockfile::EPOCH)
                .map_err(io_err(&path, "write the lock file"))?;
            let mut h = [0u8; lockfile::CHECKED_BYTES];
            h[..8].copy_from_slice(&lockfile::MAGIC);
            h[8..12].copy_from_slice(&lockfile::VERSION.to_le_bytes());
            h[12..16].copy_from_slice(&lockfile::SLOTS.to_le_bytes());
            h[16..24].copy_from_slice(&store_id.to_le_bytes());
            h[24..40].copy_from_slice(&boot);
            file.write_all_at(&h, 0)
                .map_err(io_err(&path, "write the lock file"))?;
        }
        if writable {
            // A new epoch, so that a copy of the store file taken before this open and put back
            // after it no longer matches the lock file (whose caches this open may change).
            // `next epoch` first: killed before `epoch` is written, the store holds `next`.
            let new = loop {
                let e = random_u64();
                if e != 0 && e != store_epoch {
                    break e;
                }
            };
            file.write_all_at(&new.to_le_bytes(), lockfile::NEXT_EPOCH)
                .map_err(io_err(&path, "write the lock file"))?;
            store_words.store(hdr::LOCK_EPOCH, new, Ordering::SeqCst)?;
            file.write_all_at(&new.to_le_bytes(), lockfile::EPOCH)
                .map_err(io_err(&path, "write the lock file"))?;
        }
        Ok(())
    })();
    let _ = ofd::unlock(file.as_raw_fd(), lockfile::INIT_LOCK_BYTE);
    result?;
    let file = Arc::new(file);
    let map = Mapping::new(
        file.clone(),
        &path,
        SizeSource::Fixed(lockfile::FILE_BYTES),
        lockfile::FILE_BYTES,
        lockfile::FILE_BYTES,
        true,
    )
    .map_err(io_err(&path, "map the lock file"))?;
    Ok((file, map))
}

/// Opens the lock file, or creates it (`O_EXCL`, given the store file's owner and mode) when
/// it is missing and this user may write the store. `true` with a file this call created.
fn open_or_create_lock(
    dir: &Dir,
    lock_name: &CStr,
    path: &Path,
    store_path: &Path,
    store: &std::fs::Metadata,
) -> Result<(File, bool), Error> {
    let writer = trust::may_write(trust::euid(), store);
    let refused = |why: String| Error::Refused {
        path: path.to_path_buf(),
        why: format!("the lock file of the store {} {why}", store_path.display()),
    };
    // A lock file removed between the two opens below is looked for again (a few times).
    for _ in 0..8 {
        if writer {
            match dir.open(
                lock_name,
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                0o600,
            ) {
                Ok(f) => {
                    trust::give_store_owner(&f, store)
                        .map_err(io_err(path, "chmod the lock file"))?;
                    return Ok((f, true));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(path, "create the lock file")(e)),
            }
        }
        match dir.open(lock_name, libc::O_RDWR, 0) {
            Ok(f) => return Ok((f, false)),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(trust::refuse_link(path, &dir.link_target(lock_name), true))
            }
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                return Err(trust::refuse_not_regular(path, store_path, "a directory"))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && !writer => {
                return Err(refused(
                    "does not exist, and this user may not write the store: a lock file it \
                     made would be refused by the store's writers. Fix: have the store's owner \
                     (or a user who may write the store) open it once"
                        .into(),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(refused(
                    "may not be written by this user. Every process that opens a store writes \
                     its lock file, readonly=True included: the store's owner can let a group \
                     of readers in with chmod g+w on the lock file (README: read-only users)"
                        .into(),
                ))
            }
            Err(e) => return Err(io_err(path, "open the lock file")(e)),
        }
    }
    Err(io_err(path, "open the lock file")(
        io::Error::from_raw_os_error(libc::ENOENT),
    ))
}

/// Reads a word of the store header (for tools and tests).
pub fn header_word(store: &impl WordStore, offset: u64) -> Result<u64, Error> {
    Ok(store.load(offset, Ordering::Acquire)?)
}
