//! The broker-side sticky assignor: every subscribed partition goes to exactly one member that
//! subscribes to its topic; members keep what they owned as long as that stays balanced, so a
//! rebalance moves as few partitions as it can.

use std::collections::{BTreeMap, BTreeSet};

use crate::topic::TopicPartition;

/// Assigns `partitions` (topic -> partition count) to `members` (member -> subscribed
/// topics), starting from `previous` (member -> partitions it owned).
pub fn sticky_assign(
    members: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, i32>,
    previous: &BTreeMap<String, Vec<TopicPartition>>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> =
        members.keys().map(|m| (m.clone(), Vec::new())).collect();
    let all: Vec<TopicPartition> = partitions
        .iter()
        .filter(|(topic, _)| members.values().any(|subs| subs.contains(*topic)))
        .flat_map(|(topic, &count)| (0..count).map(move |p| TopicPartition::new(topic.clone(), p)))
        .collect();
    if members.is_empty() || all.is_empty() {
        return out;
    }
    let quota = all.len().div_ceil(members.len());
    let exists: BTreeSet<&TopicPartition> = all.iter().collect();
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    // 1. Keep what each member owned, up to the quota.
    for (member, owned) in previous {
        let (Some(subs), Some(mine)) = (members.get(member), out.get_mut(member)) else {
            continue;
        };
        for tp in owned {
            if mine.len() < quota
                && exists.contains(tp)
                && subs.contains(&tp.topic)
                && taken.insert(tp.clone())
            {
                mine.push(tp.clone());
            }
        }
    }
    // 2. Give each remaining partition to the least-loaded member subscribed to its topic.
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let target = out
            .iter()
            .filter(|(m, _)| members.get(*m).is_some_and(|s| s.contains(&tp.topic)))
            .min_by_key(|(m, owned)| (owned.len(), (*m).clone()))
            .map(|(m, _)| m.clone());
        if let Some(member) = target
            && let Some(owned) = out.get_mut(&member)
        {
            owned.push(tp.clone());
        }
    }
    for owned in out.values_mut() {
        owned.sort();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(n: usize) -> BTreeMap<String, BTreeSet<String>> {
        (0..n)
            .map(|i| {
                (
                    format!("m{i}"),
                    ["a".to_string(), "b".to_string()].into_iter().collect(),
                )
            })
            .collect()
    }

    proptest! {
        #[test]
        fn every_partition_once_balanced_and_sticky(
            n in 1usize..6,
            a in 0i32..12,
            b in 0i32..12,
            leaver in 0usize..6,
        ) {
            let parts: BTreeMap<String, i32> = [("a".to_string(), a), ("b".to_string(), b)].into_iter().collect();
            let first = sticky_assign(&members(n), &parts, &BTreeMap::new());
            let mut seen = BTreeSet::new();
            for owned in first.values() {
                for tp in owned {
                    prop_assert!(seen.insert(tp.clone()), "{} assigned twice", tp);
                }
            }
            prop_assert_eq!(seen.len(), (a + b) as usize);
            let counts: Vec<usize> = first.values().map(Vec::len).collect();
            prop_assert!(counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) <= 1);
            // One member leaves: everyone else keeps everything they had.
            if n > 1 {
                let gone = format!("m{}", leaver % n);
                let mut rest = members(n);
                rest.remove(&gone);
                let second = sticky_assign(&rest, &parts, &first);
                for (member, owned) in &second {
                    for tp in &first[member] {
                        prop_assert!(owned.contains(tp), "{} moved away from {}", tp, member);
                    }
                }
                let total: usize = second.values().map(Vec::len).sum();
                prop_assert_eq!(total, (a + b) as usize);
            }
        }
    }
}
