//! Order enrichment: a stream of orders joined with a table of customers, exactly once.
//!
//! The topic `customers` (3 partitions, keyed by customer id, JSON values) is the changelog
//! of a table: each record is a customer's latest profile, a null value (a tombstone)
//! deletes the customer. The topic `orders` (3 partitions, keyed by the same customer id,
//! so the two are co-partitioned) carries orders. The DSL app:
//!
//! - reads `customers` as a table (`builder.table`, store `customers-store`);
//! - joins each order with its customer as the table is when the order is processed
//!   (`left_join_table`: an order of an unknown or deleted customer is kept, marked
//!   unknown) and writes the enriched orders to `orders-enriched`;
//! - re-keys them by market segment (country and tier, `group_by`, through the repartition
//!   topic `order-enrichment-revenue-repartition`) and sums orders and revenue per segment (`aggregate`),
//!   writing every new total to `revenue-by-segment`.
//!
//! The input is produced in four steps, each one processed before the next is produced,
//! so the result is deterministic: the customers; a first batch of orders; a few profile
//! changes (a move abroad, an upgrade, a downgrade, a new customer who had ordered before
//! signing up, and a deleted customer); a second batch of orders. An order before the
//! changes sees the old profile, one after sees the new one.
//!
//! At the end it prints the revenue per segment and checks every enriched order and every
//! segment total against the same enrichment computed in plain Rust; it exits non-zero if
//! any differs.
//!
//! ```text
//! cargo run --release --example enrichment [-- --seed 7] [--bootstrap-servers HOST:PORT]
//! ```
//!
//! With `--bootstrap-servers HOST:PORT` it runs on that Kafka cluster (Apache Kafka or
//! `sluice broker`) instead of the embedded log: the topics and the app id end in a run id
//! (`orders-<run>` ...), so a rerun starts from empty topics.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Backend, Names, OnCluster, Res, Rng, RunningApp};
use serde::{Deserialize, Serialize};
use sluice::dsl::{Data, StreamBuilder, bincode_data, json_data};
use sluice::log::cluster::{ProducerSpec, TxnProducer};
use sluice::prelude::*;
use sluice::runtime::{AppConfig, ProcessingGuarantee};

const APP_ID: &str = "order-enrichment";
const CUSTOMERS: &str = "customers";
const ORDERS: &str = "orders";
const ENRICHED: &str = "orders-enriched";
const REVENUE: &str = "revenue-by-segment";
const PARTITIONS: i32 = 3;
const KNOWN_CUSTOMERS: u32 = 40;
/// Orders come from ids up to this; those above `KNOWN_CUSTOMERS` have no profile (yet).
const ORDERING_CUSTOMERS: u32 = 44;
const ORDERS_PER_BATCH: u64 = 300;
const COUNTRIES: [&str; 5] = ["DE", "FR", "US", "JP", "BR"];
const NAMES: [&str; 10] = [
    "Ada", "Bruno", "Chiara", "Dmitri", "Emeka", "Fatima", "Goro", "Hanna", "Ines", "Jonas",
];

/// The key of both topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct CustomerId(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Tier {
    Bronze,
    Silver,
    Gold,
}

/// A customer's profile, as JSON (as a CDC feed might carry it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Customer {
    name: String,
    country: String,
    tier: Tier,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    id: u64,
    cents: i64,
}

/// An order with what the customers table said about its customer at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EnrichedOrder {
    order: u64,
    cents: i64,
    /// `None`: the customer was unknown (never created, or deleted) when the order came.
    customer: Option<Customer>,
}

/// A market segment: the key of the revenue totals.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Segment {
    country: String,
    /// `None` for orders of unknown customers.
    tier: Option<Tier>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Revenue {
    orders: u64,
    cents: i64,
}

bincode_data!(CustomerId, Order, EnrichedOrder, Segment, Revenue);
json_data!(Customer);

