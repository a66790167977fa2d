//! The RocksDB key-value store with its write overlay, against a model: random puts,
//! deletes, reads, range and prefix scans in transactions that commit (overlay and checkpoint
//! applied in one batch) or abort (overlay dropped), with reopens of the database, which
//! keeps exactly the committed state and the checkpoint of the last commit.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_runtime::serde::{BigEndianSerde, StringSerde};
use sluice_runtime::state::{KeyValueStore, StateDb, StoreName};

#[derive(Debug, Clone)]
enum Op {
    Put(u32, String),
    Delete(u32),
    Get(u32),
    Range(u32, u32),
    Prefix(u8),
    Commit,
    Abort,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u32..40;
    prop_oneof![
        6 => (key.clone(), "[a-z]{0,6}").prop_map(|(k, v)| Op::Put(k, v)),
        2 => key.clone().prop_map(Op::Delete),
        3 => key.clone().prop_map(Op::Get),
        2 => (key.clone(), key).prop_map(|(a, b)| Op::Range(a.min(b), a.max(b))),
        1 => (0u8..3).prop_map(Op::Prefix),
        3 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]
    #[test]
    fn the_store_reads_its_own_writes_and_keeps_exactly_what_was_committed(ops in prop::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = StoreName::new("counts", 3);
        let other = StoreName::new("counts", 4);
        let mut db = StateDb::open(dir.path()).expect("open");
        let mut store: KeyValueStore<u32, String> =
            db.kv_store(&name, BigEndianSerde, StringSerde).expect("store");
        let mut neighbour: KeyValueStore<u32, String> =
            db.kv_store(&other, BigEndianSerde, StringSerde).expect("store");
        let mut overlay = db.overlay();
        let mut committed: BTreeMap<u32, String> = BTreeMap::new();
        let mut pending = committed.clone();
        let mut commits = 0i64;
        let mut last_checkpoint = None;
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    store.put(&mut overlay, &k, &v).expect("put");
                    pending.insert(k, v);
                }
                Op::Delete(k) => {
                    store.delete(&mut overlay, &k).expect("delete");
                    pending.remove(&k);
                }
                Op::Get(k) => prop_assert_eq!(store.get(&overlay, &k).expect("get"), pending.get(&k).cloned()),
                Op::Range(a, b) => {
                    let want: Vec<(u32, String)> = pending.range(a..=b).map(|(k, v)| (*k, v.clone())).collect();
                    prop_assert_eq!(common::read_all(store.range(&overlay, &a, &b)), want);
                }
                Op::Prefix(high) => {
                    // Big-endian u32 keys: the prefix [0, 0, 0] selects keys 0..=255 (all here),
                    // [0, 0, 1] none of them.
                    let prefix = [0u8, 0, high];
                    let want: Vec<(u32, String)> = pending
                        .iter()
                        .filter(|(k, _)| k.to_be_bytes()[..3] == prefix)
                        .map(|(k, v)| (*k, v.clone()))
                        .collect();
                    prop_assert_eq!(common::read_all(store.prefix_scan(&overlay, &prefix)), want);
                }
                Op::Commit => {
                    commits += 1;
                    db.apply(std::mem::take(&mut overlay), &[(name.clone(), commits * 10)]).expect("apply");
                    committed = pending.clone();
                    last_checkpoint = Some(commits * 10);
                }
                Op::Abort => {
                    overlay = db.overlay();
                    pending = committed.clone();
                }
                Op::Reopen => {
                    drop(store);
                    drop(neighbour);
                    drop(db);
                    db = StateDb::open(dir.path()).expect("reopen");
                    store = db.kv_store(&name, BigEndianSerde, StringSerde).expect("store");
                    neighbour = db.kv_store(&other, BigEndianSerde, StringSerde).expect("store");
                    overlay = db.overlay();
                    pending = committed.clone();
                }
            }
            prop_assert_eq!(db.checkpoint(&name).expect("checkpoint"), last_checkpoint);
        }
        let want: Vec<(u32, String)> = pending.into_iter().collect();
        prop_assert_eq!(common::read_all(store.all(&overlay)), want);
        // The other task's column family never sees this task's writes.
        let nothing_written = db.overlay();
        prop_assert!(common::read_all(neighbour.all(&nothing_written)).is_empty());
    }
}
