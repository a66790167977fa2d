//! Consumer groups (docs/architecture.md §2.6): committed offsets, plain and transactional ([`offsets`]),
//! membership with generations and the broker-side sticky assignment of embedded consumers
//! ([`membership`], [`assignor`]), and Kafka's classic protocol with client-side assignment
//! for remote clients ([`classic`]).

pub mod assignor;
pub mod classic;
mod classic_coord;
mod classic_ops;
mod classic_wait;
pub mod membership;
pub mod offsets;

pub use classic::{
    ClassicGroupState, ClassicJoinMember, ClassicJoinRequest, ClassicJoinResponse,
    ClassicSyncResponse, MAX_CLASSIC_PROTOCOL_BYTES, MAX_CLASSIC_PROTOCOLS,
};
pub(crate) use classic_coord::SyncArgs;
pub use classic_wait::ClassicReply;
pub(crate) use classic_wait::ClassicTimer;
pub use membership::{
    EMBEDDED_PROTOCOL, EMBEDDED_PROTOCOL_TYPE, GroupAssignment, GroupCoordinator, GroupDescription,
    MemberDescription,
};
pub use offsets::{CommittedOffset, OFFSETS_TOPIC, OffsetStore};
