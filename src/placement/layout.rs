//! Drive arguments → endpoints → erasure sets, sized like MinIO.

use std::collections::BTreeMap;
use std::path::PathBuf;

use thiserror::Error;

use super::ellipses::{self, EllipsisError};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error(transparent)]
    Ellipsis(#[from] EllipsisError),
    #[error("no drives given")]
    NoDrives,
    #[error("drive {0:?} is listed twice")]
    Duplicate(String),
    #[error("invalid drive endpoint {0:?}: expected a path or http(s)://host:port/path")]
    BadEndpoint(String),
    #[error("cannot mix local paths and URLs in one drive list")]
    Mixed,
    #[error("cannot mix http:// and https:// endpoints ({0} and {1}): every node speaks TLS or none does")]
    MixedSchemes(String, String),
    #[error("{drives} drives cannot be split into erasure sets of 2..=16 drives")]
    NoSetSize { drives: usize },
    #[error("erasure set size {size} does not fit {drives} drives (must divide it and be 1..=16)")]
    BadSetSize { size: usize, drives: usize },
    #[error("none of the drive endpoints is on this node (listening on {0}); pass --address with the host:port this node has in the endpoint list")]
    NotThisNode(String),
    #[error("endpoints {0} and {1} both name this node; list each node once")]
    AmbiguousNode(String, String),
    #[error("parity {parity} is invalid for sets of {size} drives (at most {max})")]
    BadParity {
        parity: usize,
        size: usize,
        max: usize,
    },
}

/// One drive argument after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Local(PathBuf),
    Url {
        scheme: String,
        host: String,
        port: u16,
        path: String,
    },
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint, LayoutError> {
        let bad = || LayoutError::BadEndpoint(s.to_string());
        for scheme in ["http", "https"] {
            if let Some(rest) = s.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")) {
                let (hostport, path) = rest.split_at(rest.find('/').ok_or_else(bad)?);
                let (host, port) = match hostport.rsplit_once(':') {
                    Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
                    None => (hostport, if scheme == "https" { 443 } else { 80 }),
                };
                if host.is_empty() || path.len() < 2 {
                    return Err(bad());
                }
                return Ok(Endpoint::Url {
                    scheme: scheme.to_string(),
                    host: host.to_string(),
                    port,
                    path: path.to_string(),
                });
            }
        }
        if s.is_empty() || s.contains("://") {
            return Err(bad());
        }
        Ok(Endpoint::Local(PathBuf::from(s)))
    }

    /// The host a drive sits on (`""` for local paths): sets are spread over hosts.
    pub fn host(&self) -> String {
        match self {
            Endpoint::Local(_) => String::new(),
            Endpoint::Url { host, port, .. } => format!("{host}:{port}"),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Local(p) => write!(f, "{}", p.display()),
            Endpoint::Url {
                scheme,
                host,
                port,
                path,
            } => write!(f, "{scheme}://{host}:{port}{path}"),
        }
    }
}

/// Default parity for a set size, as MinIO: 1 → 0, 2–3 → 1, 4–5 → 2, 6–7 → 3, 8–16 → 4.
pub fn default_parity(set_size: usize) -> usize {
    match set_size {
        0 | 1 => 0,
        2..=3 => 1,
        4..=5 => 2,
        6..=7 => 3,
        _ => 4,
    }
}

/// The drives in argument order cut into sets of `set_size` consecutive drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub endpoints: Vec<Endpoint>,
    pub set_size: usize,
    pub parity: usize,
}

impl Layout {
    /// Whether the nodes talk TLS to each other (`https://` endpoints).
    pub fn is_tls(&self) -> bool {
        self.endpoints
            .iter()
            .any(|e| matches!(e, Endpoint::Url { scheme, .. } if scheme == "https"))
    }

