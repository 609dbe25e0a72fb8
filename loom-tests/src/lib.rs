//! Loom models of the allocator live in tests/; this crate has no code of its own.
