//! Per-process local clocks: a fixed offset plus a constant drift rate.
//!
//! A process's local clock reads `offset + t + floor(t * drift_ppm / 1e6)` at
//! true time `t`. It never runs backwards (drift is bounded well above -1e6
//! ppm, and [`crate::Sim::jump_clock`] only moves a clock forward).

use crate::Time;

/// How far local clocks may stray from true time; drawn per process from the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockConfig {
    /// Each process's offset is drawn uniformly from `0..=max_skew`, so any two
    /// clocks differ by at most `max_skew` at time 0.
    pub max_skew: Time,
    /// Each process's drift is drawn uniformly from `-max_drift_ppm..=max_drift_ppm`
    /// (parts per million); at most 100 000.
    pub max_drift_ppm: u32,
}

impl ClockConfig {
    /// Perfect clocks: every local clock equals true time.
    pub fn perfect() -> Self {
        ClockConfig {
            max_skew: 0,
            max_drift_ppm: 0,
        }
    }
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self::perfect()
    }
}

/// The clock of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockModel {
    /// Local reading at true time 0 (plus any forward jumps since).
    pub offset: Time,
    /// Rate error in parts per million; positive runs fast.
    pub drift_ppm: i32,
}

impl ClockModel {
    /// The local reading at true time `t`.
    pub fn local(&self, t: Time) -> Time {
        let drift = (t as i128 * self.drift_ppm as i128).div_euclid(1_000_000);
        let v = self.offset as i128 + t as i128 + drift;
        assert!(v >= 0, "local clock below zero: {self:?} at {t}");
        v as Time
    }

    /// The earliest true time `>= now` at which the local clock has advanced by
    /// at least `after` since `now`.
    pub fn true_deadline(&self, now: Time, after: Time) -> Time {
        let target = self.local(now) + after;
        let rate = 1_000_000i128 + self.drift_ppm as i128;
        assert!(rate > 0, "clock drift must keep the clock moving forward");
        let est = (after as i128 * 1_000_000 + rate - 1) / rate;
        let mut t = now + est as Time;
        // Rounding in `local` can leave the estimate a tick short (or long).
        while t > now && self.local(t - 1) >= target {
            t -= 1;
        }
        while self.local(t) < target {
            t += 1;
        }
        t
    }
}
