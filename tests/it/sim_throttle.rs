//! The simulator's throttling: the RU budget per app, the cost of a request, the write
//! limits per app and per tenant, and `Retry-After`.

use std::time::Duration;

use mfa_bulk::sim;

use super::sim_common::{get, json_of, patch_state, retry_after, start_with, token, token_of};

#[tokio::test]
async fn ru_budget_throttles_and_throttled_requests_still_count() {
    // Budget 5 RU per 10 s; at 5x a window lasts 2 s real.
    let s = start_with(|c| {
        c.limits.ru_per_10s = Some(5);
        c.time_scale = 5.0;
    })
    .await;
    let tok = token(&s).await;
    let one = "/v1.0/users/zoe.lindqvist@northwind.example";
    for _ in 0..5 {
        assert_eq!(get(&s, &tok, one).await.status(), 200);
    }
    let r = get(&s, &tok, one).await;
    assert_eq!(r.status(), 429);
    let ra = retry_after(r.headers());
    assert!(ra > 0.0 && ra <= 2.0, "Retry-After {ra} real seconds");
    assert_eq!(json_of(r).await["error"]["code"], "TooManyRequests");
    // A list costs 2 RU: also refused.
    assert_eq!(get(&s, &tok, "/v1.0/users").await.status(), 429);

    // t ≈ 1 s: hammer while throttled; these count against the next window.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for _ in 0..5 {
        assert_eq!(get(&s, &tok, one).await.status(), 429);
    }
    // t ≈ 2.3 s: the first five left the window, the hammering has not.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(get(&s, &tok, one).await.status(), 429);
    let c = s.counters();
    assert!(c.throttled >= 8);
    assert!(c.ru_spent >= 13, "{c:?}");
    // Another app has its own budget.
    let ro = token_of(
        &s,
        sim::SIM_READONLY_CLIENT_ID,
        sim::SIM_READONLY_CLIENT_SECRET,
    )
    .await;
    assert_eq!(get(&s, &ro, one).await.status(), 200);
}

#[tokio::test]
async fn select_lowers_the_cost_of_a_list() {
    let s = start_with(|c| c.limits.ru_per_10s = Some(4)).await;
    let tok = token(&s).await;
    for _ in 0..4 {
        assert_eq!(get(&s, &tok, "/v1.0/users?$select=id").await.status(), 200);
    }
    assert_eq!(get(&s, &tok, "/v1.0/users?$select=id").await.status(), 429);
    assert_eq!(s.counters().ru_spent, 5);
}

#[tokio::test]
async fn write_limit_throttles_writes() {
    // 3 writes per 150 s; at 100x the window is 1.5 s real.
    let s = start_with(|c| {
        c.limits.writes_per_150s = 3;
        c.time_scale = 100.0;
    })
    .await;
    let tok = token(&s).await;
    let users = [
        "liam.o'connor@northwind.example",
        "hyper.link@northwind.example",
        "matheo.durand@northwind.example",
    ];
    for u in users {
        assert_eq!(patch_state(&s, &tok, u, "enabled").await.status(), 204);
    }
    let r = patch_state(&s, &tok, "juergen.weiss@northwind.example", "enabled").await;
    assert_eq!(r.status(), 429);
    let ra = retry_after(r.headers());
    assert!(ra > 0.0 && ra <= 1.5, "{ra}");
    assert_eq!(
        s.user_state("juergen.weiss@northwind.example").unwrap(),
        "disabled"
    );
    // Reads still pass.
    assert_eq!(
        get(
            &s,
            &tok,
            "/beta/users/juergen.weiss@northwind.example/authentication/requirements"
        )
        .await
        .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs_f64(ra + 0.1)).await;
    assert_eq!(
        patch_state(&s, &tok, "juergen.weiss@northwind.example", "enabled")
            .await
            .status(),
        204
    );
    assert_eq!(s.counters().writes, 4);
}

#[tokio::test]
async fn tenant_write_limit_spans_all_apps() {
    let s = start_with(|c| {
        c.limits.tenant_writes_per_300s = 2;
        c.tenant.clients[1]
            .roles
            .push("Policy.ReadWrite.AuthenticationMethod".into());
    })
    .await;
    let a = token(&s).await;
    let b = token_of(
        &s,
        sim::SIM_READONLY_CLIENT_ID,
        sim::SIM_READONLY_CLIENT_SECRET,
    )
    .await;
    assert_eq!(
        patch_state(&s, &a, "liam.o'connor@northwind.example", "enabled")
            .await
            .status(),
        204
    );
    assert_eq!(
        patch_state(&s, &b, "hyper.link@northwind.example", "enabled")
            .await
            .status(),
        204
    );
    assert_eq!(
        patch_state(&s, &a, "matheo.durand@northwind.example", "enabled")
            .await
            .status(),
        429
    );
    assert_eq!(
        patch_state(&s, &b, "matheo.durand@northwind.example", "enabled")
            .await
            .status(),
        429
    );
}
