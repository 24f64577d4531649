//! The AWS IAM policy language: parsing a policy document and deciding one request against
//! it. Pure functions over a [`Context`]; no I/O, no clocks (the caller puts the time in the
//! context).
//!
//! Semantics follow the IAM reference: a statement applies when its principal (resource
//! policies only), action, resource and every condition match; an explicit `Deny` of any
//! applicable statement wins over every `Allow`. Within a condition, keys are ANDed and the
//! values of one key ORed — for the negated operators (`StringNotEquals`, `NotIpAddress`, …)
//! no value may match, and a key absent from the request makes them true (positive ones
//! false) — except under `...IfExists` (absent: true) and `Null` (tests presence).
//! `ForAnyValue:`/`ForAllValues:` qualify multi-valued keys (absent: false / true).

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::Value;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn bad(msg: impl Into<String>) -> PolicyError {
    PolicyError(msg.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// What a policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No statement applies.
    NotApplicable,
    Allow,
    /// An explicit deny: nothing can allow the request any more.
    Deny,
}

impl Decision {
    /// Combine two decisions: a deny wins, then an allow.
    pub fn and(self, other: Decision) -> Decision {
        match (self, other) {
            (Decision::Deny, _) | (_, Decision::Deny) => Decision::Deny,
            (Decision::Allow, _) | (_, Decision::Allow) => Decision::Allow,
            _ => Decision::NotApplicable,
        }
    }
}

/// `Principal` of a resource policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalSpec {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous included.
    Any,
    /// `{"AWS": [...]}`: user ARNs, user names or access keys.
    Aws(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Names {
    negated: bool,
    patterns: Vec<String>,
    /// What each pattern needs to be matched, worked out once at parse time (the request
    /// path only compares).
    shapes: Vec<Shape>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// No wildcard and no variable: equality.
    Literal,
    Wildcard,
    /// Has `${...}` policy variables (resources only).
    Variables,
}

impl Names {
    fn new(negated: bool, patterns: Vec<String>, variables: bool) -> Names {
        let shapes = patterns
            .iter()
            .map(|p| {
                if variables && p.contains("${") {
                    Shape::Variables
                } else if p.contains(['*', '?']) {
                    Shape::Wildcard
                } else {
                    Shape::Literal
                }
            })
            .collect();
        Names {
            negated,
            patterns,
            shapes,
        }
    }

    /// Does any pattern match `text`?
    fn any_match(&self, text: &str, ignore_case: bool, ctx: &Context) -> bool {
        self.patterns
            .iter()
            .zip(&self.shapes)
            .any(|(p, shape)| match shape {
                Shape::Literal if ignore_case => p.eq_ignore_ascii_case(text),
                Shape::Literal => p == text,
                Shape::Wildcard => wildcard(p.as_bytes(), text.as_bytes(), ignore_case),
                Shape::Variables => substitute(p, ctx).is_some_and(|(p, literal)| {
                    wildcard_marked(&p, Some(&literal), text.as_bytes(), ignore_case)
                }),
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    IpAddress,
    ArnEquals,
    ArnLike,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    AnyValue,
    AllValues,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    kind: OpKind,
    negated: bool,
    if_exists: bool,
    qualifier: Option<Qualifier>,
    /// Lower case: condition keys are case-insensitive.
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    principal: Option<(bool, PrincipalSpec)>,
    actions: Names,
    resources: Option<Names>,
    conditions: Vec<Condition>,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub version: String,
    pub statements: Vec<Statement>,
}

/// Who is asking, as policies see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    Anonymous,
    /// The root user (matches resource policies naming the account or `*`).
    Root {
        access_key: &'a str,
    },
    /// A user, or a key acting for one (service account, temporary credentials).
    User {
        name: &'a str,
        access_key: &'a str,
    },
}

/// The request's condition keys.
pub trait Keys {
    /// The values of a key (lower case), `None` when the request has none.
    fn get(&self, key: &str) -> Option<Vec<Cow<'_, str>>>;
}

/// No request condition keys: admin actions and scrapes are decided without them.
pub struct NoKeys;

impl Keys for NoKeys {
    fn get(&self, _: &str) -> Option<Vec<std::borrow::Cow<'_, str>>> {
        None
    }
}

/// One request as policies see it.
pub struct Context<'a> {
    /// `s3:GetObject`, `admin:ServerInfo`, …
    pub action: &'a str,
    /// `arn:aws:s3:::bucket/key`, `arn:aws:s3:::*`, …
    pub resource: &'a str,
    pub principal: Principal<'a>,
    pub keys: &'a dyn Keys,
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                _ => Err(bad(format!("{what} entries must be strings"))),
            })
            .collect(),
        _ => Err(bad(format!(
            "{what} must be a string or a non-empty list of strings"
        ))),
    }
}

