//! Translation of apksift filter expressions into Milvus boolean expressions.
//!
//! apksift's filter language ([`apksift_index::filter`]) is Milvus-style but has SQL nulls:
//! a comparison with a null is *unknown*, `not unknown` is unknown, and a row matches only
//! when the whole expression is true; `x is null` / `x is not null` test for nulls. Milvus
//! 2.3 has no nullable fields, so the Milvus layout stores a null scalar as a default value
//! plus a boolean companion field `<name>__null` (see [`crate::layout`]); a null TLSH digest is
//! the empty string. Three-valued logic is then compiled into two boolean expressions per
//! node, *definitely true* and *definitely false*:
//!
//! | node | true | false |
//! |---|---|---|
//! | `x OP v` | `present(x) and x OP v` | `present(x) and x NOT-OP v` |
//! | `not a` | false(a) | true(a) |
//! | `a and b` | true(a) and true(b) | false(a) or false(b) |
//! | `a or b` | true(a) or true(b) | false(a) and false(b) |
//! | `x is null` | not present(x) | present(x) |
//!
//! The filter matches a row exactly when true(root) holds, which is apksift's rule. The text
//! is first compiled by [`apksift_index::filter::Filter::parse`] against the schema, so errors
//! (unknown fields, type mismatches) read the same as on the embedded store.

use apksift_index::{FieldType, Schema};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Op(&'static str),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
}

fn lex(s: &str) -> Result<Vec<Tok>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' | b')' | b'[' | b']' | b',' => {
                out.push(match c {
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'[' => Tok::LBrack,
                    b']' => Tok::RBrack,
                    _ => Tok::Comma,
                });
                i += 1;
            }
            b'"' | b'\'' => {
                let mut v = Vec::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(Error::Invalid("filter: unterminated string".into())),
                        Some(&x) if x == c => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            v.push(match b.get(i + 1) {
                                Some(&e @ (b'"' | b'\'' | b'\\')) => e,
                                Some(b'n') => b'\n',
                                Some(b't') => b'\t',
                                _ => return Err(Error::Invalid("filter: bad escape".into())),
                            });
                            i += 2;
                        }
                        Some(&x) => {
                            v.push(x);
                            i += 1;
                        }
                    }
                }
                let s = String::from_utf8(v)
                    .map_err(|_| Error::Invalid("filter: string is not UTF-8".into()))?;
                out.push(Tok::Str(s));
            }
            b'=' | b'!' | b'<' | b'>' | b'&' | b'|' => {
                let next = b.get(i + 1).copied();
                let (op, w) = match (c, next) {
                    (b'=', Some(b'=')) => ("==", 2),
                    (b'!', Some(b'=')) => ("!=", 2),
                    (b'<', Some(b'=')) => ("<=", 2),
                    (b'>', Some(b'=')) => (">=", 2),
                    (b'&', Some(b'&')) => ("and", 2),
                    (b'|', Some(b'|')) => ("or", 2),
                    (b'<', _) => ("<", 1),
                    (b'>', _) => (">", 1),
                    (b'!', _) => ("not", 1),
                    _ => {
                        return Err(Error::Invalid(format!(
                            "filter: unexpected {:?}",
                            c as char
                        )));
                    }
                };
                out.push(Tok::Op(op));
                i += w;
            }
            b'-' | b'0'..=b'9' => {
                let st = i;
                i += 1;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let t = &s[st..i];
                let v = t
                    .parse()
                    .map_err(|_| Error::Invalid(format!("filter: bad integer {t:?}")))?;
                out.push(Tok::Int(v));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let st = i;
                while b
                    .get(i)
                    .is_some_and(|x| x.is_ascii_alphanumeric() || *x == b'_')
                {
                    i += 1;
                }
                out.push(Tok::Ident(s[st..i].to_string()));
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "filter: unexpected character {:?}",
                    c as char
                )));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Const(bool),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Cmp(String, &'static str, Lit),
    In(String, Vec<Lit>),
    Like(String, String),
    IsNull(String),
    BoolField(String),
}

