//! Weave refs: `weave:///<entity>/<project>/op/<name>:<digest>` and `.../object/<name>:<digest>`.

use std::fmt;

use crate::error::Error;

/// What a ref points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// An op version.
    Op,
    /// Any other object version (model, dataset, evaluation...).
    Object,
}

/// A parsed ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Entity.
    pub entity: String,
    /// Project.
    pub project: String,
    /// Op or object.
    pub kind: RefKind,
    /// Name.
    pub name: String,
    /// Digest (or a version alias such as `latest`).
    pub digest: String,
}

impl ObjectRef {
    /// Parses a `weave:///...` ref.
    pub fn parse(uri: &str) -> Result<ObjectRef, Error> {
        let bad = || Error::InvalidRef(uri.to_string());
        let rest = uri.strip_prefix("weave:///").ok_or_else(bad)?;
        let mut parts = rest.splitn(4, '/');
        let (Some(entity), Some(project), Some(kind), Some(tail)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let kind = match kind {
            "op" => RefKind::Op,
            "object" => RefKind::Object,
            _ => return Err(bad()),
        };
        let (name, digest) = tail.rsplit_once(':').ok_or_else(bad)?;
        if entity.is_empty() || project.is_empty() || name.is_empty() || digest.is_empty() {
            return Err(bad());
        }
        Ok(ObjectRef {
            entity: entity.into(),
            project: project.into(),
            kind,
            name: name.into(),
            digest: digest.into(),
        })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RefKind::Op => "op",
            RefKind::Object => "object",
        };
        write!(
            f,
            "weave:///{}/{}/{}/{}:{}",
            self.entity, self.project, kind, self.name, self.digest
        )
    }
}
