//! ISO 20022 camt.052 (account report), camt.053 (statement) and camt.054
//! (debit/credit notification), every version from 001.02 to 001.13. A
//! streaming reader that matches local element names, never one namespace,
//! and builds one statement at a time: memory holds the statement being read
//! and the current XML event, never the document, a tree of it, or the
//! statements already handed on.

mod entry;
mod path;
mod statement;
mod value;

use std::io::{self, BufRead, Read};

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use self::entry::{EntryBuilder, TxBuilder};
use self::path::{ElementPath, MAX_DEPTH};
use self::statement::{BalanceBuilder, StatementBuilder};
use crate::model::{Format, ParseOutput, Statement, Warning};
use crate::parse::{FileContext, ParseError};

pub use self::entry::keys;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Message versions (`001.NN`) this parser reads.
const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 2..=13;

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
/// which line the bank got wrong.
struct Here<'a> {
    format: Format,
    path: &'a ElementPath,
    line: u32,
}

impl Here<'_> {
    fn path(&self) -> String {
        self.path.render()
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::malformed(
            self.format,
            self.path(),
            format!("{} (line {})", message.into(), self.line),
        )
    }
}

/// The encoding an XML declaration names (`encoding="…"`), UTF-8 when it
/// names none. An encoding we cannot decode is refused with its name.
fn declared_encoding(
    head: &[u8],
    kind: Kind,
) -> Result<&'static encoding_rs::Encoding, ParseError> {
    let Some(decl) = head.strip_prefix(b"<?xml") else {
        return Ok(encoding_rs::UTF_8);
    };
    let Some(at) = decl.windows(8).position(|w| w == b"encoding") else {
        return Ok(encoding_rs::UTF_8);
    };
    let after = &decl[at + 8..];
    let after = after
        .trim_ascii_start()
        .strip_prefix(b"=")
        .unwrap_or(after)
        .trim_ascii_start();
    let label = match after.first() {
        Some(q @ (b'"' | b'\'')) => after[1..].split(|c| c == q).next().unwrap_or_default(),
        _ => b"",
    };
    match encoding_rs::Encoding::for_label(label) {
        Some(e) if e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE => Err(ParseError::Encoding {
            at: "document".into(),
            message: format!("the XML declaration says UTF-16: expected a UTF-8 {} document", kind.name),
        }),
        Some(e) => Ok(e),
        None => Err(ParseError::Encoding {
            at: "document (XML declaration)".into(),
            message: format!(
                "the declared encoding {:?} is not one we can decode: expected UTF-8, ISO-8859-*, windows-125*, GBK or GB18030, or name the file's encoding with --encoding",
                String::from_utf8_lossy(label)
            ),
        }),
    }
}

/// A reader that decodes a legacy encoding to UTF-8 as it goes, refusing
/// bytes that are not valid in it (never a replacement character in money
/// or a name).
struct Decoding<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    name: &'static str,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: BufRead> Decoding<R> {
    fn new(inner: R, encoding: &'static encoding_rs::Encoding) -> Self {
        Decoding {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            name: encoding.name(),
            out: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Read for Decoding<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.out.len() && !self.done {
            let input = self.inner.fill_buf()?;
            let last = input.is_empty();
            let src = input.get(..input.len().min(8192)).unwrap_or(input);
            let room = self
                .decoder
                .max_utf8_buffer_length_without_replacement(src.len())
                .unwrap_or(src.len().saturating_mul(4))
                .max(16);
            let mut text = String::with_capacity(room);
            let (result, read) = self
                .decoder
                .decode_to_string_without_replacement(src, &mut text, last);
            if let encoding_rs::DecoderResult::Malformed(_, _) = result {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the file has bytes that are not valid {}", self.name),
                ));
            }
            self.inner.consume(read);
            self.out = text.into_bytes();
            self.pos = 0;
            self.done = last;
        }
        let available = self.out.get(self.pos..).unwrap_or_default();
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n;
        Ok(n)
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    let n = bytes.iter().filter(|b| **b == b'\n').count();
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// 1-based line after `newlines` newlines.
fn line_after(newlines: u64) -> u32 {
    u32::try_from(newlines.saturating_add(1)).unwrap_or(u32::MAX)
}

