//! Bank transfers, exactly once: money moves between 100 accounts and none is created,
//! destroyed or moved twice, even when the app is killed halfway and restarted.
//!
//! N transfers (seeded, deterministic) go to the topic `transfers` (4 partitions) as lines
//! `id,from,to,cents`. A DSL app turns each into a debit keyed by the source account and a
//! credit keyed by the destination (`flat_map`), groups them by account (through
//! `bank-balances-repartition`) and folds them into an [`Account`]: the balance, the debits and
//! credits applied, and a digest (a wrapping sum of hashes) of the applied entries. Every
//! new aggregate goes to the topic `balances` with the entry it applied.
//!
//! At the end it checks, from the RocksDB store and from `balances` read read_committed:
//! the total of the balances equals the total of the opening balances; each balance equals
//! an in-memory model; N debits and N credits were applied (counts and digest); every
//! transfer's debit and credit appear exactly once in the output (none twice, none lost);
//! each account's updates count 1, 2, 3, ... It exits non-zero if any check fails.
//!
//! ```text
//! cargo run --release --example bank_transfers
//! cargo run --release --example bank_transfers -- --transfers 20000 --crash-after 5000
//! cargo run --release --example bank_transfers -- --crash-after 5000 --crash-point after-commit-before-apply
//! ```
//!
//! `--crash-after N` stops the app dead once about N transfers were applied, then restarts
//! it on the same state directory and broker. `--crash-point`: `kill` (the default:
//! `AppHandle::kill`, as a kill -9 between any two steps) or a step of the commit protocol
//! (`before-flush`, `after-flush`, `after-send-offsets`, `after-prepare-commit`,
//! `after-commit-before-apply`) armed through `AppConfig::with_crash_hook`.
//!
//! `--at-least-once` runs the same app without transactions, to show what the checks
//! catch: with `--crash-after N --crash-point after-flush` the output and changelog were
//! flushed but the input offsets not committed, so the restart applies some transfers
//! again; the total may even stay conserved (both sides repeat), but the duplicate count
//! and the digest give it away, and the example fails. It ends by itself in a few seconds.
//!
//! `--bootstrap-servers HOST:PORT` runs it on that Kafka cluster (Apache Kafka or `sluice
//! broker`) instead of the embedded log, with the same checks (the store is the app's own
//! RocksDB, local on either; the output is read through the cluster). The topics and the
//! app id end in a run id there (`transfers-<run>` ...), so a rerun starts from empty
//! topics; the group keeps Kafka's default session timeout (10 s: a restart after a kill
//! waits that long for the dead member to leave), and `after-prepare-commit` cannot stop a
//! remote commit halfway, so the instance dies just after its commit instead.
//!
//! ```text
//! cargo run --release --example bank_transfers -- --bootstrap-servers 127.0.0.1:9092 --transfers 2000
//! ```

mod common;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use common::{Backend, Names, OnCluster, Res, Rng, RunningApp, Target, mix};
use sluice::dsl::{Data, StreamBuilder};
use sluice::log::cluster::{Cluster, ProducerSpec, TxnProducer};
use sluice::prelude::*;
use sluice::runtime::app::AppState;
use sluice::runtime::config::CrashPoint;
use sluice::runtime::serde::{BigEndianSerde, Serde};
use sluice::runtime::state::{StateDb, StoreName, WriteOverlay};
use sluice::runtime::topology::Topology;
use sluice::runtime::{AppConfig, ProcessingGuarantee};

const ACCOUNTS: u32 = 100;
const PARTITIONS: i32 = 4;
const APP_ID: &str = "bank";
const INPUT: &str = "transfers";
const STORE: &str = "balances";
const OUTPUT: &str = "balances";

/// A transfer of `amount` cents from one account to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transfer {
    id: u64,
    from: u32,
    to: u32,
    amount: i64,
}

/// Which side of a transfer an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Debit,
    Credit,
}

/// One side of a transfer, applied to one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    transfer: u64,
    side: Side,
    amount: i64,
}

impl Transfer {
    /// A transfer as a line of the `transfers` topic: `id,from,to,cents`.
    fn line(&self) -> String {
        format!("{},{},{},{}", self.id, self.from, self.to, self.amount)
    }

    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split(',');
        let mut next = || fields.next()?.trim().parse::<i64>().ok();
        let (id, from, to, amount) = (next()?, next()?, next()?, next()?);
        Some(Self {
            id: u64::try_from(id).ok()?,
            from: u32::try_from(from).ok().filter(|a| *a < ACCOUNTS)?,
            to: u32::try_from(to).ok().filter(|a| *a < ACCOUNTS)?,
            amount,
        })
    }

    /// The debit of the source account and the credit of the destination, by account.
    fn entries(&self) -> [(u32, Entry); 2] {
        let entry = |side| Entry {
            transfer: self.id,
            side,
            amount: self.amount,
        };
        [
            (self.from, entry(Side::Debit)),
            (self.to, entry(Side::Credit)),
        ]
    }
}

