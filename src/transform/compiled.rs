//! The compiled transform: a decoder built from a table's schema that parses
//! a record once, checks it while it parses, standardises its timestamps,
//! masks its sensitive fields and writes its cells straight into a [`Row`],
//! with no `serde_json::Value` tree, no map and no per-field allocation.
//!
//! It only ever *accepts*. A record it cannot prove valid (a violation, a
//! duplicate key, a float where an integer is declared, an unparseable
//! timestamp, anything odd) is handed to the general path (`Value` +
//! `jsonschema`), which gives the verdict and explains failures. So the
//! compiled path decides nothing on its own about bad records, and for good
//! ones it must produce exactly the row, partition and record id the
//! general path would: `tests` checks that on generated records.
//!
//! The schema keywords it checks natively are the common ones (`type`,
//! `enum`, `const`, bounds, lengths, `properties`, `required`,
//! `additionalProperties: bool`, `items`, item counts). At a leaf any other
//! keyword (`format`, `pattern`, `multipleOf`, `anyOf`, ...) is checked by a
//! `jsonschema` validator of that leaf's sub-schema alone, which is exact
//! because without `$ref` a sub-schema means the same on its own. A table
//! whose schema needs more (a `$ref`, a keyword on an object other than
//! those above, a timestamp inside an array) is not compiled and runs on the
//! general path only; [`CompiledTable::compile`] says why.
//!
//! The scanner is written for this: one pass over the bytes, strings
//! borrowed from the record unless they hold escapes, keys matched in the
//! order producers usually write them. Where serde_json (the general path's
//! parser) treats a form specially (`-0`, integers past 64 bits, numbers
//! out of range, lone surrogates, very deep nesting) the record is left to
//! it; floats are parsed correctly rounded by both (serde_json's
//! `float_roundtrip`), so both read the same bits from the same text.

use std::borrow::Cow;
use std::cell::RefCell;

use serde_json::{Number, Value};

use super::mask::{MaskKind, Masker};
use super::row::{float_text, integral, Cell, Row};
use super::timestamp::{parse_timestamp, parse_timestamp_str, EpochUnit};
use crate::schema::{ColumnType, TableSchema, SOURCE_COLUMN};

// JSON types a node admits, as bits. Integers and floats are told apart
// because serde_json hands them over apart: "integer" admits integer
// tokens only (a float such as 2.0 is left to the general path).
const T_NULL: u8 = 1;
const T_BOOL: u8 = 2;
const T_INT: u8 = 4;
const T_FLOAT: u8 = 8;
const T_STR: u8 = 16;
const T_OBJ: u8 = 32;
const T_ARR: u8 = 64;
const T_ALL: u8 = 127;

/// Keywords that never change validity (annotations, and definitions no
/// `$ref` can reach since compiled schemas have none).
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "$comment",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$schema",
    "$id",
    "$anchor",
    "$defs",
    "definitions",
];

/// Keywords that make a sub-schema mean something outside itself.
const REFERENCES: &[&str] = &[
    "$ref",
    "$dynamicRef",
    "$recursiveRef",
    "$dynamicAnchor",
    "$recursiveAnchor",
];

/// At most this many partition fields plus the record id are captured.
const MAX_CAPTURES: usize = 8;
/// At most this many properties per object (the seen-set is a fixed bitset).
const MAX_PROPS: usize = 256;

/// A table's compiled transform.
pub struct CompiledTable {
    root: ObjectPlan,
    /// Top-level cells: the properties, then the source tag.
    columns: usize,
    unit: EpochUnit,
    has_event_time: bool,
    /// Capture slot of each partition field, in partition order.
    partition: Vec<u8>,
    /// Capture slot of the record id, if the table has one.
    record_id: Option<u8>,
}

/// What the compiled path makes of a good record, besides its row.
pub struct Decoded {
    /// Where the record's top-level cells start in the row it went to.
    pub top: u32,
    /// Event time, epoch ms (None: the table declares none).
    pub event_ms: Option<i64>,
    /// The partition fields' values as text (None: missing or null), in
    /// place rather than in a Vec: an allocation per record otherwise.
    partition: [Option<(u32, u32)>; MAX_CAPTURES],
    record_id: Option<(u32, u32)>,
}

impl Decoded {
    /// The `i`th partition field's value as text; `row` is the one the
    /// record was decoded into.
    pub fn partition_value<'r>(&self, row: &'r Row, i: usize) -> Option<Cow<'r, str>> {
        self.partition[i].map(|(s, l)| Cow::Borrowed(row.str(s, l)))
    }

    /// The record id as text (None: missing, null or not a scalar).
    pub fn record_id<'r>(&self, row: &'r Row) -> Option<&'r str> {
        self.record_id.map(|(s, l)| row.str(s, l))
    }
}

struct ObjectPlan {
    props: Vec<(Box<str>, Node)>,
    /// Per property, its key as it appears in a record when written
    /// without escapes (`name"`), for matching without scanning; None when
    /// the name itself needs escaping.
    raw_keys: Vec<Option<Box<[u8]>>>,
    /// Indices into `props` that must be present.
    required: Vec<usize>,
    /// Whether undeclared properties are allowed.
    additional: bool,
    /// Cells this object's block holds (the root adds the source tag).
    block: usize,
}

struct Node {
    check: Check,
    kind: Kind,
    /// This node's whole sub-schema, compiled: run on every value when the
    /// node has keywords `check` does not cover (`extra`), and on objects
    /// and arrays stored as text or masked.
    full: Option<jsonschema::Validator>,
    extra: bool,
    /// Where this value's text goes (a partition field or the record id).
    capture: Option<u8>,
}

