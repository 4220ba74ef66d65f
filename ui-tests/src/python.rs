//! Traces logged from Python: the writes of the recorded `weave==0.54` Python session
//! (`shared/fixtures/weave-wire/session.jsonl`: nested ops, an async op, a raising op, a Model,
//! a Dataset, an Evaluation, a rename) replayed over HTTP into a server, as the client sent
//! them (JSON and multipart bodies; reads are skipped).

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The recorded session's project.
pub const PROJECT: &str = "myent/myproj";

/// What the replay logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PythonSession {
    /// The `Evaluation.evaluate` call.
    pub eval_run: String,
    /// The call of the op that raised.
    pub failing_call: String,
}

/// The routes that write.
fn is_write(path: &str) -> bool {
    path.ends_with("/calls/complete")
        || path.ends_with("/call/start")
        || path.ends_with("/call/end")
        || matches!(
            path,
            "/obj/create"
                | "/file/create"
                | "/table/create"
                | "/feedback/batch/create"
                | "/call/update"
        )
}

/// Replays the session's writes against the server at `base` (`http://host:port`).
pub async fn replay(base: &str) -> Result<PythonSession> {
    let path = crate::shared_dir().join("fixtures/weave-wire/session.jsonl");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (set WEAVE_SHARED_DIR)", path.display()))?;
    let http = reqwest::Client::new();
    let mut eval_run = None;
    let mut failing_call = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let rec: Value = serde_json::from_str(line)?;
        let req = &rec["request"];
        let route = req["path"].as_str().unwrap_or_default();
        if req["method"] != "POST" || !is_write(route) {
            continue;
        }
        let body = &req["body"];
        let builder = http.post(format!("{base}{route}"));
        let builder = match body["kind"].as_str() {
            Some("json") => {
                let json = &body["json"];
                if route.ends_with("/call/start")
                    && json["start"]["op_name"]
                        .as_str()
                        .is_some_and(|o| o.contains("/op/Evaluation.evaluate:"))
                {
                    eval_run = json["start"]["id"].as_str().map(str::to_string);
                }
                for c in json["batch"].as_array().into_iter().flatten() {
                    if c["exception"].is_string()
                        && c["op_name"]
                            .as_str()
                            .is_some_and(|o| o.contains("/op/failing_op:"))
                    {
                        failing_call = c["id"].as_str().map(str::to_string);
                    }
                }
                builder.json(json)
            }
            Some("multipart") => {
                let mut form = reqwest::multipart::Form::new();
                for p in body["parts"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap_or_default().to_string();
                    let bytes = match (p["text"].as_str(), p["base64"].as_str()) {
                        (Some(t), _) => t.as_bytes().to_vec(),
                        (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b)?,
                        _ => bail!("a multipart part without content in {}", path.display()),
                    };
                    let mut part = reqwest::multipart::Part::bytes(bytes);
                    if let Some(f) = p["filename"].as_str() {
                        part = part.file_name(f.to_string());
                    }
                    if let Some(ct) = p["content_type"].as_str() {
                        part = part.mime_str(ct)?;
                    }
                    form = form.part(name, part);
                }
                builder.multipart(form)
            }
            other => bail!("request body kind {other:?} in {}", path.display()),
        };
        let res = builder.send().await?;
        if !res.status().is_success() {
            bail!(
                "replaying {route} (seq {}): {} {}",
                rec["seq"],
                res.status(),
                res.text().await.unwrap_or_default()
            );
        }
    }
    Ok(PythonSession {
        eval_run: eval_run.context("the session has no Evaluation.evaluate start")?,
        failing_call: failing_call.context("the session has no failing_op call")?,
    })
}