fn enrich(order: Order, customer: Option<Customer>) -> EnrichedOrder {
    EnrichedOrder {
        order: order.id,
        cents: order.cents,
        customer,
    }
}

impl EnrichedOrder {
    fn segment(&self) -> Segment {
        match &self.customer {
            Some(c) => Segment {
                country: c.country.clone(),
                tier: Some(c.tier),
            },
            None => Segment {
                country: String::new(),
                tier: None,
            },
        }
    }
}

impl Segment {
    fn label(&self) -> String {
        match self.tier {
            Some(tier) => format!("{}/{tier:?}", self.country),
            None => "unknown customer".into(),
        }
    }
}

impl Customer {
    fn label(&self) -> String {
        format!("{}/{:?}", self.country, self.tier)
    }
}

fn tier_of(n: u64) -> Tier {
    match n % 10 {
        0..=5 => Tier::Bronze,
        6..=8 => Tier::Silver,
        _ => Tier::Gold,
    }
}

/// One step of the input: customer changes (`None`: delete) or orders.
enum Step {
    Customers(Vec<(CustomerId, Option<Customer>)>),
    Orders(Vec<(CustomerId, Order)>),
}

/// The input, step by step.
fn generate(seed: u64) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let profiles: Vec<Customer> = (1..=KNOWN_CUSTOMERS)
        .map(|id| Customer {
            name: format!("{} #{id}", rng.pick(&NAMES)),
            country: rng.pick(&COUNTRIES).into(),
            tier: tier_of(rng.next_u64()),
        })
        .collect();
    let profile = |id: u32| profiles[id as usize - 1].clone();
    let customers = (1..=KNOWN_CUSTOMERS)
        .map(|id| (CustomerId(id), Some(profile(id))))
        .collect();
    let mut next_order = 0;
    let mut orders = |rng: &mut Rng| -> Vec<(CustomerId, Order)> {
        (0..ORDERS_PER_BATCH)
            .map(|_| {
                next_order += 1;
                let customer = CustomerId(1 + rng.below(u64::from(ORDERING_CUSTOMERS)) as u32);
                let cents = 500 + rng.below(24_500) as i64;
                (
                    customer,
                    Order {
                        id: next_order,
                        cents,
                    },
                )
            })
            .collect()
    };
    let first = orders(&mut rng);
    // The profile changes: the first customers (from a few fixed ids on) they apply to.
    let first_from = |from: u32, fits: &dyn Fn(&Customer) -> bool| {
        (from..=KNOWN_CUSTOMERS)
            .find(|&id| fits(&profile(id)))
            .unwrap_or(from)
    };
    let moving = first_from(3, &|c| c.country != "JP");
    let upgrading = first_from(7, &|c| c.tier != Tier::Gold);
    let downgrading = first_from(20, &|c| c.tier != Tier::Bronze);
    let changes = vec![
        (
            CustomerId(moving),
            Some(Customer {
                country: "JP".into(),
                ..profile(moving)
            }),
        ),
        (
            CustomerId(upgrading),
            Some(Customer {
                tier: Tier::Gold,
                ..profile(upgrading)
            }),
        ),
        (CustomerId(12), None),
        (
            CustomerId(downgrading),
            Some(Customer {
                tier: Tier::Bronze,
                ..profile(downgrading)
            }),
        ),
        (
            CustomerId(KNOWN_CUSTOMERS + 1),
            Some(Customer {
                name: format!("Karla #{}", KNOWN_CUSTOMERS + 1),
                country: "FR".into(),
                tier: Tier::Silver,
            }),
        ),
    ];
    let second = orders(&mut rng);
    vec![
        Step::Customers(customers),
        Step::Orders(first),
        Step::Customers(changes),
        Step::Orders(second),
    ]
}

