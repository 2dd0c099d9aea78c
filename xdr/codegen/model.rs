//! Name resolution and semantic checks over the parsed definitions:
//! constant values, typedef chains ("shapes"), recursion analysis.

use std::collections::{HashMap, HashSet};

use super::lexer::{Error, Loc, Result};
use super::parser::{BaseType, Body, Decl, DeclKind, Def, Union, Value, ValueRef};

/// What a declaration is on the wire once every typedef is expanded.
/// The emitter picks the codec call from the shape, never from the Rust
/// type (a `Vec<u8>` may be `opaque<>` or `unsigned int<>`-of-bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Int,
    UInt,
    Hyper,
    UHyper,
    Bool,
    /// A struct, enum or union: coded through its `Pack`/`Unpack` impl.
    Named(String),
    OpaqueFixed(usize),
    /// `opaque<max>` and `string<max>` (identical on the wire).
    OpaqueVar(Option<u32>),
    ArrayFixed(Box<Shape>, usize),
    ArrayVar(Box<Shape>, Option<u32>),
    Optional(Box<Shape>),
}

impl Shape {
    /// Calls `f` on each struct/enum/union name this shape refers to, with
    /// `true` if the value is stored inline (not behind a `Vec`/`Box`).
    fn visit_named(&self, inline: bool, f: &mut impl FnMut(&str, bool)) {
        match self {
            Shape::Named(n) => f(n, inline),
            Shape::ArrayFixed(s, _) => s.visit_named(inline, f),
            Shape::ArrayVar(s, _) | Shape::Optional(s) => s.visit_named(false, f),
            _ => {}
        }
    }
}

/// Rust type of a union discriminant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscType {
    Int,
    UInt,
    Bool,
    Enum(String),
}

/// One union case label, resolved.
#[derive(Debug, Clone)]
pub struct Label {
    /// Variant name: the label as written, `V<n>` for numbers.
    pub variant: String,
    pub value: i128,
    /// For enum discriminants: the enum member the label denotes.
    pub member: Option<String>,
}

pub struct Model {
    pub defs: Vec<Def>,
    types: HashMap<String, usize>,
    /// Resolved values of `const`s and enum members, by name. A name may be
    /// defined more than once (members of different enums) only with the
    /// same value; `value_defs` counts definitions.
    values: HashMap<String, i128>,
    value_defs: HashMap<String, usize>,
    /// Structs whose last field is an optional pointer to themselves.
    linked_lists: HashSet<String>,
    /// Types that can contain themselves other than as a list tail.
    recursive: HashSet<String>,
    defaultable: HashMap<String, bool>,
}

impl Model {
    pub fn new(defs: Vec<Def>) -> Result<Model> {
        let mut m = Model {
            defs,
            types: HashMap::new(),
            values: HashMap::new(),
            value_defs: HashMap::new(),
            linked_lists: HashSet::new(),
            recursive: HashSet::new(),
            defaultable: HashMap::new(),
        };
        m.index_types()?;
        m.resolve_values()?;
        m.check_types()?;
        m.analyse_recursion()?;
        let names: Vec<String> = m.types.keys().cloned().collect();
        for n in names {
            m.compute_defaultable(&n, &mut HashSet::new());
        }
        Ok(m)
    }

    fn index_types(&mut self) -> Result<()> {
        for (i, d) in self.defs.iter().enumerate() {
            if matches!(d.body, Body::Const(_)) {
                continue;
            }
            check_rust_name(&d.name, &d.loc)?;
            if let Some(&prev) = self.types.get(&d.name) {
                return Err(Error::at(
                    &d.loc,
                    format!(
                        "type `{}` is already defined at {}",
                        d.name, self.defs[prev].loc
                    ),
                ));
            }
            self.types.insert(d.name.clone(), i);
        }
        Ok(())
    }

