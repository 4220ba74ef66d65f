//! Object digests must match W&B Weave's (Python) byte for byte; refs parse and print back.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use weave::digest::{canonical_json, digest_bytes, digest_value};
use weave::refs::{RefKind, WeaveRef};

const PYTHON: &str = r#"
import base64, hashlib, json, sys
for line in sys.stdin:
    v = json.loads(line)
    text = json.dumps(v, sort_keys=True, separators=(", ", ": "))
    d = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
    d = d.rstrip(b"=").decode().replace("-", "X").replace("_", "Y")
    print(json.dumps([text, d]))
"#;

/// `(canonical text, digest)` of each value, computed by Python.
fn python_digests(values: &[Value]) -> Vec<(String, String)> {
    let mut child = Command::new("python3")
        .args(["-c", PYTHON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to check digests against Weave's");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for v in values {
            writeln!(stdin, "{}", serde_json::to_string(v).expect("json")).expect("write");
        }
    }
    let out = child.wait_with_output().expect("python3");
    assert!(out.status.success(), "python3 failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let rows: Vec<(String, String)> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("python row"))
        .collect();
    assert_eq!(rows.len(), values.len());
    rows
}

fn vectors() -> Vec<Value> {
    vec![
        json!({}),
        json!([]),
        json!(""),
        json!(null),
        json!(true),
        json!({"z": 1, "a": {"y": [], "b": {}, "a": null}, "m": [3, 2, 1]}),
        json!({"B": 1, "a": 2, "_": 3, "é": 4, "Z": 5, "ä": 6, "😀": 7, "\u{ffff}": 8}),
        json!({"text": "héllo wörld — ✓ 中文 😀 𝄞"}),
        json!({"ctl": "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \u{7f}\u{80}\u{a0}\u{2028}"}),
        json!({"quotes": "\"q\" \\ / '"}),
        json!([1.0, 0.1, 1e16, 1.5e16, 1e15, 1e-5, 1e-4, 0.0001234, 123.456, -2.5e-7]),
        json!([
            -0.0,
            0.0,
            5e-324,
            1.7976931348623157e308,
            2.0e22,
            123456789012345680.0
        ]),
        json!([0, -1, 9007199254740993_u64, u64::MAX, i64::MIN, i64::MAX]),
        json!({"nested": [[[]], [{}], [{"k": [1, {"j": "v"}]}]]}),
        json!({
            "_type": "Prompter",
            "_class_name": "Prompter",
            "_bases": ["Model", "Object", "BaseModel"],
            "temperature": 0.7,
            "predict": "weave:///entity/project/op/Prompter.predict:abc",
        }),
    ]
}

#[test]
fn canonical_json_and_digests_match_python() {
    let values = vectors();
    let expected = python_digests(&values);
    for (v, (text, digest)) in values.iter().zip(&expected) {
        assert_eq!(&canonical_json(v), text, "canonical JSON of {v}");
        assert_eq!(&digest_value(v), digest, "digest of {v}");
        assert_eq!(&digest_bytes(text.as_bytes()), digest);
    }
    // Sanity: the digest is 43 chars of the URL-safe alphabet with `-`/`_` replaced.
    for (_, d) in &expected {
        assert_eq!(d.len(), 43);
        assert!(d.chars().all(|c| c.is_ascii_alphanumeric()), "{d}");
    }
}

#[test]
fn digest_ignores_key_order_but_not_values() {
    let a: Value = serde_json::from_str(r#"{"b": 1, "a": [1, 2]}"#).expect("json");
    let b: Value = serde_json::from_str(r#"{"a": [1, 2], "b": 1}"#).expect("json");
    let c: Value = serde_json::from_str(r#"{"a": [2, 1], "b": 1}"#).expect("json");
    assert_eq!(digest_value(&a), digest_value(&b));
    assert_ne!(digest_value(&a), digest_value(&c));
    assert_eq!(canonical_json(&a), r#"{"a": [1, 2], "b": 1}"#);
}

#[test]
fn object_ref_round_trips() {
    for uri in [
        "weave:///entity/project/object/Model:abc123",
        "weave:///e/p/op/Prompter.predict:Zx9Y",
        "weave:///my-team/proj.v2/object/name_with_underscores:latest",
        "weave:///e/p/object/Name:with:colons:d1",
        "weave:///e/p/table/0123abcd",
        "weave:///e/p/call/01a21415-79fe-751f-993e-f2ac932fe5a3",
        "weave:///e/p/object/ds:d/attr/rows/id/r1/key/question",
    ] {
        let r = WeaveRef::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert_eq!(r.to_string(), uri);
        assert_eq!(WeaveRef::parse(&r.to_string()).expect("reparse"), r);
    }
    let r = WeaveRef::parse("weave:///ent/proj/op/my_op:dig").expect("parse");
    assert_eq!(
        (
            r.entity.as_str(),
            r.project.as_str(),
            r.kind,
            r.name.as_str(),
            r.digest.as_str()
        ),
        ("ent", "proj", RefKind::Op, "my_op", "dig")
    );
    let r = WeaveRef::parse("weave:///e/p/object/Name:with:colons:d1").expect("parse");
    assert_eq!(
        (r.name.as_str(), r.digest.as_str()),
        ("Name:with:colons", "d1")
    );
    assert_eq!(r.kind, RefKind::Object);
}

#[test]
fn malformed_refs_are_rejected() {
    for uri in [
        "",
        "weave://e/p/object/n:d",
        "http:///e/p/object/n:d",
        "weave:///e/p/object/n",
        "weave:///e/p/thing/n:d",
        "weave:///e/p/object",
        "weave:///e/p",
        "weave:////p/object/n:d",
        "weave:///e//object/n:d",
        "weave:///e/p/object/:d",
        "weave:///e/p/object/n:",
    ] {
        match WeaveRef::parse(uri) {
            Err(e) => assert_eq!(e.uri, uri),
            Ok(r) => panic!("{uri:?} should be an invalid ref, got {r:?}"),
        }
    }
    let msg = WeaveRef::parse("nope").unwrap_err().to_string();
    assert!(msg.contains("weave:///<entity>/<project>"), "{msg}");
    let err: weave::Error = WeaveRef::parse("nope").unwrap_err().into();
    assert!(
        err.to_string().starts_with("invalid weave ref `nope`"),
        "{err}"
    );
}

#[weave::op]
fn hashed(x: u32) -> u32 {
    x * 3
}

/// The macro hashes an op's code at compile time; the runtime and the store hash the stored
/// file and op value again: all three agree.
#[test]
fn macro_digests_match_the_runtime_and_the_store() {
    let t = weave_tests::Traced::new("digests");
    hashed(1);
    let store = t.store();
    let op = store.versions("hashed").pop().expect("op stored");
    let code = store.op_code(&op);
    assert!(code.contains("x * 3"), "{code}");
    assert_eq!(
        op.val["files"]["obj.rs"],
        json!(digest_bytes(code.as_bytes()))
    );
    assert_eq!(op.digest, weave::digest::object_digest(&op.val));
    let call = t.only("hashed");
    assert_eq!(call.op_digest(), op.digest);
}
