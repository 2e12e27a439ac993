//! Credentials as values: each knows its cache key, how to fetch a token, and who the services
//! will see (for role hints). The managed identity's own token (same tenant) comes from IMDS; a
//! federated one is the managed identity's assertion exchanged at a target tenant's Entra token
//! endpoint for the multi-tenant app.

use crate::config::settings::{Exchange, Identity};
use crate::errors::{truncate, Problem};
use crate::identity::cache;
use crate::identity::context::Context;
use crate::identity::entra;
use crate::identity::imds;
use crate::identity::jwt;
use crate::identity::token::Token;
use crate::net::cloud::Cloud;
use crate::net::retry;
use crate::net::upstream::{net_problem, NetError, Transport};
use http::StatusCode;

pub(crate) trait Credential {
    /// The token cache entry of this credential, built with [`cache::key`]; `None`: its tokens
    /// are never cached, because no key would tell its identity from another machine's.
    fn cache_key(&self) -> Option<String>;

    /// A new token from the issuer (no cache).
    fn fetch<T: Transport>(&self, ctx: &Context<T>) -> Result<Token, Problem>;

    /// Who a service sees when it checks roles; `token` adds the object id from its claims.
    fn principal(&self, token: Option<&str>) -> String;

    /// A usable token: cached, or fetched once across instances (or, without a cache key,
    /// fetched for this request).
    fn token<T: Transport>(&self, ctx: &Context<T>) -> Result<Token, Problem> {
        match self.cache_key() {
            Some(key) => ctx.cache.token(&key, &mut || self.fetch(ctx)),
            None => self.fetch(ctx),
        }
    }

    /// Drops the cached token after a service refused it.
    fn forget<T: Transport>(&self, ctx: &Context<T>) {
        if let Some(key) = self.cache_key() {
            ctx.cache.forget(&key);
        }
    }

    /// Learns from a refusal before the one retry (a Key Vault's new challenge).
    fn refused(&self, _challenge: Option<&str>) -> Result<(), Problem> {
        Ok(())
    }
}

fn object_id(token: Option<&str>) -> String {
    token
        .and_then(jwt::claims)
        .map(|c| c.oid)
        .filter(|o| !o.is_empty())
        .map(|o| format!(" (object id {o})"))
        .unwrap_or_default()
}

/// The managed identity's own token for `resource` (same tenant), or its assertion for the
/// exchange audience.
pub(crate) struct ManagedIdentity<'a> {
    pub identity: &'a Identity,
    pub cloud: Cloud,
    pub resource: &'a str,
}

impl Credential for ManagedIdentity<'_> {
    /// A user-assigned identity is the same wherever its client id is used. A system-assigned
    /// one is each machine's own, and nothing the component sees tells machines apart: replicas
    /// on several machines sharing one Redis (SpinKube's configuration; the store's label is
    /// `default` there and for the local SQLite file alike) would serve each other's tokens
    /// under one key. Keying by the token's `oid` needs the token before the lookup, so every
    /// request would call IMDS anyway and the single-flight lease, keyed before the fetch,
    /// could not hold. So its tokens are not cached: one IMDS call per request.
    fn cache_key(&self) -> Option<String> {
        let client_id = self.identity.client_id.as_deref()?;
        Some(cache::key(
            "mi",
            &[self.cloud.name(), client_id, self.resource],
        ))
    }

    fn fetch<T: Transport>(&self, ctx: &Context<T>) -> Result<Token, Problem> {
        let imds_origin = &self.identity.imds;
        let client_id = self.identity.client_id.as_deref();
        let req = imds::token_request(imds_origin, self.resource, client_id);
        let resp = retry::send(&ctx.calls(), &req)?.map_err(|e| match e {
            NetError::ConnectionRefused | NetError::Dns | NetError::Timeout => {
                imds::unreachable_problem(imds_origin)
            }
            other => net_problem(&req, &other),
        })?;
        if resp.status() != StatusCode::OK {
            return Err(imds::error_problem(&resp, self.resource, client_id));
        }
        imds::parse_token(&resp.body, ctx.now()).map_err(|e| {
            Problem::upstream(
                "identity-failed",
                format!(
                    "IMDS answered 200 without a usable access_token: {}",
                    truncate(&format!("{e:#}"), 200)
                ),
            )
        })
    }

    fn principal(&self, token: Option<&str>) -> String {
        let oid = object_id(token);
        match &self.identity.client_id {
            Some(id) => format!("the managed identity with client id {id}{oid}"),
            None => format!("the system-assigned managed identity{oid}"),
        }
    }
}

