//! trust: how region reaches its two files on disk, and when it believes a lock file.
//!
//! Another local user can plant names beside a store: a symbolic link at the lock file's path
//! (so that the owner's process would truncate the file it points to), or a lock file of their
//! own (whose words every process of the store reads and obeys). This module owns the rules
//! that keep such names from being followed or adopted (FORMAT.md §6.6 states them):
//!
//! - Both files are opened relative to one descriptor of their directory ([`Dir`]), with
//!   `O_NOFOLLOW`: a symbolic link at either name is refused, never followed, and a dangling one
//!   never makes a file appear where it points. A directory that every user may write and
//!   that has no sticky bit is refused: anyone could swap either file under running processes.
//! - A lock file is created only with `O_EXCL`, then given the store file's group (and, by
//!   root, its owner) and the store file's mode.
//! - An existing lock file is used only if it is a regular file owned by a user who may write
//!   the store, not writable by every user unless the store is, and not writable by a group
//!   that may not write the store unless the store's owner (or root) owns it, so that only they
//!   chose that mode ([`check_lock_file`]). Everything else is refused with
//!   [`Error::Refused`](super::Error::Refused) (a `PermissionError` in Python) that names the
//!   file and the fix, and nothing is changed.
//!
//! "May write the store" is read from the store file's owner, group and mode bits (root, the
//! owner, a member of its group when it is group-writable, anyone when it is world-writable);
//! access control lists are not consulted.

