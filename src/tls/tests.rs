use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        Ca {
            cert: p.self_signed(&key).expect("ca"),
            key,
        }
    }

    /// A leaf for `names`, written as `dir/public.crt` + `dir/private.key`; its DER.
    fn issue(&self, dir: &Path, names: &[&str]) -> Vec<u8> {
        std::fs::create_dir_all(dir).expect("dir");
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf");
        std::fs::write(dir.join(CERT_FILE), leaf.pem()).expect("cert");
        std::fs::write(dir.join(KEY_FILE), key.serialize_pem()).expect("key");
        leaf.der().to_vec()
    }

    fn write_pem(&self, path: &Path) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, self.cert.pem()).expect("ca pem");
    }
}

/// Handshake a new client of `trust` (no session to resume) with `server` over memory as
/// `name`; the certificate it was shown.
async fn shown(server: Arc<ServerConfig>, trust: &Trust, name: &str) -> Result<Vec<u8>, String> {
    let client = trust.client_config().map_err(|e| e.to_string())?;
    let (a, b) = tokio::io::duplex(64 << 10);
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let served = tokio::spawn(async move {
        let mut s = acceptor.accept(b).await?;
        s.write_all(b"ok").await?;
        s.flush().await?;
        Ok::<_, std::io::Error>(())
    });
    let connector = tokio_rustls::TlsConnector::from(client);
    let name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut c = connector
        .connect(name, a)
        .await
        .map_err(|e| e.to_string())?;
    let cert = c
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|v| v.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or("no certificate")?;
    let mut buf = [0u8; 2];
    c.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    assert_eq!(&buf, b"ok");
    let _ = served.await;
    Ok(cert)
}

#[tokio::test]
async fn sni_picks_the_domain_folder_and_the_default_answers_the_rest() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new("Test CA");
    let default = ca.issue(dir.path(), &["localhost", "127.0.0.1"]);
    let alt = ca.issue(&dir.path().join("alt.example"), &["alt.example"]);
    // A folder not named for the domain: found by its certificate's (wildcard) name.
    let wild = ca.issue(&dir.path().join("wildcard"), &["*.wild.example"]);
    ca.write_pem(&dir.path().join(CAS_DIR).join("ca.crt"));
    let certs = Certs::open(dir.path()).expect("load").expect("tls on");
    let server = certs.server_config().expect("server config");
    let client = Trust::with_files(&Certs::ca_files(dir.path())).expect("trust");
    assert_eq!(
        shown(server.clone(), &client, "localhost").await,
        Ok(default.clone())
    );
    assert_eq!(shown(server.clone(), &client, "ALT.example").await, Ok(alt));
    assert_eq!(
        shown(server.clone(), &client, "a.wild.example").await,
        Ok(wild)
    );
    // No folder covers it: the default certificate, which then fails the client's check.
    let e = shown(server.clone(), &client, "other.example")
        .await
        .expect_err("name mismatch");
    assert!(e.contains("not valid for name"), "{e}");
    // A client that trusts only the system's roots refuses the private CA.
    let e = shown(server.clone(), &Trust::system(), "localhost")
        .await
        .expect_err("unknown issuer");
    assert!(e.contains("UnknownIssuer"), "{e}");
    assert!(explain(&e).contains("--ca-cert"), "{}", explain(&e));
    // --insecure accepts it (and says nothing to the server about names).
    let insecure = Trust {
        insecure: true,
        ..Trust::system()
    };
    assert_eq!(shown(server, &insecure, "other.example").await, Ok(default));
}

#[tokio::test]
async fn a_reload_swaps_certificates_and_a_failed_one_keeps_the_old() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new("Test CA");
    let first = ca.issue(dir.path(), &["localhost"]);
    ca.write_pem(&dir.path().join("ca.pem"));
    let certs = Certs::open(dir.path()).expect("load").expect("tls on");
    let server = certs.server_config().expect("server config");
    let client = Trust::with_files(&[dir.path().join("ca.pem")]).expect("trust");
    assert!(!certs.reload(false).expect("unchanged"));
    // A half-written certificate: refused, the old one is still served, and the same
    // broken files are not reported again.
    std::fs::write(
        dir.path().join(CERT_FILE),
        "-----BEGIN CERTIFICATE-----\ngarbage",
    )
    .expect("w");
    let e = certs.reload(false).expect_err("broken");
    assert!(e.to_string().contains(CERT_FILE), "{e}");
    assert!(!certs.reload(false).expect("same stamp"));
    assert_eq!(
        shown(server.clone(), &client, "localhost").await,
        Ok(first.clone())
    );
    // A key that does not belong to the certificate: refused too.
    let other = tempfile::tempdir().expect("tmp");
    ca.issue(other.path(), &["localhost"]);
    ca.issue(dir.path(), &["localhost"]);
    std::fs::copy(other.path().join(KEY_FILE), dir.path().join(KEY_FILE)).expect("cp");
    let e = certs.reload(true).expect_err("mismatch");
    assert!(e.to_string().contains(KEY_FILE), "{e}");
    assert_eq!(
        shown(server.clone(), &client, "localhost").await,
        Ok(first.clone())
    );
    // A good pair: the next handshake gets it.
    let second = ca.issue(dir.path(), &["localhost"]);
    assert!(certs.reload(false).expect("reloaded"));
    assert_ne!(first, second);
    assert_eq!(shown(server, &client, "localhost").await, Ok(second));
}

#[test]
fn no_public_crt_means_plain_http_and_bad_files_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    assert!(Certs::open(dir.path()).expect("empty").is_none());
    std::fs::write(dir.path().join(CERT_FILE), "not pem").expect("w");
    let e = Certs::open(dir.path()).expect_err("bad");
    assert!(e.to_string().contains(CERT_FILE), "{e}");
    let ca = Ca::new("Test CA");
    ca.issue(dir.path(), &["localhost"]);
    std::fs::write(
        dir.path().join(KEY_FILE),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("w");
    let e = Certs::open(dir.path()).expect_err("bad key");
    assert!(e.to_string().contains(KEY_FILE), "{e}");
}

#[test]
fn a_client_trust_passes_on_as_flags_and_hides_nothing_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new("Test CA");
    let pem = dir.path().join("ca.pem");
    ca.write_pem(&pem);
    let t = Trust::for_client(Some(&pem), false).expect("trust");
    assert_eq!(
        t.cli_args(),
        vec!["--ca-cert".to_string(), pem.display().to_string()]
    );
    assert!(!t.is_insecure());
    assert_eq!(t.roots().len(), system_roots().len() + 1);
    assert_eq!(Trust::system().cli_args(), Vec::<String>::new());
    let e = Trust::for_client(Some(&dir.path().join("missing.pem")), false).expect_err("no file");
    assert!(e.to_string().contains("missing.pem"), "{e}");
}
