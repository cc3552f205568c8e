//! Rendering: turning an app's source at one commit into Kubernetes objects.
//!
//! Backends sit behind one trait (issue 4); `kustomize` is the native engine (issue 5).

pub mod kustomize;