impl Entry {
    /// This entry's contribution to an account's digest.
    fn digest(&self) -> u64 {
        mix(self.transfer.wrapping_mul(2) + self.side as u64 + 1)
    }
}

/// An account's aggregate: its balance and what was applied to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Account {
    balance: i64,
    debits: u64,
    credits: u64,
    /// Wrapping sum of the applied entries' digests.
    digest: u64,
    /// The entry applied last (the one this update of the table is for).
    last: Option<(u64, Side)>,
}

impl Account {
    fn applied(&self) -> u64 {
        self.debits + self.credits
    }
}

/// The types' encoding: a fixed number of big-endian u64 words (the root crate has no serde
/// derive, so the types encode themselves; any [`Serde`] will do for the DSL).
trait Words: Sized + std::fmt::Debug {
    const NAME: &'static str;
    fn to_words(&self) -> Vec<u64>;
    fn from_words(words: &[u64]) -> Option<Self>;
}

fn side_of(word: u64) -> Option<Side> {
    [Side::Debit, Side::Credit]
        .get(usize::try_from(word).ok()?)
        .copied()
}

impl Words for Entry {
    const NAME: &'static str = "Entry";
    fn to_words(&self) -> Vec<u64> {
        vec![self.transfer, self.side as u64, self.amount as u64]
    }
    fn from_words(w: &[u64]) -> Option<Self> {
        let &[transfer, side, amount] = w else {
            return None;
        };
        let (side, amount) = (side_of(side)?, amount as i64);
        Some(Self {
            transfer,
            side,
            amount,
        })
    }
}

impl Words for Account {
    const NAME: &'static str = "Account";
    fn to_words(&self) -> Vec<u64> {
        let (last, side) = self.last.map_or((0, 0), |(t, side)| (t, side as u64 + 1));
        let (balance, debits, credits) = (self.balance as u64, self.debits, self.credits);
        vec![balance, debits, credits, self.digest, last, side]
    }
    fn from_words(w: &[u64]) -> Option<Self> {
        let &[balance, debits, credits, digest, last, side] = w else {
            return None;
        };
        let last = match side {
            0 => None,
            side => Some((last, side_of(side - 1)?)),
        };
        let balance = balance as i64;
        Some(Self {
            balance,
            debits,
            credits,
            digest,
            last,
        })
    }
}

/// The [`Serde`] of a [`Words`] type.
#[derive(Debug)]
struct WordsSerde<T>(PhantomData<fn() -> T>);

impl<T: Words> Serde<T> for WordsSerde<T> {
    fn serialize(&self, value: &T) -> sluice::runtime::Result<Vec<u8>> {
        Ok(value
            .to_words()
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect())
    }
    fn deserialize(&self, bytes: &[u8]) -> sluice::runtime::Result<T> {
        let (words, rest) = bytes.as_chunks::<8>();
        let words: Vec<u64> = words.iter().map(|w| u64::from_be_bytes(*w)).collect();
        match T::from_words(&words) {
            Some(value) if rest.is_empty() => Ok(value),
            _ => Err(sluice::runtime::Error::Serde {
                type_name: T::NAME,
                reason: format!("{} bytes are not a {}", bytes.len(), T::NAME),
            }),
        }
    }
}

macro_rules! words_data {
    ($($t:ty),*) => {$(
        impl Data for $t {
            fn serde() -> Arc<dyn Serde<Self>> {
                Arc::new(WordsSerde::<$t>(PhantomData))
            }
        }
    )*};
}

words_data!(Entry, Account);

/// The opening balances (10.00 to 1000.00) and the transfers (0.01 to 250.00 each, between
/// two different accounts; balances may go negative: this bank lends freely).
fn generate(seed: u64, transfers: u64) -> (Vec<i64>, Vec<Transfer>) {
    let mut rng = Rng::new(seed);
    let opening = (0..ACCOUNTS)
        .map(|_| 1_000 + rng.below(99_001) as i64)
        .collect();
    let transfers = (0..transfers)
        .map(|id| {
            let from = rng.below(u64::from(ACCOUNTS)) as u32;
            let to = (from + 1 + rng.below(u64::from(ACCOUNTS) - 1) as u32) % ACCOUNTS;
            let amount = 1 + rng.below(25_000) as i64;
            Transfer {
                id,
                from,
                to,
                amount,
            }
        })
        .collect();
    (opening, transfers)
}

