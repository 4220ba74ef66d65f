//! [`RemoteConfig`]: where to send, with what key, and the limits of buffering, batching and
//! retrying; [`RemoteConfig::from_env`] reads Weave's environment variables.

use std::time::Duration;

/// The trace server's URL (this project's name for it).
pub const URL_ENV: &str = "WEAVE_TRACE_SERVER_URL";
/// The trace server's URL (the Python client's name for it; honoured too).
pub const WF_URL_ENV: &str = "WF_TRACE_SERVER_URL";
/// The API key, sent as Basic auth `api:<key>` as the Python client does.
pub const API_KEY_ENV: &str = "WANDB_API_KEY";

/// How failed requests are retried: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Longest delay between two tries.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based): `initial * 2^attempt`, capped at
    /// `max`, of which a random half is taken off ("equal jitter"), so that many clients
    /// that failed together do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let d = exp.min(self.max);
        let half = d / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Where and how to send traces.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Base URL of the trace server (`http://127.0.0.1:6345`); a trailing `/` is ignored.
    pub url: String,
    /// API key (Basic auth `api:<key>`); `None`: no `Authorization` header.
    pub api_key: Option<String>,
    /// Most records held in memory (buffered, waiting for an end, or being sent); past it
    /// the oldest calls are dropped and counted.
    pub max_buffered: usize,
    /// Most calls in one `calls/complete` request.
    pub batch_max_calls: usize,
    /// Largest `calls/complete` body, in bytes (before compression); larger batches are
    /// split.
    pub batch_max_bytes: usize,
    /// A call still running after this long is sent as a start (and its end later), so it
    /// shows up as running.
    pub eager_after: Duration,
    /// Ops whose calls are sent as a start at once (Weave's `eager_call_start`): a running
    /// evaluation shows up before it ends. Matched against the op's name.
    pub eager_ops: Vec<String>,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Gzip request bodies when the server says it accepts them (`/server_info`).
    pub compress: bool,
}

impl RemoteConfig {
    /// Defaults for a server at `url`, with no key.
    pub fn new(url: impl Into<String>) -> RemoteConfig {
        RemoteConfig {
            url: url.into().trim_end_matches('/').to_string(),
            api_key: None,
            max_buffered: 200_000,
            batch_max_calls: 1000,
            batch_max_bytes: 16 * 1024 * 1024,
            eager_after: Duration::from_secs(2),
            eager_ops: vec!["Evaluation.evaluate".into()],
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            compress: true,
        }
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> RemoteConfig {
        self.api_key = Some(key.into()).filter(|k: &String| !k.is_empty());
        self
    }

    /// From the environment: the URL from `WEAVE_TRACE_SERVER_URL`, else
    /// `WF_TRACE_SERVER_URL`; the key from `WANDB_API_KEY`. `None` when no URL is set
    /// (traces then stay local).
    pub fn from_env() -> Option<RemoteConfig> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let url = var(URL_ENV).or_else(|| var(WF_URL_ENV))?;
        let mut config = RemoteConfig::new(url.trim());
        if let Some(key) = var(API_KEY_ENV) {
            config = config.with_api_key(key.trim());
        }
        Some(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 0..40 {
            let d = p.delay(attempt);
            let full = (Duration::from_millis(100) * 2u32.pow(attempt.min(10))).min(p.max);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
        // Jitter: not every delay is the same.
        let ds: std::collections::HashSet<_> = (0..20).map(|_| p.delay(3)).collect();
        assert!(ds.len() > 1);
    }

    #[test]
    fn url_is_normalised() {
        assert_eq!(RemoteConfig::new("http://h:1/").url, "http://h:1");
        assert_eq!(RemoteConfig::new("x").with_api_key("").api_key, None);
    }
}