/// The input as quick-xml consumes it, counting newlines on the way: every
/// message can then name its line without keeping or rescanning the file.
struct CountingInput<R> {
    inner: R,
    newlines: u64,
}

impl<R: BufRead> Read for CountingInput<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            for (to, from) in out.iter_mut().zip(available) {
                *to = *from;
            }
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountingInput<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // `amt` bytes were just handed out by `fill_buf`; a reader returns the
        // same unconsumed bytes again without reading, so this costs no I/O.
        if let Ok(available) = self.inner.fill_buf() {
            let taken = available.get(..amt).unwrap_or(available);
            self.newlines = self.newlines.saturating_add(count_newlines(taken));
        }
        self.inner.consume(amt);
    }
}

/// Warnings kept per file: a million entries that each earn a warning must
/// not grow memory with the file; the rest are counted.
const MAX_WARNINGS: usize = 200;

#[derive(Default)]
struct Warnings {
    kept: Vec<Warning>,
    dropped: u64,
}

impl Warnings {
    fn push(&mut self, warning: Warning) {
        if self.kept.len() < MAX_WARNINGS {
            self.kept.push(warning);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    fn into_vec(self) -> Vec<Warning> {
        let mut kept = self.kept;
        if self.dropped > 0 {
            kept.push(Warning {
                at: "file".into(),
                message: format!("{} more warnings were not recorded", self.dropped),
            });
        }
        kept
    }
}

fn read_error(e: &io::Error) -> ParseError {
    ParseError::Encoding {
        at: "file".into(),
        message: format!("cannot be read: {e}"),
    }
}

/// Parses a camt.052, camt.053 or camt.054 document in memory into
/// statements (one per `Rpt`, `Stmt` or `Ntfctn`). Checks that are ours, not
/// the bank's (balances add up, statements chain), are made by the caller.
pub fn parse(bytes: &[u8], format: Format, ctx: &FileContext) -> Result<ParseOutput, ParseError> {
    let mut statements = Vec::new();
    let warnings = parse_reader(bytes, format, ctx, &mut |s| {
        statements.push(s);
        Ok(())
    })?;
    Ok(ParseOutput {
        statements,
        warnings,
    })
}

/// Parses a camt.052, camt.053 or camt.054 document from a reader, handing
/// each statement to `sink` as soon as its element closes. Memory holds the
/// statement being read and the current XML event, never the document, so
/// a file of any size parses in bounded memory. An error from `sink` stops
/// the parse and is returned as is. Returns the warnings: the first 200,
/// then one that counts the rest.
pub fn parse_reader<R: BufRead>(
    reader: R,
    format: Format,
    ctx: &FileContext,
    sink: &mut dyn FnMut(Statement) -> Result<(), ParseError>,
) -> Result<Vec<Warning>, ParseError> {
    parse_reader_in(reader, format, ctx, None, sink)
}

/// [`parse_reader`] with the document's text encoding given, overriding
/// its XML declaration (`--encoding`); `None` reads the declaration
/// (`<?xml … encoding="ISO-8859-1"?>`, GBK, GB18030) and decodes by it.
pub fn parse_reader_in<R: BufRead>(
    mut reader: R,
    format: Format,
    ctx: &FileContext,
    encoding: Option<&'static encoding_rs::Encoding>,
    sink: &mut dyn FnMut(Statement) -> Result<(), ParseError>,
) -> Result<Vec<Warning>, ParseError> {
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
    // The BOM and the XML declaration (up to the first `>`), read whole: a
    // reader may hand them out a byte at a time.
    let mut head = Vec::with_capacity(128);
    (&mut reader)
        .take(5)
        .read_to_end(&mut head)
        .map_err(|e| read_error(&e))?;
    let rest = head.strip_prefix(UTF8_BOM).unwrap_or(&head).to_vec();
    if rest.starts_with(b"\xFE\xFF") || rest.starts_with(b"\xFF\xFE") {
        return Err(ParseError::Encoding {
            at: "document".into(),
            message: format!(
                "the file is UTF-16: expected a UTF-8 {} document",
                kind.name
            ),
        });
    }
    let mut head = rest;
    if !head.contains(&b'>') {
        (&mut reader)
            .take(1024)
            .read_until(b'>', &mut head)
            .map_err(|e| read_error(&e))?;
    }
    let encoding = match encoding {
        Some(e) => e,
        None => declared_encoding(&head, kind)?,
    };
    let chained = io::Cursor::new(head).chain(reader);
    let decoded: Box<dyn BufRead + '_> = if encoding == encoding_rs::UTF_8 {
        Box::new(chained)
    } else {
        Box::new(io::BufReader::new(Decoding::new(chained, encoding)))
    };
    let input = CountingInput {
        inner: decoded,
        newlines: 0,
    };
    let mut reader = Reader::from_reader(input);
    // `<Amt/>` then reads like `<Amt></Amt>`: one code path for both.
    reader.config_mut().expand_empty_elements = true;
    let mut doc = Document::new(format, kind, ctx, sink);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let before_pos = reader.buffer_position();
        let before_newlines = reader.get_ref().newlines;
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(e) => {
                // The error may lie before the end of what was read (an
                // unclosed tag is reported at its `<`). Everything read in
                // this call, but for the `<` `>` `&` `;` around markup, is in
                // `buf`, so the newlines before the error are counted there.
                let into = reader.error_position().saturating_sub(before_pos);
                let into = usize::try_from(into).unwrap_or(usize::MAX);
                let read = buf.get(..into).unwrap_or(&buf);
                let line = line_after(before_newlines.saturating_add(count_newlines(read)));
                return Err(doc.xml_error(&e, line));
            }
        };
        // quick-xml consumes exactly up to the end of the event it returns,
        // so this is the line the event ends on.
        let line = line_after(reader.get_ref().newlines);
        match event {
            Event::Start(e) => doc.start(&e, line)?,
            Event::End(_) => doc.end(line)?,
            Event::Text(t) if doc.wants_text() => match t.xml_content() {
                Ok(text) => doc.text.push_str(&text),
                Err(_) => return Err(doc.not_utf8()),
            },
            Event::CData(t) if doc.wants_text() => match t.xml_content() {
                Ok(text) => doc.text.push_str(&text),
                Err(_) => return Err(doc.not_utf8()),
            },
            Event::GeneralRef(r) => doc.reference(&r, line)?,
            Event::Eof => return doc.finish(line),
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
    /// Whether any statement was finished: a document without one is refused.
    finished_any: bool,
    sink: &'a mut dyn FnMut(Statement) -> Result<(), ParseError>,
    warnings: Warnings,
}

impl<'a> Document<'a> {
    fn new(
        format: Format,
        kind: Kind,
        ctx: &'a FileContext,
        sink: &'a mut dyn FnMut(Statement) -> Result<(), ParseError>,
    ) -> Self {
        Document {
            format,
            kind,
            file_sha256: &ctx.sha256,
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
            finished_any: false,
            sink,
            warnings: Warnings::default(),
        }
    }

