//! Loading HumanEval: a local `.jsonl` / `.jsonl.gz` file, or the Hugging Face Hub
//! (`openai/openai_humaneval`, through the datasets-server rows API) with an on-disk cache.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::Value;

/// Environment variable naming a local HumanEval file.
pub const HUMANEVAL_PATH_ENV: &str = "HUMANEVAL_PATH";
/// Environment variable overriding the datasets-server endpoint (for mirrors and tests).
pub const HF_ENDPOINT_ENV: &str = "HF_DATASETS_SERVER";
const DEFAULT_ENDPOINT: &str = "https://datasets-server.huggingface.co";
const DATASET: &str = "openai/openai_humaneval";
const PAGE: usize = 100;

/// Where cached downloads live: `$WEAVE_CACHE_DIR`, else `$XDG_CACHE_HOME/weave`, else
/// `~/.cache/weave`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WEAVE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("weave");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("weave"),
        None => PathBuf::from(".weave").join("cache"),
    }
}

/// Resolves the HumanEval file: the explicit path, else `$HUMANEVAL_PATH`, else the Hub cache
/// (downloading it first if needed).
pub async fn humaneval_path(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(HUMANEVAL_PATH_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let cached = cache_dir().join("datasets").join("openai_humaneval.jsonl");
    if cached.is_file() {
        return Ok(cached);
    }
    let endpoint = std::env::var(HF_ENDPOINT_ENV).unwrap_or_else(|_| DEFAULT_ENDPOINT.to_string());
    download(&endpoint, &cached).await.with_context(|| {
        format!(
            "could not download HumanEval ({DATASET}) from the Hugging Face Hub at {endpoint}; \
             pass --dataset-path PATH or set {HUMANEVAL_PATH_ENV} to a local HumanEval.jsonl(.gz)"
        )
    })?;
    Ok(cached)
}

/// Downloads every row of the test split into `dest` as JSON lines.
pub async fn download(endpoint: &str, dest: &Path) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut rows: Vec<Value> = Vec::new();
    loop {
        let url = format!(
            "{}/rows?dataset={DATASET}&config=openai_humaneval&split=test&offset={}&length={PAGE}",
            endpoint.trim_end_matches('/'),
            rows.len()
        );
        let resp = client.get(&url).send().await?.error_for_status()?;
        let body: Value = resp.json().await?;
        let page = body["rows"]
            .as_array()
            .context("unexpected response: no `rows` array")?;
        for r in page {
            rows.push(r["row"].clone());
        }
        let total = body["num_rows_total"].as_u64().unwrap_or(rows.len() as u64) as usize;
        if page.is_empty() || rows.len() >= total {
            break;
        }
    }
    if rows.is_empty() {
        bail!("the Hub returned no rows");
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = dest.with_extension("jsonl.part");
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dest).with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}
