//! Process liveness from open-file-description (OFD) locks.
//!
//! A participant holds a write lock on one byte of the lock file (its slot's byte) through a
//! descriptor of its own. The kernel drops an OFD lock when the last descriptor of that open
//! file description closes, which a dying process does whatever killed it. Unlike classic
//! `fcntl` locks, closing some *other* descriptor of the file does not drop it; unlike pids, it
//! cannot be fooled by pid reuse or pid namespaces. A forked child inherits the descriptor, so
//! the engine closes inherited liveness descriptors in the child (see `region`), and all
//! descriptors are O_CLOEXEC so an exec'd program never keeps a slot alive.

use std::io;
use std::os::fd::RawFd;

fn flock_for(byte: u64, kind: libc::c_short) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl.l_pid = 0; // required to be 0 for OFD locks
    fl
}

fn fcntl_lock(fd: RawFd, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
    // SAFETY: `fl` is a valid, exclusively borrowed flock for the duration of the call.
    let r = unsafe { libc::fcntl(fd, cmd, fl as *mut libc::flock) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Takes the write lock on `byte` through `fd` without waiting. `Ok(false)`: someone holds it.
pub fn try_lock(fd: RawFd, byte: u64) -> io::Result<bool> {
    let mut fl = flock_for(byte, libc::F_WRLCK as libc::c_short);
    match fcntl_lock(fd, libc::F_OFD_SETLK, &mut fl) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes the write lock on `byte`, waiting for it (signals interrupt with `EINTR`).
pub fn lock_wait(fd: RawFd, byte: u64) -> io::Result<()> {
    let mut fl = flock_for(byte, libc::F_WRLCK as libc::c_short);
    loop {
        match fcntl_lock(fd, libc::F_OFD_SETLKW, &mut fl) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// Releases the lock on `byte` held through `fd` (harmless when not held).
pub fn unlock(fd: RawFd, byte: u64) -> io::Result<()> {
    let mut fl = flock_for(byte, libc::F_UNLCK as libc::c_short);
    fcntl_lock(fd, libc::F_OFD_SETLK, &mut fl)
}

/// True when an open file description other than `fd`'s holds a lock on `byte`.
pub fn is_locked_by_other(fd: RawFd, byte: u64) -> io::Result<bool> {
    let mut fl = flock_for(byte, libc::F_WRLCK as libc::c_short);
    fcntl_lock(fd, libc::F_OFD_GETLK, &mut fl)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn two_descriptions_conflict_and_close_releases() {
        let dir = std::env::temp_dir().join(format!("persist-ofd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let a = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let b = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert!(try_lock(a.as_raw_fd(), 3).unwrap());
        assert!(!try_lock(b.as_raw_fd(), 3).unwrap());
        assert!(is_locked_by_other(b.as_raw_fd(), 3).unwrap());
        assert!(!is_locked_by_other(a.as_raw_fd(), 3).unwrap());
        assert!(!is_locked_by_other(b.as_raw_fd(), 4).unwrap());
        drop(a);
        assert!(try_lock(b.as_raw_fd(), 3).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
