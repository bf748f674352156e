//! Health checks' state machine: consecutive failures after the start period make a sandbox
//! unhealthy, one success healthy again.

/// A sandbox's health as its checks report it (`starting` until the first success or enough
/// failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    /// The word records and events carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

/// The status and the failing streak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    pub status: HealthStatus,
    /// Consecutive failures that counted (none during the start period).
    pub failures: u32,
    retries: u32,
}

impl HealthState {
    /// `retries`: consecutive failures that make the sandbox unhealthy (at least 1).
    pub fn new(retries: u32) -> Self {
        Self {
            status: HealthStatus::Starting,
            failures: 0,
            retries: retries.max(1),
        }
    }
    /// One check ended with `code` (0: healthy); during the start period a failure does not
    /// count. Returns the new status when it changed.
    pub fn observe(&mut self, code: i32, in_start_period: bool) -> Option<HealthStatus> {
        let before = self.status;
        if code == 0 {
            self.failures = 0;
            self.status = HealthStatus::Healthy;
        } else if !in_start_period {
            self.failures += 1;
            if self.failures >= self.retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        (self.status != before).then_some(self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::*;

    #[test]
    fn failures_in_a_row_after_the_start_period_make_it_unhealthy() {
        let mut h = HealthState::new(2);
        assert_eq!(h.status, Starting);
        // The start period: failures do not count.
        assert_eq!(h.observe(1, true), None);
        assert_eq!(h.observe(1, true), None);
        assert_eq!(h.failures, 0);
        assert_eq!(h.observe(0, false), Some(Healthy));
        assert_eq!(h.observe(1, false), None);
        assert_eq!(h.failures, 1);
        assert_eq!(h.observe(1, false), Some(Unhealthy));
        assert_eq!(h.observe(1, false), None);
        assert_eq!(h.failures, 3);
        // One success is enough to be healthy again; the streak starts over.
        assert_eq!(h.observe(0, false), Some(Healthy));
        assert_eq!(h.failures, 0);
        assert_eq!(h.observe(1, false), None);
        assert_eq!(h.observe(0, false), None);
        // Failures right from the start, past the start period: unhealthy from starting.
        let mut h = HealthState::new(1);
        assert_eq!(h.observe(7, false), Some(Unhealthy));
        assert_eq!(Unhealthy.as_str(), "unhealthy");
        assert_eq!(HealthState::new(0).retries, 1);
    }
}
