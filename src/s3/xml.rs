//! S3 XML bodies, through quick-xml's serde support.

use serde::{Deserialize, Serialize};

use super::error::S3Error;

pub const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Serialize a response body with the XML declaration.
pub fn to_xml<T: Serialize>(value: &T) -> Result<String, S3Error> {
    let body = quick_xml::se::to_string(value).map_err(|e| {
        tracing::error!(error = %e, "XML serialization failed");
        S3Error::internal()
    })?;
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
        control_chars_as_references(body)
    ))
}

/// Control characters of values (a key may hold any; the serializer writes them raw) as
/// character references: a CR, LF or tab then reads back as itself (raw, a CR would be read
/// as a LF), and no raw NUL makes the document unreadable. The serializer writes no
/// whitespace of its own, so every control character here is a value's.
fn control_chars_as_references(body: String) -> String {
    if !body.bytes().any(|b| b < 0x20) {
        return body;
    }
    let mut out = String::with_capacity(body.len() + 16);
    for c in body.chars() {
        if (c as u32) < 0x20 {
            out.push_str(&format!("&#x{:X};", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A request body of the document type whose root element is `root`: any other document
/// is `MalformedXML`, as is anything that does not parse.
pub fn from_xml<'de, T: Deserialize<'de>>(body: &'de str, root: &str) -> Result<T, S3Error> {
    if root_name(body).as_deref() != Some(root) {
        return Err(S3Error::malformed_xml());
    }
    quick_xml::de::from_str(body).map_err(|_| S3Error::malformed_xml())
}

/// The local name of a document's root element (`None`: no element, or not XML).
fn root_name(body: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => {
                return std::str::from_utf8(e.local_name().as_ref())
                    .ok()
                    .map(String::from)
            }
            Event::Eof => return None,
            // The declaration, comments, processing instructions, a doctype, blanks.
            _ => {}
        }
    }
}

#[derive(Serialize)]
#[serde(rename = "Error")]
pub struct ErrorXml<'a> {
    #[serde(rename = "Code")]
    pub code: &'a str,
    #[serde(rename = "Message")]
    pub message: &'a str,
    #[serde(rename = "Resource")]
    pub resource: &'a str,
    #[serde(rename = "RequestId")]
    pub request_id: &'a str,
}

#[derive(Serialize, Clone)]
pub struct Owner {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "DisplayName")]
    pub display_name: String,
}

#[derive(Serialize)]
#[serde(rename = "ListAllMyBucketsResult")]
pub struct ListAllMyBucketsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Owner")]
    pub owner: Owner,
    #[serde(rename = "Buckets")]
    pub buckets: Buckets,
    #[serde(rename = "ContinuationToken", skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    #[serde(rename = "Prefix", skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Serialize)]
pub struct Buckets {
    #[serde(rename = "Bucket")]
    pub bucket: Vec<BucketXml>,
}

#[derive(Serialize)]
pub struct BucketXml {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "CreationDate")]
    pub creation_date: String,
    #[serde(rename = "BucketRegion")]
    pub bucket_region: String,
}

#[derive(Serialize)]
#[serde(rename = "LocationConstraint")]
pub struct LocationConstraintXml {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "$text")]
    pub region: String,
}

#[derive(Serialize)]
#[serde(rename = "VersioningConfiguration")]
pub struct VersioningConfiguration {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

/// `PutBucketVersioning`'s body.
#[derive(Deserialize)]
pub struct VersioningIn {
    #[serde(rename = "Status", default)]
    pub status: Option<String>,
    #[serde(rename = "MfaDelete", default)]
    pub mfa_delete: Option<String>,
}

/// `ListObjectVersions`' answer: versions and delete markers interleaved in listing order.
#[derive(Serialize)]
#[serde(rename = "ListVersionsResult")]
pub struct ListVersionsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Prefix")]
    pub prefix: String,
    #[serde(rename = "KeyMarker")]
    pub key_marker: String,
    #[serde(rename = "VersionIdMarker")]
    pub version_id_marker: String,
    #[serde(rename = "NextKeyMarker", skip_serializing_if = "Option::is_none")]
    pub next_key_marker: Option<String>,
    #[serde(
        rename = "NextVersionIdMarker",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_version_id_marker: Option<String>,
    #[serde(rename = "MaxKeys")]
    pub max_keys: usize,
    #[serde(rename = "Delimiter", skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(rename = "EncodingType", skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<&'static str>,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(rename = "$value")]
    pub entries: Vec<VersionEntry>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<CommonPrefixXml>,
}

