//! Keyrack's integration tests: one binary, real servers on real sockets, real databases.
//!
//! Every test that is about the service, not the storage engine, runs once on SQLite and, when
//! `KEYRACK_TEST_DATABASE_URL` names a PostgreSQL server, once more on PostgreSQL, each time
//! on a database of its own.

// Test code: a failed unwrap is a failed test, with the reason in the panic message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alerts;
mod audit;
mod auth;
mod bad_input;
mod bench;
mod brute_force;
mod cache;
mod cancels;
mod cli;
mod client_layer;
mod console;
mod console_browser;
mod console_oauth;
mod context;
mod credits;
mod escalation;
mod examples;
mod ext_authz;
mod faults;
mod flood;
mod gateway;
mod gateway_in_process;
mod helpers;
mod key_controls;
mod keys;
mod leaked_keys;
mod metering;
mod migrations;
mod oauth;
mod oauth_gateway;
mod organizations;
mod outage;
mod owners;
mod permissions;
mod policy;
mod process;
mod proxy;
mod ratelimit;
mod redis_limiter;
mod reliability;
mod replicas;
mod rotation;
mod scale_tool;
mod schema;
mod scripts;
mod server;
mod shedding;
mod sso;
mod standard_webhooks;
mod storage;
mod telemetry;
mod tls;
mod trusted_proxies;
mod usage;
mod webhooks;
