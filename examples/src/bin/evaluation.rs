//! A small evaluation end to end with the embedded store:
//! `cargo run -p weave-examples --bin evaluation`.

use serde::{Deserialize, Serialize};
use weave::eval::{scorer, BoxError, Dataset, Evaluation, Predict};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Question {
    question: String,
    answer: String,
}

/// Answers from a lookup table: a stand-in for an LLM.
#[derive(weave::Model, Serialize)]
struct Lookup {
    fallback: String,
}

#[weave::ops]
impl Lookup {
    #[weave::op]
    async fn predict(&self, question: &str) -> String {
        match question {
            "capital of France?" => "Paris".into(),
            "2 + 2?" => "4".into(),
            _ => self.fallback.clone(),
        }
    }
}

impl Predict<Question> for Lookup {
    type Output = String;
    async fn predict_row(&self, row: &Question) -> Result<String, BoxError> {
        Ok(Lookup::predict(self, &row.question).await)
    }
}

#[weave::op]
fn exact_match(row: &Question, output: &String) -> bool {
    row.answer.eq_ignore_ascii_case(output)
}

#[derive(Serialize)]
struct Overlap {
    shares_a_word: bool,
    length_ratio: f64,
}

#[weave::op]
fn overlap(row: &Question, output: &String) -> Overlap {
    let a = row.answer.to_lowercase();
    Overlap {
        shares_a_word: output
            .to_lowercase()
            .split(' ')
            .any(|w| a.split(' ').any(|aw| aw == w)),
        length_ratio: output.len() as f64 / row.answer.len().max(1) as f64,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = weave::init("evaluation-example")?;
    let rows = vec![
        Question {
            question: "capital of France?".into(),
            answer: "Paris".into(),
        },
        Question {
            question: "2 + 2?".into(),
            answer: "4".into(),
        },
        Question {
            question: "largest planet?".into(),
            answer: "Jupiter".into(),
        },
    ];
    let evaluation = Evaluation::new("trivia", Dataset::from_rows("trivia-questions", &rows)?)
        .scorer(scorer("exact_match", exact_match))
        .scorer(scorer("overlap", overlap));
    let results = evaluation
        .evaluate(&Lookup {
            fallback: "I don't know".into(),
        })
        .await?;
    println!("{}", serde_json::to_string_pretty(&results.summary)?);
    for r in &results.rows {
        println!(
            "row {}: {:?} -> {}",
            r.example,
            r.output,
            serde_json::Value::Object(r.scores.clone())
        );
    }
    client.flush()?;
    let db = client.db_path().expect("the SQLite store").to_path_buf();
    println!(
        "\nTraces: {} — try `cargo run -p weave-cli -- --db {} evals`",
        db.display(),
        db.display()
    );
    Ok(())
}
