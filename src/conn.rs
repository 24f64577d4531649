//! What the listener knows of a request's connection, handed to the layers that serve it as
//! request extensions: the peer's address (policy conditions, audit, throttling) and
//! whether it came over TLS. The listener (`server`) inserts them; nothing here serves.

/// The address a request's connection came from (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// Marks a request that came over TLS (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Tls;