#[derive(Serialize)]
pub enum VersionEntry {
    Version(VersionXml),
    DeleteMarker(DeleteMarkerXml),
}

#[derive(Serialize)]
pub struct VersionXml {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "VersionId")]
    pub version_id: String,
    #[serde(rename = "IsLatest")]
    pub is_latest: bool,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "StorageClass")]
    pub storage_class: &'static str,
    #[serde(rename = "Owner")]
    pub owner: Owner,
}

#[derive(Serialize)]
pub struct DeleteMarkerXml {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "VersionId")]
    pub version_id: String,
    #[serde(rename = "IsLatest")]
    pub is_latest: bool,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "Owner")]
    pub owner: Owner,
}

#[derive(Deserialize, Default)]
pub struct CreateBucketConfiguration {
    #[serde(rename = "LocationConstraint", default)]
    pub location_constraint: Option<String>,
}

#[derive(Serialize)]
pub struct ContentsXml {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "StorageClass")]
    pub storage_class: &'static str,
    #[serde(rename = "Owner", skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

#[derive(Serialize)]
pub struct CommonPrefixXml {
    #[serde(rename = "Prefix")]
    pub prefix: String,
}

#[derive(Serialize)]
#[serde(rename = "ListBucketResult")]
pub struct ListBucketResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Prefix")]
    pub prefix: String,
    #[serde(rename = "Marker", skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    #[serde(rename = "NextMarker", skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    #[serde(rename = "ContinuationToken", skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    #[serde(
        rename = "NextContinuationToken",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_continuation_token: Option<String>,
    #[serde(rename = "StartAfter", skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    #[serde(rename = "KeyCount", skip_serializing_if = "Option::is_none")]
    pub key_count: Option<usize>,
    #[serde(rename = "MaxKeys")]
    pub max_keys: usize,
    #[serde(rename = "Delimiter", skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(rename = "EncodingType", skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(rename = "Contents")]
    pub contents: Vec<ContentsXml>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<CommonPrefixXml>,
}

#[derive(Serialize)]
#[serde(rename = "CopyObjectResult")]
pub struct CopyObjectResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "$value")]
    pub checksums: Vec<ChecksumXml>,
    #[serde(rename = "ChecksumType", skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename = "CopyPartResult")]
pub struct CopyPartResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    /// The part's checksum, when its upload has an algorithm.
    #[serde(rename = "$value")]
    pub checksums: Vec<ChecksumXml>,
}

#[derive(Deserialize)]
pub struct DeleteRequest {
    #[serde(rename = "Quiet", default)]
    pub quiet: Option<bool>,
    #[serde(rename = "Object", default)]
    pub objects: Vec<DeleteObjectXml>,
}

#[derive(Deserialize)]
pub struct DeleteObjectXml {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "VersionId", default)]
    pub version_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename = "DeleteResult")]
pub struct DeleteResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Deleted")]
    pub deleted: Vec<DeletedXml>,
    #[serde(rename = "Error")]
    pub errors: Vec<DeleteErrorXml>,
}

#[derive(Serialize)]
pub struct DeletedXml {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "VersionId", skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(rename = "DeleteMarker", skip_serializing_if = "Option::is_none")]
    pub delete_marker: Option<bool>,
    #[serde(
        rename = "DeleteMarkerVersionId",
        skip_serializing_if = "Option::is_none"
    )]
    pub delete_marker_version_id: Option<String>,
}

