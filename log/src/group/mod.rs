//! Consumer groups (DESIGN §2.6): committed offsets, plain and transactional ([`offsets`]),
//! and membership with generations and the broker-side sticky assignment ([`membership`],
//! [`assignor`]).

pub mod assignor;
pub mod membership;
pub mod offsets;

pub use membership::{GroupAssignment, GroupCoordinator, GroupDescription, MemberDescription};
pub use offsets::{OFFSETS_TOPIC, OffsetStore};
