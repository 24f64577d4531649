//! Metrics: lock-free instruments the layers record into ([`instrument`]), the response
//! body that finishes a request's counters ([`Tracked`]), and the Prometheus exposition of
//! everything a node and the cluster know (`expose`, `names`).

pub mod expose;
pub mod http;
pub mod instrument;
pub mod names;
mod tracked;

pub use instrument::{Histogram, HistogramSnapshot, InFlight, Requests, RequestsSnapshot};
pub use tracked::{Finished, Tracked};
