//! Models and op versions: `#[derive(weave::Model)]`, `#[weave::ops]`, refs, digests and
//! version history in the store.

use serde_json::json;
use weave::types::ObjSchema;
use weave::Model as _;
use weave_tests::Traced;

#[derive(weave::Model, serde::Serialize)]
struct Prompter {
    template: String,
    temperature: f64,
    #[weave(skip)]
    #[allow(dead_code)]
    cache_dir: String,
}

#[weave::ops]
impl Prompter {
    #[weave::op]
    fn predict(&self, question: &str) -> String {
        self.template.replace("{q}", question)
    }

    /// Not an op: not part of the model's value.
    fn helper(&self) -> usize {
        self.template.len()
    }
}

#[derive(weave::Model, serde::Serialize)]
struct Pipeline {
    prompter: Prompter,
    retries: u32,
}

#[weave::ops]
impl Pipeline {
    /// Doc comments and other attributes are part of the op's code, and of its digest in
    /// the model's value.
    #[weave::op(name = "Pipeline.run_custom")]
    #[inline(never)]
    fn run(&self, question: &str) -> String {
        self.prompter.predict(question)
    }
}

fn prompter(template: &str, cache_dir: &str) -> Prompter {
    Prompter {
        template: template.into(),
        temperature: 0.5,
        cache_dir: cache_dir.into(),
    }
}

fn model_versions(t: &Traced, name: &str) -> Vec<ObjSchema> {
    t.store().versions(name)
}

#[test]
fn method_op_records_self_as_the_model_ref_and_stores_the_model() {
    let t = Traced::new("test-entity/models");
    let p = prompter("Q: {q}", "/tmp/a");
    assert_eq!(p.predict("why"), "Q: why");
    assert_eq!(p.helper(), 6);
    let call = t.only("Prompter.predict");
    let version = p.weave_version();
    let self_ref = call.inputs["self"].as_str().expect("self is a ref");
    assert_eq!(
        self_ref,
        format!(
            "weave:///test-entity/models/object/Prompter:{}",
            version.digest
        )
    );
    assert_eq!(self_ref, version.uri());
    assert_eq!(call.inputs["question"], "why");

    let versions = model_versions(&t, "Prompter");
    assert_eq!(versions.len(), 1);
    let v = &versions[0];
    assert_eq!(v.digest, version.digest);
    assert_eq!(v.kind, "object");
    assert_eq!(v.base_object_class.as_deref(), Some("Model"));
    assert_eq!(v.version_index, 0);
    assert!(v.latest());
    assert_eq!(v.uri(), self_ref);
    assert_eq!(v.val, version.val);
    assert_eq!(v.val["_type"], "Prompter");
    assert_eq!(v.val["_class_name"], "Prompter");
    assert_eq!(v.val["template"], "Q: {q}");
    assert_eq!(v.val["temperature"], 0.5);
    assert!(v.val.get("cache_dir").is_none(), "skipped field stored");
    assert!(v.val.get("helper").is_none(), "non-op method stored");
    // The op ref in the model's value is the op the call ran.
    assert_eq!(v.val["predict"], call.op_name.as_str());
    assert!(call
        .op_name
        .starts_with("weave:///test-entity/models/op/Prompter.predict:"));
    let op = t.store().resolve(&call.op_name).expect("op stored");
    assert_eq!(op.kind, "op");
    assert_eq!(op.base_object_class, None, "Weave gives ops no base class");
    assert!(t
        .store()
        .op_code(&op)
        .contains("fn predict(&self, question: &str)"));
    // The model ref resolves to the model.
    let resolved = t.store().resolve(self_ref).expect("model");
    assert_eq!(resolved.digest, version.digest);
}

#[test]
fn same_values_same_version_changed_value_new_version() {
    let t = Traced::new("models");
    let a = prompter("A {q}", "/tmp/one");
    // A skipped field does not change the version.
    let a2 = prompter("A {q}", "/tmp/two");
    assert_eq!(a.weave_version().digest, a.weave_version().digest);
    assert_eq!(a.weave_version(), a2.weave_version());
    a.predict("x");
    a2.predict("y");
    a.predict("z");
    let versions = model_versions(&t, "Prompter");
    assert_eq!(versions.len(), 1, "{versions:#?}");

    let b = prompter("B {q}", "/tmp/one");
    assert_ne!(b.weave_version().digest, a.weave_version().digest);
    b.predict("x");
    let versions = model_versions(&t, "Prompter");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].digest, a.weave_version().digest);
    assert_eq!(versions[0].version_index, 0);
    assert!(!versions[0].latest());
    assert_eq!(versions[1].digest, b.weave_version().digest);
    assert_eq!(versions[1].version_index, 1);
    assert!(versions[1].latest());
    let latest = t.store().object("Prompter", "latest").expect("latest");
    assert_eq!(latest.digest, b.weave_version().digest);
    // Back to the first value: no new version (the digest exists), latest does not move.
    a.predict("again");
    let versions = model_versions(&t, "Prompter");
    assert_eq!(versions.len(), 2);
    let calls = t.calls();
    let refs: Vec<_> = calls
        .iter()
        .map(|c| c.inputs["self"].as_str().unwrap_or_default().to_string())
        .collect();
    let uri_a = a.weave_version().uri();
    let uri_b = b.weave_version().uri();
    assert_eq!(
        refs,
        [&uri_a, &uri_a, &uri_a, &uri_b, &uri_a].map(String::clone)
    );
    // One op version, however many calls.
    let ops = t.store().versions("Prompter.predict");
    assert_eq!(ops.len(), 1);
}