struct Parser {
    t: Vec<Tok>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn bump(&mut self) -> Option<Tok> {
        let t = self.t.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn is_kw(&self, w: &str) -> bool {
        match self.peek() {
            Some(Tok::Ident(s)) => s.eq_ignore_ascii_case(w),
            Some(Tok::Op(o)) => *o == w,
            _ => false,
        }
    }
    fn eat_kw(&mut self, w: &str) -> bool {
        let yes = self.is_kw(w);
        if yes {
            self.i += 1;
        }
        yes
    }
    fn expr(&mut self) -> Result<Node> {
        let mut l = self.and()?;
        while self.eat_kw("or") {
            l = Node::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Node> {
        let mut l = self.not()?;
        while self.eat_kw("and") {
            l = Node::And(Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Node> {
        if self.eat_kw("not") {
            return Ok(Node::Not(Box::new(self.not()?)));
        }
        self.atom()
    }
    fn lit(&mut self) -> Result<Lit> {
        match self.bump() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Int(v)) => Ok(Lit::Int(v)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            t => Err(Error::Invalid(format!(
                "filter: expected a literal, got {t:?}"
            ))),
        }
    }
    fn atom(&mut self) -> Result<Node> {
        match self.bump() {
            Some(Tok::LParen) => {
                let e = self.expr()?;
                match self.bump() {
                    Some(Tok::RParen) => Ok(e),
                    t => Err(Error::Invalid(format!("filter: expected ')', got {t:?}"))),
                }
            }
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("true") => Ok(Node::Const(true)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("false") => Ok(Node::Const(false)),
            Some(Tok::Ident(field)) => match self.peek().cloned() {
                Some(Tok::Op(op @ ("==" | "!=" | "<" | "<=" | ">" | ">="))) => {
                    self.i += 1;
                    Ok(Node::Cmp(field, op, self.lit()?))
                }
                _ if self.is_kw("not") => {
                    self.i += 1;
                    if !self.eat_kw("in") {
                        return Err(Error::Invalid("filter: expected 'in' after 'not'".into()));
                    }
                    Ok(Node::Not(Box::new(self.in_list(field)?)))
                }
                Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("in") => {
                    self.i += 1;
                    self.in_list(field)
                }
                Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("like") => {
                    self.i += 1;
                    match self.bump() {
                        Some(Tok::Str(p)) => Ok(Node::Like(field, p)),
                        t => Err(Error::Invalid(format!(
                            "filter: like needs a string, got {t:?}"
                        ))),
                    }
                }
                Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("is") => {
                    self.i += 1;
                    let neg = self.eat_kw("not");
                    if !self.eat_kw("null") {
                        return Err(Error::Invalid("filter: expected 'null'".into()));
                    }
                    let n = Node::IsNull(field);
                    Ok(if neg { Node::Not(Box::new(n)) } else { n })
                }
                _ => Ok(Node::BoolField(field)),
            },
            t => Err(Error::Invalid(format!("filter: unexpected {t:?}"))),
        }
    }
    fn in_list(&mut self, field: String) -> Result<Node> {
        if self.bump() != Some(Tok::LBrack) {
            return Err(Error::Invalid("filter: expected '['".into()));
        }
        let mut v = vec![self.lit()?];
        loop {
            match self.bump() {
                Some(Tok::Comma) => v.push(self.lit()?),
                Some(Tok::RBrack) => break,
                t => {
                    return Err(Error::Invalid(format!(
                        "filter: expected ',' or ']', got {t:?}"
                    )));
                }
            }
        }
        Ok(Node::In(field, v))
    }
}

/// A compiled boolean with constants folded.
#[derive(Debug, Clone, PartialEq)]
enum B {
    T,
    F,
    E(String),
}

fn and(a: B, b: B) -> B {
    match (a, b) {
        (B::F, _) | (_, B::F) => B::F,
        (B::T, x) | (x, B::T) => x,
        (B::E(a), B::E(b)) => B::E(format!("({a} and {b})")),
    }
}

fn or(a: B, b: B) -> B {
    match (a, b) {
        (B::T, _) | (_, B::T) => B::T,
        (B::F, x) | (x, B::F) => x,
        (B::E(a), B::E(b)) => B::E(format!("({a} or {b})")),
    }
}

/// A Milvus string literal.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn lit(l: &Lit) -> String {
    match l {
        Lit::Str(s) => quote(s),
        Lit::Int(v) => v.to_string(),
        Lit::Bool(b) => b.to_string(),
    }
}

fn negate(op: &str) -> &'static str {
    match op {
        "==" => "!=",
        "!=" => "==",
        "<" => ">=",
        "<=" => ">",
        ">" => "<=",
        _ => "<",
    }
}

struct Ctx<'a> {
    schema: &'a Schema,
}

impl Ctx<'_> {
    /// `present(field)`: T for the key and for non-nullable fields.
    fn present(&self, field: &str) -> B {
        if field == self.schema.primary_key {
            return B::T;
        }
        match self.schema.fields.iter().find(|f| f.name == field) {
            Some(f) if f.ty == FieldType::Tlsh => B::E(format!("{field} != \"\"")),
            Some(f) if f.nullable => {
                B::E(format!("{}{} == false", field, crate::layout::NULL_SUFFIX))
            }
            _ => B::T,
        }
    }
    /// The Milvus field of apksift field `x` (the primary key is always `key`).
    fn col<'b>(&self, x: &'b str) -> &'b str {
        if x == self.schema.primary_key {
            "key"
        } else {
            x
        }
    }
    fn is_tlsh(&self, field: &str) -> bool {
        self.schema
            .fields
            .iter()
            .any(|f| f.name == field && f.ty == FieldType::Tlsh)
    }
    /// (definitely true, definitely false)
    fn tf(&self, n: &Node) -> (B, B) {
        match n {
            Node::Const(true) => (B::T, B::F),
            Node::Const(false) => (B::F, B::T),
            Node::Not(a) => {
                let (t, f) = self.tf(a);
                (f, t)
            }
            Node::And(a, b) => {
                let (ta, fa) = self.tf(a);
                let (tb, fb) = self.tf(b);
                (and(ta, tb), or(fa, fb))
            }
            Node::Or(a, b) => {
                let (ta, fa) = self.tf(a);
                let (tb, fb) = self.tf(b);
                (or(ta, tb), and(fa, fb))
            }
            Node::IsNull(x) => {
                let p = self.present(x);
                let np = match &p {
                    B::T => B::F,
                    B::F => B::T,
                    B::E(_) if self.is_tlsh(x) => B::E(format!("{x} == \"\"")),
                    B::E(_) => B::E(format!("{}{} == true", x, crate::layout::NULL_SUFFIX)),
                };
                (np, p)
            }
            Node::Cmp(x, op, v) => {
                let v = self.tlsh_lit(x, v);
                let p = self.present(x);
                let x = self.col(x);
                (
                    and(p.clone(), B::E(format!("{x} {op} {}", lit(&v)))),
                    and(p, B::E(format!("{x} {} {}", negate(op), lit(&v)))),
                )
            }
            Node::In(x, vs) => {
                let list: Vec<String> = vs.iter().map(|v| lit(&self.tlsh_lit(x, v))).collect();
                let list = list.join(", ");
                let p = self.present(x);
                let x = self.col(x);
                (
                    and(p.clone(), B::E(format!("{x} in [{list}]"))),
                    and(p, B::E(format!("{x} not in [{list}]"))),
                )
            }
            Node::Like(x, pat) => {
                let p = self.present(x);
                let x = self.col(x);
                (
                    and(p.clone(), B::E(format!("{x} like {}", quote(pat)))),
                    and(p, B::E(format!("not ({x} like {})", quote(pat)))),
                )
            }
            Node::BoolField(x) => {
                let p = self.present(x);
                (
                    and(p.clone(), B::E(format!("{x} == true"))),
                    and(p, B::E(format!("{x} == false"))),
                )
            }
        }
    }
    /// TLSH fields are stored as their legacy 70-hex form: normalise a digest literal.
    fn tlsh_lit(&self, field: &str, v: &Lit) -> Lit {
        match v {
            Lit::Str(s) if self.is_tlsh(field) => match apksift_tlsh::Digest::parse_lenient(s) {
                Ok(d) => Lit::Str(d.to_legacy_hex()),
                Err(_) => v.clone(),
            },
            _ => v.clone(),
        }
    }
}

