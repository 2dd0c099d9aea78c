//! Recursive-descent parser for the XDR language subset used by the
//! NFSv4 RFCs (RFC 4506 section 6.3, minus `program` blocks).

use super::lexer::{tokenize, Error, Loc, Result, Tok};

/// A constant as written: a literal or the name of a `const` / enum member.
#[derive(Debug, Clone)]
pub enum Value {
    Num(i128),
    Name(String),
}

#[derive(Debug, Clone)]
pub struct ValueRef {
    pub value: Value,
    pub loc: Loc,
}

/// The type part of a declaration, before `*`, `[N]` or `<N>` apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseType {
    Int,
    UInt,
    Hyper,
    UHyper,
    Bool,
    /// Only valid with `[N]` or `<N>`.
    Opaque,
    /// Only valid with `<N>`.
    String,
    /// A typedef, struct, enum or union name.
    Named(String),
}

#[derive(Debug, Clone)]
pub enum DeclKind {
    /// `T x`
    Plain,
    /// `T x[N]`
    Fixed(ValueRef),
    /// `T x<N>` / `T x<>`
    Var(Option<ValueRef>),
    /// `T *x`
    Optional,
}

/// A non-void declaration: `<base> name` with its array/pointer kind.
#[derive(Debug, Clone)]
pub struct Decl {
    pub name: String,
    pub base: BaseType,
    pub kind: DeclKind,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub value: ValueRef,
    pub loc: Loc,
}

/// One `case A: case B: decl;` group; `decl` is `None` for `void`.
#[derive(Debug, Clone)]
pub struct Arm {
    pub labels: Vec<ValueRef>,
    pub decl: Option<Decl>,
}

#[derive(Debug, Clone)]
pub struct Union {
    pub disc: Decl,
    pub arms: Vec<Arm>,
    /// `default: decl;` — `Some(None)` for `default: void;`.
    pub default: Option<Option<Decl>>,
}

#[derive(Debug, Clone)]
pub enum Body {
    Const(ValueRef),
    Typedef(Decl),
    Enum(Vec<Member>),
    Struct(Vec<Decl>),
    Union(Union),
}

/// A top-level definition. Anonymous inline `struct {…}`, `enum {…}` and
/// `union switch …` type specifiers are hoisted into definitions of
/// their own (see [`Parser::declaration`]).
#[derive(Debug, Clone)]
pub struct Def {
    pub name: String,
    pub loc: Loc,
    pub body: Body,
}

/// Parses one spec file into definitions, appended to `defs`.
pub fn parse_file(file: &str, src: &str, defs: &mut Vec<Def>) -> Result<()> {
    let toks = tokenize(file, src)?;
    let mut p = Parser { toks, pos: 0, defs };
    while p.peek() != &Tok::Eof {
        p.definition()?;
    }
    Ok(())
}

/// A type specifier that is either a reference or an inline body still
/// waiting for the declaration's name to get one.
enum TypeSpec {
    Base(BaseType),
    Inline(Body, Loc),
}

