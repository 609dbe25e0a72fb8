//! region: the store file and its mapping, the lock file beside it, and the header.
//!
//! Opening checks the first 64 bytes (magic, then format version, then byte order, the
//! checksum over the immutable fields, then the geometry) with plain reads *before* anything is
//! mapped, and refuses a header whose published size exceeds the file. A file that is not a
//! store is never changed. Creation is atomic: the new store is written to an unnamed file in
//! the same directory and linked into place with `linkat`, which fails if the name exists, so
//! two creators end up sharing the store that won and a creator killed half-way leaves no store
//! behind (see `create_atomically` for file systems without O_TMPFILE).
//!
//! Both files are reached through one descriptor of their directory and never through a
//! symbolic link, and a lock file is used only if the people who may write it may write the
//! store (`trust`, FORMAT.md §6.6): its words steer every process of the store.
//!
//! The volatile coordination state (participant slots and their journals, and later the store
//! lock and the epochs) lives in the lock file `<path>.lock` (FORMAT.md), so that a read-only
//! opener can take part without writing the store file.

#[cfg(not(target_endian = "little"))]
compile_error!("persist stores are little-endian; this target is not");

mod layout;
pub mod table;
pub use layout::{
    fnv1a, hdr, lockfile, Area, Geometry, ENDIAN_MARK, FORMAT_VERSION, MAGIC, MAX_AREAS, MAX_CHUNKS,
};
pub use table::Table;

#[cfg(not(loom))]
mod mapping;
#[cfg(not(loom))]
mod open;
#[cfg(not(loom))]
mod trust;
#[cfg(not(loom))]
pub mod vanish;
#[cfg(not(loom))]
pub use mapping::{set_flush_hook, Mapping};
#[cfg(not(loom))]
pub use open::*;
