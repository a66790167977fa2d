//! Windowed stream-stream joins, inner, left and outer, through the TopologyTestDriver, with
//! out-of-order and late records: against a brute force over the accepted records, a
//! replay of the input, and the rules of left and outer joins checked on their own (a
//! record goes out with `None` only once its window closed, only without a partner, and
//! never both with and without one).

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use sluice_dsl::runtime::serde::{BigEndianSerde, BincodeSerde, StringSerde};
use sluice_dsl::runtime::testkit::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use sluice_dsl::{JoinWindows, StreamBuilder};

/// `cases` cases, or as many as the environment's `PROPTEST_CASES` asks for.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig::with_cases(sluice_dsl::runtime::testkit::proptest_cases(cases))
}

fn driver(shape: impl FnOnce(&StreamBuilder)) -> TopologyTestDriver {
    let b = StreamBuilder::new();
    shape(&b);
    TopologyTestDriver::new(b.build().expect("topology")).expect("driver")
}

/// A record of a stream-stream join's input; its value is its id (its place in the input).
#[derive(Debug, Clone)]
struct Rec {
    left: bool,
    key: String,
    t: i64,
    id: i64,
}

/// One join result: the key, the left and right ids (`None`: no partner), the timestamp.
type Joined = (String, Option<i64>, Option<i64>, i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    before: i64,
    after: i64,
    grace: i64,
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

impl Window {
    fn join_windows(self) -> JoinWindows {
        let w = JoinWindows::of(Duration::ZERO);
        w.before(ms(self.before))
            .after(ms(self.after))
            .grace(ms(self.grace))
    }
    /// How far ahead of a record its window extends.
    fn reach(self, r: &Rec) -> i64 {
        if r.left { self.after } else { self.before }
    }
    /// Whether `r`'s window is still open at stream time `now` (a record arriving later
    /// is dropped).
    fn open(self, r: &Rec, now: i64) -> bool {
        r.t + self.reach(r) + self.grace >= now
    }
    /// Whether no partner of `r` can be accepted any more at stream time `now`: a partner's
    /// window closes at most `before + after + grace` after `r`.
    fn settled(self, r: &Rec, now: i64) -> bool {
        r.t + self.before + self.after + self.grace < now
    }
    /// Whether `x` and `y` are partners: opposite sides, one key, right in [l - before, l + after].
    fn pair(self, x: &Rec, y: &Rec) -> bool {
        let (l, r) = if x.left { (x, y) } else { (y, x) };
        x.left != y.left && l.key == r.key && l.t - self.before <= r.t && r.t <= l.t + self.after
    }
    fn joined(self, x: &Rec, y: &Rec) -> Joined {
        let (l, r) = if x.left { (x, y) } else { (y, x) };
        (l.key.clone(), Some(l.id), Some(r.id), l.t.max(r.t))
    }
}

fn alone(x: &Rec) -> Joined {
    let id = Some(x.id);
    let (l, r) = if x.left { (id, None) } else { (None, id) };
    (x.key.clone(), l, r, x.t)
}

fn emits_alone(kind: Kind, x: &Rec) -> bool {
    kind == Kind::Outer || (kind == Kind::Left && x.left)
}

/// The stream time once each record is processed (the largest timestamp so far), and
/// whether the record was accepted (its own window still open).
fn arrivals(records: &[Rec], w: Window) -> Vec<(i64, bool)> {
    let mut now = i64::MIN;
    let arrive = |r: &Rec| {
        now = now.max(r.t);
        (now, w.open(r, now))
    };
    records.iter().map(arrive).collect()
}

/// What the join emits for each record, by replaying the input: an accepted record joins
/// the buffered records it pairs with; a record of a side that emits alone and found none
/// waits, and goes out with `None` once no partner can come any more.
fn reference(records: &[Rec], w: Window, kind: Kind) -> Vec<Vec<Joined>> {
    let (mut buffered, mut waiting): (Vec<&Rec>, Vec<&Rec>) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    for (x, (now, accepted)) in records.iter().zip(arrivals(records, w)) {
        let mut step = Vec::new();
        if accepted {
            let partners: Vec<&Rec> = buffered.iter().copied().filter(|y| w.pair(x, y)).collect();
            step.extend(partners.iter().map(|y| w.joined(x, y)));
            waiting.retain(|u| partners.iter().all(|p| p.id != u.id));
            if partners.is_empty() && emits_alone(kind, x) {
                waiting.push(x);
            }
            buffered.push(x);
        }
        let (closed, open): (Vec<&Rec>, Vec<&Rec>) =
            waiting.iter().partition(|u| w.settled(u, now));
        waiting = open;
        step.extend(closed.into_iter().map(alone));
        step.sort();
        out.push(step);
    }
    out
}

/// Runs the three joins over `records`; what each emitted after each record (sorted), and
/// the records dropped.
fn run_stream_joins(records: &[Rec], w: Window) -> ([Vec<Vec<Joined>>; 3], u64) {
    type Pair = (Option<i64>, Option<i64>);
    let mut d = driver(|b| {
        let (l, r) = (b.stream::<String, i64>("l"), b.stream::<String, i64>("r"));
        let windows = w.join_windows();
        l.join(&r, windows, |_, l, r| (Some(*l), Some(*r)))
            .to("inner-out");
        l.left_join(&r, windows, |_, l, r| (Some(*l), r.copied()))
            .to("left-out");
        l.outer_join(&r, windows, |_, l, r| (l.copied(), r.copied()))
            .to("outer-out");
    });
    let (lt, rt) = (
        TestInputTopic::new("l", StringSerde, BigEndianSerde),
        TestInputTopic::new("r", StringSerde, BigEndianSerde),
    );
    let mut out: [Vec<Vec<Joined>>; 3] = Default::default();
    for x in records {
        d.pipe_input(if x.left { &lt } else { &rt }, x.key.clone(), x.id, x.t)
            .expect("pipe");
        for (j, name) in ["inner-out", "left-out", "outer-out"]
            .into_iter()
            .enumerate()
        {
            let topic = TestOutputTopic::new(name, StringSerde, BincodeSerde::<Pair>::default());
            let got = d.read_output(&topic).expect("read");
            let mut step: Vec<Joined> = got
                .into_iter()
                .map(|r| (r.key, r.value.0, r.value.1, r.timestamp))
                .collect();
            step.sort();
            out[j].push(step);
        }
    }
    (out, d.dropped_records())
}

/// The rules of a left or outer join's output, checked on their own: no result twice;
/// the pairs are those of the accepted records, at the later timestamp; a record goes out
/// alone only from a side that does, only after its window closed, and only if no accepted
/// partner arrived before (in fact: ever; it waits until none can come); an accepted
/// record shows up with partners or (once its window closed) alone, never both.
fn check_rules(
    records: &[Rec],
    w: Window,
    kind: Kind,
    got: &[Vec<Joined>],
) -> Result<(), TestCaseError> {
    let arrivals = arrivals(records, w);
    let accepted = |x: &Rec| arrivals[x.id as usize].1;
    let at: BTreeMap<&Joined, usize> = got
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.iter().map(move |j| (j, i)))
        .collect();
    prop_assert_eq!(
        at.len(),
        got.iter().map(Vec::len).sum::<usize>(),
        "a result emitted twice"
    );
    let alone_at = |x: &Rec| at.get(&alone(x)).copied();
    for (x, y) in records
        .iter()
        .flat_map(|x| records.iter().map(move |y| (x, y)))
    {
        if !x.left || y.left {
            continue;
        }
        let emitted = at.contains_key(&w.joined(x, y));
        let valid = accepted(x) && accepted(y) && w.pair(x, y);
        prop_assert!(valid || !emitted, "an invalid pair {:?} {:?}", x, y);
        prop_assert!(!valid || emitted, "a missing pair {:?} {:?}", x, y);
    }
    let final_time = arrivals.last().map_or(i64::MIN, |a| a.0);
    for x in records {
        let with_partner = records.iter().any(|y| at.contains_key(&w.joined(x, y)));
        let Some(i) = alone_at(x) else {
            let must = accepted(x) && emits_alone(kind, x) && w.settled(x, final_time);
            prop_assert!(
                !must || with_partner,
                "{:?} closed without partner, never emitted",
                x
            );
            continue;
        };
        prop_assert!(emits_alone(kind, x) && accepted(x), "{:?} emitted alone", x);
        prop_assert!(!with_partner, "{:?} emitted alone and with a partner", x);
        prop_assert!(
            w.settled(x, arrivals[i].0),
            "{:?} emitted alone before its window closed and no partner could come",
            x
        );
        let late = i > 0 && w.settled(x, arrivals[i - 1].0);
        prop_assert!(!late, "{:?} emitted alone late", x);
        let partner = records.iter().any(|y| accepted(y) && w.pair(x, y));
        prop_assert!(
            !partner,
            "{:?} emitted alone though it has an accepted partner",
            x
        );
    }
    Ok(())
}

