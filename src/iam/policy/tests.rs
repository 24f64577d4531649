//! Table tests from the IAM policy evaluation reference: effects, wildcards, NotAction /
//! NotResource, principals, variables, and every condition operator family.

use std::borrow::Cow;
use std::collections::HashMap;

use super::*;

struct Map(HashMap<String, Vec<String>>);

impl Keys for Map {
    fn get(&self, key: &str) -> Option<Vec<Cow<'_, str>>> {
        self.0
            .get(key)
            .map(|v| v.iter().map(|s| Cow::Borrowed(s.as_str())).collect())
    }
}

fn keys(pairs: &[(&str, &[&str])]) -> Map {
    Map(pairs
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect())
}

fn decide(policy: &str, action: &str, resource: &str, who: Principal, k: &Map) -> Decision {
    let p = Policy::parse(policy).unwrap_or_else(|e| panic!("{policy}: {e}"));
    p.evaluate(&Context {
        action,
        resource,
        principal: who,
        keys: k,
    })
}

const ALICE: Principal = Principal::User {
    name: "alice",
    access_key: "AKALICE",
};

fn user(k: &Map, policy: &str, action: &str, resource: &str) -> Decision {
    decide(policy, action, resource, ALICE, k)
}

#[test]
fn effects_actions_and_resources() {
    let none = keys(&[]);
    let p = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["s3:Get*","s3:ListBucket"],"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},
        {"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/secret/*"}]}"#;
    let cases = [
        ("s3:GetObject", "arn:aws:s3:::b/x", Decision::Allow),
        ("S3:getobject", "arn:aws:s3:::b/x", Decision::Allow),
        ("s3:ListBucket", "arn:aws:s3:::b", Decision::Allow),
        ("s3:GetObject", "arn:aws:s3:::B/x", Decision::NotApplicable),
        ("s3:PutObject", "arn:aws:s3:::b/x", Decision::NotApplicable),
        ("s3:GetObject", "arn:aws:s3:::b/secret/k", Decision::Deny),
        (
            "s3:GetObject",
            "arn:aws:s3:::other/x",
            Decision::NotApplicable,
        ),
    ];
    for (a, r, want) in cases {
        assert_eq!(user(&none, p, a, r), want, "{a} {r}");
    }
    let not = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","NotAction":"s3:Delete*","NotResource":"arn:aws:s3:::b/keep/*"}]}"#;
    assert_eq!(
        user(&none, not, "s3:GetObject", "arn:aws:s3:::b/x"),
        Decision::Allow
    );
    assert_eq!(
        user(&none, not, "s3:DeleteObject", "arn:aws:s3:::b/x"),
        Decision::NotApplicable
    );
    assert_eq!(
        user(&none, not, "s3:GetObject", "arn:aws:s3:::b/keep/x"),
        Decision::NotApplicable
    );
    let single =
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;
    assert_eq!(
        user(&none, single, "admin:ServerInfo", "arn:aws:s3:::*"),
        Decision::Allow
    );
    assert_eq!(
        user(&none, single, "s3:GetObject", "arn:aws:s3:::a/b?c"),
        Decision::Allow
    );
}

#[test]
fn wildcards() {
    let cases: [(&str, &str, bool); 10] = [
        ("*", "", true),
        ("a*", "a", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbbd", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*/x/*", "p/q/x/r", true),
        ("**", "z", true),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxbyy", false),
    ];
    for (p, t, want) in cases {
        assert_eq!(
            wildcard(p.as_bytes(), t.as_bytes(), false),
            want,
            "{p} ~ {t}"
        );
    }
}

#[test]
fn policy_variables() {
    let k = keys(&[
        ("aws:username", &["alice"]),
        ("s3:prefix", &["home/alice/"]),
    ]);
    let p = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/home/${aws:username}/*"},
        {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
         "Condition":{"StringLike":{"s3:prefix":["home/${aws:username}/*"]}}}]}"#;
    assert_eq!(
        user(&k, p, "s3:PutObject", "arn:aws:s3:::b/home/alice/f"),
        Decision::Allow
    );
    assert_eq!(
        user(&k, p, "s3:PutObject", "arn:aws:s3:::b/home/bob/f"),
        Decision::NotApplicable
    );
    assert_eq!(
        user(&k, p, "s3:ListBucket", "arn:aws:s3:::b"),
        Decision::Allow
    );
    let bob = keys(&[("aws:username", &["alice"]), ("s3:prefix", &["home/bob/"])]);
    assert_eq!(
        user(&bob, p, "s3:ListBucket", "arn:aws:s3:::b"),
        Decision::NotApplicable
    );
    // No value for the variable: the element matches nothing.
    assert_eq!(
        user(&keys(&[]), p, "s3:PutObject", "arn:aws:s3:::b/home//f"),
        Decision::NotApplicable
    );
    // `${*}`, `${?}` and `${$}` are the characters themselves, never wildcards (IAM's
    // "special characters"); a variable's value is literal too.
    let esc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::b/${*}literal","arn:aws:s3:::b/q/${?}/*","arn:aws:s3:::b/d/${$}x"]}]}"#;
    for (resource, want) in [
        ("arn:aws:s3:::b/*literal", Decision::Allow),
        ("arn:aws:s3:::b/xliteral", Decision::NotApplicable),
        ("arn:aws:s3:::b/q/?/k", Decision::Allow),
        ("arn:aws:s3:::b/q/a/k", Decision::NotApplicable),
        ("arn:aws:s3:::b/d/$x", Decision::Allow),
    ] {
        assert_eq!(user(&k, esc, "s3:GetObject", resource), want, "{resource}");
    }
    let starry = keys(&[("aws:username", &["a*"])]);
    let home = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username}/*"}]}"#;
    assert_eq!(
        user(&starry, home, "s3:GetObject", "arn:aws:s3:::b/a*/k"),
        Decision::Allow
    );
    assert_eq!(
        user(&starry, home, "s3:GetObject", "arn:aws:s3:::b/abc/k"),
        Decision::NotApplicable
    );
    // In conditions as well.
    let cond = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
         "Condition":{"StringLike":{"s3:prefix":"${*}/*"}}}]}"#;
    let star = keys(&[("s3:prefix", &["*/x"])]);
    let other = keys(&[("s3:prefix", &["a/x"])]);
    assert_eq!(
        user(&star, cond, "s3:ListBucket", "arn:aws:s3:::b"),
        Decision::Allow
    );
    assert_eq!(
        user(&other, cond, "s3:ListBucket", "arn:aws:s3:::b"),
        Decision::NotApplicable
    );
}

