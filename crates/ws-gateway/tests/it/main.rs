//! ws-gateway end to end: real Redis, real databases, real sockets, the real binary.

mod handshake;
mod helpers;
mod limits;
mod messaging;
mod private;
mod redis_bus;
