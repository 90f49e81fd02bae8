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
//! of its own. See the `array` module for what happens to the records around one.

mod array;
mod strict_json;

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::record::{self, CredentialRecord, FieldProblem};
use array::{ArrayStep, Expect};
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
            // `read_until` finds the newline with the standard library's `memchr`, and `take`
            // stops it at the limit, so the buffer never holds more than one record's bytes.
            let read = (&mut self.source)
                .take(MAX_RECORD_BYTES as u64)
                .read_until(b'\n', &mut self.buffer)?;
            self.largest_buffer = self.largest_buffer.max(self.buffer.capacity());
            if read == 0 {
                return Ok(None);
            }
            let too_long = if self.buffer.last() == Some(&b'\n') {
                self.buffer.pop();
                false
            } else if self.buffer.len() < MAX_RECORD_BYTES {
                // The last line, without a newline.
                false
            } else {
                // Exactly at the limit: the line fits only if it ends here.
                match self.peek_byte()? {
                    None => false,
                    Some(b'\n') => {
                        self.source.consume(1);
                        false
                    }
                    Some(_) => {
                        self.source.skip_until(b'\n')?;
                        self.buffer.clear();
                        true
                    }
                }
            };
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
        // The value is moved into the record (no copy of its strings), and the id of a bad
        // record comes back with its problems.
        let record =
            record::from_json_value_with_id(value, self.now).map_err(|invalid| InputError {
                file: self.file.clone(),
                line,
                id: invalid.id,
                problems: invalid.problems,
            })?;
        if self.check_duplicates {
            let mut hasher = self.id_hasher.build_hasher();
            hasher.write(record.id.as_bytes());
            if !self.seen_ids.insert(hasher.finish()) {
                // A valid record's id is one `id_of` reads back.
                return Err(self.error(
                    line,
                    Some(record.id),
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
