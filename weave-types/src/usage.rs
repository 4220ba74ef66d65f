//! Token usage of LLM requests, as Weave records it in `summary.usage[<model>]`.

use serde::{Deserialize, Serialize};

/// Tokens used by LLM requests (one entry of `summary.usage`, keyed by model name). Fields a
/// server or client leaves out read as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Number of requests.
    pub requests: u64,
    /// Prompt (input) tokens.
    pub prompt_tokens: u64,
    /// Completion (output) tokens.
    pub completion_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
}

impl Usage {
    /// Usage of one request.
    pub fn request(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            requests: 1,
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }

    /// Adds `other` to this usage.
    pub fn add(&mut self, other: &Usage) {
        self.requests += other.requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_are_zero() {
        let u: Usage = serde_json::from_str(r#"{"prompt_tokens": 3, "other": 1}"#).unwrap();
        assert_eq!(u.prompt_tokens, 3);
        assert_eq!(u.requests, 0);
        let mut a = Usage::request(1, 2);
        a.add(&Usage::request(10, 20));
        assert_eq!(
            a,
            Usage {
                requests: 2,
                prompt_tokens: 11,
                completion_tokens: 22,
                total_tokens: 33
            }
        );
    }
}