enum Kind {
    Object(Box<ObjectPlan>),
    List {
        item: Box<Node>,
        min_items: Option<u64>,
        max_items: Option<u64>,
    },
    Leaf(Leaf),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaf {
    Bool,
    Int,
    Float,
    /// A string column, or several JSON types kept as JSON text.
    Text,
    Timestamp {
        event_time: bool,
    },
    Mask(MaskKind),
}

/// Native checks of one value.
#[derive(Default)]
struct Check {
    types: u8,
    /// `enum` or `const`: only exact scalar matches are proven valid.
    allowed: Option<Vec<Value>>,
    /// (bound, is lower, is exclusive)
    bounds: Vec<(Number, bool, bool)>,
    min_len: Option<u64>,
    max_len: Option<u64>,
    /// A `format` with a native fast check (the leaf validator decides
    /// whatever the fast check does not accept).
    format: Option<Format>,
}

/// Formats whose common shapes are accepted natively.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Uuid,
    Email,
}

impl Format {
    fn of(v: &Value) -> Option<Format> {
        match v.as_str()? {
            "uuid" => Some(Format::Uuid),
            "email" => Some(Format::Email),
            _ => None,
        }
    }

    /// True only for text `jsonschema` also accepts; false means "ask it".
    fn fast_accepts(self, s: &str) -> bool {
        match self {
            Format::Uuid => plain_uuid(s.as_bytes()),
            Format::Email => plain_email(s.as_bytes()),
        }
    }
}

/// Byte classes of the fast format checks, one bit each: a check is then
/// a table lookup per byte and-ed together, with no branch per byte (the
/// byte-by-byte matches were about 3% of the whole run's CPU).
const HEX: u8 = 1;
/// RFC 5322 atext: letters, digits and ``!#$%&'*+-/=?^_`{|}~``.
const ATEXT: u8 = 2;
/// Host name bytes: letters, digits and `-`.
const LDH: u8 = 4;
const ALNUM: u8 = 8;

static BYTE_CLASS: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_hexdigit() {
            t[c] |= HEX;
        }
        if b.is_ascii_alphanumeric() {
            t[c] |= ATEXT | LDH | ALNUM;
        }
        c += 1;
    }
    t[b'-' as usize] |= LDH;
    let punct = b"!#$%&'*+-/=?^_`{|}~";
    let mut i = 0;
    while i < punct.len() {
        t[punct[i] as usize] |= ATEXT;
        i += 1;
    }
    t
}

/// Whether every byte of `b` has the class bit `class`.
fn all_in(b: &[u8], class: u8) -> bool {
    b.iter().fold(class, |k, &c| k & BYTE_CLASS[c as usize]) != 0
}

/// A hyphenated UUID: 8-4-4-4-12 hex digits.
fn plain_uuid(b: &[u8]) -> bool {
    let Ok(b) = <&[u8; 36]>::try_from(b) else {
        return false;
    };
    // A fixed length and fixed dash positions: the loop unrolls.
    let mut hex = HEX;
    for (i, &c) in b.iter().enumerate() {
        if !matches!(i, 8 | 13 | 18 | 23) {
            hex &= BYTE_CLASS[c as usize];
        }
    }
    hex != 0 && b[8] == b'-' && b[13] == b'-' && b[18] == b'-' && b[23] == b'-'
}

/// The common shape of an address, a subset of what `jsonschema`'s email
/// check accepts: an ASCII dot-atom local part of at most 64 bytes, `@`,
/// and a host name of letters, digits and hyphens of at most 253 bytes in
/// labels of 1 to 63 that start and end with a letter or digit and are not
/// A-label-like (`??--`). Quoted parts, IP literals, display names and
/// non-ASCII are left to `jsonschema`.
fn plain_email(b: &[u8]) -> bool {
    let Some(at) = memchr::memchr(b'@', b) else {
        return false;
    };
    let (local, host) = (&b[..at], &b[at + 1..]);
    // Dot-atom: atext runs joined by single dots, none at either end.
    let mut atext = ATEXT;
    let mut after_dot = true;
    for &c in local {
        if c == b'.' {
            if after_dot {
                return false;
            }
            after_dot = true;
        } else {
            atext &= BYTE_CLASS[c as usize];
            after_dot = false;
        }
    }
    let local_ok = atext != 0 && !after_dot && local.len() <= 64;
    let label_ok = |l: &[u8]| {
        let n = l.len();
        (1..=63).contains(&n)
            && all_in(l, LDH)
            && BYTE_CLASS[l[0] as usize] & BYTE_CLASS[l[n - 1] as usize] & ALNUM != 0
            && !(n >= 4 && &l[2..4] == b"--")
    };
    local_ok && !host.is_empty() && host.len() <= 253 && host.split(|&c| c == b'.').all(label_ok)
}

/// A scalar token as serde_json read it.
#[derive(Clone, Copy)]
enum Tok<'s> {
    Null,
    Bool(bool),
    I(i64),
    U(u64),
    F(f64),
    S(&'s str),
}

impl Tok<'_> {
    fn bit(self) -> u8 {
        match self {
            Tok::Null => T_NULL,
            Tok::Bool(_) => T_BOOL,
            Tok::I(_) | Tok::U(_) => T_INT,
            Tok::F(_) => T_FLOAT,
            Tok::S(_) => T_STR,
        }
    }

    fn value(self) -> Value {
        match self {
            Tok::Null => Value::Null,
            Tok::Bool(b) => Value::Bool(b),
            Tok::I(i) => Value::from(i),
            Tok::U(u) => Value::from(u),
            Tok::F(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            Tok::S(s) => Value::String(s.to_owned()),
        }
    }

    /// The value's text as `Value`'s `Display` writes it (strings unquoted).
    fn text(self) -> Option<Cow<'static, str>> {
        match self {
            Tok::Null => None,
            Tok::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
            Tok::I(i) => Some(Cow::Owned(i.to_string())),
            Tok::U(u) => Some(Cow::Owned(u.to_string())),
            Tok::F(f) => Some(Cow::Owned(float_text(f))),
            Tok::S(_) => None, // borrowed by the caller
        }
    }
}

