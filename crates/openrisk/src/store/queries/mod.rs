//! The queries of both backends, by resource, written once. Each backend (`sqlite.rs`,
//! `postgres.rs`) compiles this module over its own types and supplies what differs between the
//! dialects, which the files here take from `super`: the database and connection types (`Db`,
//! `Conn`), the store (`Backend`) and its pools, `RISK_SELECT`, the list's filters and sort
//! columns, row locks, how transactions begin, and how to hold writes off.
//!
//! Their SQL is the same text: `$N` parameters, `ON CONFLICT`, `FILTER`, `RETURNING` and
//! `NULLS LAST` mean the same on SQLite and PostgreSQL.

use super::{
    ANALYZE, BEGIN_SNAPSHOT, BEGIN_WRITE, Backend, CLEAR_TABLE, Conn, Db, LOCK_REGISTER, NAME, RISK_SELECT,
    lock_row, push_filters, sort_column,
};

mod assets;
mod common;
mod installations;
mod mitigations;
mod orgs;
mod reports;
mod risks;
mod seed;
