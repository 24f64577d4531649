//! TLS for what Cairn serves and for what it connects to.
//!
//! **Serving**: [`Certs`] reads a folder in MinIO's layout — `public.crt` + `private.key` for
//! the default certificate, one sub-folder per extra domain holding its own pair (picked by
//! the name the client asks for: SNI), and `CAs/` with extra trusted roots. It answers the
//! handshake's certificate question ([`ResolvesServerCert`]) from whatever it loaded last, and
//! [`Certs::watch`] reloads the folder when its files change or on SIGHUP; a reload that
//! fails keeps the certificates in use.
//!
//! **Connecting**: [`Trust`] is the set of roots a client checks servers against (the
//! system's, plus private CAs) or the explicit choice not to check. The internode client,
//! the admin CLI, `cairn mount`, the CSI driver and `cairn bench` all take theirs from it.
//!
//! Owns: certificate files, rustls configuration. Must not touch: HTTP, S3 or storage.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// The default certificate and its key, in the certificates folder and in each domain's
/// sub-folder.
pub const CERT_FILE: &str = "public.crt";
pub const KEY_FILE: &str = "private.key";
/// Sub-folder of extra trusted certificate authorities (PEM files).
pub const CAS_DIR: &str = "CAs";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The one cryptographic provider (ring: AES-GCM on AES-NI, ChaCha20-Poly1305, ECDSA,
/// Ed25519 and RSA), named explicitly so the process-wide default never matters.
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every PEM certificate in `path` (a chain: leaf first).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            path: path.to_path_buf(),
            msg: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            path: path.to_path_buf(),
            msg: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Invalid {
        path: path.to_path_buf(),
        msg: format!("holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
    })
}

/// The pair in `dir`: its certificate chain and matching key.
fn read_pair(dir: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = read_certs(&dir.join(CERT_FILE))?;
    let key_path = dir.join(KEY_FILE);
    let key = read_key(&key_path)?;
    let ck = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Invalid {
        path: key_path,
        msg: format!("cannot be used with {CERT_FILE}: {e}"),
    })?;
    Ok(Arc::new(ck))
}

/// What one load of the folder found.
struct Loaded {
    default: Arc<CertifiedKey>,
    /// Sub-folder certificates, each with its leaf's DER for name checks.
    domains: Vec<(String, Arc<CertifiedKey>)>,
    /// (path, content hash) of every file read: a change to any of them reloads.
    stamp: Stamp,
}

type Stamp = Vec<(PathBuf, Option<[u8; 32]>)>;

/// The files a load reads, in a stable order, with hashes of their contents (a few KiB:
/// cheaper to read than to reason about timestamp granularity or symlink swaps).
fn stamp(dir: &Path) -> Stamp {
    let mut files = vec![dir.join(CERT_FILE), dir.join(KEY_FILE)];
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    subdirs.sort();
    for sub in subdirs {
        if !sub.is_dir() {
            continue;
        }
        if sub.file_name().is_some_and(|n| n == CAS_DIR) {
            let mut cas: Vec<PathBuf> = std::fs::read_dir(&sub)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            cas.sort();
            files.extend(cas);
        } else {
            files.push(sub.join(CERT_FILE));
            files.push(sub.join(KEY_FILE));
        }
    }
    files
        .into_iter()
        .map(|p| {
            let hash = std::fs::read(&p).ok().map(|b| *blake3::hash(&b).as_bytes());
            (p, hash)
        })
        .collect()
}

fn load(dir: &Path) -> Result<Loaded, TlsError> {
    let stamp = stamp(dir);
    let default = read_pair(dir)?;
    let mut domains = Vec::new();
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != CAS_DIR))
        .collect();
    subdirs.sort();
    for sub in subdirs {
        // A sub-folder without a certificate is not a domain (MinIO ignores it too).
        if !sub.join(CERT_FILE).exists() {
            continue;
        }
        let name = sub
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        domains.push((name, read_pair(&sub)?));
    }
    Ok(Loaded {
        default,
        domains,
        stamp,
    })
}