    /// Resolves every `const` and enum member, in any order: a value may
    /// name a constant defined later (or in another file).
    fn resolve_values(&mut self) -> Result<()> {
        // name -> definition sites (value expression, location, is a `const`).
        let mut pending: HashMap<String, Vec<(ValueRef, Loc)>> = HashMap::new();
        let mut consts: HashMap<String, Loc> = HashMap::new();
        for d in &self.defs {
            let mut define = |name: &String, v: &ValueRef, loc: &Loc, is_const: bool| {
                // Members of different enums may share a name (with the same
                // value, checked below); a `const` must be unique.
                if let Some(prev) = consts.get(name) {
                    return Err(Error::at(
                        loc,
                        format!("`{name}` is already defined (as a constant) at {prev}"),
                    ));
                }
                let sites = pending.entry(name.clone()).or_default();
                if let (true, Some((_, prev))) = (is_const, sites.first()) {
                    return Err(Error::at(
                        loc,
                        format!("`{name}` is already defined at {prev}"),
                    ));
                }
                if is_const {
                    consts.insert(name.clone(), loc.clone());
                }
                sites.push((v.clone(), loc.clone()));
                Ok(())
            };
            match &d.body {
                Body::Const(v) => {
                    check_rust_name(&d.name, &d.loc)?;
                    define(&d.name, v, &d.loc, true)?
                }
                Body::Enum(members) => {
                    let mut seen = HashSet::new();
                    for m in members {
                        if !seen.insert(&m.name) {
                            return Err(Error::at(
                                &m.loc,
                                format!("duplicate member `{}`", m.name),
                            ));
                        }
                        define(&m.name, &m.value, &m.loc, false)?;
                    }
                }
                _ => {}
            }
        }
        let names: Vec<String> = pending.keys().cloned().collect();
        for name in names {
            self.resolve_name(&name, &pending, &mut Vec::new())?;
            self.value_defs.insert(name.clone(), pending[&name].len());
        }
        Ok(())
    }

    fn resolve_name(
        &mut self,
        name: &str,
        pending: &HashMap<String, Vec<(ValueRef, Loc)>>,
        stack: &mut Vec<String>,
    ) -> Result<i128> {
        if let Some(&v) = self.values.get(name) {
            return Ok(v);
        }
        let sites = &pending[name];
        if stack.iter().any(|s| s == name) {
            return Err(Error::at(
                &sites[0].1,
                format!("`{name}` is defined in terms of itself"),
            ));
        }
        stack.push(name.to_string());
        let mut result = None;
        for (v, loc) in sites {
            let value = match &v.value {
                Value::Num(n) => *n,
                Value::Name(other) if pending.contains_key(other) => {
                    self.resolve_name(other, pending, stack)?
                }
                Value::Name(other) => {
                    return Err(Error::at(&v.loc, format!("unknown constant `{other}`")))
                }
            };
            match result {
                Some((prev, ref prev_loc)) if prev != value => {
                    return Err(Error::at(
                        loc,
                        format!(
                            "`{name}` = {value} conflicts with `{name}` = {prev} at {prev_loc}"
                        ),
                    ))
                }
                _ => result = Some((value, loc.clone())),
            }
        }
        stack.pop();
        let value = result.map_or(0, |(v, _)| v);
        self.values.insert(name.to_string(), value);
        Ok(value)
    }

    /// The value of a constant expression.
    pub fn value(&self, v: &ValueRef) -> Result<i128> {
        match &v.value {
            Value::Num(n) => Ok(*n),
            Value::Name(n) if n == "TRUE" => Ok(1),
            Value::Name(n) if n == "FALSE" => Ok(0),
            Value::Name(n) => self
                .values
                .get(n)
                .copied()
                .ok_or_else(|| Error::at(&v.loc, format!("unknown constant `{n}`"))),
        }
    }

    /// True if `name` is defined exactly once as a const or enum member,
    /// so that a module-level `pub const` for it is unambiguous.
    pub fn value_is_unique(&self, name: &str) -> bool {
        self.value_defs.get(name) == Some(&1)
    }

    pub fn def(&self, name: &str) -> Option<&Def> {
        self.types.get(name).map(|&i| &self.defs[i])
    }

    /// A size in `[N]` or `<N>`: non-negative and at most 2^32-1.
    fn size(&self, v: &ValueRef) -> Result<u32> {
        let n = self.value(v)?;
        u32::try_from(n).map_err(|_| Error::at(&v.loc, format!("size {n} is out of range")))
    }

    /// The wire shape of a declaration, expanding typedef chains.
    pub fn shape(&self, d: &Decl) -> Result<Shape> {
        self.shape_depth(d, 0, &d.loc)
    }

