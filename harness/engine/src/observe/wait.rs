//! Waits as predicates over observations: [`eventually`] (true within T) and [`consistently`]
//! (true for a whole window), with `and` / `or` / `not` combinators. A failed wait says what was
//! expected, what was last seen and how it got there.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Recorder;
use edw_model::report::{Observation, Read};

type Predicate = Arc<dyn Fn(&Observation) -> bool + Send + Sync>;

/// An expected condition, with a description for people and the reads it rests on
/// ([`Expect::reading`]): a sample that could not make one of them neither satisfies it nor
/// breaks it (its fields there are defaults, not observations).
#[derive(Clone)]
pub struct Expect {
    pub description: String,
    predicate: Predicate,
    needs: Vec<Read>,
}

impl fmt::Debug for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl Expect {
    pub fn new(
        description: impl Into<String>,
        predicate: impl Fn(&Observation) -> bool + Send + Sync + 'static,
    ) -> Self {
        Expect {
            description: description.into(),
            predicate: Arc::new(predicate),
            needs: Vec::new(),
        }
    }

    /// The same condition, judged only on samples that read `reads` (the fields it looks at).
    pub fn reading(mut self, reads: &[Read]) -> Self {
        self.needs.extend_from_slice(reads);
        self.needs.sort();
        self.needs.dedup();
        self
    }

    /// The reads this condition rests on.
    pub fn needs(&self) -> &[Read] {
        &self.needs
    }

    /// True when `observation` made every read this condition rests on.
    pub fn can_judge(&self, observation: &Observation) -> bool {
        self.needs.iter().all(|&read| observation.read(read))
    }

    /// True for `observation` (never for one that could not make the reads it rests on).
    pub fn holds(&self, observation: &Observation) -> bool {
        self.can_judge(observation) && (self.predicate)(observation)
    }

    fn combined(self, other: Expect, description: String, both: bool) -> Expect {
        let (a, b) = (self.predicate, other.predicate);
        let mut needs = self.needs;
        needs.extend(other.needs);
        Expect {
            description,
            predicate: if both {
                Arc::new(move |o| a(o) && b(o))
            } else {
                Arc::new(move |o| a(o) || b(o))
            },
            needs: Vec::new(),
        }
        .reading(&needs)
    }

    pub fn and(self, other: Expect) -> Expect {
        let description = format!("({}) and ({})", self.description, other.description);
        self.combined(other, description, true)
    }

    pub fn or(self, other: Expect) -> Expect {
        let description = format!("({}) or ({})", self.description, other.description);
        self.combined(other, description, false)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Expect {
        let a = self.predicate;
        Expect {
            description: format!("not ({})", self.description),
            predicate: Arc::new(move |o| !a(o)),
            needs: self.needs,
        }
    }
}

/// A wait that did not succeed.
#[derive(Debug, Clone)]
pub struct WaitFailure {
    pub expected: String,
    /// "within 30s" or "for 10s".
    pub window: String,
    pub last: Option<Observation>,
    /// The last observations, oldest first.
    pub history: Vec<Observation>,
    /// For `consistently`: the observation that broke the condition.
    pub broken_by: Option<Observation>,
}

fn line(o: &Observation) -> String {
    format!(
        "t={:.1}s queue={} desired={} ready={} running={} pending={} nodes={:?} nodeclaims={} hpa_desired={}",
        o.t,
        o.queue.map_or("?".to_owned(), |q| q.to_string()),
        o.desired,
        o.ready,
        o.running,
        o.pending,
        o.nodes,
        o.nodeclaims,
        o.hpa_desired.map_or("-".to_owned(), |h| h.to_string())
    ) + &if o.unread.is_empty() {
        String::new()
    } else {
        format!(" (could not read: {:?})", o.unread)
    }
}

impl fmt::Display for WaitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.broken_by {
            Some(broken) => writeln!(
                f,
                "expected {} {}, but it broke: {}",
                self.expected,
                self.window,
                line(broken)
            )?,
            None => writeln!(f, "expected {} {}", self.expected, self.window)?,
        }
        match &self.last {
            Some(last) => writeln!(f, "last observed: {}", line(last))?,
            None => writeln!(f, "nothing was observed")?,
        }
        if !self.history.is_empty() {
            writeln!(f, "history:")?;
            for o in &self.history {
                writeln!(f, "  {}", line(o))?;
            }
        }
        Ok(())
    }
}

impl WaitFailure {
    /// The failure as lines for a report.
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_owned).collect()
    }
}

fn recent(recorder: &Recorder) -> Vec<Observation> {
    let history = recorder.history();
    let skip = history.len().saturating_sub(12);
    history.into_iter().skip(skip).collect()
}

