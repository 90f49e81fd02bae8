//! The pure mapping of expiries: rendered in seconds from the normalised instant, stated in
//! the body when the issue time is unknown, refused without a refresh token when expired.

use crate::support;

use authport_apideck::config::SuspectMilliseconds;
use authport_apideck::expiry::{MappedExpiry, render_at_send, render_expiry};
use authport_apideck::map::MapOptions;
use authport_apideck::schema::import_body_violations;
use authport_core::{Auth, CredentialRecord};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use support::*;

/// `Ok(Some(expiry))`, `Ok(None)` (omitted), or `Err(field)`.
type ExpiryExpectation = Result<Option<MappedExpiry>, &'static str>;

fn issued(issued_at: &str, expires_in: i64) -> Option<MappedExpiry> {
    Some(MappedExpiry::IssuedAt {
        issued_at: issued_at.to_owned(),
        expires_in,
    })
}

fn expires(expires_at: &str) -> Option<MappedExpiry> {
    Some(MappedExpiry::ExpiresAt {
        expires_at: expires_at.to_owned(),
    })
}

fn check_expiry(
    expiry_fields: Value,
    with_refresh: bool,
    long_lived: bool,
    policy: SuspectMilliseconds,
    expect: ExpiryExpectation,
) {
    let mut auth = json!({"type": "oauth2", "access_token": CANARY_ACCESS});
    if with_refresh {
        auth["refresh_token"] = json!(CANARY_REFRESH);
    }
    for (key, value) in expiry_fields.as_object().expect("an object") {
        auth[key] = value.clone();
    }
    let record =
        record(&json!({"id": "r", "owner": {"id": "o"}, "service": "hubspot", "auth": auth}));
    let Auth::OAuth2(oauth) = &record.auth else {
        panic!("oauth2 fixture")
    };
    let options = MapOptions {
        suspect_milliseconds: policy,
        ..options()
    };
    let got = render_expiry(oauth, long_lived, &options);
    let got: Result<Option<MappedExpiry>, String> = got.map(|r| r.expiry).map_err(|e| e.field);
    let expect = expect.map_err(str::to_owned);
    assert_eq!(
        got, expect,
        "for {expiry_fields} refresh={with_refresh} long_lived={long_lived} {policy:?}"
    );
}

#[test]
fn expiry_is_rendered_in_seconds_from_the_normalised_instant() {
    use SuspectMilliseconds::*;
    let valid = json!({"issued_at": "2026-11-01T11:30:00Z", "expires_in": 3600});
    check_expiry(
        valid.clone(),
        true,
        false,
        Refuse,
        Ok(issued("2026-11-01T11:30:00Z", 3600)),
    );
    check_expiry(
        valid,
        false,
        false,
        Refuse,
        Ok(issued("2026-11-01T11:30:00Z", 3600)),
    );
    // Fractions of a second in issued_at are dropped, the expiry is not extended.
    check_expiry(
        json!({"issued_at": "2026-11-01T11:30:00.750Z", "expires_in": 3600}),
        true,
        false,
        Refuse,
        Ok(issued("2026-11-01T11:30:00Z", 3600)),
    );
    // Offsets are normalised to UTC.
    check_expiry(
        json!({"issued_at": "2026-11-01T13:30:00+02:00", "expires_in": 7200}),
        true,
        false,
        Refuse,
        Ok(issued("2026-11-01T11:30:00Z", 7200)),
    );
    // Only an absolute expiry: the mapped body states it as such (the pair would depend on
    // when the run happens); `render_at_send` renders it when the import is sent.
    check_expiry(
        json!({"expires_at": "2026-11-01T13:00:00Z"}),
        true,
        false,
        Refuse,
        Ok(expires("2026-11-01T13:00:00Z")),
    );
    check_expiry(
        json!({"expires_at": "2026-11-03T00:00:00.900+01:00"}),
        false,
        false,
        Refuse,
        Ok(expires("2026-11-02T23:00:00Z")),
    );
}

#[test]
fn an_unknown_issue_time_is_stated_in_the_body_and_rendered_when_sent() {
    let hubspot = connector("crm", "hubspot");
    let record = record(
        &json!({"id": "r", "owner": {"id": "o"}, "service": "hubspot",
        "auth": {"type": "oauth2", "access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH,
                 "expires_at": "2026-11-03T13:00:00Z"}}),
    );
    let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
    let map_at = |now: &str| {
        let options = MapOptions {
            now: at(now),
            ..options()
        };
        map_with(&record, &hubspot, &options).expect("maps")
    };
    let today = map_at("2026-11-01T12:00:00Z");
    let another_day = map_at("2026-11-02T08:15:30Z");

    // The mapped body (what the plan shows and the engine fingerprints) states the absolute
    // expiry, so a re-run on another day compares the same body.
    assert_eq!(
        today.body.expose()["credentials"]["expires_at"],
        json!("2026-11-03T13:00:00Z")
    );
    assert_eq!(today.body, another_day.body);
    assert_eq!(
        today.redacted_body(&record)["credentials"]["expires_at"],
        json!("2026-11-03T13:00:00Z")
    );
    assert!(
        today.notes.iter().any(|n| n.contains("render_at_send")),
        "the plan names the rule: {:?}",
        today.notes
    );

    // What is sent: the pair at the run's clock, always summing to the expiry, and never
    // `expires_at` (Vault's credentials object is closed).
    for (now, issued_at, expires_in) in [
        ("2026-11-01T12:00:00Z", "2026-11-01T12:00:00Z", 176_400),
        ("2026-11-02T08:15:30Z", "2026-11-02T08:15:30Z", 103_470),
    ] {
        let sent = render_at_send(today.body.expose(), at(now));
        let credentials = &sent["credentials"];
        assert_eq!(credentials.get("expires_at"), None);
        assert_eq!(credentials["issued_at"], json!(issued_at));
        assert_eq!(credentials["expires_in"], json!(expires_in));
        assert_eq!(import_body_violations(&sent), Vec::<String>::new());
    }

    // A known issue time is sent as mapped.
    let known = map_with(&record_with_issued_at(), &hubspot, &options()).expect("maps");
    assert_eq!(
        render_at_send(known.body.expose(), at("2026-11-05T00:00:00Z")),
        *known.body.expose()
    );
}