/// The DSL topology; `applied` counts the entries its aggregation folds in.
fn bank_topology(names: &Names, opening: Arc<Vec<i64>>, applied: Arc<AtomicU64>) -> Res<Topology> {
    let b = StreamBuilder::new();
    b.stream::<u64, String>(&names.of(INPUT))
        // A line that does not parse is no transfer: it shows as lost in the check.
        .flat_map(|_, line: String| {
            Transfer::parse(&line)
                .map(|t| t.entries())
                .into_iter()
                .flatten()
        })
        .group_by_key() // the key changed: through `bank-balances-repartition`
        .aggregate(STORE, Account::default, move |account, entry, mut acc| {
            applied.fetch_add(1, Ordering::Relaxed);
            if acc.applied() == 0 {
                acc.balance = opening[*account as usize]; // the first entry opens the account
            }
            let (count, amount) = match entry.side {
                Side::Debit => (&mut acc.debits, -entry.amount),
                Side::Credit => (&mut acc.credits, entry.amount),
            };
            *count += 1;
            acc.balance += amount;
            acc.digest = acc.digest.wrapping_add(entry.digest());
            acc.last = Some((entry.transfer, entry.side));
            acc
        })
        .to_stream()
        .to(&names.of(OUTPUT));
    Ok(b.build()?)
}

/// Transfers' worth of entries the aggregation folded in (committed or not).
fn transfers_applied(applied: &AtomicU64) -> u64 {
    applied.load(Ordering::Relaxed) / 2
}

/// Transfers between accounts, exactly once, through a crash if asked (see the file's doc).
#[derive(Debug, Parser)]
struct Options {
    /// Transfers to produce.
    #[arg(long, default_value_t = 20_000)]
    transfers: u64,
    /// Seed of the transfer generator.
    #[arg(long, default_value_t = 0xB44E)]
    seed: u64,
    /// Crash the app once about this many transfers were applied, then restart it.
    #[arg(long)]
    crash_after: Option<u64>,
    /// How the app crashes.
    #[arg(long, value_enum, default_value_t = CrashAt::Kill)]
    crash_point: CrashAt,
    /// Run the app at least once instead of exactly once (to see the checks fail).
    #[arg(long)]
    at_least_once: bool,
    /// Run on this Kafka cluster (Apache Kafka or `sluice broker`) instead of the embedded
    /// log.
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap_servers: Option<String>,
}

/// How the first run dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CrashAt {
    /// `AppHandle::kill`: all threads stop dead wherever they are.
    Kill,
    BeforeFlush,
    AfterFlush,
    AfterSendOffsets,
    AfterPrepareCommit,
    AfterCommitBeforeApply,
}

impl CrashAt {
    /// The crash point of the commit protocol, or `None` for a kill.
    fn point(self) -> Option<CrashPoint> {
        match self {
            CrashAt::Kill => None,
            CrashAt::BeforeFlush => Some(CrashPoint::BeforeFlush),
            CrashAt::AfterFlush => Some(CrashPoint::AfterFlush),
            CrashAt::AfterSendOffsets => Some(CrashPoint::AfterSendOffsets),
            CrashAt::AfterPrepareCommit => Some(CrashPoint::AfterPrepareCommit),
            CrashAt::AfterCommitBeforeApply => Some(CrashPoint::AfterCommitBeforeApply),
        }
    }
}

/// Waits until the app has committed every input, or, if `crash` says so, until it has
/// applied enough to die. Returns whether it crashed.
fn run(app: &RunningApp, applied: &AtomicU64, crash: Option<(u64, CrashAt)>) -> Res<bool> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((after, at)) = crash
            && transfers_applied(applied) >= after
        {
            // A kill is the caller's to do; an armed crash point kills the app itself.
            if at == CrashAt::Kill
                || app
                    .handle
                    .wait_for_state(AppState::Error, Duration::from_secs(10))
            {
                return Ok(true);
            }
            return Err("the armed crash point was not reached".into());
        }
        // With a crash to come, only a failure ends the wait early (`caught_up` returns it):
        // on a cluster over the network the app may well catch up while `caught_up` asks.
        if (crash.is_none() || app.handle.state() == AppState::Error) && app.caught_up()? {
            return Ok(false);
        }
        if Instant::now() > deadline {
            return Err("the app did not catch up within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() -> Res<()> {
    let options = Options::parse();
    if let Some(after) = options.crash_after
        && after >= options.transfers
    {
        let transfers = options.transfers;
        return Err(format!("--crash-after {after} must be below --transfers {transfers}").into());
    }
    let temp = tempfile::tempdir()?;
    let dir = temp.path();
    let target = Target::new(options.bootstrap_servers.clone());
    target.run(&dir.join("log"), Bank { options, dir })
}

/// The example, on whichever cluster [`Target`] chose.
struct Bank<'a> {
    options: Options,
    /// Where the app's state goes.
    dir: &'a Path,
}

