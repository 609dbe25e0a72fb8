//! The object layer's errors: one enum, each variant keeping its cause (an I/O failure its
//! errno and operation, damage its offset), with the conversions from the layers below.

use super::Busy;
use crate::heap;
use std::path::PathBuf;

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
    /// A call the caller should not have made: a lock call out of order (unlock without a
    /// lock, lockExcl under lockShared), a value tree that does not describe a value.
    Usage(String),
    /// A value too large for the store (a single block beyond the address space).
    TooLarge(String),
    /// A change (or a step that writes the store file) on a store opened read-only.
    ReadOnly(String),
    /// A wait for the store lock passed its deadline (`SharedStore::blocking`).
    Timeout,
    /// The store was closed (by another thread, or before this call).
    Closed,
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
            Error::Usage(s) => write!(f, "{s}"),
            Error::TooLarge(s) => write!(f, "{s}"),
            Error::ReadOnly(s) => write!(f, "{s}"),
            Error::Timeout => write!(f, "timed out waiting for the store lock"),
            Error::Closed => write!(f, "the store is closed"),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::sync::AccessError> for Error {
    fn from(e: crate::sync::AccessError) -> Self {
        match e {
            crate::sync::AccessError::Full { .. } => Error::Full(e.to_string()),
            crate::sync::AccessError::OutOfBounds { offset, .. }
            | crate::sync::AccessError::Misaligned { offset }
            | crate::sync::AccessError::Truncated { offset, .. } => Error::Corrupt {
                what: e.to_string(),
                offset,
            },
            crate::sync::AccessError::Io(e) => {
                let crate::sync::IoFailure { op, path, source } = *e;
                Error::Io {
                    // With the file named, "msync of /path failed"; else "... of the store".
                    op: if path.is_some() {
                        op.to_string()
                    } else {
                        format!("{op} of the store")
                    },
                    path,
                    source,
                }
            }
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
