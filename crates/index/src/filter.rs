//! Scalar filter expressions, Milvus style:
//! `family == "Anubis" and threat >= 3`, `label in ["malware", "grayware"]`,
//! `not (source like "vt%")`, `package is null`, `flagged` (a bool field).
//!
//! Grammar (keywords are case-insensitive; `&&`, `||`, `!` also work):
//! ```text
//! expr := or ;  or := and ("or" and)* ;  and := not ("and" not)* ;
//! not  := "not" not | atom ;
//! atom := "(" expr ")" | FIELD OP LIT | FIELD ["not"] "in" "[" LIT ("," LIT)* "]"
//!       | FIELD "like" STRING | FIELD "is" ["not"] "null" | BOOLFIELD | "true" | "false"
//! OP   := == | != | < | <= | > | >=
//! ```
//! Fields are checked against the schema when the expression is compiled.
//! Nulls follow SQL's three-valued logic: a comparison with a null is
//! unknown, `not unknown` is unknown, and a row matches only when the whole
//! expression is true (so `x != 3` and `x not in [3]` skip rows where x is null). The primary key can be filtered
//! by its name.

use crate::rows::{PartRead, ValueRef};
use crate::schema::{FieldType, Schema};
use crate::{Error, Result};

/// Longest expression accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 65_536;
const MAX_DEPTH: usize = 64;

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
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1
            }
            b'[' => {
                out.push(Tok::LBrack);
                i += 1
            }
            b']' => {
                out.push(Tok::RBrack);
                i += 1
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1
            }
            b'"' | b'\'' => {
                let q = c;
                let mut v = Vec::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => {
                            return Err(Error::invalid(format!(
                                "filter: unterminated string starting at byte {}",
                                i
                            )));
                        }
                        Some(&x) if x == q => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            match b.get(i + 1) {
                                Some(&e @ (b'"' | b'\'' | b'\\')) => v.push(e),
                                Some(b'n') => v.push(b'\n'),
                                Some(b't') => v.push(b'\t'),
                                _ => {
                                    return Err(Error::invalid(format!(
                                        "filter: bad escape at byte {i}"
                                    )));
                                }
                            }
                            i += 2;
                        }
                        Some(&x) => {
                            v.push(x);
                            i += 1
                        }
                    }
                }
                out.push(Tok::Str(
                    String::from_utf8(v)
                        .map_err(|_| Error::invalid("filter: string is not UTF-8"))?,
                ));
            }
            b'=' | b'!' | b'<' | b'>' | b'&' | b'|' => {
                let two = b.get(i..i + 2).unwrap_or(&[]);
                let op = match two {
                    b"==" => "==",
                    b"!=" => "!=",
                    b"<=" => "<=",
                    b">=" => ">=",
                    b"&&" => "and",
                    b"||" => "or",
                    _ => match c {
                        b'<' => "<",
                        b'>' => ">",
                        b'!' => "not",
                        _ => {
                            return Err(Error::invalid(format!(
                                "filter: unexpected {:?} at byte {i}",
                                c as char
                            )));
                        }
                    },
                };
                i += if matches!(op, "<" | ">" | "not") && two.get(1) != Some(&b'=') {
                    1
                } else {
                    2
                };
                out.push(Tok::Op(op));
            }
            b'-' | b'0'..=b'9' => {
                let st = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let t = &s[st..i];
                out.push(Tok::Int(t.parse().map_err(|_| {
                    Error::invalid(format!("filter: bad integer {t:?}"))
                })?));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Ident(s[st..i].to_string()));
            }
            _ => {
                return Err(Error::invalid(format!(
                    "filter: unexpected character {:?} at byte {i}",
                    c as char
                )));
            }
        }
    }
    Ok(out)
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Where a compared value comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Src {
    Key,
    Field(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Const(bool),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Cmp(Src, Cmp, Lit),
    In(Src, Vec<Lit>),
    Like(Src, String),
    IsNull(Src),
    BoolField(usize),
}

/// A compiled filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
    text: String,
}

struct P<'a> {
    t: Vec<Tok>,
    i: usize,
    schema: &'a Schema,
    depth: usize,
}

fn kw(t: Option<&Tok>, k: &str) -> bool {
    matches!(t, Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(k))
        || matches!(t, Some(Tok::Op(o)) if *o == k)
}

