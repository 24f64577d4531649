//! Golden tests on AWS's published signature examples (S3 API reference, "Signature
//! Calculations" and "Authenticating Requests (AWS Signature Version 2)").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;

use super::chunked::{decode, BodyError};
use super::*;

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// 2013-05-24T00:00:00Z
const T0: u64 = 1_369_353_600;

fn creds() -> RootCredentials {
    RootCredentials {
        access_key: AK.into(),
        secret_key: SK.into(),
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn headers(h: &[(&str, &str)]) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn req<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a str,
    h: &'a [(String, String)],
) -> RequestParts<'a> {
    RequestParts {
        method,
        raw_path: path,
        raw_query: query,
        headers: h,
        host_bucket: None,
    }
}

#[test]
fn v4_get_object_example() {
    let h = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        ),
    ]);
    let r = req("GET", "/test.txt", "", &h);
    let v = verify(&r, &creds(), "us-east-1", at(T0)).expect("valid");
    assert_eq!(v.access_key, AK);
    assert_eq!(v.payload, Payload::Sha256(EMPTY_SHA256.into()));
    // Wrong secret, unknown key, wrong region, skewed clock.
    let wrong = RootCredentials {
        access_key: AK.into(),
        secret_key: "nope".into(),
    };
    assert_eq!(
        verify(&r, &wrong, "us-east-1", at(T0)),
        Err(AuthError::SignatureDoesNotMatch)
    );
    let other = RootCredentials {
        access_key: "OTHER".into(),
        secret_key: SK.into(),
    };
    assert_eq!(
        verify(&r, &other, "us-east-1", at(T0)),
        Err(AuthError::InvalidAccessKeyId)
    );
    assert!(matches!(
        verify(&r, &creds(), "eu-west-1", at(T0)),
        Err(AuthError::AuthorizationHeaderMalformed(_))
    ));
    assert_eq!(
        verify(&r, &creds(), "us-east-1", at(T0 + 3600)),
        Err(AuthError::RequestTimeTooSkewed)
    );
    // A tampered path.
    let r2 = req("GET", "/test2.txt", "", &h);
    assert_eq!(
        verify(&r2, &creds(), "us-east-1", at(T0)),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

#[test]
fn v4_put_object_example() {
    let h = headers(&[
        ("date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        ),
    ]);
    let r = req("PUT", "/test%24file.text", "", &h);
    assert!(verify(&r, &creds(), "us-east-1", at(T0)).is_ok());
}

#[test]
fn v4_query_subresource_examples() {
    let lifecycle = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        ),
    ]);
    assert!(verify(
        &req("GET", "/", "lifecycle", &lifecycle),
        &creds(),
        "us-east-1",
        at(T0)
    )
    .is_ok());
    let list = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    ]);
    assert!(verify(
        &req("GET", "/", "max-keys=2&prefix=J", &list),
        &creds(),
        "us-east-1",
        at(T0)
    )
    .is_ok());
}

#[test]
fn v4_presigned_example() {
    let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
    let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    let r = req("GET", "/test.txt", q, &h);
    let v = verify(&r, &creds(), "us-east-1", at(T0 + 3600)).expect("valid");
    assert_eq!(v.payload, Payload::Unsigned);
    assert!(matches!(
        verify(&r, &creds(), "us-east-1", at(T0 + 86_401)),
        Err(AuthError::AccessDenied(m)) if m.contains("expired")
    ));
    let tampered = q.replace("aeeed9", "aeeed8");
    assert_eq!(
        verify(
            &req("GET", "/test.txt", &tampered, &h),
            &creds(),
            "us-east-1",
            at(T0)
        ),
        Err(AuthError::SignatureDoesNotMatch)
    );
    // Out-of-range expiries are 403s (ExpiresOutOfRange), as AWS answers them.
    for expires in ["604801", "-7"] {
        let q = q.replace("X-Amz-Expires=86400", &format!("X-Amz-Expires={expires}"));
        assert!(matches!(
            verify(
                &req("GET", "/test.txt", &q, &h),
                &creds(),
                "us-east-1",
                at(T0)
            ),
            Err(AuthError::ExpiresOutOfRange(_))
        ));
    }
    // Zero seconds of validity is never valid.
    let zero = q.replace("X-Amz-Expires=86400", "X-Amz-Expires=0");
    assert!(matches!(
        verify(&req("GET", "/test.txt", &zero, &h), &creds(), "us-east-1", at(T0)),
        Err(AuthError::AccessDenied(m)) if m.contains("expired")
    ));
}