fn stream_records() -> impl Strategy<Value = (Vec<Rec>, Window)> {
    let step = prop_oneof![6 => -6i64..8, 1 => 8i64..30, 1 => -30i64..-6];
    let steps = prop::collection::vec((any::<bool>(), "[ab]", step), 1..32);
    (steps, 0i64..8, 0i64..8, 0i64..6).prop_map(|(steps, before, after, grace)| {
        let mut t = 100;
        let records = steps
            .into_iter()
            .enumerate()
            .map(|(id, (left, key, step))| {
                t = (t + step).max(0);
                Rec {
                    left,
                    key,
                    t,
                    id: id as i64,
                }
            })
            .collect();
        (
            records,
            Window {
                before,
                after,
                grace,
            },
        )
    })
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn stream_stream_joins_equal_a_replay_of_the_input_and_keep_their_rules(
        (records, w) in stream_records(),
    ) {
        let ([inner, left, outer], dropped) = run_stream_joins(&records, w);
        let late = arrivals(&records, w).iter().filter(|a| !a.1).count() as u64;
        prop_assert_eq!(dropped, 3 * late, "each join drops and counts the late records");

        // Inner: every pair of accepted records within the window, whichever came first.
        let mut all: Vec<Joined> = inner.iter().flatten().cloned().collect();
        all.sort();
        let accepted: Vec<&Rec> =
            records.iter().zip(arrivals(&records, w)).filter(|(_, a)| a.1).map(|(r, _)| r).collect();
        let mut brute: Vec<Joined> = accepted
            .iter()
            .flat_map(|x| accepted.iter().filter(move |y| x.left && w.pair(x, y)).map(move |y| w.joined(x, y)))
            .collect();
        brute.sort();
        prop_assert_eq!(all, brute);
        prop_assert_eq!(&inner, &reference(&records, w, Kind::Inner));

        check_rules(&records, w, Kind::Left, &left)?;
        check_rules(&records, w, Kind::Outer, &outer)?;
        prop_assert_eq!(&left, &reference(&records, w, Kind::Left));
        prop_assert_eq!(&outer, &reference(&records, w, Kind::Outer));
    }
}

