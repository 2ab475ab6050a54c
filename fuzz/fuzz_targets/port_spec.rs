//! The port-spec parser (`tap:name=..,queues=..`, `packet:`, `tun:`,
//! `shared:`): any string gives a spec or a typed error, whose message renders.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    match rtap::parse_port_spec(&s) {
        Ok(spec) => {
            let _ = (spec.kind(), spec.options(), format!("{spec:?}"));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "errors say something");
        }
    }
});
