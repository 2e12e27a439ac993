//! The bearer-token policy: the one authorize loop every service call with a bearer token goes
//! through, as azure_core's: get a token → send → on 401 forget the token (and let the credential
//! learn from the challenge) → retry once. The host rule ([`may_send_to`]) is checked here,
//! whatever the configuration says, and by the one call that posts a token in a form body (the
//! registry's exchange).

use crate::config::settings::Common;
use crate::errors::Problem;
use crate::identity::context::Context;
use crate::identity::credential::Credential;
use crate::identity::token::Token;
use crate::net::cloud::{self, Service};
use crate::net::origin::Origin;
use crate::net::upstream::Transport;
use http::StatusCode;

/// What one authorised attempt produced.
pub(crate) enum Attempt<R> {
    Done(R),
    /// The service refused the token (401). `problem` is the answer if it refuses again;
    /// `challenge` its `WWW-Authenticate` header.
    Refused {
        problem: Problem,
        challenge: Option<String>,
    },
}

pub(crate) fn authorize<T: Transport, C: Credential, R>(
    ctx: &Context<T>,
    credential: &C,
    destination: &Origin,
    service: Service,
    mut send: impl FnMut(&Token) -> Result<Attempt<R>, Problem>,
) -> Result<R, Problem> {
    may_send_to(ctx.common, destination, service)?;
    let mut last = None;
    for _ in 0..2 {
        let token = credential.token(ctx)?;
        match send(&token)? {
            Attempt::Done(r) => return Ok(r),
            Attempt::Refused { problem, challenge } => {
                credential.forget(ctx);
                credential.refused(challenge.as_deref())?;
                last = Some(problem);
            }
        }
    }
    Err(last
        .unwrap_or_else(|| Problem::upstream("token-refused", "the service refused a fresh token")))
}

/// Whether a `service` token may go to `destination`: https, and a host of the cloud's service
/// or a trusted one. Settings already refuse such endpoints; this is the last line.
pub(crate) fn may_send_to(
    common: &Common,
    destination: &Origin,
    service: Service,
) -> Result<(), Problem> {
    if destination.https
        && cloud::may_receive(common.cloud, &common.trusted, service, &destination.host)
    {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "token-destination-refused",
        "Configuration error",
        format!(
            "refusing to send a token to {destination}: it is not an https host of the {} cloud's service (*{}) \
             nor listed in trusted_token_hosts",
            common.cloud.name(),
            common.cloud.service_suffix(service)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::Identity;
    use crate::net::cloud::{Cloud, TrustedHosts};

    fn common(trusted: &str) -> Common {
        Common {
            cloud: Cloud::Public,
            identity: Identity {
                client_id: None,
                imds: crate::net::origin::parse("http://169.254.169.254").unwrap(),
            },
            trusted: TrustedHosts::parse(trusted).unwrap(),
            deadline_secs: 30,
            retry_base_ms: 800,
            max_blob_bytes: None,
            transfer: crate::config::settings::TransferBounds::DEFAULT,
            store_label: "default".into(),
        }
    }

    #[test]
    fn tokens_go_only_to_https_hosts_of_their_service() {
        let c = common("");
        let at =
            |url: &str, service| may_send_to(&c, &crate::net::origin::parse(url).unwrap(), service);
        assert!(at("https://hub.azurecr.io", Service::Registry).is_ok());
        assert!(at("https://v.vault.azure.net", Service::KeyVault).is_ok());
        for (url, service) in [
            ("https://hub.azurecr.io.evil.example", Service::Registry),
            ("http://hub.azurecr.io", Service::Registry),
            ("https://v.vault.azure.net", Service::Blob),
            ("https://azurecr.io", Service::Registry),
        ] {
            let e = at(url, service).unwrap_err();
            assert_eq!(&*e.code, "token-destination-refused", "{url}");
            assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        }
        let c = common("127.0.0.1");
        assert!(may_send_to(
            &c,
            &crate::net::origin::parse("https://127.0.0.1:10000").unwrap(),
            Service::Blob
        )
        .is_ok());
    }
}
