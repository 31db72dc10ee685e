//! Leader-side lease expiry, counted in ticks.
