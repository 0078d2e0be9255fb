//! The byte-level half of the recognizer: [`SqlState`] reads SQL one byte at a time, keeps
//! the word, number, string or quoted name being written, and hands finished tokens to the
//! [`Parser`].

use std::sync::Arc;

use crate::parser::{Expect, Options, Parser, Tok};
use crate::words::{Kw, SchemaIndex, KEYWORDS};

/// What the lexer is in the middle of.
#[derive(Clone, Debug)]
enum Lex {
    /// Between tokens.
    Gap,
    /// A word (`[A-Za-z_][A-Za-z0-9_]*`), lowercased, with what a word may be here.
    Word(Vec<u8>, Arc<Expect>),
    /// A quoted name (`"…"`, `` `…` ``, `[…]`): the closing byte, the text so far, what it may
    /// be.
    Quoted(u8, Vec<u8>, Arc<Expect>),
    /// A string literal; `true` just after a `'` that may close it or start a `''`.
    Str(bool),
    /// Just after a `]` that closed a bracketed name (a second one at once is refused).
    AfterQuoted(u8),
    /// Just after a `"` or `` ` `` inside a quoted name: it closes the name (`"a b"`) unless
    /// the next byte is the same quote, which makes the pair one quote inside the name
    /// (`"Last""Name"` is `Last"Name`). The closing byte, the name so far, what it may be.
    QuoteClosing(u8, Vec<u8>, Arc<Expect>),
    /// A number: its text so far.
    Num(Vec<u8>),
    /// After an operator byte that a second byte may extend (`<`, `>`, `=`, `|`), or that must
    /// not be followed by one (`-` then `-` opens a comment, `/` then `*`); `!` must be
    /// followed by `=`.
    Op(u8),
}

/// Where a SQL text stands: a valid prefix of one read-only SQLite statement over a schema, or
/// dead (see the [crate docs](crate) for what is checked).
#[derive(Clone, Debug)]
pub struct SqlState {
    parser: Parser,
    lex: Lex,
    dead: bool,
    /// The current line holds only whitespace so far (a second newline is a blank line).
    line_blank: bool,
    /// The statement is over (`;`, a blank line): only whitespace may follow.
    ended: bool,
}

