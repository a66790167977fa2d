//! Foreign-key table joins (Kafka's KIP-213): each row `(k, v)` of the left table joins the
//! row of the right table whose key is `fk(v)`, though the two tables are partitioned by
//! different keys. As in Kafka Streams:
//!
//! 1. a left update sends a *subscription* `(k, hash of v)` to the right side, keyed by
//!    `fk(v)` (through `<store>-fk-subscription`), and an *unsubscription* to its old
//!    foreign key if that changed; a left delete deletes the result at once;
//! 2. the right side keeps the subscriptions per foreign key (store
//!    `<store>-fk-subscriptions`) and answers a subscription, and every later update of
//!    the right row, with a *response* `(hash, right value)` to each subscriber (through
//!    `<store>-fk-response`, keyed by `k`);
//! 3. the left side drops a response whose hash is not the hash of the row it holds now (a
//!    stale answer to a value since replaced), and otherwise joins and materializes the
//!    result in `store`.
//!
//! Both tables' rows are read through their value getters (`value_getter.rs`), so either
//! may be a lazy table: its nearest materialized ancestor's store is read.

use std::fmt;
use std::sync::Arc;

use sluice_runtime::Error;
use sluice_runtime::processor::{ProcessResult, Processor, ProcessorContext, Record};
use sluice_runtime::serde::{BigEndianSerde, OptionSerde, Serde};
use sluice_runtime::topology::StoreSpec;

use crate::change::Change;
use crate::value_getter::ValueGetter;
use crate::{Data, Table};

/// FNV-1a, 64 bits: stable across builds and platforms, so hashes in topics and stores
/// stay comparable after an upgrade.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn short(what: &'static str, len: usize) -> Error {
    Error::Serde {
        type_name: what,
        reason: format!("{len} bytes is too short"),
    }
}

/// A left row (un)subscribing to its foreign key.
#[derive(Debug, Clone)]
pub(crate) struct Subscription<K> {
    key: K,
    /// The hash of the left value (0 for an unsubscription).
    hash: u64,
    subscribe: bool,
}

/// `Subscription` as hash (8 bytes), flag (1), key bytes.
pub(crate) struct SubscriptionSerde<K>(Arc<dyn Serde<K>>);

impl<K> fmt::Debug for SubscriptionSerde<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubscriptionSerde<{:?}>", self.0)
    }
}

impl<K> Serde<Subscription<K>> for SubscriptionSerde<K> {
    fn serialize(&self, s: &Subscription<K>) -> sluice_runtime::Result<Vec<u8>> {
        let mut out = s.hash.to_be_bytes().to_vec();
        out.push(u8::from(s.subscribe));
        out.extend(self.0.serialize(&s.key)?);
        Ok(out)
    }
    fn deserialize(&self, bytes: &[u8]) -> sluice_runtime::Result<Subscription<K>> {
        let (hash, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| short("fk-join subscription", bytes.len()))?;
        let (flag, key) = rest
            .split_first()
            .ok_or_else(|| short("fk-join subscription", bytes.len()))?;
        Ok(Subscription {
            key: self.0.deserialize(key)?,
            hash: u64::from_be_bytes(*hash),
            subscribe: *flag == 1,
        })
    }
}

impl<K: Data> Data for Subscription<K> {
    fn serde() -> Arc<dyn Serde<Self>> {
        Arc::new(SubscriptionSerde(K::serde()))
    }
}

/// The right row a subscriber joins now, for the left value with `hash`.
#[derive(Debug, Clone)]
pub(crate) struct Response<VO> {
    hash: u64,
    value: Option<VO>,
}

/// `Response` as hash (8 bytes) then the value as `OptionSerde` stores it.
pub(crate) struct ResponseSerde<VO>(OptionSerde<VO>);

impl<VO> fmt::Debug for ResponseSerde<VO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseSerde<{:?}>", self.0)
    }
}

impl<VO> Serde<Response<VO>> for ResponseSerde<VO> {
    fn serialize(&self, r: &Response<VO>) -> sluice_runtime::Result<Vec<u8>> {
        let mut out = r.hash.to_be_bytes().to_vec();
        out.extend(self.0.serialize(&r.value)?);
        Ok(out)
    }
    fn deserialize(&self, bytes: &[u8]) -> sluice_runtime::Result<Response<VO>> {
        let (hash, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| short("fk-join response", bytes.len()))?;
        Ok(Response {
            hash: u64::from_be_bytes(*hash),
            value: self.0.deserialize(rest)?,
        })
    }
}

impl<VO: Data> Data for Response<VO> {
    fn serde() -> Arc<dyn Serde<Self>> {
        Arc::new(ResponseSerde(OptionSerde(VO::serde())))
    }
}

/// The subscriptions store's key: the foreign key's bytes (length-prefixed, so one foreign
/// key's subscribers are one prefix scan) and then the left key's bytes.
#[derive(Debug)]
struct SubscriberKey;

