//! The fault-injection harness (docs/architecture.md §3.3): runs any topology on a temporary embedded
//! broker, or on any `Cluster` ([`FaultHarness::run_on`]: `sluice broker`, Apache Kafka),
//! through a scenario of input and faults (crashes at each step of the commit
//! protocol and in the middle of a restore, a zombie instance, a second instance joining
//! and leaving), then checks the outcome against a reference model written as a plain
//! function of the input: the output per key, in order, exactly once; the final contents
//! of a store; the committed input offsets. An anomaly is reported with the scenario's
//! history.
//!
//! The harness is generic over the input topic's key and value (`IK`, `IV`) and the output
//! topic's (`OK`, `OV`); the checked store holds the output's types (a table whose
//! changelog the output is, as for an aggregation). See `runtime/tests/eos_harness.rs`
//! for a property test built on it (proptest generates the scenarios).
//!
//! ```
//! use std::collections::BTreeMap;
//! use sluice_runtime::config::CrashPoint;
//! use sluice_runtime::processor::{Processor, ProcessorContext, ProcessResult, Record};
//! use sluice_runtime::serde::{BigEndianSerde, StringSerde};
//! use sluice_runtime::testkit::{Expected, Fault, FaultHarness, Step};
//! use sluice_runtime::topology::{StoreSpec, TopologyBuilder};
//!
//! /// Sums values per key, forwarding each new sum.
//! struct Sum;
//! impl Processor<String, i64> for Sum {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>,
//!                r: Record<String, i64>) -> ProcessResult {
//!         let mut sums = ctx.kv_store::<String, i64>("sums")?;
//!         let sum = sums.get(&r.key)?.unwrap_or(0) + r.value;
//!         sums.put(&r.key, &sum)?;
//!         ctx.forward(r.with_value(sum))?;
//!         Ok(())
//!     }
//! }
//!
//! let mut b = TopologyBuilder::new();
//! b.add_source::<String, i64>("in", &["in"], StringSerde, BigEndianSerde)?;
//! b.add_processor("sum", &["in"], || Sum)?;
//! b.add_state_store(StoreSpec::key_value::<String, i64>("sums", StringSerde, BigEndianSerde), &["sum"])?;
//! b.add_sink::<String, i64>("out", "out", &["sum"], StringSerde, BigEndianSerde)?;
//! let harness = FaultHarness::new(
//!     "sums", b.build()?,
//!     ("in", StringSerde, BigEndianSerde), ("out", StringSerde, BigEndianSerde), 2,
//! )
//! .with_store("sums", StringSerde, BigEndianSerde);
//!
//! // The model: a plain function of the input.
//! let model = |input: &[(String, i64)]| {
//!     let mut expected = Expected { outputs: BTreeMap::new(), store: BTreeMap::new() };
//!     for (k, v) in input {
//!         let sum = expected.store.entry(k.clone()).or_insert(0);
//!         *sum += v;
//!         expected.outputs.entry(k.clone()).or_insert_with(Vec::new).push(*sum);
//!     }
//!     expected
//! };
//! let scenario = vec![
//!     Step::Produce(vec![("a".to_string(), 1), ("b".to_string(), 2), ("a".to_string(), 3)]),
//!     Step::Fault(Fault::Crash(CrashPoint::AfterCommitBeforeApply)),
//!     Step::Produce(vec![("a".to_string(), 4)]),
//! ];
//! let history = harness.run(&scenario, model).map_err(|failure| failure.to_string())?;
//! assert!(history.iter().any(|h| h.contains("died at AfterCommitBeforeApply")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sluice_log::cluster::{Cluster, InternalTopic, InternalTopicKind, ProducerSpec, TxnProducer};
use sluice_log::{Broker, BrokerConfig, ProducerRecord};

use super::checks::{Anomaly, check_offsets, check_outputs, check_store};
use crate::app::{App, AppHandle, AppState};
use crate::config::{AppConfig, CrashPoint};
use crate::error::{Error, Result};
use crate::serde::Serde;
use crate::topology::Topology;
use waits::{HANG_GUARD, poll_until};

mod waits;

/// How long a [`Fault::Zombie`] keeps processing after the group has moved its tasks to
/// the second instance, before it heartbeats again.
const ZOMBIE_RUN: Duration = Duration::from_millis(200);

