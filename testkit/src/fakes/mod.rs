//! Strict fakes of the Azure services the component calls, each answering as the real service
//! does (status, headers, error bodies) and recording what it was sent.

pub mod acr;
pub mod entra;
pub mod http;
pub mod imds;
pub mod keyvault;
pub mod login_server;
pub mod oci;
pub mod storage_gate;