#[derive(Serialize)]
pub struct DeleteErrorXml {
    #[serde(rename = "Key")]
    pub key: String,
    /// The version the request named, so a client can tell which of a key's failed.
    #[serde(rename = "VersionId", skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(rename = "Code")]
    pub code: String,
    #[serde(rename = "Message")]
    pub message: String,
}

#[derive(Serialize)]
#[serde(rename = "InitiateMultipartUploadResult")]
pub struct InitiateMultipartUploadResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "UploadId")]
    pub upload_id: String,
}

#[derive(Deserialize)]
pub struct CompleteMultipartUpload {
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompletedPartXml>,
}

#[derive(Deserialize)]
pub struct CompletedPartXml {
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "ChecksumCRC32", default)]
    pub checksum_crc32: Option<String>,
    #[serde(rename = "ChecksumCRC32C", default)]
    pub checksum_crc32c: Option<String>,
    #[serde(rename = "ChecksumCRC64NVME", default)]
    pub checksum_crc64nvme: Option<String>,
    #[serde(rename = "ChecksumSHA1", default)]
    pub checksum_sha1: Option<String>,
    #[serde(rename = "ChecksumSHA256", default)]
    pub checksum_sha256: Option<String>,
}

impl CompletedPartXml {
    /// The checksums given for the part, by algorithm name.
    pub fn checksums(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("CRC32", &self.checksum_crc32),
            ("CRC32C", &self.checksum_crc32c),
            ("CRC64NVME", &self.checksum_crc64nvme),
            ("SHA1", &self.checksum_sha1),
            ("SHA256", &self.checksum_sha256),
        ]
        .into_iter()
        .filter_map(|(a, v)| Some((a.to_string(), v.as_ref()?.trim().to_string())))
        .collect()
    }
}

/// One of a part's or object's checksums as S3 lists them: an element named after its
/// algorithm (`<ChecksumCRC32>…</ChecksumCRC32>`).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub enum ChecksumXml {
    #[serde(rename = "ChecksumCRC32")]
    Crc32(String),
    #[serde(rename = "ChecksumCRC32C")]
    Crc32c(String),
    #[serde(rename = "ChecksumCRC64NVME")]
    Crc64Nvme(String),
    #[serde(rename = "ChecksumSHA1")]
    Sha1(String),
    #[serde(rename = "ChecksumSHA256")]
    Sha256(String),
}

impl ChecksumXml {
    /// The elements of checksums keyed by algorithm name (`CRC32`, ...).
    pub fn all(values: &std::collections::BTreeMap<String, String>) -> Vec<ChecksumXml> {
        values
            .iter()
            .filter_map(|(alg, v)| {
                let v = v.clone();
                Some(match alg.as_str() {
                    "CRC32" => ChecksumXml::Crc32(v),
                    "CRC32C" => ChecksumXml::Crc32c(v),
                    "CRC64NVME" => ChecksumXml::Crc64Nvme(v),
                    "SHA1" => ChecksumXml::Sha1(v),
                    "SHA256" => ChecksumXml::Sha256(v),
                    _ => return None,
                })
            })
            .collect()
    }

    /// `ChecksumType` of an object with these checksums (`COMPOSITE` for a `-N` value).
    pub fn type_of(values: &std::collections::BTreeMap<String, String>) -> Option<&'static str> {
        values
            .values()
            .next()
            .map(|v| crate::checksum::ChecksumType::of_value(v).name())
    }
}

#[derive(Serialize)]
#[serde(rename = "CompleteMultipartUploadResult")]
pub struct CompleteMultipartUploadResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Location")]
    pub location: String,
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "$value")]
    pub checksums: Vec<ChecksumXml>,
    #[serde(rename = "ChecksumType", skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<&'static str>,
}

#[derive(Serialize)]
pub struct PartXml {
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "$value")]
    pub checksums: Vec<ChecksumXml>,
}