impl Check {
    fn admits(&self, t: Tok) -> bool {
        if self.types & t.bit() == 0 {
            return false;
        }
        if let Some(allowed) = &self.allowed {
            if !allowed.iter().any(|v| same_scalar(t, v)) {
                return false;
            }
        }
        for (bound, lower, exclusive) in &self.bounds {
            let ord = match compare(t, bound) {
                Ok(Some(o)) => o,
                Ok(None) => continue, // not a number: bounds do not apply
                Err(()) => return false,
            };
            let ok = match (lower, exclusive) {
                (true, false) => ord != std::cmp::Ordering::Less,
                (true, true) => ord == std::cmp::Ordering::Greater,
                (false, false) => ord != std::cmp::Ordering::Greater,
                (false, true) => ord == std::cmp::Ordering::Less,
            };
            if !ok {
                return false;
            }
        }
        if let Tok::S(s) = t {
            if self.min_len.is_some() || self.max_len.is_some() {
                let n = s.chars().count() as u64;
                if self.min_len.is_some_and(|m| n < m) || self.max_len.is_some_and(|m| n > m) {
                    return false;
                }
            }
        }
        true
    }
}

/// Whether a token equals an `enum` entry exactly (numbers by value when
/// both are integers or both floats; anything else is not proven).
fn same_scalar(t: Tok, v: &Value) -> bool {
    match (t, v) {
        (Tok::Null, Value::Null) => true,
        (Tok::Bool(a), Value::Bool(b)) => a == *b,
        (Tok::S(a), Value::String(b)) => a == b,
        (Tok::I(a), Value::Number(n)) => n.as_i64() == Some(a),
        (Tok::U(a), Value::Number(n)) => n.as_u64() == Some(a),
        (Tok::F(a), Value::Number(n)) => n.is_f64() && n.as_f64() == Some(a),
        _ => false,
    }
}

/// Exact comparison of a number token with a bound: Ok(None) for
/// non-numbers, Err where exactness cannot be promised cheaply.
fn compare(t: Tok, bound: &Number) -> Result<Option<std::cmp::Ordering>, ()> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    let int_bound = bound
        .as_i64()
        .map(i128::from)
        .or(bound.as_u64().map(i128::from));
    let ti = match t {
        Tok::I(i) => Some(i128::from(i)),
        Tok::U(u) => Some(i128::from(u)),
        Tok::F(_) => None,
        _ => return Ok(None),
    };
    match (ti, int_bound) {
        (Some(a), Some(b)) => Ok(Some(a.cmp(&b))),
        (Some(a), None) => {
            let b = bound.as_f64().ok_or(())?;
            if (a.unsigned_abs() as f64) > EXACT {
                return Err(());
            }
            (a as f64).partial_cmp(&b).map(Some).ok_or(())
        }
        (None, b) => {
            let Tok::F(a) = t else { return Err(()) };
            let b = match b {
                Some(b) if (b.unsigned_abs() as f64) <= EXACT => b as f64,
                Some(_) => return Err(()),
                None => bound.as_f64().ok_or(())?,
            };
            a.partial_cmp(&b).map(Some).ok_or(())
        }
    }
}

/// What compiling needs to know of the table.
struct Ctx<'a> {
    t: &'a TableSchema,
    /// Paths given a node: (path, is a leaf).
    seen: Vec<(String, bool)>,
    captures: Vec<String>,
}

impl CompiledTable {
    /// Compile a table; Err says why it runs on the general path only.
    pub fn compile(t: &TableSchema) -> Result<CompiledTable, String> {
        if let Some(r) = find_reference(&t.raw) {
            return Err(format!("the schema uses {r}"));
        }
        if t.ext.mask.iter().any(|(p, _)| p == SOURCE_COLUMN)
            || t.ext.timestamps.iter().any(|p| p == SOURCE_COLUMN)
        {
            return Err(format!(
                "the {SOURCE_COLUMN:?} tag is masked or a timestamp"
            ));
        }
        let mut captures: Vec<String> = t.ext.partition.iter().map(|p| p.field.clone()).collect();
        if let Some(id) = &t.ext.record_id {
            captures.push(id.clone());
        }
        if captures.len() > MAX_CAPTURES {
            return Err("too many partition fields".into());
        }
        let mut cx = Ctx {
            t,
            seen: Vec::new(),
            captures,
        };
        let data_cols = &t.columns[..t.columns.len() - 1];
        let root = compile_object(&mut cx, &t.raw, "", data_cols, 1, true, false)?;
        // Every path with a role must have met its node.
        for p in &t.ext.timestamps {
            if !cx.seen.iter().any(|(s, _)| s == p) {
                return Err(format!(
                    "timestamp {p:?} is not a declared property outside arrays"
                ));
            }
        }
        if let Some(id) = &t.ext.record_id {
            if !cx.seen.iter().any(|(s, _)| s == id) {
                return Err(format!("record id {id:?} is not a declared property"));
            }
        }
        for (p, _) in &t.ext.mask {
            // A mask below a leaf changes that leaf's JSON text; one at an
            // undeclared path touches no column.
            let under_leaf = cx.seen.iter().any(|(s, leaf)| {
                *leaf
                    && p.len() > s.len()
                    && p.starts_with(s.as_str())
                    && p.as_bytes()[s.len()] == b'.'
            });
            if under_leaf {
                return Err(format!("mask {p:?} is inside a field stored whole"));
            }
        }
        let slot = |field: &str| cx.captures.iter().position(|c| c == field).map(|i| i as u8);
        let partition = t
            .ext
            .partition
            .iter()
            .map(|p| slot(&p.field).unwrap_or(0))
            .collect();
        let record_id = t.ext.record_id.as_deref().and_then(slot);
        Ok(CompiledTable {
            root,
            columns: t.columns.len(),
            unit: t.ext.epoch_unit,
            has_event_time: t.ext.event_time.is_some(),
            partition,
            record_id,
        })
    }

