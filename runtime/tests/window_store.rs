//! The RocksDB window store against a model, in both layouts: puts into windows (late ones
//! past retention are dropped), per-key fetches, key-range and time-range fetches, expiry, in
//! transactions that commit or abort, across reopens. Times span several of the key-first
//! layout's segments (a minute each here); keys that are prefixes of others stay apart.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_runtime::serde::{BigEndianSerde, StringSerde};
use sluice_runtime::state::{StateDb, StoreName, WindowLayout, WindowStore};

const RETENTION: i64 = 50_000;

#[derive(Debug, Clone)]
enum Op {
    Put(u32, i64, String),
    Fetch(u32, i64, i64),
    FetchRange(u32, u32, i64, i64),
    Expire,
    Commit,
    Abort,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u32..6;
    // Whole seconds, so windows collide; 200 s spans four one-minute segments.
    let time = (0i64..200).prop_map(|t| t * 1_000);
    prop_oneof![
        6 => (key.clone(), time.clone(), "[a-z]{1,4}").prop_map(|(k, t, v)| Op::Put(k, t, v)),
        3 => (key.clone(), time.clone(), time.clone()).prop_map(|(k, a, b)| Op::Fetch(k, a.min(b), a.max(b))),
        2 => (key.clone(), key, time.clone(), time).prop_map(|(k1, k2, a, b)| Op::FetchRange(k1.min(k2), k1.max(k2), a.min(b), a.max(b))),
        1 => Just(Op::Expire),
        2 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Reopen),
    ]
}

/// The model's windows (by start, then key) in the order a scan of `layout` gives them:
/// time ordered, by start then key; key first, by time segment (half the retention, at
/// least a minute), then key, then start.
fn in_store_order(
    layout: WindowLayout,
    mut windows: Vec<(u32, i64, String)>,
) -> Vec<(u32, i64, String)> {
    if layout == WindowLayout::KeyFirst {
        let segment_ms = (RETENTION / 2).max(60_000);
        windows.sort_by_key(|(key, t, _)| (t.div_euclid(segment_ms), *key, *t));
    }
    windows
}

fn open(db: &StateDb, name: &StoreName, layout: WindowLayout) -> WindowStore<u32, String> {
    db.window_store_with(name, BigEndianSerde, StringSerde, RETENTION, layout)
        .expect("window store")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]
    #[test]
    fn windows_behave_like_the_model(ops in prop::collection::vec(op(), 1..80), time_ordered in any::<bool>()) {
        let layout = if time_ordered { WindowLayout::TimeOrdered } else { WindowLayout::KeyFirst };
        let dir = tempfile::tempdir().expect("tempdir");
        let name = StoreName::new("windows", 0);
        let mut db = StateDb::open(dir.path()).expect("open");
        let mut store = open(&db, &name, layout);
        let mut overlay = db.overlay();
        // (start, key) -> value
        let mut committed: BTreeMap<(i64, u32), String> = BTreeMap::new();
        let mut pending = committed.clone();
        let mut observed = i64::MIN;
        let cutoff = |observed: i64| observed.saturating_sub(RETENTION);
        for op in ops {
            match op {
                Op::Put(k, t, v) => {
                    observed = observed.max(t);
                    let kept = store.put(&mut overlay, &k, t, &v).expect("put");
                    prop_assert_eq!(kept, t >= cutoff(observed));
                    if kept {
                        pending.insert((t, k), v);
                    }
                }
                Op::Fetch(k, from, to) => {
                    let want: Vec<(i64, String)> = pending
                        .iter()
                        .filter(|((t, key), _)| *key == k && *t >= from.max(cutoff(observed)) && *t <= to)
                        .map(|((t, _), v)| (*t, v.clone()))
                        .collect();
                    prop_assert_eq!(common::read_all(store.fetch(&overlay, &k, from, to)), want);
                }
                Op::FetchRange(k1, k2, from, to) => {
                    let want: Vec<(u32, i64, String)> = pending
                        .iter()
                        .filter(|((t, key), _)| (k1..=k2).contains(key) && *t >= from.max(cutoff(observed)) && *t <= to)
                        .map(|((t, key), v)| (*key, *t, v.clone()))
                        .collect();
                    prop_assert_eq!(common::read_all(store.fetch_range(&overlay, &k1, &k2, from, to)), in_store_order(layout, want));
                }
                Op::Expire => {
                    store.expire(&mut overlay).expect("expire");
                    let c = cutoff(observed);
                    pending.retain(|(t, _), _| *t >= c);
                }
                Op::Commit => {
                    db.apply(std::mem::take(&mut overlay), &[]).expect("apply");
                    committed = pending.clone();
                }
                Op::Abort => {
                    overlay = db.overlay();
                    pending = committed.clone();
                }
                Op::Reopen => {
                    drop(store);
                    drop(db);
                    db = StateDb::open(dir.path()).expect("reopen");
                    store = open(&db, &name, layout);
                    overlay = db.overlay();
                    pending = committed.clone();
                    // The store recovers its observed time from the newest committed window.
                    observed = committed.keys().map(|(t, _)| *t).max().unwrap_or(i64::MIN);
                }
            }
        }
        let c = cutoff(observed);
        let want: Vec<(u32, i64, String)> = pending
            .iter()
            .filter(|((t, _), _)| *t >= c)
            .map(|((t, k), v)| (*k, *t, v.clone()))
            .collect();
        prop_assert_eq!(common::read_all(store.fetch_all(&overlay, i64::MIN, i64::MAX)), in_store_order(layout, want));
    }
}

#[test]
fn keys_that_are_prefixes_of_others_stay_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = StateDb::open(dir.path()).expect("open");
    for layout in [WindowLayout::KeyFirst, WindowLayout::TimeOrdered] {
        let name = StoreName::new(format!("{layout:?}"), 0);
        let store = db
            .window_store_with(&name, StringSerde, StringSerde, 1_000_000, layout)
            .expect("store");
        let mut overlay = db.overlay();
        let keys = ["a", "ab", "a\u{80}", "b", ""];
        for (i, key) in keys.iter().enumerate() {
            for t in [0i64, 70_000, 130_000] {
                let value = format!("{key}@{t}#{i}");
                store
                    .put(&mut overlay, &key.to_string(), t, &value)
                    .expect("put");
            }
        }
        db.apply(overlay, &[]).expect("apply");
        let overlay = db.overlay();
        for key in keys {
            let got = common::read_all(store.fetch(&overlay, &key.to_string(), 0, 200_000));
            let times: Vec<i64> = got.iter().map(|(t, _)| *t).collect();
            assert_eq!(times, [0, 70_000, 130_000], "{layout:?} {key:?}");
            assert!(
                got.iter().all(|(_, v)| v.starts_with(&format!("{key}@"))),
                "{layout:?} {got:?}"
            );
            // Unbounded times: as many segments as the data spans, not as the range does.
            let everything =
                common::read_all(store.fetch(&overlay, &key.to_string(), i64::MIN, i64::MAX));
            assert_eq!(everything, got, "{layout:?} {key:?}");
        }
        let all = common::read_all(store.fetch_all(&overlay, 60_000, 129_999));
        assert_eq!(
            all.len(),
            keys.len(),
            "{layout:?}: only the windows at 70 s"
        );
    }
}
