//! The RocksDB session store against a model: sessions put, merged away (removed), found by
//! (earliest end, latest start) as a session-window aggregation asks, expired by retention,
//! in transactions that commit or abort, across reopens.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_runtime::serde::{BigEndianSerde, StringSerde};
use sluice_runtime::state::{Session, SessionStore, StateDb, StoreName};

const RETENTION: i64 = 60_000;

#[derive(Debug, Clone)]
enum Op {
    Put(u32, i64, i64, String),
    RemoveNth(usize),
    Find(u32, i64, i64),
    Expire,
    Commit,
    Abort,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u32..5;
    prop_oneof![
        // Whole seconds; 240 s spans four one-minute segments of the key-first layout.
        6 => (key.clone(), 0i64..200, 0i64..30, "[a-z]{1,4}").prop_map(|(k, s, len, v)| Op::Put(k, s * 1_000, (s + len) * 1_000, v)),
        2 => any::<usize>().prop_map(Op::RemoveNth),
        4 => (key, 0i64..240, 0i64..240).prop_map(|(k, e, s)| Op::Find(k, e * 1_000, s * 1_000)),
        1 => Just(Op::Expire),
        2 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Reopen),
    ]
}

fn open(db: &StateDb, name: &StoreName) -> SessionStore<u32, String> {
    db.session_store(name, BigEndianSerde, StringSerde, RETENTION)
        .expect("session store")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]
    #[test]
    fn sessions_behave_like_the_model(ops in prop::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = StoreName::new("sessions", 1);
        let mut db = StateDb::open(dir.path()).expect("open");
        let mut store = open(&db, &name);
        let mut overlay = db.overlay();
        // (end, start, key) -> value
        let mut committed: BTreeMap<(i64, i64, u32), String> = BTreeMap::new();
        let mut pending = committed.clone();
        let mut observed = i64::MIN;
        let cutoff = |observed: i64| observed.saturating_sub(RETENTION);
        for op in ops {
            match op {
                Op::Put(k, start, end, v) => {
                    observed = observed.max(end);
                    let kept = store.put(&mut overlay, &k, Session { start, end }, &v).expect("put");
                    prop_assert_eq!(kept, end >= cutoff(observed));
                    if kept {
                        pending.insert((end, start, k), v);
                    }
                }
                Op::RemoveNth(n) => {
                    if pending.is_empty() {
                        continue;
                    }
                    let (&(end, start, k), _) = pending.iter().nth(n % pending.len()).expect("nth");
                    store.remove(&mut overlay, &k, Session { start, end }).expect("remove");
                    pending.remove(&(end, start, k));
                }
                Op::Find(k, earliest_end, latest_start) => {
                    let want: Vec<(Session, String)> = pending
                        .iter()
                        .filter(|((end, start, key), _)| {
                            *key == k && *end >= earliest_end.max(cutoff(observed)) && *start <= latest_start
                        })
                        .map(|((end, start, _), v)| (Session { start: *start, end: *end }, v.clone()))
                        .collect();
                    prop_assert_eq!(common::read_all(store.find_sessions(&overlay, &k, earliest_end, latest_start)), want);
                }
                Op::Expire => {
                    store.expire(&mut overlay).expect("expire");
                    let c = cutoff(observed);
                    pending.retain(|(end, _, _), _| *end >= c);
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
                    store = open(&db, &name);
                    overlay = db.overlay();
                    pending = committed.clone();
                    observed = committed.keys().map(|(end, _, _)| *end).max().unwrap_or(i64::MIN);
                }
            }
        }
    }
}
