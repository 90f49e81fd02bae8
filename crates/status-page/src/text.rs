//! Text for the page: escaping (owner names are end-user data), numbers for people, and which
//! links may become links.

/// `text` safe in an element's content and in a quoted attribute value.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// `1204` as "1,204".
pub(crate) fn count(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// `part` of `whole` as "96.3 %" (one decimal, rounded half up; "0 %" of nothing).
pub(crate) fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0 %".to_owned();
    }
    let tenths = (u128::from(part) * 1000 + u128::from(whole) / 2) / u128::from(whole);
    format!("{}.{} %", tenths / 10, tenths % 10)
}

/// "1 person" or "3 people", "1 connection" or "2 connections".
pub(crate) fn counted(number: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(number), if number == 1 { one } else { many })
}

/// The link, if it is one a person may follow: `http` or `https` only, so that a `javascript:`
/// or `data:` value in the input never becomes a live link.
pub(crate) fn followable(link: &str) -> Option<&str> {
    let scheme_end = link.find("://")?;
    let scheme = &link[..scheme_end];
    (scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")).then_some(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        let check = |input: &str, expect: &str| assert_eq!(escape(input), expect);
        check("Zoë O'Brien", "Zoë O&#39;Brien");
        check(
            "<script>alert(1)</script>",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        );
        check(r#"a" onmouseover="x"#, "a&quot; onmouseover=&quot;x");
        check("Smith & Sons", "Smith &amp; Sons");
        check("&amp;", "&amp;amp;");
        check("", "");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        let check = |input: u64, expect: &str| assert_eq!(count(input), expect);
        check(0, "0");
        check(999, "999");
        check(1_000, "1,000");
        check(1_204, "1,204");
        check(123_456, "123,456");
        check(1_234_567, "1,234,567");
        check(u64::MAX, "18,446,744,073,709,551,615");
    }

    #[test]
    fn shares_have_one_decimal() {
        let check = |part: u64, whole: u64, expect: &str| assert_eq!(share(part, whole), expect);
        check(1_204, 1_250, "96.3 %");
        check(1, 3, "33.3 %");
        check(2, 3, "66.7 %");
        check(5, 5, "100.0 %");
        check(0, 0, "0 %");
        check(u64::MAX, u64::MAX, "100.0 %");
    }

    #[test]
    fn words_agree_with_their_number() {
        assert_eq!(counted(1, "person", "people"), "1 person");
        assert_eq!(counted(0, "person", "people"), "0 people");
        assert_eq!(
            counted(1_250, "connection", "connections"),
            "1,250 connections"
        );
    }

    #[test]
    fn only_web_links_are_followable() {
        let check =
            |link: &str, expect: bool| assert_eq!(followable(link).is_some(), expect, "{link}");
        check("https://links.example.com/r/abc", true);
        check("HTTP://127.0.0.1:8080/r/abc", true);
        check("javascript:alert(1)", false);
        check("javascript://%0aalert(1)", false);
        check("data:text/html,<b>x</b>", false);
        check("/r/abc", false);
        check("", false);
    }
}