#[test]
fn nested_model_is_stored_as_its_own_ref() {
    let t = Traced::new("models");
    let pipe = Pipeline {
        prompter: prompter("N {q}", "/x"),
        retries: 2,
    };
    assert_eq!(pipe.run("q"), "N q");
    let inner = pipe.prompter.weave_version();
    let outer = pipe.weave_version();
    assert_eq!(outer.val["prompter"], inner.uri().as_str());
    assert_eq!(outer.val["retries"], 2);
    assert_eq!(
        outer.val["run"]
            .as_str()
            .map(|s| s.contains("/op/Pipeline.run_custom:")),
        Some(true)
    );

    let run = t.only("Pipeline.run_custom");
    assert_eq!(run.inputs["self"], outer.uri().as_str());
    assert_eq!(outer.val["run"], run.op_name.as_str());
    let predict = t.only("Prompter.predict");
    assert_eq!(predict.parent_id.as_deref(), Some(run.id.as_str()));
    assert_eq!(predict.inputs["self"], inner.uri().as_str());

    let store = t.store();
    let p = store.object("Pipeline", "latest").expect("stored");
    assert_eq!(p.val, outer.val);
    let nested = store
        .resolve(p.val["prompter"].as_str().expect("ref"))
        .expect("nested model stored");
    assert_eq!(nested.val["template"], "N {q}");
    assert_eq!(nested.base_object_class.as_deref(), Some("Model"));
    let models: Vec<_> = store
        .latest(Some("Model"), None)
        .into_iter()
        .map(|o| o.object_id)
        .collect();
    assert_eq!(models, ["Pipeline", "Prompter"]);

    // Changing the nested model changes the outer version.
    let pipe2 = Pipeline {
        prompter: prompter("M {q}", "/x"),
        retries: 2,
    };
    assert_ne!(pipe2.weave_version().digest, outer.digest);
}

#[test]
fn model_version_is_stable_and_covers_ops() {
    let _t = Traced::new("models");
    let p = prompter("S {q}", "/s");
    let v1 = p.weave_version();
    let v2 = p.weave_version();
    assert_eq!(v1, v2);
    // Weave's object digest: refs inside are hashed in their internal form.
    assert_eq!(v1.digest, weave::digest::object_digest(&v1.val));
    assert_ne!(v1.digest, weave::digest::digest_value(&v1.val));
    assert!(v1.val["predict"]
        .as_str()
        .is_some_and(|s| s.contains("/op/Prompter.predict:")));
    assert_eq!(
        v1.val["_bases"],
        json!(["Model", "Object", "BaseModel"]),
        "{:#}",
        v1.val
    );
    assert_eq!(weave::model_version(&p), v1);
}

mod first {
    #[weave::op(name = "same")]
    pub fn op(x: u32) -> u32 {
        x + 1
    }
}

mod second {
    #[weave::op(name = "same")]
    pub fn op(x: u32) -> u32 {
        x * 2 + 40
    }
}

#[weave::op]
fn versioned(x: u32) -> u32 {
    x
}

#[test]
fn op_versions_follow_the_code() {
    let t = Traced::new("models");
    versioned(1);
    versioned(2);
    let v = t.store().versions("versioned");
    assert_eq!(v.len(), 1, "same code, one version");
    let calls = t.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].op_name, calls[1].op_name);
    assert_eq!(calls[0].op_digest(), v[0].digest);

    assert_eq!(first::op(1), 2);
    assert_eq!(second::op(1), 42);
    first::op(2);
    let same = t.store().versions("same");
    assert_eq!(same.len(), 2, "{same:#?}");
    assert_ne!(same[0].digest, same[1].digest);
    assert_eq!(same[0].version_index, 0);
    assert_eq!(same[1].version_index, 1);
    assert!(!same[0].latest());
    assert!(same[1].latest());
    let code0 = t.store().op_code(&same[0]);
    let code1 = t.store().op_code(&same[1]);
    assert!(code0.contains("x + 1"), "{code0}");
    assert!(code1.contains("x * 2 + 40"), "{code1}");
    // Where the code is: metadata beside the version, not part of its value or digest.
    let meta = |o: &ObjSchema| o.metadata.clone().expect("op metadata");
    assert_eq!(meta(&same[0])["module"], "models::first");
    assert_eq!(meta(&same[1])["module"], "models::second");
    assert_eq!(meta(&same[0])["language"], "rust");
    assert_eq!(meta(&same[0])["file"], "tests/tests/models.rs");
    assert!(meta(&same[0])["line"].as_u64().unwrap() > 200);
    // Weave's op value: the code file, by digest.
    assert_eq!(same[0].val["_type"], "CustomWeaveType");
    assert_eq!(same[0].val["weave_type"], json!({"type": "Op"}));
    let same_calls: Vec<_> = t
        .calls()
        .into_iter()
        .filter(|c| c.op_display_name() == "same")
        .collect();
    assert_eq!(same_calls.len(), 3);
    assert_eq!(same_calls[0].op_digest(), same[0].digest);
    assert_eq!(same_calls[1].op_digest(), same[1].digest);
    assert_eq!(same_calls[2].op_digest(), same[0].digest);
    let ops = t.store().latest(None, Some(true));
    let names: Vec<_> = ops.iter().map(|o| o.object_id.as_str()).collect();
    assert_eq!(names, ["same", "versioned"]);
}
