//! Configuration read once into typed settings: the variables, tenant profiles, caller rules,
//! function keys and the Azure naming rules they are checked against. Uses `net`, `wire`,
//! `errors`.

pub(crate) mod document;
pub(crate) mod function_keys;
pub(crate) mod names;
pub(crate) mod rules;
pub(crate) mod settings;
