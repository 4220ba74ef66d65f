//! Quickstart: nested sync and async ops, a model with a method op, and an error, traced into
//! the embedded store. Run: `cargo run -p weave-examples --bin quickstart`.

use serde::Serialize;

/// A toy "LLM": a model whose version covers its fields and the code of its ops.
#[derive(weave::Model, Serialize)]
struct Summarizer {
    model_name: String,
    max_words: usize,
}

#[weave::ops]
impl Summarizer {
    #[weave::op]
    async fn predict(&self, text: &str) -> String {
        let words = tokenize(text);
        // Pretend we called an LLM and it told us how many tokens it used.
        weave::add_usage(
            &self.model_name,
            weave::Usage::request(words.len() as u64, self.max_words as u64),
        );
        words
            .into_iter()
            .take(self.max_words)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[weave::op]
fn tokenize(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_lowercase).collect()
}

#[derive(Debug, thiserror::Error)]
#[error("cannot summarise an empty text")]
struct EmptyText;

#[weave::op]
async fn summarize_all(model: &Summarizer, texts: Vec<String>) -> Result<Vec<String>, EmptyText> {
    let mut out = Vec::new();
    for t in &texts {
        if t.trim().is_empty() {
            return Err(EmptyText);
        }
        out.push(model.predict(t).await);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = weave::init("quickstart")?;
    let model = Summarizer {
        model_name: "toy-llm".into(),
        max_words: 3,
    };
    let texts = vec![
        "Weave records every call of an op".to_string(),
        "Models are versioned by their attributes and code".to_string(),
    ];
    println!("{:?}", summarize_all(&model, texts).await?);
    // An error is recorded as the call's exception; the value is still returned.
    let failed = summarize_all(&model, vec![" ".into()]).await;
    println!("{failed:?}");

    client.flush()?;
    // Read back through the store's interface (the same one the CLI and a server use).
    let store = client.store()?;
    let db = store.path().display().to_string();
    let roots = weave::store::TraceStore::calls_query_vec(
        &store,
        weave::types::CallsQueryReq {
            project_id: client.project_id(),
            filter: Some(weave::types::CallsFilter {
                trace_roots_only: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await?;
    println!("\nTraces are in {db} (project {}).", client.project_id());
    println!("Look at them with the weave CLI:");
    println!("  cargo run -p weave-cli -- --db {db} calls");
    if let Some(root) = roots.first() {
        println!("  cargo run -p weave-cli -- --db {db} trace {}", root.id);
    }
    Ok(())
}