/// Condition values may be strings, numbers or booleans; all compare as strings.
fn condition_values(v: &Value) -> Result<Vec<String>, PolicyError> {
    let one = |x: &Value| match x {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(bad("condition values must be strings, numbers or booleans")),
    };
    match v {
        Value::Array(a) if !a.is_empty() => a.iter().map(one).collect(),
        Value::Array(_) => Err(bad("a condition needs at least one value")),
        x => Ok(vec![one(x)?]),
    }
}

fn parse_op(name: &str) -> Result<(OpKind, bool, bool, Option<Qualifier>), PolicyError> {
    let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
        (Some(Qualifier::AnyValue), r)
    } else if let Some(r) = name.strip_prefix("ForAllValues:") {
        (Some(Qualifier::AllValues), r)
    } else {
        (None, name)
    };
    let (rest, if_exists) = match rest.strip_suffix("IfExists") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (kind, negated) = match rest {
        "StringEquals" => (OpKind::StringEquals, false),
        "StringNotEquals" => (OpKind::StringEquals, true),
        "StringEqualsIgnoreCase" => (OpKind::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (OpKind::StringEqualsIgnoreCase, true),
        "StringLike" => (OpKind::StringLike, false),
        "StringNotLike" => (OpKind::StringLike, true),
        "NumericEquals" => (OpKind::Numeric(Cmp::Eq), false),
        "NumericNotEquals" => (OpKind::Numeric(Cmp::Eq), true),
        "NumericLessThan" => (OpKind::Numeric(Cmp::Lt), false),
        "NumericLessThanEquals" => (OpKind::Numeric(Cmp::Le), false),
        "NumericGreaterThan" => (OpKind::Numeric(Cmp::Gt), false),
        "NumericGreaterThanEquals" => (OpKind::Numeric(Cmp::Ge), false),
        "DateEquals" => (OpKind::Date(Cmp::Eq), false),
        "DateNotEquals" => (OpKind::Date(Cmp::Eq), true),
        "DateLessThan" => (OpKind::Date(Cmp::Lt), false),
        "DateLessThanEquals" => (OpKind::Date(Cmp::Le), false),
        "DateGreaterThan" => (OpKind::Date(Cmp::Gt), false),
        "DateGreaterThanEquals" => (OpKind::Date(Cmp::Ge), false),
        "Bool" => (OpKind::Bool, false),
        "IpAddress" => (OpKind::IpAddress, false),
        "NotIpAddress" => (OpKind::IpAddress, true),
        "ArnEquals" => (OpKind::ArnEquals, false),
        "ArnNotEquals" => (OpKind::ArnEquals, true),
        "ArnLike" => (OpKind::ArnLike, false),
        "ArnNotLike" => (OpKind::ArnLike, true),
        "Null" if !if_exists && qualifier.is_none() => (OpKind::Null, false),
        _ => return Err(bad(format!("unsupported condition operator {name}"))),
    };
    Ok((kind, negated, if_exists, qualifier))
}

