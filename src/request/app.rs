//! One request, start to finish, independent of Spin: route, settings, caller, action, the
//! service call, and the answer — so every decision runs on the host target. The edge
//! (`handler`) gives it the platform's variables, transport, store and clock, and writes what it
//! returns.

use crate::config::settings::{self, Common, Exchange, Profile, Variables};
use crate::errors::{truncate, Problem};
use crate::identity::cache::Cache;
use crate::identity::context::Context;
use crate::identity::credential::{Credential, Federated, ManagedIdentity};
use crate::identity::entra;
use crate::identity::store::Store;
use crate::net::clock::{Budget, Clock};
use crate::net::upstream::Transport;
use crate::request::answer::{sensitive_headers, Answer};
use crate::request::health;
use crate::request::log::RequestLine;
use crate::request::query::Query;
use crate::request::routes::{self, Action, Endpoint, Tenant};
use crate::services::acr::{self, RefreshCredential};
use crate::services::blob;
use crate::services::keyvault::{self, VaultCredential};
use crate::services::relay::Plan;
use http::{Method, StatusCode};
use std::cell::RefCell;
use std::time::Duration;

/// What the edge knows about the incoming request.
pub(crate) struct Incoming<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    /// Every `x-functions-key` header value.
    pub key_headers: Vec<String>,
}

/// What the platform provides for one request.
pub(crate) struct Platform<'a, T: Transport> {
    pub vars: &'a dyn Variables,
    pub http: &'a T,
    /// Opens the key-value store with this label; `None` when it cannot (the cache is then off).
    pub open_store: &'a dyn Fn(&str) -> Option<Box<dyn Store + 'a>>,
    pub clock: &'a dyn Clock,
    pub request_id: &'a str,
}

/// What to send back.
pub(crate) enum Reply<B> {
    Complete(Answer),
    /// A blob to stream as base64 under `plan`.
    Blob {
        plan: Plan,
        body: B,
    },
}

/// A lease lasts no longer than the deadline of the request that holds it, and at most this.
const MAX_LEASE_SECS: u64 = 10;

/// Serves one request; fills the log line's route, caller, tenant, resource and problem code.
pub(crate) fn handle<T: Transport>(
    req: &Incoming,
    platform: &Platform<T>,
    line: &mut RequestLine,
) -> Reply<T::Body> {
    match serve(req, platform, line) {
        Ok(reply) => reply,
        Err(problem) => {
            line.code = Some(problem.code.to_string());
            line.detail = problem.log_detail.clone();
            Reply::Complete(problem.answer())
        }
    }
}

