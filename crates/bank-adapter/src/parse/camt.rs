//! ISO 20022 camt.052 (account report), camt.053 (statement) and camt.054
//! (debit/credit notification), every version from 001.02 to 001.13. A
//! streaming reader that matches local element names, never one namespace,
//! and builds one statement at a time: memory holds the statement being read
//! and the output, never a tree of the document.

mod entry;
mod path;
mod statement;
mod value;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use self::entry::{EntryBuilder, TxBuilder};
use self::path::{ElementPath, MAX_DEPTH};
use self::statement::{BalanceBuilder, StatementBuilder};
use crate::model::{Format, ParseOutput};
use crate::parse::{FileContext, ParseError};

pub use self::entry::keys;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The message wrapper of each camt format and the element it repeats.
#[derive(Clone, Copy)]
struct Kind {
    wrapper: &'static str,
    statement: &'static str,
    name: &'static str,
}

const KINDS: [(Format, Kind); 3] = [
    (
        Format::Camt052,
        Kind {
            wrapper: "BkToCstmrAcctRpt",
            statement: "Rpt",
            name: "camt.052",
        },
    ),
    (
        Format::Camt053,
        Kind {
            wrapper: "BkToCstmrStmt",
            statement: "Stmt",
            name: "camt.053",
        },
    ),
    (
        Format::Camt054,
        Kind {
            wrapper: "BkToCstmrDbtCdtNtfctn",
            statement: "Ntfctn",
            name: "camt.054",
        },
    ),
];

/// Where a value is being read: enough to say in an error which element of
/// which line the bank got wrong. The line is counted only when an error is
/// actually made.
struct Here<'a> {
    format: Format,
    path: &'a ElementPath,
    bytes: &'a [u8],
    pos: usize,
}

impl Here<'_> {
    fn path(&self) -> String {
        self.path.render()
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::malformed(
            self.format,
            self.path(),
            format!(
                "{} (line {})",
                message.into(),
                line_of(self.bytes, self.pos)
            ),
        )
    }
}

fn count_lines(bytes: &[u8]) -> u32 {
    let n = bytes.iter().filter(|b| **b == b'\n').count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// 1-based line of a byte offset.
fn line_of(bytes: &[u8], pos: usize) -> u32 {
    count_lines(bytes.get(..pos).unwrap_or(bytes)).saturating_add(1)
}

/// Line numbers for the elements we keep, counted once over the file as
/// the reader moves forward.
struct LineCounter {
    pos: usize,
    line: u32,
}

impl LineCounter {
    fn at(&mut self, bytes: &[u8], pos: usize) -> u32 {
        if let Some(skipped) = bytes.get(self.pos..pos) {
            self.line = self.line.saturating_add(count_lines(skipped));
            self.pos = pos;
        }
        self.line
    }
}

/// Parses a camt.052, camt.053 or camt.054 document into statements (one
/// per `Rpt`, `Stmt` or `Ntfctn`). Checks that are ours, not the bank's
/// (balances add up, statements chain), are made by the caller.
pub fn parse(bytes: &[u8], format: Format, ctx: &FileContext) -> Result<ParseOutput, ParseError> {
    let kind = KINDS
        .iter()
        .find(|(f, _)| *f == format)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            ParseError::malformed(
                format,
                "document",
                "the camt parser reads camt.052, camt.053 and camt.054 only",
            )
        })?;
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    if body.starts_with(b"\xFE\xFF") || body.starts_with(b"\xFF\xFE") {
        return Err(ParseError::Encoding {
            at: "document".into(),
            message: format!(
                "the file is UTF-16: expected a UTF-8 {} document",
                kind.name
            ),
        });
    }
    let mut reader = Reader::from_reader(body);
    // `<Amt/>` then reads like `<Amt></Amt>`: one code path for both.
    reader.config_mut().expand_empty_elements = true;
    let mut doc = Document::new(format, kind, ctx, body);
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                let pos = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
                return Err(doc.xml_error(&e, pos));
            }
        };
        let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match event {
            Event::Start(e) => doc.start(&e, pos)?,
            Event::End(_) => doc.end(pos)?,
            Event::Text(t) if doc.wants_text() => match t.xml_content() {
                Ok(text) => doc.text.push_str(&text),
                Err(_) => return Err(doc.not_utf8()),
            },
            Event::CData(t) if doc.wants_text() => match t.xml_content() {
                Ok(text) => doc.text.push_str(&text),
                Err(_) => return Err(doc.not_utf8()),
            },
            Event::GeneralRef(r) => doc.reference(&r, pos)?,
            Event::Eof => return doc.finish(),
            _ => {}
        }
    }
}

