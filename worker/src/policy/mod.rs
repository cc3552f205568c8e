//! Policy engine: built-in checks, Rego policies and cross-app checks over rendered objects.

pub mod bundle;
pub mod findings;
pub mod rego;
pub mod schema;