    /// Text outside a statement (group header, envelopes) is never used.
    fn wants_text(&self) -> bool {
        self.stmt.is_some()
    }

    fn here(&self, line: u32) -> Here<'_> {
        Here {
            format: self.format,
            path: &self.path,
            line,
        }
    }

    fn xml_error(&self, e: &quick_xml::Error, line: u32) -> ParseError {
        match e {
            quick_xml::Error::Encoding(_) => return self.not_utf8(),
            quick_xml::Error::Io(e) => return read_error(e),
            _ => {}
        }
        self.here(line)
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
    fn reference(&mut self, r: &BytesRef<'_>, line: u32) -> Result<(), ParseError> {
        if !self.wants_text() {
            return Ok(());
        }
        let name = r.decode().map_err(|_| self.not_utf8())?;
        if r.is_char_ref() {
            match r.resolve_char_ref() {
                Ok(Some(c)) => self.text.push(c),
                _ => {
                    return Err(self
                        .here(line)
                        .error(format!("&{name}; is not a valid character reference")))
                }
            }
        } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&name) {
            self.text.push_str(s);
        } else {
            return Err(self.here(line).error(format!(
                "unknown entity &{name};: expected one of &amp; &lt; &gt; &quot; &apos; or a character reference"
            )));
        }
        Ok(())
    }

