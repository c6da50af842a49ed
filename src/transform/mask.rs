//! In-place masking of sensitive fields in a parsed JSON record, so raw PII never reaches
//! any output.
//!
//! The "text" of a value, used by both `hash` and `last4`, is: a string's own UTF-8 text;
//! a number's or bool's JSON text (so the number `4111` and the string `"4111"` mask to the
//! same result, which keeps joins working when producers disagree on quoting); an object's
//! or array's compact JSON serialisation. Nulls are left alone: there is nothing to hide.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// What a masked value is replaced with under [`MaskKind::Redact`].
pub const REDACTED: &str = "[REDACTED]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// Lowercase hex HMAC-SHA256 of the value's text: stable for joins, not reversible
    /// without the key.
    Hash,
    /// The string [`REDACTED`], whatever the value's type.
    Redact,
    /// `*` for every character but the last four of the value's text.
    Last4,
}

impl MaskKind {
    /// The configuration name, as accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            MaskKind::Hash => "hash",
            MaskKind::Redact => "redact",
            MaskKind::Last4 => "last4",
        }
    }
}

impl fmt::Display for MaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MaskKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hash" => Ok(MaskKind::Hash),
            "redact" => Ok(MaskKind::Redact),
            "last4" => Ok(MaskKind::Last4),
            other => Err(format!(
                "unknown mask kind {other:?}: expected one of hash, redact, last4"
            )),
        }
    }
}

/// One compiled rule: the dotted path as configured, split once into its segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskRule {
    pub path: String,
    pub segments: Vec<String>,
    pub kind: MaskKind,
}

/// Compiled masking rules plus the HMAC key. Cheap to share across threads (Send + Sync).
#[derive(Clone)]
pub struct Masker {
    rules: Vec<MaskRule>,
    /// HMAC state already keyed, cloned per value so the key schedule is computed once.
    keyed: Hmac<Sha256>,
}

/// Never prints the key.
impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Masker {
    /// `rules`: (dotted path, kind) pairs, e.g. `("rider.email", Hash)`.
    ///
    /// Errors on an empty path, an empty segment (`"a..b"`, `".a"`), or the same path twice
    /// (applying two rules to one field would mask already-masked text, or disagree on how).
    pub fn new(key: &[u8], rules: &[(String, MaskKind)]) -> Result<Masker, String> {
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|e| format!("invalid HMAC key: {e}"))?;
        let mut seen = HashSet::with_capacity(rules.len());
        let mut compiled = Vec::with_capacity(rules.len());
        for (path, kind) in rules {
            if path.is_empty() {
                return Err("mask rule has an empty path".to_owned());
            }
            let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
            if segments.iter().any(String::is_empty) {
                return Err(format!("mask rule path {path:?} has an empty segment"));
            }
            if !seen.insert(path.as_str()) {
                return Err(format!("mask rule path {path:?} is listed more than once"));
            }
            compiled.push(MaskRule {
                path: path.clone(),
                segments,
                kind: *kind,
            });
        }
        Ok(Masker {
            rules: compiled,
            keyed,
        })
    }

    /// Mask every rule's field present in `record`; returns how many values were masked.
    ///
    /// Missing fields, intermediates that are neither object nor array, and null values are
    /// skipped and not counted.
    pub fn apply(&self, record: &mut Value) -> usize {
        self.rules
            .iter()
            .map(|rule| self.apply_path(record, &rule.segments, rule.kind))
            .sum()
    }

    /// As [`Masker::apply`], leaving alone the fields whose rule path is in
    /// `skip` (a replayed error record's fields that were masked already:
    /// masking them again would hash a hash).
    pub fn apply_except(&self, record: &mut Value, skip: &[String]) -> usize {
        self.rules
            .iter()
            .filter(|rule| !skip.contains(&rule.path))
            .map(|rule| self.apply_path(record, &rule.segments, rule.kind))
            .sum()
    }

    pub fn rules(&self) -> &[MaskRule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Walks `segments` below `value`, fanning out over every element of any array met on
    /// the way (including `value` itself), and masks what the last segment names.
    fn apply_path(&self, value: &mut Value, segments: &[String], kind: MaskKind) -> usize {
        match value {
            Value::Object(map) => {
                let Some((first, rest)) = segments.split_first() else {
                    return 0;
                };
                match map.get_mut(first.as_str()) {
                    None => 0,
                    Some(child) if rest.is_empty() => self.mask_value(child, kind),
                    Some(child) => self.apply_path(child, rest, kind),
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .map(|item| self.apply_path(item, segments, kind))
                .sum(),
            _ => 0,
        }
    }

    /// Replaces `value` with its masked form; returns 1 if it was masked, 0 for null.
    pub fn mask_value(&self, value: &mut Value, kind: MaskKind) -> usize {
        if value.is_null() {
            return 0;
        }
        let mut masked = String::new();
        self.mask_text_into(kind, &value_text(value), &mut masked);
        *value = Value::String(masked);
        1
    }

    /// Append the masked form of a value's text (see the module docs) to
    /// `out`: the compiled transform writes straight into its row this way.
    pub fn mask_text_into(&self, kind: MaskKind, text: &str, out: &mut String) {
        match kind {
            MaskKind::Hash => hmac_hex_into(&self.keyed, text.as_bytes(), out),
            MaskKind::Redact => out.push_str(REDACTED),
            MaskKind::Last4 => last4_into(text, out),
        }
    }
}

/// The keyed hash used for `hash`: lowercase hex HMAC-SHA256(key, data), where `keyed` is an
/// HMAC state already initialised with the key. Cloning it skips re-deriving the key pads.
pub fn hmac_hex(keyed: &Hmac<Sha256>, data: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    hmac_hex_into(keyed, data, &mut out);
    out
}

fn hmac_hex_into(keyed: &Hmac<Sha256>, data: &[u8], out: &mut String) {
    let mut mac = keyed.clone();
    mac.update(data);
    let digest = mac.finalize().into_bytes();
    // Into a buffer, then appended at once: a push per digit checked the
    // capacity and encoded a char 64 times per hash.
    let mut hex = [0u8; 64];
    hex::encode_to_slice(digest, &mut hex).expect("64 digits for 32 bytes");
    out.push_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
}

/// A value's text as described in the module docs; borrows for strings.
fn value_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        // Objects are hashed with their keys sorted, so the hash does not
        // depend on the producer's key order.
        Value::Object(_) | Value::Array(_) => Cow::Owned(canonical(value).to_string()),
        // Value's Display is compact JSON; for numbers and bools that is their literal.
        other => Cow::Owned(other.to_string()),
    }
}