/// A fault the harness injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The primary instance dies at the next time it reaches this point, then restarts
    /// from its state directory.
    Crash(CrashPoint),
    /// A second instance joins the group (tasks move to it).
    SecondJoins,
    /// The second instance shuts down cleanly (its tasks move back).
    SecondLeaves,
    /// The second instance dies at this point and stays down (its tasks move back after
    /// the session timeout).
    SecondCrashes(CrashPoint),
    /// The primary stops heartbeating until the second instance has taken its tasks (the
    /// second instance joins if it is not running), keeps processing as a zombie for
    /// 200 ms more, then heartbeats again (and rejoins).
    Zombie,
}

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<K, V> {
    /// Produce these input records (keyed, murmur2-partitioned).
    Produce(Vec<(K, V)>),
    /// Inject a fault.
    Fault(Fault),
}

/// What the model says the outcome must be.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected<K, V> {
    /// Per key, the output values in order.
    pub outputs: BTreeMap<K, Vec<V>>,
    /// The final contents of the checked store (ignored when no store is checked).
    pub store: BTreeMap<K, V>,
}

/// A failed check: the anomalies found and the history of the run.
#[derive(Debug)]
pub struct HarnessFailure {
    /// What was wrong.
    pub anomalies: Vec<Anomaly>,
    /// What happened, in order.
    pub history: Vec<String>,
}

impl std::fmt::Display for HarnessFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} anomalies:", self.anomalies.len())?;
        for a in &self.anomalies {
            writeln!(f, "  - {a}")?;
        }
        writeln!(f, "history:")?;
        for h in &self.history {
            writeln!(f, "  {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HarnessFailure {}

/// A topic's (or a store's) name, partitions and serdes. Under
/// [`FaultHarness::new_per_run`] the name is a base each run suffixes.
pub(super) struct TopicSpec<K, V> {
    pub name: String,
    pub partitions: i32,
    pub keys: Arc<dyn Serde<K>>,
    pub values: Arc<dyn Serde<V>>,
}

/// Builds a run's topology from its input and output topic names.
type TopologyBuilderFn = Arc<dyn Fn(&str, &str) -> Topology + Send + Sync>;

/// Where a harness's topology comes from.
enum TopologySource {
    /// One topology, its topics named as given.
    Fixed(Topology),
    /// Built for each run from the run's own topic names.
    PerRun(TopologyBuilderFn),
}

/// The names one run uses: fresh ones per run under [`FaultHarness::new_per_run`], so runs
/// on one shared cluster never see each other's topics or groups.
pub(super) struct RunNames {
    pub application_id: String,
    pub input: String,
    pub output: String,
    /// The checked store's changelog topic.
    pub changelog: Option<String>,
    pub topology: Topology,
}

/// Runs scenarios against a topology. Build it with [`FaultHarness::new`] (or
/// [`new_per_run`](FaultHarness::new_per_run)) and the `with_*` methods, then call
/// [`FaultHarness::run`] or [`FaultHarness::run_on`] once per scenario.
pub struct FaultHarness<IK, IV, OK, OV> {
    application_id: String,
    topology: TopologySource,
    /// Sub-topologies of the topology (tasks per input partition).
    sub_topologies: usize,
    input: TopicSpec<IK, IV>,
    output: TopicSpec<OK, OV>,
    /// The checked store (its name, not its changelog's).
    store: Option<TopicSpec<OK, OV>>,
    config: AppConfig,
    crash_wait: Duration,
}

impl<IK, IV, OK, OV> Debug for FaultHarness<IK, IV, OK, OV> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultHarness")
            .field("application_id", &self.application_id)
            .field("input", &self.input.name)
            .field("output", &self.output.name)
            .finish_non_exhaustive()
    }
}

/// An instance and the crash point armed for it.
struct Instance {
    dir: PathBuf,
    armed: Arc<Mutex<Option<CrashPoint>>>,
    handle: Option<AppHandle>,
}

