//! The simulator's per-user MFA state (`/beta/users/{id}/authentication/requirements`),
//! authentication methods and the registration report.

use serde_json::json;

use super::sim_common::{get, http, json_of, patch_state, retry_after, start, start_with, token};

#[tokio::test]
async fn requirements_get_and_patch() {
    let s = start().await;
    let tok = token(&s).await;
    let r = get(
        &s,
        &tok,
        "/beta/users/liam.o'connor@northwind.example/authentication/requirements",
    )
    .await;
    assert_eq!(r.status(), 200);
    let v = json_of(r).await;
    assert_eq!(v["perUserMfaState"], "disabled");
    assert!(v["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/authentication/requirements/$entity"));

    let r = patch_state(&s, &tok, "liam.o'connor@northwind.example", "enabled").await;
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = get(
        &s,
        &tok,
        "/beta/users/LIAM.O'CONNOR@northwind.example/authentication/requirements",
    )
    .await;
    assert_eq!(json_of(r).await["perUserMfaState"], "enabled");

    // Zoë registered the Authenticator: enabled becomes enforced.
    let r = patch_state(&s, &tok, "c73bb1bb-73cc-4ce3-b8ce-56ca8b46b67e", "enabled").await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        s.user_state("zoe.lindqvist@northwind.example").unwrap(),
        "enforced"
    );
    let c = s.counters();
    assert_eq!(c.writes, 2);
    assert_eq!(c.writes_per_user["c73bb1bb-73cc-4ce3-b8ce-56ca8b46b67e"], 1);

    // Bad values.
    for bad in ["Enabled", "unknownFutureValue", "on"] {
        let r = patch_state(&s, &tok, "hyper.link@northwind.example", bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = patch_state(&s, &tok, "oskar.berg@northwind.example", "enabled").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        json_of(r).await["error"]["code"],
        "Request_ResourceNotFound"
    );
    assert_eq!(
        s.user_state("hyper.link@northwind.example").unwrap(),
        "disabled"
    );
}

#[tokio::test]
async fn requirements_do_not_exist_on_v1() {
    let s = start().await;
    let tok = token(&s).await;
    let r = get(
        &s,
        &tok,
        "/v1.0/users/zoe.lindqvist@northwind.example/authentication/requirements",
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = http()
        .patch(format!(
            "{}/v1.0/users/zoe.lindqvist@northwind.example/authentication/requirements",
            s.url()
        ))
        .bearer_auth(&tok)
        .json(&json!({"perUserMfaState": "enabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        s.user_state("zoe.lindqvist@northwind.example").unwrap(),
        "disabled"
    );
}

#[tokio::test]
async fn methods_list_always_has_the_password() {
    let s = start().await;
    let tok = token(&s).await;
    let v = json_of(
        get(
            &s,
            &tok,
            "/v1.0/users/zoe.lindqvist@northwind.example/authentication/methods",
        )
        .await,
    )
    .await;
    let types: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "#microsoft.graph.passwordAuthenticationMethod",
            "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod"
        ]
    );
    let v = json_of(
        get(
            &s,
            &tok,
            "/v1.0/users/liam.o'connor@northwind.example/authentication/methods",
        )
        .await,
    )
    .await;
    assert_eq!(v["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn registration_report_pages_filters_and_is_throttled_harder() {
    let s = start().await;
    let tok = token(&s).await;
    let base = "/beta/reports/authenticationMethods/userRegistrationDetails";
    let v = json_of(get(&s, &tok, &format!("{base}?$top=10")).await).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 10);
    assert!(v["@odata.nextLink"].is_string());
    let r = get(&s, &tok, &format!("{base}?$filter=userPrincipalName in ('zoe.lindqvist@northwind.example','liam.o''connor@northwind.example')")).await;
    let v = json_of(r).await;
    let rows = v["value"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["isMfaRegistered"], true);
    assert_eq!(
        rows[0]["methodsRegistered"],
        json!(["microsoftAuthenticatorPush"])
    );
    assert_eq!(rows[1]["isMfaRegistered"], false);
    let r = get(
        &s,
        &tok,
        &format!("{base}/c73bb1bb-73cc-4ce3-b8ce-56ca8b46b67e"),
    )
    .await;
    assert_eq!(json_of(r).await["isMfaCapable"], true);
    // 5 requests per 10 s: two more pass, the sixth is 429.
    assert_eq!(get(&s, &tok, base).await.status(), 200);
    assert_eq!(get(&s, &tok, base).await.status(), 200);
    let r = get(&s, &tok, base).await;
    assert_eq!(r.status(), 429);
    assert!(retry_after(r.headers()) >= 1.0);
    // Other Graph calls are not held back by the report limit.
    assert_eq!(get(&s, &tok, "/v1.0/users?$top=1").await.status(), 200);
}

#[tokio::test]
async fn non_premium_tenant_gets_403_on_reports() {
    let s = start_with(|c| c.tenant.premium = false).await;
    let tok = token(&s).await;
    let r = get(
        &s,
        &tok,
        "/beta/reports/authenticationMethods/userRegistrationDetails",
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        json_of(r).await["error"]["code"],
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    );
    // The methods list still works.
    let r = get(
        &s,
        &tok,
        "/v1.0/users/zoe.lindqvist@northwind.example/authentication/methods",
    )
    .await;
    assert_eq!(r.status(), 200);
}
