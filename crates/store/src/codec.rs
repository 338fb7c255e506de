//! Conversions between the row types and what the databases store: state words, JSON
//! text for maps and lists, and sqlx errors as [`StoreError`]s. Shared by both databases
//! so they store exactly the same values.

use std::collections::BTreeMap;

use crate::model::{JobState, Role, RunState};
use crate::store::StoreError;

/// Parses a stored run state word.
pub(crate) fn run_state(word: &str) -> Result<RunState, StoreError> {
    Ok(match word {
        "queued" => RunState::Queued,
        "running" => RunState::Running,
        "succeeded" => RunState::Succeeded,
        "failed" => RunState::Failed,
        "cancelled" => RunState::Cancelled,
        "errored" => RunState::Errored,
        other => return Err(corrupt(format!("unknown run state `{other}`"))),
    })
}

/// Parses a stored job state word.
pub(crate) fn job_state(word: &str) -> Result<JobState, StoreError> {
    Ok(match word {
        "pending" => JobState::Pending,
        "queued" => JobState::Queued,
        "waiting" => JobState::Waiting,
        "running" => JobState::Running,
        "succeeded" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "allowed_failure" => JobState::AllowedFailure,
        "errored" => JobState::Errored,
        "skipped" => JobState::Skipped,
        "cancelled" => JobState::Cancelled,
        other => return Err(corrupt(format!("unknown job state `{other}`"))),
    })
}

/// Parses a stored user role word.
pub(crate) fn role(word: &str) -> Result<Role, StoreError> {
    Role::from_word(word).ok_or_else(|| corrupt(format!("unknown user role `{word}`")))
}

/// A string map (params, `runs_on` labels) as JSON object text.
pub(crate) fn map_json(map: &BTreeMap<String, String>) -> String {
    // A map of strings always serializes.
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned())
}

/// JSON object text back to a string map.
pub(crate) fn json_map(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("bad JSON map `{text}`: {e}")))
}

/// A list of plan indices as JSON array text.
pub(crate) fn list_json(list: &[i64]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// JSON array text back to a list of plan indices.
pub(crate) fn json_list(text: &str) -> Result<Vec<i64>, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("bad JSON list `{text}`: {e}")))
}

/// A stored value this code did not write (a hand-edited database, a newer schema).
pub(crate) fn corrupt(what: String) -> StoreError {
    StoreError::Database(format!("unexpected stored value: {what}"))
}

/// A stored integer that must fit a narrower type.
pub(crate) fn narrow<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| corrupt(format!("{what} {value} out of range")))
}

/// Any other database failure.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Maps a unique violation to `Conflict(what)` and a foreign-key violation to
/// `NotFound(parent)`; anything else is a database error.
pub(crate) fn constraint(e: sqlx::Error, what: &str, parent: &str) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return StoreError::Conflict(what.to_owned());
        }
        if d.is_foreign_key_violation() {
            return StoreError::NotFound(parent.to_owned());
        }
    }
    db(e)
}

/// Page size of `list_runs`: 0 means the default, anything above the cap is capped.
pub(crate) fn page_size(limit: u32) -> i64 {
    const DEFAULT: u32 = 50;
    const CAP: u32 = 500;
    i64::from(if limit == 0 { DEFAULT } else { limit.min(CAP) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_words_round_trip() {
        for s in [
            RunState::Queued,
            RunState::Running,
            RunState::Succeeded,
            RunState::Failed,
            RunState::Cancelled,
            RunState::Errored,
        ] {
            assert_eq!(run_state(s.as_str()).ok(), Some(s));
            assert_eq!(
                crate::common::final_run_states!().contains(&format!("'{}'", s.as_str())),
                s.is_final(),
                "{s:?}"
            );
        }
        for s in [
            JobState::Pending,
            JobState::Queued,
            JobState::Waiting,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::AllowedFailure,
            JobState::Errored,
            JobState::Skipped,
            JobState::Cancelled,
        ] {
            assert_eq!(job_state(s.as_str()).ok(), Some(s));
        }
        assert!(run_state("paused").is_err());
        assert!(job_state("").is_err());
    }

    #[test]
    fn page_sizes() {
        for (asked, got) in [(0, 50), (1, 1), (500, 500), (501, 500), (u32::MAX, 500)] {
            assert_eq!(page_size(asked), got, "{asked}");
        }
    }
}