impl Serde<(Vec<u8>, Vec<u8>)> for SubscriberKey {
    fn serialize(&self, (fk, key): &(Vec<u8>, Vec<u8>)) -> sluice_runtime::Result<Vec<u8>> {
        Ok(subscriber_prefix(fk)
            .into_iter()
            .chain(key.iter().copied())
            .collect())
    }
    fn deserialize(&self, bytes: &[u8]) -> sluice_runtime::Result<(Vec<u8>, Vec<u8>)> {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| short("fk-join subscriber", bytes.len()))?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(short("fk-join subscriber", bytes.len()));
        }
        let (fk, key) = rest.split_at(len);
        Ok((fk.to_vec(), key.to_vec()))
    }
}

fn subscriber_prefix(fk: &[u8]) -> Vec<u8> {
    let mut out = (fk.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(fk);
    out
}

type Subscriber = (Vec<u8>, Vec<u8>);

/// Right side: records a subscription and answers it with the right row as it is now.
struct Subscriptions<K, KO, VO> {
    subscribers: String,
    right: ValueGetter<KO, VO>,
    keys: Arc<dyn Serde<K>>,
    foreign_keys: Arc<dyn Serde<KO>>,
    _types: std::marker::PhantomData<fn(VO)>,
}

impl<K: Data, KO: Data, VO: Data> Processor<KO, Subscription<K>, K, Response<VO>>
    for Subscriptions<K, KO, VO>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Response<VO>>,
        r: Record<KO, Subscription<K>>,
    ) -> ProcessResult {
        let id: Subscriber = (
            self.foreign_keys.serialize(&r.key)?,
            self.keys.serialize(&r.value.key)?,
        );
        let mut subscribers = ctx.kv_store::<Subscriber, u64>(&self.subscribers)?;
        if !r.value.subscribe {
            subscribers.delete(&id)?;
            return Ok(());
        }
        subscribers.put(&id, &r.value.hash)?;
        let value = self.right.get(ctx, &r.key)?;
        let response = Response {
            hash: r.value.hash,
            value,
        };
        ctx.forward(Record::new(r.value.key, response, r.timestamp))?;
        Ok(())
    }
}

/// Right side: sends each update of a right row to every subscriber of its key.
struct RightUpdates<K, KO, VO> {
    subscribers: String,
    keys: Arc<dyn Serde<K>>,
    foreign_keys: Arc<dyn Serde<KO>>,
    _types: std::marker::PhantomData<fn(VO)>,
}

impl<K: Data, KO: Data, VO: Data> Processor<KO, Change<VO>, K, Response<VO>>
    for RightUpdates<K, KO, VO>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Response<VO>>,
        r: Record<KO, Change<VO>>,
    ) -> ProcessResult {
        let prefix = subscriber_prefix(&self.foreign_keys.serialize(&r.key)?);
        let subscribers = ctx
            .kv_store::<Subscriber, u64>(&self.subscribers)?
            .prefix_scan(&prefix)?
            .collect::<sluice_runtime::Result<Vec<_>>>()?;
        for ((_, key), hash) in subscribers {
            let response = Response {
                hash,
                value: r.value.new.clone(),
            };
            ctx.forward(Record::new(
                self.keys.deserialize(&key)?,
                response,
                r.timestamp,
            ))?;
        }
        Ok(())
    }
}

/// The joiner (`None`: no row in the result).
type Joiner<K, V, VO, VR> = Arc<dyn Fn(&K, &V, Option<&VO>) -> Option<VR> + Send + Sync>;

/// Left side: joins a response if it answers the row held now.
struct Responses<K, V, VO, VR> {
    left: ValueGetter<K, V>,
    values: Arc<dyn Serde<V>>,
    joiner: Joiner<K, V, VO, VR>,
}

impl<K: Data, V: Data, VO: Data, VR: Data> Processor<K, Response<VO>, K, Option<VR>>
    for Responses<K, V, VO, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<VR>>,
        r: Record<K, Response<VO>>,
    ) -> ProcessResult {
        let Some(row) = self.left.get(ctx, &r.key)? else {
            return Ok(());
        };
        if fnv1a(&self.values.serialize(&row)?) != r.value.hash {
            return Ok(()); // an answer for a value since replaced
        }
        let joined = (self.joiner)(&r.key, &row, r.value.value.as_ref());
        ctx.forward(Record::new(r.key, joined, r.timestamp))?;
        Ok(())
    }
}

