//! The shipped policy bundle (`policies/`), embedded so the engine works on any repository.

/// Shipped CRD schemas in the compact form.
pub const SHIPPED_SCHEMAS: &[(&str, &str)] = &[];