#[test]
fn http_dates_in_every_form_clients_send() {
    let want = Some(at(1_764_583_200)); // 2025-12-01T10:00:00Z
    for d in [
        "Mon, 01 Dec 2025 10:00:00 GMT",
        "Mon, 01 Dec 2025 10:00:00 -0000",
        "Mon, 01 Dec 2025 10:00:00 +0000",
        "Mon, 01 Dec 2025 10:00:00 UT",
        "Mon, 01 Dec 2025 10:00:00 UTC",
        "Mon, 01 Dec 2025 11:30:00 +0130",
        "Mon, 01 Dec 2025 05:00:00 -0500",
        "Monday, 01-Dec-25 10:00:00 GMT",
        "Mon Dec  1 10:00:00 2025",
        "  Mon, 01 Dec 2025 10:00:00 GMT ",
    ] {
        assert_eq!(parse_http_date(d), want, "{d}");
    }
    for bad in [
        "Mon, 01 Dec 2025 10:00:00 +2400",
        "Mon, 01 Dec 2025 10:00:00 +01",
        "Mon, 01 Dec 2025 10:00:00 CET",
        "2025-12-01T10:00:00Z",
        "",
    ] {
        assert_eq!(parse_http_date(bad), None, "{bad}");
    }
}

#[test]
fn region_us_is_us_east_1() {
    let now = at(T0);
    for (signed_as, server) in [("US", "us-east-1"), ("us-east-1", "US"), ("US", "US")] {
        let signed = sign_request("GET", "/", "", "h", EMPTY_SHA256, AK, SK, signed_as, now);
        let mut h = headers(&[("host", "h")]);
        h.extend(signed);
        assert!(verify(&req("GET", "/", "", &h), &creds(), server, now).is_ok());
    }
    let signed = sign_request("GET", "/", "", "h", EMPTY_SHA256, AK, SK, "eu-west-1", now);
    let mut h = headers(&[("host", "h")]);
    h.extend(signed);
    assert!(matches!(
        verify(&req("GET", "/", "", &h), &creds(), "us-east-1", now),
        Err(AuthError::AuthorizationHeaderMalformed(_))
    ));
}

