//! Expansion of `{a...b}` ellipses in drive arguments.
//!
//! `/data{1...4}` → `/data1 … /data4`; several ranges per argument form a cross product in
//! which the left-most range varies fastest, so consecutive drives alternate hosts
//! (`http://node{1...2}:9000/d{1...2}` → node1/d1, node2/d1, node1/d2, node2/d2) and a set
//! of consecutive drives spans as many hosts as possible.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EllipsisError {
    #[error("unbalanced braces in {0:?}")]
    Unbalanced(String),
    #[error("invalid range {range:?} in {arg:?}: expected {{a...b}} with a <= b")]
    BadRange { arg: String, range: String },
    #[error("range {0:?} expands to too many drives")]
    TooLarge(String),
}

/// One `{a...b}` range: numbers, keeping zero padding when both ends share a width (`{01...16}`).
#[derive(Debug, Clone)]
struct Range {
    values: Vec<String>,
}

fn parse_range(arg: &str, body: &str) -> Result<Range, EllipsisError> {
    let bad = || EllipsisError::BadRange {
        arg: arg.to_string(),
        range: body.to_string(),
    };
    let (a, b) = body.split_once("...").ok_or_else(bad)?;
    let (lo, hi): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if lo > hi {
        return Err(bad());
    }
    if hi - lo >= 10_000 {
        return Err(EllipsisError::TooLarge(body.to_string()));
    }
    let width = if a.len() == b.len() && a.starts_with('0') {
        a.len()
    } else {
        0
    };
    Ok(Range {
        values: (lo..=hi).map(|n| format!("{n:0width$}")).collect(),
    })
}

/// Does the argument contain at least one `{a...b}` range?
pub fn has_ellipses(arg: &str) -> bool {
    arg.contains("...") && arg.contains('{')
}

/// Expand every range of one argument; the result of an argument without ranges is itself.
/// Also returns the length of the left-most range (the "host" range for URLs), or 1.
pub fn expand(arg: &str) -> Result<(Vec<String>, usize), EllipsisError> {
    let mut literals = vec![String::new()];
    let mut ranges: Vec<Range> = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| EllipsisError::Unbalanced(arg.to_string()))?;
        let body = &rest[open + 1..close];
        if body.contains('{') {
            return Err(EllipsisError::Unbalanced(arg.to_string()));
        }
        if let Some(last) = literals.last_mut() {
            last.push_str(&rest[..open]);
        }
        ranges.push(parse_range(arg, body)?);
        literals.push(String::new());
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err(EllipsisError::Unbalanced(arg.to_string()));
    }
    if let Some(last) = literals.last_mut() {
        last.push_str(rest);
    }
    let total: usize = ranges.iter().map(|r| r.values.len()).product();
    if total > 100_000 {
        return Err(EllipsisError::TooLarge(arg.to_string()));
    }
    let mut out = Vec::with_capacity(total);
    for n in 0..total {
        // Left-most range varies fastest.
        let mut idx = n;
        let mut s = literals[0].clone();
        for (i, r) in ranges.iter().enumerate() {
            s.push_str(&r.values[idx % r.values.len()]);
            idx /= r.values.len();
            s.push_str(&literals[i + 1]);
        }
        out.push(s);
    }
    let first = ranges.first().map_or(1, |r| r.values.len());
    Ok((out, first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_ranges() {
        let (v, first) = expand("/data{1...4}").expect("valid");
        assert_eq!(v, ["/data1", "/data2", "/data3", "/data4"]);
        assert_eq!(first, 4);
        let (v, first) = expand("http://node{1...2}:9000/d{1...2}").expect("valid");
        assert_eq!(
            v,
            [
                "http://node1:9000/d1",
                "http://node2:9000/d1",
                "http://node1:9000/d2",
                "http://node2:9000/d2"
            ]
        );
        assert_eq!(first, 2);
        assert_eq!(
            expand("/x{01...03}").expect("valid").0,
            ["/x01", "/x02", "/x03"]
        );
        assert_eq!(expand("/plain").expect("valid").0, ["/plain"]);
    }

    #[test]
    fn refuses_bad_ranges() {
        assert!(expand("/data{4...1}").is_err());
        assert!(expand("/data{1...").is_err());
        assert!(expand("/data{a...b}").is_err());
        assert!(expand("/data{1..4}").is_err());
        assert!(expand("/data}").is_err());
    }
}
