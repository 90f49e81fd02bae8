//! JSON array files: the array's own syntax is held to account (separators, what follows the
//! closing `]`), every problem is a located item of its own, and the records around a problem
//! are still read (design invariant 3).

use crate::input_support;

use input_support::{good, outline, read};

/// Reads `text` as `in.json` and compares the outline of every item with `expect`.
#[track_caller]
fn check_array(text: &str, expect: &[&str]) {
    assert_eq!(outline(&read("in.json", text.as_bytes())), expect, "{text}");
}

const AFTER: &str = "content after the closing `]` of the JSON array: only blanks may follow it, so this is not read as a record";
const EMPTY: &str = "empty array element: a comma with no element before it";
const TRAILING: &str = "trailing comma: no element between this comma and the closing `]`";
const MISSING: &str = "missing comma: this array element does not follow a `,`";

#[test]
fn a_record_after_the_closing_bracket_is_reported_not_dropped() {
    let text = format!("[{},\n{}]\n{}\n", good("r1"), good("r2"), good("r3"));
    let items = read("in.json", text.as_bytes());
    assert_eq!(
        outline(&items),
        vec![
            "1 ok r1".to_owned(),
            "2 ok r2".to_owned(),
            format!("3 err in.json:3: {AFTER}")
        ]
    );
    // The report line keeps the stray record's id, so the operator can see which one it is.
    assert_eq!(
        items[2].result.as_ref().unwrap_err().id.as_deref(),
        Some("r3")
    );
}

#[test]
fn every_value_after_the_closing_bracket_is_its_own_located_item() {
    check_array(
        &format!("[{}]  x\n\n[{}] 7", good("r1"), good("r2")),
        &[
            "1 ok r1",
            &format!("1 err in.json:1: {AFTER}"),
            &format!("3 err in.json:3: {AFTER}"),
            &format!("3 err in.json:3: {AFTER}"),
        ],
    );
    // An unfinished value after `]` is still reported.
    check_array(
        &format!("[{}]\n{{\"id\": \"r2\"", good("r1")),
        &["1 ok r1", &format!("2 err in.json:2: {AFTER}")],
    );
}

#[test]
fn only_blanks_may_follow_the_closing_bracket() {
    check_array(&format!("\n[{}]\n \t\r\n\n", good("r1")), &["2 ok r1"]);
    check_array("[]", &[]);
    check_array(" [ \n ] \n", &[]);
}

#[test]
fn empty_elements_are_located_and_the_records_around_them_are_read() {
    // `[r1,,,r2]`: one problem for the run of extra commas, at the first of them.
    check_array(
        &format!("[{},\n,\n,{}]", good("r1"), good("r2")),
        &["1 ok r1", &format!("2 err in.json:2: {EMPTY}"), "3 ok r2"],
    );
    check_array(
        &format!("[\n,{}]", good("r1")),
        &[&format!("2 err in.json:2: {EMPTY}"), "2 ok r1"],
    );
    // `[r1,,]`: one problem, not a second one for the trailing comma.
    check_array(
        &format!("[{},,]", good("r1")),
        &["1 ok r1", &format!("1 err in.json:1: {EMPTY}")],
    );
}

#[test]
fn a_trailing_comma_is_located_at_the_comma() {
    check_array(
        &format!("[\n{},\n{},\n]\n", good("r1"), good("r2")),
        &[
            "2 ok r1",
            "3 ok r2",
            &format!("3 err in.json:3: {TRAILING}"),
        ],
    );
    check_array(
        &format!("[{}, ]", good("r1")),
        &["1 ok r1", &format!("1 err in.json:1: {TRAILING}")],
    );
}

#[test]
fn a_missing_comma_is_located_and_both_records_are_read() {
    check_array(
        &format!("[{}\n  {}\n]", good("r1"), good("r2")),
        &["1 ok r1", &format!("2 err in.json:2: {MISSING}"), "2 ok r2"],
    );
    // A bare word or number between records ends at the next record, which is still read.
    check_array(
        &format!("[{} 7{}]", good("r1"), good("r2")),
        &[
            "1 ok r1",
            &format!("1 err in.json:1: {MISSING}"),
            "1 err in.json:1: expected a JSON object, found a number",
            &format!("1 err in.json:1: {MISSING}"),
            "1 ok r2",
        ],
    );
    // A string element ends at its closing quote, whatever it holds.
    check_array(
        &format!("[\"a, ] {{\" {}]", good("r1")),
        &[
            "1 err in.json:1: expected a JSON object, found a string",
            &format!("1 err in.json:1: {MISSING}"),
            "1 ok r1",
        ],
    );
}

#[test]
fn a_badly_separated_file_still_yields_every_good_record_once() {
    let text = format!(
        "[,{a},,{b} {c},\n{d}\n,]\n{e}",
        a = good("a"),
        b = good("b"),
        c = good("c"),
        d = good("d"),
        e = good("e"),
    );
    let items = read("in.json", text.as_bytes());
    let good_ids: Vec<&str> = items
        .iter()
        .filter_map(|item| item.result.as_ref().ok())
        .map(|record| record.id.as_str())
        .collect();
    assert_eq!(good_ids, ["a", "b", "c", "d"]);
    let errors = items.iter().filter(|item| item.result.is_err()).count();
    // Leading comma, double comma, missing comma, trailing comma, content after `]`.
    assert_eq!(errors, 5, "{:#?}", outline(&items));
}

#[test]
fn the_end_of_the_input_inside_an_array_is_located() {
    check_array(
        &format!("[\n{},\n", good("r1")),
        &[
            "2 ok r1",
            "3 err in.json:3: unexpected end of file: the JSON array is not closed",
        ],
    );
    check_array(
        &format!("[{}\n,{{\"id\": \"x\"", good("r1")),
        &[
            "1 ok r1",
            "2 err in.json:2: unexpected end of file inside this array element",
        ],
    );
}
