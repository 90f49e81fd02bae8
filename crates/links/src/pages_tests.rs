use super::*;

fn page(owner_name: Option<&str>, service: &str) -> String {
    link_page(&LinkPage {
        owner_name,
        service,
        reason: Health::RefreshFailed,
        expires_at: 1_797_674_400,
        csrf: "csrf-token_A",
    })
}

fn every_page() -> Vec<(&'static str, String)> {
    vec![
        ("link", page(Some("Ada Lovelace"), "Salesforce")),
        ("expired", expired_page()),
        ("revoked", revoked_page()),
        ("not found", not_found_page()),
        ("too many", too_many_page()),
        ("vendor refused", vendor_refused_page()),
        ("bad csrf", bad_csrf_page()),
    ]
}

#[test]
fn escape_covers_the_five_characters() {
    assert_eq!(
        escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
    assert_eq!(escape("Zoë Müller"), "Zoë Müller");
}

#[test]
fn the_link_page_names_the_owner_the_service_and_the_reason() {
    let html = page(Some("Ada Lovelace"), "Salesforce");
    assert!(html.contains("<p>Hello Ada Lovelace,</p>"), "{html}");
    assert!(html.contains("<title>Reconnect Salesforce</title>"));
    assert!(html.contains("<h1>Reconnect Salesforce</h1>"));
    assert!(html.contains("Salesforce no longer accepts the saved sign-in"));
    assert!(html.contains("until 19 December 2026, 10:00 UTC"), "{html}");
}

#[test]
fn the_link_page_has_one_post_form_with_the_csrf_token_and_a_real_button() {
    let html = page(None, "Salesforce");
    assert_eq!(html.matches("<form").count(), 1);
    assert!(html.contains("<form method=\"post\">"));
    assert!(html.contains("<input type=\"hidden\" name=\"csrf\" value=\"csrf-token_A\">"));
    assert!(html.contains("<button type=\"submit\">Reconnect</button>"));
    assert!(html.contains("<p>Hello,</p>"));
}

#[test]
fn dynamic_texts_are_escaped() {
    let html = link_page(&LinkPage {
        owner_name: Some("<script>alert(1)</script>"),
        service: "\"><img src=x onerror=alert(2)>",
        reason: Health::Revoked,
        expires_at: 0,
        csrf: "\"><b>",
    });
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains("Hello &lt;script&gt;alert(1)&lt;/script&gt;,"));
    assert!(html.contains("value=\"&quot;&gt;&lt;b&gt;\""));
}

#[test]
fn a_blank_owner_name_gets_the_plain_greeting() {
    assert!(page(Some("  "), "Salesforce").contains("<p>Hello,</p>"));
}

#[test]
fn every_page_is_accessible_and_self_contained() {
    for (name, html) in every_page() {
        assert!(
            html.starts_with("<!doctype html>\n<html lang=\"en\">"),
            "{name}"
        );
        assert_eq!(html.matches("<title>").count(), 1, "{name}");
        assert_eq!(html.matches("<h1>").count(), 1, "{name}");
        assert!(
            html.contains(
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            ),
            "{name}"
        );
        assert!(html.contains("<meta charset=\"utf-8\">"), "{name}");
        for forbidden in [
            "<script", "http://", "https://", "src=", "<link", "@import", "url(",
        ] {
            assert!(!html.contains(forbidden), "{name}: {forbidden}");
        }
    }
}

#[test]
fn only_the_link_page_has_a_form() {
    for (name, html) in every_page() {
        assert_eq!(html.contains("<form"), name == "link", "{name}");
    }
}

#[test]
fn every_reason_has_words_naming_the_service() {
    for health in Health::ALL {
        let words = reason_in_plain_words(health, "HubSpot");
        assert!(words.contains("HubSpot"), "{health:?}");
        assert!(words.ends_with('.'), "{health:?}");
        assert!(!words.contains('_'), "{health:?}: {words}");
    }
}

#[test]
fn an_unrepresentable_expiry_still_renders() {
    let html = link_page(&LinkPage {
        owner_name: None,
        service: "Salesforce",
        reason: Health::Revoked,
        expires_at: i64::MAX,
        csrf: "c",
    });
    assert!(html.contains("until its expiry date."));
}
