//! querygate's integration tests: one binary (it links the crate once), one module
//! per area. Every test talks to a real server (in-process or a child process)
//! over HTTP and to the real PostgreSQL, MariaDB and SQLite of this machine; the
//! stand-ins are the scripted model server in `common::fake_model` and, for what a
//! hostile database can send, the scripted servers of `common::fake_pg` and
//! `common::fake_mysql`.

#![expect(
    unreachable_pub,
    reason = "helpers shared between the modules of one test binary"
)]

mod common;

mod ai;
mod attacks;
mod batch;
mod cancel;
mod cli;
mod connect;
mod console;
mod deploy;
mod execute;
mod hostile;
mod lexing;
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
