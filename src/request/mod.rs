//! One request from route to answer: routes and query, the caller check, health, the decision
//! function and the log line. Uses `services` and below; knows nothing of Spin.

pub(crate) mod answer;
pub(crate) mod app;
pub(crate) mod health;
pub(crate) mod log;
pub(crate) mod query;
pub(crate) mod routes;