/// The reading state: which wrapper, statement, balance, entry and
/// transaction are open, each remembered by the level of its element.
struct Document<'a> {
    format: Format,
    kind: Kind,
    file_sha256: &'a str,
    bytes: &'a [u8],
    path: ElementPath,
    /// Text of the innermost element since its start or its last child.
    text: String,
    /// `Ccy` of the innermost open `Amt`.
    ccy: Option<String>,
    wrapper: Option<(usize, String)>,
    found_wrapper: Option<String>,
    stmt: Option<StatementBuilder>,
    bal: Option<BalanceBuilder>,
    entry: Option<EntryBuilder>,
    tx: Option<TxBuilder>,
    messages: u32,
    lines: LineCounter,
    out: ParseOutput,
}

impl<'a> Document<'a> {
    fn new(format: Format, kind: Kind, ctx: &'a FileContext, bytes: &'a [u8]) -> Self {
        Document {
            format,
            kind,
            file_sha256: &ctx.sha256,
            bytes,
            path: ElementPath::default(),
            text: String::new(),
            ccy: None,
            wrapper: None,
            found_wrapper: None,
            stmt: None,
            bal: None,
            entry: None,
            tx: None,
            messages: 0,
            lines: LineCounter { pos: 0, line: 1 },
            out: ParseOutput::default(),
        }
    }

    /// Text outside a statement (group header, envelopes) is never used.
    fn wants_text(&self) -> bool {
        self.stmt.is_some()
    }

