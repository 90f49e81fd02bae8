//! The JSON array file: a small scanner splits the array into elements without parsing them
//! (tracking strings and nesting), so the array's own syntax is held to account while each
//! element is still parsed and validated alone.
//!
//! Around a bad separator no record is lost and none is made up. Every element delimits itself
//! (an object ends at its matching brace), so the elements next to an extra comma (`[r1,,r2]`),
//! a missing one (`[r1 r2]`) or a trailing one (`[r1,]`) are read exactly as if the separator
//! had been right: they are good records, and bad input never stops good records (design
//! invariant 3). The separator itself becomes one failed item, located at the comma (or at the
//! element that lacks one), so the run reports it and exits 1 instead of passing silently.

use std::io;

use super::{Format, InputError, InputItem, InputReader, MAX_RECORD_BYTES, strict_json};
use crate::record;

/// What the JSON array's syntax allows next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Just after `[`: an element or `]`.
    FirstElement,
    /// Just after a `,` on `line`: an element.
    ElementAfterComma { line: u64 },
    /// Just after an element: `,` or `]`.
    Separator,
}

/// One step through a JSON array.
pub(super) enum ArrayStep {
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
    /// The next step through a JSON array: an element in `buffer`, or a located error in the
    /// array's own syntax, as an item of its own (one for a whole run of extra commas).
    pub(super) fn next_array_step(&mut self, expect: Expect) -> io::Result<ArrayStep> {
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
    pub(super) fn next_after_array(&mut self) -> io::Result<Option<InputItem>> {
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
    pub(super) fn skip_whitespace(&mut self) -> io::Result<Option<u8>> {
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
}