type Stream = sluice_dsl::Stream<String, String>;

/// Pipes (left?, key, value, timestamp) into `l` / `r` (String -> String) and returns what
/// `out` received after each record, as (key, value, timestamp).
fn run_strings(
    shape: impl FnOnce(Stream, Stream),
    input: &[(bool, &str, &str, i64)],
) -> Vec<Vec<(String, String, i64)>> {
    let mut d = driver(|b| shape(b.stream("l"), b.stream("r")));
    let (lt, rt) = (
        TestInputTopic::new("l", StringSerde, StringSerde),
        TestInputTopic::new("r", StringSerde, StringSerde),
    );
    let out = TestOutputTopic::new("out", StringSerde, StringSerde);
    let mut steps = Vec::new();
    for (left, k, v, t) in input {
        let topic = if *left { &lt } else { &rt };
        d.pipe_input(topic, k.to_string(), v.to_string(), *t)
            .expect("pipe");
        let got = d.read_output(&out).expect("read");
        let mut step: Vec<_> = got
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect();
        step.sort();
        steps.push(step);
    }
    steps
}

fn rows(rows: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
    rows.iter()
        .map(|(k, v, t)| (k.to_string(), v.to_string(), *t))
        .collect()
}

fn windows(before: i64, after: i64, grace: i64) -> JoinWindows {
    Window {
        before,
        after,
        grace,
    }
    .join_windows()
}

