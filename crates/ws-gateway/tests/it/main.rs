//! ws-gateway end to end: real Redis, real databases, real sockets, the real binary.

mod handshake;
mod helpers;
mod limits;
mod messaging;
mod presence;
mod private;
mod read_state;
mod redis_bus;