    /// Decode a good record onto the end of `row`; None hands it to the
    /// general path, and leaves `row` as it was.
    pub fn decode(
        &self,
        raw: &[u8],
        masker: &Masker,
        source: &str,
        row: &mut Row,
    ) -> Option<Decoded> {
        let (cells, text) = (row.cells.len(), row.text.len());
        let d = self.decode_onto(raw, masker, source, row);
        if d.is_none() {
            row.truncate(cells, text);
        }
        d
    }

    fn decode_onto(
        &self,
        raw: &[u8],
        masker: &Masker,
        source: &str,
        row: &mut Row,
    ) -> Option<Decoded> {
        // serde_json checks UTF-8 inside strings, and any other non-ASCII
        // byte is a syntax error there: checking the record once is the same.
        let text = std::str::from_utf8(raw).ok()?;
        let top = row.cells.len() as u32;
        let mut cx = Scan {
            b: text.as_bytes(),
            s: text,
            i: 0,
            row,
            masker,
            unit: self.unit,
            event_ms: None,
            captured: [None; MAX_CAPTURES],
            scratch: String::new(),
            held: Cell::Null,
        };
        cx.ws();
        if cx.peek() != Some(b'{') {
            return None;
        }
        cx.object(&self.root, 0, HELD)?;
        cx.ws();
        if cx.i != cx.b.len() {
            return None;
        }
        let (event_ms, captured) = (cx.event_ms, cx.captured);
        if self.has_event_time && event_ms.is_none() {
            return None;
        }
        let src = row.push_str(source);
        row.cells[top as usize + self.columns - 1] = src;
        let text = |c: Option<Cell>| match c {
            Some(Cell::Str { start, len }) => Some((start, len)),
            _ => None,
        };
        let mut partition = [None; MAX_CAPTURES];
        for (p, &i) in partition.iter_mut().zip(&self.partition) {
            *p = text(captured[i as usize]);
        }
        Some(Decoded {
            top,
            partition,
            record_id: self.record_id.and_then(|i| text(captured[i as usize])),
            event_ms,
        })
    }
}

fn find_reference(v: &Value) -> Option<&'static str> {
    match v {
        Value::Object(m) => {
            for (k, sub) in m {
                if let Some(r) = REFERENCES.iter().find(|r| **r == k) {
                    return Some(r);
                }
                if k == "x-lakehose" {
                    continue;
                }
                if let Some(r) = find_reference(sub) {
                    return Some(r);
                }
            }
            None
        }
        Value::Array(a) => a.iter().find_map(find_reference),
        _ => None,
    }
}

fn is_annotation(k: &str) -> bool {
    ANNOTATIONS.contains(&k) || k.starts_with("x-")
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn build_validator(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| format!("sub-schema does not compile alone: {e}"))
}

/// An object node with properties: its members follow `cols` (the column
/// model lists properties in declaration order).
fn compile_object(
    cx: &mut Ctx,
    schema: &Value,
    path: &str,
    cols: &[crate::schema::Column],
    extra_cells: usize,
    root: bool,
    under_list: bool,
) -> Result<ObjectPlan, String> {
    let m = schema
        .as_object()
        .ok_or("an object schema is not an object")?;
    for k in m.keys() {
        let ok = matches!(
            k.as_str(),
            "type" | "properties" | "required" | "additionalProperties"
        ) || is_annotation(k)
            || (root && k == "x-lakehose");
        if !ok {
            return Err(format!("keyword {k:?} on object {path:?}"));
        }
    }
    if cols.len() > MAX_PROPS {
        return Err(format!(
            "object {path:?} has more than {MAX_PROPS} properties"
        ));
    }
    let props_schema = m.get("properties").and_then(Value::as_object);
    let mut props = Vec::with_capacity(cols.len());
    for c in cols {
        let sub = props_schema
            .and_then(|p| p.get(&c.source))
            .ok_or_else(|| format!("column {} has no property", c.name))?;
        let node = compile_node(cx, sub, &join(path, &c.source), &c.ty, under_list)?;
        props.push((c.source.clone().into_boxed_str(), node));
    }
    let mut required = Vec::new();
    if let Some(req) = m.get("required") {
        for r in req.as_array().ok_or("required is not an array")? {
            let r = r.as_str().ok_or("required holds a non-string")?;
            let i = props
                .iter()
                .position(|(n, _)| &**n == r)
                .ok_or_else(|| format!("required {r:?} is not a declared property"))?;
            required.push(i);
        }
    }
    let additional = match m.get("additionalProperties") {
        None | Some(Value::Bool(true)) => true,
        Some(Value::Bool(false)) => false,
        Some(_) => return Err(format!("additionalProperties schema on {path:?}")),
    };
    let raw_keys = props
        .iter()
        .map(|(name, _)| {
            let plain = name.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\');
            plain.then(|| [name.as_bytes(), b"\""].concat().into_boxed_slice())
        })
        .collect();
    Ok(ObjectPlan {
        block: props.len() + extra_cells,
        raw_keys,
        props,
        required,
        additional,
    })
}

fn compile_node(
    cx: &mut Ctx,
    schema: &Value,
    path: &str,
    ty: &ColumnType,
    under_list: bool,
) -> Result<Node, String> {
    let m = match schema {
        Value::Object(m) => m,
        // `true` admits anything; `false` nothing (so every value defers).
        Value::Bool(b) => {
            let mut n = leaf_node(cx, schema, path, ty, under_list, &serde_json::Map::new())?;
            n.check.types = if *b { T_ALL } else { 0 };
            return Ok(n);
        }
        _ => return Err(format!("schema at {path:?} is not an object")),
    };
    let is_ts = cx.t.ext.timestamps.iter().any(|p| p == path);
    let is_mask = cx.t.ext.mask.iter().any(|(p, _)| p == path);
    match ty {
        ColumnType::Struct(cols) if !is_ts && !is_mask => {
            cx.seen.push((path.to_owned(), false));
            let plan = compile_object(cx, schema, path, cols, 0, false, under_list)?;
            Ok(Node {
                check: Check {
                    types: types_of(m)?,
                    ..Check::default()
                },
                kind: Kind::Object(Box::new(plan)),
                full: None,
                extra: false,
                capture: None,
            })
        }
        ColumnType::List(item_ty) if !is_ts && !is_mask => {
            for k in m.keys() {
                if !matches!(k.as_str(), "type" | "items" | "minItems" | "maxItems")
                    && !is_annotation(k)
                {
                    return Err(format!("keyword {k:?} on array {path:?}"));
                }
            }
            let items = m.get("items").ok_or("array without items")?;
            let item = compile_node(cx, items, path, item_ty, true)?;
            Ok(Node {
                check: Check {
                    types: types_of(m)?,
                    ..Check::default()
                },
                kind: Kind::List {
                    item: Box::new(item),
                    min_items: size(m, "minItems")?,
                    max_items: size(m, "maxItems")?,
                },
                full: None,
                extra: false,
                capture: None,
            })
        }
        _ => leaf_node(cx, schema, path, ty, under_list, m),
    }
}

