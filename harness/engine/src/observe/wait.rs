//! Waits as predicates over observations: [`eventually`] (true within T) and [`consistently`]
//! (true for a whole window), with `and` / `or` / `not` combinators. A failed wait says what was
//! expected, what was last seen and how it got there.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Recorder;
use edw_model::report::Observation;

type Predicate = Arc<dyn Fn(&Observation) -> bool + Send + Sync>;

/// An expected condition, with a description for people.
#[derive(Clone)]
pub struct Expect {
    pub description: String,
    predicate: Predicate,
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
        }
    }

    /// True for `observation`.
    pub fn holds(&self, observation: &Observation) -> bool {
        (self.predicate)(observation)
    }

    pub fn and(self, other: Expect) -> Expect {
        let (a, b) = (self.predicate, other.predicate);
        Expect {
            description: format!("({}) and ({})", self.description, other.description),
            predicate: Arc::new(move |o| a(o) && b(o)),
        }
    }

    pub fn or(self, other: Expect) -> Expect {
        let (a, b) = (self.predicate, other.predicate);
        Expect {
            description: format!("({}) or ({})", self.description, other.description),
            predicate: Arc::new(move |o| a(o) || b(o)),
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Expect {
        let a = self.predicate;
        Expect {
            description: format!("not ({})", self.description),
            predicate: Arc::new(move |o| !a(o)),
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
    )
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
        let nap = clock.nap_before(deadline);
        let ended = nap.is_zero()
            || matches!(
                tokio::time::timeout(nap, updates.changed()).await,
                Ok(Err(_))
            );
        if ended {
            let last = updates.borrow().clone();
            return Err(WaitFailure {
                expected: expect.description.clone(),
                window: format!("within {within:?}"),
                last: (last.t > 0.0).then_some(last),
                history: recent(recorder),
                broken_by: None,
            });
        }
    }
}

/// Checks that `expect` holds for every observation during `window` of target time.
pub async fn consistently(
    recorder: &Recorder,
    expect: &Expect,
    window: Duration,
) -> Result<(), WaitFailure> {
    let mut updates = recorder.subscribe();
    let clock = recorder.clock();
    let deadline = clock.now() + window;
    loop {
        let current = updates.borrow_and_update().clone();
        if current.t > 0.0 && !expect.holds(&current) {
            return Err(WaitFailure {
                expected: expect.description.clone(),
                window: format!("for {window:?}"),
                last: Some(current.clone()),
                history: recent(recorder),
                broken_by: Some(current),
            });
        }
        let nap = clock.nap_before(deadline);
        if nap.is_zero() {
            return Ok(());
        }
        if let Ok(Err(_)) = tokio::time::timeout(nap, updates.changed()).await {
            // The recorder stopped: nothing more will be seen.
            return Ok(());
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
}