#[test]
fn an_inner_join_pairs_records_within_before_and_after_at_the_later_timestamp() {
    let steps = run_strings(
        |l, r| {
            l.join(&r, windows(5, 2, 100), |_, l, r| format!("{l}{r}"))
                .to("out")
        },
        &[
            (true, "a", "L10", 10),
            (false, "a", "R4", 4),   // 10 - 4 > before
            (false, "a", "R5", 5),   // 10 - 5 = before
            (false, "a", "R12", 12), // 12 - 10 = after
            (false, "a", "R13", 13), // 13 - 10 > after
            (false, "b", "R10", 10), // another key
            (true, "a", "L8", 8),    // joins R5 (8 - 5 <= 5) and R4
        ],
    );
    let want = [
        vec![],
        vec![],
        rows(&[("a", "L10R5", 10)]),
        rows(&[("a", "L10R12", 12)]),
        vec![],
        vec![],
        rows(&[("a", "L8R4", 8), ("a", "L8R5", 8)]),
    ];
    assert_eq!(steps, want);
}

/// A record without a partner goes out alone once stream time passes its window, even
/// when a later record of its side jumps far ahead (the jump used to hide it behind the
/// retention of the store of waiting records, so it was never emitted).
#[test]
fn a_record_without_partner_is_emitted_when_a_jump_closes_its_window() {
    let left = run_strings(
        |l, r| {
            l.left_join(&r, windows(10, 0, 0), |_, l, r| format!("{l}+{r:?}"))
                .to("out")
        },
        &[(true, "a", "L0", 0), (true, "b", "L20", 20)],
    );
    assert_eq!(left, [vec![], rows(&[("a", "L0+None", 0)])]);
    let outer = run_strings(
        |l, r| {
            l.outer_join(&r, windows(0, 10, 0), |_, l, r| format!("{l:?}+{r:?}"))
                .to("out")
        },
        &[(false, "a", "R0", 0), (false, "b", "R20", 20)],
    );
    assert_eq!(outer, [vec![], rows(&[("a", "None+Some(\"R0\")", 0)])]);
}

/// A record whose own window closed without a partner still waits: a late partner, whose
/// window is open, is accepted and joins it. It goes out alone only once no partner can
/// come (stream time past `t + before + after + grace`), so nothing is contradicted.
#[test]
fn a_record_waits_for_a_late_partner_before_going_out_alone() {
    let input = [
        (true, "a", "L0", 0),
        (false, "b", "R1", 1), // L0's own window closed (0 + after 0 + grace 0 < 1)
        (false, "a", "R0", 0), // accepted (0 + before 10 + grace 0 >= 1): joins L0
        (true, "d", "L5", 5),
        // R1 can get no partner (1 + 10 < 15); L5 still can: a right record at 5 would be
        // accepted (5 + before 10 + grace 0 >= 15).
        (false, "c", "R15", 15),
        (false, "c", "R16", 16), // now L5 can get none (5 + 10 < 16)
    ];
    let run = |shape: fn(Stream, Stream)| run_strings(shape, &input);
    let inner = run(|l, r| {
        l.join(&r, windows(10, 0, 0), |_, l, r| format!("{l}+{r}"))
            .to("out")
    });
    let pair = rows(&[("a", "L0+R0", 0)]);
    assert_eq!(inner, [vec![], vec![], pair, vec![], vec![], vec![]]);
    let left = run(|l, r| {
        l.left_join(&r, windows(10, 0, 0), |_, l, r| format!("{l}+{r:?}"))
            .to("out")
    });
    let (pair, l5) = (
        rows(&[("a", "L0+Some(\"R0\")", 0)]),
        rows(&[("d", "L5+None", 5)]),
    );
    assert_eq!(left, [vec![], vec![], pair, vec![], vec![], l5]);
    let outer = run(|l, r| {
        l.outer_join(&r, windows(10, 0, 0), |_, l, r| format!("{l:?}+{r:?}"))
            .to("out")
    });
    let pair = rows(&[("a", "Some(\"L0\")+Some(\"R0\")", 0)]);
    let (r1, l5) = (
        rows(&[("b", "None+Some(\"R1\")", 1)]),
        rows(&[("d", "Some(\"L5\")+None", 5)]),
    );
    assert_eq!(outer, [vec![], vec![], pair, vec![], r1, l5]);
}