/// A copy with every object's keys in sorted order.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// All but the last four characters as `*`; four or fewer are hidden entirely, since
/// showing them would reveal the whole value.
fn last4_into(text: &str, out: &mut String) {
    // Card numbers are ASCII: characters are bytes.
    let (chars, keep_from) = if text.is_ascii() {
        (text.len(), text.len().saturating_sub(4))
    } else {
        let chars = text.chars().count();
        // The byte offset of the first kept char (none kept under five).
        let keep_from = text
            .char_indices()
            .nth(chars.saturating_sub(4))
            .map_or(text.len(), |(i, _)| i);
        (chars, keep_from)
    };
    if chars <= 4 {
        push_stars(out, chars);
        return;
    }
    push_stars(out, chars - 4);
    out.push_str(&text[keep_from..]);
}

/// Append `n` asterisks, a run at a time.
fn push_stars(out: &mut String, mut n: usize) {
    const STARS: &str = "********************************";
    out.reserve(n);
    while n > 0 {
        let k = n.min(STARS.len());
        out.push_str(&STARS[..k]);
        n -= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"test-key";

    fn masker(rules: &[(&str, MaskKind)]) -> Masker {
        let rules: Vec<(String, MaskKind)> =
            rules.iter().map(|(p, k)| (p.to_string(), *k)).collect();
        Masker::new(KEY, &rules).expect("valid rules")
    }

    fn hash_of(text: &str) -> String {
        let keyed = Hmac::<Sha256>::new_from_slice(KEY).expect("any key length is valid");
        hmac_hex(&keyed, text.as_bytes())
    }

    #[test]
    fn rfc4231_test_case_2() {
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let keyed = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("any key length is valid");
        assert_eq!(hmac_hex(&keyed, b"what do ya want for nothing?"), want);
        // The same vector through the Masker.
        let m = Masker::new(b"Jefe", &[("q".to_owned(), MaskKind::Hash)]).expect("valid");
        let mut rec = json!({"q": "what do ya want for nothing?"});
        assert_eq!(m.apply(&mut rec), 1);
        assert_eq!(rec, json!({ "q": want }));
    }

    #[test]
    fn each_kind_on_each_type() {
        use MaskKind::{Hash, Last4, Redact};
        let cases: Vec<(MaskKind, Value, Value)> = vec![
            (Hash, json!("4111"), json!(hash_of("4111"))),
            // Numbers hash as their JSON text, the same as the quoted form.
            (Hash, json!(4111), json!(hash_of("4111"))),
            (Hash, json!(1.5), json!(hash_of("1.5"))),
            (Hash, json!(true), json!(hash_of("true"))),
            // Containers hash as compact JSON (serde_json keeps keys sorted by default).
            (
                Hash,
                json!({"b": 1, "a": [2]}),
                json!(hash_of(r#"{"a":[2],"b":1}"#)),
            ),
            (Hash, json!([1, "x"]), json!(hash_of(r#"[1,"x"]"#))),
            (Hash, json!(""), json!(hash_of(""))),
            (Hash, json!(null), json!(null)),
            (Redact, json!("secret"), json!(REDACTED)),
            (Redact, json!(42), json!(REDACTED)),
            (Redact, json!(false), json!(REDACTED)),
            (Redact, json!({"a": 1}), json!(REDACTED)),
            (Redact, json!([1, 2]), json!(REDACTED)),
            (Redact, json!(null), json!(null)),
            (Last4, json!("4111111111111111"), json!("************1111")),
            (Last4, json!(4111111111111111u64), json!("************1111")),
            (Last4, json!("12345"), json!("*2345")),
            // Longer than one run of stars.
            (
                Last4,
                json!("9".repeat(40)),
                json!(format!("{}9999", "*".repeat(36))),
            ),
            // Four characters or fewer are hidden entirely.
            (Last4, json!("1234"), json!("****")),
            (Last4, json!("a"), json!("*")),
            (Last4, json!(""), json!("")),
            (Last4, json!(true), json!("****")),
            (Last4, json!(false), json!("*alse")),
            // Characters, not bytes: multi-byte text keeps four whole characters.
            (Last4, json!("ünïcödé"), json!("***cödé")),
            (Last4, json!("日本語テキスト"), json!("***テキスト")),
            (Last4, json!("🔑🔑🔑"), json!("***")),
            (Last4, json!({"a": 1}), json!(r#"***":1}"#)),
            (Last4, json!([1, 2]), json!("*1,2]")),
            (Last4, json!(null), json!(null)),
        ];
        for (kind, input, want) in cases {
            let m = masker(&[("f", kind)]);
            let mut rec = json!({ "f": input.clone() });
            let count = m.apply(&mut rec);
            assert_eq!(rec, json!({ "f": want }), "{kind} on {input}");
            assert_eq!(count, usize::from(!input.is_null()), "{kind} on {input}");
        }
    }

    #[test]
    fn hash_is_64_lowercase_hex() {
        let h = hash_of("anything");
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
    }

    #[test]
    fn paths() {
        use MaskKind::Redact;
        let r = REDACTED;
        let cases: Vec<(&str, Value, Value, usize)> = vec![
            (
                "a",
                json!({"a": "x", "b": "y"}),
                json!({"a": r, "b": "y"}),
                1,
            ),
            (
                "a.b",
                json!({"a": {"b": "x", "c": "y"}}),
                json!({"a": {"b": r, "c": "y"}}),
                1,
            ),
            (
                "a.b.c",
                json!({"a": {"b": {"c": 1}}}),
                json!({"a": {"b": {"c": r}}}),
                1,
            ),
            (
                "passengers.email",
                json!({"passengers": [{"email": "p@x"}, {"name": "n"}, {"email": "q@x"}]}),
                json!({"passengers": [{"email": r}, {"name": "n"}, {"email": r}]}),
                2,
            ),
            // Arrays at several levels, nested arrays and non-object elements.
            (
                "a.b.c",
                json!({"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": {"c": 3}}, 7, [{"b": {"c": 4}}]]}),
                json!({"a": [{"b": [{"c": r}, {"c": r}]}, {"b": {"c": r}}, 7, [{"b": {"c": r}}]]}),
                4,
            ),
            // A terminal array is masked as one value, not per element.
            ("tags", json!({"tags": ["a", "b"]}), json!({"tags": r}), 1),
            // A top-level array of records is masked record by record.
            (
                "a",
                json!([{"a": 1}, {"a": 2}]),
                json!([{"a": r}, {"a": r}]),
                2,
            ),
            ("missing", json!({"a": 1}), json!({"a": 1}), 0),
            (
                "a.missing",
                json!({"a": {"b": 1}}),
                json!({"a": {"b": 1}}),
                0,
            ),
            // Intermediates that cannot hold fields are left alone.
            ("a.b", json!({"a": "text"}), json!({"a": "text"}), 0),
            ("a.b", json!({"a": 5}), json!({"a": 5}), 0),
            ("a.b", json!({"a": null}), json!({"a": null}), 0),
            (
                "a.b",
                json!({"a": [1, "x", null]}),
                json!({"a": [1, "x", null]}),
                0,
            ),
            ("a", json!("not an object"), json!("not an object"), 0),
            // Segments match whole keys only; a literal dotted key is not a path.
            ("a.b", json!({"a.b": 1}), json!({"a.b": 1}), 0),
        ];
        for (path, mut rec, want, count) in cases {
            let m = masker(&[(path, Redact)]);
            assert_eq!(m.apply(&mut rec), count, "{path}");
            assert_eq!(rec, want, "{path}");
        }
    }

    #[test]
    fn apply_counts_across_rules() {
        use MaskKind::{Hash, Last4, Redact};
        let m = masker(&[
            ("rider.email", Hash),
            ("card_number", Last4),
            ("rider.phone", Redact),
            ("absent", Redact),
            ("note", Redact),
        ]);
        let mut rec = json!({
            "rider": {"email": "a@b.c", "phone": "555-0100", "name": "kept"},
            "card_number": "4111111111111111",
            "note": null,
            "amount": 12.5
        });
        assert_eq!(m.apply(&mut rec), 3);
        assert_eq!(
            rec,
            json!({
                "rider": {"email": hash_of("a@b.c"), "phone": REDACTED, "name": "kept"},
                "card_number": "************1111",
                "note": null,
                "amount": 12.5
            })
        );
    }

    #[test]
    fn key_changes_hash() {
        let rules = [("f".to_owned(), MaskKind::Hash)];
        let hash_with = |key: &[u8]| {
            let mut rec = json!({"f": "same input"});
            Masker::new(key, &rules).expect("valid").apply(&mut rec);
            rec["f"].clone()
        };
        assert_eq!(hash_with(b"key-one"), hash_with(b"key-one"));
        assert_ne!(hash_with(b"key-one"), hash_with(b"key-two"));
        // HMAC accepts any key length, including empty and longer than a block.
        assert_ne!(hash_with(b""), hash_with(&[7u8; 200]));
    }

    #[test]
    fn new_validates_rules() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["a", "b.c"], None),
            (&[], None),
            (&[""], Some("empty path")),
            (&["a..b"], Some("empty segment")),
            (&[".a"], Some("empty segment")),
            (&["a."], Some("empty segment")),
            // The same field twice would mask already-masked text.
            (&["a.b", "a.b"], Some("more than once")),
        ];
        for &(paths, want_err) in cases {
            let rules: Vec<(String, MaskKind)> = paths
                .iter()
                .map(|p| (p.to_string(), MaskKind::Redact))
                .collect();
            match (Masker::new(KEY, &rules), want_err) {
                (Ok(m), None) => {
                    assert_eq!(m.rules().len(), paths.len());
                    assert_eq!(m.is_empty(), paths.is_empty());
                }
                (Err(e), Some(want)) => assert!(e.contains(want), "{paths:?}: {e}"),
                (got, want) => panic!("{paths:?}: got {got:?}, want error {want:?}"),
            }
        }
    }

    #[test]
    fn compiled_rules_are_exposed() {
        let m = masker(&[("rider.email", MaskKind::Hash)]);
        assert_eq!(
            m.rules(),
            &[MaskRule {
                path: "rider.email".to_owned(),
                segments: vec!["rider".to_owned(), "email".to_owned()],
                kind: MaskKind::Hash,
            }]
        );
        // Debug output must not expose key material.
        assert!(!format!("{m:?}").contains("test-key"));
    }

    #[test]
    fn mask_kind_names() {
        let cases: &[(&str, Option<MaskKind>)] = &[
            ("hash", Some(MaskKind::Hash)),
            ("redact", Some(MaskKind::Redact)),
            ("last4", Some(MaskKind::Last4)),
            // Names are exact: configuration typos should fail loudly.
            ("Hash", None),
            ("", None),
            ("last_4", None),
        ];
        for &(name, want) in cases {
            match (name.parse::<MaskKind>(), want) {
                (Ok(kind), Some(want)) => {
                    assert_eq!(kind, want);
                    assert_eq!(kind.to_string(), name);
                }
                (Err(e), None) => {
                    assert!(e.contains("hash, redact, last4"), "{e}");
                }
                (got, want) => panic!("{name:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn masker_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Masker>();
    }
}
