//! Reading a streamed chat completion: server-sent events (`data: {chunk}` lines, ended by
//! `data: [DONE]`) put back together into one reply.
//!
//! Streaming matters for local servers: tokens arrive as they are generated, so a slow but
//! working server is told apart from a stalled one, and a client that gives up closes a stream
//! the server notices at its next token (llama-cpp-python stops generating then; without
//! streaming it finishes the reply for nobody).

use serde_json::Value;

use super::Usage;

/// Splits a byte stream into server-sent events, returning each event's `data` (its `data:`
/// lines joined by newlines). Comments, `event:`, `id:` and `retry:` fields are ignored.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of an incomplete line.
    partial: Vec<u8>,
    /// `data` lines of the event being read.
    data: Vec<String>,
}

impl SseParser {
    /// Feeds `bytes`; returns the events they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.partial.push(b);
                continue;
            }
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(std::mem::take(&mut self.data).join("\n"));
                }
                continue;
            }
            let line = String::from_utf8_lossy(&line);
            if let Some(value) = line.strip_prefix("data:") {
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
            }
        }
        events
    }

    /// The event left when the stream ends without a blank line after it.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if !self.partial.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
            if let Some(value) = line.strip_prefix("data:") {
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
            }
        }
        (!self.data.is_empty()).then(|| std::mem::take(&mut self.data).join("\n"))
    }
}

/// A reply put together from `chat.completion.chunk`s.
#[derive(Debug, Default)]
pub(crate) struct StreamedReply {
    /// The first choice's content so far.
    pub(crate) content: String,
    /// Its refusal so far.
    pub(crate) refusal: String,
    /// Model name from the chunks.
    pub(crate) model: Option<String>,
    /// The first choice's finish reason, once sent.
    pub(crate) finish_reason: Option<String>,
    /// Usage, when a chunk carried it (with `stream_options.include_usage`).
    pub(crate) usage: Option<Usage>,
    /// Whether `data: [DONE]` arrived.
    pub(crate) done: bool,
}

/// What one event means.
pub(crate) enum Event {
    /// A chunk was added.
    Chunk,
    /// The stream is complete.
    Done,
    /// The server reported an error inside the stream.
    Error(String),
}

impl StreamedReply {
    /// Adds one event's data. `Err` when it is neither `[DONE]` nor a JSON object.
    pub(crate) fn add(&mut self, data: &str) -> Result<Event, String> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(Event::Done);
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| format!("a streamed chunk is not JSON ({e}): {data:?}"))?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = error["message"]
                .as_str()
                .or(error.as_str())
                .map_or_else(|| error.to_string(), str::to_owned);
            return Ok(Event::Error(message));
        }
        if let Some(model) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
            self.model = Some(model.to_owned());
        }
        if let Some(choice) = chunk["choices"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["index"].as_u64().unwrap_or(0) == 0))
        {
            if let Some(text) = choice["delta"]["content"].as_str() {
                self.content.push_str(text);
            }
            if let Some(text) = choice["delta"]["refusal"].as_str() {
                self.refusal.push_str(text);
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_owned());
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let get = |k: &str| usage[k].as_u64();
            let prompt_tokens = get("prompt_tokens").unwrap_or(0);
            let completion_tokens = get("completion_tokens").unwrap_or(0);
            self.usage = Some(Usage {
                requests: 1,
                prompt_tokens,
                completion_tokens,
                total_tokens: get("total_tokens")
                    .unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
            });
        }
        Ok(Event::Chunk)
    }

    /// Whether the reply is complete: `[DONE]` arrived, or a finish reason did before the
    /// stream ended (some servers omit `[DONE]`).
    pub(crate) fn is_complete(&self) -> bool {
        self.done || self.finish_reason.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads_and_line_endings() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: {\"a\"").is_empty());
        assert_eq!(
            p.push(b": 1}\r\n\r\n: comment\n\nevent: x\ndata: b\n"),
            ["{\"a\": 1}"]
        );
        assert_eq!(p.push(b"data:c\n\ndata: [DONE]\n\n"), ["b\nc", "[DONE]"]);
        assert_eq!(p.push(b"data: tail"), Vec::<String>::new());
        assert_eq!(p.finish().as_deref(), Some("tail"));
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn chunks_make_a_reply() {
        let mut r = StreamedReply::default();
        let chunk = |delta: &str, finish: Option<&str>| {
            serde_json::json!({"model": "m", "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": finish}]})
                .to_string()
        };
        assert!(matches!(r.add(&chunk("{\"a\":", None)), Ok(Event::Chunk)));
        assert!(!r.is_complete());
        r.add(&chunk(" 1}", Some("stop"))).unwrap();
        r.add(r#"{"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}"#)
            .unwrap();
        assert!(r.is_complete());
        assert!(matches!(r.add("[DONE]"), Ok(Event::Done)));
        assert_eq!(r.content, "{\"a\": 1}");
        assert_eq!(r.model.as_deref(), Some("m"));
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.usage.unwrap().total_tokens, 5);

        assert!(matches!(
            r.add(r#"{"error": {"message": "out of memory"}}"#),
            Ok(Event::Error(m)) if m == "out of memory"
        ));
        assert!(r.add("not json").is_err());
    }
}
