//! The readiness report: every configuration section and tenant profile by name, ok or the
//! problem that names its variable — never a configured value. Calls nothing upstream.
//!
//! The probe is anonymous, so anonymous callers get only ready or not, with the first
//! problem's code ([`Report::anonymous`]); the whole report ([`Report::full`]) is for callers
//! with a function key, and its problems go to the request's log line ([`Report::log_detail`]).

use crate::config::settings::Settings;
use crate::errors::Problem;
use crate::errors::ProblemBody;
use crate::wire::typed_json;
use serde::Serialize;

#[derive(Serialize)]
struct Issue<'a> {
    code: &'a str,
    detail: &'a str,
}

/// A profile by name and state: never its values (tenant ids, endpoints), which an
/// unauthenticated probe has no business reading.
#[derive(Serialize)]
struct ProfileReport<'a> {
    name: &'a str,
    status: &'static str,
    serves: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<Issue<'a>>,
}

/// The whole report, members in this order: when not ready, the first problem's RFC 9457
/// members; `status` ("ok", or the HTTP status 503); what is served; the profiles; the
/// problems, when there are any.
#[derive(Serialize)]
struct FullReport<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    status: Status,
    serves: &'a [&'static str],
    profiles: &'a [ProfileReport<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    problems: &'a [Issue<'a>],
}

#[derive(Serialize)]
#[serde(untagged)]
enum Status {
    Ready(&'static str),
    Unready(u16),
}

fn issue(p: &Problem) -> Issue<'_> {
    Issue {
        code: &p.code,
        detail: &p.detail,
    }
}

/// The readiness of a configuration.
pub(crate) struct Report {
    /// Every configured part parses, something is served, and authentication is on (or its
    /// being off is allowed with `auth_disabled_ready`).
    pub ready: bool,
    /// The first problem's code when not ready.
    pub code: Option<String>,
    /// Every problem, for the log line, when not ready.
    pub log_detail: Option<String>,
    /// The whole report (JSON): what is served, every profile by name, every problem.
    pub full: Vec<u8>,
}

impl Report {
    /// What an unauthenticated probe may read: ready, or not with the first problem's code.
    pub(crate) fn anonymous(&self) -> Vec<u8> {
        match &self.code {
            None => br#"{"status":"ok"}"#.to_vec(),
            Some(code) => ProblemBody::new(
                code,
                "Configuration error",
                503,
                crate::errors::WITHHELD_DETAIL,
            )
            .to_json(),
        }
    }
}

/// Authentication turned off without `auth_disabled_ready`: a probe must not route callers to
/// an instance that lets everyone in by mistake.
fn auth_disabled(settings: &Settings) -> Option<Problem> {
    let auth = settings.auth.as_ref().ok()?;
    (auth.disabled && !auth.disabled_ready).then(|| {
        Problem::setting(
            "auth_disabled",
            "it is true, so callers are not authenticated: local use only; set \
             auth_disabled_ready = true as well if this instance may report ready",
        )
    })
}

