//! The target's clock, in which every wait, step timeout and timeline is measured: the twin's
//! governed clock on `local` (it runs faster than real time, and slower when the real consumers
//! lag), a served twin's clock read over its API on `kube` against `edw twin serve`, real time
//! on clusters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use edw_twin::api::ClockReading;
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
    /// A served twin's clock, in another process (`edw twin serve`), mirrored over its API.
    Served(Arc<ServedClock>),
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
            TargetClock::Served(clock) => clock.now(),
        }
    }

    /// Which clock this is, for the messages that state a time: "the twin's governed clock"
    /// (simulated seconds) or "real time".
    pub fn name(&self) -> &'static str {
        match self {
            TargetClock::Real => "real time",
            TargetClock::Twin(_) => "the twin's governed clock",
            TargetClock::Served(_) => "the served twin's governed clock",
        }
    }

    /// The unit of a figure on this clock: `simulated s` on a twin's, `real s` otherwise.
    pub fn unit(&self) -> &'static str {
        match self {
            TargetClock::Real => "real s",
            TargetClock::Twin(_) | TargetClock::Served(_) => "simulated s",
        }
    }

    /// Target seconds per real second, now.
    pub fn rate(&self) -> f64 {
        match self {
            TargetClock::Real => 1.0,
            TargetClock::Twin(clock) => clock.rate(),
            TargetClock::Served(clock) => clock.rate(),
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

/// How often the mirror reads the served twin's clock (real time). Between two readings it
/// runs on at the rate last read; a twin that slowed down meanwhile is caught up with by
/// holding the mirror still, never by turning it back.
const SYNC: Duration = Duration::from_millis(100);

/// Where the last reading left the served twin's clock.
#[derive(Debug, Clone, Copy)]
struct Mirror {
    at_real: Instant,
    at_simulated: Duration,
    rate: f64,
}

/// A served twin's governed clock, mirrored in this process: read every [`SYNC`] over the
/// twin's API ([`edw_twin::api::CLOCK_PATH`]), monotonic, in simulated seconds.
#[derive(Debug)]
pub struct ServedClock {
    scale: f64,
    mirror: Mutex<Mirror>,
    /// The latest time handed out (nanoseconds): the mirror never turns back.
    latest: AtomicU64,
}

/// Why a served twin's clock could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ServedClockError {
    #[error("the served twin does not answer {path}")]
    Unanswered {
        path: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("the served twin's clock states no rate (a virtual clock is not served)")]
    NoRate,
}

impl ServedClock {
    /// Reads the served twin's clock through `client` and keeps reading it in the background
    /// (until the last handle is dropped).
    pub async fn connect(client: &kube::Client) -> Result<Arc<ServedClock>, ServedClockError> {
        let reading = read(client).await?;
        let (Some(rate), Some(scale)) = (reading.rate, reading.scale) else {
            return Err(ServedClockError::NoRate);
        };
        let clock = Arc::new(ServedClock {
            scale,
            mirror: Mutex::new(Mirror {
                at_real: Instant::now(),
                at_simulated: Duration::from_secs_f64(reading.simulated_seconds.max(0.0)),
                rate,
            }),
            latest: AtomicU64::new(0),
        });
        tokio::spawn(keep_in_step(Arc::downgrade(&clock), client.clone()));
        Ok(clock)
    }

    /// Simulated time of the served twin (since it started).
    pub fn now(&self) -> Duration {
        let mirror = *lock(&self.mirror);
        let extrapolated = mirror.at_simulated + mirror.at_real.elapsed().mul_f64(mirror.rate);
        let nanos = u64::try_from(extrapolated.as_nanos()).unwrap_or(u64::MAX);
        let previous = self.latest.fetch_max(nanos, Ordering::SeqCst);
        Duration::from_nanos(previous.max(nanos))
    }

    /// Simulated seconds per real second, as last read.
    pub fn rate(&self) -> f64 {
        lock(&self.mirror).rate
    }

    /// The served twin's fastest rate (its `--scale`).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    fn update(&self, reading: ClockReading) {
        let Some(rate) = reading.rate.filter(|r| r.is_finite() && *r > 0.0) else {
            return;
        };
        *lock(&self.mirror) = Mirror {
            at_real: Instant::now(),
            at_simulated: Duration::from_secs_f64(reading.simulated_seconds.max(0.0)),
            rate,
        };
    }
}

async fn read(client: &kube::Client) -> Result<ClockReading, ServedClockError> {
    let path = edw_twin::api::CLOCK_PATH;
    let request = http::Request::get(path)
        .body(Vec::new())
        .expect("a GET of a constant path is a valid request");
    client
        .request::<ClockReading>(request)
        .await
        .map_err(|source| ServedClockError::Unanswered { path, source })
}

/// Reads the served clock every [`SYNC`] while anyone holds it. A reading that fails (the twin
/// busy or gone) leaves the mirror running at the rate last read.
async fn keep_in_step(clock: Weak<ServedClock>, client: kube::Client) {
    let mut every = tokio::time::interval(SYNC);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await; // The first tick is immediate: `connect` has just read the clock.
    loop {
        every.tick().await;
        let Ok(reading) = read(&client).await else {
            if clock.strong_count() == 0 {
                return;
            }
            continue;
        };
        match clock.upgrade() {
            Some(clock) => clock.update(reading),
            None => return,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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

    #[test]
    fn a_served_clock_never_turns_back_when_the_twin_slowed() {
        // Read 50 ms ago at x20: the mirror is at least 1 simulated second further now.
        let read_at = Instant::now()
            .checked_sub(Duration::from_millis(50))
            .expect("the machine has been up for 50 ms");
        let clock = ServedClock {
            scale: 20.0,
            mirror: Mutex::new(Mirror {
                at_real: read_at,
                at_simulated: Duration::from_secs(100),
                rate: 20.0,
            }),
            latest: AtomicU64::new(0),
        };
        let ahead = clock.now();
        assert!(ahead >= Duration::from_secs(101), "{ahead:?}");
        // The twin slowed to x1 meanwhile and is behind the extrapolation: held, not turned back.
        clock.update(ClockReading {
            simulated_seconds: 100.2,
            rate: Some(1.0),
            scale: Some(20.0),
        });
        assert_eq!(clock.rate(), 1.0);
        assert!(clock.now() >= ahead);
        // A reading without a rate (a virtual clock) changes nothing.
        clock.update(ClockReading {
            simulated_seconds: 0.0,
            rate: None,
            scale: None,
        });
        assert_eq!(clock.rate(), 1.0);
        assert_eq!(clock.scale(), 20.0);
    }
}
