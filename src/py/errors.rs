//! The one place where errors cross into Python.
//!
//! The exception tree is rooted at `persist.Error` (python/persist/_errors.py documents each):
//!
//! ```text
//! Exception
//! └── persist.Error
//!     ├── FormatError       not a store, or another format version
//!     ├── CorruptionError   the store's contents are damaged
//!     ├── StoreFullError    the store cannot grow (also a MemoryError)
//!     ├── LockTimeout       lockExcl/lockShared gave up after `timeout`
//!     ├── ClosedError       the store was closed
//!     └── ReadOnlyError     a change to a store opened with readonly=True
//! ```
//!
//! A file persist refuses to trust or use (a symbolic link at a store's or lock file's name, a
//! lock file owned or writable by someone who may not write the store: `region::Error::Refused`)
//! is a `PermissionError` (errno EACCES) naming the file.
//!
//! A failed system call (a flush, an fsync, growing the file for another reason than a full
//! disk) is Python's own `OSError`, with its errno, message and file name, so that it is one of
//! `OSError`'s subclasses where the errno names one.
//!
//! The classes are defined once, in Python (python/persist/_errors.py), and imported here
//! with `import_exception!`. `create_exception!` would define them in Rust, but it gives a
//! class exactly one base, and `StoreFullError` needs two (`persist.Error` and the built-in
//! `MemoryError`). Defining all six in one Python file keeps the tree in one place and lets
//! Rust raise exactly the classes users catch: `ClosedError::new_err("...")` here is
//! `persist.ClosedError` there.
//!
//! As each engine layer gains its error enum, a `map_*` function per enum goes in this file:
//! one arm per variant, falling back to `Error` for variants it does not know (the enums are
//! `#[non_exhaustive]`).

use pyo3::import_exception;
use pyo3::prelude::*;

/// The Python module that defines the exception classes.
const ERRORS_MODULE: &str = "persist._errors";

import_exception!(persist._errors, Error);
import_exception!(persist._errors, FormatError);
import_exception!(persist._errors, CorruptionError);
import_exception!(persist._errors, StoreFullError);
import_exception!(persist._errors, LockTimeout);
import_exception!(persist._errors, ClosedError);
import_exception!(persist._errors, ReadOnlyError);

/// Adds the exception classes to the native module, as the same objects `persist` exports.
///
/// The explicit import comes first so that a broken installation (no `persist._errors`) fails
/// the import of `_persist` with Python's own `ImportError`. Later lookups through
/// `import_exception!` cannot fail after that; they would panic instead.
pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    py.import(ERRORS_MODULE)?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("CorruptionError", py.get_type::<CorruptionError>())?;
    m.add("StoreFullError", py.get_type::<StoreFullError>())?;
    m.add("LockTimeout", py.get_type::<LockTimeout>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("ReadOnlyError", py.get_type::<ReadOnlyError>())?;
    Ok(())
}

/// The Python exception for an object-layer error.
pub(super) fn map_object(e: crate::object::Error) -> PyErr {
    use crate::heap::OpenError;
    use crate::object::Error as E;
    use crate::region::Error as R;
    let msg = e.to_string();
    match e {
        E::Corrupt { .. } => CorruptionError::new_err(msg),
        E::Full(_) | E::TooLarge(_) => StoreFullError::new_err(msg),
        E::Io { op, path, source } => {
            let msg = format!("{op} failed: {}", os_text(&source));
            os_error(&source, msg, path.as_deref())
        }
        E::Usage(_) => pyo3::exceptions::PyRuntimeError::new_err(msg),
        E::Busy(_) => Error::new_err(msg),
        E::ReadOnly(_) => ReadOnlyError::new_err(msg),
        E::Timeout => LockTimeout::new_err(msg),
        E::Closed => ClosedError::new_err(msg),
        E::Open(OpenError::Region(r)) => match r {
            R::NotAStore { .. } | R::Version { .. } => FormatError::new_err(msg),
            R::Corrupt { .. } => CorruptionError::new_err(msg),
            R::Full { .. } => StoreFullError::new_err(msg),
            // A refusal to trust or use a file: PermissionError naming it (as its file name,
            // so the message leaves the path out).
            R::Refused { path, why } => os_error(
                &std::io::Error::from_raw_os_error(libc::EACCES),
                why,
                Some(&path),
            ),
            // The path goes in `filename` (Python prints it after the message), so the message
            // is what failed and the system's reason, as in Python's own OSErrors.
            R::Io { source, path, op } => {
                let msg = format!("cannot {op}: {}", os_text(&source));
                let path = (!path.as_os_str().is_empty()).then_some(path);
                os_error(&source, msg, path.as_deref())
            }
            _ => Error::new_err(msg),
        },
        E::Open(OpenError::Heap(_)) => CorruptionError::new_err(msg),
    }
}

/// The system's text for a failed call ("No such file or directory"), without the "(os error
/// N)" that Rust appends: Python shows the errno itself.
fn os_text(source: &std::io::Error) -> String {
    let text = source.to_string();
    match source.raw_os_error() {
        Some(n) => text
            .strip_suffix(&format!(" (os error {n})"))
            .map_or(text.clone(), str::to_owned),
        None => text,
    }
}

/// `OSError(errno, message, filename)`: Python picks the subclass from the errno (EACCES gives
/// `PermissionError`, ENOENT `FileNotFoundError`, EIO stays `OSError`), as for its own calls.
fn os_error(source: &std::io::Error, msg: String, path: Option<&std::path::Path>) -> PyErr {
    let errno = source.raw_os_error().unwrap_or(0);
    match path {
        // The file name as a str, as Python's own OSErrors give it.
        Some(p) => pyo3::exceptions::PyOSError::new_err((errno, msg, p.as_os_str().to_os_string())),
        None => pyo3::exceptions::PyOSError::new_err((errno, msg)),
    }
}

impl From<crate::object::Error> for PyErr {
    fn from(e: crate::object::Error) -> PyErr {
        map_object(e)
    }
}
