//! Answers of an Incus or LXD server (the first byte picks the HTTP status)
//! never panic vm-prove's parsers: envelopes, `GET /1.0`, operation states,
//! exec sockets and exit statuses, instance listings and the memory limits
//! the budget adds up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vm_prove::config::parse_size;
use vm_prove::incus::{
    parse_envelope, parse_exec_return, parse_exec_sockets, parse_instances,
    parse_operation_state, parse_server_info,
};

fuzz_target!(|data: &[u8]| {
    let Some((&status, body)) = data.split_first() else {
        return;
    };
    let Ok(envelope) = parse_envelope(200 + u16::from(status), body, "fuzz") else {
        return;
    };
    let meta = envelope.metadata;
    let _ = parse_server_info(&meta);
    let _ = parse_operation_state(&meta);
    let _ = parse_exec_return(&meta, "fuzz");
    let _ = parse_exec_sockets(&meta, "fuzz");
    if let Ok(instances) = parse_instances(meta, "fromgit-ci") {
        for instance in instances {
            if let Some(limit) = instance.expanded_config.get("limits.memory") {
                let _ = parse_size(limit);
            }
        }
    }
});
