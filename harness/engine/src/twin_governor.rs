//! Keeps the twin's scaled clock honest: when the real consumer pods (or the twin's read of the
//! real queue) take longer in real time than the simulated system allows, simulated time slows
//! down (never below real time) and speeds up again once they keep up. Without it a busy machine
//! or an Azurite stall lets the x20 clock run past the consumers, and KEDA scales in while work
//! that the real system would have finished is still in the queue (the stranded tail).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edw_twin::clock::{Clock, ScaledClock};
use tokio_util::sync::CancellationToken;

use crate::workload::WorkClock;

/// Simulated time one storage call (a receive, or a message's write and delete) may take before
/// the clock slows down: two of the sample's one-second message cycles.
pub const ALLOWANCE: Duration = Duration::from_secs(2);

/// How long a finished call's duration keeps counting (real time).
const MEMORY: Duration = Duration::from_secs(1);

/// How often the governor looks (real time).
const TICK: Duration = Duration::from_millis(20);

/// How much faster the clock may run after each tick once the work keeps up again.
const RECOVERY: f64 = 1.25;

/// Which storage call sets the pace: of the calls running now and those finished within
/// [`MEMORY`], the one nine in ten stay within. The pods' throughput, which is what KEDA and
/// the HPA react to, is that of their typical call; the slowest one alone (a retried call, one
/// partition's disk flush) held the clock near real time for most of a chaos run while nine in
/// ten calls took under 100 ms. A stall that holds more than one call in ten (a whole queue
/// partition of four) still slows it at once.
pub const PACE_QUANTILE: f64 = 0.9;

/// The rate for the next tick: as fast as `scale` allows while the pace-setting storage call
/// seen lately ([`PACE_QUANTILE`]) fits in [`ALLOWANCE`] of simulated time, never below real time (or `scale`, if lower),
/// slowing at once and speeding up by at most [`RECOVERY`] per tick.
pub fn next_rate(current: f64, scale: f64, slowest: Duration) -> f64 {
    let floor = scale.min(1.0);
    let fits = if slowest.is_zero() {
        scale
    } else {
        ALLOWANCE.as_secs_f64() / slowest.as_secs_f64()
    };
    let wanted = fits.clamp(floor, scale);
    if wanted < current {
        wanted
    } else {
        (current * RECOVERY).min(wanted)
    }
}

/// What the governor did over a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GovernorSummary {
    pub scale: f64,
    /// The lowest rate the clock ran at.
    pub lowest_rate: f64,
    /// Real time the clock ran below its scale.
    pub slowed_for: Duration,
}

impl std::fmt::Display for GovernorSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lowest_rate >= self.scale {
            write!(f, "the clock ran at x{} throughout", self.scale)
        } else {
            write!(
                f,
                "the clock slowed below x{} for {:.1} s of real time (lowest x{:.1}) while storage calls lagged",
                self.scale,
                self.slowed_for.as_secs_f64(),
                self.lowest_rate
            )
        }
    }
}

/// Storage work in progress and lately finished, and the clock it governs.
pub struct ClockGovernor {
    clock: Arc<ScaledClock>,
    next_ticket: AtomicU64,
    in_progress: Mutex<HashMap<u64, Instant>>,
    finished: Mutex<VecDeque<(Instant, Duration)>>,
    summary: Mutex<GovernorSummary>,
}

impl ClockGovernor {
    /// Governs `clock` every few milliseconds until `stop`.
    pub fn start(clock: Arc<ScaledClock>, stop: CancellationToken) -> Arc<ClockGovernor> {
        let governor = Arc::new(Self::new(clock));
        let ticking = governor.clone();
        tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stop.cancelled() => break,
                }
                let now = Instant::now();
                ticking.govern(now - last);
                last = now;
            }
        });
        governor
    }

    /// A governor that does not tick by itself (tests call [`ClockGovernor::govern`]).
    pub fn new(clock: Arc<ScaledClock>) -> ClockGovernor {
        let scale = clock.scale();
        ClockGovernor {
            clock,
            next_ticket: AtomicU64::new(0),
            in_progress: Mutex::default(),
            finished: Mutex::default(),
            summary: Mutex::new(GovernorSummary {
                scale,
                lowest_rate: scale,
                slowed_for: Duration::ZERO,
            }),
        }
    }

    /// The duration that nine in ten storage calls running now or finished within the last
    /// second stay within ([`PACE_QUANTILE`], real time); zero without calls.
    pub fn pace(&self) -> Duration {
        let now = Instant::now();
        let mut durations: Vec<Duration> = lock(&self.in_progress)
            .values()
            .map(|started| now - *started)
            .collect();
        {
            let mut finished = lock(&self.finished);
            while finished.front().is_some_and(|(at, _)| now - *at > MEMORY) {
                finished.pop_front();
            }
            durations.extend(finished.iter().map(|(_, d)| *d));
        }
        quantile(&mut durations, PACE_QUANTILE)
    }

    /// Sets the clock's rate for what it sees now; `since_last` is the real time since the last
    /// call (for the summary).
    pub fn govern(&self, since_last: Duration) -> f64 {
        let scale = self.clock.scale();
        let current = self.clock.rate();
        let rate = self.clock.set_rate(next_rate(current, scale, self.pace()));
        let mut summary = lock(&self.summary);
        if current < scale {
            summary.slowed_for += since_last;
        }
        summary.lowest_rate = summary.lowest_rate.min(rate);
        rate
    }

    /// The clock's nominal scale.
    pub fn scale(&self) -> f64 {
        self.clock.scale()
    }

    pub fn summary(&self) -> GovernorSummary {
        *lock(&self.summary)
    }
}