#[test]
fn principals_of_resource_policies() {
    let none = keys(&[]);
    let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/pub/*"}]}"#;
    assert_eq!(
        decide(
            public,
            "s3:GetObject",
            "arn:aws:s3:::b/pub/x",
            Principal::Anonymous,
            &none
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(
            public,
            "s3:GetObject",
            "arn:aws:s3:::b/priv/x",
            Principal::Anonymous,
            &none
        ),
        Decision::NotApplicable
    );
    let named = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123456789012:user/alice","AKBOB"]},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#;
    assert_eq!(
        decide(named, "s3:GetObject", "arn:aws:s3:::b/x", ALICE, &none),
        Decision::Allow
    );
    let bob = Principal::User {
        name: "bob",
        access_key: "AKBOB",
    };
    assert_eq!(
        decide(named, "s3:GetObject", "arn:aws:s3:::b/x", bob, &none),
        Decision::Allow
    );
    let carol = Principal::User {
        name: "carol",
        access_key: "AKC",
    };
    assert_eq!(
        decide(named, "s3:GetObject", "arn:aws:s3:::b/x", carol, &none),
        Decision::NotApplicable
    );
    assert_eq!(
        decide(
            named,
            "s3:GetObject",
            "arn:aws:s3:::b/x",
            Principal::Anonymous,
            &none
        ),
        Decision::NotApplicable
    );
    let notp = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"alice"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#;
    assert_eq!(
        decide(notp, "s3:GetObject", "arn:aws:s3:::b/x", ALICE, &none),
        Decision::NotApplicable
    );
    assert_eq!(
        decide(notp, "s3:GetObject", "arn:aws:s3:::b/x", carol, &none),
        Decision::Deny
    );
    assert!(Policy::parse(public).expect("parse").is_public());
    assert!(!Policy::parse(named).expect("parse").is_public());
    let pinned = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;
    assert!(!Policy::parse(pinned).expect("parse").is_public());
}

fn cond(op: &str, key: &str, values: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{{"{op}":{{"{key}":{values}}}}}}}]}}"#
    )
}

#[test]
fn condition_operators() {
    let k = keys(&[
        ("aws:SourceIp", &["192.168.1.20"]),
        ("aws:SecureTransport", &["false"]),
        ("aws:CurrentTime", &["2026-06-01T12:00:00Z"]),
        ("aws:EpochTime", &["1780315200"]),
        ("s3:max-keys", &["50"]),
        ("aws:username", &["alice"]),
        ("aws:UserAgent", &["aws-cli/2.15 Python"]),
        ("s3:x-amz-acl", &["public-read"]),
        ("tags", &["a", "b"]),
    ]);
    let table: &[(&str, &str, &str, bool)] = &[
        ("StringEquals", "aws:username", r#""alice""#, true),
        ("StringEquals", "aws:username", r#"["bob","alice"]"#, true),
        ("StringEquals", "aws:username", r#""Alice""#, false),
        ("StringEqualsIgnoreCase", "aws:username", r#""ALICE""#, true),
        (
            "StringNotEquals",
            "aws:username",
            r#"["bob","carol"]"#,
            true,
        ),
        (
            "StringNotEquals",
            "aws:username",
            r#"["bob","alice"]"#,
            false,
        ),
        (
            "StringNotEqualsIgnoreCase",
            "aws:username",
            r#""ALICE""#,
            false,
        ),
        ("StringLike", "aws:UserAgent", r#""aws-cli/*""#, true),
        ("StringNotLike", "aws:UserAgent", r#""boto*""#, true),
        ("StringEquals", "AWS:USERNAME", r#""alice""#, true),
        // Absent keys: positive false, negated true.
        ("StringEquals", "aws:Referer", r#""x""#, false),
        ("StringNotEquals", "aws:Referer", r#""x""#, true),
        ("StringEqualsIfExists", "aws:Referer", r#""x""#, true),
        ("StringEqualsIfExists", "aws:username", r#""bob""#, false),
        ("NumericLessThanEquals", "s3:max-keys", r#""50""#, true),
        ("NumericLessThan", "s3:max-keys", r#"50"#, false),
        ("NumericGreaterThan", "s3:max-keys", r#""10""#, true),
        ("NumericNotEquals", "s3:max-keys", r#"["10","20"]"#, true),
        ("NumericEquals", "s3:max-keys", r#""50.0""#, true),
        (
            "DateGreaterThan",
            "aws:CurrentTime",
            r#""2026-01-01T00:00:00Z""#,
            true,
        ),
        (
            "DateLessThan",
            "aws:CurrentTime",
            r#""2026-01-01T00:00:00Z""#,
            false,
        ),
        (
            "DateLessThanEquals",
            "aws:EpochTime",
            r#""1780315200""#,
            true,
        ),
        (
            "DateEquals",
            "aws:CurrentTime",
            r#""2026-06-01T12:00:00Z""#,
            true,
        ),
        (
            "DateNotEquals",
            "aws:CurrentTime",
            r#""2026-06-01T12:00:00Z""#,
            false,
        ),
        ("Bool", "aws:SecureTransport", r#""false""#, true),
        ("Bool", "aws:SecureTransport", r#"true"#, false),
        ("IpAddress", "aws:SourceIp", r#""192.168.0.0/16""#, true),
        (
            "IpAddress",
            "aws:SourceIp",
            r#"["10.0.0.0/8","192.168.1.20"]"#,
            true,
        ),
        ("NotIpAddress", "aws:SourceIp", r#""192.168.0.0/16""#, false),
        ("NotIpAddress", "aws:SourceIp", r#""10.0.0.0/8""#, true),
        ("ArnLike", "aws:SourceArn", r#""arn:aws:s3:::*""#, false),
        ("ArnNotLike", "aws:SourceArn", r#""arn:aws:s3:::*""#, true),
        ("Null", "aws:Referer", r#""true""#, true),
        ("Null", "aws:username", r#""true""#, false),
        ("Null", "aws:username", r#""false""#, true),
        ("ForAnyValue:StringEquals", "tags", r#"["b","z"]"#, true),
        ("ForAnyValue:StringEquals", "tags", r#"["y","z"]"#, false),
        (
            "ForAllValues:StringEquals",
            "tags",
            r#"["a","b","c"]"#,
            true,
        ),
        ("ForAllValues:StringEquals", "tags", r#"["a"]"#, false),
        ("ForAllValues:StringEquals", "missing", r#"["a"]"#, true),
        ("ForAnyValue:StringEquals", "missing", r#"["a"]"#, false),
        ("StringEquals", "s3:x-amz-acl", r#""public-read""#, true),
    ];
    for (op, key, values, want) in table {
        let p = cond(op, key, values);
        let got = user(&k, &p, "s3:GetObject", "arn:aws:s3:::b/x") == Decision::Allow;
        assert_eq!(got, *want, "{op} {key} {values}");
    }
    // Keys of one operator are ANDed; operators are ANDed.
    let both = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{
        "StringEquals":{"aws:username":"alice","s3:x-amz-acl":"private"}}}]}"#;
    assert_eq!(
        user(&k, both, "s3:GetObject", "arn:aws:s3:::b/x"),
        Decision::NotApplicable
    );
}

#[test]
fn deny_beats_allow_in_any_order() {
    let none = keys(&[]);
    let p = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Deny","Action":"s3:*","Resource":"*"},
        {"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    assert_eq!(
        user(&none, p, "s3:GetObject", "arn:aws:s3:::b/x"),
        Decision::Deny
    );
    assert_eq!(Decision::Allow.and(Decision::Deny), Decision::Deny);
    assert_eq!(
        Decision::NotApplicable.and(Decision::Allow),
        Decision::Allow
    );
}

#[test]
fn malformed_policies_are_refused_with_a_reason() {
    let bad = [
        "",
        "[]",
        r#"{"Statement":[]"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"allow","Action":"s3:*","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","NotAction":"x:y","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringWhatever":{"a":"b"}}}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"300.1.1.1"}}}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Bogus":1}]}"#,
        r#"{"Version":"2013-01-01","Statement":[]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"bucket"}]}"#,
    ];
    for p in bad {
        assert!(Policy::parse(p).is_err(), "accepted {p}");
    }
    let no_resource =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#;
    assert!(Policy::parse_identity_policy(no_resource).is_err());
    let other_bucket = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::other/*"}]}"#;
    assert!(Policy::parse_resource_policy(other_bucket, "b").is_err());
    let no_principal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#;
    assert!(Policy::parse_resource_policy(no_principal, "b").is_err());
    let fine = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"s3:GetObject","Resource":["arn:aws:s3:::b/*","arn:aws:s3:::b"]}]}"#;
    assert!(Policy::parse_resource_policy(fine, "b").is_ok());
}