impl<IK, IV, OK, OV> FaultHarness<IK, IV, OK, OV>
where
    IK: Clone + Debug + Send + 'static,
    IV: Clone + Debug + Send + 'static,
    OK: Ord + Clone + Debug + Send + 'static,
    OV: PartialEq + Clone + Debug + Send + 'static,
{
    /// A harness for `topology` reading `input` (with `partitions` partitions) and writing
    /// `output` (same partition count), with the given serdes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        application_id: &str,
        topology: Topology,
        input: (&str, impl Serde<IK> + 'static, impl Serde<IV> + 'static),
        output: (&str, impl Serde<OK> + 'static, impl Serde<OV> + 'static),
        partitions: i32,
    ) -> Self {
        let sub_topologies = topology.sub_topologies().len();
        Self::build(
            application_id,
            TopologySource::Fixed(topology),
            sub_topologies,
            input,
            output,
            partitions,
        )
    }

    /// A harness whose topology `build(input, output)` makes for each run, from the run's
    /// own topic names: every run (of [`run_on`](Self::run_on) on one shared cluster, say)
    /// gets fresh topics and a fresh application id, suffixed by a run id.
    pub fn new_per_run(
        application_id: &str,
        build: impl Fn(&str, &str) -> Topology + Send + Sync + 'static,
        input: (&str, impl Serde<IK> + 'static, impl Serde<IV> + 'static),
        output: (&str, impl Serde<OK> + 'static, impl Serde<OV> + 'static),
        partitions: i32,
    ) -> Self {
        let sub_topologies = build(input.0, output.0).sub_topologies().len();
        Self::build(
            application_id,
            TopologySource::PerRun(Arc::new(build)),
            sub_topologies,
            input,
            output,
            partitions,
        )
    }

    fn build(
        application_id: &str,
        topology: TopologySource,
        sub_topologies: usize,
        input: (&str, impl Serde<IK> + 'static, impl Serde<IV> + 'static),
        output: (&str, impl Serde<OK> + 'static, impl Serde<OV> + 'static),
        partitions: i32,
    ) -> Self {
        let config = AppConfig::default()
            .with_commit_interval(Duration::from_millis(20))
            .with_heartbeat_interval(Duration::from_millis(20))
            .with_session_timeout(Duration::from_millis(400))
            .with_transaction_timeout(Duration::from_secs(1))
            .with_restore_batch(1)
            .with_max_poll_records(20);
        Self {
            application_id: application_id.to_string(),
            topology,
            sub_topologies,
            input: TopicSpec {
                name: input.0.to_string(),
                partitions,
                keys: Arc::new(input.1),
                values: Arc::new(input.2),
            },
            output: TopicSpec {
                name: output.0.to_string(),
                partitions,
                keys: Arc::new(output.1),
                values: Arc::new(output.2),
            },
            store: None,
            config,
            crash_wait: Duration::from_secs(2),
        }
    }

    /// Also checks the final contents of key-value store `name` (keyed and valued like the
    /// output) in the surviving instance's RocksDB and in its changelog.
    pub fn with_store(
        mut self,
        name: &str,
        keys: impl Serde<OK> + 'static,
        values: impl Serde<OV> + 'static,
    ) -> Self {
        self.store = Some(TopicSpec {
            name: name.to_string(),
            partitions: self.input.partitions,
            keys: Arc::new(keys),
            values: Arc::new(values),
        });
        self
    }

    /// How long a crash waits for its armed point to be reached (default 2 s); on a
    /// remote cluster, whose commits are slower, give it longer.
    pub fn with_crash_wait(mut self, wait: Duration) -> Self {
        self.crash_wait = wait;
        self
    }

    /// Runs each instance with `threads` stream threads (tasks then also move between
    /// threads of one instance).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.config = self.config.with_num_threads(threads);
        self
    }

    /// Replaces the app configuration (state dirs and crash hooks are the harness's).
    pub fn with_config(mut self, config: AppConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs `scenario` on a fresh embedded broker and checks it against `model`; returns
    /// the history of the run (which faults struck where) when every check passes.
    pub fn run(
        &self,
        scenario: &[Step<IK, IV>],
        model: impl Fn(&[(IK, IV)]) -> Expected<OK, OV>,
    ) -> std::result::Result<Vec<String>, HarnessFailure> {
        let opened = tempfile::tempdir()
            .map_err(|e| Error::IllegalState(format!("tempdir: {e}")))
            .and_then(|dir| {
                let broker = Broker::open(dir.path().join("broker"), BrokerConfig::default())?;
                Ok((dir, broker))
            });
        match opened {
            Ok((_dir, broker)) => self.run_on(&broker, scenario, model),
            Err(e) => Err(HarnessFailure {
                anomalies: vec![Anomaly::HarnessError(e.to_string())],
                history: Vec::new(),
            }),
        }
    }

    /// Runs `scenario` on `cluster` (the embedded broker, `sluice broker`, Apache Kafka:
    /// any [`Cluster`]) and checks it against `model`. The run creates its topics there;
    /// under [`new_per_run`](Self::new_per_run) they and the application id are fresh.
    /// On a Kafka cluster give the harness a config Kafka accepts (sessions of 6 s at
    /// least) and a `max_poll_interval` as short, so a zombie loses its tasks; the
    /// `AfterPrepareCommit` crash then dies just after the commit (a remote cluster cannot
    /// be stopped between PrepareCommit and the markers).
    pub fn run_on<C: Cluster>(
        &self,
        cluster: &C,
        scenario: &[Step<IK, IV>],
        model: impl Fn(&[(IK, IV)]) -> Expected<OK, OV>,
    ) -> std::result::Result<Vec<String>, HarnessFailure> {
        let mut history = Vec::new();
        let names = self.names();
        match self.execute(cluster, &names, scenario, &mut history) {
            Ok((produced, primary_dir, _dir)) => {
                let expected = model(&produced);
                let anomalies = self.check(cluster, &names, &expected, &primary_dir);
                match anomalies {
                    Ok(a) if a.is_empty() => Ok(history),
                    Ok(anomalies) => Err(HarnessFailure { anomalies, history }),
                    Err(e) => Err(HarnessFailure {
                        anomalies: vec![Anomaly::HarnessError(e.to_string())],
                        history,
                    }),
                }
            }
            Err(e) => Err(HarnessFailure {
                anomalies: vec![Anomaly::HarnessError(e.to_string())],
                history,
            }),
        }
    }

    /// This run's names (see [`RunNames`]).
    fn names(&self) -> RunNames {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let suffixed = |base: &str, suffix: &str| format!("{base}-{suffix}");
        let (application_id, input, output, topology) = match &self.topology {
            TopologySource::Fixed(topology) => (
                self.application_id.clone(),
                self.input.name.clone(),
                self.output.name.clone(),
                topology.clone(),
            ),
            TopologySource::PerRun(build) => {
                let suffix = format!(
                    "{:x}-{}-{}",
                    sluice_log::now_ms(),
                    std::process::id(),
                    RUNS.fetch_add(1, Ordering::Relaxed)
                );
                let (input, output) = (
                    suffixed(&self.input.name, &suffix),
                    suffixed(&self.output.name, &suffix),
                );
                let topology = build(&input, &output);
                (
                    suffixed(&self.application_id, &suffix),
                    input,
                    output,
                    topology,
                )
            }
        };
        let changelog = self
            .store
            .as_ref()
            .map(|store| crate::state::changelog_topic(&application_id, &store.name));
        RunNames {
            application_id,
            input,
            output,
            changelog,
            topology,
        }
    }

    fn app(&self, names: &RunNames, instance: &Instance) -> Result<App> {
        let armed = instance.armed.clone();
        let hook = Arc::new(move |point: CrashPoint| {
            let mut armed = armed.lock();
            if *armed == Some(point) {
                *armed = None;
                true
            } else {
                false
            }
        });
        let config = self
            .config
            .clone()
            .with_state_dir(&instance.dir)
            .with_crash_hook(hook);
        App::new(&names.application_id, names.topology.clone(), config)
    }

    fn start<C: Cluster>(
        &self,
        cluster: &C,
        names: &RunNames,
        instance: &mut Instance,
    ) -> Result<()> {
        let handle = self.app(names, instance)?.start(cluster)?;
        instance.handle = Some(handle);
        Ok(())
    }

    /// Arms `point` and waits for the instance to die there (or gives up: the point was
    /// not reached, e.g. nothing to commit or restore).
    fn crash(
        &self,
        instance: &mut Instance,
        point: CrashPoint,
        log: &mut impl FnMut(String),
    ) -> bool {
        *instance.armed.lock() = Some(point);
        let died = instance
            .handle
            .as_ref()
            .is_some_and(|h| h.wait_for_state(AppState::Error, self.crash_wait));
        *instance.armed.lock() = None;
        if died {
            if let Some(h) = instance.handle.take() {
                log(format!(
                    "died at {point:?}: {}",
                    h.error().unwrap_or_default()
                ));
                h.kill();
            }
        } else {
            log(format!(
                "{point:?} not reached within {:?}",
                self.crash_wait
            ));
        }
        died
    }

    /// How long a read of the output or a changelog waits for a transaction a crashed
    /// instance left open: the cluster aborts it after the transaction timeout.
    fn settle_wait(&self) -> Duration {
        self.config.transaction_timeout * 4 + Duration::from_secs(20)
    }

    #[allow(clippy::type_complexity)]
    fn execute<C: Cluster>(
        &self,
        cluster: &C,
        names: &RunNames,
        scenario: &[Step<IK, IV>],
        history: &mut Vec<String>,
    ) -> Result<(Vec<(IK, IV)>, PathBuf, tempfile::TempDir)> {
        let dir = tempfile::tempdir().map_err(|e| Error::IllegalState(format!("tempdir: {e}")))?;
        for (topic, partitions) in [
            (&names.input, self.input.partitions),
            (&names.output, self.output.partitions),
        ] {
            // No time retention (a repartition topic's configs): nothing is deleted unread.
            let spec = InternalTopic {
                partitions: Some(partitions),
                kind: InternalTopicKind::Repartition,
            };
            cluster
                .create_internal_topic(topic, &spec)
                .map_err(Error::cluster)?;
        }
        let started = Instant::now();
        let mut log =
            |what: String| history.push(format!("{:>6} ms  {what}", started.elapsed().as_millis()));
        let spec = ProducerSpec::idempotent(format!("{}-input", names.application_id))
            .with_linger(Duration::ZERO);
        let mut producer = cluster.producer(&spec).map_err(Error::cluster)?;
        let mut primary = Instance {
            dir: dir.path().join("primary"),
            armed: Arc::default(),
            handle: None,
        };
        let mut second = Instance {
            dir: dir.path().join("second"),
            armed: Arc::default(),
            handle: None,
        };
        self.start(cluster, names, &mut primary)?;
        log("primary started".into());
        let mut produced = Vec::new();
        for step in scenario {
            match step {
                Step::Produce(records) => {
                    for (k, v) in records {
                        let mut record = ProducerRecord::new(names.input.clone(), "")
                            .with_key(self.input.keys.serialize(k)?);
                        record.value = self.input.values.serialize_nullable(v)?.map(Into::into);
                        producer.send(record).map_err(Error::cluster)?;
                        produced.push((k.clone(), v.clone()));
                    }
                    producer.flush().map_err(Error::cluster)?;
                    log(format!("produced {} records", records.len()));
                }
                Step::Fault(Fault::Crash(CrashPoint::MidRestore)) => {
                    // A restore needs RocksDB behind the changelog: die after a commit,
                    // before its apply; then die again in the restore of the restart.
                    if self.crash(&mut primary, CrashPoint::AfterCommitBeforeApply, &mut log) {
                        *primary.armed.lock() = Some(CrashPoint::MidRestore);
                        self.start(cluster, names, &mut primary)?;
                        log("primary restarted with MidRestore armed".into());
                        self.crash(&mut primary, CrashPoint::MidRestore, &mut log);
                        if primary.handle.is_none() {
                            self.start(cluster, names, &mut primary)?;
                            log("primary restarted".into());
                        }
                    }
                }
                Step::Fault(Fault::Crash(point)) => {
                    if self.crash(&mut primary, *point, &mut log) {
                        self.start(cluster, names, &mut primary)?;
                        log("primary restarted".into());
                    }
                }
                Step::Fault(Fault::SecondJoins) => {
                    if second.handle.is_none() {
                        self.start(cluster, names, &mut second)?;
                        log("second joined".into());
                    }
                }
                Step::Fault(Fault::SecondLeaves) => {
                    if let Some(h) = second.handle.take() {
                        h.shutdown()?;
                        log("second left".into());
                    }
                }
                Step::Fault(Fault::SecondCrashes(point)) => {
                    if second.handle.is_some() {
                        self.crash(&mut second, *point, &mut log);
                    }
                }
                Step::Fault(Fault::Zombie) => {
                    self.zombie(cluster, names, &mut primary, &mut second, &mut log)?
                }
            }
        }
        if let Err(e) = producer.close() {
            tracing::debug!(error = %e, "closing the harness's input producer");
        }
        if let Some(h) = second.handle.take() {
            h.shutdown()?;
            log("second left".into());
        }
        let handle = match primary.handle.take() {
            Some(h) => h,
            None => {
                self.start(cluster, names, &mut primary)?;
                primary
                    .handle
                    .take()
                    .ok_or_else(|| Error::IllegalState("primary did not start".into()))?
            }
        };
        self.wait_until_consumed(cluster, names, &handle)?;
        handle.shutdown()?;
        log("all input committed; primary shut down".into());
        Ok((produced, primary.dir, dir))
    }

    fn zombie<C: Cluster>(
        &self,
        cluster: &C,
        names: &RunNames,
        primary: &mut Instance,
        second: &mut Instance,
        log: &mut impl FnMut(String),
    ) -> Result<()> {
        let Some(handle) = primary.handle.as_ref() else {
            return Ok(());
        };
        // Only a member of the group can lose its tasks: a primary that has just restarted
        // is let into the group first.
        if !handle.wait_for_state(AppState::Running, HANG_GUARD) {
            return Err(Error::IllegalState(format!(
                "the primary did not join the group within {HANG_GUARD:?} (app {:?}: {})",
                handle.state(),
                handle.error().unwrap_or_default()
            )));
        }
        // A rejoin just before (the previous zombie's) may still be moving tasks: the
        // second's next assignment could then be that rebalance's, and be taken for the
        // zombie's loss before the group has even noticed the pause.
        if let Some(other) = second.handle.as_ref() {
            self.wait_until_split(handle, other)?;
        }
        handle.pause_heartbeats(true);
        log("primary stops heartbeating".into());
        if second.handle.is_none() {
            self.start(cluster, names, second)?;
            log("second joined".into());
        }
        let Some(taker) = second.handle.as_ref() else {
            return Err(Error::IllegalState("no second instance".into()));
        };
        // Past the session timeout (Kafka: the poll interval) the group gives everything to
        // the second instance, while the primary goes on processing as a zombie. Only a
        // generation the second follows from now on counts: what it runs now may be stale
        // (the zombie's own rejoin may be under way).
        let seen = taker.metrics().assignments;
        poll_until(
            "the second instance to take every task from the zombie",
            || {
                if taker.state() == AppState::Error {
                    return Err(Error::IllegalState(format!(
                        "the second instance failed: {}",
                        taker.error().unwrap_or_default()
                    )));
                }
                Ok(taker.metrics().assignments > seen && self.owns_every_task(taker))
            },
            || format!("it runs {:?}", taker.tasks()),
        )?;
        log("second runs every task; primary is a zombie".into());
        // The fault itself, not a wait for anything: the zombie runs on for a while. Any
        // length is a valid scenario; nothing later depends on what it did meanwhile.
        std::thread::sleep(ZOMBIE_RUN);
        let Some(handle) = primary.handle.as_ref() else {
            return Ok(());
        };
        let before = handle.metrics().assignments;
        handle.pause_heartbeats(false);
        log("zombie primary heartbeats again".into());
        // It learns it lost its membership and rejoins: until then it still believes it
        // owns every task, and nothing it says can be trusted.
        poll_until(
            "the zombie to rejoin the group",
            || {
                if handle.state() == AppState::Error {
                    return Err(Error::IllegalState(format!(
                        "the zombie failed: {}",
                        handle.error().unwrap_or_default()
                    )));
                }
                // Every thread of it is a member of its own and rejoins.
                Ok(handle.metrics().assignments >= before + self.config.num_threads as u64)
            },
            || format!("app {:?}", handle.state()),
        )?;
        log("zombie primary rejoined".into());
        Ok(())
    }

    fn check<C: Cluster>(
        &self,
        cluster: &C,
        names: &RunNames,
        expected: &Expected<OK, OV>,
        primary_dir: &std::path::Path,
    ) -> Result<Vec<Anomaly>> {
        let wait = self.settle_wait();
        let mut anomalies = check_outputs(
            cluster,
            &names.output,
            &self.output,
            &expected.outputs,
            wait,
        )?;
        anomalies.extend(check_offsets(
            cluster,
            &names.application_id,
            &names.input,
            &self.input,
        )?);
        if let (Some(spec), Some(changelog)) = (&self.store, &names.changelog) {
            anomalies.extend(check_store(
                cluster,
                primary_dir,
                changelog,
                spec,
                &expected.store,
                wait,
            )?);
        }
        Ok(anomalies)
    }
}
