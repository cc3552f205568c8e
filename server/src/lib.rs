//! The service side of the `capstan` binary: configuration, the HTTP router and webhook intake,
//! and the `serve` wiring. The binary's subcommands live in `src/commands/`.

pub mod app;
pub mod config;
pub mod dashboard;
pub mod intake;
pub mod serve;
pub mod signature;