impl WorkClock for ClockGovernor {
    fn cycle(&self) -> Duration {
        self.clock.real_duration(Duration::from_secs(1))
    }

    fn started(&self) -> u64 {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        lock(&self.in_progress).insert(ticket, Instant::now());
        ticket
    }

    fn finished(&self, ticket: u64) {
        if let Some(started) = lock(&self.in_progress).remove(&ticket) {
            let mut finished = lock(&self.finished);
            finished.push_back((Instant::now(), started.elapsed()));
            if finished.len() > 4096 {
                finished.pop_front();
            }
        }
    }
}

/// The value that a `q` share of `values` stay within (the largest for one or two values);
/// zero for none.
fn quantile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
    *values.select_nth_unstable(rank).1
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_work_keeps_the_full_scale() {
        assert_eq!(next_rate(20.0, 20.0, Duration::ZERO), 20.0);
        // 50 ms is 1 simulated second at x20: well inside the allowance.
        assert_eq!(next_rate(20.0, 20.0, Duration::from_millis(50)), 20.0);
    }

    #[test]
    fn slow_work_slows_the_clock_at_once_but_never_below_real_time() {
        // 400 ms may be 2 simulated seconds: x5.
        assert_eq!(next_rate(20.0, 20.0, Duration::from_millis(400)), 5.0);
        // An Azurite stall of 9 s: real time, not slower.
        assert_eq!(next_rate(20.0, 20.0, Duration::from_secs(9)), 1.0);
        // A twin slower than real time is left alone.
        assert_eq!(next_rate(0.5, 0.5, Duration::from_secs(9)), 0.5);
    }

    #[test]
    fn the_clock_recovers_gradually() {
        let mut rate = 1.0;
        let mut ticks = 0;
        while rate < 20.0 {
            let next = next_rate(rate, 20.0, Duration::ZERO);
            assert!(next <= rate * RECOVERY + 1e-9, "{rate} -> {next}");
            rate = next;
            ticks += 1;
        }
        assert!((10..=20).contains(&ticks), "{ticks} ticks from x1 to x20");
    }

    #[test]
    fn work_in_progress_counts_until_it_finishes() {
        let clock = Arc::new(ScaledClock::new(20.0));
        let governor = ClockGovernor::new(clock.clone());
        let ticket = governor.started();
        std::thread::sleep(Duration::from_millis(250));
        assert!(governor.pace() >= Duration::from_millis(250));
        let rate = governor.govern(TICK);
        assert!(
            rate <= 8.0 + 1e-9,
            "a 250 ms call allows x8 at most, not x{rate}"
        );
        assert_eq!(clock.rate(), rate);
        governor.finished(ticket);
        // Finished work still counts for a second, then the clock may speed up again.
        assert!(governor.pace() >= Duration::from_millis(250));
        let summary = governor.summary();
        assert_eq!(summary.lowest_rate, rate);
        assert!(summary.to_string().contains("lowest x"), "{summary}");
        // The pace follows the clock: one simulated second at the slower rate.
        assert!(governor.cycle() >= Duration::from_millis(125));
    }

    #[test]
    fn one_slow_call_in_twenty_does_not_set_the_pace_three_in_ten_do() {
        let ms = Duration::from_millis;
        let mut calls: Vec<Duration> = (0..19).map(|_| ms(30)).chain([ms(900)]).collect();
        assert_eq!(quantile(&mut calls, PACE_QUANTILE), ms(30));
        let mut calls: Vec<Duration> = (0..7).map(|_| ms(30)).chain([ms(900); 3]).collect();
        assert_eq!(quantile(&mut calls, PACE_QUANTILE), ms(900));
        // One or two calls: the slowest of them.
        assert_eq!(quantile(&mut [ms(5), ms(400)], PACE_QUANTILE), ms(400));
        assert_eq!(quantile(&mut [ms(400)], PACE_QUANTILE), ms(400));
        assert_eq!(quantile(&mut [], PACE_QUANTILE), Duration::ZERO);
    }

    #[test]
    fn a_stall_of_many_calls_in_progress_slows_the_clock() {
        let clock = Arc::new(ScaledClock::new(20.0));
        let governor = ClockGovernor::new(clock.clone());
        // Ten fast calls finished, four stuck: more than one in ten.
        for _ in 0..10 {
            let ticket = governor.started();
            governor.finished(ticket);
        }
        let started_250_ms_ago = Instant::now()
            .checked_sub(Duration::from_millis(250))
            .expect("the machine has been up for 250 ms");
        for ticket in 100..104 {
            lock(&governor.in_progress).insert(ticket, started_250_ms_ago);
        }
        assert!(governor.govern(TICK) <= 8.0 + 1e-9);
    }
}