fn serve<T: Transport>(
    req: &Incoming,
    platform: &Platform<T>,
    line: &mut RequestLine,
) -> Result<Reply<T::Body>, Problem> {
    let endpoint = routes::route(req.method, req.path, req.query)?;
    line.route = endpoint.name().to_string();
    if endpoint == Endpoint::Live {
        return Ok(Reply::Complete(Answer::new(
            StatusCode::OK,
            "application/json",
            br#"{"status":"alive"}"#.to_vec(),
        )));
    }
    let query = Query::parse(req.query)?;
    let settings = settings::load(
        platform.vars,
        endpoint.need(query.all("tenant").first().copied()),
    );
    if endpoint == Endpoint::Health {
        let report = health::report(&settings);
        line.code = report.code.clone();
        line.detail = report.log_detail.clone();
        // The whole report only for a caller with a key (or with authentication off): the
        // anonymous probe learns ready or not and a code, not which profiles exist or why.
        let caller = routes::authenticate(&settings, &req.key_headers, &query).ok();
        line.caller = caller.as_ref().map(|c| c.name().to_string());
        let body = match caller {
            Some(_) => report.full,
            None => report.anonymous(),
        };
        let (status, content_type) = if report.ready {
            (StatusCode::OK, "application/json")
        } else {
            // An RFC 9457 problem (the first problem's code), so probes and callers read it
            // like any other failure; the full report adds the whole report as extensions.
            (StatusCode::SERVICE_UNAVAILABLE, "application/problem+json")
        };
        return Ok(Reply::Complete(Answer::new(status, content_type, body)));
    }
    let caller = routes::authenticate(&settings, &req.key_headers, &query)?;
    line.caller = Some(caller.name().to_string());
    // The settings every route needs come first: without them no section was loaded, and the
    // caller must hear which variable is wrong, not that a section is missing.
    let common = settings.common.as_ref().map_err(Clone::clone)?;
    let action = routes::permit(endpoint, &settings, &caller, &query)?;

    let store = (platform.open_store)(&common.store_label);
    let lease_secs = common.deadline_secs.min(MAX_LEASE_SECS);
    let ctx = Context {
        http: platform.http,
        cache: Cache {
            store: store.as_deref(),
            clock: platform.clock,
            owner: platform.request_id,
            lease_secs,
            max_wait: Duration::from_secs(lease_secs + 1),
        },
        clock: platform.clock,
        common,
        request_id: platform.request_id,
        budget: Budget::new(common.deadline_secs, common.retry_base_ms),
    };
    let cloud = common.cloud;
    let federated = |p, x, resource| federated(common, p, x, resource);
    match action {
        Action::Secret {
            tenant,
            name,
            version,
        } => {
            line.tenant = Some(tenant_name(&tenant));
            let (vault, variable) = match tenant {
                Tenant::Same(s) => (s.vault.as_ref(), "keyvault_endpoint".to_string()),
                Tenant::Profile(p, _) => (p.vault.as_ref(), p.slot.var("keyvault_endpoint")),
            };
            let vault = vault.ok_or_else(|| {
                missing(
                    &variable,
                    "the Key Vault URL, e.g. https://myvault.vault.azure.net",
                )
            })?;
            line.resource = Some(match &version {
                Some(v) => format!("{vault}/secrets/{name}/{v}"),
                None => format!("{vault}/secrets/{name}"),
            });
            let target = keyvault::SecretAddress {
                cloud,
                vault,
                name: &name,
                version: version.as_deref(),
            };
            let value = match tenant {
                Tenant::Same(_) => secret(
                    &ctx,
                    ManagedIdentity {
                        identity: &common.identity,
                        cloud,
                        resource: cloud.vault_resource(),
                    },
                    None,
                    &variable,
                    &target,
                )?,
                Tenant::Profile(p, x) => secret(
                    &ctx,
                    federated(p, x, cloud.vault_resource()),
                    Some(&p.tenant_id),
                    &variable,
                    &target,
                )?,
            };
            Ok(Reply::Complete(Answer::new(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                value.into_bytes(),
            )))
        }
        Action::Blob {
            tenant,
            container,
            blob,
        } => {
            line.tenant = Some(tenant_name(&tenant));
            let (service, variable) = match tenant {
                Tenant::Same(s) => (s.blob.as_ref(), "blob_service_endpoint".to_string()),
                Tenant::Profile(p, _) => (p.blob.as_ref(), p.slot.var("blob_service_endpoint")),
            };
            let service = service.ok_or_else(|| {
                missing(
                    &variable,
                    "the Blob service URL, e.g. https://myaccount.blob.core.windows.net",
                )
            })?;
            line.resource = Some(format!(
                "{}{}/{container}/{}",
                service.origin,
                service.base_path,
                truncate(&blob, 200)
            ));
            let target = blob::BlobAddress {
                cloud,
                service,
                container: &container,
                blob: &blob,
            };
            let (head, body) = match tenant {
                Tenant::Same(_) => blob::open(
                    &ctx,
                    &ManagedIdentity {
                        identity: &common.identity,
                        cloud,
                        resource: cloud.storage_resource(),
                    },
                    &target,
                )?,
                Tenant::Profile(p, x) => {
                    blob::open(&ctx, &federated(p, x, cloud.storage_resource()), &target)?
                }
            };
            let plan = Plan::new(&head, common.max_blob_bytes, common.transfer)?;
            Ok(Reply::Blob { plan, body })
        }
        Action::Registry {
            profile,
            exchange,
            registry,
            repositories,
        } => {
            line.tenant = Some(profile.name.clone());
            let pull = acr::Pull::new(repositories);
            line.resource = Some(format!("{} {}", registry.authority(), pull.scope));
            let credential = RefreshCredential {
                entra: federated(profile, exchange, cloud.registry_resource()),
                registry: &registry,
            };
            let token = acr::pull_token(&ctx, &credential, &pull)?;
            Ok(Reply::Complete(Answer::new(
                StatusCode::OK,
                "application/json",
                token.to_json(),
            )))
        }
    }
}

/// The profile's token for `resource`, by the federated exchange.
fn federated<'a>(
    common: &'a Common,
    profile: &'a Profile,
    exchange: &'a Exchange,
    resource: &'static str,
) -> Federated<'a> {
    Federated {
        identity: &common.identity,
        exchange,
        cloud: common.cloud,
        target: entra::TargetTenant {
            tenant_id: &profile.tenant_id,
            profile: &profile.name,
            slot: profile.slot,
        },
        resource,
    }
}

fn secret<T: Transport, C: Credential>(
    ctx: &Context<T>,
    inner: C,
    expected_tenant: Option<&str>,
    variable: &str,
    target: &keyvault::SecretAddress,
) -> Result<String, Problem> {
    let credential = VaultCredential {
        inner,
        cloud: ctx.common.cloud,
        vault: target.vault,
        expected_tenant,
        vault_variable: variable,
        target,
        pending: RefCell::new(None),
    };
    keyvault::get_secret(ctx, &credential)
}

fn missing(variable: &str, what: &str) -> Problem {
    Problem::config_missing(variable, what)
}

fn tenant_name(tenant: &Tenant) -> String {
    match tenant {
        Tenant::Same(_) => "same-tenant".into(),
        Tenant::Profile(p, _) => p.name.clone(),
    }
}

/// Headers of a blob's 200: the base64's exact length when Storage gave the blob's.
pub(crate) fn blob_headers(plan: &Plan) -> Vec<(&'static str, String)> {
    let mut headers = sensitive_headers("text/plain");
    if let Some(n) = plan.content_length() {
        headers.push(("content-length", n.to_string()));
    }
    headers
}

#[cfg(test)]
mod tests;
