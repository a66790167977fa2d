//! From the log's errors to Kafka's error codes. Each log error names what failed; on the
//! wire it becomes the code a Kafka broker would send in the same situation, so clients
//! retry, refresh metadata or give up exactly as they would against Kafka.

use kafka_protocol::ResponseError as Code;
use sluice_log::Error;

/// The Kafka error code for a log error.
pub fn code_of(error: &Error) -> Code {
    match error {
        Error::InvalidTopicName { .. } => Code::InvalidTopicException,
        Error::UnknownTopic { .. } | Error::UnknownPartition { .. } => {
            Code::UnknownTopicOrPartition
        }
        Error::TopicExists { .. } => Code::TopicAlreadyExists,
        Error::InvalidPartitions { .. } => Code::InvalidPartitions,
        Error::InvalidConfig { .. } => Code::InvalidConfig,
        Error::InvalidBatch { .. } => Code::CorruptMessage,
        Error::UnsupportedBatch { .. } => Code::InvalidRecord,
        Error::RecordTooLarge { .. } => Code::MessageTooLarge,
        Error::OffsetOutOfRange { .. } => Code::OffsetOutOfRange,
        Error::OutOfOrderSequence { .. } => Code::OutOfOrderSequenceNumber,
        Error::ProducerFenced { .. } => Code::InvalidProducerEpoch,
        Error::UnknownProducerId { .. } => Code::UnknownProducerId,
        Error::InvalidTxnState(_) => Code::InvalidTxnState,
        Error::ConcurrentTransactions { .. } => Code::ConcurrentTransactions,
        Error::TxnProducerFenced { .. } => Code::ProducerFenced,
        Error::TransactionalIdNotFound(_) | Error::ProducerIdMismatch { .. } => {
            Code::InvalidProducerIdMapping
        }
        Error::InvalidTransactionTimeout { .. } => Code::InvalidTransactionTimeout,
        Error::UnstableOffsetCommit { .. } => Code::UnstableOffsetCommit,
        Error::UnknownMemberId { .. } => Code::UnknownMemberId,
        Error::IllegalGeneration { .. } => Code::IllegalGeneration,
        Error::RebalanceInProgress { .. } => Code::RebalanceInProgress,
        Error::InconsistentGroupProtocol { .. } => Code::InconsistentGroupProtocol,
        Error::MemberIdRequired { .. } => Code::MemberIdRequired,
        Error::FencedInstanceId { .. } => Code::FencedInstanceId,
        Error::InvalidSessionTimeout { .. } => Code::InvalidSessionTimeout,
        Error::InvalidGroupId { .. } => Code::InvalidGroupId,
        Error::NonEmptyGroup { .. } => Code::NonEmptyGroup,
        Error::GroupIdNotFound { .. } => Code::GroupIdNotFound,
        Error::Timeout { .. } => Code::RequestTimedOut,
        Error::Closed(_) => Code::NotCoordinator,
        _ => Code::UnknownServerError,
    }
}

/// The error code, as the i16 a response carries.
pub fn code(error: &Error) -> i16 {
    code_of(error).code()
}

/// The code of a result: 0 on success.
pub fn code_or_none<T>(result: &Result<T, Error>) -> i16 {
    result.as_ref().err().map_or(0, code)
}