impl OnCluster for Bank<'_> {
    type Output = ();
    fn run<C: Backend>(self, cluster: &C, names: &Names) -> Res<()> {
        bank(cluster, names, &self.options, self.dir)
    }
}

fn bank<C: Backend>(broker: &C, names: &Names, options: &Options, dir: &Path) -> Res<()> {
    let (guarantee, guarantee_name) = match options.at_least_once {
        false => (ProcessingGuarantee::ExactlyOnce, "exactly once"),
        true => (ProcessingGuarantee::AtLeastOnce, "at least once"),
    };
    let started = Instant::now();
    let topics = TopicConfig::default().with_partitions(PARTITIONS);
    common::create_topics(broker, names, &[INPUT, OUTPUT], &topics)?;
    let (opening, transfers) = generate(options.seed, options.transfers);
    let opening = Arc::new(opening);
    let mut producer = broker.producer(&ProducerSpec::idempotent("bank-transfers-input"))?;
    for t in &transfers {
        producer.send(
            ProducerRecord::new(names.of(INPUT), t.line()).with_key(t.id.to_be_bytes().to_vec()),
        )?;
    }
    producer.flush()?;
    producer.close()?;
    println!(
        "bank transfers: {} transfers between {ACCOUNTS} accounts on {PARTITIONS} partitions, {guarantee_name} (seed {})",
        transfers.len(),
        options.seed
    );

    let applied = Arc::new(AtomicU64::new(0));
    let topology = bank_topology(names, opening.clone(), applied.clone())?;
    let state_dir = dir.join("state");
    let mut config = AppConfig::default()
        .with_processing_guarantee(guarantee)
        .with_state_dir(&state_dir)
        .with_commit_interval(Duration::from_millis(10))
        .with_transaction_timeout(Duration::from_secs(2));
    if !names.on_kafka() {
        // Kafka refuses sessions under its group.min.session.timeout.ms (6 s by default).
        config = config
            .with_heartbeat_interval(Duration::from_millis(50))
            .with_session_timeout(Duration::from_secs(1));
    }
    let first = match (options.crash_after, options.crash_point.point()) {
        (Some(after), Some(point)) => {
            let (applied, fired) = (applied.clone(), AtomicBool::new(false));
            let hook = move |at: CrashPoint| {
                at == point
                    && transfers_applied(&applied) >= after
                    && !fired.swap(true, Ordering::Relaxed)
            };
            config.clone().with_crash_hook(Arc::new(hook))
        }
        _ => config.clone(),
    };
    let app_id = names.of(APP_ID);
    let app = RunningApp::start(broker, &app_id, topology, first)?;
    let crash = options.crash_after.map(|n| (n, options.crash_point));
    let crashed = run(&app, &applied, crash)?;
    let mut metrics = app.handle.metrics();
    let app = if crashed {
        let at_crash = transfers_applied(&applied);
        app.handle.kill();
        let how = match options.crash_point.point() {
            Some(point) => format!("at {point:?}"),
            None => "by AppHandle::kill".to_string(),
        };
        println!(
            "crashed {how} after about {at_crash} transfers were applied ({} commits before)",
            metrics.commits
        );
        let topology = bank_topology(names, opening.clone(), applied.clone())?;
        let app = RunningApp::start(broker, &app_id, topology, config)?;
        run(&app, &applied, None)?;
        let again = app.handle.metrics();
        println!(
            "restarted on the same state dir: {} records processed, {} changelog records restored, {} commits",
            again.records_processed, again.records_restored, again.commits
        );
        metrics = again;
        app
    } else {
        app
    };
    app.handle.shutdown()?;
    let processing = started.elapsed();

    let failures = check(
        broker,
        &names.of(OUTPUT),
        &state_dir,
        (&opening, &transfers),
    )?;
    println!(
        "time: {:.2} s ({} records processed by the last run, {} commits, commit p50 {} µs)",
        processing.as_secs_f64(),
        metrics.records_processed,
        metrics.commits,
        metrics.commit_latency_p50_us
    );
    common::conclude(&failures)
}

