//! Who and where: tenants, placement, roles, tokens and the metadata store behind them.
//!
//! This crate holds pure domain logic plus the repositories for its tables. I/O sits
//! behind the [`store::MetadataStore`] trait, with one implementation per backend.

pub mod store;