/// The plain-Rust enrichment: each order with its customer as of the step it is in.
fn expected(steps: &[Step]) -> BTreeMap<u64, EnrichedOrder> {
    let mut table: BTreeMap<CustomerId, Customer> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for step in steps {
        match step {
            Step::Customers(changes) => {
                for (id, change) in changes {
                    match change {
                        Some(c) => table.insert(*id, c.clone()),
                        None => table.remove(id),
                    };
                }
            }
            Step::Orders(orders) => {
                for (id, order) in orders {
                    out.insert(order.id, enrich(order.clone(), table.get(id).cloned()));
                }
            }
        }
    }
    out
}

/// Produces one step and waits for the producer to deliver it.
fn produce<P: TxnProducer>(producer: &mut P, names: &Names, step: &Step) -> Res<String> {
    let ids = CustomerId::serde();
    match step {
        Step::Customers(changes) => {
            let (customers, mut deletes) = (Customer::serde(), 0);
            for (id, change) in changes {
                let key = ids.serialize(id)?;
                let record = match change {
                    Some(c) => ProducerRecord::new(names.of(CUSTOMERS), customers.serialize(c)?),
                    // A null value: the tombstone that deletes the customer.
                    None => {
                        deletes += 1;
                        ProducerRecord {
                            value: None,
                            ..ProducerRecord::new(names.of(CUSTOMERS), Vec::new())
                        }
                    }
                };
                producer.send(record.with_key(key))?;
            }
            producer.flush()?;
            Ok(format!(
                "{} customer records to `{CUSTOMERS}` ({deletes} of them tombstones)",
                changes.len()
            ))
        }
        Step::Orders(orders) => {
            let values = Order::serde();
            for (id, order) in orders {
                let record = ProducerRecord::new(names.of(ORDERS), values.serialize(order)?)
                    .with_key(ids.serialize(id)?);
                producer.send(record)?;
            }
            producer.flush()?;
            Ok(format!("{} orders to `{ORDERS}`", orders.len()))
        }
    }
}

fn euros(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn main() -> Res<()> {
    let (seed, target) = common::seed_args(7)?;
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    target.run(&dir.join("log"), Enrichment { seed, dir })
}

/// The example, on whichever cluster [`common::Target`] chose.
struct Enrichment<'a> {
    seed: u64,
    /// Where the app's state goes.
    dir: &'a Path,
}

impl OnCluster for Enrichment<'_> {
    type Output = ();
    fn run<C: Backend>(self, cluster: &C, names: &Names) -> Res<()> {
        run(cluster, names, self.seed, self.dir)
    }
}

