//! The testkit (DESIGN §3.3): [`TopologyTestDriver`] to unit-test a topology without a
//! broker, and the fault-injection harness to property-test its delivery guarantees.

mod driver;

pub use driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
