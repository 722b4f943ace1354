//! Detector tests.
