//! Browser form uploads (POST Object): the form's policy document is what the client
//! signs — SigV4 (`x-amz-algorithm`, `x-amz-credential`, `x-amz-date`, `x-amz-signature`,
//! a hex HMAC of the base64 policy with the day's signing key) or SigV2 (`AWSAccessKeyId`,
//! `signature`, a base64 HMAC-SHA1 of the base64 policy). A form with neither is anonymous.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::sigv4::{check_scope, parse_amz_date, parse_scope, signing_key};
use super::{same, AuthError, Credentials, Payload, Verified};

/// The value of form field `name` (field names are case-insensitive).
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Verify a form's signature over its `policy` field (whose expiration the caller checks).
pub fn verify_form(
    fields: &[(String, String)],
    creds: &dyn Credentials,
    region: &str,
) -> Result<Verified, AuthError> {
    let denied = |m: &str| AuthError::AccessDenied(m.to_string());
    if let Some(signature) = field(fields, "x-amz-signature") {
        if field(fields, "x-amz-algorithm") != Some("AWS4-HMAC-SHA256") {
            return Err(AuthError::InvalidArgument(
                "POST requires x-amz-algorithm AWS4-HMAC-SHA256 with x-amz-signature".into(),
            ));
        }
        let policy = field(fields, "policy")
            .ok_or_else(|| denied("Bucket POST must contain a field named 'policy'"))?;
        let credential = field(fields, "x-amz-credential").ok_or_else(|| {
            AuthError::InvalidArgument("POST requires a field named 'x-amz-credential'".into())
        })?;
        let date = field(fields, "x-amz-date").ok_or_else(|| {
            AuthError::InvalidArgument("POST requires a field named 'x-amz-date'".into())
        })?;
        let stamp = parse_amz_date(date).ok_or_else(|| {
            AuthError::InvalidArgument("x-amz-date must be in the ISO8601 Long Format".into())
        })?;
        // The same credential scope checks as a SigV4 header (service, region, day).
        let scope = parse_scope(credential)
            .filter(|s| s.service == "s3")
            .ok_or_else(|| {
                AuthError::InvalidArgument("Error parsing the X-Amz-Credential parameter".into())
            })?;
        let secret = check_scope(&scope, stamp, creds, region, AuthError::InvalidArgument)?;
        let key = signing_key(&secret, stamp, scope.region, "s3");
        let expected = aws_sigv4::sign::v4::calculate_signature(&key, policy.as_bytes());
        if !same(&expected, signature) {
            return Err(AuthError::SignatureDoesNotMatch);
        }
        return Ok(signed(scope.access_key));
    }
    if let Some(signature) = field(fields, "signature") {
        let access_key = field(fields, "AWSAccessKeyId").ok_or_else(|| {
            AuthError::InvalidArgument("POST requires a field named 'AWSAccessKeyId'".into())
        })?;
        let policy = field(fields, "policy")
            .ok_or_else(|| denied("Bucket POST must contain a field named 'policy'"))?;
        let secret = creds
            .secret_for(access_key)
            .ok_or(AuthError::InvalidAccessKeyId)?;
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
            return Err(AuthError::SignatureDoesNotMatch);
        };
        mac.update(policy.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        if !same(&expected, signature) {
            return Err(AuthError::SignatureDoesNotMatch);
        }
        return Ok(signed(access_key));
    }
    Ok(Verified::anonymous())
}

fn signed(access_key: &str) -> Verified {
    Verified {
        access_key: access_key.to_string(),
        payload: Payload::Unsigned,
        sts: false,
    }
}
