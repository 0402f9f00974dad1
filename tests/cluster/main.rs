//! Cluster tests: several bridge processes on one real Redis (Debian's
//! `redis-server`), with the fake runtime on one instance and clients on
//! others, and the same through nginx from the repository's config; the
//! README's several-instances recipe run as written, an instance's
//! start-up rules in cluster mode, and Redis that fails over (Sentinel).
//! Without redis-server (or nginx) they print `SKIPPED` (and fail when `CI`
//! is set).

mod harness;

mod balancer;
mod clients;
mod commands;
mod devices;
mod engine;
mod events;
mod feeds;
mod instances;
mod limits;
mod log;
mod privileges;
mod recipe;
mod rolling;
mod sentinel;
mod shared;
mod startup;
mod traces;
mod turns;
mod users;
mod webhooks;
