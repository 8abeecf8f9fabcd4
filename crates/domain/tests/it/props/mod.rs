//! Property tests (proptest): the encryption envelope, keyset pagination of history on
//! real databases, and `permissions::decide` against a reference model. Case counts are
//! kept small so the whole set runs in seconds.

mod crypto;
mod pagination;
mod permissions;