    /// `origin` is where the expansion started, to report loops there.
    fn shape_depth(&self, d: &Decl, depth: usize, origin: &Loc) -> Result<Shape> {
        if depth > 100 {
            return Err(Error::at(origin, "typedef chain loops"));
        }
        let base = match &d.base {
            BaseType::Int => Shape::Int,
            BaseType::UInt => Shape::UInt,
            BaseType::Hyper => Shape::Hyper,
            BaseType::UHyper => Shape::UHyper,
            BaseType::Bool => Shape::Bool,
            BaseType::Opaque | BaseType::String => {
                // The parser only accepts these with [N] (opaque) or <N>.
                return Ok(match &d.kind {
                    DeclKind::Fixed(n) => Shape::OpaqueFixed(self.size(n)? as usize),
                    DeclKind::Var(max) => Shape::OpaqueVar(self.max(max)?),
                    _ => return Err(Error::at(&d.loc, "opaque/string without a size")),
                });
            }
            BaseType::Named(n) => match self.def(n).map(|def| &def.body) {
                Some(Body::Typedef(inner)) => self.shape_depth(inner, depth + 1, origin)?,
                Some(Body::Struct(_) | Body::Enum(_) | Body::Union(_)) => Shape::Named(n.clone()),
                _ => return Err(Error::at(&d.loc, format!("unknown type `{n}`"))),
            },
        };
        Ok(match &d.kind {
            DeclKind::Plain => base,
            DeclKind::Fixed(n) => Shape::ArrayFixed(Box::new(base), self.size(n)? as usize),
            DeclKind::Var(max) => Shape::ArrayVar(Box::new(base), self.max(max)?),
            DeclKind::Optional => Shape::Optional(Box::new(base)),
        })
    }

    fn max(&self, max: &Option<ValueRef>) -> Result<Option<u32>> {
        max.as_ref().map(|m| self.size(m)).transpose()
    }

    /// The Rust type of a discriminant, which must be int, unsigned int,
    /// bool or an enum (possibly through typedefs).
    pub fn disc_type(&self, u: &Union) -> Result<DiscType> {
        Ok(match self.shape(&u.disc)? {
            Shape::Int => DiscType::Int,
            Shape::UInt => DiscType::UInt,
            Shape::Bool => DiscType::Bool,
            Shape::Named(n) if matches!(self.def(&n).map(|d| &d.body), Some(Body::Enum(_))) => {
                DiscType::Enum(n)
            }
            _ => {
                return Err(Error::at(
                    &u.disc.loc,
                    "a union discriminant must be int, unsigned int, bool or an enum",
                ))
            }
        })
    }

    /// Resolves the case labels of one arm, checking they fit the
    /// discriminant type.
    pub fn labels(&self, disc: &DiscType, labels: &[ValueRef]) -> Result<Vec<Label>> {
        labels.iter().map(|l| self.label(disc, l)).collect()
    }

    fn label(&self, disc: &DiscType, l: &ValueRef) -> Result<Label> {
        let value = self.value(l)?;
        let variant = match &l.value {
            Value::Name(n) => n.clone(),
            Value::Num(n) if *n < 0 => format!("Vm{}", -n),
            Value::Num(n) => format!("V{n}"),
        };
        check_ident(&variant, &l.loc)?;
        let fits = match disc {
            DiscType::Int => i32::try_from(value).is_ok(),
            DiscType::UInt => u32::try_from(value).is_ok(),
            DiscType::Bool => matches!(&l.value, Value::Name(n) if n == "TRUE" || n == "FALSE"),
            DiscType::Enum(_) => true,
        };
        if !fits {
            return Err(Error::at(
                &l.loc,
                format!("case label {value} does not fit the discriminant type"),
            ));
        }
        let mut member = None;
        if let DiscType::Enum(e) = disc {
            let Some(Body::Enum(members)) = self.def(e).map(|d| &d.body) else {
                return Err(Error::at(&l.loc, format!("`{e}` is not an enum")));
            };
            // A member name of the enum, or any constant equal to a member.
            let named = match &l.value {
                Value::Name(n) => members.iter().find(|m| &m.name == n),
                Value::Num(_) => None,
            };
            let found = named.or_else(|| {
                members
                    .iter()
                    .find(|m| self.value(&m.value).ok() == Some(value))
            });
            match found {
                Some(m) => member = Some(m.name.clone()),
                None => {
                    return Err(Error::at(
                        &l.loc,
                        format!("case label is not a member of enum `{e}`"),
                    ))
                }
            }
        }
        Ok(Label {
            variant,
            value,
            member,
        })
    }

