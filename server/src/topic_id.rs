//! Topic ids (Kafka's `Uuid` per topic, KIP-516). The log names topics only, so the id is
//! derived from the name: stable across restarts and never zero, as clients require. A topic
//! deleted and created again under the same name keeps its id; clients that cache ids
//! (Fetch v13+, which this server does not advertise) would not notice the recreation.

use uuid::Uuid;

/// The id of the topic `name`.
pub fn topic_id(name: &str) -> Uuid {
    let mut words = [0u32; 4];
    let mut seed = 0x736c_7563u32; // "sluc"
    for word in &mut words {
        seed = crc32c::crc32c_append(seed, name.as_bytes());
        *word = seed;
        seed = seed.rotate_left(7) ^ 0x9e37_79b9;
    }
    let value = (u128::from(words[0]) << 96)
        | (u128::from(words[1]) << 64)
        | (u128::from(words[2]) << 32)
        | u128::from(words[3]);
    // Kafka reserves the all-zero id (and 1, the metadata topic's): never hand either out.
    Uuid::from_u128(value.max(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_not_reserved() {
        assert_eq!(topic_id("orders"), topic_id("orders"));
        assert_ne!(topic_id("orders"), topic_id("orders2"));
        assert_ne!(topic_id(""), Uuid::nil());
        let ids: std::collections::HashSet<Uuid> =
            (0..10_000).map(|i| topic_id(&format!("t{i}"))).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