fn run<C: Backend>(broker: &C, names: &Names, seed: u64, dir: &Path) -> Res<()> {
    let topics = TopicConfig::default().with_partitions(PARTITIONS);
    common::create_topics(
        broker,
        names,
        &[CUSTOMERS, ORDERS, ENRICHED, REVENUE],
        &topics,
    )?;

    let b = StreamBuilder::new();
    let customers = b.table::<CustomerId, Customer>(&names.of(CUSTOMERS), "customers-store");
    let enriched = b
        .stream::<CustomerId, Order>(&names.of(ORDERS))
        .left_join_table(&customers, |_, order, customer| enrich(order, customer));
    enriched.to(&names.of(ENRICHED));
    enriched
        .group_by(|_, e| e.segment())
        .aggregate("revenue", Revenue::default, |_, e, r| Revenue {
            orders: r.orders + 1,
            cents: r.cents + e.cents,
        })
        .to_value_stream()
        .to(&names.of(REVENUE));
    let topology = b.build()?;
    println!("{}", topology.describe());

    let config = AppConfig::default()
        .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .with_state_dir(dir.join("state"));
    // Each step is processed (and committed) before the next is produced.
    let app = RunningApp::start(broker, &names.of(APP_ID), topology, config)?;
    let steps = generate(seed);
    let mut producer = broker.producer(&ProducerSpec::idempotent("enrichment-input"))?;
    for (n, step) in steps.iter().enumerate() {
        let what = produce(&mut producer, names, step)?;
        app.wait_caught_up(None)?;
        println!("step {}: {what}, processed", n + 1);
    }
    producer.close()?;
    let (metrics, took) = app.shut_down()?;

    // The enriched orders, by order id.
    let (enriched_values, orders_before) = (EnrichedOrder::serde(), ORDERS_PER_BATCH);
    let mut got: BTreeMap<u64, EnrichedOrder> = BTreeMap::new();
    let mut duplicates = 0;
    for r in common::read_committed(broker, &names.of(ENRICHED))? {
        let e = enriched_values.deserialize(r.value.as_deref().unwrap_or_default())?;
        if got.insert(e.order, e).is_some() {
            duplicates += 1;
        }
    }
    let want = expected(&steps);
    let unknown = |before: bool| {
        got.values()
            .filter(|e| (e.order <= orders_before) == before && e.customer.is_none())
            .count()
    };
    println!(
        "`{ENRICHED}`: {} orders ({duplicates} duplicates), of unknown customers: {} before \
         the profile changes, {} after",
        got.len(),
        unknown(true),
        unknown(false)
    );
    let changed: Vec<(CustomerId, &Option<Customer>)> = steps
        .iter()
        .skip(1)
        .filter_map(|s| match s {
            Step::Customers(changes) => Some(changes),
            Step::Orders(_) => None,
        })
        .flatten()
        .map(|(id, c)| (*id, c))
        .collect();
    for (CustomerId(id), change) in changed {
        let what = match change {
            Some(c) => format!("now {}", c.label()),
            None => "deleted".into(),
        };
        let seen = |before: bool| -> String {
            let segments: std::collections::BTreeSet<String> = steps
                .iter()
                .filter_map(|s| match s {
                    Step::Orders(o) => Some(o),
                    Step::Customers(_) => None,
                })
                .flatten()
                .filter(|(c, o)| c.0 == id && (o.id <= orders_before) == before)
                .filter_map(|(_, o)| got.get(&o.id))
                .map(|e| e.segment().label())
                .collect();
            segments.into_iter().collect::<Vec<_>>().join(", ")
        };
        println!(
            "  customer {id} ({what}): its orders before the change went to [{}], after to [{}]",
            seen(true),
            seen(false)
        );
    }

    // The revenue per segment: the last total of each key.
    let (segments, revenues) = (Segment::serde(), Revenue::serde());
    let mut totals: BTreeMap<Segment, Revenue> = BTreeMap::new();
    for r in common::read_committed(broker, &names.of(REVENUE))? {
        totals.insert(
            segments.deserialize(r.key.as_deref().unwrap_or_default())?,
            revenues.deserialize(r.value.as_deref().unwrap_or_default())?,
        );
    }
    let mut want_totals: BTreeMap<Segment, Revenue> = BTreeMap::new();
    for e in want.values() {
        let r = want_totals.entry(e.segment()).or_default();
        r.orders += 1;
        r.cents += e.cents;
    }
    println!("segment            orders      revenue");
    for (s, r) in &totals {
        println!("{:<17}  {:>6}  {:>11}", s.label(), r.orders, euros(r.cents));
    }
    let orders: u64 = totals.values().map(|r| r.orders).sum();
    let cents: i64 = totals.values().map(|r| r.cents).sum();
    println!(
        "total: {orders} orders, revenue {} in {} segments",
        euros(cents),
        totals.len()
    );
    println!(
        "{} records processed in {:.2} s, {} commits",
        metrics.records_processed,
        took.as_secs_f64(),
        metrics.commits
    );
    let orders_match = got == want && duplicates == 0;
    let totals_match = totals == want_totals;
    println!("every enriched order equals the plain-Rust enrichment: {orders_match}");
    println!("revenue per segment equals the plain-Rust totals: {totals_match}");
    if !(orders_match && totals_match) {
        common::print_differences(&want, &got);
        common::print_differences(&want_totals, &totals);
        return Err("the enrichment differs from the plain-Rust computation".into());
    }
    Ok(())
}