impl P<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.t.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn expr(&mut self) -> Result<Node> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::invalid(format!(
                "filter: nesting deeper than {MAX_DEPTH}"
            )));
        }
        let mut l = self.and()?;
        while kw(self.peek(), "or") {
            self.i += 1;
            l = Node::Or(Box::new(l), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(l)
    }
    fn and(&mut self) -> Result<Node> {
        let mut l = self.not()?;
        while kw(self.peek(), "and") {
            self.i += 1;
            l = Node::And(Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Node> {
        if kw(self.peek(), "not") {
            self.i += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(Error::invalid(format!(
                    "filter: nesting deeper than {MAX_DEPTH}"
                )));
            }
            let n = self.not()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(n)));
        }
        self.atom()
    }
    fn lit(&mut self) -> Result<Lit> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Int(v)) => Ok(Lit::Int(v)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            t => Err(Error::invalid(format!(
                "filter: expected a literal, found {t:?}"
            ))),
        }
    }
    fn field(&self, name: &str) -> Result<(Src, FieldType)> {
        if name == self.schema.primary_key {
            return Ok((Src::Key, FieldType::String { max_len: 512 }));
        }
        let (i, f) = self.schema.field(name)?;
        if f.ty.is_vector() {
            return Err(Error::invalid(format!(
                "filter: field {name:?} is a vector field and cannot be filtered"
            )));
        }
        Ok((Src::Field(i), f.ty))
    }
    fn check_lit(name: &str, ty: FieldType, l: &Lit) -> Result<()> {
        let ok = matches!(
            (ty, l),
            (FieldType::String { .. }, Lit::Str(_))
                | (FieldType::Int, Lit::Int(_))
                | (FieldType::Bool, Lit::Bool(_))
        );
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "filter: field {name:?} is {} and cannot be compared with {l:?}",
                ty.name()
            )))
        }
    }
    fn atom(&mut self) -> Result<Node> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.expr()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    t => Err(Error::invalid(format!("filter: expected ')', found {t:?}"))),
                }
            }
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("true") => Ok(Node::Const(true)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("false") => Ok(Node::Const(false)),
            Some(Tok::Ident(name)) => {
                let (src, ty) = self.field(&name)?;
                let negate_in = if kw(self.peek(), "not") && kw(self.t.get(self.i + 1), "in") {
                    self.i += 1;
                    true
                } else {
                    false
                };
                match self.peek().cloned() {
                    Some(Tok::Op(op)) if ["==", "!=", "<", "<=", ">", ">="].contains(&op) => {
                        self.i += 1;
                        let l = self.lit()?;
                        Self::check_lit(&name, ty, &l)?;
                        let c = match op {
                            "==" => Cmp::Eq,
                            "!=" => Cmp::Ne,
                            "<" => Cmp::Lt,
                            "<=" => Cmp::Le,
                            ">" => Cmp::Gt,
                            _ => Cmp::Ge,
                        };
                        if matches!(ty, FieldType::Bool) && !matches!(c, Cmp::Eq | Cmp::Ne) {
                            return Err(Error::invalid(format!(
                                "filter: bool field {name:?} only supports == and !="
                            )));
                        }
                        Ok(Node::Cmp(src, c, l))
                    }
                    Some(Tok::Ident(k)) if k.eq_ignore_ascii_case("in") => {
                        self.i += 1;
                        if self.next() != Some(Tok::LBrack) {
                            return Err(Error::invalid("filter: expected '[' after in"));
                        }
                        let mut v = Vec::new();
                        if self.peek() != Some(&Tok::RBrack) {
                            loop {
                                let l = self.lit()?;
                                Self::check_lit(&name, ty, &l)?;
                                v.push(l);
                                match self.next() {
                                    Some(Tok::Comma) => continue,
                                    Some(Tok::RBrack) => break,
                                    t => {
                                        return Err(Error::invalid(format!(
                                            "filter: expected ',' or ']', found {t:?}"
                                        )));
                                    }
                                }
                            }
                        } else {
                            self.i += 1;
                        }
                        let n = Node::In(src, v);
                        Ok(if negate_in { Node::Not(Box::new(n)) } else { n })
                    }
                    Some(Tok::Ident(k)) if k.eq_ignore_ascii_case("like") => {
                        self.i += 1;
                        if !matches!(ty, FieldType::String { .. }) {
                            return Err(Error::invalid(format!(
                                "filter: like needs a string field, {name:?} is {}",
                                ty.name()
                            )));
                        }
                        match self.next() {
                            Some(Tok::Str(p)) => Ok(Node::Like(src, p)),
                            t => Err(Error::invalid(format!(
                                "filter: like needs a string pattern, found {t:?}"
                            ))),
                        }
                    }
                    Some(Tok::Ident(k)) if k.eq_ignore_ascii_case("is") => {
                        self.i += 1;
                        let neg = if kw(self.peek(), "not") {
                            self.i += 1;
                            true
                        } else {
                            false
                        };
                        match self.next() {
                            Some(Tok::Ident(n)) if n.eq_ignore_ascii_case("null") => {
                                let node = Node::IsNull(src);
                                Ok(if neg { Node::Not(Box::new(node)) } else { node })
                            }
                            t => Err(Error::invalid(format!(
                                "filter: expected null after is, found {t:?}"
                            ))),
                        }
                    }
                    _ => match (src, ty) {
                        (Src::Field(i), FieldType::Bool) => Ok(Node::BoolField(i)),
                        _ => Err(Error::invalid(format!(
                            "filter: expected an operator after field {name:?}"
                        ))),
                    },
                }
            }
            t => Err(Error::invalid(format!("filter: unexpected {t:?}"))),
        }
    }
}