/// Whether `cert`'s leaf is valid for the DNS name `name` (SANs, wildcards).
fn valid_for(cert: &CertifiedKey, name: &str) -> bool {
    let Some(leaf) = cert.cert.first() else {
        return false;
    };
    let Ok(server) = ServerName::try_from(name) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&server).is_ok())
}

/// The server's certificates, reloadable.
pub struct Certs {
    dir: PathBuf,
    current: RwLock<Arc<Loaded>>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = self.current.read();
        f.debug_struct("Certs")
            .field("dir", &self.dir)
            .field(
                "domains",
                &l.domains.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Certs {
    /// The certificates in `dir`, or `None` when it has no `public.crt` (plain HTTP).
    pub fn open(dir: &Path) -> Result<Option<Arc<Certs>>, TlsError> {
        if !dir.join(CERT_FILE).exists() {
            return Ok(None);
        }
        let loaded = load(dir)?;
        Ok(Some(Arc::new(Certs {
            dir: dir.to_path_buf(),
            current: RwLock::new(Arc::new(loaded)),
        })))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names of the extra domains' sub-folders.
    pub fn domains(&self) -> Vec<String> {
        self.current
            .read()
            .domains
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Read the folder again if any of its files changed: `Ok(true)` when new certificates
    /// are in use, `Ok(false)` when nothing changed; on an error the old ones stay.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let now = stamp(&self.dir);
        if !force && now == self.current.read().stamp {
            return Ok(false);
        }
        match load(&self.dir) {
            Ok(l) => {
                *self.current.write() = Arc::new(l);
                Ok(true)
            }
            Err(e) => {
                // Remember the stamp so a broken file is reported once, not every poll.
                let old = self.current.read().clone();
                *self.current.write() = Arc::new(Loaded {
                    default: old.default.clone(),
                    domains: old.domains.clone(),
                    stamp: now,
                });
                Err(e)
            }
        }
    }

    /// Reload on SIGHUP and when the files change (checked every `every`) until `stop`.
    pub fn watch(
        self: &Arc<Self>,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                let forced = tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => false,
                    Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                };
                let me2 = me.clone();
                let r = tokio::task::spawn_blocking(move || me2.reload(forced)).await;
                match r {
                    Ok(Ok(true)) => {
                        tracing::info!(dir = %me.dir.display(), "TLS certificates reloaded")
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::warn!(
                        error = %e,
                        "TLS certificates not reloaded: still serving the previous ones"
                    ),
                    Err(e) => tracing::warn!(error = %e, "TLS reload task failed"),
                }
            }
        })
    }

    /// A server configuration answering with these certificates (as they are reloaded),
    /// offering HTTP/2 and HTTP/1.1.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// PEM files in `CAs/`: roots this node trusts besides the system's (peers, KMS).
    pub fn ca_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(CAS_DIR))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let l = self.current.read().clone();
        if let Some(name) = hello.server_name() {
            let name = name.to_ascii_lowercase();
            // The folder named for the domain first, then any whose certificate covers it.
            if let Some((_, c)) = l.domains.iter().find(|(n, _)| *n == name) {
                return Some(c.clone());
            }
            if let Some((_, c)) = l.domains.iter().find(|(_, c)| valid_for(c, &name)) {
                return Some(c.clone());
            }
        }
        Some(l.default.clone())
    }
}

/// Which servers a client believes.
#[derive(Clone)]
pub struct Trust {
    /// Roots besides the system's.
    extra: Vec<CertificateDer<'static>>,
    /// The `--ca-cert` file they came from (passed on to child processes).
    ca_cert: Option<PathBuf>,
    /// Accept any certificate (`--insecure`).
    insecure: bool,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("extra_roots", &self.extra.len())
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl Default for Trust {
    fn default() -> Self {
        Trust::system()
    }
}

/// The system's roots, read once.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let r = rustls_native_certs::load_native_certs();
        if r.certs.is_empty() && !r.errors.is_empty() {
            tracing::debug!(errors = ?r.errors, "no system root certificates");
        }
        r.certs
    })
}