fn record_with_issued_at() -> CredentialRecord {
    record(
        &json!({"id": "k", "owner": {"id": "o"}, "service": "hubspot",
        "auth": {"type": "oauth2", "access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH,
                 "issued_at": "2026-11-01T11:30:00Z", "expires_in": 3600}}),
    )
}

#[test]
fn expired_or_unknown_expiry_needs_a_refresh_token() {
    use SuspectMilliseconds::*;
    let expired = json!({"issued_at": "2026-11-01T10:00:00Z", "expires_in": 3600});
    check_expiry(expired.clone(), true, false, Refuse, Ok(None));
    check_expiry(
        expired.clone(),
        false,
        false,
        Refuse,
        Err("auth.access_token"),
    );
    check_expiry(expired, false, true, Refuse, Err("auth.access_token"));
    check_expiry(
        json!({"expires_at": "2026-11-01T12:00:00Z"}),
        true,
        false,
        Refuse,
        Ok(None),
    );
    check_expiry(json!({}), true, false, Refuse, Ok(None));
    check_expiry(json!({}), false, false, Refuse, Err("auth.refresh_token"));
    check_expiry(json!({}), false, true, Refuse, Ok(None));
}

#[test]
fn suspect_milliseconds_are_refused_unless_configured() {
    use SuspectMilliseconds::*;
    let millis = json!({"issued_at": "2026-11-01T11:30:00Z", "expires_in": 3_600_000});
    check_expiry(millis.clone(), true, false, Refuse, Err("auth.expires_in"));
    check_expiry(
        millis.clone(),
        true,
        false,
        AsMilliseconds,
        Ok(issued("2026-11-01T11:30:00Z", 3600)),
    );
    check_expiry(
        millis,
        true,
        false,
        AsSeconds,
        Ok(issued("2026-11-01T11:30:00Z", 3_600_000)),
    );
    // Large but not a whole number of thousands: taken as seconds without fuss.
    check_expiry(
        json!({"issued_at": "2026-11-01T11:30:00Z", "expires_in": 5_184_001}),
        true,
        false,
        Refuse,
        Ok(issued("2026-11-01T11:30:00Z", 5_184_001)),
    );
}

#[test]
fn expiry_cases_snapshot() {
    let hubspot = connector("crm", "hubspot");
    let case = |auth: Value, policy: SuspectMilliseconds| {
        let record = record(
            &json!({"id": "acme-42/hubspot", "owner": {"id": "acme-42"}, "service": "hubspot", "auth": auth}),
        );
        outcome_json(
            &record,
            &map_with(
                &record,
                &hubspot,
                &MapOptions {
                    suspect_milliseconds: policy,
                    ..options()
                },
            ),
        )
    };
    let base = |extra: Value| {
        let mut auth = json!({"type": "oauth2", "access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH});
        for (k, v) in extra.as_object().expect("object") {
            auth[k] = v.clone();
        }
        auth
    };
    let cases = json!({
        "seconds": case(base(json!({"issued_at": "2026-11-01T11:30:00Z", "expires_in": 3600})), SuspectMilliseconds::Refuse),
        "milliseconds_refused": case(base(json!({"issued_at": "2026-11-01T11:30:00Z", "expires_in": 3_600_000})), SuspectMilliseconds::Refuse),
        "milliseconds_converted": case(base(json!({"issued_at": "2026-11-01T11:30:00Z", "expires_in": 3_600_000})), SuspectMilliseconds::AsMilliseconds),
        "expired_with_refresh_token": case(base(json!({"expires_at": "2026-10-31T09:00:00Z"})), SuspectMilliseconds::Refuse),
        "expired_without_refresh_token": case(json!({"type": "oauth2", "access_token": CANARY_ACCESS, "expires_at": "2026-10-31T09:00:00Z"}), SuspectMilliseconds::Refuse),
        "unknown_expiry": case(base(json!({})), SuspectMilliseconds::Refuse),
        "expires_at_only": case(base(json!({"expires_at": "2026-11-01T13:00:00Z"})), SuspectMilliseconds::Refuse),
    });
    assert_no_canary("snapshot", &cases.to_string());
    insta::assert_json_snapshot!("expiry_cases", cases);
}
