//! Cluster symptoms: detectors over the cluster index, their tunables, and the symptom book that merges them
//! with the agents' symptoms into one open-and-recent list.

mod book;
mod detect;
mod rules;

#[cfg(test)]
mod tests;

pub use book::{DEFAULT_RECENT, SymptomBook};
pub use detect::{Finding, detect};
pub use rules::{ClusterRules, RulesError, rule};
