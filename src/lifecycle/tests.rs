use super::*;

const S: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * S;

fn rule(id: &str) -> Rule {
    Rule {
        id: id.into(),
        enabled: true,
        filter: Filter::default(),
        legacy_prefix: false,
        expiration: None,
        noncurrent: None,
        abort_upload_days: None,
    }
}

fn object<'a>(
    key: &'a str,
    size: u64,
    mod_time: i64,
    tags: &'a [(String, String)],
) -> VersionFacts<'a> {
    VersionFacts {
        key,
        size,
        mod_time,
        tags,
        delete_marker: false,
        place: Place::Current { only: true },
    }
}

#[test]
fn days_round_up_to_the_next_midnight() {
    let day = Day::default();
    // Created 10:30 on day 100, 3 days: due at midnight starting day 104.
    let created = 100 * DAY + 37_800 * S;
    assert_eq!(day.due(created, 3), 104 * DAY);
    // Exactly at midnight stays there.
    assert_eq!(day.due(100 * DAY, 1), 101 * DAY);
    // A shortened day rounds to its own boundaries.
    let short = Day::of(Duration::from_secs(5));
    assert!(short.is_debug());
    assert_eq!(short.due(12 * S, 1), 20 * S);
    assert_eq!(short.due(i64::MAX - 3, 7), i64::MAX);
}

#[test]
fn current_versions_expire_by_days_or_date_when_the_filter_matches() {
    let day = Day::default();
    let tags = vec![("class".to_string(), "tmp".to_string())];
    let mut by_days = rule("days");
    by_days.filter = Filter {
        prefix: "logs/".into(),
        tags: tags.clone(),
        size_greater_than: Some(10),
        size_less_than: Some(1000),
        and: true,
    };
    by_days.expiration = Some(Expiration::Days(2));
    let lc = Lifecycle {
        rules: vec![by_days],
    };
    let v = object("logs/a", 100, 5 * DAY + S, &tags);
    assert_eq!(lc.decide(&v, 7 * DAY, day), None);
    assert_eq!(
        lc.decide(&v, 8 * DAY, day),
        Some(Decision::ExpireCurrent {
            rule: "days".into()
        })
    );
    assert_eq!(lc.expiration(&v, day), Some((8 * DAY, "days".into())));
    // Any condition failing keeps the object.
    for other in [
        object("other/a", 100, 5 * DAY, &tags),
        object("logs/a", 10, 5 * DAY, &tags),
        object("logs/a", 1000, 5 * DAY, &tags),
        object("logs/a", 100, 5 * DAY, &[]),
    ] {
        assert_eq!(lc.decide(&other, 100 * DAY, day), None);
        assert_eq!(lc.expiration(&other, day), None);
    }
    // A disabled rule does nothing; a date rule expires everything on that date.
    let mut off = lc.clone();
    off.rules[0].enabled = false;
    assert_eq!(off.decide(&v, 100 * DAY, day), None);
    let mut date = rule("date");
    date.expiration = Some(Expiration::Date(50 * 86_400));
    let lc = Lifecycle { rules: vec![date] };
    assert_eq!(lc.decide(&v, 50 * DAY - 1, day), None);
    assert!(lc.decide(&v, 50 * DAY, day).is_some());
}

#[test]
fn noncurrent_versions_count_from_their_successor_and_keep_the_newest() {
    let day = Day::default();
    let mut r = rule("nc");
    r.noncurrent = Some(NoncurrentExpiration {
        days: 1,
        newer_versions: Some(2),
    });
    let lc = Lifecycle { rules: vec![r] };
    let at = |newer_noncurrent| VersionFacts {
        place: Place::Noncurrent {
            since: 10 * DAY + S,
            newer_noncurrent,
        },
        ..object("k", 1, 0, &[])
    };
    // Old enough only at the midnight after one day past the successor.
    assert_eq!(lc.decide(&at(5), 11 * DAY, day), None);
    assert!(lc.decide(&at(5), 12 * DAY, day).is_some());
    // The two newest noncurrent versions stay.
    assert_eq!(lc.decide(&at(0), 100 * DAY, day), None);
    assert_eq!(lc.decide(&at(1), 100 * DAY, day), None);
    assert_eq!(
        lc.decide(&at(2), 100 * DAY, day),
        Some(Decision::Remove { rule: "nc".into() })
    );
    // The current version is not touched by a noncurrent rule.
    assert_eq!(lc.decide(&object("k", 1, 0, &[]), 100 * DAY, day), None);
}

