//! sluice-dsl: the typed streams-and-tables DSL that compiles to a runtime topology
//! (docs/architecture.md §4).
//!
//! - [`StreamBuilder`]: `stream`, `table`, `global_table`, `build`.
//! - [`Stream`]: the stateless operators (filter, filter_not, map, map_values, flat_map,
//!   flat_map_values, select_key, peek, foreach, merge, split into named branches), `to`,
//!   `repartition`, `to_table`, `process` (the Processor API), grouping ([`Grouped`]) and
//!   joins: with a stream over [`JoinWindows`], with a [`Table`], with a [`GlobalTable`].
//! - [`Grouped`]: count, reduce, aggregate; [`TimeWindows`] (tumbling, hopping),
//!   [`SlidingWindows`] and [`SessionWindows`], with grace (late records dropped and counted).
//! - [`Table`]: forwarding [`Change`]s; filter, filter_not, map_values (lazy tables, read
//!   through their nearest materialized ancestor's store), materialized_as, to_stream,
//!   group_by ([`GroupedTable`], with adder and subtractor), joins with tables (also by
//!   foreign key) and [`Suppressed`] updates.
//! - [`Data`] chooses serdes by type; `named` names operators, stores and internal topics.
//!
//! ```
//! use sluice_dsl::StreamBuilder;
//! use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
//! use sluice_dsl::runtime::serde::{StringSerde, UnitSerde};
//!
//! let b = StreamBuilder::new();
//! b.stream::<(), String>("lines")
//!     .flat_map_values(|line| line.split_whitespace().map(str::to_string).collect::<Vec<_>>())
//!     .select_key(|_, word| word.to_lowercase())
//!     .to("words");
//! let mut driver = TopologyTestDriver::new(b.build()?)?;
//! driver.pipe_input(&TestInputTopic::new("lines", UnitSerde, StringSerde), (), "Hello World".into(), 1)?;
//! let out = driver.read_output(&TestOutputTopic::new("words", StringSerde, StringSerde))?;
//! let pairs: Vec<(String, String)> = out.into_iter().map(|r| (r.key, r.value)).collect();
//! assert_eq!(pairs, [("hello".into(), "Hello".into()), ("world".into(), "World".into())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod change;
mod data;
mod fk_join;
mod global;
mod grouped;
mod joins;
mod ops;
mod session;
mod sliding;
mod stream;
mod stream_join;
mod suppress;
mod table;
mod value_getter;
mod windows;

pub use builder::StreamBuilder;
pub use change::Change;
pub use data::Data;
pub use global::GlobalTable;
pub use grouped::Grouped;
pub use session::{SessionGrouped, SessionWindows};
pub use sliding::{SlidingGrouped, SlidingWindows};
pub use sluice_runtime as runtime;
pub use stream::{Splitter, Stream};
pub use stream_join::JoinWindows;
pub use suppress::{BufferConfig, Suppressed};
pub use table::{GroupedTable, Table};
pub use windows::{TimeWindows, Windowed, WindowedGrouped, WindowedSerde};
