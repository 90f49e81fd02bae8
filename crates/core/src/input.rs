//! The streaming input reader: JSON Lines (one record per line) or a JSON array file.
//!
//! Memory stays constant whatever the file size: one record's bytes at a time (capped at
//! [`MAX_RECORD_BYTES`]) plus a set of 64-bit id hashes for the duplicate check. Every problem
//! becomes an [`InputError`] for that record only, located to file, line and field; the records
//! after it are read as usual.
//!
//! A JSON array is split into elements by a small scanner that tracks strings and nesting
//! (each element is then parsed on its own), so it can hold the array's own syntax to account:
//! every bad separator and anything after the closing `]` is reported as a located error item
//! of its own. See [`InputReader::next_array_item`] for what happens to the records around one.

mod strict_json;

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::record::{self, CredentialRecord, FieldProblem};
use strict_json::StrictError;

/// The largest record (one line, or one array element) the reader accepts.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// One record read from the input: where it starts, and the record or what is wrong with it.
#[derive(Debug)]
pub struct InputItem {
    /// 1-based line where the record starts.
    pub line: u64,
    pub result: Result<CredentialRecord, InputError>,
}

/// A bad record, located to file, line and field(s). Never quotes a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub file: String,
    pub line: u64,
    /// The record's id, when it could be read despite the problems.
    pub id: Option<String>,
    pub problems: Vec<FieldProblem>,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// Reads records one by one. An `Iterator` of [`InputItem`].
pub struct InputReader {
    source: Box<dyn BufRead + Send>,
    file: String,
    now: DateTime<Utc>,
    format: Format,
    /// Lines consumed so far (the number of the line being read is `line + 1`).
    line: u64,
    buffer: Vec<u8>,
    largest_buffer: usize,
    check_duplicates: bool,
    seen_ids: HashSet<u64>,
    id_hasher: std::hash::RandomState,
    records_read: u64,
}

impl fmt::Debug for InputReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputReader")
            .field("file", &self.file)
            .field("line", &self.line)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Unknown,
    Lines,
    /// Inside a JSON array.
    Array(Expect),
    /// After the closing `]`: only whitespace may follow.
    AfterArray,
    /// At the end of the input, or after an error that leaves nothing readable.
    Finished,
}

/// What the JSON array's syntax allows next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Just after `[`: an element or `]`.
    FirstElement,
    /// Just after a `,` on `line`: an element.
    ElementAfterComma { line: u64 },
    /// Just after an element: `,` or `]`.
    Separator,
}

/// One step through a JSON array.
enum ArrayStep {
    /// An element's bytes are in the buffer.
    Element { line: u64, too_long: bool },
    /// The array's own syntax is wrong here.
    SyntaxError(InputError),
    /// A separator was consumed; take the next step.
    Continue,
    /// The closing `]` was consumed.
    End,
}

/// Where a scanned value starts, whether it was cut at [`MAX_RECORD_BYTES`], and whether it
/// ended before the input did.
struct Scanned {
    line: u64,
    too_long: bool,
    complete: bool,
}

/// A byte that cannot belong to a number or a bare word, so it ends one.
fn ends_scalar(byte: u8) -> bool {
    byte.is_ascii_whitespace() || matches!(byte, b',' | b']' | b'[' | b'{' | b'}' | b'"')
}

impl InputReader {
    /// Opens a file. `now` decides which tokens are "already expired".
    pub fn open(path: &Path, now: DateTime<Utc>) -> io::Result<Self> {
        let file = File::open(path)?;
        Ok(Self::from_reader(
            &path.display().to_string(),
            BufReader::with_capacity(64 * 1024, file),
            now,
        ))
    }

