//! SWIFT MT940 (statement) and MT942 (interim report): bytes in, one
//! `Statement` per message (per page, for multi-page statements) out.
//!
//! The file is read in one pass, line by line, without regex and without
//! copying lines: `text` says what each line is (a tag, a continuation, the
//! end of a message, envelope noise), `message` assembles one message's
//! fields into statements, `statement_line` and `information` read `:61:`
//! and `:86:`, `fields` the dates, amounts and balances everything is made
//! of. A message ends at `-`, `-}`, `$`, the next `:20:` or the end of the
//! file, whichever the bank chose.

mod fields;
mod information;
mod message;
mod statement_line;
mod text;

use message::Message;
use text::Row;

use super::{FileContext, ParseError};
use crate::model::{Format, ParseOutput, Statement, Warning};

/// Warnings kept per file; past this they are counted, not stored, so a
/// hostile file cannot grow memory through its warnings.
const MAX_WARNINGS: usize = 200;

/// Warnings of one file, bounded.
#[derive(Default)]
struct Notes {
    list: Vec<Warning>,
    dropped: usize,
}

impl Notes {
    fn warn(&mut self, at: String, message: String) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(Warning { at, message });
        } else {
            self.dropped += 1;
        }
    }

    fn into_vec(mut self) -> Vec<Warning> {
        if self.dropped > 0 {
            self.list.push(Warning {
                at: "file".into(),
                message: format!("{} more warnings were not recorded", self.dropped),
            });
        }
        self.list
    }
}

/// The field being read: its tag, first line and continuation lines. The
/// continuation buffer is reused from field to field.
#[derive(Default)]
struct Field<'a> {
    open: bool,
    tag: &'a str,
    line: u32,
    first: &'a str,
    more: Vec<&'a str>,
}

impl<'a> Field<'a> {
    fn start(&mut self, tag: &'a str, line: u32, first: &'a str) {
        self.open = true;
        self.tag = tag;
        self.line = line;
        self.first = first;
        self.more.clear();
    }

    fn flush(
        &mut self,
        message: Option<&mut Message<'_>>,
        notes: &mut Notes,
    ) -> Result<(), ParseError> {
        if let (true, Some(m)) = (std::mem::take(&mut self.open), message) {
            m.field(self.tag, self.line, self.first, &self.more, notes)?;
        }
        Ok(())
    }
}

/// Whether a `-` line followed by `rest` ends the message: nothing but
/// blank lines and envelope blocks follow, or another end marker, or a tag
/// that starts a message (`:20:`, or `:25:`/`:28C:` from banks that leave
/// out `:20:`). More free text, or a `:61:`/`:86:`/balance of the same
/// statement, means the dash was information text.
fn ends_message(rest: &[(u32, &str)]) -> bool {
    for (_, raw) in rest {
        match text::classify(raw) {
            Row::Skip => {
                if !raw
                    .trim_matches(|c: char| c.is_whitespace() || c == '\u{1a}')
                    .is_empty()
                {
                    return true; // an envelope block: the next message's header
                }
            }
            Row::End => return true,
            Row::Tag { tag, .. } => return matches!(tag, "20" | "25" | "28C" | "28"),
            // ABN AMRO's BIC and `940` before the next message's :20:.
            Row::More(line) if text::is_preamble(line) => {}
            Row::More(_) => return false,
        }
    }
    true
}

/// Parses an MT940 or MT942 file (`format` says which rules apply: MT940
/// requires opening and closing balances, MT942 does not).
pub fn parse(bytes: &[u8], format: Format, ctx: &FileContext) -> Result<ParseOutput, ParseError> {
    parse_part(bytes, format, ctx, Offsets::default())
}

/// Where a part of a larger file starts: lines before it, messages before it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offsets {
    pub line: u32,
    pub message: u32,
}

/// Parses one part of a file that was cut at message boundaries (the
/// streaming reader feeds parts of a few MiB), numbering lines and messages
/// as in the whole file.
pub fn parse_part(
    bytes: &[u8],
    format: Format,
    ctx: &FileContext,
    at: Offsets,
) -> Result<ParseOutput, ParseError> {
    let mut statements = Vec::new();
    let warnings = parse_part_into(bytes, format, ctx, at, &mut |s| {
        statements.push(s);
        Ok(())
    })?;
    Ok(ParseOutput {
        statements,
        warnings,
    })
}

/// [`parse_part`], handing each statement to `sink` as soon as its message
/// ends, so a part holds one message's statements at a time. Returns the
/// part's warnings.
pub fn parse_part_into(
    bytes: &[u8],
    format: Format,
    ctx: &FileContext,
    at: Offsets,
    sink: &mut dyn FnMut(Statement) -> Result<(), ParseError>,
) -> Result<Vec<Warning>, ParseError> {
    let mut any = false;
    let mut out = |done: Message<'_>| -> Result<(), ParseError> {
        for s in done.finish()? {
            any = true;
            sink(s)?;
        }
        Ok(())
    };
    let mut notes = Notes::default();
    let (text, lossy) = text::decode(bytes);
    if let Some(w) = lossy {
        notes.warn(w.at, w.message);
    }
    let mut current: Option<Message<'_>> = None;
    let mut field = Field::default();
    let mut messages = at.message;
    let rows: Vec<(u32, &str)> = text::lines(&text).collect();
    for (i, &(number, raw)) in rows.iter().enumerate() {
        let number = number.saturating_add(at.line);
        let mut row = text::classify(raw);
        if row == Row::End && field.open && field.tag == "86" && !ends_message(&rows[i + 1..]) {
            // A `-` line inside information text (a remittance line that
            // starts with a dash) is text: a message ends only where the
            // next message, the envelope or the end of input follows.
            row = Row::More(raw);
        }
        match row {
            Row::Tag { tag, value } => {
                field.flush(current.as_mut(), &mut notes)?;
                if tag == "20" || current.is_none() {
                    if let Some(done) = current.take() {
                        out(done)?;
                    }
                    if tag != "20" {
                        notes.warn(
                            format!("line {number} (:{tag}:)"),
                            "a message starts without a :20: transaction reference".into(),
                        );
                    }
                    // Numbered from 1, like lines.
                    messages = messages.saturating_add(1);
                    current = Some(Message::new(format, ctx, messages, number));
                }
                field.start(tag, number, value);
            }
            Row::More(line) => {
                if field.open {
                    field.more.push(line);
                } else if !text::is_preamble(line) {
                    notes.warn(
                        format!("line {number}"),
                        "text outside a message was ignored".into(),
                    );
                }
            }
            Row::End => {
                field.flush(current.as_mut(), &mut notes)?;
                if let Some(done) = current.take() {
                    out(done)?;
                }
            }
            Row::Skip => {}
        }
    }
    field.flush(current.as_mut(), &mut notes)?;
    if let Some(done) = current.take() {
        out(done)?;
    }
    if !any {
        return Err(ParseError::malformed(
            format,
            format!("line {}", at.line.saturating_add(1)),
            "no message found: expected a :20: transaction reference followed by :25: and the statement",
        ));
    }
    Ok(notes.into_vec())
}
