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
        // A valid partition count the broker cannot hold within its open-file limit: what
        // Kafka's controller answers when a request asks for more partitions than it will
        // create at once ("Excessively large number of partitions per request"), not
        // INVALID_PARTITIONS (a count that is wrong in itself), and not retriable until the
        // operator raises the limit. The message says which limit and how.
        Error::OpenFileLimit { .. } => Code::PolicyViolation,
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
        // A disk that failed a read, write or fsync (the partition is then offline until a
        // restart): Kafka's KafkaStorageException, which clients treat as retriable (they
        // refresh metadata and try again).
        Error::Io { .. } | Error::StorageFailed { .. } => Code::KafkaStorageError,
        Error::Delivery { source, .. } => code_of(source),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_kafka_storage_errors() {
        let io = Error::Io {
            action: "appending to",
            path: "orders-0/00000000000000000000.log".into(),
            source: std::io::Error::other("no space left on device"),
        };
        assert_eq!(code(&io), Code::KafkaStorageError.code());
        assert_eq!(code(&io), 56);
        let delivery = Error::Delivery {
            topic: "orders".into(),
            partition: 0,
            source: std::sync::Arc::new(io),
        };
        assert_eq!(code(&delivery), 56);
        let offline = Error::StorageFailed {
            topic: "orders".into(),
            partition: 0,
            reason: "fsync: input/output error".into(),
        };
        assert_eq!(code(&offline), 56);
        assert_eq!(
            code(&Error::IllegalState("a bug".into())),
            Code::UnknownServerError.code()
        );
    }

    #[test]
    fn partitions_past_the_open_file_limit_are_a_policy_violation() {
        let too_wide = Error::OpenFileLimit {
            topic: "orders".into(),
            requested: 2000,
            needed: 2000,
            open: 20,
            reserved: 64,
            limit: 1024,
        };
        assert_eq!(code(&too_wide), Code::PolicyViolation.code());
        assert_eq!(code(&too_wide), 44);
    }
}
