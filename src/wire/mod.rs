//! Bottom layer: byte and text formats (typed JSON reading, form encoding, streamed base64,
//! HTTP dates).
//! Depends on nothing else in the crate.

pub(crate) mod base64_stream;
pub(crate) mod timefmt;
pub(crate) mod typed_json;
pub(crate) mod urlenc;