/// Waits until `expect` holds, for at most `within` of target time (the recorder's clock: the
/// twin's governed clock on `local`, real time on a cluster).
pub async fn eventually(
    recorder: &Recorder,
    expect: &Expect,
    within: Duration,
) -> Result<Observation, WaitFailure> {
    let mut updates = recorder.subscribe();
    let clock = recorder.clock();
    let deadline = clock.now() + within;
    loop {
        let current = updates.borrow_and_update().clone();
        if current.t > 0.0 && expect.holds(&current) {
            return Ok(current);
        }
        if window_ended(clock, deadline, &mut updates).await {
            let last = updates.borrow().clone();
            return Err(WaitFailure::of(
                recorder,
                expect,
                format!("within {within:?}"),
                (last.t > 0.0).then_some(last),
                None,
            ));
        }
    }
}

/// Waits for the next sample; true when the window ended first (its deadline passed, or the
/// recorder stopped: nothing more will be seen).
async fn window_ended(
    clock: &crate::target::TargetClock,
    deadline: Duration,
    updates: &mut tokio::sync::watch::Receiver<Observation>,
) -> bool {
    let nap = clock.nap_before(deadline);
    nap.is_zero()
        || matches!(
            tokio::time::timeout(nap, updates.changed()).await,
            Ok(Err(_))
        )
}

impl WaitFailure {
    fn of(
        recorder: &Recorder,
        expect: &Expect,
        window: String,
        last: Option<Observation>,
        broken_by: Option<Observation>,
    ) -> Self {
        WaitFailure {
            expected: expect.description.clone(),
            window,
            last,
            history: recent(recorder),
            broken_by,
        }
    }
}

/// Checks that `expect` holds for every observation during `window` of target time. A sample
/// that could not make the reads `expect` rests on is no evidence either way; a window without
/// a single sample that could is a failure (nothing was seen to hold).
pub async fn consistently(
    recorder: &Recorder,
    expect: &Expect,
    window: Duration,
) -> Result<(), WaitFailure> {
    let mut updates = recorder.subscribe();
    let clock = recorder.clock();
    let deadline = clock.now() + window;
    let mut judged = false;
    let mut last = None;
    loop {
        let current = updates.borrow_and_update().clone();
        if current.t > 0.0 && expect.can_judge(&current) {
            judged = true;
            if !expect.holds(&current) {
                return Err(WaitFailure::of(
                    recorder,
                    expect,
                    format!("for {window:?}"),
                    Some(current.clone()),
                    Some(current),
                ));
            }
        }
        if current.t > 0.0 {
            last = Some(current);
        }
        if window_ended(clock, deadline, &mut updates).await {
            if judged {
                return Ok(());
            }
            return Err(WaitFailure::of(
                recorder,
                expect,
                format!(
                    "for {window:?}, but no sample in it could read what it rests on ({:?})",
                    expect.needs
                ),
                last,
                None,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinators_compose_and_describe_themselves() {
        let at_max = Expect::new("desired replicas = 15", |o| o.desired == 15);
        let drained = Expect::new("queue = 0", |o| o.queue == Some(0));
        let both = at_max.clone().and(drained.clone());
        let either = at_max.clone().or(drained.clone());
        let o = Observation {
            desired: 15,
            queue: Some(3),
            ..Observation::default()
        };
        assert!(!both.holds(&o) && either.holds(&o) && drained.clone().not().holds(&o));
        assert_eq!(both.description, "(desired replicas = 15) and (queue = 0)");
    }

    #[test]
    fn a_sample_that_could_not_make_a_read_neither_satisfies_nor_breaks_what_rests_on_it() {
        let scaled_to_zero =
            Expect::new("desired replicas = 0", |o| o.desired == 0).reading(&[Read::Deployment]);
        let unread = Observation {
            unread: vec![Read::Deployment],
            ..Observation::default()
        };
        // Its desired 0 is a default, not an observation: it passes neither way.
        assert!(!scaled_to_zero.can_judge(&unread));
        assert!(!scaled_to_zero.holds(&unread));
        assert!(!scaled_to_zero.clone().not().holds(&unread));
        assert!(scaled_to_zero.holds(&Observation::default()));
        // A condition that does not rest on that read still judges the sample.
        let drained = Expect::new("queue = 0", |o| o.queue == Some(0));
        let drained_sample = Observation {
            queue: Some(0),
            ..unread.clone()
        };
        assert!(drained.holds(&drained_sample));
        // Combined, the reads add up.
        let both = drained.clone().and(scaled_to_zero.clone());
        let either = drained.or(scaled_to_zero.reading(&[Read::Pods]));
        assert_eq!(both.needs(), [Read::Deployment]);
        assert_eq!(either.needs(), [Read::Deployment, Read::Pods]);
        assert!(!both.holds(&drained_sample) && !either.holds(&drained_sample));
        // The diagnostics say what could not be read.
        assert!(
            line(&unread).ends_with("(could not read: [Deployment])"),
            "{}",
            line(&unread)
        );
    }
}