#[derive(Serialize)]
#[serde(rename = "ListPartsResult")]
pub struct ListPartsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "UploadId")]
    pub upload_id: String,
    #[serde(rename = "Initiator")]
    pub initiator: Owner,
    #[serde(rename = "Owner")]
    pub owner: Owner,
    #[serde(rename = "StorageClass")]
    pub storage_class: &'static str,
    #[serde(rename = "PartNumberMarker")]
    pub part_number_marker: u32,
    #[serde(
        rename = "NextPartNumberMarker",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_part_number_marker: Option<u32>,
    #[serde(rename = "MaxParts")]
    pub max_parts: usize,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(rename = "Part")]
    pub parts: Vec<PartXml>,
    /// The upload's checksum algorithm and type, if it was created with one.
    #[serde(rename = "ChecksumAlgorithm", skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<&'static str>,
    #[serde(rename = "ChecksumType", skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<&'static str>,
}

#[derive(Serialize)]
pub struct UploadXml {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "UploadId")]
    pub upload_id: String,
    #[serde(rename = "Initiator")]
    pub initiator: Owner,
    #[serde(rename = "Owner")]
    pub owner: Owner,
    #[serde(rename = "StorageClass")]
    pub storage_class: &'static str,
    #[serde(rename = "Initiated")]
    pub initiated: String,
    #[serde(rename = "ChecksumAlgorithm", skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<&'static str>,
    #[serde(rename = "ChecksumType", skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename = "ListMultipartUploadsResult")]
pub struct ListMultipartUploadsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "KeyMarker")]
    pub key_marker: String,
    #[serde(rename = "UploadIdMarker")]
    pub upload_id_marker: String,
    #[serde(rename = "NextKeyMarker", skip_serializing_if = "Option::is_none")]
    pub next_key_marker: Option<String>,
    #[serde(rename = "NextUploadIdMarker", skip_serializing_if = "Option::is_none")]
    pub next_upload_id_marker: Option<String>,
    #[serde(rename = "Prefix")]
    pub prefix: String,
    #[serde(rename = "Delimiter", skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(rename = "MaxUploads")]
    pub max_uploads: usize,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(rename = "Upload")]
    pub uploads: Vec<UploadXml>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<CommonPrefixXml>,
    #[serde(rename = "EncodingType", skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<&'static str>,
}