struct Parser<'d> {
    toks: Vec<(Tok, Loc)>,
    pos: usize,
    defs: &'d mut Vec<Def>,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }

    fn loc(&self) -> Loc {
        self.toks[self.pos].1.clone()
    }

    fn bump(&mut self) -> (Tok, Loc) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == kw)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.is_kw(kw);
        if found {
            self.bump();
        }
        found
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let found = self.peek() == &Tok::Punct(c);
        if found {
            self.bump();
        }
        found
    }

    fn unexpected<T>(&self, wanted: &str) -> Result<T> {
        Err(Error::at(
            &self.loc(),
            format!("expected {wanted}, found {}", self.peek()),
        ))
    }

    fn expect_punct(&mut self, c: char) -> Result<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            self.unexpected(&format!("`{c}`"))
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            self.unexpected(&format!("`{kw}`"))
        }
    }

    /// An identifier that is not an XDR keyword.
    fn ident(&mut self, what: &str) -> Result<(String, Loc)> {
        match self.peek() {
            Tok::Ident(s) if !is_keyword(s) => {
                let s = s.clone();
                let loc = self.bump().1;
                Ok((s, loc))
            }
            _ => self.unexpected(what),
        }
    }

    /// `constant | identifier`, with an optional leading minus on numbers.
    fn value(&mut self) -> Result<ValueRef> {
        let loc = self.loc();
        let neg = self.eat_punct('-');
        let value = match self.peek().clone() {
            Tok::Num(n) => {
                self.bump();
                Value::Num(if neg { -n } else { n })
            }
            Tok::Ident(s) if !neg && !is_keyword(&s) => {
                self.bump();
                Value::Name(s)
            }
            _ => return self.unexpected("a number or constant name"),
        };
        Ok(ValueRef { value, loc })
    }

    fn definition(&mut self) -> Result<()> {
        let loc = self.loc();
        let kw = match self.peek() {
            Tok::Ident(s) => s.clone(),
            _ => return self.unexpected("a definition (const, typedef, enum, struct, union)"),
        };
        self.bump();
        match kw.as_str() {
            "const" => {
                let (name, loc) = self.ident("a constant name")?;
                self.expect_punct('=')?;
                let v = self.value()?;
                self.push(name, loc, Body::Const(v));
            }
            "typedef" => {
                let decl = self
                    .declaration(None)?
                    .ok_or_else(|| Error::at(&loc, "`typedef void` is meaningless; remove it"))?;
                // `typedef struct {…} name;` already defined `name` itself.
                if decl.base != BaseType::Named(decl.name.clone()) {
                    let (name, loc) = (decl.name.clone(), decl.loc.clone());
                    self.push(name, loc, Body::Typedef(decl));
                }
            }
            "enum" | "struct" | "union" => {
                let (name, loc) = self.ident(&format!("a name after `{kw}`"))?;
                let body = self.type_body(&kw, &name)?;
                self.push(name, loc, body);
            }
            "program" => {
                return Err(Error::at(
                    &loc,
                    "`program`/`version` blocks are not supported: list program \
                     and procedure numbers as `const` definitions instead",
                ))
            }
            _ => {
                return Err(Error::at(
                    &loc,
                    format!(
                        "expected a definition (const, typedef, enum, struct, union), found `{kw}`"
                    ),
                ))
            }
        }
        self.expect_punct(';')
    }

    fn push(&mut self, name: String, loc: Loc, body: Body) {
        self.defs.push(Def { name, loc, body });
    }

    /// The `{…}` (or `switch (…) {…}`) part of an enum, struct or union;
    /// `owner` names hoisted inline types declared inside it.
    fn type_body(&mut self, kw: &str, owner: &str) -> Result<Body> {
        match kw {
            "enum" => self.enum_body(),
            "struct" => self.struct_body(owner),
            _ => self.union_body(owner),
        }
    }

    fn enum_body(&mut self) -> Result<Body> {
        self.expect_punct('{')?;
        let mut members = Vec::new();
        loop {
            let (name, loc) = self.ident("an enum member name")?;
            self.expect_punct('=')?;
            let value = self.value()?;
            members.push(Member { name, value, loc });
            if !self.eat_punct(',') || self.peek() == &Tok::Punct('}') {
                break;
            }
        }
        self.expect_punct('}')?;
        Ok(Body::Enum(members))
    }

    fn struct_body(&mut self, owner: &str) -> Result<Body> {
        self.expect_punct('{')?;
        let mut fields = Vec::new();
        while !self.eat_punct('}') {
            let loc = self.loc();
            match self.declaration(Some(owner))? {
                Some(d) => fields.push(d),
                None => return Err(Error::at(&loc, "`void` is not allowed in a struct")),
            }
            self.expect_punct(';')?;
        }
        Ok(Body::Struct(fields))
    }

    fn union_body(&mut self, owner: &str) -> Result<Body> {
        self.expect_kw("switch")?;
        self.expect_punct('(')?;
        let loc = self.loc();
        let disc = self
            .declaration(Some(owner))?
            .ok_or_else(|| Error::at(&loc, "a union discriminant cannot be `void`"))?;
        self.expect_punct(')')?;
        self.expect_punct('{')?;
        let mut arms = Vec::new();
        let mut default = None;
        while !self.eat_punct('}') {
            if self.eat_kw("default") {
                let loc = self.loc();
                self.expect_punct(':')?;
                if default.is_some() {
                    return Err(Error::at(&loc, "second `default` arm"));
                }
                default = Some(self.declaration(Some(owner))?);
            } else if self.is_kw("case") {
                let mut labels = Vec::new();
                while self.eat_kw("case") {
                    labels.push(self.value()?);
                    self.expect_punct(':')?;
                }
                let decl = self.declaration(Some(owner))?;
                arms.push(Arm { labels, decl });
            } else {
                return self.unexpected("`case`, `default` or `}`");
            }
            self.expect_punct(';')?;
        }
        if arms.is_empty() {
            return Err(Error::at(&self.loc(), "a union needs at least one `case`"));
        }
        Ok(Body::Union(Union {
            disc,
            arms,
            default,
        }))
    }

    /// A declaration, or `None` for `void`. `owner` is the enclosing
    /// definition (`None` at typedef level) and names hoisted inline types:
    /// `struct {…} x` inside `foo` becomes a struct `foo_x`; directly
    /// under a typedef with a plain name it becomes that name.
    fn declaration(&mut self, owner: Option<&str>) -> Result<Option<Decl>> {
        if self.eat_kw("void") {
            return Ok(None);
        }
        let spec = self.type_spec()?;
        let optional = self.eat_punct('*');
        let (name, loc) = self.ident("a declaration name")?;
        let kind = if optional {
            DeclKind::Optional
        } else if self.eat_punct('[') {
            let n = self.value()?;
            self.expect_punct(']')?;
            DeclKind::Fixed(n)
        } else if self.eat_punct('<') {
            let n = if self.peek() == &Tok::Punct('>') {
                None
            } else {
                Some(self.value()?)
            };
            self.expect_punct('>')?;
            DeclKind::Var(n)
        } else {
            DeclKind::Plain
        };
        let base = match spec {
            TypeSpec::Base(b) => b,
            TypeSpec::Inline(body, body_loc) => {
                let hoisted = match owner {
                    None if matches!(kind, DeclKind::Plain) => name.clone(),
                    None => format!("{name}_t"),
                    Some(o) => format!("{o}_{name}"),
                };
                self.push(hoisted.clone(), body_loc, body);
                BaseType::Named(hoisted)
            }
        };
        match (&base, &kind) {
            (BaseType::Opaque, DeclKind::Fixed(_) | DeclKind::Var(_)) => {}
            (BaseType::Opaque, _) => {
                return Err(Error::at(&loc, "`opaque` needs a size: `x[N]` or `x<N>`"))
            }
            (BaseType::String, DeclKind::Var(_)) => {}
            (BaseType::String, _) => {
                return Err(Error::at(
                    &loc,
                    "`string` must be variable-length: `x<N>` or `x<>`",
                ))
            }
            _ => {}
        }
        Ok(Some(Decl {
            name,
            base,
            kind,
            loc,
        }))
    }

    fn type_spec(&mut self) -> Result<TypeSpec> {
        let loc = self.loc();
        let Tok::Ident(word) = self.peek().clone() else {
            return self.unexpected("a type");
        };
        self.bump();
        let base = match word.as_str() {
            "int" => BaseType::Int,
            "hyper" => BaseType::Hyper,
            "unsigned" => {
                // `unsigned` alone means `unsigned int` (used by RFC 7530).
                if self.eat_kw("hyper") {
                    BaseType::UHyper
                } else {
                    self.eat_kw("int");
                    BaseType::UInt
                }
            }
            "bool" => BaseType::Bool,
            "opaque" => BaseType::Opaque,
            "string" => BaseType::String,
            "float" | "double" | "quadruple" => {
                return Err(Error::at(
                    &loc,
                    format!("`{word}` is not supported (NFSv4 has no floating point)"),
                ))
            }
            "struct" | "enum" | "union" => {
                let inline = match word.as_str() {
                    "union" => self.is_kw("switch"),
                    _ => self.peek() == &Tok::Punct('{'),
                };
                if !inline {
                    // C-style reference `struct foo x;` (seen in RPC specs).
                    return Ok(TypeSpec::Base(BaseType::Named(
                        self.ident("a type name")?.0,
                    )));
                }
                // The name is not known yet; nested inline types inside this
                // body are named after a placeholder fixed up below.
                let owner = format!("__anon{}", self.pos);
                let first_new = self.defs.len();
                let body = self.type_body(&word, &owner)?;
                if self.defs.len() > first_new {
                    return Err(Error::at(
                        &loc,
                        "inline types nested inside inline types are not supported; \
                         give the inner type a name",
                    ));
                }
                return Ok(TypeSpec::Inline(body, loc));
            }
            _ if is_keyword(&word) => {
                return Err(Error::at(&loc, format!("expected a type, found `{word}`")))
            }
            _ => BaseType::Named(word),
        };
        Ok(TypeSpec::Base(base))
    }
}

/// Reserved words of the XDR language (RFC 4506 section 6.4).
fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "bool"
            | "case"
            | "const"
            | "default"
            | "double"
            | "quadruple"
            | "enum"
            | "float"
            | "hyper"
            | "int"
            | "opaque"
            | "string"
            | "struct"
            | "switch"
            | "typedef"
            | "union"
            | "unsigned"
            | "void"
    )
}
