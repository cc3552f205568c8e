//! Patch merge keys and strategies from the Kubernetes API schema kustomize v5 compiles in
//! (v1.21.2; generated data, see `worker/scripts/gen_merge_keys.py`).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Deserialize)]
struct Data {
    gvks: HashMap<String, String>,
    types: HashMap<String, HashMap<String, (String, String, String)>>,
}

static DATA: OnceLock<Option<Data>> = OnceLock::new();

fn data() -> Option<&'static Data> {
    DATA.get_or_init(|| {
        serde_json::from_str(include_str!("../../../data/k8s-merge-keys.json")).ok()
    })
    .as_ref()
}

/// Where we are in a schema while walking an object.
#[derive(Clone, Copy)]
pub struct TypeRef(Option<&'static str>);

/// What the schema says about one field.
pub struct FieldInfo {
    pub ty: TypeRef,
    pub strategy: &'static str,
    /// The merge keys, comma-separated (several when the schema lists map keys).
    pub merge_key: &'static str,
}

impl FieldInfo {
    /// A field the schema says nothing about.
    pub fn none() -> Self {
        FieldInfo {
            ty: TypeRef(None),
            strategy: "",
            merge_key: "",
        }
    }
}

impl TypeRef {
    /// No schema.
    pub fn none() -> Self {
        TypeRef(None)
    }
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }
    pub fn for_gvk(api_version: &str, kind: &str) -> Self {
        TypeRef(
            data()
                .and_then(|d| d.gvks.get(&format!("{api_version}/{kind}")))
                .map(String::as_str),
        )
    }
    pub fn field(&self, name: &str) -> FieldInfo {
        let none = FieldInfo::none();
        let (Some(t), Some(d)) = (self.0, data()) else {
            return none;
        };
        let Some(f) = d.types.get(t).and_then(|m| m.get(name)) else {
            return none;
        };
        FieldInfo {
            ty: TypeRef(if f.0.is_empty() {
                None
            } else {
                Some(f.0.as_str())
            }),
            strategy: f.1.as_str(),
            merge_key: f.2.as_str(),
        }
    }
}
