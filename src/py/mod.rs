//! The `persist._persist` extension module: the native layer under the `persist` Python
//! package (python/persist/).
//!
//! This layer turns the engine's API into Python objects and the engine's errors into Python
//! exceptions; it holds no store logic of its own. The Python package re-exports what users
//! may rely on (its `__all__`, typed in `_persist.pyi`) and keeps the pure-Python helpers.
//!
//! It is compiled only with the `python` feature, which maturin turns on (pyproject.toml), so
//! `cargo test --workspace` builds test binaries that never link libpython. maturin also sets
//! `PYO3_BUILD_EXTENSION_MODULE`, which keeps the extension itself from linking libpython:
//! one abi3 wheel serves CPython 3.10 and later (Cargo.toml: `abi3-py310`).
//!
//! The exception classes are defined in Python and only looked up here: see errors.rs.

mod cache;
mod convert;
mod errors;
mod incr;
mod proxy;
mod set;
mod store;

use pyo3::prelude::*;

/// Native core of persist, a persistent object store. Use the `persist` package, not this
/// module: only what `persist` re-exports is part of the API.
#[pymodule]
fn _persist(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The on-disk format version this build reads and writes (the store header's version
    // field): a file whose header names another is refused with `persist.FormatError`.
    m.add("FORMAT_VERSION", crate::region::FORMAT_VERSION)?;
    errors::register(m)?;
    m.add_class::<store::StoreCore>()?;
    m.add_class::<store::Transaction>()?;
    m.add_class::<store::LockGuard>()?;
    m.add_function(wrap_pyfunction!(store::_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(store::_trim_unshared, m)?)?;
    m.add_class::<proxy::List>()?;
    m.add_class::<proxy::Dict>()?;
    m.add_class::<proxy::ListIter>()?;
    m.add_class::<proxy::CancelFlag>()?;
    m.add_class::<set::Set>()?;
    m.add_class::<cache::Cache>()?;
    Ok(())
}