/// An owner as a request may carry it (both fields optional).
#[derive(Serialize, Deserialize, Default)]
pub struct OwnerIn {
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(
        rename = "DisplayName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename = "AccessControlPolicy")]
pub struct AccessControlPolicy {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Owner")]
    pub owner: Owner,
    #[serde(rename = "AccessControlList")]
    pub acl: AccessControlList,
}

#[derive(Serialize)]
pub struct AccessControlList {
    #[serde(rename = "Grant")]
    pub grant: Grant,
}

#[derive(Serialize)]
pub struct Grant {
    #[serde(rename = "Grantee")]
    pub grantee: Grantee,
    #[serde(rename = "Permission")]
    pub permission: &'static str,
}

#[derive(Serialize)]
pub struct Grantee {
    #[serde(rename = "@xmlns:xsi")]
    pub xmlns_xsi: &'static str,
    #[serde(rename = "@xsi:type")]
    pub xsi_type: &'static str,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "DisplayName")]
    pub display_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_exact() {
        let xml = to_xml(&ErrorXml {
            code: "NoSuchKey",
            message: "The specified key does not exist.",
            resource: "/b/a&b",
            request_id: "17A2",
        })
        .expect("xml");
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Resource>/b/a&amp;b</Resource><RequestId>17A2</RequestId></Error>"
        );
    }

    #[test]
    fn checksums_are_elements_of_the_part() {
        let mut values = std::collections::BTreeMap::new();
        values.insert("CRC32".to_string(), "NhCmhg==".to_string());
        let xml = to_xml(&CopyPartResult {
            xmlns: NS,
            last_modified: "2026-01-01T00:00:00.000Z".into(),
            etag: "\"e\"".into(),
            checksums: ChecksumXml::all(&values),
        })
        .expect("xml");
        assert!(
            xml.ends_with(
                "<ETag>\"e\"</ETag><ChecksumCRC32>NhCmhg==</ChecksumCRC32></CopyPartResult>"
            ),
            "{xml}"
        );
        let complete = to_xml(&CompleteMultipartUploadResult {
            xmlns: NS,
            location: "http://h/b/k".into(),
            bucket: "b".into(),
            key: "k".into(),
            etag: "e".into(),
            checksums: ChecksumXml::all(&values),
            checksum_type: Some("COMPOSITE"),
        })
        .expect("xml");
        assert!(
            complete.ends_with("<ETag>e</ETag><ChecksumCRC32>NhCmhg==</ChecksumCRC32><ChecksumType>COMPOSITE</ChecksumType></CompleteMultipartUploadResult>"),
            "{complete}"
        );
        let none = to_xml(&CopyPartResult {
            xmlns: NS,
            last_modified: "t".into(),
            etag: "e".into(),
            checksums: Vec::new(),
        })
        .expect("xml");
        assert!(!none.contains("Checksum"), "{none}");
    }

    #[test]
    fn control_characters_of_values_are_references() {
        let xml = to_xml(&ErrorXml {
            code: "NoSuchKey",
            message: "m",
            resource: "/b/a\rb\u{0}c\td",
            request_id: "1",
        })
        .expect("xml");
        assert!(
            xml.ends_with(
                "<Resource>/b/a&#xD;b&#x0;c&#x9;d</Resource><RequestId>1</RequestId></Error>"
            ),
            "{xml}"
        );
        assert!(!xml[xml.find('\n').map_or(0, |i| i + 1)..]
            .bytes()
            .any(|b| b < 0x20));
    }

    #[test]
    fn parses_complete_and_delete_requests() {
        let c: CompleteMultipartUpload = from_xml(
            r#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>"a"</ETag><PartNumber>1</PartNumber></Part><Part><PartNumber>2</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>"#,
            "CompleteMultipartUpload",
        )
        .expect("valid");
        assert_eq!(c.parts.len(), 2);
        assert_eq!(
            (c.parts[0].part_number, c.parts[0].etag.as_str()),
            (1, "\"a\"")
        );
        let d: DeleteRequest = from_xml("<Delete><Quiet>true</Quiet><Object><Key>x</Key></Object><Object><Key>y/z</Key></Object></Delete>", "Delete").expect("valid");
        assert_eq!(d.quiet, Some(true));
        assert_eq!(d.objects.len(), 2);
        assert!(from_xml::<CompleteMultipartUpload>(
            "<CompleteMultipartUpload><Part>",
            "CompleteMultipartUpload"
        )
        .is_err());
        // A document of another type is refused, whatever its fields.
        assert!(from_xml::<DeleteRequest>("<X/>", "Delete").is_err());
        assert!(from_xml::<DeleteRequest>(
            "<Deleted><Object><Key>x</Key></Object></Deleted>",
            "Delete"
        )
        .is_err());
        let d: DeleteRequest = from_xml(
            "<?xml version=\"1.0\"?>\n<!-- c --><s3:Delete xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Object><Key>x</Key></Object></s3:Delete>",
            "Delete",
        )
        .expect("declaration, comment and prefix");
        assert_eq!(d.objects.len(), 1);
    }

    #[test]
    fn list_result_shape() {
        let xml = to_xml(&ListBucketResult {
            xmlns: NS,
            name: "b".into(),
            prefix: String::new(),
            marker: None,
            next_marker: None,
            continuation_token: None,
            next_continuation_token: None,
            start_after: None,
            key_count: Some(1),
            max_keys: 1000,
            delimiter: None,
            encoding_type: None,
            is_truncated: false,
            contents: vec![ContentsXml {
                key: "k".into(),
                last_modified: "2024-01-01T00:00:00.000Z".into(),
                etag: "\"e\"".into(),
                size: 3,
                storage_class: "STANDARD",
                owner: None,
            }],
            common_prefixes: vec![],
        })
        .expect("xml");
        assert!(xml.contains("<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix/>"), "{xml}");
        assert!(xml.contains("<Contents><Key>k</Key>"), "{xml}");
        assert!(xml.contains("<KeyCount>1</KeyCount>"), "{xml}");
    }
}
