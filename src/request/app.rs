//! One request, start to finish, independent of Spin: route, settings, caller, action, the
//! service call, and the answer — so every decision runs on the host target. The edge
//! (`handler`) gives it the platform's variables, transport, store and clock, and writes what it
//! returns.

use crate::config::settings::{Common, Variables};
use crate::errors::{truncate, Problem};
use crate::identity::cache::Cache;
use crate::identity::context::Context;
use crate::identity::store::Store;
use crate::net::clock::{Budget, Clock};
use crate::net::upstream::Transport;
use crate::request::answer::{sensitive_headers, Answer};
use crate::request::log::RequestLine;
use crate::request::routes::Incoming;
use crate::request::routes::{self, Action, Decision};
use crate::services::acr::{self, RefreshCredential};
use crate::services::blob;
use crate::services::keyvault::{self, VaultCredential};
use crate::services::relay::Plan;
use http::StatusCode;
use std::cell::RefCell;
use std::time::Duration;

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
    match routes::decide(req, platform.vars, line)? {
        Decision::Live => Ok(Reply::Complete(Answer::new(
            StatusCode::OK,
            "application/json",
            br#"{"status":"alive"}"#.to_vec(),
        ))),
        Decision::Health {
            report,
            authenticated,
        } => {
            line.code = report.code.clone();
            line.detail = report.log_detail.clone();
            // The whole report only for a caller with a key (or with authentication off): the
            // anonymous probe learns ready or not and a code, not which profiles exist or why.
            let body = if authenticated {
                report.full
            } else {
                report.anonymous()
            };
            let (status, content_type) = if report.ready {
                (StatusCode::OK, "application/json")
            } else {
                // An RFC 9457 problem (the first problem's code), so probes and callers read
                // it like any other failure; the full report adds the whole report as
                // extensions.
                (StatusCode::SERVICE_UNAVAILABLE, "application/problem+json")
            };
            Ok(Reply::Complete(Answer::new(status, content_type, body)))
        }
        Decision::Act { common, action } => act(&common, action, platform, line),
    }
}

/// Carries out a permitted action: one service call with the tenant's credential.
fn act<T: Transport>(
    common: &Common,
    action: Action,
    platform: &Platform<T>,
    line: &mut RequestLine,
) -> Result<Reply<T::Body>, Problem> {
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
    match action {
        Action::Secret {
            tenant,
            name,
            version,
        } => {
            line.tenant = Some(tenant.name().to_string());
            let slot = tenant.slot();
            let vault = tenant.services().vault.as_ref().ok_or_else(|| {
                Problem::setting_missing(
                    &slot.var("keyvault_endpoint"),
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
            let credential = VaultCredential {
                inner: tenant.credential(common, cloud.vault_resource()),
                cloud,
                vault,
                expected_tenant: tenant.tenant_id(),
                slot,
                target: &target,
                pending: RefCell::new(None),
            };
            let value = keyvault::get_secret(&ctx, &credential)?;
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
            line.tenant = Some(tenant.name().to_string());
            let service = tenant.services().blob.as_ref().ok_or_else(|| {
                Problem::setting_missing(
                    &tenant.slot().var("blob_service_endpoint"),
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
            let credential = tenant.credential(common, cloud.storage_resource());
            let (head, body) = blob::open(&ctx, &credential, &target)?;
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
                entra: routes::federated(common, &profile, &exchange, cloud.registry_resource()),
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
