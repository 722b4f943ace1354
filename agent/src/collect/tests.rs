//! Collector tests.