    /// Reads from any buffered source; `name` is used in error locations.
    pub fn from_reader(
        name: &str,
        source: impl BufRead + Send + 'static,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            source: Box::new(source),
            file: name.to_owned(),
            now,
            format: Format::Unknown,
            line: 0,
            buffer: Vec::new(),
            largest_buffer: 0,
            check_duplicates: true,
            seen_ids: HashSet::new(),
            id_hasher: std::hash::RandomState::new(),
            records_read: 0,
        }
    }

    /// Turns the in-reader duplicate-id check off, for callers that detect duplicates in a
    /// store of their own (its set of id hashes grows by ~16 bytes a record).
    pub fn without_duplicate_check(mut self) -> Self {
        self.check_duplicates = false;
        self
    }

    /// The largest capacity the record buffer reached: bounded by [`MAX_RECORD_BYTES`] plus
    /// one read chunk, whatever the file size.
    pub fn largest_buffer(&self) -> usize {
        self.largest_buffer
    }

    /// Records (good or bad) yielded so far.
    pub fn records_read(&self) -> u64 {
        self.records_read
    }

    /// The name used in error locations.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    fn error(
        &self,
        line: u64,
        id: Option<String>,
        field: &str,
        message: impl Into<String>,
    ) -> InputError {
        InputError {
            file: self.file.clone(),
            line,
            id,
            problems: vec![FieldProblem {
                field: field.to_owned(),
                message: message.into(),
            }],
        }
    }

    /// Decides JSON Lines vs array from the first non-blank byte.
    fn detect_format(&mut self) -> io::Result<()> {
        loop {
            let chunk = self.source.fill_buf()?;
            let Some(&first) = chunk.first() else {
                self.format = Format::Finished;
                return Ok(());
            };
            match first {
                b'\n' => {
                    self.line += 1;
                    self.source.consume(1);
                }
                b' ' | b'\t' | b'\r' => self.source.consume(1),
                // A UTF-8 byte-order mark is tolerated.
                0xEF if chunk.starts_with(&[0xEF, 0xBB, 0xBF]) => self.source.consume(3),
                b'[' => {
                    self.source.consume(1);
                    self.format = Format::Array(Expect::FirstElement);
                    return Ok(());
                }
                _ => {
                    self.format = Format::Lines;
                    return Ok(());
                }
            }
        }
    }

    /// Reads the next non-blank line into `buffer`. Returns its line number and whether it was
    /// cut at [`MAX_RECORD_BYTES`] (the rest of the line is skipped, not buffered).
    fn next_line(&mut self) -> io::Result<Option<(u64, bool)>> {
        loop {
            self.buffer.clear();
            let mut too_long = false;
            let mut saw_anything = false;
            loop {
                let chunk = self.source.fill_buf()?;
                if chunk.is_empty() {
                    break;
                }
                saw_anything = true;
                let (take, found_newline) = match chunk.iter().position(|&b| b == b'\n') {
                    Some(at) => (at, true),
                    None => (chunk.len(), false),
                };
                if !too_long {
                    if self.buffer.len() + take > MAX_RECORD_BYTES {
                        too_long = true;
                        self.buffer.clear();
                    } else {
                        self.buffer.extend_from_slice(&chunk[..take]);
                    }
                }
                self.source.consume(take + usize::from(found_newline));
                if found_newline {
                    break;
                }
            }
            self.largest_buffer = self.largest_buffer.max(self.buffer.capacity());
            if !saw_anything {
                return Ok(None);
            }
            self.line += 1;
            if too_long {
                return Ok(Some((self.line, true)));
            }
            if self.buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((self.line, false)));
        }
    }

    /// The next step through a JSON array: an element in `buffer`, or a located error in the
    /// array's own syntax, as its own item.
    ///
    /// Around a bad separator no record is lost and none is made up. Every element delimits
    /// itself (an object ends at its matching brace, and is then parsed and validated alone), so
    /// the elements next to an extra comma (`[r1,,r2]`), a missing one (`[r1 r2]`) or a trailing
    /// one (`[r1,]`) are read exactly as if the separator had been right: they are good records
    /// and invariant 3 says bad input never stops good records. The separator itself becomes
    /// one failed item, located at the comma (or at the element that lacks one), so the run
    /// reports it and exits 1 instead of passing silently. A run of extra commas is one item.
    fn next_array_step(&mut self, expect: Expect) -> io::Result<ArrayStep> {
        let Some(byte) = self.skip_whitespace()? else {
            self.format = Format::Finished;
            return Ok(ArrayStep::SyntaxError(self.error(
                self.line + 1,
                None,
                "",
                "unexpected end of file: the JSON array is not closed",
            )));
        };
        match (byte, expect) {
            (b']', Expect::ElementAfterComma { line }) => {
                self.source.consume(1);
                self.format = Format::AfterArray;
                Ok(ArrayStep::SyntaxError(self.error(
                    line,
                    None,
                    "",
                    "trailing comma: no element between this comma and the closing `]`",
                )))
            }
            (b']', _) => {
                self.source.consume(1);
                self.format = Format::AfterArray;
                Ok(ArrayStep::End)
            }
            (b',', Expect::Separator) => {
                self.source.consume(1);
                self.format = Format::Array(Expect::ElementAfterComma {
                    line: self.line + 1,
                });
                Ok(ArrayStep::Continue)
            }
            (b',', _) => {
                let line = self.line + 1;
                // Swallow the whole run of commas (and the blanks between them): one problem.
                while let Some(b',') = self.skip_whitespace()? {
                    self.source.consume(1);
                }
                // What follows is read as after `[`: an element, or `]` without a second error.
                self.format = Format::Array(Expect::FirstElement);
                Ok(ArrayStep::SyntaxError(self.error(
                    line,
                    None,
                    "",
                    "empty array element: a comma with no element before it",
                )))
            }
            (_, Expect::Separator) => {
                // Nothing consumed: the element is read by the next step.
                self.format = Format::Array(Expect::FirstElement);
                Ok(ArrayStep::SyntaxError(self.error(
                    self.line + 1,
                    None,
                    "",
                    "missing comma: this array element does not follow a `,`",
                )))
            }
            (_, Expect::FirstElement | Expect::ElementAfterComma { .. }) => {
                let scanned = self.scan_value()?;
                if !scanned.complete {
                    self.format = Format::Finished;
                    return Ok(ArrayStep::SyntaxError(self.error(
                        scanned.line,
                        None,
                        "",
                        "unexpected end of file inside this array element",
                    )));
                }
                self.format = Format::Array(Expect::Separator);
                Ok(ArrayStep::Element {
                    line: scanned.line,
                    too_long: scanned.too_long,
                })
            }
        }
    }

    /// After the array's closing `]`: blanks end the input; each value found there instead is
    /// one failed item (with its id when it has a readable one), so the report accounts for
    /// every record that a concatenated or badly edited file carries after the array. They
    /// are not imported: the file says the records are the array's elements.
    fn next_after_array(&mut self) -> io::Result<Option<InputItem>> {
        if self.skip_whitespace()?.is_none() {
            self.format = Format::Finished;
            return Ok(None);
        }
        let scanned = self.scan_value()?;
        if !scanned.complete {
            self.format = Format::Finished;
        }
        let id = if scanned.complete && !scanned.too_long {
            std::str::from_utf8(&self.buffer)
                .ok()
                .and_then(|text| strict_json::parse(text).ok())
                .and_then(|value| record::id_of(&value))
        } else {
            None
        };
        let error = self.error(
            scanned.line,
            id,
            "",
            "content after the closing `]` of the JSON array: only blanks may follow it, so this is not read as a record",
        );
        Ok(Some(InputItem {
            line: scanned.line,
            result: Err(error),
        }))
    }

    /// Consumes blanks, counting lines, and peeks at the next byte.
    fn skip_whitespace(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.peek_byte()? {
                Some(b'\n') => {
                    self.line += 1;
                    self.source.consume(1);
                }
                Some(b' ' | b'\t' | b'\r') => self.source.consume(1),
                other => return Ok(other),
            }
        }
    }

    /// Reads one JSON value's bytes into `buffer` without parsing it, tracking strings and
    /// nesting: an object or array ends at its matching bracket, a string at its closing
    /// quote, anything else at the next blank or punctuation. Bytes past [`MAX_RECORD_BYTES`]
    /// are skipped, not buffered. The next byte must not be a blank.
    fn scan_value(&mut self) -> io::Result<Scanned> {
        self.buffer.clear();
        let line = self.line + 1;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        let mut too_long = false;
        let mut scalar = None;
        let mut started = false;
        let complete = loop {
            let Some(byte) = self.peek_byte()? else {
                // A number or word may end with the input; a string or bracket may not.
                break scalar == Some(true);
            };
            let is_scalar = *scalar.get_or_insert(!matches!(byte, b'{' | b'[' | b'"'));
            if is_scalar && started && ends_scalar(byte) {
                break true;
            }
            self.source.consume(1);
            started = true;
            if byte == b'\n' {
                self.line += 1;
            }
            if !too_long {
                if self.buffer.len() >= MAX_RECORD_BYTES {
                    too_long = true;
                    self.buffer.clear();
                } else {
                    self.buffer.push(byte);
                }
            }
            if is_scalar {
                continue;
            }
            if in_string {
                match (escaped, byte) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => {
                        in_string = false;
                        if depth == 0 {
                            break true;
                        }
                    }
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break true;
                    }
                }
                _ => {}
            }
        };
        self.largest_buffer = self.largest_buffer.max(self.buffer.capacity());
        Ok(Scanned {
            line,
            too_long,
            complete,
        })
    }

    fn peek_byte(&mut self) -> io::Result<Option<u8>> {
        Ok(self.source.fill_buf()?.first().copied())
    }

    fn io_error(&self, error: io::Error) -> InputError {
        self.error(
            self.line + 1,
            None,
            "",
            format!("cannot read the input: {error}"),
        )
    }

    /// Parses and validates the bytes in `buffer` as one record starting at `line`.
    fn parse_buffer(&mut self, line: u64) -> Result<CredentialRecord, InputError> {
        let text = match std::str::from_utf8(&self.buffer) {
            Ok(text) => text,
            Err(error) => {
                return Err(self.error(
                    line,
                    None,
                    "",
                    format!(
                        "invalid UTF-8 at byte {} of the record",
                        error.valid_up_to() + 1
                    ),
                ));
            }
        };
        let value: Value = match strict_json::parse(text) {
            Ok(value) => value,
            Err(StrictError::Syntax(error)) => {
                // serde_json's syntax messages name a position, never the content.
                let message = format!(
                    "malformed JSON: {} (column {})",
                    syntax_message(&error),
                    error.column()
                );
                return Err(self.error(
                    line + error.line().saturating_sub(1) as u64,
                    None,
                    "",
                    message,
                ));
            }
            Err(StrictError::DuplicateKey { path, line: within }) => {
                let (field, message) = record::duplicate_key_problem(&path);
                // Only this error path parses a second time, leniently, to keep the id for the
                // report; a repeated `id` itself is ambiguous, so it is not read.
                let id = match path.as_slice() {
                    [record::PathSegment::Key(key)] if key == "id" => None,
                    _ => serde_json::from_str(text)
                        .ok()
                        .and_then(|v| record::id_of(&v)),
                };
                return Err(self.error(
                    line + within.saturating_sub(1) as u64,
                    id,
                    &field,
                    message,
                ));
            }
        };
        let id = record::id_of(&value);
        let record =
            record::from_json_located(&value, self.now).map_err(|problems| InputError {
                file: self.file.clone(),
                line,
                id: id.clone(),
                problems,
            })?;
        if self.check_duplicates {
            let mut hasher = self.id_hasher.build_hasher();
            hasher.write(record.id.as_bytes());
            if !self.seen_ids.insert(hasher.finish()) {
                return Err(self.error(
                    line,
                    id,
                    "id",
                    "duplicate id: an earlier record in this file has the same id",
                ));
            }
        }
        Ok(record)
    }
}