fn parse_conditions(v: &Value) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(ops) = v else {
        return Err(bad("Condition must be an object"));
    };
    let mut out = Vec::new();
    for (op, block) in ops {
        let (kind, negated, if_exists, qualifier) = parse_op(op)?;
        let Value::Object(keys) = block else {
            return Err(bad(format!("{op} must map condition keys to values")));
        };
        for (key, values) in keys {
            let values = condition_values(values)?;
            for v in &values {
                match kind {
                    OpKind::Numeric(_) if !v.contains("${") && v.parse::<f64>().is_err() => {
                        return Err(bad(format!("{op}: {v:?} is not a number")))
                    }
                    OpKind::Date(_) if !v.contains("${") && parse_date(v).is_none() => {
                        return Err(bad(format!("{op}: {v:?} is not a date")))
                    }
                    OpKind::IpAddress if parse_cidr(v).is_none() => {
                        return Err(bad(format!("{op}: {v:?} is not an IP address or CIDR")))
                    }
                    OpKind::Bool | OpKind::Null
                        if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
                    {
                        return Err(bad(format!("{op}: {v:?} is not true or false")))
                    }
                    _ => {}
                }
            }
            out.push(Condition {
                kind,
                negated,
                if_exists,
                qualifier,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(out)
}

fn parse_principal(v: &Value) -> Result<PrincipalSpec, PolicyError> {
    match v {
        Value::String(s) if s == "*" => Ok(PrincipalSpec::Any),
        Value::Object(m) => {
            let mut names = Vec::new();
            for (kind, list) in m {
                match kind.as_str() {
                    "AWS" | "CanonicalUser" => names.extend(strings(list, "Principal")?),
                    other => return Err(bad(format!("unsupported principal type {other}"))),
                }
            }
            if names.iter().any(|n| n == "*") {
                Ok(PrincipalSpec::Any)
            } else if names.is_empty() {
                Err(bad("Principal names no one"))
            } else {
                Ok(PrincipalSpec::Aws(names))
            }
        }
        _ => Err(bad("Principal must be \"*\" or {\"AWS\": [...]}")),
    }
}

/// `Action`/`NotAction` or `Resource`/`NotResource` of a statement; `variables`: whether
/// its patterns may hold policy variables (resources do, actions do not).
fn names_of(
    obj: &serde_json::Map<String, Value>,
    positive: &str,
    negative: &str,
    variables: bool,
) -> Result<Option<Names>, PolicyError> {
    match (obj.get(positive), obj.get(negative)) {
        (Some(_), Some(_)) => Err(bad(format!(
            "a statement cannot have both {positive} and {negative}"
        ))),
        (Some(v), None) => Ok(Some(Names::new(false, strings(v, positive)?, variables))),
        (None, Some(v)) => Ok(Some(Names::new(true, strings(v, negative)?, variables))),
        (None, None) => Ok(None),
    }
}

const STATEMENT_KEYS: [&str; 10] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "Id",
];

fn parse_statement(v: &Value) -> Result<Statement, PolicyError> {
    let Value::Object(obj) = v else {
        return Err(bad("every Statement must be an object"));
    };
    if let Some(k) = obj.keys().find(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
        return Err(bad(format!("unknown statement element {k}")));
    }
    let effect = match obj.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(bad("Effect must be Allow or Deny")),
    };
    let principal = match (obj.get("Principal"), obj.get("NotPrincipal")) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "a statement cannot have both Principal and NotPrincipal",
            ))
        }
        (Some(p), None) => Some((false, parse_principal(p)?)),
        (None, Some(p)) => Some((true, parse_principal(p)?)),
        (None, None) => None,
    };
    let actions = names_of(obj, "Action", "NotAction", false)?
        .ok_or_else(|| bad("a statement needs Action or NotAction"))?;
    for a in &actions.patterns {
        if a != "*" && !a.contains(':') {
            return Err(bad(format!("invalid action {a:?}")));
        }
    }
    let resources = names_of(obj, "Resource", "NotResource", true)?;
    if let Some(r) = &resources {
        for p in &r.patterns {
            if p != "*" && !p.starts_with("arn:") {
                return Err(bad(format!("invalid resource {p:?}")));
            }
        }
    }
    let conditions = match obj.get("Condition") {
        Some(c) => parse_conditions(c)?,
        None => Vec::new(),
    };
    Ok(Statement {
        sid: obj.get("Sid").and_then(Value::as_str).map(String::from),
        effect,
        principal,
        actions,
        resources,
        conditions,
    })
}

