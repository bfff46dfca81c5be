//! One module per resource; each exposes its handlers for the OpenAPI router.

pub mod info;
pub mod ops;
