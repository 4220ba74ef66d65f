//! # weave-remote
//!
//! Sends trace records to a W&B Weave trace server — `weave serve`, or W&B's own with
//! `WANDB_API_KEY` — over Weave's HTTP API, the same code path for both.
//!
//! [`RemoteClient::push`] hands records over without touching the network: they wait in a
//! bounded buffer (when full, the oldest calls are dropped and counted) until a background
//! sender thread delivers them: files and objects one by one, finished calls in batches
//! (`/v2/{entity}/{project}/calls/complete`), long-running calls as an eager `call/start`
//! followed later by `call/end` (so a running evaluation shows up while it runs). Failed
//! requests are retried with exponential backoff and jitter on 429, 5xx and connection errors;
//! a batch the server refuses as too large or malformed is split to isolate what it refuses.
//! [`RemoteClient::flush`] waits, up to a timeout, until everything is delivered and reports
//! what was not.
//!
//! Digests: the client computes object and table digests with Weave's rule for the internal
//! project id (`base64("entity/project")`, which `weave serve` uses too), because the caller
//! puts refs into calls before any answer could arrive. Every `obj/create` and `table/create`
//! answer is checked against that digest; when a server uses another internal id (W&B's
//! hosted one), its digest is recorded and every ref sent afterwards is rewritten to it.

#![warn(missing_docs)]

mod client;
mod config;
mod http;
mod record;
mod rewrite;

pub use client::{RemoteClient, RemoteStats, Undelivered};
pub use config::{RemoteConfig, RetryPolicy, API_KEY_ENV, URL_ENV, WF_URL_ENV};
pub use record::Record;