/// Whether some keyword in `e` or some name `e` allows starts with `prefix`.
///
/// A prefix that spells a keyword whole becomes that keyword if the word ends there
/// ([`SqlState::flush`]), so the parser itself is asked (a copy fed the keyword): `e` is the
/// union over the states a word may reach by popping and some pops fail (e.g. `WHERE` while
/// the select list reads columns no table of the FROM clause has). Otherwise the prefix must
/// still grow into a longer keyword or a name; an alias without `AS` may not grow out of a
/// clause keyword ([`Expect::free_name_prefix_ok`]). Without this, a text could end in a
/// keyword nothing may follow, or slip into an alias glued to the keyword it wanted.
fn word_prefix_ok(parser: &Parser, e: &Expect, prefix: &[u8]) -> bool {
    if let Some((_, k)) = KEYWORDS.iter().find(|(t, _)| t.as_bytes() == prefix) {
        if (e.kws & k.bit() != 0 || !k.usable_as_name()) && parser.clone().feed(&Tok::Kw(*k)) {
            return true;
        }
    }
    e.free_name_prefix_ok(prefix, false)
        || KEYWORDS.iter().any(|(t, k)| {
            e.kws & k.bit() != 0 && t.len() > prefix.len() && t.as_bytes().starts_with(prefix)
        })
        || parser.name_prefix_ok(e, prefix, false)
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl SqlState {
    /// The state before any text, over the schema `index`, with default [`Options`].
    pub fn new(index: Arc<SchemaIndex>) -> SqlState {
        SqlState::with_options(index, Options::default())
    }

    /// The state before any text, with `opts`.
    pub fn with_options(index: Arc<SchemaIndex>, opts: Options) -> SqlState {
        SqlState {
            parser: Parser::new(index, opts),
            lex: Lex::Gap,
            dead: false,
            line_blank: false,
            ended: false,
        }
    }

    /// Whether no continuation of the text read so far is a valid statement.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Whether the statement is over (after `;` or a blank line): only whitespace may follow.
    pub fn is_ended(&self) -> bool {
        !self.dead && self.ended
    }

    /// Whether the state is inside a string literal (any byte but `'` keeps it alive).
    pub fn in_string(&self) -> bool {
        !self.dead && matches!(self.lex, Lex::Str(false))
    }

    /// The word being read and what it may be, if the state is inside a word.
    pub(crate) fn word(&self) -> Option<(&[u8], &Arc<Expect>)> {
        match &self.lex {
            Lex::Word(w, e) if !self.dead => Some((w, e)),
            _ => None,
        }
    }

    /// Whether `word` (lowercase) may be the beginning of a word here, given what the word
    /// in progress may be (`e`, from [`word`](Self::word)).
    pub(crate) fn word_ok(&self, e: &Expect, word: &[u8]) -> bool {
        word_prefix_ok(&self.parser, e, word)
    }

    /// This state with the word in progress replaced by `word` (one that
    /// [`word_ok`](Self::word_ok) accepted).
    pub(crate) fn with_word(&self, word: Vec<u8>, e: Arc<Expect>) -> SqlState {
        let mut s = self.clone();
        s.lex = Lex::Word(word, e);
        s
    }

    /// Reads `text`; returns whether the state is still alive.
    pub fn feed_str(&mut self, text: &str) -> bool {
        self.feed_bytes(text.as_bytes())
    }

    /// Reads `bytes`; returns whether the state is still alive. A dead state stays dead.
    pub fn feed_bytes(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if self.dead {
                return false;
            }
            if !self.byte(b) {
                self.dead = true;
                return false;
            }
        }
        !self.dead
    }

    /// Whether the text so far is a complete statement (it may end here).
    pub fn can_end(&self) -> bool {
        if self.dead {
            return false;
        }
        if self.ended {
            return true;
        }
        let mut s = self.clone();
        s.finish()
    }

    /// Flushes the token being read and ends the statement.
    fn finish(&mut self) -> bool {
        if !self.flush() {
            return false;
        }
        if self.parser.feed(&Tok::Eof) {
            self.ended = true;
            true
        } else {
            false
        }
    }

    /// Completes the token in progress at a delimiter; false when it cannot end here.
    fn flush(&mut self) -> bool {
        match std::mem::replace(&mut self.lex, Lex::Gap) {
            Lex::Gap | Lex::Str(true) | Lex::AfterQuoted(_) => true,
            Lex::Str(false) | Lex::Quoted(..) => false,
            Lex::QuoteClosing(_, text, _) => match String::from_utf8(text) {
                Ok(name) if !name.is_empty() => self.parser.feed(&Tok::Name(name.into(), true)),
                _ => false,
            },
            Lex::Op(b'!') => false,
            Lex::Op(_) => true,
            Lex::Word(w, e) => {
                let Ok(word) = String::from_utf8(w) else {
                    return false;
                };
                let tok = match Kw::parse(&word) {
                    Some(k) if e.kws & k.bit() != 0 || !k.usable_as_name() => Tok::Kw(k),
                    _ => Tok::Name(word.into(), false),
                };
                self.parser.feed(&tok)
            }
            Lex::Num(text) => {
                let Some(last) = text.last() else {
                    return false;
                };
                if matches!(last, b'e' | b'E' | b'+' | b'-' | b'x' | b'X') {
                    return false;
                }
                let int = if text.iter().all(u8::is_ascii_digit) {
                    std::str::from_utf8(&text).ok().and_then(|s| s.parse().ok())
                } else {
                    None
                };
                self.parser.feed(&Tok::Num(int))
            }
        }
    }

    fn byte(&mut self, b: u8) -> bool {
        if self.ended {
            return b.is_ascii_whitespace();
        }
        match &mut self.lex {
            Lex::Str(after_quote) => {
                if !*after_quote {
                    if b == b'\'' {
                        *after_quote = true;
                    }
                    return true;
                }
                if b == b'\'' {
                    *after_quote = false;
                    return true;
                }
                self.lex = Lex::Gap;
                self.gap_byte(b)
            }
            Lex::Word(w, e) => {
                if is_word_byte(b) {
                    w.push(b.to_ascii_lowercase());
                    return word_prefix_ok(&self.parser, e, w);
                }
                if !self.flush() || (b != b'.' && self.parser.qualifier_only()) {
                    return false;
                }
                self.gap_byte(b)
            }
            Lex::Quoted(close, text, e) => {
                if b == *close && *close == b']' {
                    let Ok(name) = String::from_utf8(std::mem::take(text)) else {
                        return false;
                    };
                    if name.is_empty() {
                        return false;
                    }
                    self.lex = Lex::AfterQuoted(*close);
                    self.line_blank = false;
                    return self.parser.feed(&Tok::Name(name.into(), true));
                }
                if b == *close {
                    // The name ends here, or the quote is the first of a doubled one.
                    let close = *close;
                    let text = std::mem::take(text);
                    let e = e.clone();
                    let ends = match std::str::from_utf8(&text) {
                        Ok(name) if !name.is_empty() => {
                            self.parser.clone().feed(&Tok::Name(name.into(), true))
                        }
                        _ => false,
                    };
                    let mut longer = text.clone();
                    longer.push(close);
                    let goes_on = self.parser.name_prefix_ok(&e, &longer, true);
                    self.lex = Lex::QuoteClosing(close, text, e);
                    self.line_blank = false;
                    return ends || goes_on;
                }
                if b == b'\n' || b == b'\r' {
                    return false;
                }
                text.push(b.to_ascii_lowercase());
                self.parser.name_prefix_ok(e, text, true)
            }
            Lex::QuoteClosing(close, text, e) => {
                if b == *close {
                    let mut text = std::mem::take(text);
                    text.push(b);
                    let e = e.clone();
                    let ok = self.parser.name_prefix_ok(&e, &text, true);
                    self.lex = Lex::Quoted(b, text, e);
                    return ok;
                }
                let Ok(name) = String::from_utf8(std::mem::take(text)) else {
                    return false;
                };
                self.lex = Lex::Gap;
                if name.is_empty() || !self.parser.feed(&Tok::Name(name.into(), true)) {
                    return false;
                }
                self.gap_byte(b)
            }
            Lex::Num(text) => {
                let last = *text.last().unwrap_or(&b'0');
                let hex = text.len() >= 2 && matches!(text[1], b'x' | b'X');
                let ok = if hex {
                    b.is_ascii_hexdigit()
                } else if b.is_ascii_digit() {
                    true
                } else if b == b'.' {
                    !text.iter().any(|c| matches!(c, b'.' | b'e' | b'E'))
                } else if matches!(b, b'e' | b'E') {
                    !text.iter().any(|c| matches!(c, b'e' | b'E'))
                } else if matches!(b, b'+' | b'-') {
                    matches!(last, b'e' | b'E')
                } else if matches!(b, b'x' | b'X') {
                    text.as_slice() == b"0"
                } else {
                    false
                };
                if ok {
                    text.push(b);
                    return true;
                }
                if is_word_byte(b) || b == b'.' {
                    return false;
                }
                if !self.flush() {
                    return false;
                }
                self.gap_byte(b)
            }
            Lex::Op(first) => {
                let first = *first;
                self.lex = Lex::Gap;
                match (first, b) {
                    (b'!', b'=') => return true,
                    (b'!', _) => return false,
                    (b'-', b'-') | (b'/', b'*') => return false,
                    (b'<', b'=' | b'>' | b'<') | (b'>', b'=' | b'>') | (b'=', b'=') => return true,
                    (b'|', b'|') => return true,
                    _ => {}
                }
                self.gap_byte(b)
            }
            Lex::AfterQuoted(close) => {
                if b == *close {
                    return false;
                }
                self.lex = Lex::Gap;
                self.gap_byte(b)
            }
            Lex::Gap => self.gap_byte(b),
        }
    }

    /// A byte between tokens.
    fn gap_byte(&mut self, b: u8) -> bool {
        if b == b'\n' {
            if self.line_blank {
                // A blank line ends the statement, like `;`.
                return self.finish();
            }
            self.line_blank = true;
            return true;
        }
        if b.is_ascii_whitespace() {
            return true;
        }
        self.line_blank = false;
        let tok = match b {
            b'\'' => {
                self.lex = Lex::Str(false);
                return self.parser.feed(&Tok::Str);
            }
            b'"' | b'`' | b'[' => {
                let e = self.parser.expect();
                if !self.parser.name_prefix_ok(&e, b"", true) {
                    return false;
                }
                let close = if b == b'[' { b']' } else { b };
                self.lex = Lex::Quoted(close, Vec::new(), Arc::new(e));
                return true;
            }
            b if is_word_start(b) => {
                let e = self.parser.expect();
                let w = vec![b.to_ascii_lowercase()];
                if !word_prefix_ok(&self.parser, &e, &w) {
                    return false;
                }
                self.lex = Lex::Word(w, Arc::new(e));
                return true;
            }
            b if b.is_ascii_digit() => {
                // The value decides (positional ORDER BY terms) once the number ends; here only
                // whether a number may come at all.
                let mut p = self.parser.clone();
                if !p.feed(&Tok::Num(None)) {
                    return false;
                }
                self.lex = Lex::Num(vec![b]);
                return true;
            }
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b',' => Tok::Comma,
            b'.' => Tok::Dot,
            b'*' => Tok::Star,
            b'+' => Tok::Plus,
            b'~' => Tok::Tilde,
            b'%' | b'&' => Tok::Arith,
            b';' => {
                if !self.parser.feed(&Tok::Semi) {
                    return false;
                }
                self.ended = true;
                return true;
            }
            b'-' => {
                self.lex = Lex::Op(b'-');
                Tok::Minus
            }
            b'/' => {
                self.lex = Lex::Op(b'/');
                Tok::Arith
            }
            b'|' => {
                self.lex = Lex::Op(b'|');
                Tok::Arith
            }
            b'<' | b'>' | b'=' => {
                self.lex = Lex::Op(b);
                Tok::Cmp
            }
            b'!' => {
                self.lex = Lex::Op(b'!');
                Tok::Cmp
            }
            _ => return false,
        };
        self.parser.feed(&tok)
    }
}