/// Checks the configuration; calls nothing.
pub(crate) fn report(settings: &Settings) -> Report {
    let mut problems = Vec::new();
    let mut serves = Vec::new();
    let auth = settings.auth.as_ref().err();
    let unauthenticated = auth_disabled(settings);
    for p in auth
        .into_iter()
        .chain(unauthenticated.as_ref())
        .chain(settings.common.as_ref().err())
    {
        problems.push(issue(p));
    }
    match &settings.same {
        Some(Ok(same)) => {
            if same.vault.is_some() {
                serves.push("GetSecretSameTenant");
            }
            if same.blob.is_some() {
                serves.push("DownloadBlobSameTenant");
            }
        }
        Some(Err(p)) => problems.push(issue(p)),
        None => {}
    }
    if let Some(Err(p)) = &settings.exchange {
        problems.push(issue(p));
    }
    let exchange_ok = matches!(settings.exchange, Some(Ok(_)));
    let profiles: Vec<ProfileReport> = settings
        .profiles
        .iter()
        .map(|state| match &state.profile {
            Ok(p) => {
                let mut serves = Vec::new();
                if p.services.vault.is_some() {
                    serves.push("GetSecretCrossTenant");
                }
                if p.services.blob.is_some() {
                    serves.push("DownloadBlobCrossTenant");
                }
                if !p.registries.is_empty() {
                    serves.push("acr/token");
                }
                ProfileReport {
                    name: &state.name,
                    status: if exchange_ok { "ok" } else { "error" },
                    serves,
                    problem: None,
                }
            }
            Err(e) => ProfileReport {
                name: &state.name,
                status: "error",
                serves: Vec::new(),
                problem: Some(issue(e)),
            },
        })
        .collect();
    for p in profiles.iter().filter(|p| p.status == "ok") {
        for s in &p.serves {
            if !serves.contains(s) {
                serves.push(s);
            }
        }
    }
    let profile_failed = profiles.iter().any(|p| p.status != "ok");
    if serves.is_empty() && problems.is_empty() && !profile_failed {
        problems.push(Issue {
            code: "configuration-missing",
            detail: "nothing to serve: set keyvault_endpoint, blob_service_endpoint, or a tenant profile \
                     (cross_tenant_id with cross_keyvault_endpoint, cross_blob_service_endpoint or cross_tenant_registries)",
        });
    }
    let ready = problems.is_empty() && !profile_failed;
    let first = problems.first().map(|i| (i.code, i.detail)).or_else(|| {
        profiles
            .iter()
            .find_map(|p| p.problem.as_ref().map(|i| (i.code, i.detail)))
    });
    // RFC 9457 members when not ready: the first problem, so the report reads as a problem;
    // `status` is "ok" when ready, the HTTP status (503) in the problem form.
    let body = FullReport {
        kind: first.map(|(code, _)| format!("urn:tenant-bridge:problem:{code}")),
        title: first.map(|_| "Configuration error"),
        code: first.map(|(code, _)| code),
        detail: first.map(|(_, detail)| detail),
        status: if ready {
            Status::Ready("ok")
        } else {
            Status::Unready(503)
        },
        serves: &serves,
        profiles: &profiles,
        problems: &problems,
    };
    let log_detail = (!ready).then(|| {
        let general = problems.iter().map(|i| i.detail.to_string());
        let of_profiles = profiles.iter().filter_map(|p| {
            p.problem
                .as_ref()
                .map(|i| format!("profile '{}': {}", p.name, i.detail))
        });
        general.chain(of_profiles).collect::<Vec<_>>().join("; ")
    });
    Report {
        ready,
        code: first.filter(|_| !ready).map(|(code, _)| code.to_string()),
        log_detail,
        full: typed_json::to_string(&body).into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::tests::{cross, vars, TC};
    use crate::config::settings::{read, Need};
    use std::collections::HashMap;

    fn check(pairs: &[(&'static str, &'static str)]) -> (bool, serde_json::Value) {
        let mut v: HashMap<&str, &str> = [("function_keys", "0123456789abcdef")]
            .into_iter()
            .collect();
        v.extend(pairs.iter().copied());
        let r = report(&read(&v, Need::Health));
        (r.ready, serde_json::from_slice(&r.full).unwrap())
    }

    #[test]
    fn anonymous_callers_learn_ready_or_not_and_a_code_only() {
        let vars = |pairs: &[(&'static str, &'static str)]| {
            let mut v: HashMap<&str, &str> = [("function_keys", "ops:0123456789abcdef")]
                .into_iter()
                .collect();
            v.extend(pairs.iter().copied());
            v
        };
        let ready = report(&read(
            &vars(&[("keyvault_endpoint", "https://v.vault.azure.net")]),
            Need::Health,
        ));
        assert!(ready.ready && ready.log_detail.is_none());
        assert_eq!(ready.anonymous(), br#"{"status":"ok"}"#);
        let r = report(&read(
            &vars(&[
                ("keyvault_endpoint", "https://v.vault.azure.net"),
                ("profile1_name", "secret-profile"),
            ]),
            Need::Health,
        ));
        assert!(!r.ready);
        let body: serde_json::Value = serde_json::from_slice(&r.anonymous()).unwrap();
        assert_eq!(
            (&body["status"], &body["code"]),
            (
                &serde_json::json!(503),
                &serde_json::json!("configuration-missing")
            )
        );
        let text = body.to_string();
        for hidden in [
            "secret-profile",
            "profile1",
            "GetSecret",
            "serves",
            "profiles",
        ] {
            assert!(!text.contains(hidden), "{hidden}: {text}");
        }
        let log = r.log_detail.unwrap();
        assert!(
            log.contains("profile 'secret-profile'") && log.contains("profile1_tenant_id"),
            "{log}"
        );
    }

    #[test]
    fn authentication_off_is_not_ready_unless_allowed() {
        let off = [
            ("function_keys", ""),
            ("auth_disabled", "true"),
            ("keyvault_endpoint", "https://v.vault.azure.net"),
        ];
        let (ready, body) = check(&off);
        assert!(!ready);
        assert_eq!(body["code"], "configuration-invalid");
        assert!(
            body["detail"].as_str().unwrap().contains("auth_disabled"),
            "{body}"
        );
        let mut allowed = off.to_vec();
        allowed.push(("auth_disabled_ready", "true"));
        assert!(check(&allowed).0);
    }

    #[test]
    fn lists_what_the_configuration_serves() {
        let (ready, body) = check(&[("keyvault_endpoint", "https://v.vault.azure.net")]);
        assert!(ready);
        assert_eq!(body["serves"], serde_json::json!(["GetSecretSameTenant"]));
        let (ready, body) = check(&[]);
        assert!(!ready && body["problems"][0]["code"] == "configuration-missing");
        // Unready reads as an RFC 9457 problem: the first problem, status 503.
        assert_eq!(
            (&body["code"], &body["status"], &body["type"]),
            (
                &serde_json::json!("configuration-missing"),
                &serde_json::json!(503),
                &serde_json::json!("urn:tenant-bridge:problem:configuration-missing")
            )
        );
    }

    #[test]
    fn reports_each_profile_by_name_without_values() {
        let (ready, body) = check(&[
            ("azure_client_id", "c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1"),
            ("app_client_id", "a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9"),
            ("cross_tenant_name", "b"),
            ("cross_tenant_id", "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"),
            ("cross_keyvault_endpoint", "https://b.vault.azure.net"),
            ("profile1_name", "c"),
            ("profile1_tenant_id", "cccccccc-3333-4333-8333-cccccccccccc"),
            (
                "profile1_keyvault_endpoint",
                "https://c.vault.azure.net/secret-path-value",
            ),
        ]);
        assert!(!ready);
        assert_eq!(body["profiles"][0]["name"], "b");
        assert_eq!(body["profiles"][0]["status"], "ok");
        assert_eq!(body["profiles"][1]["name"], "c");
        assert!(
            !body.to_string().contains("bbbbbbbb-2222"),
            "no profile values in the report: {body}"
        );
        assert_eq!(body["profiles"][1]["status"], "error");
        let text = body.to_string();
        assert!(
            text.contains("profile1_keyvault_endpoint") && !text.contains("secret-path-value"),
            "{text}"
        );
        assert_eq!(body["serves"], serde_json::json!(["GetSecretCrossTenant"]));
    }

    #[test]
    fn cross_tenant_without_a_user_assigned_identity_is_not_ready() {
        let (ready, body) = check(&[
            ("cross_tenant_id", "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"),
            ("app_client_id", "a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9"),
            (
                "cross_blob_service_endpoint",
                "https://b.blob.core.windows.net",
            ),
        ]);
        assert!(!ready);
        assert!(body.to_string().contains("azure_client_id"));
    }

    #[test]
    fn malformed_values_are_never_echoed() {
        let (ready, body) = check(&[
            (
                "keyvault_endpoint",
                "https://my-secret-vault-name.evil.example",
            ),
            ("cross_tenant_id", "contoso-secret-tenant"),
        ]);
        assert!(!ready);
        let text = body.to_string();
        assert!(
            !text.contains("my-secret-vault-name") && !text.contains("contoso-secret-tenant"),
            "{text}"
        );
        // An invalid profile name is reported by its variable, not echoed.
        let (ready, body) = check(&[
            ("keyvault_endpoint", "https://v.vault.azure.net"),
            ("profile2_name", "Secret Name With Spaces"),
        ]);
        assert!(!ready);
        assert_eq!(body["profiles"][0]["name"], "profile2_name");
        assert!(!body.to_string().contains("with spaces"), "{body}");
    }

    #[test]
    fn every_malformed_variable_is_named_by_health() {
        let base: Vec<(&'static str, &'static str)> = cross()
            .into_iter()
            .chain([
                ("keyvault_endpoint", "https://a.vault.azure.net"),
                ("blob_service_endpoint", "https://a.blob.core.windows.net"),
                ("profile1_name", "c"),
                ("profile1_tenant_id", TC),
            ])
            .collect();
        let ready = report(&read(&vars(&base), Need::Health)).ready;
        assert!(ready, "the base configuration is valid");
        for (name, bad) in [
            ("function_keys", "ops:short"),
            ("auth_disabled", "perhaps"),
            ("cloud", "mars"),
            ("azure_client_id", "not-a-guid-value"),
            ("imds_endpoint", "http://169.254.169.254/metadata"),
            ("keyvault_endpoint", "https://a.vault.azure.net/secrets"),
            ("blob_service_endpoint", "http://a.blob.core.windows.net"),
            ("blob_service_path", "/../etc"),
            ("app_client_id", "contoso-app-value"),
            ("cross_tenant_id", "contoso.onmicrosoft.com"),
            (
                "cross_keyvault_endpoint",
                "https://vault.evil-value.example",
            ),
            (
                "cross_blob_service_endpoint",
                "ftp://b.blob.core.windows.net",
            ),
            ("cross_blob_service_path", "a/./b"),
            ("authority_host", "https://login.evil-value.example"),
            ("request_deadline_secs", "0"),
            ("retry_base_ms", "fast"),
            ("max_blob_bytes", "-1"),
            ("same_tenant_secrets", "bad name!"),
            ("cross_tenant_secrets", "a*b*"),
            ("same_tenant_blobs", "UPPER/x"),
            ("cross_tenant_blobs", "c/../x"),
            ("trusted_token_hosts", "*.com"),
            ("cross_tenant_name", "Not A Name"),
            ("cross_tenant_registries", "https://hub.azurecr.io"),
            ("profile1_tenant_id", "tenant-c-value"),
            ("profile1_keyvault_endpoint", "https://"),
        ] {
            let mut v = base.clone();
            v.retain(|(n, _)| *n != name);
            v.push((name, bad));
            let report = report(&read(&vars(&v), Need::Health));
            let (ready, text) = (report.ready, String::from_utf8(report.full).unwrap());
            assert!(!ready, "{name}={bad:?} passed: {text}");
            assert!(text.contains(name), "{name} not named: {text}");
            if bad.len() > 8 {
                assert!(!text.contains(bad), "{name}'s value echoed: {text}");
            }
        }
    }
}
