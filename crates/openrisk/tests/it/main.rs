//! The integration tests, in one binary: each module drives real servers over HTTP against real
//! SQLite, PostgreSQL and Redis. `common` starts them.

#[macro_use]
mod common;

mod access;
mod accounts;
mod api;
mod architecture;
mod backup;
mod bad_input;
mod cache;
mod cli;
mod compression;
mod concurrency;
mod connections;
mod crash;
mod dashboard;
mod database_faults;
mod disk_full;
mod marketplace;
mod noisy_neighbour;
mod operations;
mod pagination;
mod pool;
mod rate_limits;
mod replicas;
mod reports;
mod secrets;
mod shutdown;
