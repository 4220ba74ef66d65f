//! Finding a HumanEval+ or MBPP+ file: an explicit path, the environment, or EvalPlus's
//! GitHub release (where `evalplus` itself downloads it from), cached.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::Benchmark;

/// Environment variable overriding the release download's base URL (mirrors, tests);
/// default `https://github.com/evalplus`.
pub const RELEASE_BASE_ENV: &str = "EVALPLUS_RELEASE_BASE";
const DEFAULT_RELEASE_BASE: &str = "https://github.com/evalplus";

impl Benchmark {
    /// The release `evalplus==0.3.1` pins (`HUMANEVAL_PLUS_VERSION`, `MBPP_PLUS_VERSION`).
    pub fn release_version(self) -> &'static str {
        match self {
            Benchmark::HumanEvalPlus => "v0.1.10",
            Benchmark::MbppPlus => "v0.2.0",
        }
    }

    /// EvalPlus's hash (MD5 of the decompressed file) of that release.
    pub fn release_hash(self) -> &'static str {
        match self {
            Benchmark::HumanEvalPlus => "fe585eb4df8c88d844eeb463ea4d0302",
            Benchmark::MbppPlus => "ee43ecabebf20deef4bb776a405ac5b1",
        }
    }

    /// Environment variables naming a local file, in the order they are consulted: ours,
    /// then EvalPlus's own override.
    pub fn path_env(self) -> [&'static str; 2] {
        match self {
            Benchmark::HumanEvalPlus => ["HUMANEVAL_PLUS_PATH", "HUMANEVAL_OVERRIDE_PATH"],
            Benchmark::MbppPlus => ["MBPP_PLUS_PATH", "MBPP_OVERRIDE_PATH"],
        }
    }

    /// The release asset's URL under `base`.
    pub fn release_url(self, base: &str) -> String {
        format!(
            "{}/{}_release/releases/download/{}/{}.jsonl.gz",
            base.trim_end_matches('/'),
            self.file_stem().to_lowercase(),
            self.release_version(),
            self.file_stem()
        )
    }
}

/// Resolves the file: `explicit`, else the first of [`Benchmark::path_env`] that is set,
/// else the cached download (downloading it first if needed).
pub async fn dataset_path(
    benchmark: Benchmark,
    explicit: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    for var in benchmark.path_env() {
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
    }
    let cached = crate::hub::cache_dir().join("datasets").join(format!(
        "{}-{}.jsonl.gz",
        benchmark.file_stem(),
        benchmark.release_version()
    ));
    if cached.is_file() {
        return Ok(cached);
    }
    let base = std::env::var(RELEASE_BASE_ENV).unwrap_or_else(|_| DEFAULT_RELEASE_BASE.into());
    let url = benchmark.release_url(&base);
    download(benchmark, &url, &cached).await.with_context(|| {
        let [ours, theirs] = benchmark.path_env();
        format!(
            "could not download {benchmark} from {url}; pass --dataset-path PATH or set \
             {ours} (or {theirs}) to a local {}.jsonl(.gz)",
            benchmark.file_stem()
        )
    })?;
    Ok(cached)
}

/// Downloads the release asset at `url` into `dest`, after checking that it decompresses to
/// the pinned release (EvalPlus's hash).
pub async fn download(benchmark: Benchmark, url: &str, dest: &Path) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let body = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&body[..]), &mut raw)
        .context("the download is not a gzip file")?;
    let hash = super::data::hex(&<md5::Md5 as md5::Digest>::digest(&raw));
    if hash != benchmark.release_hash() {
        bail!(
            "the download has hash {hash}, not {} (EvalPlus's hash of {} {})",
            benchmark.release_hash(),
            benchmark,
            benchmark.release_version()
        );
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = dest.with_extension(format!("part{}", std::process::id()));
    std::fs::write(&tmp, &body).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dest).with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_urls_match_evalplus() {
        assert_eq!(
            Benchmark::HumanEvalPlus.release_url("https://github.com/evalplus/"),
            "https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/HumanEvalPlus.jsonl.gz"
        );
        assert_eq!(
            Benchmark::MbppPlus.release_url("http://127.0.0.1:1"),
            "http://127.0.0.1:1/mbppplus_release/releases/download/v0.2.0/MbppPlus.jsonl.gz"
        );
    }
}
