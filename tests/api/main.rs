//! querygate's integration tests: one binary (it links the crate once), one module
//! per area. Every test talks to a real server (in-process or a child process)
//! over HTTP and to the real PostgreSQL, MariaDB and SQLite of this machine; the
//! only stand-in is the scripted model server in `common::fake_model`.

#![expect(
    unreachable_pub,
    reason = "helpers shared between the modules of one test binary"
)]

mod common;

mod ai;
mod attacks;
mod cli;
mod connect;
mod console;
mod deploy;
mod execute;
mod lifecycle;
mod limits;
mod malformed_input;
mod openapi;
mod pool;
mod read_only;
mod recovery;
mod round_trips;
mod schema;
mod secrets;
mod session;
mod shared;
mod statelessness;
mod streaming;
mod types;