fn like(pattern: &str, s: &str) -> bool {
    // % matches any run, _ one character.
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (usize::MAX, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = pi;
            mark = ti;
            pi += 1;
        } else if star != usize::MAX {
            pi = star + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

impl Filter {
    /// Compiles `text` against a schema.
    pub fn parse(text: &str, schema: &Schema) -> Result<Filter> {
        if text.len() > MAX_FILTER_LEN {
            return Err(Error::invalid(format!(
                "filter longer than {MAX_FILTER_LEN} bytes"
            )));
        }
        let t = lex(text)?;
        if t.is_empty() {
            return Err(Error::invalid("filter: empty expression"));
        }
        let mut p = P {
            t,
            i: 0,
            schema,
            depth: 0,
        };
        let root = p.expr()?;
        if p.i != p.t.len() {
            return Err(Error::invalid(format!(
                "filter: unexpected {:?} after the expression",
                p.t.get(p.i)
            )));
        }
        Ok(Filter {
            root,
            text: text.to_string(),
        })
    }

    /// The source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Does row `row` of `part` match?
    pub fn matches(&self, part: &dyn PartRead, row: u32) -> bool {
        eval(&self.root, part, row) == Some(true)
    }
}

fn get<'a>(part: &'a dyn PartRead, src: Src, row: u32) -> ValueRef<'a> {
    match src {
        Src::Key => ValueRef::Str(part.key(row)),
        Src::Field(i) => part.value(i, row),
    }
}

