//! The request handlers, one module per family of APIs. Each takes the decoded request and
//! returns the response body; errors travel as Kafka error codes inside it.

pub mod admin;
pub mod commits;
pub mod fetch;
pub mod groups;
pub mod offsets;
pub mod produce;
pub mod setup;
pub mod txn;