impl Trust {
    /// The system's roots only.
    pub fn system() -> Trust {
        Trust {
            extra: Vec::new(),
            ca_cert: None,
            insecure: false,
        }
    }

    /// The system's roots plus every certificate in `files` (PEM).
    pub fn with_files(files: &[PathBuf]) -> Result<Trust, TlsError> {
        let mut extra = Vec::new();
        for f in files {
            extra.extend(read_certs(f)?);
        }
        Ok(Trust {
            extra,
            ca_cert: None,
            insecure: false,
        })
    }

    /// A client's trust from `--ca-cert` / `CAIRN_CA_CERT` and `--insecure`; warns on stderr
    /// when verification is off.
    pub fn for_client(ca_cert: Option<&Path>, insecure: bool) -> Result<Trust, TlsError> {
        let mut t = match ca_cert {
            Some(p) => Trust::with_files(&[p.to_path_buf()])?,
            None => Trust::system(),
        };
        t.ca_cert = ca_cert.map(Path::to_path_buf);
        if insecure {
            eprintln!(
                "WARNING: --insecure: the server's TLS certificate is not verified; anyone on the path can read and change this traffic."
            );
            t.insecure = true;
        }
        Ok(t)
    }

    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The `cairn` flags that give a child process the same trust.
    pub fn cli_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(p) = &self.ca_cert {
            v.push("--ca-cert".to_string());
            v.push(p.display().to_string());
        }
        if self.insecure {
            v.push("--insecure".to_string());
        }
        v
    }

    /// Every root: the system's and the extra ones.
    pub fn roots(&self) -> Vec<CertificateDer<'static>> {
        let mut v = system_roots().to_vec();
        v.extend(self.extra.iter().cloned());
        v
    }

    /// A rustls client configuration (ALPN: HTTP/1.1).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let mut cfg = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
                .with_no_client_auth()
        } else {
            let mut store = RootCertStore::empty();
            // Unparseable system roots are skipped (as every TLS client does).
            let _ = store.add_parsable_certificates(system_roots().iter().cloned());
            for c in &self.extra {
                store.add(c.clone())?;
            }
            builder.with_root_certificates(store).with_no_client_auth()
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The same trust for a ureq agent.
    pub fn ureq_config(&self) -> ureq::tls::TlsConfig {
        let b = ureq::tls::TlsConfig::builder();
        if self.insecure {
            return b.disable_verification(true).build();
        }
        let roots: Vec<ureq::tls::Certificate<'static>> = self
            .roots()
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        b.root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .build()
    }
}

/// `--insecure`: any certificate is accepted; signatures are still checked so the
/// handshake itself stays well-formed.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Explain a failed handshake to an operator: what the peer's alert or our own check means.
pub fn explain(error: &str) -> String {
    if error.contains("UnknownCA") || error.contains("BadCertificate") {
        format!("{error} (the client does not trust this server's certificate: give it the CA, e.g. in its certs folder's {CAS_DIR}/ or with --ca-cert)")
    } else if error.contains("invalid peer certificate") {
        format!("{error} (the server's certificate does not verify: add its CA to {CAS_DIR}/ in the certs folder, or pass --ca-cert)")
    } else {
        error.to_string()
    }
}

#[cfg(test)]
mod tests;

/// An HTTP/1.1 connector for `http://` and `https://` URLs, checking servers with `config`
/// (the internode client, webhooks), connecting within `connect_timeout`.
pub fn https_connector(
    config: &ClientConfig,
    connect_timeout: Duration,
) -> hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector> {
    let mut conn = hyper_util::client::legacy::connect::HttpConnector::new();
    conn.set_connect_timeout(Some(connect_timeout));
    conn.set_nodelay(true);
    conn.enforce_http(false);
    // The connector sets ALPN itself (HTTP/1.1 here) and refuses a config that has it.
    let mut tls = config.clone();
    tls.alpn_protocols.clear();
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(conn)
}