impl<K: Data, V: Data> Table<K, V> {
    /// Each row joined with the row of `other` whose key is `fk(value)` (inner: a row whose
    /// foreign key has no row in `other` has no result), in store `store`.
    pub fn join_foreign<KO: Data, VO: Data, VR: Data>(
        &self,
        store: &str,
        other: &Table<KO, VO>,
        fk: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&K, &V, &VO) -> VR + Send + Sync + 'static,
    ) -> Table<K, VR> {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |k, v, o| Some(joiner(k, v, o?)));
        self.foreign_join(store, other, Arc::new(fk), joiner)
    }

    /// Each row joined with the row of `other` at `fk(value)`, or with `None`.
    pub fn left_join_foreign<KO: Data, VO: Data, VR: Data>(
        &self,
        store: &str,
        other: &Table<KO, VO>,
        fk: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&K, &V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> Table<K, VR> {
        let joiner: Joiner<K, V, VO, VR> = Arc::new(move |k, v, o| Some(joiner(k, v, o)));
        self.foreign_join(store, other, Arc::new(fk), joiner)
    }

    fn foreign_join<KO: Data, VO: Data, VR: Data>(
        &self,
        store: &str,
        other: &Table<KO, VO>,
        fk: Arc<dyn Fn(&V) -> KO + Send + Sync>,
        joiner: Joiner<K, V, VO, VR>,
    ) -> Table<K, VR> {
        let user = format!("the foreign-key join `{store}`");
        let (left_getter, right_getter) = (self.joinable(&user), other.joinable(&user));
        let (keys, values) = (self.changes.keys.clone(), self.values.clone());
        let foreign_keys = other.changes.keys.clone();
        // 1. Left updates: subscriptions to the new foreign key, unsubscriptions from the old.
        let (f, vs, fks) = (fk.clone(), values.clone(), foreign_keys.clone());
        let same = move |a: &KO, b: &KO| matches!((fks.serialize(a), fks.serialize(b)), (Ok(x), Ok(y)) if x == y);
        let subscriptions = self.changes.flat_map_inner(
            "fk-join-subscribe",
            move |k: K, c: Change<V>| {
                let old = c.old.as_ref().map(|v| f(v));
                let new = c.new.as_ref().map(|v| f(v));
                let mut out = Vec::new();
                if let Some(old) = old.filter(|o| new.as_ref().is_none_or(|n| !same(n, o))) {
                    out.push((
                        old,
                        Subscription {
                            key: k.clone(),
                            hash: 0,
                            subscribe: false,
                        },
                    ));
                }
                if let (Some(fk), Some(v)) = (new, &c.new) {
                    let hash = vs.serialize(v).map_or(0, |b| fnv1a(&b));
                    out.push((
                        fk,
                        Subscription {
                            key: k,
                            hash,
                            subscribe: true,
                        },
                    ));
                }
                out
            },
            foreign_keys.clone(),
            Arc::new(SubscriptionSerde(keys.clone())),
            true,
        );
        let deletes = self.changes.flat_map_inner(
            "fk-join-deletes",
            |k: K, c: Change<V>| match c.new {
                None => vec![(k, None::<VR>)],
                Some(_) => Vec::new(),
            },
            keys.clone(),
            Arc::new(OptionSerde(VR::serde())),
            false,
        );
        // 2. The right side answers subscriptions and forwards its own updates.
        let at_right = subscriptions.repartition(&format!("{store}-fk-subscription"));
        let subscribers = format!("{store}-fk-subscriptions");
        let answer = at_right.next_node_name("fk-join-answer");
        let (sub_name, right, ks, fks) = (
            subscribers.clone(),
            right_getter.clone(),
            keys.clone(),
            foreign_keys.clone(),
        );
        at_right.add_as::<Subscriptions<K, KO, VO>, K, Response<VO>>(
            &answer,
            &[&at_right.node],
            move || Subscriptions {
                subscribers: sub_name.clone(),
                right: right.clone(),
                keys: ks.clone(),
                foreign_keys: fks.clone(),
                _types: std::marker::PhantomData,
            },
        );
        let spec =
            StoreSpec::key_value::<Subscriber, u64>(&subscribers, SubscriberKey, BigEndianSerde);
        at_right.add_store(spec, &answer);
        right_getter.connect(&at_right, &answer);
        let forward = other.changes.next_node_name("fk-join-forward");
        let (sub_name, ks, fks) = (subscribers.clone(), keys.clone(), foreign_keys.clone());
        other
            .changes
            .add_as::<RightUpdates<K, KO, VO>, K, Response<VO>>(
                &forward,
                &[&other.changes.node],
                move || RightUpdates {
                    subscribers: sub_name.clone(),
                    keys: ks.clone(),
                    foreign_keys: fks.clone(),
                    _types: std::marker::PhantomData,
                },
            );
        other.changes.connect_store(&subscribers, &forward);
        let response_serde: Arc<dyn Serde<Response<VO>>> =
            Arc::new(ResponseSerde(OptionSerde(other.values.clone())));
        let answers = at_right.derive(answer, keys.clone(), response_serde.clone(), true);
        let forwards = at_right.derive(forward, keys.clone(), response_serde, true);
        // 3. Back at the left side: join the responses that answer the current rows.
        let at_left = answers
            .merge(&forwards)
            .repartition(&format!("{store}-fk-response"));
        let join = at_left.next_node_name("fk-join-result");
        let (left, vs) = (left_getter.clone(), values.clone());
        at_left.add_as::<Responses<K, V, VO, VR>, K, Option<VR>>(
            &join,
            &[&at_left.node],
            move || Responses {
                left: left.clone(),
                values: vs.clone(),
                joiner: joiner.clone(),
            },
        );
        left_getter.connect(&at_left, &join);
        let results = at_left.derive(join, keys, Arc::new(OptionSerde(VR::serde())), false);
        results.merge(&deletes).materialize(store, VR::serde())
    }
}