    /// Expand the drive arguments and size the sets. `set_size` and `parity` override
    /// the defaults (`CAIRN_ERASURE_SET_DRIVE_COUNT`, `CAIRN_STORAGE_CLASS_STANDARD=EC:N`).
    pub fn from_args(
        args: &[String],
        set_size: Option<usize>,
        parity: Option<usize>,
    ) -> Result<Layout, LayoutError> {
        let mut endpoints = Vec::new();
        for arg in args {
            let (expanded, _) = ellipses::expand(arg)?;
            for e in expanded {
                endpoints.push(Endpoint::parse(&e)?);
            }
        }
        if endpoints.is_empty() {
            return Err(LayoutError::NoDrives);
        }
        let local = endpoints
            .iter()
            .filter(|e| matches!(e, Endpoint::Local(_)))
            .count();
        if local != 0 && local != endpoints.len() {
            return Err(LayoutError::Mixed);
        }
        let scheme_of = |e: &Endpoint| match e {
            Endpoint::Url { scheme, .. } => Some(scheme.clone()),
            Endpoint::Local(_) => None,
        };
        if let Some(first) = endpoints.first() {
            if let Some(other) = endpoints.iter().find(|e| scheme_of(e) != scheme_of(first)) {
                return Err(LayoutError::MixedSchemes(
                    first.to_string(),
                    other.to_string(),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for e in &endpoints {
            if !seen.insert(e.to_string()) {
                return Err(LayoutError::Duplicate(e.to_string()));
            }
        }
        if local == 0 {
            endpoints = interleave_hosts(endpoints);
        }
        let n = endpoints.len();
        let set_size = match set_size {
            Some(s) if (1..=16).contains(&s) && n.is_multiple_of(s) => s,
            Some(s) => return Err(LayoutError::BadSetSize { size: s, drives: n }),
            None => choose_set_size(&endpoints)?,
        };
        let max = set_size / 2;
        let parity = match parity {
            Some(p) if p <= max => p,
            Some(p) => {
                return Err(LayoutError::BadParity {
                    parity: p,
                    size: set_size,
                    max,
                })
            }
            None => default_parity(set_size),
        };
        Ok(Layout {
            endpoints,
            set_size,
            parity,
        })
    }

    /// True when the drives are URLs (several nodes).
    pub fn is_distributed(&self) -> bool {
        self.endpoints
            .iter()
            .any(|e| matches!(e, Endpoint::Url { .. }))
    }

    /// The nodes (`host:port`) in order of first appearance.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = Vec::new();
        for e in &self.endpoints {
            let h = e.host();
            if !nodes.contains(&h) {
                nodes.push(h);
            }
        }
        nodes
    }

    pub fn set_count(&self) -> usize {
        self.endpoints.len() / self.set_size
    }

    pub fn data(&self) -> usize {
        self.set_size - self.parity
    }

    /// Endpoints of set `i`.
    pub fn set(&self, i: usize) -> &[Endpoint] {
        &self.endpoints[i * self.set_size..(i + 1) * self.set_size]
    }
}

/// A deployment's server pools: every argument with a `{a...b}` range is one pool (MinIO's
/// rule); a list of plain drives (no ranges anywhere) is one pool. Each pool has its own
/// sets, set size and parity; the endpoints of all pools, in pool order, are the
/// deployment's endpoint list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pools {
    pub pools: Vec<Layout>,
    /// The argument each pool was given as (the plain drives joined by spaces).
    pub args: Vec<String>,
}

impl Pools {
    /// Expand the arguments into pools. `set_size` and `parity` apply to every pool.
    pub fn from_args(
        args: &[String],
        set_size: Option<usize>,
        parity: Option<usize>,
    ) -> Result<Pools, LayoutError> {
        let groups: Vec<Vec<String>> = if args.iter().any(|a| ellipses::has_ellipses(a)) {
            args.iter().map(|a| vec![a.clone()]).collect()
        } else {
            vec![args.to_vec()]
        };
        let mut pools = Vec::with_capacity(groups.len());
        for g in &groups {
            pools.push(Layout::from_args(g, set_size, parity)?);
        }
        let all = Pools {
            pools,
            args: groups.iter().map(|g| g.join(" ")).collect(),
        };
        let endpoints = all.endpoints();
        let mut seen = std::collections::HashSet::new();
        for e in &endpoints {
            if !seen.insert(e.to_string()) {
                return Err(LayoutError::Duplicate(e.to_string()));
            }
        }
        let local = endpoints
            .iter()
            .filter(|e| matches!(e, Endpoint::Local(_)))
            .count();
        if local != 0 && local != endpoints.len() {
            return Err(LayoutError::Mixed);
        }
        if all
            .pools
            .iter()
            .any(|p| p.is_tls() != all.pools[0].is_tls())
        {
            let first = all.pools[0].endpoints[0].to_string();
            let other = all
                .pools
                .iter()
                .find(|p| p.is_tls() != all.pools[0].is_tls())
                .map(|p| p.endpoints[0].to_string())
                .unwrap_or_default();
            return Err(LayoutError::MixedSchemes(first, other));
        }
        Ok(all)
    }

    /// Every pool's endpoints, pool after pool.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.pools
            .iter()
            .flat_map(|p| p.endpoints.iter().cloned())
            .collect()
    }

    pub fn is_distributed(&self) -> bool {
        self.pools.iter().any(Layout::is_distributed)
    }

    pub fn is_tls(&self) -> bool {
        self.pools.iter().any(Layout::is_tls)
    }

    /// The nodes (`host:port`) of every pool, in order of first appearance.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = Vec::new();
        for p in &self.pools {
            for n in p.nodes() {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
        }
        nodes
    }
}

/// Reorder URL endpoints round-robin over hosts (first drive of every host, then the
/// second, ...), so that consecutive drives — and so each set — span as many hosts as
/// possible. Deterministic: every node computes the same order from the same arguments.
fn interleave_hosts(endpoints: Vec<Endpoint>) -> Vec<Endpoint> {
    let mut hosts: Vec<(String, std::collections::VecDeque<Endpoint>)> = Vec::new();
    for e in endpoints {
        let h = e.host();
        match hosts.iter_mut().find(|(k, _)| *k == h) {
            Some((_, q)) => q.push_back(e),
            None => hosts.push((h, std::collections::VecDeque::from([e]))),
        }
    }
    let mut out = Vec::new();
    loop {
        let mut any = false;
        for (_, q) in hosts.iter_mut() {
            if let Some(e) = q.pop_front() {
                out.push(e);
                any = true;
            }
        }
        if !any {
            return out;
        }
    }
}

/// Which of `nodes` (`host:port`) this process is, given the address it listens on: the
/// port must match, and the host must resolve to the listen IP (or, when listening on all
/// interfaces, to an address of this machine).
pub fn find_local_node(
    nodes: &[String],
    listen: std::net::SocketAddr,
) -> Result<usize, LayoutError> {
    use std::net::ToSocketAddrs;
    let mut found: Option<usize> = None;
    for (i, node) in nodes.iter().enumerate() {
        let Ok(addrs) = node.to_socket_addrs() else {
            continue;
        };
        let ours = addrs.into_iter().any(|a| {
            a.port() == listen.port()
                && if listen.ip().is_unspecified() {
                    std::net::UdpSocket::bind((a.ip(), 0)).is_ok()
                } else {
                    a.ip() == listen.ip()
                }
        });
        if ours {
            if let Some(prev) = found {
                return Err(LayoutError::AmbiguousNode(
                    nodes[prev].clone(),
                    node.clone(),
                ));
            }
            found = Some(i);
        }
    }
    found.ok_or_else(|| LayoutError::NotThisNode(listen.to_string()))
}

/// The largest size in 2..=16 that divides the drive count and gives every set the same
/// number of drives on each of its hosts; a single drive is a set of one.
fn choose_set_size(endpoints: &[Endpoint]) -> Result<usize, LayoutError> {
    let n = endpoints.len();
    if n == 1 {
        return Ok(1);
    }
    let divisors: Vec<usize> = (2..=16).rev().filter(|s| n.is_multiple_of(*s)).collect();
    let balanced = |s: usize| {
        endpoints.chunks(s).all(|set| {
            let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
            for e in set {
                *per_host.entry(e.host()).or_default() += 1;
            }
            let hosts_total: std::collections::HashSet<String> =
                endpoints.iter().map(Endpoint::host).collect();
            let counts: Vec<usize> = per_host.values().copied().collect();
            let even = counts.iter().all(|&c| c == counts[0]);
            // A set must reach every host it can: all hosts when it is at least as large.
            even && (per_host.len() == hosts_total.len().min(s))
        })
    };
    divisors
        .iter()
        .copied()
        .find(|&s| balanced(s))
        .or_else(|| divisors.first().copied())
        .ok_or(LayoutError::NoSetSize { drives: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(args: &[&str]) -> Layout {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Layout::from_args(&args, None, None).expect("valid layout")
    }

    #[test]
    fn set_sizes_like_minio() {
        let l = layout(&["/data{1...64}"]);
        assert_eq!((l.set_count(), l.set_size, l.parity), (4, 16, 4));
        let l = layout(&["/data{1...24}"]);
        assert_eq!((l.set_count(), l.set_size), (2, 12));
        let l = layout(&["/data{1...27}"]);
        assert_eq!((l.set_count(), l.set_size, l.parity), (3, 9, 4));
        let l = layout(&["http://host{1...2}:9000/data{1...180}"]);
        assert_eq!((l.set_count(), l.set_size), (30, 12));
        let l = layout(&["/d{1...4}"]);
        assert_eq!(
            (l.set_count(), l.set_size, l.parity, l.data()),
            (1, 4, 2, 2)
        );
        let l = layout(&["/d1"]);
        assert_eq!((l.set_size, l.parity), (1, 0));
        let l = layout(&["/d{1...6}"]);
        assert_eq!((l.set_size, l.parity), (6, 3));
        let l = layout(&["/a", "/b", "/c"]);
        assert_eq!((l.set_size, l.parity), (3, 1));
    }

    #[test]
    fn sets_span_hosts() {
        let l = layout(&["http://node{1...4}:9000/data{1...2}"]);
        assert_eq!(l.set_size, 8);
        let hosts: std::collections::HashSet<String> =
            l.set(0).iter().map(Endpoint::host).collect();
        assert_eq!(hosts.len(), 4);
    }

    #[test]
    fn distributed_sets_interleave_hosts_and_nodes_are_found() {
        let l = layout(&["http://127.0.0.1:{9001...9004}/d{1...4}"]);
        assert_eq!(l.set_size, 16);
        let l = Layout::from_args(
            &["http://127.0.0.1:{9001...9004}/d{1...4}".to_string()],
            Some(4),
            None,
        )
        .expect("valid");
        for s in 0..4 {
            let hosts: std::collections::HashSet<String> =
                l.set(s).iter().map(Endpoint::host).collect();
            assert_eq!(hosts.len(), 4, "set {s} spans every node");
        }
        let nodes = l.nodes();
        assert_eq!(nodes.len(), 4);
        let at = |a: &str| find_local_node(&nodes, a.parse().expect("addr"));
        assert_eq!(at("127.0.0.1:9003"), Ok(2));
        assert_eq!(at("0.0.0.0:9002"), Ok(1));
        assert!(matches!(
            at("127.0.0.1:9100"),
            Err(LayoutError::NotThisNode(_))
        ));
        let twice = vec!["127.0.0.1:9001".to_string(), "localhost:9001".to_string()];
        assert!(matches!(
            find_local_node(&twice, "127.0.0.1:9001".parse().expect("addr")),
            Err(LayoutError::AmbiguousNode(..))
        ));
    }

    /// The shipped deployment examples give valid layouts.
    #[test]
    fn deployment_examples_parse() {
        let manifest = include_str!("../../deploy/kubernetes/cairn.yaml");
        let arg = manifest
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix("- http://"))
            .expect("drive argument in the StatefulSet");
        let l = layout(&[&format!("http://{arg}")]);
        assert_eq!(l.nodes().len(), 4);
        assert_eq!((l.set_count(), l.set_size, l.parity), (1, 8, 4));
        let unit = include_str!("../../deploy/systemd/cairn.service");
        let vols = unit
            .lines()
            .find_map(|l| l.strip_prefix("#   CAIRN_VOLUMES="))
            .expect("CAIRN_VOLUMES example")
            .trim_matches('"');
        let l = layout(&[vols]);
        assert_eq!((l.nodes().len(), l.set_size, l.parity), (4, 8, 4));
    }

    #[test]
    fn every_argument_with_a_range_is_a_pool() {
        let pools = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            Pools::from_args(&args, None, None)
        };
        let p = pools(&["/a{1...4}", "/b{1...8}"]).expect("two pools");
        assert_eq!(p.pools.len(), 2);
        assert_eq!((p.pools[0].set_size, p.pools[0].parity), (4, 2));
        assert_eq!((p.pools[1].set_size, p.pools[1].parity), (8, 4));
        assert_eq!(p.args, vec!["/a{1...4}", "/b{1...8}"]);
        assert_eq!(p.endpoints().len(), 12);
        // Plain drives are one pool, as before pools existed.
        let p = pools(&["/a", "/b", "/c", "/d"]).expect("one pool");
        assert_eq!((p.pools.len(), p.pools[0].set_size), (1, 4));
        let p = pools(&[
            "http://n{1...2}:9000/d{1...2}",
            "http://n{3...4}:9000/d{1...2}",
        ])
        .expect("cluster pools");
        assert_eq!(p.nodes().len(), 4);
        assert_eq!(p.pools[1].nodes(), vec!["n3:9000", "n4:9000"]);
        assert!(matches!(
            pools(&["/a{1...4}", "/a{3...6}"]),
            Err(LayoutError::Duplicate(_))
        ));
        assert!(matches!(
            pools(&["/a{1...4}", "http://h:1/b{1...4}"]),
            Err(LayoutError::Mixed)
        ));
    }

    #[test]
    fn overrides_and_errors() {
        let args = vec!["/d{1...16}".to_string()];
        let l = Layout::from_args(&args, Some(4), Some(1)).expect("valid");
        assert_eq!((l.set_count(), l.set_size, l.parity), (4, 4, 1));
        assert!(Layout::from_args(&args, Some(5), None).is_err());
        assert!(Layout::from_args(&args, Some(4), Some(3)).is_err());
        assert!(Layout::from_args(&["/d{1...17}".to_string()], None, None).is_err());
        assert!(Layout::from_args(&["/a".to_string(), "/a".to_string()], None, None).is_err());
        assert!(Layout::from_args(&["/a".into(), "http://h:1/b".into()], None, None).is_err());
    }
}