/// botocore signs a bucket-level SigV2 request's resource as `/bucket/` whatever the URL.
#[test]
fn v2_bucket_resource_with_or_without_trailing_slash() {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let date = "Tue, 27 Mar 2007 19:36:42 +0000";
    let sig = |resource: &str| {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SK.as_bytes()).expect("key");
        mac.update(format!("GET\n\n\n{date}\n{resource}").as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    let now = at(1_175_024_202);
    for (path, host_bucket, signed, ok) in [
        ("/b", None, "/b/", true),
        ("/b/", None, "/b", true),
        ("/b", None, "/b", true),
        ("/", Some("b"), "/b", true),
        ("/", Some("b"), "/b/", true),
        ("/b/k", None, "/b/k/", false),
        ("/", None, "//", false),
    ] {
        let h = headers(&[
            ("date", date),
            ("authorization", &format!("AWS {AK}:{}", sig(signed))),
        ]);
        let mut r = req("GET", path, "", &h);
        r.host_bucket = host_bucket;
        assert_eq!(
            verify(&r, &creds(), "us-east-1", now).is_ok(),
            ok,
            "{path} {signed}"
        );
    }
}

#[tokio::test]
async fn v4_chunked_upload_example() {
    let h = headers(&[
        ("content-encoding", "aws-chunked"),
        ("content-length", "66824"),
        ("host", "s3.amazonaws.com"),
        ("x-amz-content-sha256", STREAMING_SIGNED),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-decoded-content-length", "66560"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        ),
    ]);
    let r = req("PUT", "/examplebucket/chunkObject.txt", "", &h);
    let v = verify(&r, &creds(), "us-east-1", at(T0)).expect("seed signature");
    let Payload::StreamingSigned {
        signer,
        trailer: false,
    } = v.payload
    else {
        panic!("expected a signed stream")
    };
    let mut body = Vec::new();
    body.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
    body.extend(std::iter::repeat_n(b'a', 65536));
    body.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
    body.extend(std::iter::repeat_n(b'a', 1024));
    body.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
    let trailers = Trailers::default();
    let out: Vec<bytes::Bytes> = decode(
        std::io::Cursor::new(body.to_vec()),
        Some(signer.clone()),
        false,
        trailers.clone(),
    )
    .try_collect()
    .await
    .expect("valid chunks");
    assert_eq!(out.concat(), vec![b'a'; 66560]);
    // One flipped byte in the data: the chunk signature fails.
    let mut bad = body.clone();
    bad[200] = b'b';
    let err = decode(std::io::Cursor::new(bad), Some(signer), false, trailers)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("tampered chunk");
    assert_eq!(BodyError::from_io(&err), Some(&BodyError::Signature));
}

use super::chunked::Trailers;

#[tokio::test]
async fn unsigned_trailer_body() {
    let body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n";
    let trailers = Trailers::default();
    let out: Vec<bytes::Bytes> = decode(
        std::io::Cursor::new(body.to_vec()),
        None,
        false,
        trailers.clone(),
    )
    .try_collect()
    .await
    .expect("valid");
    assert_eq!(out.concat(), b"hello");
    assert_eq!(
        trailers.lock().clone(),
        Some(vec![(
            "x-amz-checksum-crc32".to_string(),
            "NhCmhg==".to_string()
        )])
    );
    let truncated = b"5\r\nhel";
    assert!(decode(
        std::io::Cursor::new(truncated.to_vec()),
        None,
        false,
        Trailers::default()
    )
    .try_collect::<Vec<_>>()
    .await
    .is_err());
}

#[test]
fn v2_header_example() {
    // "Object GET" from the SigV2 documentation (virtual-hosted bucket johnsmith).
    let h = headers(&[
        ("host", "johnsmith.s3.amazonaws.com"),
        ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
        (
            "authorization",
            "AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
        ),
    ]);
    let mut r = req("GET", "/photos/puppy.jpg", "", &h);
    r.host_bucket = Some("johnsmith");
    let now = at(1_175_024_202);
    assert!(verify(&r, &creds(), "us-east-1", now).is_ok());
    assert_eq!(
        verify(&r, &creds(), "us-east-1", now + Duration::from_secs(3600)),
        Err(AuthError::RequestTimeTooSkewed)
    );
}

/// botocore signs a session's token as an `x-amz-security-token` header, then moves it
/// into the presigned URL's query: it is part of the string to sign.
#[test]
fn v2_presigned_with_a_token_in_the_query() {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let h = headers(&[("host", "127.0.0.1:9000")]);
    let string_to_sign = "GET\n\n\n1175139620\nx-amz-security-token:TOKEN+1\n/b/k";
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SK.as_bytes()).expect("key");
    mac.update(string_to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let sig = sig
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let q = format!(
        "AWSAccessKeyId={AK}&Expires=1175139620&x-amz-security-token=TOKEN%2B1&Signature={sig}"
    );
    let r = req("GET", "/b/k", &q, &h);
    assert!(verify(&r, &creds(), "us-east-1", at(1_175_139_000)).is_ok());
    // Another token than the one signed does not verify.
    let other = q.replace("TOKEN%2B1", "TOKEN%2B2");
    let r = req("GET", "/b/k", &other, &h);
    assert_eq!(
        verify(&r, &creds(), "us-east-1", at(1_175_139_000)),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

#[test]
fn v2_presigned_example() {
    // "Query string request authentication" example from the SigV2 documentation.
    let h = headers(&[("host", "johnsmith.s3.amazonaws.com")]);
    let q = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D";
    let mut r = req("GET", "/photos/puppy.jpg", q, &h);
    r.host_bucket = Some("johnsmith");
    assert!(verify(&r, &creds(), "us-east-1", at(1_175_139_000)).is_ok());
    assert!(matches!(
        verify(&r, &creds(), "us-east-1", at(1_175_139_621)),
        Err(AuthError::AccessDenied(_))
    ));
    // Expires far in the future (u64::MAX once panicked the connection task) or more than a
    // week ahead: refused like SigV4's X-Amz-Expires, before any signature work.
    for far in ["18446744073709551615", "1175744421"] {
        let q = format!("AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires={far}&Signature=x");
        let mut r = req("GET", "/photos/puppy.jpg", &q, &h);
        r.host_bucket = Some("johnsmith");
        assert!(matches!(
            verify(&r, &creds(), "us-east-1", at(1_175_139_000)),
            Err(AuthError::AccessDenied(_))
        ));
    }
    let tampered = q.replace("NpgC", "NpgD");
    let mut r = req("GET", "/photos/puppy.jpg", &tampered, &h);
    r.host_bucket = Some("johnsmith");
    assert_eq!(
        verify(&r, &creds(), "us-east-1", at(1_175_139_000)),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

#[test]
fn anonymous_requests_are_denied() {
    let h = headers(&[("host", "localhost")]);
    let r = req("GET", "/bucket", "", &h);
    assert!(is_anonymous(&r));
    assert!(matches!(
        verify(&r, &creds(), "us-east-1", at(T0)),
        Err(AuthError::AccessDenied(_))
    ));
}

#[test]
fn client_signatures_verify() {
    let now = at(T0);
    let signed = sign_request(
        "GET",
        "/cairn/admin/v1/info",
        "a=1&b=x%20y",
        "127.0.0.1:9000",
        EMPTY_SHA256,
        AK,
        SK,
        "us-east-1",
        now,
    );
    let mut h = headers(&[("host", "127.0.0.1:9000")]);
    h.extend(signed);
    let r = req("GET", "/cairn/admin/v1/info", "a=1&b=x%20y", &h);
    assert!(verify(&r, &creds(), "us-east-1", now).is_ok());
}

#[test]
fn secrets_never_reach_debug_output() {
    let c = RootCredentials {
        access_key: "admin".into(),
        secret_key: "hunter2-very-secret".into(),
    };
    let shown = format!("{c:?} {c:#?}");
    assert!(shown.contains("admin"));
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn presigned_urls_made_here_verify() {
    let query = sigv4::presign_query(
        "GET",
        "/examplebucket/a%20b.txt",
        "versionId=null",
        "examplebucket.s3.amazonaws.com",
        AK,
        SK,
        "us-east-1",
        at(T0),
        3600,
    );
    let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
    let r = req("GET", "/examplebucket/a%20b.txt", &query, &h);
    let v = verify(&r, &creds(), "us-east-1", at(T0 + 60)).expect("a fresh link verifies");
    assert_eq!(v.access_key, AK);
    assert!(verify(&r, &creds(), "us-east-1", at(T0 + 3601)).is_err());
    let other = req("GET", "/examplebucket/other", &query, &h);
    assert!(verify(&other, &creds(), "us-east-1", at(T0 + 60)).is_err());
}
