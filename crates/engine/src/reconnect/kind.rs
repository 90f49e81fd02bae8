//! Which worklist rows are the operator's to fix: a failure's field and the settings its
//! message names, read from the message the import wrote (or the mapping error's text). Pure.

/// A failure's message split into the record's field and the rest (`field: message`, as
/// mapping errors print), when it starts with a field path. Pure.
pub(super) fn field_of(message: &str) -> (Option<&str>, &str) {
    match message.split_once(": ") {
        Some((field, rest))
            if !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-{}[]".contains(c)) =>
        {
            (Some(field), rest)
        }
        _ => (None, message),
    }
}

/// Where a setting is named in a message, in the message's order: `[section] key`,
/// `[section]`, and `targets.<…>` paths.
fn named_settings(message: &str) -> Vec<String> {
    let is_key = |word: &str| {
        !word.is_empty()
            && !["or", "and", "to", "is", "in", "of", "the"].contains(&word)
            && word.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    };
    let mut found: Vec<(usize, String)> = Vec::new();
    let mut offset = 0;
    while let Some(start) = message[offset..].find('[') {
        let at = offset + start;
        let after = &message[at + 1..];
        let Some(end) = after.find(']') else { break };
        let section = &after[..end];
        let tail = &after[end + 1..];
        let looks_like_section = !section.is_empty()
            && section
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if looks_like_section {
            let key = tail
                .strip_prefix(' ')
                .and_then(|t| t.split([' ', ',', ';', ')', '=']).next())
                .filter(|word| is_key(word));
            found.push((
                at,
                match key {
                    Some(key) => format!("[{section}] {key}"),
                    None => format!("[{section}]"),
                },
            ));
        }
        offset = at + 1 + end + 1;
    }
    let mut at = 0;
    for word in message.split([' ', ',', ';', '(', ')']) {
        let setting = word.trim_end_matches(['.', ':']);
        if setting.starts_with("targets.") && setting.len() > "targets.".len() {
            found.push((at, setting.to_owned()));
        }
        at += word.len() + 1;
    }
    found.sort();
    let mut settings: Vec<String> = Vec::new();
    for (_, setting) in found {
        if !settings.contains(&setting) {
            settings.push(setting);
        }
    }
    settings
}

/// The setting(s) an operator changes to fix a failure, when it is a configuration fix and
/// not the end user's to make: the failure is on the record's `service` (no connector or
/// integration is configured for it), on `targets.*` (e.g. a missing `service_environment`),
/// on `settings.*` or `auth.fields.*` (a field map), or its message names a setting to change
/// (e.g. `[tray.solution] solution_id` for a refused slot). `None`: the end user's. Pure.
pub fn config_setting(message: &str) -> Option<String> {
    let (field, text) = field_of(message);
    let named = named_settings(text);
    let field_is_config = field.is_some_and(|field| {
        field == "service"
            || ["targets.", "settings.", "auth.fields."]
                .iter()
                .any(|prefix| field.starts_with(prefix))
            || field == "targets"
    });
    if !field_is_config && named.is_empty() {
        return None;
    }
    let mut settings: Vec<String> = Vec::new();
    // The failing field, unless the message names a more exact setting inside it.
    if let Some(field) = field.filter(|f| f.starts_with("targets."))
        && !named.iter().any(|n| n.starts_with(field))
    {
        settings.push(field.to_owned());
    }
    for setting in named {
        if !settings.contains(&setting) {
            settings.push(setting);
        }
    }
    if settings.is_empty() {
        settings.push(field.unwrap_or("the configuration").to_owned());
    }
    Some(settings.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure's message -> the setting of a `config_fix` row, or `None` (the end user's).
    #[test]
    fn failures_the_operator_can_fix_name_the_setting() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "targets.tray.service_environment: tray service slack version 1 has no environment `Custom`; available: Production",
                Some("targets.tray.service_environment"),
            ),
            (
                "targets.tray.service_environment: Production is Tray's own OAuth app, which cannot refresh tokens your OAuth app issued; importing OAuth tokens normally needs a custom OAuth app environment: set targets.tray.service_environment (or [tray.services.slack] service_environment) to its title or id",
                Some(
                    "targets.tray.service_environment or [tray.services.slack] service_environment",
                ),
            ),
            (
                "targets.apideck: no Apideck connector known for service `slack`; set targets.apideck.unified_api and .service_id or [apideck.services.slack]",
                Some("targets.apideck.unified_api or [apideck.services.slack]"),
            ),
            (
                "service: connector crm/nosuch is unknown or not enabled for this Apideck application (not found)",
                Some("service"),
            ),
            (
                "solution instance not created: refused; check [tray.solution] solution_id `s1` and the slots' external ids `Slack`",
                Some("[tray.solution] solution_id"),
            ),
            (
                "auth.type: record auth `api_key` does not fit connector crm/hubspot (auth type `oauth2`)",
                None,
            ),
            ("auth.expires_in: is not before the token's expiry", None),
            ("the platform said no", None),
        ];
        for (message, expect) in cases {
            assert_eq!(config_setting(message).as_deref(), *expect, "{message}");
        }
    }
}
