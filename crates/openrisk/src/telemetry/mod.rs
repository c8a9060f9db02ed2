//! Logs, metrics and the background monitor that feeds them.

mod logging;
pub mod metrics;
pub mod monitor;

pub use logging::{LogFormat, init};
