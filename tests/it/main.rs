//! Keyrack's integration tests: one binary, real servers on real sockets, real databases.
//!
//! Every test that is about the service, not the storage engine, runs once on SQLite and, when
//! `KEYRACK_TEST_DATABASE_URL` names a PostgreSQL server, once more on PostgreSQL, each time
//! on a database of its own.

mod auth;
mod cli;
mod helpers;
mod keys;
mod server;
mod storage;
mod usage;