/// A target tenant's token for `resource`: the managed identity's assertion presented for the
/// multi-tenant app at that tenant's token endpoint.
pub(crate) struct Federated<'a> {
    pub identity: &'a Identity,
    pub exchange: &'a Exchange,
    pub cloud: Cloud,
    pub target: entra::TargetTenant<'a>,
    pub resource: &'a str,
}

impl Federated<'_> {
    /// The assertion: a managed identity token for the exchange audience, cached on its own.
    fn assertion(&self) -> ManagedIdentity<'_> {
        ManagedIdentity {
            identity: self.identity,
            cloud: self.cloud,
            resource: &self.exchange.audience,
        }
    }
}

impl Credential for Federated<'_> {
    fn cache_key(&self) -> Option<String> {
        Some(cache::key(
            "fed",
            &[
                self.cloud.name(),
                self.target.tenant_id,
                &self.exchange.client_id,
                &self.exchange.app_client_id,
                self.resource,
            ],
        ))
    }

    fn fetch<T: Transport>(&self, ctx: &Context<T>) -> Result<Token, Problem> {
        let assertion_credential = self.assertion();
        let assertion = assertion_credential.token(ctx)?;
        let req =
            entra::token_request(self.exchange, self.target, self.resource, &assertion.secret);
        let resp = retry::send(&ctx.calls(), &req)?.map_err(|e| net_problem(&req, &e))?;
        if resp.status() != StatusCode::OK {
            if entra::assertion_refused(&resp) {
                // A stale or rejected assertion must not be presented again from the cache.
                assertion_credential.forget(ctx);
            }
            let claims = jwt::claims(&assertion.secret).unwrap_or_default();
            let diag = entra::Diagnostics {
                exchange: self.exchange,
                target: self.target,
                resource: self.resource,
                assertion: &claims,
            };
            return Err(entra::error_problem(&resp, &diag));
        }
        entra::parse_token(&resp.body, ctx.now()).map_err(|e| {
            Problem::upstream(
                "entra-failed",
                format!(
                    "Entra ID answered 200 without a usable access_token: {}",
                    truncate(&format!("{e:#}"), 200)
                ),
            )
        })
    }

    fn principal(&self, token: Option<&str>) -> String {
        format!(
            "the service principal of app {} in tenant {} (profile '{}'){}",
            self.exchange.app_client_id,
            self.target.tenant_id,
            self.target.profile,
            object_id(token)
        )
    }
}

/// The credential of the tenant a request reads: the managed identity's own token, or a
/// federated one for a target tenant. One value per tenant, so each service is called once.
pub(crate) enum TenantCredential<'a> {
    Own(ManagedIdentity<'a>),
    Federated(Federated<'a>),
}

impl Credential for TenantCredential<'_> {
    fn cache_key(&self) -> Option<String> {
        match self {
            TenantCredential::Own(c) => c.cache_key(),
            TenantCredential::Federated(c) => c.cache_key(),
        }
    }

    fn fetch<T: Transport>(&self, ctx: &Context<T>) -> Result<Token, Problem> {
        match self {
            TenantCredential::Own(c) => c.fetch(ctx),
            TenantCredential::Federated(c) => c.fetch(ctx),
        }
    }

    fn principal(&self, token: Option<&str>) -> String {
        match self {
            TenantCredential::Own(c) => c.principal(token),
            TenantCredential::Federated(c) => c.principal(token),
        }
    }
}