/// The final aggregates in RocksDB (after the clean shutdown).
fn read_store(state_dir: &Path) -> Res<BTreeMap<u32, Account>> {
    let db = StateDb::open(&state_dir.join("rocksdb"))?;
    let mut stored = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let name = StoreName::new(STORE, partition);
        let store = db.kv_store(&name, BigEndianSerde, WordsSerde::<Account>(PhantomData))?;
        let nothing_written = WriteOverlay::default();
        for entry in store.all(&nothing_written)? {
            let (account, balance) = entry?;
            stored.insert(account, balance);
        }
    }
    Ok(stored)
}

/// Checks the store and the output topic `output` against the model; prints the figures
/// and returns the failed checks.
fn check<C: Cluster>(
    broker: &C,
    output: &str,
    state_dir: &Path,
    (opening, transfers): (&[i64], &[Transfer]),
) -> Res<Vec<String>> {
    let n = transfers.len() as u64;
    let mut model: Vec<i64> = opening.to_vec();
    let mut wanted_digest = 0u64;
    for t in transfers {
        model[t.from as usize] -= t.amount;
        model[t.to as usize] += t.amount;
        for (_, entry) in t.entries() {
            wanted_digest = wanted_digest.wrapping_add(entry.digest());
        }
    }

    // The store: conservation, counts, digest and the model.
    let stored = read_store(state_dir)?;
    let sum = |f: fn(&Account) -> u64| stored.values().map(f).fold(0, u64::wrapping_add);
    let (debits, credits, digest) = (sum(|a| a.debits), sum(|a| a.credits), sum(|a| a.digest));
    let total: i64 = stored.values().map(|a| a.balance).sum();
    let opening_total: i64 = opening.iter().sum();
    let wrong_balances = (0..ACCOUNTS)
        .filter(|a| stored.get(a).map(|acc| acc.balance) != Some(model[*a as usize]))
        .count();
    let conserved = total == opening_total;
    println!("total: {total} (opening {opening_total}) conserved: {conserved}");
    println!(
        "applied: debits {debits} credits {credits} (of {n} transfers); digest matches: {}",
        digest == wanted_digest
    );

    // The output, read_committed: one update per applied entry, carrying that entry.
    let mut applications: BTreeMap<(u64, Side), u64> = BTreeMap::new();
    let mut last: BTreeMap<u32, Account> = BTreeMap::new();
    let mut out_of_sequence = 0;
    for record in common::read_committed(broker, output)? {
        let account: u32 = BigEndianSerde.deserialize(record.key.as_deref().unwrap_or_default())?;
        let update = Account::serde().deserialize(record.value.as_deref().unwrap_or_default())?;
        let previous = last.get(&account).map_or(0, Account::applied);
        if update.applied() != previous + 1 {
            out_of_sequence += 1;
        }
        if let Some(entry) = update.last {
            *applications.entry(entry).or_default() += 1;
        }
        last.insert(account, update);
    }
    let updates: u64 = applications.values().sum();
    let duplicates: u64 = applications.values().map(|c| c - 1).sum();
    let lost = transfers
        .iter()
        .flat_map(Transfer::entries)
        .filter(|(_, e)| !applications.contains_key(&(e.transfer, e.side)))
        .count();
    let foreign = applications.keys().filter(|(id, _)| *id >= n).count();
    let agree = last == stored;
    println!(
        "output: {updates} updates; duplicates: {duplicates} lost: {lost} out of sequence: {out_of_sequence}"
    );
    println!(
        "balances: store and output agree: {agree}; balances equal to the model: {}",
        wrong_balances == 0
    );

    let mut failures = Vec::new();
    let mut expect = |ok: bool, failure: String| {
        if !ok {
            failures.push(failure);
        }
    };
    expect(
        conserved,
        format!("the total {total} differs from the opening {opening_total}"),
    );
    expect(
        debits == n && credits == n && digest == wanted_digest,
        format!("store: {debits} debits, {credits} credits of {n}, or a wrong digest"),
    );
    expect(
        wrong_balances == 0,
        format!("{wrong_balances} balances differ from the model"),
    );
    expect(
        duplicates == 0 && lost == 0 && foreign == 0 && out_of_sequence == 0,
        format!(
            "output: {duplicates} duplicates, {lost} lost, {foreign} unknown, {out_of_sequence} out of sequence"
        ),
    );
    expect(
        agree,
        "the last output per account differs from the store".into(),
    );
    Ok(failures)
}
