//! Wire formats. Pure code: byte layouts and their encoders/decoders, no fds.

pub mod offload;
pub mod vnet;