    fn start(&mut self, e: &BytesStart<'_>, line: u32) -> Result<(), ParseError> {
        let local = e.local_name();
        let name = std::str::from_utf8(local.as_ref()).map_err(|_| self.not_utf8())?;
        if !self.path.push(name) {
            return Err(self.here(line).error(format!(
                "elements nested deeper than {MAX_DEPTH} levels: expected a {} document",
                self.kind.name
            )));
        }
        self.text.clear();
        self.ccy = None;
        let level = self.path.depth().saturating_sub(1);

        let Some((wrapper_level, _)) = &self.wrapper else {
            if level == 0 {
                self.check_version(e, line)?;
            }
            if let Some((_, found)) = KINDS.iter().find(|(_, k)| k.wrapper == name) {
                if found.wrapper != self.kind.wrapper {
                    return Err(self.here(line).error(format!(
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
                // Numbered from 1, like lines.
                self.messages = self.messages.saturating_add(1);
                self.stmt = Some(StatementBuilder::new(
                    level,
                    self.messages,
                    self.path.render(),
                    line,
                ));
            }
            return Ok(());
        };
        if name == "Amt" {
            self.ccy = ccy_attribute(e).map_err(|err| self.xml_error(&err, line))?;
        }
        if self.bal.is_none() && self.entry.is_none() && level == stmt.level + 1 {
            match name {
                "Bal" => self.bal = Some(BalanceBuilder::new(level)),
                "Ntry" => self.entry = Some(EntryBuilder::new(level, self.path.render(), line)),
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

    /// The root element's namespace names the message version
    /// (`urn:iso:std:iso:20022:tech:xsd:camt.052.001.01`): a version we do
    /// not read is refused by name rather than by a missing element.
    fn check_version(&self, e: &BytesStart<'_>, line: u32) -> Result<(), ParseError> {
        for attr in e.attributes().flatten() {
            let key = attr.key.as_ref();
            if key != b"xmlns" && !key.starts_with(b"xmlns:") {
                continue;
            }
            let value = String::from_utf8_lossy(&attr.value).into_owned();
            let Some(at) = value.find("camt.05") else {
                continue;
            };
            let id = &value[at..];
            let version = id
                .get(9..)
                .filter(|_| id.get(8..9) == Some("."))
                .and_then(|v| v.strip_prefix("001."))
                .and_then(|v| v.get(..2))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(v) = version.filter(|v| !(SUPPORTED_VERSIONS).contains(v)) {
                return Err(self.here(line).error(format!(
                    "{}.001.{v:02} is not a supported version: this parser reads camt.052, camt.053 and camt.054 versions 001.02 to 001.13",
                    id.get(..8).unwrap_or("camt")
                )));
            }
        }
        Ok(())
    }

    fn end(&mut self, line: u32) -> Result<(), ParseError> {
        let level = self.path.depth().saturating_sub(1);
        self.close(level, line)?;
        self.path.pop();
        self.text.clear();
        self.ccy = None;
        Ok(())
    }

    /// Hands the closing element's text to the innermost open builder, or
    /// finishes that builder when its own element closes.
    fn close(&mut self, level: usize, line: u32) -> Result<(), ParseError> {
        let here = Here {
            format: self.format,
            path: &self.path,
            line,
        };
        let text = self.text.trim();
        let ccy = self.ccy.as_deref();
        let warnings = &mut self.warnings;

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
                self.finished_any = true;
                (self.sink)(statement)?;
            }
            return Ok(());
        }
        if matches!(&self.wrapper, Some((wrapper_level, _)) if *wrapper_level == level) {
            self.wrapper = None;
        }
        Ok(())
    }

    fn finish(self, line: u32) -> Result<Vec<Warning>, ParseError> {
        if self.path.depth() > 0 {
            let level = self.path.depth() - 1;
            return Err(self.here(line).error(format!(
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
        if !self.finished_any {
            return Err(ParseError::malformed(
                self.format,
                wrapper,
                format!("no {} element: expected at least one", self.kind.statement),
            ));
        }
        Ok(self.warnings.into_vec())
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
