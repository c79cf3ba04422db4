//! The simulator's `$batch`: limits, ids, every item run and throttled on its own, shuffled
//! answers, `dependsOn`.

use mfa_bulk::sim::SimHandle;
use serde_json::{json, Value};

use super::sim_common::{http, json_of, start, start_with, token};

fn get_items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": (i + 1).to_string(), "method": "GET", "url": "/users/zoe.lindqvist@northwind.example?$select=id"}))
        .collect()
}

async fn batch(s: &SimHandle, tok: &str, ver: &str, requests: Vec<Value>) -> reqwest::Response {
    http()
        .post(format!("{}/{ver}/$batch", s.url()))
        .bearer_auth(tok)
        .json(&json!({ "requests": requests }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn batch_limits_and_unique_ids() {
    let s = start().await;
    let tok = token(&s).await;
    let r = batch(&s, &tok, "v1.0", get_items(21)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["error"]["code"], "BadRequest");
    assert_eq!(batch(&s, &tok, "v1.0", get_items(20)).await.status(), 200);
    let mut dup = get_items(3);
    dup[2]["id"] = json!("1");
    assert_eq!(batch(&s, &tok, "v1.0", dup).await.status(), 400);
    // Nothing of a refused batch ran.
    assert_eq!(s.counters().requests, 20);
}

#[tokio::test]
async fn batch_runs_each_item_and_answers_in_shuffled_order() {
    let s = start().await;
    let tok = token(&s).await;
    let users = [
        "zoe.lindqvist@northwind.example",
        "matheo.durand@northwind.example",
        "liam.o'connor@northwind.example",
        "oskar.berg@northwind.example",
        "hyper.link@northwind.example",
        "juergen.weiss@northwind.example",
    ];
    let requests: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({"id": format!("{}", i + 1), "method": "PATCH",
            "url": format!("/users/{u}/authentication/requirements"),
            "headers": {"Content-Type": "application/json"},
            "body": {"perUserMfaState": "enabled"}})
        })
        .collect();
    let r = batch(&s, &tok, "beta", requests.clone()).await;
    assert_eq!(r.status(), 200);
    let v = json_of(r).await;
    let resp = v["responses"].as_array().unwrap();
    assert_eq!(resp.len(), 6);
    let status_of = |id: &str| {
        resp.iter().find(|x| x["id"] == id).unwrap()["status"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(status_of("1"), 204);
    assert_eq!(status_of("4"), 404);
    assert_eq!(
        s.user_state("zoe.lindqvist@northwind.example").unwrap(),
        "enforced"
    );
    assert_eq!(
        s.user_state("liam.o'connor@northwind.example").unwrap(),
        "enabled"
    );

    // Not in request order, at least once in five tries (fixed seed).
    let mut any_shuffled = false;
    for _ in 0..5 {
        let v = json_of(batch(&s, &tok, "v1.0", get_items(10)).await).await;
        let ids: Vec<String> = v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect();
        let in_order: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort_by_key(|x| x.parse::<u32>().unwrap());
        assert_eq!(sorted, in_order);
        any_shuffled |= ids != in_order;
    }
    assert!(any_shuffled);

    // Beta-only paths inside a v1.0 batch answer 404; a body without Content-Type is 400.
    let v = json_of(
        batch(&s, &tok, "v1.0", vec![
            json!({"id": "a", "method": "GET", "url": "/users/zoe.lindqvist@northwind.example/authentication/requirements"}),
            json!({"id": "b", "method": "PATCH", "url": "/users/zoe.lindqvist@northwind.example/authentication/requirements", "body": {"perUserMfaState": "enabled"}}),
        ])
        .await,
    )
    .await;
    for x in v["responses"].as_array().unwrap() {
        let want = if x["id"] == "a" { 404 } else { 400 };
        assert_eq!(x["status"], want, "{x}");
    }
}

#[tokio::test]
async fn batch_items_are_throttled_one_by_one() {
    let s = start_with(|c| c.limits.ru_per_10s = Some(5)).await;
    let tok = token(&s).await;
    let r = batch(&s, &tok, "v1.0", get_items(8)).await;
    assert_eq!(r.status(), 200);
    let v = json_of(r).await;
    let resp = v["responses"].as_array().unwrap();
    let ok = resp.iter().filter(|x| x["status"] == 200).count();
    let throttled: Vec<&Value> = resp.iter().filter(|x| x["status"] == 429).collect();
    assert_eq!(ok, 5);
    assert_eq!(throttled.len(), 3);
    for t in throttled {
        let ra: f64 = t["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ra >= 1.0);
        assert_eq!(t["body"]["error"]["code"], "TooManyRequests");
    }
}

#[tokio::test]
async fn batch_depends_on_a_failed_item_answers_424() {
    let s = start().await;
    let tok = token(&s).await;
    let v = json_of(
        batch(&s, &tok, "beta", vec![
            json!({"id": "1", "method": "GET", "url": "/users/oskar.berg@northwind.example/authentication/requirements"}),
            json!({"id": "2", "method": "PATCH", "url": "/users/oskar.berg@northwind.example/authentication/requirements",
                "dependsOn": ["1"], "headers": {"Content-Type": "application/json"}, "body": {"perUserMfaState": "enabled"}}),
            json!({"id": "3", "method": "GET", "url": "/users/zoe.lindqvist@northwind.example/authentication/requirements"}),
            json!({"id": "4", "method": "PATCH", "url": "/users/zoe.lindqvist@northwind.example/authentication/requirements",
                "dependsOn": ["3"], "headers": {"Content-Type": "application/json"}, "body": {"perUserMfaState": "enabled"}}),
        ])
        .await,
    )
    .await;
    let status = |id: &str| {
        v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()["status"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        (status("1"), status("2"), status("3"), status("4")),
        (404, 424, 200, 204)
    );
    // Depending on a later or unknown id refuses the batch.
    let r = batch(
        &s,
        &tok,
        "beta",
        vec![
            json!({"id": "1", "method": "GET", "url": "/users/x@y", "dependsOn": ["2"]}),
            json!({"id": "2", "method": "GET", "url": "/users/x@y"}),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
}
