//! A licence assignment's state and error, as Graph reports them in `licenseAssignmentStates`. Typed so that rules
//! match on variants instead of comparing strings; serialised exactly as Graph spells them, and any value Graph adds
//! later is kept verbatim rather than refused.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `licenseAssignmentStates[].state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum AssignmentState {
    /// Assigned and working.
    Active,
    /// Assigned, with an error on some of its plans.
    ActiveWithError,
    /// Disabled.
    Disabled,
    /// Not assigned because of the error.
    Error,
    /// A state this version does not know.
    Other(String),
}

impl AssignmentState {
    /// True for the two states that carry an error (`Error`, `ActiveWithError`).
    pub(crate) fn is_error(&self) -> bool {
        matches!(self, Self::Error | Self::ActiveWithError)
    }

    /// Graph's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "Active",
            Self::ActiveWithError => "ActiveWithError",
            Self::Disabled => "Disabled",
            Self::Error => "Error",
            Self::Other(s) => s,
        }
    }
}

impl From<String> for AssignmentState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "Active" => Self::Active,
            "ActiveWithError" => Self::ActiveWithError,
            "Disabled" => Self::Disabled,
            "Error" => Self::Error,
            _ => Self::Other(s),
        }
    }
}

impl From<&str> for AssignmentState {
    fn from(s: &str) -> Self {
        Self::from(s.to_string())
    }
}

impl From<AssignmentState> for String {
    fn from(s: AssignmentState) -> Self {
        match s {
            AssignmentState::Other(s) => s,
            known => known.as_str().to_string(),
        }
    }
}

impl fmt::Display for AssignmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `licenseAssignmentStates[].error`: why an assignment failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum AssignmentError {
    /// Not enough seats.
    CountViolation,
    /// Conflicts with another licence the user holds.
    MutuallyExclusiveViolation,
    /// A plan needs another plan that is not assigned.
    DependencyViolation,
    /// The user's usage location does not allow a plan.
    ProhibitedInUsageLocationViolation,
    /// A proxy address is already in use.
    UniquenessViolation,
    /// Graph's `Other`: this assignment failed because another one from the same group did (all-or-none).
    Other,
    /// No error code was given.
    Unknown,
    /// A code this version does not know.
    Code(String),
}

impl AssignmentError {
    /// Graph's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::CountViolation => "CountViolation",
            Self::MutuallyExclusiveViolation => "MutuallyExclusiveViolation",
            Self::DependencyViolation => "DependencyViolation",
            Self::ProhibitedInUsageLocationViolation => "ProhibitedInUsageLocationViolation",
            Self::UniquenessViolation => "UniquenessViolation",
            Self::Other => "Other",
            Self::Unknown => "Unknown",
            Self::Code(s) => s,
        }
    }

    /// True for a root cause, false for `Other` (failed only because a sibling assignment failed).
    pub(crate) fn is_root_cause(&self) -> bool {
        *self != Self::Other
    }
}

impl From<String> for AssignmentError {
    fn from(s: String) -> Self {
        match s.as_str() {
            "CountViolation" => Self::CountViolation,
            "MutuallyExclusiveViolation" => Self::MutuallyExclusiveViolation,
            "DependencyViolation" => Self::DependencyViolation,
            "ProhibitedInUsageLocationViolation" => Self::ProhibitedInUsageLocationViolation,
            "UniquenessViolation" => Self::UniquenessViolation,
            "Other" => Self::Other,
            "Unknown" => Self::Unknown,
            _ => Self::Code(s),
        }
    }
}

impl From<&str> for AssignmentError {
    fn from(s: &str) -> Self {
        Self::from(s.to_string())
    }
}

impl From<AssignmentError> for String {
    fn from(e: AssignmentError) -> Self {
        match e {
            AssignmentError::Code(s) => s,
            known => known.as_str().to_string(),
        }
    }
}

impl fmt::Display for AssignmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_values_round_trip_verbatim() {
        for s in ["Active", "ActiveWithError", "Disabled", "Error", "Pending"] {
            let v: AssignmentState = serde_json::from_value(serde_json::json!(s)).expect("state");
            assert_eq!(
                serde_json::to_value(&v).expect("json"),
                serde_json::json!(s)
            );
        }
        for s in ["CountViolation", "Other", "Unknown", "SomethingNew"] {
            let v: AssignmentError = serde_json::from_value(serde_json::json!(s)).expect("error");
            assert_eq!(
                serde_json::to_value(&v).expect("json"),
                serde_json::json!(s)
            );
        }
        assert_eq!(
            AssignmentError::from("SomethingNew"),
            AssignmentError::Code("SomethingNew".into())
        );
        assert!(AssignmentState::from("ActiveWithError").is_error());
        assert!(!AssignmentError::Other.is_root_cause());
    }
}