/// The Milvus expression selecting the rows for which the apksift filter `text` is true,
/// or `None` when it is true for every row. `Some("false-expression")` is never returned for a
/// constant false filter; [`Translated::Nothing`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Translated {
    /// Every row matches.
    All,
    /// No row matches.
    Nothing,
    /// Rows matching this Milvus expression.
    Expr(String),
}

/// Translates an apksift filter for a collection with `schema` (see the module docs).
pub fn translate(text: &str, schema: &Schema) -> Result<Translated> {
    apksift_index::filter::Filter::parse(text, schema)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let mut p = Parser {
        t: lex(text)?,
        i: 0,
    };
    let root = p.expr()?;
    if p.i != p.t.len() {
        return Err(Error::Invalid("filter: trailing tokens".into()));
    }
    let (t, _) = Ctx { schema }.tf(&root);
    Ok(match t {
        B::T => Translated::All,
        B::F => Translated::Nothing,
        B::E(e) => Translated::Expr(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use apksift_index::FieldSchema;

    fn schema() -> Schema {
        Schema::new(
            "key",
            vec![
                FieldSchema::new("whole", FieldType::Tlsh),
                FieldSchema::new("family", FieldType::String { max_len: 64 }),
                FieldSchema::new("threat", FieldType::Int),
                FieldSchema::new("flag", FieldType::Bool),
            ],
        )
    }

    fn tr(s: &str) -> String {
        match translate(s, &schema()).unwrap() {
            Translated::Expr(e) => e,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn comparisons_require_presence() {
        assert_eq!(
            tr("family == \"Anubis\""),
            "(family__null == false and family == \"Anubis\")"
        );
        assert_eq!(
            tr("not (threat >= 3)"),
            "(threat__null == false and threat < 3)"
        );
        assert_eq!(tr("key == \"ab\""), "key == \"ab\"");
        assert_eq!(tr("family is not null"), "family__null == false");
        assert_eq!(tr("true"), "All");
        assert_eq!(tr("false and threat > 1"), "Nothing");
        assert_eq!(
            tr("threat not in [1, 2]"),
            "(threat__null == false and threat not in [1, 2])"
        );
        assert_eq!(tr("flag"), "(flag__null == false and flag == true)");
        assert_eq!(
            tr("family like 'Anu%' || threat == 1"),
            "((family__null == false and family like \"Anu%\") or (threat__null == false and threat == 1))"
        );
    }

    #[test]
    fn errors_come_from_the_embedded_parser() {
        assert!(translate("nosuch == 1", &schema()).is_err());
        assert!(translate("family ==", &schema()).is_err());
    }
}
