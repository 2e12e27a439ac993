//! The JSON error parsers of Key Vault, Entra ID and IMDS (`keyvault::error_problem`,
//! `entra::error_problem`, `imds::error_problem`), on any error status, headers and body.
//!
//! Input: `STATUS\nName: value\n…\n\nBODY` (status folded into 400..=599; headers such as
//! `Retry-After` matter for 429/503). Properties: never panics; every problem is 4xx/5xx with a
//! kebab-case code, a detail under 2 KiB and a JSON body that agrees (`common::check_problem`);
//! 429 always becomes a 503 with `Retry-After`; only the statuses each mapping documents appear.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tenant_bridge::config::{parse_origin, Exchange, Tenant};
use tenant_bridge::jwt::Claims;
use tenant_bridge::{entra, imds, keyvault};

fuzz_target!(|data: &[u8]| {
    let resp = common::upstream_response(data);
    let status = resp.status();

    let vault = parse_origin("https://contoso.vault.azure.net").unwrap();
    for version in [None, Some("0123456789abcdef0123456789abcdef")] {
        let target = keyvault::Target {
            vault: &vault,
            tenant: Tenant::Cross,
            name: "TEST-SECRET-001",
            version,
        };
        let p = keyvault::error_problem(&resp, &target, "the managed identity");
        common::check_problem(&p, "keyvault");
        assert!(
            matches!(p.status, 404 | 409 | 502 | 503),
            "keyvault status {}",
            p.status
        );
        assert_eq!(p.status == 404, status == 404);
        if status == 429 {
            assert!(p.status == 503 && p.retry_after.is_some());
        }
    }

    let exchange = Exchange {
        tenant_id: "bbbbbbbb-0000-0000-0000-000000000000".into(),
        app_client_id: "aaaaaaaa-0000-0000-0000-000000000000".into(),
        authority: parse_origin("https://login.microsoftonline.com").unwrap(),
        audience: "api://AzureADTokenExchange".into(),
    };
    let assertion = Claims {
        iss: "https://login.microsoftonline.com/aaaa/v2.0".into(),
        sub: "Oid-1".into(),
        aud: "api://AzureADTokenExchange".into(),
        tid: "aaaa".into(),
        ..Claims::default()
    };
    let ctx = entra::Context {
        exchange: &exchange,
        resource: "https://vault.azure.net",
        assertion: &assertion,
    };
    let p = entra::error_problem(&resp, &ctx);
    common::check_problem(&p, "entra");
    let expected = if status == 429 || status >= 500 {
        503
    } else {
        502
    };
    assert_eq!(p.status, expected, "entra status for {status}");
    if p.status == 503 {
        assert!(p.retry_after.is_some());
    }

    for client_id in [None, Some("11111111-2222-3333-4444-555555555555")] {
        let p = imds::error_problem(&resp, "https://vault.azure.net", client_id);
        common::check_problem(&p, "imds");
        let transient = matches!(status, 404 | 410 | 429 | 500..=599);
        assert_eq!(
            p.status,
            if transient { 503 } else { 502 },
            "imds status for {status}"
        );
        if transient {
            assert!(p.retry_after.is_some());
        }
    }
});
