//! Wall-clock instants on the wire: milliseconds since the Unix epoch, UTC.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An instant as milliseconds since 1970-01-01T00:00:00Z.
///
/// Kept as an integer so that the wire form is exact and the model needs no date library;
/// presentation (RFC 3339, "3m ago") belongs to the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The system clock now. The pure code takes times as arguments; this is for the edges that
    /// hand them in.
    pub fn now() -> UnixMillis {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        UnixMillis(since_epoch.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
    }

    /// Milliseconds elapsed from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: UnixMillis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_never_goes_negative() {
        assert_eq!(UnixMillis(5_000).saturating_since(UnixMillis(2_000)), 3_000);
        assert_eq!(UnixMillis(2_000).saturating_since(UnixMillis(5_000)), 0);
    }

    #[test]
    fn instants_are_plain_integers_on_the_wire() {
        let json = serde_json::to_string(&UnixMillis(1_700_000_000_123)).unwrap();
        assert_eq!(json, "1700000000123");
    }
}