fn leaf_node(
    cx: &mut Ctx,
    schema: &Value,
    path: &str,
    ty: &ColumnType,
    under_list: bool,
    m: &serde_json::Map<String, Value>,
) -> Result<Node, String> {
    let ext = &cx.t.ext;
    let leaf = if ext.timestamps.iter().any(|p| p == path) {
        if under_list {
            return Err(format!("timestamp {path:?} is inside an array"));
        }
        Leaf::Timestamp {
            event_time: ext.event_time.as_deref() == Some(path),
        }
    } else if let Some((_, k)) = ext.mask.iter().find(|(p, _)| p == path) {
        Leaf::Mask(*k)
    } else {
        match ty {
            ColumnType::Boolean => Leaf::Bool,
            ColumnType::Int64 => Leaf::Int,
            ColumnType::Float64 => Leaf::Float,
            ColumnType::Utf8 | ColumnType::JsonText => Leaf::Text,
            ColumnType::Timestamp | ColumnType::Struct(_) | ColumnType::List(_) => {
                return Err(format!("column type of {path:?} does not fit its schema"))
            }
        }
    };
    let mut check = Check {
        types: T_ALL,
        ..Check::default()
    };
    let mut extra = false;
    for (k, v) in m {
        match k.as_str() {
            "type" => check.types = types_of(m)?,
            "enum" => check.allowed = Some(v.as_array().ok_or("enum is not an array")?.clone()),
            "const" => check.allowed = Some(vec![v.clone()]),
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                let n = match v {
                    Value::Number(n) => n.clone(),
                    _ => return Err(format!("{k} at {path:?} is not a number")),
                };
                check
                    .bounds
                    .push((n, k.contains("inimum"), k.starts_with("exclusive")));
            }
            "minLength" => check.min_len = size(m, k)?,
            "maxLength" => check.max_len = size(m, k)?,
            "format" if Format::of(v).is_some() => check.format = Format::of(v),
            _ if is_annotation(k) => {}
            _ => extra = true,
        }
    }
    // Text and masked leaves may hold objects and arrays, checked whole.
    let whole = matches!(leaf, Leaf::Text | Leaf::Mask(_)) && check.types & (T_OBJ | T_ARR) != 0;
    let full = if extra || whole || check.format.is_some() {
        Some(build_validator(schema)?)
    } else {
        None
    };
    let capture = if under_list {
        None
    } else {
        cx.captures.iter().position(|c| c == path).map(|i| i as u8)
    };
    cx.seen.push((path.to_owned(), true));
    Ok(Node {
        check,
        kind: Kind::Leaf(leaf),
        full,
        extra,
        capture,
    })
}

fn types_of(m: &serde_json::Map<String, Value>) -> Result<u8, String> {
    let one = |t: &str| -> Result<u8, String> {
        Ok(match t {
            "null" => T_NULL,
            "boolean" => T_BOOL,
            "integer" => T_INT,
            "number" => T_INT | T_FLOAT,
            "string" => T_STR,
            "object" => T_OBJ,
            "array" => T_ARR,
            other => return Err(format!("unknown type {other:?}")),
        })
    };
    match m.get("type") {
        None => Ok(T_ALL),
        Some(Value::String(t)) => one(t),
        Some(Value::Array(ts)) => ts.iter().try_fold(0, |acc, t| {
            Ok(acc | one(t.as_str().ok_or("type list holds a non-string")?)?)
        }),
        Some(_) => Err("type is neither a string nor a list".into()),
    }
}

/// A non-negative integer keyword (`3.0` counts, as in draft 2020-12).
fn size(m: &serde_json::Map<String, Value>, k: &str) -> Result<Option<u64>, String> {
    match m.get(k) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1e18)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| format!("{k} is not a non-negative integer")),
    }
}

/// A mask of the bytes of `w` (little-endian) that are `"`, `\\` or below
/// 0x20: the lowest set bit marks the first such byte exactly (the borrows
/// of the subtractions only run upwards from a true match).
#[inline]
fn special_bytes(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let q = w ^ (LO * u64::from(b'"'));
    let bs = w ^ (LO * u64::from(b'\\'));
    (q.wrapping_sub(LO) & !q | bs.wrapping_sub(LO) & !bs | w.wrapping_sub(LO * 0x20) & !w) & HI
}

/// Nesting deeper than this is left to the general path (serde_json stops
/// at 128 levels: staying well below it keeps the two in agreement).
const MAX_DEPTH: usize = 100;

/// One record's scan: a cursor over its bytes, and what it has produced.
struct Scan<'a, 'r> {
    /// The record, known to be UTF-8 (`s` as bytes).
    b: &'a [u8],
    s: &'a str,
    i: usize,
    row: &'r mut Row,
    masker: &'r Masker,
    unit: EpochUnit,
    event_ms: Option<i64>,
    captured: [Option<Cell>; MAX_CAPTURES],
    /// Unescaped text of the string being read, when it had escapes.
    scratch: String,
    /// The cell of a value stored at [`HELD`].
    held: Cell,
}

