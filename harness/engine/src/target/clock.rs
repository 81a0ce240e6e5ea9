//! The target's clock, in which every wait, step timeout and timeline is measured: the twin's
//! governed clock on `local` (it runs faster than real time, and slower when the real consumers
//! lag), real time on clusters.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use edw_twin::clock::{Clock, ScaledClock};

/// The longest a wait sleeps before it looks at the clock again (real time): the twin's rate
/// may change while it sleeps.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// Target time.
#[derive(Debug, Clone)]
pub enum TargetClock {
    /// Real time (a cluster).
    Real,
    /// The twin's scaled, governed clock.
    Twin(Arc<ScaledClock>),
}

impl TargetClock {
    /// Target time since an arbitrary origin (compare two readings of the same clock).
    pub fn now(&self) -> Duration {
        match self {
            TargetClock::Real => {
                static ORIGIN: OnceLock<Instant> = OnceLock::new();
                ORIGIN.get_or_init(Instant::now).elapsed()
            }
            TargetClock::Twin(clock) => clock.now(),
        }
    }

    /// Which clock this is, for the messages that state a time: "the twin's governed clock"
    /// (simulated seconds) or "real time".
    pub fn name(&self) -> &'static str {
        match self {
            TargetClock::Real => "real time",
            TargetClock::Twin(_) => "the twin's governed clock",
        }
    }

    /// Target seconds per real second, now.
    pub fn rate(&self) -> f64 {
        match self {
            TargetClock::Real => 1.0,
            TargetClock::Twin(clock) => clock.rate(),
        }
    }

    /// Real time that `target` takes at the current rate.
    pub fn real(&self, target: Duration) -> Duration {
        target.div_f64(self.rate())
    }

    /// Waits until this clock reads `deadline` (a [`TargetClock::now`] value).
    pub async fn sleep_until(&self, deadline: Duration) {
        loop {
            let remaining = deadline.saturating_sub(self.now());
            if remaining.is_zero() {
                return;
            }
            tokio::time::sleep(self.real(remaining).min(LOOK_AGAIN)).await;
        }
    }

    /// Waits `target` time on this clock.
    pub async fn sleep(&self, target: Duration) {
        self.sleep_until(self.now() + target).await;
    }

    /// Real time until `deadline`, at most [`LOOK_AGAIN`] (zero once it has passed).
    pub fn nap_before(&self, deadline: Duration) -> Duration {
        self.real(deadline.saturating_sub(self.now()))
            .min(LOOK_AGAIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_twin_clock_sleeps_in_target_time_even_when_it_slows() {
        let twin = Arc::new(ScaledClock::new(100.0));
        let clock = TargetClock::Twin(twin.clone());
        let before = clock.now();
        clock.sleep(Duration::from_secs(5)).await;
        assert!(
            clock.now() - before >= Duration::from_secs(5),
            "5 s at x100"
        );
        // Slowed to x10: 5 target seconds take at least 0.5 s of real time, not 50 ms.
        twin.set_rate(10.0);
        let start = Instant::now();
        let before = clock.now();
        clock.sleep(Duration::from_secs(5)).await;
        assert!(clock.now() - before >= Duration::from_secs(5));
        assert!(
            start.elapsed() >= Duration::from_millis(450),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn real_time_is_real() {
        let clock = TargetClock::Real;
        assert_eq!(clock.name(), "real time");
        assert_eq!(clock.rate(), 1.0);
        assert_eq!(clock.real(Duration::from_secs(3)), Duration::from_secs(3));
        let a = clock.now();
        assert!(clock.now() >= a);
        assert!(clock.nap_before(a) == Duration::ZERO);
    }
}