use super::Error;
use std::ffi::{CStr, CString, OsStr};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The directory that holds a store, opened once (`O_PATH`): the store file, its lock file and
/// any temporary file are all reached through it, so that every name is looked up in the same
/// directory however its path changes meanwhile.
pub(super) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// The directory of `store` and the store's name in it. Refuses a directory that every
    /// user may write and that has no sticky bit.
    pub(super) fn of(store: &Path) -> Result<(Dir, CString), Error> {
        let name = match store.file_name() {
            Some(n) => cstring(store, n)?,
            None => {
                // "" names nothing (as for open(2)); "/", "." or "dir/.." name a directory.
                let errno = if store.as_os_str().is_empty() {
                    libc::ENOENT
                } else {
                    libc::EISDIR
                };
                return Err(Error::Io {
                    path: store.to_path_buf(),
                    op: "open the store",
                    source: io::Error::from_raw_os_error(errno),
                });
            }
        };
        let path = match store.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let cpath = cstring(store, path.as_os_str())?;
        // SAFETY: plain system call with a valid C string; the result is checked.
        let fd = unsafe {
            libc::open(
                cpath.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(Error::Io {
                path: store.to_path_buf(),
                op: "open the directory of the store",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let dir = Dir { fd, path };
        let meta = dir.stat().map_err(|source| Error::Io {
            path: store.to_path_buf(),
            op: "stat the directory of the store",
            source,
        })?;
        if meta.mode & 0o002 != 0 && meta.mode & libc::S_ISVTX == 0 {
            return Err(Error::Refused {
                path: dir.path.clone(),
                why: format!(
                    "the directory of the store {} is writable by every user and has no sticky \
                     bit: anyone could replace the store or its lock file under the processes \
                     that use them, so persist does not open stores there. Fix: chmod +t {} \
                     (or chmod o-w)",
                    store.display(),
                    dir.path.display()
                ),
            });
        }
        Ok((dir, name))
    }

    pub(super) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn stat(&self) -> io::Result<RawStat> {
        // SAFETY: `st` is plain data that fstat fills in; the result is checked.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `self.fd` is open; `st` is a valid out-pointer.
        if unsafe { libc::fstat(self.fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawStat { mode: st.st_mode })
    }

    /// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)`.
    pub(super) fn open(
        &self,
        name: &CStr,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> io::Result<File> {
        // SAFETY: plain system call with a valid descriptor and C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                libc::c_uint::from(mode),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Where the symbolic link `name` points (for messages).
    pub(super) fn link_target(&self, name: &CStr) -> String {
        let mut buf = vec![0u8; 4096];
        // SAFETY: `buf` has room for `buf.len()` bytes; readlinkat writes at most that many.
        let n = unsafe {
            libc::readlinkat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
            )
        };
        if n < 0 {
            return "an unknown target".into();
        }
        buf.truncate(n as usize);
        Path::new(OsStr::from_bytes(&buf)).display().to_string()
    }

    /// `linkat(dir, from, dir, to, 0)`: fails with `EEXIST` if `to` exists (a link included).
    pub(super) fn link(&self, from: &CStr, to: &CStr) -> io::Result<()> {
        // SAFETY: plain system call with a valid descriptor and C strings.
        let r = unsafe { libc::linkat(self.raw(), from.as_ptr(), self.raw(), to.as_ptr(), 0) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(super) fn unlink(&self, name: &CStr) {
        // SAFETY: plain system call with a valid descriptor and C string.
        unsafe {
            libc::unlinkat(self.raw(), name.as_ptr(), 0);
        }
    }
}

struct RawStat {
    mode: libc::mode_t,
}

fn cstring(path: &Path, s: &OsStr) -> Result<CString, Error> {
    CString::new(s.as_bytes()).map_err(|_| Error::NotAStore {
        path: path.to_path_buf(),
        reason: "the path holds a NUL byte".into(),
    })
}

/// `name` with `.lock` appended: the lock file's name in the store's directory.
pub(super) fn lock_name(store_name: &CStr) -> CString {
    let mut b = store_name.to_bytes().to_vec();
    b.extend_from_slice(b".lock");
    CString::new(b).expect("no NUL: the store's name had none")
}

/// The refusal for a symbolic link at a name persist opens.
pub(super) fn refuse_link(path: &Path, target: &str, lock: bool) -> Error {
    let why = if lock {
        format!(
            "the store's lock file is a symbolic link (to {target}): persist never follows one \
             there, since writing through it would overwrite the file it points to, and left \
             both as they are. If you did not make the link, someone may be attacking this \
             store: remove the link (persist makes a new lock file)"
        )
    } else {
        format!(
            "the store's path is a symbolic link (to {target}): persist opens a store only by its own name, \
             so that every process finds the same lock file beside it. Open {target} itself"
        )
    };
    Error::Refused {
        path: path.to_path_buf(),
        why,
    }
}

/// Whether user `uid` may write the store file described by `store` (by its owner, group and
/// mode bits; see the module's notes).
pub(super) fn may_write(uid: u32, store: &Metadata) -> bool {
    let mode = store.mode();
    uid == 0
        || uid == store.uid()
        || mode & 0o002 != 0
        || (mode & 0o020 != 0 && in_group(uid, store.gid()))
}

/// The effective user id of this process.
pub(super) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Whether user `uid` belongs to group `gid`: this process's own groups for its own user, the
/// user database (`getgrouplist`) for anyone else. A user the database does not know belongs
/// to no group.
fn in_group(uid: u32, gid: u32) -> bool {
    if uid == euid() {
        // SAFETY: getegid cannot fail and touches no memory.
        if unsafe { libc::getegid() } == gid {
            return true;
        }
        // SAFETY: with size 0 getgroups only counts.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        if n > 0 {
            let mut groups = vec![0 as libc::gid_t; n as usize];
            // SAFETY: `groups` has room for `n` entries.
            let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
            if n >= 0 {
                return groups[..n as usize].contains(&gid);
            }
        }
        return false;
    }
    let Some((name, primary)) = user_entry(uid) else {
        return false;
    };
    if primary == gid {
        return true;
    }
    let mut count: libc::c_int = 64;
    for _ in 0..8 {
        let mut groups = vec![0 as libc::gid_t; count as usize];
        let before = count;
        // SAFETY: `groups` has room for `count` entries; getgrouplist writes at most that many
        // and sets `count` to how many the user has.
        let r =
            unsafe { libc::getgrouplist(name.as_ptr(), primary, groups.as_mut_ptr(), &mut count) };
        if r >= 0 {
            return groups[..count as usize].contains(&gid);
        }
        count = count.max(before * 2);
    }
    false
}

/// The user database's name and primary group of `uid`.
fn user_entry(uid: u32) -> Option<(CString, u32)> {
    let mut buf = vec![0 as libc::c_char; 1024];
    for _ in 0..8 {
        // SAFETY: plain data that getpwuid_r fills in.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `pw`, `buf` and `found` are valid for the call; the strings it returns
        // point into `buf`, which outlives their use below.
        let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
        if r == libc::ERANGE {
            let len = buf.len() * 4;
            buf.resize(len, 0);
            continue;
        }
        if r != 0 || found.is_null() {
            return None;
        }
        // SAFETY: `pw_name` is a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(pw.pw_name) }.to_owned();
        return Some((name, pw.pw_gid));
    }
    None
}

/// "alice (uid 1001)", or "uid 1001" for a user the database does not know.
fn user_label(uid: u32) -> String {
    match user_entry(uid) {
        Some((name, _)) => format!("{} (uid {uid})", name.to_string_lossy()),
        None => format!("uid {uid}"),
    }
}

/// Gives a lock file this process just created the store file's group (and, when this process
/// is root, its owner), and the store file's mode with read and write for the owner. Where the
/// group cannot be set (a creator outside the store's group), the lock file grants its group
/// no more than every user.
pub(super) fn give_store_owner(lock: &File, store: &Metadata) -> io::Result<()> {
    let fd = lock.as_raw_fd();
    let uid = if euid() == 0 {
        store.uid()
    } else {
        u32::MAX // (uid_t)-1: unchanged
    };
    // SAFETY: plain system call on an open descriptor. A failure (EPERM for a group this user
    // is not in) is handled by the mode below.
    unsafe {
        libc::fchown(fd, uid, store.gid());
    }
    let mut mode = (store.mode() & 0o666) | 0o600;
    if lock.metadata()?.gid() != store.gid() {
        mode = (mode & !0o070) | ((mode & 0o007) << 3);
    }
    // SAFETY: plain system call on an open descriptor; the result is checked.
    if unsafe { libc::fchmod(fd, mode) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The trust rules for a lock file this process opened (or created): refuses one that is not a
/// regular file, is owned by a user who may not write the store, or lets users write it whom
/// the store's owner did not choose.
pub(super) fn check_lock_file(
    lock_path: &Path,
    lock: &Metadata,
    store_path: &Path,
    store: &Metadata,
) -> Result<(), Error> {
    let refuse = |why: String| Error::Refused {
        path: lock_path.to_path_buf(),
        why: format!("the lock file of the store {} {why}", store_path.display()),
    };
    let ft = lock.file_type();
    if !ft.is_file() {
        let kind = if ft.is_fifo() {
            "a named pipe"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(refuse_not_regular(lock_path, store_path, kind));
    }
    if !may_write(lock.uid(), store) {
        return Err(refuse(format!(
            "is owned by {}, who may not write the store (owned by {}): a lock file steers \
             every process that opens the store, so persist does not adopt it (nothing was \
             changed). If you did not expect this, someone may be attacking the store. Fix: \
             remove it while no process has the store open (persist makes a new one), or \
             chown it to the store's owner",
            user_label(lock.uid()),
            user_label(store.uid())
        )));
    }
    let (lmode, smode) = (lock.mode(), store.mode());
    if lmode & 0o002 != 0 && smode & 0o002 == 0 {
        return Err(refuse(format!(
            "is writable by every user (mode {:04o}) but the store is not (mode {:04o}): \
             anyone could disturb the processes that use the store, so persist does not use \
             it (nothing was changed). Fix: chmod o-w {}",
            lmode & 0o7777,
            smode & 0o7777,
            lock_path.display()
        )));
    }
    let group_may_write_store =
        smode & 0o002 != 0 || (smode & 0o020 != 0 && lock.gid() == store.gid());
    let chosen_by_owner = lock.uid() == store.uid() || lock.uid() == 0;
    if lmode & 0o020 != 0 && !group_may_write_store && !chosen_by_owner {
        return Err(refuse(format!(
            "is writable by its group (gid {}), which may not write the store, and is owned by \
             {}, not by the store's owner, who alone may grant that: persist does not use it \
             (nothing was changed). Fix: chmod g-w {}",
            lock.gid(),
            user_label(lock.uid()),
            lock_path.display()
        )));
    }
    Ok(())
}

/// The refusal of a lock file that is not a regular file (`kind`: "a directory", ...).
pub(super) fn refuse_not_regular(lock_path: &Path, store_path: &Path, kind: &str) -> Error {
    Error::Refused {
        path: lock_path.to_path_buf(),
        why: format!(
            "the lock file of the store {} is not a regular file but {kind}, so persist does \
             not use it (nothing was changed). Fix: remove it (persist makes a new lock file)",
            store_path.display()
        ),
    }
}

/// The refusal to rewrite an invalid lock file that may not be persist's: one with several
/// names (hard links) or content that is not a persist lock file.
pub(super) fn refuse_rewrite(lock_path: &Path, store_path: &Path, links: u64) -> Error {
    let why = if links > 1 {
        format!(
            "is not this store's lock file and has {links} names (hard links): it may be \
             another file's, so persist does not rewrite it"
        )
    } else {
        "is not a persist lock file (its first bytes are not the lock-file magic), so persist \
         does not rewrite it"
            .to_string()
    };
    Error::Refused {
        path: lock_path.to_path_buf(),
        why: format!(
            "the lock file of the store {} {why} (nothing was changed). If nothing else uses \
             that name, remove it while no process has the store open (persist makes a new one)",
            store_path.display()
        ),
    }
}
