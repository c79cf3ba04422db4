//! The simulator's `/users`: lookup by UPN, id and `users('…')`, `$select`, `$filter` forms,
//! advanced queries, paging, `/$count`.

use mfa_bulk::sim::SimHandle;
use serde_json::Value;

use super::sim_common::{get, get_eventual, http, json_of, start, token};

#[tokio::test]
async fn get_user_by_upn_any_case_guest_and_dollar() {
    let s = start().await;
    let tok = token(&s).await;
    let r = get(&s, &tok, "/v1.0/users/MATHEO.DURAND@NORTHWIND.EXAMPLE").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("request-id").is_some());
    let v = json_of(r).await;
    assert_eq!(v["userPrincipalName"], "matheo.durand@northwind.example");
    assert_eq!(v["displayName"], "Mathéo Durand");

    let r = get(
        &s,
        &tok,
        "/v1.0/users/sam.lee_fabrikam.example%23EXT%23@northwind.onmicrosoft.com",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        json_of(r).await["userType"],
        Value::Null,
        "not in the v1.0 default set"
    );

    let r = get(&s, &tok, "/v1.0/users('$svc-scanner@northwind.example')").await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["displayName"], "Scanner service");
    let r = get(
        &s,
        &tok,
        "/v1.0/users('%24svc-scanner%40northwind.example')",
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = get(&s, &tok, "/v1.0/users/$svc-scanner@northwind.example").await;
    assert_eq!(r.status(), 400);

    // An apostrophe, plain and in the users('…') form (doubled).
    let r = get(&s, &tok, "/v1.0/users/liam.o'connor@northwind.example").await;
    assert_eq!(r.status(), 200);
    let r = get(&s, &tok, "/v1.0/users('liam.o''connor@northwind.example')").await;
    assert_eq!(r.status(), 200);

    // By id, with $select: only the selected properties.
    let r = get(
        &s,
        &tok,
        "/v1.0/users/c73bb1bb-73cc-4ce3-b8ce-56ca8b46b67e?$select=id,userPrincipalName",
    )
    .await;
    let v = json_of(r).await;
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{v}");
    assert_eq!(v["userPrincipalName"], "zoe.lindqvist@northwind.example");
    let r = get(
        &s,
        &tok,
        "/v1.0/users/zoe.lindqvist@northwind.example?$select=shoeSize",
    )
    .await;
    assert_eq!(r.status(), 400);

    let r = get(&s, &tok, "/v1.0/users/oskar.berg@northwind.example").await;
    assert_eq!(r.status(), 404);
    let v = json_of(r).await;
    assert_eq!(v["error"]["code"], "Request_ResourceNotFound");
    assert!(v["error"]["innerError"]["request-id"].is_string());
    assert!(v["error"]["innerError"]["client-request-id"].is_string());
    assert!(v["error"]["innerError"]["date"].is_string());
}

async fn upns(s: &SimHandle, tok: &str, query: &str, eventual: bool) -> Vec<String> {
    let path = format!("/v1.0/users?{query}");
    let r = if eventual {
        get_eventual(s, tok, &path).await
    } else {
        get(s, tok, &path).await
    };
    assert_eq!(r.status(), 200, "{query}");
    let v = json_of(r).await;
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn filter_forms() {
    let s = start().await;
    let tok = token(&s).await;
    assert_eq!(
        upns(
            &s,
            &tok,
            "$filter=mail eq 'AMARA.OKAFOR@northwind.example'",
            false
        )
        .await,
        vec!["aokafor@northwind.example"]
    );
    assert_eq!(
        upns(
            &s,
            &tok,
            "$filter=userPrincipalName eq 'liam.o''connor@northwind.example'",
            false
        )
        .await,
        vec!["liam.o'connor@northwind.example"]
    );
    assert_eq!(
        upns(
            &s,
            &tok,
            "$filter=id eq 'be68c1b2-5d7b-4810-ac3a-8ade537ad582'",
            false
        )
        .await,
        vec!["aokafor@northwind.example"]
    );
    assert_eq!(
        upns(&s, &tok, "$filter=userPrincipalName in ('kenji.tanaka@northwind.example','nobody@x.example','Priya.Raman@northwind.example')", false).await,
        vec!["priya.raman@northwind.example", "kenji.tanaka@northwind.example"]
    );
    assert_eq!(
        upns(&s, &tok, "$filter=mail eq 'sam.lee@fabrikam.example' or userPrincipalName eq 'sam.lee@fabrikam.example'", false).await.len(),
        1
    );
    // Advanced queries: with ConsistencyLevel and $count=true.
    assert_eq!(
        upns(
            &s,
            &tok,
            "$filter=otherMails/any(x:x eq 'SAM.LEE@fabrikam.example')&$count=true",
            true
        )
        .await,
        vec!["sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com"]
    );
    assert_eq!(
        upns(
            &s,
            &tok,
            "$filter=proxyAddresses/any(x:x eq 'smtp:info@northwind.example')&$count=true",
            true
        )
        .await,
        vec![
            "frontdesk1@northwind.example",
            "frontdesk2@northwind.example"
        ]
    );
    let r = get_eventual(
        &s,
        &tok,
        "/v1.0/users?$filter=proxyAddresses/any(x:x eq 'smtp:info@northwind.example')&$count=true",
    )
    .await;
    assert_eq!(json_of(r).await["@odata.count"], 2);
    // Without the header, or without $count: 400.
    let r = get(
        &s,
        &tok,
        "/v1.0/users?$filter=otherMails/any(x:x eq 'sam.lee@fabrikam.example')&$count=true",
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        json_of(r).await["error"]["code"],
        "Request_UnsupportedQuery"
    );
    let r = get_eventual(
        &s,
        &tok,
        "/v1.0/users?$filter=otherMails/any(x:x eq 'sam.lee@fabrikam.example')",
    )
    .await;
    assert_eq!(r.status(), 400);
    // Bad syntax, unknown property, unterminated quote.
    for bad in [
        "$filter=mail eq",
        "$filter=shoeSize eq '42'",
        "$filter=mail eq 'o'brien@x.example'",
        "$filter=mail gt 'a'",
    ] {
        let r = get(&s, &tok, &format!("/v1.0/users?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn top_over_999_is_400_and_paging_follows_next_link() {
    let s = start().await;
    let tok = token(&s).await;
    let r = get(&s, &tok, "/v1.0/users?$top=1000").await;
    assert_eq!(r.status(), 400);
    assert_eq!(get(&s, &tok, "/v1.0/users?$top=999").await.status(), 200);

    let mut url = format!("{}/v1.0/users?$top=5&$select=id,userPrincipalName", s.url());
    let mut seen = vec![];
    let mut pages = 0;
    loop {
        let r = http().get(&url).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v = json_of(r).await;
        pages += 1;
        for u in v["value"].as_array().unwrap() {
            seen.push(u["id"].as_str().unwrap().to_string());
        }
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&s.url()), "absolute: {next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 4);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 17);
}

#[tokio::test]
async fn users_count_needs_consistency_level() {
    let s = start().await;
    let tok = token(&s).await;
    let r = get(&s, &tok, "/v1.0/users/$count").await;
    assert_eq!(r.status(), 400);
    let r = get_eventual(&s, &tok, "/v1.0/users/$count").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "17");
}
