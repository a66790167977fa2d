//! sluice-dsl: the typed streams-and-tables DSL that compiles to a runtime topology
//! (DESIGN §4).
//!
//! Nothing is built here yet: the DSL arrives with its own issue, after the runtime. It holds
//! no placeholder functionality on purpose.

pub use sluice_runtime as runtime;
