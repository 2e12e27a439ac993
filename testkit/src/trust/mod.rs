//! What the test world's trust rests on: its CA, JWT signing and verifying, random ids.

pub mod ids;
pub mod jwt;
pub mod pki;
