//! Access tokens for a resource: the managed identity's own (same tenant) or tenant B's through
//! the federated exchange (cross tenant), cached in the key-value store because Spin starts a
//! fresh instance for every request.

use crate::config::{self, Cloud, Exchange, Origin, Tenant, Variables};
use crate::errors::Problem;
use crate::upstream::{net_problem, NetError, Transport};
use crate::{entra, imds, jwt, retry};
use serde::{Deserialize, Serialize};

/// A token as cached. `refresh_at` is when to fetch a new one while this one still works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub access_token: String,
    pub expires_on: u64,
    pub refresh_at: u64,
}

/// Refresh when this little lifetime is left (Azure.Identity and MSAL use 300 s).
pub const REFRESH_MARGIN: u64 = 300;

impl Token {
    /// Refresh time: `refresh_in` when the service gives one; half-life for long-lived tokens
    /// (MSAL's rule for managed identity tokens over 2 h); otherwise 300 s before expiry.
    pub fn new(access_token: String, now: u64, expires_on: u64, refresh_in: Option<u64>) -> Token {
        let lifetime = expires_on.saturating_sub(now);
        let refresh_at = match refresh_in {
            Some(r) => now.saturating_add(r),
            None if lifetime > 2 * 3600 => now + lifetime / 2,
            None => expires_on.saturating_sub(REFRESH_MARGIN),
        };
        Token {
            access_token,
            expires_on,
            refresh_at: refresh_at.min(expires_on.saturating_sub(REFRESH_MARGIN)),
        }
    }

    /// Good enough to send: more than the margin left.
    pub fn usable(&self, now: u64) -> bool {
        self.expires_on > now + REFRESH_MARGIN
    }

    pub fn fresh(&self, now: u64) -> bool {
        self.usable(now) && now < self.refresh_at
    }
}

/// The key-value store, as the cache sees it. Failures are swallowed by implementations: a
/// broken cache costs round trips, never the request.
pub trait Store {
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn set(&self, key: &str, value: &[u8]);
    fn delete(&self, key: &str);
}

/// Per-request context for the services: transport, cache, configuration and the clock.
pub struct Env<'a, T: Transport> {
    pub http: &'a T,
    pub store: &'a dyn Store,
    pub vars: &'a dyn Variables,
    /// Unix seconds at the start of the request.
    pub now: u64,
    /// `x-ms-client-request-id` for every service call of this request (correlation in logs).
    pub request_id: String,
    /// Deadline and backoff for retries.
    pub budget: crate::retry::Budget,
}

/// Serves `key` from the cache while fresh; otherwise fetches, keeping the old token if the
/// refresh fails while it is still usable.
fn cached(
    env_store: &dyn Store,
    key: &str,
    now: u64,
    fetch: impl FnOnce() -> Result<Token, Problem>,
) -> Result<Token, Problem> {
    let old: Option<Token> = env_store
        .get(key)
        .and_then(|v| serde_json::from_slice(&v).ok());
    if let Some(t) = &old {
        if t.fresh(now) {
            return Ok(t.clone());
        }
    }
    match fetch() {
        Ok(t) => {
            if let Ok(v) = serde_json::to_vec(&t) {
                env_store.set(key, &v);
            }
            Ok(t)
        }
        Err(p) => match old {
            Some(t) if t.usable(now) => Ok(t),
            _ => Err(p),
        },
    }
}

/// What a token is for: identifies the cache entry.
pub struct Scope<'a> {
    pub cloud: Cloud,
    pub tenant: Tenant,
    pub resource: &'a str,
}

fn mi_key(cloud: Cloud, client_id: Option<&str>, resource: &str) -> String {
    format!(
        "token|v1|{}|mi|{}|{}",
        cloud.name(),
        client_id.unwrap_or("system"),
        resource
    )
}