thread_local! {
    /// A string value for the leaf validators to check, kept across
    /// records: a fresh one grew an allocation per record for every field
    /// with a `pattern` or another keyword the native checks leave.
    static PROBE: RefCell<Value> = const { RefCell::new(Value::String(String::new())) };
}

/// Where a value's cell goes when it has no place in the row yet: the
/// root, and items of nested lists (gathered, then placed together).
///
/// Values store their cell themselves rather than return it: a 16-byte
/// enum returned through memory and copied on by the caller stalled on
/// store forwarding, at every level of every record.
const HELD: usize = usize::MAX;

impl<'a> Scan<'a, '_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// Store a value's cell at `at` (see [`HELD`]).
    fn put(&mut self, at: usize, cell: Cell) {
        if at == HELD {
            self.held = cell;
        } else {
            self.row.cells[at] = cell;
        }
    }

    /// A string starting at the opening quote. Some(true): its text is the
    /// record's, between the quotes; Some(false): it had escapes and its
    /// text is in `scratch`.
    fn string(&mut self) -> Option<bool> {
        self.i += 1;
        let start = self.i;
        // Eight bytes at a time up to the first quote, backslash or control
        // byte; the byte loop below then classifies it.
        while let Some(w) = self.b.get(self.i..self.i + 8) {
            let m = special_bytes(u64::from_le_bytes(w.try_into().expect("8 bytes")));
            if m != 0 {
                self.i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            self.i += 8;
        }
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(true);
                }
                b'\\' => break,
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        // Escapes: unescape into scratch.
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let b = self.b;
        let mut run = start;
        loop {
            match *b.get(self.i)? {
                b'"' => {
                    out.push_str(self.s.get(run..self.i)?);
                    self.i += 1;
                    self.scratch = out;
                    return Some(false);
                }
                b'\\' => {
                    out.push_str(self.s.get(run..self.i)?);
                    let e = *b.get(self.i + 1)?;
                    self.i += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                // a surrogate pair, or the general path decides
                                if b.get(self.i..self.i + 2)? != b"\\u" {
                                    return None;
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(c)?);
                        }
                        _ => return None,
                    }
                    run = self.i;
                }
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        h.iter()
            .try_fold(0u32, |acc, c| Some(acc * 16 + char::from(*c).to_digit(16)?))
    }

    /// A number, as serde_json would hand it over; None for the forms it
    /// treats specially (`-0`, integers past 64 bits, out-of-range floats).
    /// Inlined: its token is not copied out of a callee's frame (see [`HELD`]).
    #[inline(always)]
    fn number(&mut self) -> Option<Tok<'static>> {
        let b = self.b;
        let start = self.i;
        let neg = b[self.i] == b'-';
        if neg {
            self.i += 1;
        }
        // The digits before and after the point, as one integer: read in
        // the same pass that finds where they end.
        let mut m = 0u64;
        let int_start = self.i;
        let n = digits(b, &mut self.i, &mut m);
        if n == 0 || (n > 1 && b[int_start] == b'0') {
            return None;
        }
        let mut float = false;
        let mut frac = 0;
        if self.peek() == Some(b'.') {
            self.i += 1;
            frac = digits(b, &mut self.i, &mut m);
            if frac == 0 {
                return None;
            }
            float = true;
        }
        let plain_end = self.i;
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if digits(b, &mut self.i, &mut 0) == 0 {
                return None;
            }
            float = true;
        }
        if float {
            // No exponent: the fast path may take it.
            if plain_end == self.i {
                if let Some(f) = plain_decimal(m, n + frac, frac, neg) {
                    return Some(Tok::F(f));
                }
            }
            let f: f64 = self.s.get(start..self.i)?.parse().ok()?;
            return f.is_finite().then_some(Tok::F(f));
        }
        // Up to 19 digits cannot have wrapped; more are checked one by one.
        let v = if n <= 19 {
            m
        } else {
            let mut v: u64 = 0;
            for &c in &b[int_start..self.i] {
                v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            }
            v
        };
        if !neg {
            Some(Tok::U(v))
        } else if v == 0 || v > 1 << 63 {
            None
        } else {
            Some(Tok::I((v as i64).wrapping_neg()))
        }
    }

    /// Skip any value, checking its syntax (an undeclared property's value).
    fn skip(&mut self, depth: usize) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    if self.peek()? != b'"' {
                        return None;
                    }
                    self.string()?;
                    self.eat(b':')?;
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            _ => None,
        }
    }

    /// The value at a node; its cell goes to `at`.
    fn value(&mut self, node: &Node, depth: usize, at: usize) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'{' => match &node.kind {
                Kind::Object(plan) if node.check.types & T_OBJ != 0 => {
                    self.object(plan, depth + 1, at)
                }
                Kind::Leaf(_) => self.whole(node, depth, at),
                _ => None,
            },
            b'[' => match &node.kind {
                Kind::List {
                    item,
                    min_items,
                    max_items,
                } if node.check.types & T_ARR != 0 => {
                    self.list(item, *min_items, *max_items, depth + 1, at)
                }
                Kind::Leaf(_) => self.whole(node, depth, at),
                _ => None,
            },
            b'"' => {
                let start = self.i + 1;
                if self.string()? {
                    // Quotes are ASCII, so they sit on character boundaries.
                    let s: &'a str = self.s;
                    self.scalar(node, Tok::S(&s[start..self.i - 1]), at)
                } else {
                    let s = std::mem::take(&mut self.scratch);
                    let done = self.scalar(node, Tok::S(&s), at);
                    self.scratch = s;
                    done
                }
            }
            b't' => {
                self.literal(b"true")?;
                self.scalar(node, Tok::Bool(true), at)
            }
            b'f' => {
                self.literal(b"false")?;
                self.scalar(node, Tok::Bool(false), at)
            }
            b'n' => {
                self.literal(b"null")?;
                self.scalar(node, Tok::Null, at)
            }
            b'-' | b'0'..=b'9' => {
                let t = self.number()?;
                self.scalar(node, t, at)
            }
            _ => None,
        }
    }

    /// An object at the cursor, its members by `plan`; its struct's cell
    /// goes to `at`.
    fn object(&mut self, plan: &ObjectPlan, depth: usize, at: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.i += 1; // '{'
        let start = self.row.reserve_block(plan.block);
        let mut seen = [0u64; MAX_PROPS / 64];
        let mut guess = 0usize;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
        } else {
            loop {
                self.ws();
                if self.peek()? != b'"' {
                    return None;
                }
                // Producers mostly write keys in one order, and unescaped:
                // the expected key is compared in place, without a scan.
                let expected = plan.raw_keys.get(guess).and_then(Option::as_deref);
                let found = match expected {
                    Some(k)
                        if self
                            .b
                            .get(self.i + 1..self.i + 1 + k.len())
                            .is_some_and(|b| same_short(b, k)) =>
                    {
                        self.i += 1 + k.len();
                        Some(guess)
                    }
                    _ => {
                        let start = self.i + 1;
                        let k = if self.string()? {
                            &self.b[start..self.i - 1]
                        } else {
                            self.scratch.as_bytes()
                        };
                        plan.props.iter().position(|(name, _)| name.as_bytes() == k)
                    }
                };
                self.eat(b':')?;
                match found {
                    Some(i) => {
                        let (w, bit) = (i / 64, 1u64 << (i % 64));
                        if seen[w] & bit != 0 {
                            return None; // a duplicate key: the general path decides
                        }
                        seen[w] |= bit;
                        self.value(&plan.props[i].1, depth, start as usize + i)?;
                        guess = i + 1;
                    }
                    None if plan.additional => self.skip(depth)?,
                    None => return None,
                }
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        if plan
            .required
            .iter()
            .any(|&i| seen[i / 64] & (1 << (i % 64)) == 0)
        {
            return None;
        }
        self.put(at, Cell::Struct { start });
        Some(())
    }

    /// An array at the cursor, its items by `item`; the list's cell goes
    /// to `at`.
    fn list(
        &mut self,
        item: &Node,
        min_items: Option<u64>,
        max_items: Option<u64>,
        depth: usize,
        at: usize,
    ) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.i += 1; // '['
                     // Leaf items reserve nothing and go straight to the end; nested
                     // ones reserve blocks as they go, so they are gathered first.
        let direct = matches!(item.kind, Kind::Leaf(_));
        let mut gathered = Vec::new();
        let first = self.row.cells.len();
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
        } else {
            loop {
                if direct {
                    let at = self.row.cells.len();
                    self.row.cells.push(Cell::Null);
                    self.value(item, depth, at)?;
                } else {
                    self.value(item, depth, HELD)?;
                    gathered.push(self.held);
                }
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        let (start, len) = if direct {
            (first as u32, (self.row.cells.len() - first) as u32)
        } else {
            let start = self.row.cells.len() as u32;
            self.row.cells.extend_from_slice(&gathered);
            (start, gathered.len() as u32)
        };
        let n = u64::from(len);
        if min_items.is_some_and(|m| n < m) || max_items.is_some_and(|m| n > m) {
            return None;
        }
        self.put(at, Cell::List { start, len });
        Some(())
    }

    /// Whether the leaf's own validator accepts a scalar.
    fn full_accepts(&mut self, node: &Node, t: Tok) -> bool {
        let Some(full) = node.full.as_ref() else {
            return false;
        };
        match t {
            Tok::S(s) => PROBE.with_borrow_mut(|probe| {
                if let Value::String(p) = probe {
                    p.clear();
                    p.push_str(s);
                }
                full.is_valid(probe)
            }),
            _ => full.is_valid(&t.value()),
        }
    }

    /// A scalar value at a node: checked, transformed, stored at `at`.
    fn scalar(&mut self, node: &Node, t: Tok, at: usize) -> Option<()> {
        if !node.check.admits(t) {
            return None;
        }
        // Keywords checked by the leaf's validator: always when it has
        // some beyond the native ones, else a format the fast check leaves.
        let slow = node.extra
            || matches!((node.check.format, t), (Some(f), Tok::S(s)) if !f.fast_accepts(s));
        if slow && !self.full_accepts(node, t) {
            return None;
        }
        // The common leaves store their cell where it is made: a cell built
        // in the match below and stored after it goes through memory (see
        // [`HELD`]). The cells are the ones the match makes.
        if let (Kind::Leaf(leaf), None) = (&node.kind, node.capture) {
            match (*leaf, t) {
                (Leaf::Float, Tok::F(f)) => self.put(at, Cell::Float(f)),
                (Leaf::Int, Tok::I(i)) => self.put(at, Cell::Int(i)),
                (Leaf::Int, Tok::U(u)) if u <= i64::MAX as u64 => self.put(at, Cell::Int(u as i64)),
                (Leaf::Text, Tok::S(s)) => {
                    let start = self.row.text.len() as u32;
                    self.row.text.push_str(s);
                    let len = s.len() as u32;
                    self.put(at, Cell::Str { start, len });
                }
                (Leaf::Timestamp { event_time }, Tok::S(s)) => {
                    let ms = parse_timestamp_str(s, self.unit).ok()?;
                    if event_time {
                        self.event_ms = Some(ms);
                    }
                    self.put(at, Cell::Int(ms));
                }
                (Leaf::Mask(kind), Tok::S(s)) => {
                    let start = self.row.text.len() as u32;
                    self.masker.mask_text_into(kind, s, &mut self.row.text);
                    let len = self.row.text.len() as u32 - start;
                    self.put(at, Cell::Str { start, len });
                }
                _ => return self.scalar_general(node, t, at),
            }
            return Some(());
        }
        self.scalar_general(node, t, at)
    }

    /// [`Scan::scalar`] past its checks, for any leaf and token.
    fn scalar_general(&mut self, node: &Node, t: Tok, at: usize) -> Option<()> {
        let cell = match node.kind {
            Kind::Object(_) | Kind::List { .. } => Cell::Null,
            Kind::Leaf(_) if matches!(t, Tok::Null) => {
                if matches!(node.kind, Kind::Leaf(Leaf::Timestamp { event_time: true })) {
                    return None;
                }
                Cell::Null
            }
            Kind::Leaf(Leaf::Bool) => match t {
                Tok::Bool(b) => Cell::Bool(b),
                _ => Cell::Null,
            },
            Kind::Leaf(Leaf::Int) => match t {
                Tok::I(i) => Cell::Int(i),
                Tok::U(u) => i64::try_from(u)
                    .ok()
                    .or_else(|| integral(u as f64))
                    .map_or(Cell::Null, Cell::Int),
                Tok::F(f) => integral(f).map_or(Cell::Null, Cell::Int),
                _ => Cell::Null,
            },
            Kind::Leaf(Leaf::Float) => match t {
                Tok::I(i) => Cell::Float(i as f64),
                Tok::U(u) => Cell::Float(u as f64),
                Tok::F(f) => Cell::Float(f),
                _ => Cell::Null,
            },
            Kind::Leaf(Leaf::Text) => match t {
                Tok::S(s) => self.row.push_str(s),
                other => self.row.push_str(&other.text()?),
            },
            Kind::Leaf(Leaf::Timestamp { event_time }) => {
                let ms = match t {
                    Tok::S(s) => parse_timestamp_str(s, self.unit).ok()?,
                    Tok::Bool(_) => return None,
                    other => parse_timestamp(&other.value(), self.unit).ok()?,
                };
                if event_time {
                    self.event_ms = Some(ms);
                }
                Cell::Int(ms)
            }
            Kind::Leaf(Leaf::Mask(kind)) => {
                let start = self.row.text.len() as u32;
                match t {
                    Tok::S(s) => self.masker.mask_text_into(kind, s, &mut self.row.text),
                    other => self
                        .masker
                        .mask_text_into(kind, &other.text()?, &mut self.row.text),
                }
                Cell::Str {
                    start,
                    len: self.row.text.len() as u32 - start,
                }
            }
        };
        if let Some(slot) = node.capture {
            // The value as the general path's transformed record holds it.
            // A boolean is a partition value but no record id: left to it.
            let text = match (&node.kind, t, cell) {
                (
                    Kind::Leaf(Leaf::Bool | Leaf::Int | Leaf::Float | Leaf::Text),
                    Tok::Bool(_),
                    _,
                ) => return None,
                (_, Tok::Null, _) => None,
                (Kind::Leaf(Leaf::Timestamp { .. }), _, Cell::Int(ms)) => {
                    Some(self.row.push_str(&ms.to_string()))
                }
                (Kind::Leaf(Leaf::Mask(_) | Leaf::Text), _, c @ Cell::Str { .. }) => Some(c),
                (_, Tok::S(s), _) => Some(self.row.push_str(s)),
                (_, Tok::I(i), _) => Some(self.row.push_int(i)),
                // Non-negative integers read as U: written in place too, not
                // through a String per record.
                (_, Tok::U(u), _) if u <= i64::MAX as u64 => Some(self.row.push_int(u as i64)),
                (_, other, _) => Some(self.row.push_str(&other.text()?)),
            };
            self.captured[slot as usize] = text;
        }
        self.put(at, cell);
        Some(())
    }

    /// An object or array at a leaf stored whole (as JSON text, or masked):
    /// read as a `Value`, exactly as the general path reads it.
    fn whole(&mut self, node: &Node, depth: usize, at: usize) -> Option<()> {
        let start = self.i;
        self.skip(depth)?;
        let mut v: Value = serde_json::from_slice(&self.b[start..self.i]).ok()?;
        let bit = if v.is_object() { T_OBJ } else { T_ARR };
        if node.check.types & bit == 0 || node.check.allowed.is_some() {
            return None;
        }
        if !node.full.as_ref()?.is_valid(&v) {
            return None;
        }
        let cell = match node.kind {
            // A partition value or record id that is an object or array
            // is left to the general path (rare, and the two differ there).
            _ if node.capture.is_some() => return None,
            Kind::Leaf(Leaf::Text) => self.row.push_str(&v.to_string()),
            Kind::Leaf(Leaf::Mask(kind)) => {
                self.masker.mask_value(&mut v, kind);
                let Value::String(s) = &v else { return None };
                self.row.push_str(s)
            }
            _ => return None,
        };
        self.put(at, cell);
        Some(())
    }
}

