//! Cairn: a distributed, erasure-coded, S3-compatible object store.
//!
//! See `docs/architecture.md` for what each module owns and must not touch.

pub mod placement;