fn exchange_key(cloud: Cloud, ex: &Exchange, client_id: &str, resource: &str) -> String {
    format!(
        "token|v1|{}|{}|{}|{}|{}",
        cloud.name(),
        ex.tenant_id,
        client_id,
        ex.app_client_id,
        resource
    )
}

/// Forgets a cached token, after a service refused it.
pub fn forget<T: Transport>(env: &Env<T>, scope: &Scope) -> Result<(), Problem> {
    let client_id = config::managed_identity(env.vars)?;
    let key = match scope.tenant {
        Tenant::Same => mi_key(scope.cloud, client_id.as_deref(), scope.resource),
        Tenant::Cross => exchange_key(
            scope.cloud,
            &config::exchange(env.vars, scope.cloud)?,
            client_id.as_deref().unwrap_or(""),
            scope.resource,
        ),
    };
    env.store.delete(&key);
    Ok(())
}

/// Who a service saw, for role hints: the managed identity (same tenant) or the app's service
/// principal in tenant B, with the object id from the token when there is one.
pub fn principal(tenant: Tenant, vars: &dyn Variables, token: Option<&str>) -> String {
    let oid = token
        .and_then(jwt::claims)
        .map(|c| c.oid)
        .filter(|o| !o.is_empty());
    let oid = oid.map(|o| format!(" (object id {o})")).unwrap_or_default();
    match tenant {
        Tenant::Same => match config::managed_identity(vars).ok().flatten() {
            Some(id) => format!("the managed identity with client id {id}{oid}"),
            None => format!("the system-assigned managed identity{oid}"),
        },
        Tenant::Cross => {
            let app = vars.get(config::var::APP_CLIENT_ID).unwrap_or_default();
            format!("the service principal of app {app} in tenant B{oid}")
        }
    }
}

/// Validates every identity setting a request to `tenant` needs, before any upstream call.
pub fn preflight(vars: &dyn Variables, tenant: Tenant, cloud: Cloud) -> Result<(), Problem> {
    let client_id = config::managed_identity(vars)?;
    config::imds_endpoint(vars)?;
    if tenant == Tenant::Cross {
        config::exchange(vars, cloud)?;
        if client_id.is_none() {
            return Err(Problem::config_missing(
                config::var::AZURE_CLIENT_ID,
                "cross-tenant federation works only with a user-assigned managed identity; set its client id",
            ));
        }
    }
    Ok(())
}

/// A bearer token for `scope.resource` in the scope's tenant.
pub fn access_token<T: Transport>(env: &Env<T>, scope: &Scope) -> Result<String, Problem> {
    let client_id = config::managed_identity(env.vars)?;
    let imds_origin = config::imds_endpoint(env.vars)?;
    match scope.tenant {
        Tenant::Same => {
            let key = mi_key(scope.cloud, client_id.as_deref(), scope.resource);
            let token = cached(env.store, &key, env.now, || {
                mi_token(env, &imds_origin, scope.resource, client_id.as_deref())
            })?;
            Ok(token.access_token)
        }
        Tenant::Cross => {
            preflight(env.vars, scope.tenant, scope.cloud)?;
            let ex = config::exchange(env.vars, scope.cloud)?;
            let client_id = client_id.unwrap_or_default();
            let key = exchange_key(scope.cloud, &ex, &client_id, scope.resource);
            let token = cached(env.store, &key, env.now, || {
                let assertion_key = mi_key(scope.cloud, Some(&client_id), &ex.audience);
                let assertion = cached(env.store, &assertion_key, env.now, || {
                    mi_token(env, &imds_origin, &ex.audience, Some(&client_id))
                })?;
                exchange_token(env, &ex, scope.resource, &assertion.access_token)
            })?;
            Ok(token.access_token)
        }
    }
}