/// `a == b`, inline: for keys, which are short, a call to `memcmp` costs
/// more than the comparison.
#[inline(always)]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    // Whole words, then the last word (overlapping the one before).
    let mut i = 0;
    while i + 8 <= n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// Powers of ten that `f64` holds exactly.
const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The ASCII digits from `*i` on: moves `*i` past them, folds them into
/// `m` (wrapping: read only where too few digits were folded to wrap) and
/// returns how many there were.
#[inline(always)]
fn digits(b: &[u8], i: &mut usize, m: &mut u64) -> usize {
    let start = *i;
    while let Some(&c) = b.get(*i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        *m = m.wrapping_mul(10).wrapping_add(u64::from(d));
        *i += 1;
    }
    *i - start
}

/// A decimal without exponent as `f64`, given its `digits` digits (point
/// left out) as the integer `m`, `frac` of them after the point: when
/// there are at most 15 (so `m` < 2^53, exact) and `frac` is at most 22,
/// one exact mantissa divided by one exact power of ten is correctly
/// rounded (Clinger's fast path), the same value `str::parse` gives. None
/// otherwise: the caller parses. Most fares and distances take this path.
fn plain_decimal(m: u64, digits: usize, frac: usize, neg: bool) -> Option<f64> {
    if digits > 15 || frac >= EXACT_POW10.len() {
        return None;
    }
    let f = m as f64 / EXACT_POW10[frac];
    Some(if neg { -f } else { f })
}

#[cfg(test)]
mod tests;
