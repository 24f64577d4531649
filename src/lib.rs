//! Cairn: a distributed, erasure-coded, S3-compatible object store.
//!
//! See `docs/architecture.md` for what each module owns and must not touch.

pub mod admin;
pub mod api;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod bucket;
pub mod checksum;
pub mod client;
pub mod conn;
pub mod console;
pub mod crash;
pub mod csi;
pub mod deliver;
pub mod drive;
pub mod etag;
pub mod fuzzing;
pub mod heal;
pub mod iam;
pub mod kms;
pub mod lifecycle;
pub mod lock;
pub mod memory;
pub mod meta;
pub mod metrics;
pub mod mount;
pub mod notify;
pub mod object;
pub mod placement;
pub mod quota;
pub mod records;
pub mod rpc;
pub mod s3;
pub mod server;
pub mod sse;
pub mod tls;
pub mod units;
