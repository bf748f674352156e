//! One rule for a protection or limit that cannot be applied as asked: agent mode goes on and
//! says so (a warning, reported before start), strict modes refuse (one error naming the flag).

use crate::config::{ConfigError, ServiceMode};

/// The plan's decisions about what could not be applied as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    /// Strict modes (strict-agent, production): fail closed.
    pub refuse: bool,
    /// What agent mode goes on without, one line each.
    pub warnings: Vec<String>,
}

impl Enforcement {
    pub fn new(mode: ServiceMode) -> Self {
        Self {
            refuse: mode.fail_closed(),
            warnings: Vec::new(),
        }
    }
    /// `flag` cannot be applied as asked: strict modes refuse with `flag: refusal`; agent mode
    /// records `warning` and goes on.
    pub fn degrade(
        &mut self,
        flag: &str,
        refusal: impl Into<String>,
        warning: impl Into<String>,
    ) -> Result<(), ConfigError> {
        if self.refuse {
            return Err(ConfigError::new(flag, refusal));
        }
        self.warnings.push(warning.into());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_records_and_strict_refuses() {
        let mut e = Enforcement::new(ServiceMode::Agent);
        assert!(e.degrade("--memory", "no", "memory NOT applied").is_ok());
        assert_eq!(e.warnings, ["memory NOT applied"]);
        for mode in [ServiceMode::StrictAgent, ServiceMode::Production] {
            let mut e = Enforcement::new(mode);
            let err = e
                .degrade("--memory", "no memory controller", "w")
                .unwrap_err();
            assert_eq!(err.to_string(), "--memory: no memory controller");
            assert!(e.warnings.is_empty());
        }
    }
}
