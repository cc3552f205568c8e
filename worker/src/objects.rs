//! Kubernetes objects as Capstan handles them after rendering: a JSON value plus its identity.
//!
//! Identity is (API group, kind, namespace, name) — the version is left out on purpose, so moving
//! an object from `v1beta1` to `v1` reads as a change, not as a removal plus an addition.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::yaml::{self, YamlError};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectId {
    /// API group; empty for the core group (`v1`).
    pub group: String,
    pub kind: String,
    /// `None` for cluster-scoped objects and for namespaced ones rendered without a namespace.
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.group.is_empty() {
            write!(f, "{}/", self.group)?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, " {ns}/{}", self.name)
        } else {
            write!(f, " {}", self.name)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{file}: document {index} is not a Kubernetes object: {reason}")]
    NotAnObject {
        file: String,
        index: usize,
        reason: String,
    },
}

/// One rendered object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct K8sObject {
    pub id: ObjectId,
    pub api_version: String,
    pub value: Value,
}

impl K8sObject {
    /// Reads identity from `apiVersion`, `kind`, `metadata.name` and `metadata.namespace`.
    pub fn from_value(value: Value) -> Result<Self, String> {
        let obj = value.as_object().ok_or("not a mapping")?;
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or("missing apiVersion")?
            .to_string();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("missing kind")?
            .to_string();
        let meta = obj.get("metadata").and_then(Value::as_object);
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .ok_or("missing metadata.name")?
            .to_string();
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let group = match api_version.rsplit_once('/') {
            Some((g, _)) => g.to_string(),
            None => String::new(),
        };
        Ok(K8sObject {
            id: ObjectId {
                group,
                kind,
                namespace,
                name,
            },
            api_version,
            value,
        })
    }
}

/// Parses a rendered multi-document stream (e.g. `kustomize build` output) into objects.
pub fn parse_stream(text: &str, file: &str) -> Result<Vec<K8sObject>, ObjectError> {
    yaml::parse_documents(text, file)?
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            K8sObject::from_value(v).map_err(|reason| ObjectError::NotAnObject {
                file: file.to_string(),
                index,
                reason,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn identity_ignores_version_and_reads_core_group() {
        let objs = parse_stream(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
            "out.yaml",
        )
        .unwrap();
        assert_eq!(objs[0].id.group, "apps");
        assert_eq!(objs[0].id.to_string(), "apps/Deployment shop/web");
        assert_eq!(objs[1].id.group, "");
        assert_eq!(objs[1].id.namespace, None);
        assert_eq!(objs[1].id.to_string(), "Namespace shop");
    }

    #[test]
    fn documents_without_identity_are_named() {
        let err = parse_stream("apiVersion: v1\nkind: ConfigMap\n", "x.yaml").unwrap_err();
        assert!(err.to_string().contains("missing metadata.name"), "{err}");
    }
}
