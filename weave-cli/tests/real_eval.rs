//! `weave evals` / `eval` / `compare` on the store that a real `weave::eval::Evaluation` leaves.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weave::eval::{scorer, BoxError, Dataset, Evaluation, Predict};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    word: String,
}

#[derive(weave::Model, Serialize)]
struct Shouter {
    upper: bool,
}

#[weave::ops]
impl Shouter {
    #[weave::op]
    async fn predict(&self, word: &str) -> String {
        if self.upper {
            word.to_uppercase()
        } else {
            word.to_string()
        }
    }
}

impl Predict<Row> for Shouter {
    type Output = String;
    async fn predict_row(&self, row: &Row) -> Result<String, BoxError> {
        Ok(Shouter::predict(self, &row.word).await)
    }
}

#[weave::op]
fn unchanged(row: &Row, output: &String) -> bool {
    &row.word == output
}

fn weave_json(db: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_weave"))
        .env_remove("COLUMNS")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run weave");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "weave {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("weave {args:?}: {e}\n{stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evals_of_a_real_evaluation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("w.db");
    let client = weave::Settings::new("cli/real")
        .db_path(&db)
        .quiet()
        .init()
        .expect("init");
    let rows = vec![
        Row { word: "abc".into() },
        Row { word: "DEF".into() },
        Row { word: "ghi".into() },
    ];
    let evaluation = Evaluation::new("shout", Dataset::from_rows("words", &rows).expect("ds"))
        .scorer(scorer("unchanged", unchanged))
        .progress(false);
    evaluation
        .evaluate(&Shouter { upper: false })
        .await
        .expect("a");
    evaluation
        .evaluate(&Shouter { upper: true })
        .await
        .expect("b");
    drop(client);

    let evals = weave_json(&db, &["evals", "--json"]);
    let evals = evals.as_array().expect("array");
    assert_eq!(evals.len(), 2);
    // Newest first: the upper-casing model, version 1.
    assert_eq!(evals[0]["model"], "Shouter:v1");
    assert_eq!(evals[1]["model"], "Shouter:v0");
    assert_eq!(evals[0]["dataset"], "words:v0");
    assert_eq!(evals[0]["summary"]["unchanged"]["true_count"], 1);
    assert_eq!(evals[1]["summary"]["unchanged"]["true_count"], 3);

    let id_b = evals[0]["id"].as_str().expect("id").to_string();
    let id_a = evals[1]["id"].as_str().expect("id").to_string();
    let one = weave_json(&db, &["eval", &id_b, "--json"]);
    let text = one.to_string();
    assert!(text.contains("ABC") && text.contains("GHI"), "{text}");

    let cmp = weave_json(&db, &["compare", &id_a, &id_b, "--json"]);
    let text = cmp.to_string();
    // Two rows regressed (abc, ghi); DEF is unchanged.
    assert!(text.contains("abc") && text.contains("ghi"), "{text}");
    assert!(!text.contains("\"DEF\""), "{text}");
}
