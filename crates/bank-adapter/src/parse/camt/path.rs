//! The stack of open elements while streaming a camt document, with the
//! sibling indexes of repeatable elements, so every line and every error can
//! name its element as `Document/BkToCstmrStmt/Stmt[0]/Ntry[3]/Amt`.

use std::fmt::Write as _;

/// Elements that repeat under one parent and so are shown with an index.
/// Other elements are unique under their parent in every camt version and
/// an index would only make paths harder to read.
const INDEXED: [&str; 7] = ["Stmt", "Rpt", "Ntfctn", "Bal", "Ntry", "NtryDtls", "TxDtls"];

/// Deeper than any camt schema nests (about 15 levels): a document this deep
/// is hostile or broken, and refusing it keeps memory bounded.
pub(super) const MAX_DEPTH: usize = 64;

/// The longest relative path a builder ever matches on.
const MAX_RELATIVE: usize = 8;

struct Frame {
    name: String,
    index: Option<u32>,
    child_counts: [u32; INDEXED.len()],
}

/// Frames are reused as elements open and close, so the steady state of a
/// long file allocates nothing here.
#[derive(Default)]
pub(super) struct ElementPath {
    frames: Vec<Frame>,
    depth: usize,
}

/// Names below some open element, for matching with slice patterns.
pub(super) struct Relative<'a> {
    names: [&'a str; MAX_RELATIVE],
    len: usize,
}

impl<'a> Relative<'a> {
    pub(super) fn as_slice(&self) -> &[&'a str] {
        self.names.get(..self.len).unwrap_or(&[])
    }
}

impl ElementPath {
    /// Opens an element; `false` when the document nests too deep.
    pub(super) fn push(&mut self, name: &str) -> bool {
        if self.depth >= MAX_DEPTH {
            return false;
        }
        let slot = INDEXED.iter().position(|n| *n == name);
        let index = match (slot, self.depth.checked_sub(1)) {
            (Some(slot), Some(parent)) => self.frames.get_mut(parent).and_then(|p| {
                let count = p.child_counts.get_mut(slot)?;
                let index = *count;
                *count = count.saturating_add(1);
                Some(index)
            }),
            (Some(_), None) => Some(0),
            _ => None,
        };
        if let Some(frame) = self.frames.get_mut(self.depth) {
            frame.name.clear();
            frame.name.push_str(name);
            frame.index = index;
            frame.child_counts = [0; INDEXED.len()];
        } else {
            self.frames.push(Frame {
                name: name.to_owned(),
                index,
                child_counts: [0; INDEXED.len()],
            });
        }
        self.depth += 1;
        true
    }

    pub(super) fn pop(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Number of open elements; the innermost one is at level `depth() - 1`.
    pub(super) fn depth(&self) -> usize {
        self.depth
    }

    /// Local name of the open element at `level` (0 is the root).
    pub(super) fn name(&self, level: usize) -> &str {
        match self.frames.get(level) {
            Some(frame) if level < self.depth => &frame.name,
            _ => "",
        }
    }

    /// The names of the open elements strictly below `level`. Paths longer
    /// than any camt field come back as one name that matches nothing.
    pub(super) fn below(&self, level: usize) -> Relative<'_> {
        let mut names = [""; MAX_RELATIVE];
        let open = self.frames.get(level + 1..self.depth).unwrap_or(&[]);
        if open.len() > MAX_RELATIVE {
            names[0] = "\u{0}";
            return Relative { names, len: 1 };
        }
        for (slot, frame) in names.iter_mut().zip(open) {
            *slot = &frame.name;
        }
        Relative {
            names,
            len: open.len(),
        }
    }

    /// The path of the open element at `level`, e.g. `Document/BkToCstmrStmt/Stmt[0]`.
    pub(super) fn render_to(&self, level: usize) -> String {
        let mut out = String::new();
        let end = (level + 1).min(self.depth);
        for (i, frame) in self.frames.iter().take(end).enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&frame.name);
            if let Some(index) = frame.index {
                // Writing to a String cannot fail.
                let _ = write!(out, "[{index}]");
            }
        }
        out
    }

    /// The path of the innermost open element.
    pub(super) fn render(&self) -> String {
        match self.depth.checked_sub(1) {
            Some(level) => self.render_to(level),
            None => "document".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_statement_elements_are_indexed_and_others_are_not() {
        let mut p = ElementPath::default();
        for name in ["Document", "BkToCstmrStmt", "Stmt"] {
            assert!(p.push(name));
        }
        p.pop();
        assert!(p.push("Stmt"));
        assert!(p.push("Ntry"));
        p.pop();
        assert!(p.push("Ntry"));
        assert!(p.push("Amt"));
        assert_eq!(p.render(), "Document/BkToCstmrStmt/Stmt[1]/Ntry[1]/Amt");
        assert_eq!(p.below(2).as_slice(), ["Ntry", "Amt"]);
        assert_eq!(p.render_to(2), "Document/BkToCstmrStmt/Stmt[1]");
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let mut p = ElementPath::default();
        for _ in 0..MAX_DEPTH {
            assert!(p.push("a"));
        }
        assert!(!p.push("a"));
    }
}