/// serde_json's message without its trailing " at line L column C".
fn syntax_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

impl Iterator for InputReader {
    type Item = InputItem;

    fn next(&mut self) -> Option<InputItem> {
        let (line, too_long) = loop {
            let step = match self.format {
                Format::Finished => return None,
                Format::Unknown => self.detect_format().map(|()| None),
                Format::Lines => match self.next_line() {
                    Ok(None) => return None,
                    Ok(Some(found)) => break found,
                    Err(error) => Err(error),
                },
                Format::Array(expect) => match self.next_array_step(expect) {
                    Ok(ArrayStep::Element { line, too_long }) => break (line, too_long),
                    Ok(ArrayStep::SyntaxError(error)) => Ok(Some(InputItem {
                        line: error.line,
                        result: Err(error),
                    })),
                    Ok(ArrayStep::Continue | ArrayStep::End) => Ok(None),
                    Err(error) => Err(error),
                },
                Format::AfterArray => self.next_after_array(),
            };
            match step {
                Ok(None) => {}
                Ok(Some(item)) => {
                    self.records_read += 1;
                    return Some(item);
                }
                Err(error) => {
                    // A read error leaves nothing readable after it.
                    self.format = Format::Finished;
                    return Some(InputItem {
                        line: self.line + 1,
                        result: Err(self.io_error(error)),
                    });
                }
            }
        };
        self.records_read += 1;
        let result = if too_long {
            Err(self.error(
                line,
                None,
                "",
                format!("record is longer than the {MAX_RECORD_BYTES}-byte limit; it was skipped"),
            ))
        } else {
            self.parse_buffer(line)
        };
        Some(InputItem { line, result })
    }
}
