//! What the listener knows of a request's connection, handed to the layers that serve it as
//! request extensions: the peer's address (policy conditions, audit, throttling) and
//! whether it came over TLS. The listener (`server`) inserts them; nothing here serves.

/// The address a request's connection came from (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// Marks a request that came over TLS (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Tls;

/// Connections the kernel may hold ready for `accept` (it caps this at `net.core.somaxconn`,
/// as Go's listeners — MinIO's — ask for). A burst of clients connecting at once while the
/// server is busy waits in this queue; past it the kernel drops handshakes, and a client
/// that has already sent part of its request on such a connection sees it reset once the
/// handshake is given up (std's and tokio's `bind` ask for only 128).
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `address` (`host:port`, resolved; the first address that binds).
pub async fn listen(address: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(address).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            // A host without IPv6 refuses the socket: the next address may be IPv4.
            tokio::net::TcpSocket::new_v6()
        };
        let listener = socket.and_then(|socket| {
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(LISTEN_BACKLOG)
        });
        match listener {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{address}: no address to listen on"),
        )
    }))
}

#[cfg(test)]
mod tests {
    /// The listener asks for a deep accept queue: a burst of connections that arrive while
    /// nothing accepts all complete their handshakes (std's default of 128 drops some).
    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_accept_queue() {
        let l = super::listen("127.0.0.1:0").await.expect("listen");
        let addr = l.local_addr().expect("addr");
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(128);
        let n = 400.min(somaxconn);
        let mut clients = Vec::new();
        for _ in 0..n {
            let c = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            .expect("a handshake that completes")
            .expect("connect");
            clients.push(c);
        }
        for _ in 0..n {
            tokio::time::timeout(std::time::Duration::from_secs(2), l.accept())
                .await
                .expect("queued")
                .expect("accept");
        }
    }
}