    fn here(&self, pos: usize) -> Here<'_> {
        Here {
            format: self.format,
            path: &self.path,
            bytes: self.bytes,
            pos,
        }
    }

    fn xml_error(&self, e: &quick_xml::Error, pos: usize) -> ParseError {
        if let quick_xml::Error::Encoding(_) = e {
            return self.not_utf8();
        }
        self.here(pos)
            .error(format!("the XML is not well formed: {e}"))
    }

    fn not_utf8(&self) -> ParseError {
        ParseError::Encoding {
            at: self.path.render(),
            message: format!(
                "text that is not UTF-8: expected a UTF-8 {} document",
                self.kind.name
            ),
        }
    }

    /// `&amp;` and friends, and character references; a document may not
    /// define entities of its own (that is how XML bombs are built).
    fn reference(&mut self, r: &BytesRef<'_>, pos: usize) -> Result<(), ParseError> {
        if !self.wants_text() {
            return Ok(());
        }
        let name = r.decode().map_err(|_| self.not_utf8())?;
        if r.is_char_ref() {
            match r.resolve_char_ref() {
                Ok(Some(c)) => self.text.push(c),
                _ => {
                    return Err(self
                        .here(pos)
                        .error(format!("&{name}; is not a valid character reference")))
                }
            }
        } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&name) {
            self.text.push_str(s);
        } else {
            return Err(self.here(pos).error(format!(
                "unknown entity &{name};: expected one of &amp; &lt; &gt; &quot; &apos; or a character reference"
            )));
        }
        Ok(())
    }

    fn start(&mut self, e: &BytesStart<'_>, pos: usize) -> Result<(), ParseError> {
        let local = e.local_name();
        let name = std::str::from_utf8(local.as_ref()).map_err(|_| self.not_utf8())?;
        if !self.path.push(name) {
            return Err(self.here(pos).error(format!(
                "elements nested deeper than {MAX_DEPTH} levels: expected a {} document",
                self.kind.name
            )));
        }
        self.text.clear();
        self.ccy = None;
        let level = self.path.depth().saturating_sub(1);

        let Some((wrapper_level, _)) = &self.wrapper else {
            if let Some((_, found)) = KINDS.iter().find(|(_, k)| k.wrapper == name) {
                if found.wrapper != self.kind.wrapper {
                    return Err(self.here(pos).error(format!(
                        "this is a {} document ({}): expected {} for {}",
                        found.name, found.wrapper, self.kind.wrapper, self.kind.name
                    )));
                }
                let path = self.path.render();
                self.found_wrapper = Some(path.clone());
                self.wrapper = Some((level, path));
            }
            return Ok(());
        };
        let Some(stmt) = &self.stmt else {
            if level == wrapper_level + 1 && name == self.kind.statement {
                let line = self.lines.at(self.bytes, pos);
                self.stmt = Some(StatementBuilder::new(
                    level,
                    self.messages,
                    self.path.render(),
                    line,
                ));
                self.messages = self.messages.saturating_add(1);
            }
            return Ok(());
        };
        if name == "Amt" {
            self.ccy = ccy_attribute(e).map_err(|err| self.xml_error(&err, pos))?;
        }
        if self.bal.is_none() && self.entry.is_none() && level == stmt.level + 1 {
            match name {
                "Bal" => self.bal = Some(BalanceBuilder::new(level)),
                "Ntry" => {
                    let line = self.lines.at(self.bytes, pos);
                    self.entry = Some(EntryBuilder::new(level, self.path.render(), line));
                }
                _ => {}
            }
        } else if let Some(entry) = &self.entry {
            let in_details =
                level == entry.level + 2 && self.path.name(level.saturating_sub(1)) == "NtryDtls";
            if self.tx.is_none() && name == "TxDtls" && in_details {
                self.tx = Some(TxBuilder::new(level));
            }
        }
        Ok(())
    }

    fn end(&mut self, pos: usize) -> Result<(), ParseError> {
        let level = self.path.depth().saturating_sub(1);
        self.close(level, pos)?;
        self.path.pop();
        self.text.clear();
        self.ccy = None;
        Ok(())
    }

    /// Hands the closing element's text to the innermost open builder, or
    /// finishes that builder when its own element closes.
    fn close(&mut self, level: usize, pos: usize) -> Result<(), ParseError> {
        let here = Here {
            format: self.format,
            path: &self.path,
            bytes: self.bytes,
            pos,
        };
        let text = self.text.trim();
        let ccy = self.ccy.as_deref();
        let warnings = &mut self.out.warnings;

        if let (Some(tx), Some(entry), Some(stmt)) =
            (self.tx.as_mut(), self.entry.as_mut(), self.stmt.as_ref())
        {
            if level > tx.level {
                return tx.field(self.path.below(tx.level).as_slice(), text, ccy, &here);
            }
            if let Some(tx) = self.tx.take() {
                entry.push_transaction(tx, &stmt.currency, &here, warnings);
            }
            return Ok(());
        }
        if let (Some(entry), Some(stmt)) = (self.entry.as_mut(), self.stmt.as_mut()) {
            if level > entry.level {
                return entry.field(
                    self.path.below(entry.level).as_slice(),
                    text,
                    ccy,
                    &mut stmt.currency,
                    &here,
                );
            }
            if let Some(entry) = self.entry.take() {
                let line = entry.finish(stmt.message(), self.file_sha256, &here, warnings)?;
                stmt.lines.push(line);
            }
            return Ok(());
        }
        if let (Some(bal), Some(stmt)) = (self.bal.as_mut(), self.stmt.as_mut()) {
            if level > bal.level {
                return bal.field(
                    self.path.below(bal.level).as_slice(),
                    text,
                    ccy,
                    &mut stmt.currency,
                    &here,
                );
            }
            if let Some(bal) = self.bal.take() {
                stmt.push_balance(bal, &here, warnings)?;
            }
            return Ok(());
        }
        if let Some(stmt) = self.stmt.as_mut() {
            if level > stmt.level {
                return stmt.field(self.path.below(stmt.level).as_slice(), text, &here);
            }
            if let Some(stmt) = self.stmt.take() {
                let statement = stmt.finish(self.format, self.file_sha256, &here)?;
                self.out.statements.push(statement);
            }
            return Ok(());
        }
        if matches!(&self.wrapper, Some((wrapper_level, _)) if *wrapper_level == level) {
            self.wrapper = None;
        }
        Ok(())
    }

    fn finish(self) -> Result<ParseOutput, ParseError> {
        if self.path.depth() > 0 {
            let level = self.path.depth() - 1;
            return Err(self.here(self.bytes.len()).error(format!(
                "the file ends inside <{}>: expected </{}> and the rest of the document; the file is truncated",
                self.path.name(level),
                self.path.name(level)
            )));
        }
        let Some(wrapper) = self.found_wrapper else {
            return Err(ParseError::malformed(
                self.format,
                "document",
                format!(
                    "no {} element: expected a {} document",
                    self.kind.wrapper, self.kind.name
                ),
            ));
        };
        if self.out.statements.is_empty() {
            return Err(ParseError::malformed(
                self.format,
                wrapper,
                format!("no {} element: expected at least one", self.kind.statement),
            ));
        }
        Ok(self.out)
    }
}

/// The `Ccy` attribute of an amount element, if any.
fn ccy_attribute(e: &BytesStart<'_>) -> Result<Option<String>, quick_xml::Error> {
    for attr in e.attributes() {
        let attr = attr?;
        if attr.key.local_name().as_ref() == b"Ccy" {
            return Ok(Some(attr.unescape_value()?.trim().to_owned()));
        }
    }
    Ok(None)
}