/// Largest policy document accepted (AWS: 20 KiB for bucket policies).
pub const MAX_POLICY_SIZE: usize = 20 * 1024;

impl Policy {
    /// Parse a policy document. Identity policies need `Resource` (or `NotResource`) in every
    /// statement and no `Principal`; use [`Policy::parse_resource_policy`] for bucket policies.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_SIZE {
            return Err(bad("policy document is larger than 20 KiB"));
        }
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let Value::Object(obj) = &v else {
            return Err(bad("a policy must be a JSON object"));
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !["Version", "Statement", "Id"].contains(&k.as_str()))
        {
            return Err(bad(format!("unknown policy element {k}")));
        }
        let version = match obj.get("Version") {
            None => "2008-10-17".to_string(),
            Some(Value::String(s)) if s == "2012-10-17" || s == "2008-10-17" => s.clone(),
            Some(_) => return Err(bad("Version must be 2012-10-17 or 2008-10-17")),
        };
        let statements = match obj.get("Statement") {
            Some(Value::Array(a)) => a
                .iter()
                .map(parse_statement)
                .collect::<Result<Vec<_>, _>>()?,
            Some(s @ Value::Object(_)) => vec![parse_statement(s)?],
            _ => return Err(bad("Statement must be an object or a list of objects")),
        };
        Ok(Policy {
            version,
            statements,
        })
    }

    /// Parse an identity policy (users, groups, access keys, sessions).
    pub fn parse_identity_policy(text: &str) -> Result<Policy, PolicyError> {
        let p = Policy::parse(text)?;
        for s in &p.statements {
            if s.principal.is_some() {
                return Err(bad("identity policies cannot name a Principal"));
            }
            if s.resources.is_none() {
                return Err(bad("every statement needs Resource or NotResource"));
            }
        }
        Ok(p)
    }

    /// Parse a bucket policy: every statement names a principal and resources of `bucket`.
    pub fn parse_resource_policy(text: &str, bucket: &str) -> Result<Policy, PolicyError> {
        let p = Policy::parse(text)?;
        let arn = format!("arn:aws:s3:::{bucket}");
        for s in &p.statements {
            if s.principal.is_none() {
                return Err(bad("every statement of a bucket policy needs a Principal"));
            }
            let Some(r) = &s.resources else {
                return Err(bad("every statement needs Resource or NotResource"));
            };
            for pat in &r.patterns {
                let own = pat == &arn
                    || pat
                        .strip_prefix(&arn)
                        .is_some_and(|rest| rest.starts_with('/'))
                    || (pat.ends_with('*') && arn.starts_with(pat.trim_end_matches('*')));
                if !own {
                    return Err(bad(format!(
                        "Policy has invalid resource {pat:?}: a bucket policy can only name {arn} and its objects"
                    )));
                }
            }
        }
        Ok(p)
    }

    /// Refuse a statement naming an action (literally, in `Action`) that applies to none of
    /// its `Resource` patterns, as S3 refuses such a bucket policy (`s3:ListBucket` on
    /// `arn:aws:s3:::b/*` would otherwise be stored and grant nothing). `applies(action,
    /// pattern)` says whether an action acts on what a pattern names; `None` for an action
    /// the caller does not know, which is not checked.
    pub fn check_actions_apply(
        &self,
        applies: impl Fn(&str, &str) -> Option<bool>,
    ) -> Result<(), PolicyError> {
        for s in &self.statements {
            let Some(r) = s.resources.as_ref().filter(|r| !r.negated) else {
                continue;
            };
            if s.actions.negated {
                continue;
            }
            let literal = s
                .actions
                .patterns
                .iter()
                .zip(&s.actions.shapes)
                .filter(|(_, shape)| **shape == Shape::Literal)
                .map(|(a, _)| a);
            for action in literal {
                let none = r.patterns.iter().zip(&r.shapes).all(|(pat, shape)| {
                    *shape != Shape::Variables && applies(action, pat) == Some(false)
                });
                if none {
                    return Err(bad(format!(
                        "Action does not apply to any resource(s) in statement: {action}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Does any statement allow something to everyone (a public policy, as S3 defines it:
    /// an Allow to `*` whose conditions do not pin it to fixed source addresses)?
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && matches!(s.principal, Some((false, PrincipalSpec::Any)))
                && !s
                    .conditions
                    .iter()
                    .any(|c| !c.negated && c.kind == OpKind::IpAddress && c.key == "aws:sourceip")
        })
    }

    /// Decide `ctx` against this policy.
    pub fn evaluate(&self, ctx: &Context) -> Decision {
        let mut decision = Decision::NotApplicable;
        for s in &self.statements {
            if s.applies(ctx) {
                match s.effect {
                    Effect::Deny => return Decision::Deny,
                    Effect::Allow => decision = Decision::Allow,
                }
            }
        }
        decision
    }
}

impl Statement {
    fn applies(&self, ctx: &Context) -> bool {
        if let Some((negated, spec)) = &self.principal {
            if principal_matches(spec, ctx.principal) == *negated {
                return false;
            }
        }
        if self.actions.any_match(ctx.action, true, ctx) == self.actions.negated {
            return false;
        }
        if let Some(r) = &self.resources {
            if r.any_match(ctx.resource, false, ctx) == r.negated {
                return false;
            }
        }
        self.conditions.iter().all(|c| c.holds(ctx))
    }
}

fn principal_matches(spec: &PrincipalSpec, who: Principal) -> bool {
    let names = match spec {
        PrincipalSpec::Any => return true,
        PrincipalSpec::Aws(n) => n,
    };
    match who {
        Principal::Anonymous => false,
        Principal::Root { access_key } => names
            .iter()
            .any(|n| n == access_key || (n.starts_with("arn:aws:iam::") && n.ends_with(":root"))),
        Principal::User { name, access_key } => names.iter().any(|n| {
            n == name
                || n == access_key
                || n.strip_prefix("arn:aws:iam::")
                    .and_then(|rest| rest.split_once(":user/"))
                    .is_some_and(|(_, user)| user == name)
        }),
    }
}

/// Replace policy variables (`${aws:username}`, `${*}`, …). `None` when one has no value:
/// the element then matches nothing.
/// `pattern` with its policy variables replaced, and which of its bytes are literal: a
/// variable's value and the characters `${*}`, `${?}` and `${$}` stand for match only
/// themselves, never as wildcards. `None` when a variable has no value.
fn substitute(pattern: &str, ctx: &Context) -> Option<(Vec<u8>, Vec<bool>)> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut literal = Vec::with_capacity(pattern.len());
    let mut push = |bytes: &[u8], lit: bool| {
        out.extend_from_slice(bytes);
        literal.extend(std::iter::repeat_n(lit, bytes.len()));
    };
    let mut rest = pattern;
    while let Some(start) = rest.find("${") {
        push(&rest.as_bytes()[..start], false);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let var = &after[..end];
        match var {
            "*" | "?" | "$" => push(var.as_bytes(), true),
            _ => {
                let v = ctx.keys.get(&var.to_ascii_lowercase())?;
                let first = v.into_iter().next()?;
                push(first.as_bytes(), true);
            }
        }
        rest = &after[end + 1..];
    }
    push(rest.as_bytes(), false);
    Some((out, literal))
}

/// `*` matches any run, `?` one character.
pub fn wildcard(pattern: &[u8], text: &[u8], ignore_case: bool) -> bool {
    wildcard_marked(pattern, None, text, ignore_case)
}

/// [`wildcard`] where the pattern bytes `literal` marks match only themselves.
fn wildcard_marked(
    pattern: &[u8],
    literal: Option<&[bool]>,
    text: &[u8],
    ignore_case: bool,
) -> bool {
    let eq = |a: u8, b: u8| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let lit = |i: usize| literal.is_some_and(|l| l.get(i).copied().unwrap_or(false));
    let star_at = |i: usize| pattern[i] == b'*' && !lit(i);
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len()
            && ((pattern[p] == b'?' && !lit(p)) || (!star_at(p) && eq(pattern[p], text[t])))
        {
            p += 1;
            t += 1;
        } else if p < pattern.len() && star_at(p) {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    (p..pattern.len()).all(star_at)
}

fn parse_date(s: &str) -> Option<i128> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Some(secs as i128 * 1_000_000_000);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp_nanos())
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

fn in_cidr(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            None => return false,
        },
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - bits as u32;
    (ip >> shift) == (net >> shift)
}

fn compare<T: PartialOrd>(a: T, b: T, cmp: Cmp) -> bool {
    match cmp {
        Cmp::Eq => a == b,
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
    }
}

impl Condition {
    /// Does the request value `v` match the policy value `want` (before negation)?
    fn matches(&self, v: &str, want: &str, ctx: &Context) -> bool {
        let strings = matches!(
            self.kind,
            OpKind::StringEquals
                | OpKind::StringEqualsIgnoreCase
                | OpKind::StringLike
                | OpKind::ArnEquals
                | OpKind::ArnLike
        );
        if strings && want.contains("${") {
            let Some((w, literal)) = substitute(want, ctx) else {
                return false;
            };
            return match self.kind {
                OpKind::StringEquals | OpKind::ArnEquals => v.as_bytes() == w.as_slice(),
                OpKind::StringEqualsIgnoreCase => v.as_bytes().eq_ignore_ascii_case(&w),
                _ => wildcard_marked(&w, Some(&literal), v.as_bytes(), false),
            };
        }
        match self.kind {
            OpKind::StringEquals | OpKind::ArnEquals => v == want,
            OpKind::StringEqualsIgnoreCase => v.eq_ignore_ascii_case(want),
            OpKind::StringLike | OpKind::ArnLike => wildcard(want.as_bytes(), v.as_bytes(), false),
            OpKind::Numeric(cmp) => match (v.parse::<f64>(), want.parse::<f64>()) {
                (Ok(a), Ok(b)) => compare(a, b, cmp),
                _ => false,
            },
            OpKind::Date(cmp) => match (parse_date(v), parse_date(want)) {
                (Some(a), Some(b)) => compare(a, b, cmp),
                _ => false,
            },
            OpKind::Bool => v.eq_ignore_ascii_case(want),
            OpKind::IpAddress => match (v.parse::<IpAddr>(), parse_cidr(want)) {
                (Ok(ip), Some(net)) => in_cidr(ip, net),
                _ => false,
            },
            OpKind::Null => false,
        }
    }

    /// Does one request value satisfy the condition (negation applied)?
    fn value_holds(&self, v: &str, ctx: &Context) -> bool {
        let any = self.values.iter().any(|w| self.matches(v, w, ctx));
        any != self.negated
    }

    fn holds(&self, ctx: &Context) -> bool {
        let values = ctx.keys.get(&self.key).filter(|v| !v.is_empty());
        if self.kind == OpKind::Null {
            let absent = values.is_none();
            return self
                .values
                .iter()
                .any(|w| w.eq_ignore_ascii_case("true") == absent);
        }
        let Some(values) = values else {
            if self.if_exists {
                return true;
            }
            return match self.qualifier {
                Some(Qualifier::AllValues) => true,
                Some(Qualifier::AnyValue) => false,
                None => self.negated,
            };
        };
        match self.qualifier {
            Some(Qualifier::AllValues) => values.iter().all(|v| self.value_holds(v, ctx)),
            // A single-valued key, or any value of a multi-valued one.
            _ => values.iter().any(|v| self.value_holds(v, ctx)),
        }
    }
}

#[cfg(test)]
mod tests;
