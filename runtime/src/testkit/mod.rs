//! The testkit (docs/architecture.md §3.3): [`TopologyTestDriver`] to unit-test a topology without a
//! broker, and the fault-injection [`FaultHarness`] to property-test its delivery
//! guarantees on a real embedded broker with real crashes, zombies and rebalances.

mod checks;
mod driver;
mod harness;

pub use checks::Anomaly;
pub use driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
pub use harness::{Expected, Fault, FaultHarness, HarnessFailure, Step};
pub use sluice_log::testing::proptest_cases;
