//! OData `$filter` as Graph's directory objects accept it: `eq`, `ne`, `in (...)`, `and`,
//! `or`, `not`, `startswith`, `endswith`, `prop/any(x:x eq '...')`, string literals with doubled
//! single quotes, `true`/`false`/`null`. String matches are case-insensitive, like Graph's.
//!
//! "Advanced queries" (lambda `any`, `ne`, `not`, `endswith`, `eq null`) need
//! `ConsistencyLevel: eventual` and `$count=true`; [`Filter::advanced`] tells the caller.

use super::wire::GErr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Bool,
    List,
}

/// A property value while evaluating.
pub(super) enum Val {
    Str(Option<String>),
    Bool(bool),
    List(Vec<String>),
}

#[derive(Clone, Debug)]
enum Lit {
    Str(String),
    Bool(bool),
    Null,
}

#[derive(Clone, Debug)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Eq(&'static str, Lit, bool),
    In(&'static str, Vec<Lit>),
    StartsWith(&'static str, String),
    EndsWith(&'static str, String),
    AnyEq(&'static str, String),
    AnyStartsWith(&'static str, String),
}

/// A parsed filter.
#[derive(Clone, Debug)]
pub(super) struct Filter {
    expr: Expr,
    /// Uses an advanced query feature.
    pub advanced: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Colon,
    Slash,
    Str(String),
    Word(String),
}

fn syntax(src: &str, pos: usize) -> GErr {
    GErr::bad(format!(
        "Invalid filter clause: Syntax error at position {pos} in '{src}'."
    ))
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, GErr> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Tok::LParen, i));
                i += 1
            }
            ')' => {
                out.push((Tok::RParen, i));
                i += 1
            }
            ',' => {
                out.push((Tok::Comma, i));
                i += 1
            }
            ':' => {
                out.push((Tok::Colon, i));
                i += 1
            }
            '/' => {
                out.push((Tok::Slash, i));
                i += 1
            }
            '\'' => {
                let start = i;
                i += 1;
                let mut s = String::new();
                loop {
                    if i >= chars.len() {
                        return Err(GErr::bad(format!(
                            "Invalid filter clause: There is an unterminated string literal at position {start} in '{src}'."
                        )));
                    }
                    if chars[i] == '\'' {
                        if i + 1 < chars.len() && chars[i + 1] == '\'' {
                            s.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                out.push((Tok::Str(s), start));
            }
            c if c.is_alphanumeric() || "_.$@-".contains(c) => {
                let start = i;
                let mut s = String::new();
                while i < chars.len() && (chars[i].is_alphanumeric() || "_.$@-".contains(chars[i]))
                {
                    s.push(chars[i]);
                    i += 1;
                }
                out.push((Tok::Word(s), start));
            }
            _ => return Err(syntax(src, i)),
        }
    }
    Ok(out)
}

/// The properties a filter may name: canonical name and kind, looked up case-insensitively.
pub(super) type Schema = fn(&str) -> Option<(&'static str, Kind)>;

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    schema: Schema,
    advanced: bool,
    lambda_var: Option<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }
    fn here(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|(_, p)| *p)
            .unwrap_or(self.src.chars().count())
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }
    fn err(&self) -> GErr {
        syntax(self.src, self.here())
    }
    fn expect(&mut self, t: Tok) -> Result<(), GErr> {
        if self.peek() == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err())
        }
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn or(&mut self) -> Result<Expr, GErr> {
        let mut e = self.and()?;
        while self.is_word("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, GErr> {
        let mut e = self.unary()?;
        while self.is_word("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }
    fn unary(&mut self) -> Result<Expr, GErr> {
        if self.is_word("not") {
            self.pos += 1;
            self.advanced = true;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }
    fn prop(&mut self, name: &str) -> Result<(&'static str, Kind), GErr> {
        (self.schema)(name).ok_or_else(|| {
            GErr::bad(format!(
                "Could not find a property named '{name}' on type 'microsoft.graph.user'."
            ))
        })
    }
    fn string(&mut self) -> Result<String, GErr> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(self.err())
            }
        }
    }
    fn literal(&mut self) -> Result<Lit, GErr> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Lit::Null),
            _ => {
                self.pos -= 1;
                Err(self.err())
            }
        }
    }
    fn check_lit(&self, prop: &str, kind: Kind, lit: &Lit) -> Result<(), GErr> {
        match (kind, lit) {
            (Kind::Str, Lit::Str(_)) | (Kind::Bool, Lit::Bool(_)) | (_, Lit::Null) => Ok(()),
            (Kind::List, _) => Err(GErr::unsupported(format!(
                "Unsupported or invalid query filter clause specified for property '{prop}' of resource 'User'."
            ))),
            _ => Err(GErr::bad(
                "A binary operator with incompatible types was detected.",
            )),
        }
    }
    fn primary(&mut self) -> Result<Expr, GErr> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::Word(w)) => {
                let lw = w.to_ascii_lowercase();
                if (lw == "startswith" || lw == "endswith") && self.peek() == Some(&Tok::LParen) {
                    self.pos += 1;
                    let name = match self.next() {
                        Some(Tok::Word(n)) => n,
                        _ => {
                            self.pos -= 1;
                            return Err(self.err());
                        }
                    };
                    self.expect(Tok::Comma)?;
                    let v = self.string()?;
                    self.expect(Tok::RParen)?;
                    if let Some(var) = &self.lambda_var {
                        if var == &name {
                            return Ok(Expr::StartsWith("$it", v));
                        }
                    }
                    let (p, kind) = self.prop(&name)?;
                    if kind != Kind::Str {
                        return Err(GErr::unsupported(format!(
                            "Unsupported or invalid query filter clause specified for property '{p}' of resource 'User'."
                        )));
                    }
                    return Ok(if lw == "startswith" {
                        Expr::StartsWith(p, v)
                    } else {
                        self.advanced = true;
                        Expr::EndsWith(p, v)
                    });
                }
                if self.peek() == Some(&Tok::LParen) {
                    return Err(GErr::unsupported(format!(
                        "Unsupported query function '{w}'."
                    )));
                }
                // Inside a lambda: `x eq '...'`.
                if let Some(var) = self.lambda_var.clone() {
                    if var == w {
                        if !self.is_word("eq") {
                            return Err(GErr::unsupported(
                                "Unsupported operator in a lambda expression: only 'eq' and startswith are supported.",
                            ));
                        }
                        self.pos += 1;
                        let v = self.string()?;
                        return Ok(Expr::Eq("$it", Lit::Str(v), false));
                    }
                }
                let (p, kind) = self.prop(&w)?;
                if self.peek() == Some(&Tok::Slash) {
                    self.pos += 1;
                    let f = match self.next() {
                        Some(Tok::Word(f)) => f.to_ascii_lowercase(),
                        _ => {
                            self.pos -= 1;
                            return Err(self.err());
                        }
                    };
                    if f != "any" {
                        return Err(GErr::unsupported(format!(
                            "Unsupported query: '{f}' lambda on '{p}'."
                        )));
                    }
                    if kind != Kind::List {
                        return Err(GErr::bad(format!(
                            "The 'any' lambda needs a collection; '{p}' is not one."
                        )));
                    }
                    self.expect(Tok::LParen)?;
                    let var = match self.next() {
                        Some(Tok::Word(v)) => v,
                        _ => {
                            self.pos -= 1;
                            return Err(self.err());
                        }
                    };
                    self.expect(Tok::Colon)?;
                    self.lambda_var = Some(var);
                    let body = self.primary();
                    self.lambda_var = None;
                    let body = body?;
                    self.expect(Tok::RParen)?;
                    self.advanced = true;
                    return match body {
                        Expr::Eq("$it", Lit::Str(v), false) => Ok(Expr::AnyEq(p, v)),
                        Expr::StartsWith("$it", v) => Ok(Expr::AnyStartsWith(p, v)),
                        _ => Err(GErr::unsupported("Unsupported lambda expression.")),
                    };
                }
                let op = match self.next() {
                    Some(Tok::Word(op)) => op.to_ascii_lowercase(),
                    _ => {
                        self.pos -= 1;
                        return Err(self.err());
                    }
                };
                match op.as_str() {
                    "eq" | "ne" => {
                        let lit = self.literal()?;
                        self.check_lit(p, kind, &lit)?;
                        if op == "ne" || matches!(lit, Lit::Null) {
                            self.advanced = true;
                        }
                        Ok(Expr::Eq(p, lit, op == "ne"))
                    }
                    "in" => {
                        self.expect(Tok::LParen)?;
                        let mut lits = vec![self.literal()?];
                        while self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                            lits.push(self.literal()?);
                        }
                        self.expect(Tok::RParen)?;
                        for l in &lits {
                            self.check_lit(p, kind, l)?;
                        }
                        if lits.len() > 15 {
                            return Err(GErr::unsupported(
                                "Too many values in the 'in' operator: at most 15 are allowed.",
                            ));
                        }
                        Ok(Expr::In(p, lits))
                    }
                    "gt" | "ge" | "lt" | "le" | "has" => Err(GErr::unsupported(format!(
                        "Unsupported or invalid query filter clause specified for property '{p}' of resource 'User'."
                    ))),
                    _ => {
                        self.pos -= 1;
                        Err(self.err())
                    }
                }
            }
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(self.err())
            }
        }
    }
}

