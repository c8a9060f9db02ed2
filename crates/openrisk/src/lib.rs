//! OpenRisk: a multi-tenant risk-register API.

pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod limits;
pub mod redis;
pub mod seed;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