fn cmp_lit(v: &ValueRef<'_>, l: &Lit) -> Option<std::cmp::Ordering> {
    match (v, l) {
        (ValueRef::Str(a), Lit::Str(b)) => Some((*a).cmp(b.as_str())),
        (ValueRef::Int(a), Lit::Int(b)) => Some(a.cmp(b)),
        (ValueRef::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Three-valued (Kleene) logic: `None` is "unknown" (a null was compared);
/// a row matches only when the whole expression is `Some(true)`.
fn eval(n: &Node, part: &dyn PartRead, row: u32) -> Option<bool> {
    use std::cmp::Ordering::*;
    match n {
        Node::Const(b) => Some(*b),
        Node::And(a, b) => match (eval(a, part, row), eval(b, part, row)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Node::Or(a, b) => match (eval(a, part, row), eval(b, part, row)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Node::Not(a) => eval(a, part, row).map(|b| !b),
        Node::Cmp(src, c, l) => cmp_lit(&get(part, *src, row), l).map(|o| match c {
            Cmp::Eq => o == Equal,
            Cmp::Ne => o != Equal,
            Cmp::Lt => o == Less,
            Cmp::Le => o != Greater,
            Cmp::Gt => o == Greater,
            Cmp::Ge => o != Less,
        }),
        Node::In(src, v) => {
            let x = get(part, *src, row);
            if matches!(x, ValueRef::Null) {
                return None;
            }
            Some(v.iter().any(|l| cmp_lit(&x, l) == Some(Equal)))
        }
        Node::Like(src, p) => match get(part, *src, row) {
            ValueRef::Str(s) => Some(like(p, s)),
            _ => None,
        },
        Node::IsNull(src) => Some(matches!(get(part, *src, row), ValueRef::Null)),
        Node::BoolField(i) => match part.value(*i, row) {
            ValueRef::Bool(b) => Some(b),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::RowsBuf;
    use crate::schema::FieldSchema;
    use crate::value::{Column, NormBatch};

    fn setup() -> (Schema, RowsBuf) {
        let schema = Schema::new(
            "sha256",
            vec![
                FieldSchema::new("t", FieldType::Tlsh),
                FieldSchema::new("family", FieldType::String { max_len: 100 }),
                FieldSchema::new("threat", FieldType::Int),
                FieldSchema::new("flagged", FieldType::Bool),
            ],
        );
        let b = NormBatch {
            keys: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            columns: vec![
                Column::Tlsh(vec![None; 4]),
                Column::Str(vec![
                    Some("Anubis".into()),
                    Some("ExoBot".into()),
                    None,
                    Some("Anubis-2".into()),
                ]),
                Column::Int(vec![Some(3), Some(5), Some(1), None]),
                Column::Bool(vec![Some(true), Some(false), None, Some(true)]),
            ],
        };
        let mut rb = RowsBuf::new(&schema);
        for i in 0..4 {
            rb.push_batch_row(&b, i);
        }
        (schema, rb)
    }

    fn rows(expr: &str) -> Vec<&'static str> {
        let (schema, rb) = setup();
        let f = Filter::parse(expr, &schema).unwrap();
        ["a", "b", "c", "d"]
            .into_iter()
            .enumerate()
            .filter(|(i, _)| f.matches(&rb, *i as u32))
            .map(|(_, k)| k)
            .collect()
    }

    #[test]
    fn filters_select_the_right_rows() {
        assert_eq!(rows(r#"family == "Anubis" and threat >= 3"#), vec!["a"]);
        assert_eq!(rows("threat > 1 or flagged"), vec!["a", "b", "d"]);
        assert_eq!(rows(r#"family in ["ExoBot", "Anubis"]"#), vec!["a", "b"]);
        assert_eq!(rows(r#"family not in ["ExoBot"]"#), vec!["a", "d"]);
        assert_eq!(rows(r#"family like "Anu%""#), vec!["a", "d"]);
        assert_eq!(rows("family is null"), vec!["c"]);
        assert_eq!(rows("threat is not null and not flagged"), vec!["b"]);
        assert_eq!(rows(r#"sha256 == "c" || sha256 == 'd'"#), vec!["c", "d"]);
        assert_eq!(rows("!(threat < 5)"), vec!["b"]);
        assert_eq!(rows("threat != 3"), vec!["b", "c"]);
        assert_eq!(rows("flagged == false"), vec!["b"]);
        assert_eq!(rows("true"), vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn bad_filters_are_rejected_with_reasons() {
        let (schema, _) = setup();
        for (e, needle) in [
            ("nope == 1", "unknown field"),
            ("threat == \"x\"", "cannot be compared"),
            ("family >= 3", "cannot be compared"),
            ("t == 1", "vector field"),
            ("threat ==", "expected a literal"),
            ("(threat == 1", "expected ')'"),
            ("threat == 1 extra", "after the expression"),
            ("flagged < true", "only supports"),
            ("\"unterminated", "unterminated"),
            ("", "empty"),
            ("threat like \"x\"", "like needs a string field"),
        ] {
            let err = Filter::parse(e, &schema).unwrap_err().to_string();
            assert!(err.contains(needle), "{e:?}: {err}");
        }
        let deep = "(".repeat(200) + "true" + &")".repeat(200);
        assert!(Filter::parse(&deep, &schema).is_err());
        let deep_not = "not ".repeat(500) + "true";
        assert!(Filter::parse(&deep_not, &schema).is_err());
    }

    #[test]
    fn like_patterns() {
        assert!(like("a%c", "abbbc"));
        assert!(like("%", ""));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "abbc"));
        assert!(like("%b%", "abc"));
        assert!(!like("abc", "abcd"));
    }
}