fn mi_token<T: Transport>(
    env: &Env<T>,
    imds_origin: &Origin,
    resource: &str,
    client_id: Option<&str>,
) -> Result<Token, Problem> {
    let req = imds::token_request(imds_origin, resource, client_id);
    let resp = retry::send(env, &req)?.map_err(|e| match e {
        NetError::ConnectionRefused | NetError::Dns | NetError::Timeout => {
            imds::unreachable_problem(imds_origin)
        }
        other => net_problem(&req, &other),
    })?;
    if resp.status() != 200 {
        return Err(imds::error_problem(&resp, resource, client_id));
    }
    imds::parse_token(&resp.body, env.now).ok_or_else(|| {
        Problem::upstream(
            "identity-failed",
            "IMDS answered 200 without a usable access_token",
        )
    })
}

fn exchange_token<T: Transport>(
    env: &Env<T>,
    ex: &Exchange,
    resource: &str,
    assertion: &str,
) -> Result<Token, Problem> {
    let req = entra::token_request(ex, resource, assertion);
    let resp = retry::send(env, &req)?.map_err(|e| net_problem(&req, &e))?;
    if resp.status() != 200 {
        let claims = jwt::claims(assertion).unwrap_or_default();
        let ctx = entra::Context {
            exchange: ex,
            resource,
            assertion: &claims,
        };
        return Err(entra::error_problem(&resp, &ctx));
    }
    entra::parse_token(&resp.body, env.now).ok_or_else(|| {
        Problem::upstream(
            "entra-failed",
            "Entra ID answered 200 without a usable access_token",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Default)]
    struct MemStore(RefCell<HashMap<String, Vec<u8>>>);
    impl Store for MemStore {
        fn get(&self, key: &str) -> Option<Vec<u8>> {
            self.0.borrow().get(key).cloned()
        }
        fn set(&self, key: &str, value: &[u8]) {
            self.0.borrow_mut().insert(key.into(), value.to_vec());
        }
        fn delete(&self, key: &str) {
            self.0.borrow_mut().remove(key);
        }
    }

    fn token(exp: u64, refresh: u64) -> Token {
        Token {
            access_token: format!("t{exp}"),
            expires_on: exp,
            refresh_at: refresh,
        }
    }

    #[test]
    fn refresh_time_follows_msal_rules() {
        assert_eq!(
            Token::new("x".into(), 1000, 1000 + 86400, None).refresh_at,
            1000 + 43200
        );
        assert_eq!(
            Token::new("x".into(), 1000, 1000 + 3600, None).refresh_at,
            1000 + 3300
        );
        assert_eq!(
            Token::new("x".into(), 1000, 1000 + 3600, Some(1800)).refresh_at,
            2800
        );
        assert_eq!(
            Token::new("x".into(), 1000, 1000 + 100, None).refresh_at,
            800
        );
    }

    #[test]
    fn cache_serves_fresh_and_refreshes_in_the_window() {
        let store = MemStore::default();
        let calls = RefCell::new(0);
        let fetch = |exp| {
            *calls.borrow_mut() += 1;
            Ok(token(exp, exp - 300))
        };
        assert_eq!(
            cached(&store, "k", 0, || fetch(4000)).unwrap().expires_on,
            4000
        );
        assert_eq!(
            cached(&store, "k", 3600, || fetch(9000))
                .unwrap()
                .expires_on,
            4000
        );
        assert_eq!(*calls.borrow(), 1);
        // 299 s left: inside the 300 s window, refresh.
        assert_eq!(
            cached(&store, "k", 3701, || fetch(9000))
                .unwrap()
                .expires_on,
            9000
        );
        assert_eq!(*calls.borrow(), 2);
    }

    #[test]
    fn failed_refresh_keeps_serving_a_usable_token() {
        let store = MemStore::default();
        cached(&store, "k", 0, || Ok(token(10_000, 5_000))).unwrap();
        let err = || Err(Problem::upstream("x", "down"));
        assert_eq!(cached(&store, "k", 6_000, err).unwrap().expires_on, 10_000);
        // Once it is no longer usable, the failure shows.
        assert!(cached(&store, "k", 9_800, err).is_err());
    }
}
