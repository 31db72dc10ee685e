//! Network configuration: latency, loss, duplication, reordering, bounds.

use crate::Time;

/// A configuration value outside its domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A probability outside `0.0..=1.0`.
    #[error("{name} must be a probability in 0..=1, got {value}")]
    Probability {
        /// Which field.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// `latency_min > latency_max`.
    #[error("latency_min ({min}) exceeds latency_max ({max})")]
    Latency {
        /// The minimum given.
        min: Time,
        /// The maximum given.
        max: Time,
    },
    /// A zero bound or factor.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// Drift so large the model breaks.
    #[error("max_drift_ppm must be at most 100000, got {0}")]
    Drift(u32),
}

/// How the network treats messages. Applies to every link.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Minimum one-way latency (µs).
    pub latency_min: Time,
    /// Maximum one-way latency (µs); latency is uniform in `latency_min..=latency_max`.
    pub latency_max: Time,
    /// Probability that a message takes the long tail: its latency is multiplied
    /// by `tail_factor`. This is what reorders messages most visibly.
    pub tail_prob: f64,
    /// Latency multiplier of a long-tail message.
    pub tail_factor: u64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Deliver messages on each directed link in the order they were sent.
    pub fifo: bool,
    /// At most this many messages in flight (queued or held by a clog);
    /// beyond it, new messages are dropped and counted as `Overflow`.
    pub max_in_flight: usize,
}

impl NetConfig {
    /// A reliable network: 1–10 ms latency, no loss, no duplication, FIFO links.
    pub fn reliable() -> Self {
        NetConfig {
            latency_min: 1_000,
            latency_max: 10_000,
            tail_prob: 0.0,
            tail_factor: 1,
            loss: 0.0,
            duplicate: 0.0,
            fifo: true,
            max_in_flight: 1_000_000,
        }
    }

    /// Checks every field's domain.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("tail_prob", self.tail_prob),
            ("loss", self.loss),
            ("duplicate", self.duplicate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::Probability { name, value });
            }
        }
        if self.latency_min > self.latency_max {
            return Err(ConfigError::Latency {
                min: self.latency_min,
                max: self.latency_max,
            });
        }
        if self.tail_factor == 0 {
            return Err(ConfigError::Zero("tail_factor"));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::Zero("max_in_flight"));
        }
        Ok(())
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        Self::reliable()
    }
}
