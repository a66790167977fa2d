//! The testkit (docs/architecture.md §3.3): [`TopologyTestDriver`] to unit-test a topology without a
//! broker, and (with the `fault-injection` feature) the `FaultHarness` to property-test
//! its delivery guarantees on a real embedded broker with real crashes, zombies and
//! rebalances.

#[cfg(feature = "fault-injection")]
mod checks;
mod driver;
#[cfg(feature = "fault-injection")]
mod harness;

#[cfg(feature = "fault-injection")]
pub use checks::Anomaly;
pub use driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
#[cfg(feature = "fault-injection")]
pub use harness::{Expected, Fault, FaultHarness, HarnessFailure, Step};
pub use sluice_log::testing::proptest_cases;