    /// Checks every declaration resolves, enum values fit in i32 without
    /// duplicates, and union labels are valid and distinct.
    fn check_types(&self) -> Result<()> {
        for d in &self.defs {
            match &d.body {
                Body::Const(_) => {}
                Body::Typedef(decl) => {
                    self.shape(decl)?;
                }
                Body::Enum(members) => {
                    let mut seen: HashMap<i128, &str> = HashMap::new();
                    for m in members {
                        check_rust_name(&m.name, &m.loc)?;
                        let v = self.value(&m.value)?;
                        if i32::try_from(v).is_err() {
                            return Err(Error::at(
                                &m.loc,
                                format!("enum value {v} does not fit in an int"),
                            ));
                        }
                        if let Some(prev) = seen.insert(v, &m.name) {
                            return Err(Error::at(
                                &m.loc,
                                format!("value {v} is also used by `{prev}`"),
                            ));
                        }
                    }
                }
                Body::Struct(fields) => {
                    let mut seen = HashSet::new();
                    for f in fields {
                        check_ident(&f.name, &f.loc)?;
                        if !seen.insert(&f.name) {
                            return Err(Error::at(&f.loc, format!("duplicate field `{}`", f.name)));
                        }
                        self.shape(f)?;
                    }
                }
                Body::Union(u) => {
                    let disc = self.disc_type(u)?;
                    let mut seen_variants = HashSet::new();
                    let mut seen_values = HashMap::new();
                    for arm in &u.arms {
                        for (l, src) in self.labels(&disc, &arm.labels)?.iter().zip(&arm.labels) {
                            if !seen_variants.insert(l.variant.clone()) || l.variant == "default" {
                                return Err(Error::at(
                                    &src.loc,
                                    format!("duplicate case `{}`", l.variant),
                                ));
                            }
                            if let Some(prev) = seen_values.insert(l.value, l.variant.clone()) {
                                return Err(Error::at(
                                    &src.loc,
                                    format!(
                                        "case value {} is also the value of case `{prev}`",
                                        l.value
                                    ),
                                ));
                            }
                        }
                        if let Some(decl) = &arm.decl {
                            self.shape(decl)?;
                        }
                    }
                    if let Some(Some(decl)) = &u.default {
                        self.shape(decl)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Every declaration of a struct or union (fields, arms, default arm).
    pub fn decls_of<'a>(&self, body: &'a Body) -> Vec<&'a Decl> {
        match body {
            Body::Struct(fields) => fields.iter().collect(),
            Body::Union(u) => u
                .arms
                .iter()
                .filter_map(|a| a.decl.as_ref())
                .chain(u.default.iter().flatten())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Finds linked lists, rejects types of infinite size, and marks the
    /// remaining recursive types (whose decoding needs a depth guard).
    fn analyse_recursion(&mut self) -> Result<()> {
        // Edges: type -> (named type, stored inline?).
        let mut edges: HashMap<&str, Vec<(String, bool)>> = HashMap::new();
        for d in &self.defs {
            let decls = self.decls_of(&d.body);
            let tail = match &d.body {
                Body::Struct(fields) => fields.last(),
                _ => None,
            };
            let mut out = Vec::new();
            for decl in decls {
                let shape = self.shape(decl)?;
                let is_list_tail = tail.is_some_and(|t| std::ptr::eq(t, decl))
                    && shape == Shape::Optional(Box::new(Shape::Named(d.name.clone())));
                if is_list_tail {
                    // Coded iteratively, so this edge does not recurse.
                    self.linked_lists.insert(d.name.clone());
                    continue;
                }
                shape.visit_named(true, &mut |n, inline| out.push((n.to_string(), inline)));
            }
            edges.insert(&d.name, out);
        }
        for d in &self.defs {
            // Infinite size: reachable from itself through inline edges only.
            if reaches(&edges, &d.name, &d.name, true) {
                return Err(Error::at(
                    &d.loc,
                    format!(
                        "`{}` contains itself without indirection (infinite size); \
                         use `*` or `<>` somewhere on the cycle",
                        d.name
                    ),
                ));
            }
            if reaches(&edges, &d.name, &d.name, false) {
                self.recursive.insert(d.name.clone());
            }
        }
        Ok(())
    }

    pub fn is_linked_list(&self, name: &str) -> bool {
        self.linked_lists.contains(name)
    }

    pub fn is_recursive(&self, name: &str) -> bool {
        self.recursive.contains(name)
    }

    /// Whether the Rust type of a named type implements `Default` (all
    /// generated types do, except those holding a fixed array longer than
    /// 32, for which std has no `Default`).
    pub fn is_defaultable(&self, name: &str) -> bool {
        self.defaultable.get(name).copied().unwrap_or(true)
    }

    pub fn shape_defaultable(&self, s: &Shape) -> bool {
        match s {
            Shape::Named(n) => self.is_defaultable(n),
            Shape::OpaqueFixed(n) => *n <= 32,
            Shape::ArrayFixed(inner, n) => *n <= 32 && self.shape_defaultable(inner),
            _ => true,
        }
    }

    fn compute_defaultable(&mut self, name: &str, visiting: &mut HashSet<String>) -> bool {
        if let Some(&v) = self.defaultable.get(name) {
            return v;
        }
        if !visiting.insert(name.to_string()) {
            // A cycle goes through Option/Vec, which are Default anyway.
            return true;
        }
        let Some(def) = self.def(name) else {
            return true;
        };
        let decls: Vec<Decl> = match &def.body {
            Body::Struct(fields) => fields.clone(),
            // Union Default is the first arm, with a default payload.
            Body::Union(u) => u.arms[0].decl.iter().cloned().collect(),
            Body::Typedef(decl) => vec![decl.clone()],
            _ => Vec::new(),
        };
        let mut ok = true;
        for decl in &decls {
            let Ok(shape) = self.shape(decl) else {
                continue;
            };
            let mut named = Vec::new();
            shape.visit_named(true, &mut |n, inline| {
                if inline {
                    named.push(n.to_string())
                }
            });
            for n in named {
                ok &= self.compute_defaultable(&n, visiting);
            }
            ok &= self.shape_defaultable(&shape);
        }
        self.defaultable.insert(name.to_string(), ok);
        ok
    }
}

/// Whether `to` is reachable from `from`'s successors (only through
/// inline edges if `inline_only`).
fn reaches(
    edges: &HashMap<&str, Vec<(String, bool)>>,
    from: &str,
    to: &str,
    inline_only: bool,
) -> bool {
    let mut seen = HashSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(n) = stack.pop() {
        for (next, inline) in edges.get(n.as_str()).into_iter().flatten() {
            if inline_only && !inline {
                continue;
            }
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

/// Rejects names the generated Rust cannot use: raw identifiers cannot
/// spell `self`, `Self`, `super`, `crate` or `_`.
fn check_ident(name: &str, loc: &Loc) -> Result<()> {
    if matches!(name, "self" | "Self" | "super" | "crate" | "_") {
        return Err(Error::at(
            loc,
            format!("`{name}` cannot be used as a name in the generated Rust"),
        ));
    }
    Ok(())
}

/// Like [`check_ident`], for module-level names (types, constants): they
/// must not shadow the prelude names the generated code uses.
fn check_rust_name(name: &str, loc: &Loc) -> Result<()> {
    const PRELUDE: &[&str] = &[
        "Vec",
        "Option",
        "Box",
        "Some",
        "None",
        "Ok",
        "Err",
        "Result",
        "Default",
        "TryFrom",
        "From",
        "Drop",
        "Clone",
        "PartialEq",
        "i32",
        "u32",
        "i64",
        "u64",
        "u8",
        "bool",
        "usize",
    ];
    if PRELUDE.contains(&name) {
        return Err(Error::at(
            loc,
            format!("`{name}` would shadow a Rust prelude name in the generated code"),
        ));
    }
    check_ident(name, loc)
}