impl Filter {
    pub(super) fn parse(src: &str, schema: Schema) -> Result<Filter, GErr> {
        let toks = tokenize(src)?;
        if toks.is_empty() {
            return Err(syntax(src, 0));
        }
        let mut p = Parser {
            src,
            toks,
            pos: 0,
            schema,
            advanced: false,
            lambda_var: None,
        };
        let expr = p.or()?;
        if p.pos < p.toks.len() {
            return Err(p.err());
        }
        Ok(Filter {
            expr,
            advanced: p.advanced,
        })
    }

    /// Whether an object matches; `get` returns a property by canonical name.
    pub(super) fn matches(&self, get: &dyn Fn(&str) -> Val) -> bool {
        eval(&self.expr, get)
    }
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn lit_matches(v: &Val, lit: &Lit) -> bool {
    match (v, lit) {
        (Val::Str(Some(s)), Lit::Str(l)) => lower(s) == lower(l),
        (Val::Str(None), Lit::Null) => true,
        (Val::Bool(b), Lit::Bool(l)) => b == l,
        (Val::List(l), Lit::Null) => l.is_empty(),
        _ => false,
    }
}

fn eval(e: &Expr, get: &dyn Fn(&str) -> Val) -> bool {
    match e {
        Expr::Or(a, b) => eval(a, get) || eval(b, get),
        Expr::And(a, b) => eval(a, get) && eval(b, get),
        Expr::Not(a) => !eval(a, get),
        Expr::Eq(p, lit, neg) => lit_matches(&get(p), lit) != *neg,
        Expr::In(p, lits) => {
            let v = get(p);
            lits.iter().any(|l| lit_matches(&v, l))
        }
        Expr::StartsWith(p, s) => {
            matches!(get(p), Val::Str(Some(v)) if lower(&v).starts_with(&lower(s)))
        }
        Expr::EndsWith(p, s) => {
            matches!(get(p), Val::Str(Some(v)) if lower(&v).ends_with(&lower(s)))
        }
        Expr::AnyEq(p, s) => match get(p) {
            Val::List(l) => l.iter().any(|x| lower(x) == lower(s)),
            _ => false,
        },
        Expr::AnyStartsWith(p, s) => match get(p) {
            Val::List(l) => l.iter().any(|x| lower(x).starts_with(&lower(s))),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(n: &str) -> Option<(&'static str, Kind)> {
        match n.to_ascii_lowercase().as_str() {
            "mail" => Some(("mail", Kind::Str)),
            "userprincipalname" => Some(("userPrincipalName", Kind::Str)),
            "othermails" => Some(("otherMails", Kind::List)),
            "accountenabled" => Some(("accountEnabled", Kind::Bool)),
            _ => None,
        }
    }

    fn get(p: &str) -> Val {
        match p {
            "mail" => Val::Str(Some("Liam.O'Connor@x.example".into())),
            "userPrincipalName" => Val::Str(Some("liam@x.example".into())),
            "otherMails" => Val::List(vec!["A@B.example".into()]),
            "accountEnabled" => Val::Bool(true),
            _ => Val::Str(None),
        }
    }

    fn m(src: &str) -> bool {
        Filter::parse(src, schema).unwrap().matches(&get)
    }

    #[test]
    fn forms() {
        assert!(m("mail eq 'liam.o''connor@x.example'"));
        assert!(m("userPrincipalName in ('a@b', 'LIAM@x.example')"));
        assert!(m("otherMails/any(x:x eq 'a@b.example')"));
        assert!(m("mail eq 'nope' or accountEnabled eq true"));
        assert!(!m("mail eq 'nope' and accountEnabled eq true"));
        assert!(m("startswith(mail,'liam')"));
        assert!(
            Filter::parse("otherMails/any(x:x eq 'a')", schema)
                .unwrap()
                .advanced
        );
        assert!(!Filter::parse("mail eq 'a'", schema).unwrap().advanced);
        assert!(Filter::parse("mail eq 'a", schema).is_err());
        assert!(Filter::parse("foo eq 'a'", schema).is_err());
        assert!(Filter::parse("mail eq", schema).is_err());
        assert!(Filter::parse("otherMails eq 'a'", schema).is_err());
    }
}
