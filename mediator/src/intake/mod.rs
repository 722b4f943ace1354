//! Agent intake: who may send reports (`auth`); the HTTP handler lives in `server::intake`.

pub mod auth;
