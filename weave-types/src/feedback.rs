//! Feedback (spec §11): scores, reactions and notes attached to calls by ref.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::JsonMap;
use crate::query::{Query, SortBy};

/// `POST /feedback/create`, and one item of `feedback/batch/create`. Fields newer clients
/// send (`scorer_*`, `span_*`) are accepted and ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackCreateReq {
    /// Client-made id (kept); the server makes one when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// `entity/project`.
    pub project_id: String,
    /// What the feedback is about (a call or object ref).
    pub weave_ref: String,
    /// Who gave it.
    #[serde(default)]
    pub creator: Option<String>,
    /// Filled by the server.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    /// `wandb.runnable.<scorer>`, `wandb.reaction.1`, `wandb.note.1`, ...
    pub feedback_type: String,
    /// The feedback itself.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub payload: JsonMap,
    /// Annotation spec ref.
    #[serde(default)]
    pub annotation_ref: Option<String>,
    /// The scorer op that produced it.
    #[serde(default)]
    pub runnable_ref: Option<String>,
    /// The scorer's call.
    #[serde(default)]
    pub call_ref: Option<String>,
    /// Trigger ref.
    #[serde(default)]
    pub trigger_ref: Option<String>,
}

/// Answer to [`FeedbackCreateReq`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackCreateRes {
    /// Feedback id.
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    /// User (empty when unknown).
    pub wb_user_id: String,
    /// The payload stored.
    pub payload: JsonMap,
}

/// `POST /feedback/batch/create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackCreateBatchReq {
    /// Items.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub batch: Vec<FeedbackCreateReq>,
}

/// Answer to [`FeedbackCreateBatchReq`], one result per item in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackCreateBatchRes {
    /// Results.
    pub res: Vec<FeedbackCreateRes>,
}

/// `POST /feedback/query`: a query over the feedback columns (`id`, `weave_ref`,
/// `feedback_type`, `created_at`, `creator`, `wb_user_id`, `runnable_ref`, `call_ref`,
/// `annotation_ref`, `trigger_ref`, and `payload.<path>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackQueryReq {
    /// `entity/project`.
    pub project_id: String,
    /// Columns to return; `None`: all.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// Filter.
    #[serde(default)]
    pub query: Option<Query>,
    /// Order (default `created_at`, then `id`).
    #[serde(default)]
    pub sort_by: Option<Vec<SortBy>>,
    /// At most this many.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Skip this many.
    #[serde(default)]
    pub offset: Option<u64>,
}

/// Answer to [`FeedbackQueryReq`]: one JSON object per feedback row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackQueryRes {
    /// Rows.
    pub result: Vec<JsonMap>,
}

/// A stored feedback row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// Id.
    pub id: String,
    /// `entity/project`.
    pub project_id: String,
    /// What it is about.
    pub weave_ref: String,
    /// Who gave it.
    #[serde(default)]
    pub creator: Option<String>,
    /// User.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Type.
    pub feedback_type: String,
    /// Payload.
    #[serde(default)]
    pub payload: Value,
    /// Annotation spec ref.
    #[serde(default)]
    pub annotation_ref: Option<String>,
    /// Scorer op ref.
    #[serde(default)]
    pub runnable_ref: Option<String>,
    /// Scorer call ref.
    #[serde(default)]
    pub call_ref: Option<String>,
    /// Trigger ref.
    #[serde(default)]
    pub trigger_ref: Option<String>,
}
