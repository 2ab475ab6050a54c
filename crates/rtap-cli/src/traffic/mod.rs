//! Traffic the demo and the benchmarks send through rtap: a content-verified
//! TCP bulk transfer and ICMP echo.

pub mod bulk;
pub mod ping;