#[test]
fn a_delete_marker_goes_only_when_nothing_is_behind_it() {
    let day = Day::default();
    let marker = |only| VersionFacts {
        delete_marker: true,
        place: Place::Current { only },
        ..object("k", 0, 3 * DAY, &[])
    };
    let mut r = rule("m");
    r.expiration = Some(Expiration::DeleteMarker(true));
    let lc = Lifecycle { rules: vec![r] };
    assert!(lc.decide(&marker(true), 3 * DAY, day).is_some());
    assert_eq!(lc.decide(&marker(false), 100 * DAY, day), None);
    // An age rule removes expired markers once they are as old as it says.
    let mut r = rule("age");
    r.expiration = Some(Expiration::Days(2));
    let lc = Lifecycle { rules: vec![r] };
    assert_eq!(lc.decide(&marker(true), 4 * DAY, day), None);
    assert_eq!(
        lc.decide(&marker(true), 5 * DAY, day),
        Some(Decision::Remove { rule: "age".into() })
    );
    // Tag filters never select markers.
    let mut r = rule("tagged");
    r.expiration = Some(Expiration::Days(1));
    r.filter.tags = vec![("a".into(), "b".into())];
    let lc = Lifecycle { rules: vec![r] };
    assert_eq!(lc.decide(&marker(true), 100 * DAY, day), None);
}

#[test]
fn uploads_abort_by_prefix_after_their_days() {
    let day = Day::default();
    let mut r = rule("mpu");
    r.filter.prefix = "tmp/".into();
    r.abort_upload_days = Some(1);
    let lc = Lifecycle { rules: vec![r] };
    assert!(lc.aborts_uploads());
    assert!(!lc.acts_on_versions());
    assert_eq!(lc.abort_upload("tmp/x", DAY + 1, 2 * DAY, day), None);
    assert_eq!(lc.abort_upload("tmp/x", DAY + 1, 3 * DAY, day), Some("mpu"));
    assert_eq!(lc.abort_upload("keep/x", 0, 100 * DAY, day), None);
}

#[test]
fn validation_follows_aws() {
    let ok = |r: Rule| Lifecycle { rules: vec![r] }.validate();
    let mut r = rule("a");
    assert!(matches!(ok(r.clone()), Err(RuleError::InvalidRequest(_))));
    r.expiration = Some(Expiration::Days(0));
    assert!(matches!(ok(r.clone()), Err(RuleError::InvalidArgument(_))));
    r.expiration = Some(Expiration::Date(86_400 + 1));
    assert!(matches!(ok(r.clone()), Err(RuleError::InvalidArgument(_))));
    r.expiration = Some(Expiration::Days(1));
    assert_eq!(ok(r.clone()), Ok(()));
    let mut long = r.clone();
    long.id = "x".repeat(256);
    assert!(matches!(ok(long), Err(RuleError::InvalidArgument(_))));
    let twice = Lifecycle {
        rules: vec![r.clone(), r.clone()],
    };
    assert!(matches!(
        twice.validate(),
        Err(RuleError::InvalidArgument(_))
    ));
    let many = Lifecycle {
        rules: (0..=MAX_RULES)
            .map(|i| Rule {
                id: i.to_string(),
                ..r.clone()
            })
            .collect(),
    };
    assert!(matches!(many.validate(), Err(RuleError::InvalidRequest(_))));
    let mut sizes = r.clone();
    sizes.filter.size_greater_than = Some(10);
    sizes.filter.size_less_than = Some(10);
    assert!(matches!(ok(sizes), Err(RuleError::InvalidArgument(_))));
    let mut nc = r.clone();
    nc.noncurrent = Some(NoncurrentExpiration {
        days: 1,
        newer_versions: Some(101),
    });
    assert!(matches!(ok(nc), Err(RuleError::InvalidArgument(_))));
    let mut tagged_abort = r;
    tagged_abort.abort_upload_days = Some(1);
    tagged_abort.filter.tags = vec![("a".into(), "b".into())];
    assert!(matches!(
        ok(tagged_abort),
        Err(RuleError::InvalidRequest(_))
    ));
    assert!(matches!(
        Lifecycle::default().validate(),
        Err(RuleError::Malformed(_))
    ));
}
