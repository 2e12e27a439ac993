//! Bottom layer: byte and text formats (JSON, form encoding, streamed base64, HTTP dates).
//! Depends on nothing else in the crate.

pub(crate) mod base64_stream;
pub(crate) mod json;
pub(crate) mod timefmt;
pub(crate) mod urlenc;
