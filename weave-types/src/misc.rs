//! Small endpoints: `server_info`, `refs/read_batch` and `service/projects_info`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /server_info`. Both fields must be PEP 440 versions (spec §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfoRes {
    /// Oldest Python client accepted.
    pub min_required_weave_python_version: String,
    /// This server's version.
    pub trace_server_version: String,
}

/// `POST /refs/read_batch`: refs with an optional extra path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefsReadBatchReq {
    /// External refs.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub refs: Vec<String>,
}

/// Answer to [`RefsReadBatchReq`]: one value per ref, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefsReadBatchRes {
    /// Values (`null` for a deleted object).
    pub vals: Vec<Value>,
}

/// `POST /service/projects_info`: the internal ids of projects (the client asks for them only
/// when it computes digests itself, `WEAVE_ENABLE_CLIENT_SIDE_DIGESTS=true`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectsInfoReq {
    /// `entity/project` ids.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub project_ids: Vec<String>,
}

/// One project of the answer to [`ProjectsInfoReq`] (the answer is a JSON list of these).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    /// `entity/project`, as asked.
    pub external_project_id: String,
    /// The id refs carry inside the server (`weave-trace-internal:///<id>/...`).
    pub internal_project_id: String,
}
