//! The simulator's request ids, request log, inspection API (`/_sim/…`) and counters.

use serde_json::Value;

use super::sim_common::{http, json_of, start, start_with, token};

#[tokio::test]
async fn request_ids_are_sent_and_client_request_id_echoed() {
    let s = start().await;
    let tok = token(&s).await;
    let r = http()
        .get(format!("{}/v1.0/users/nobody@northwind.example", s.url()))
        .bearer_auth(&tok)
        .header("client-request-id", "0b0b0b0b-1111-4222-8333-444444444444")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["client-request-id"],
        "0b0b0b0b-1111-4222-8333-444444444444"
    );
    let rid = r.headers()["request-id"].to_str().unwrap().to_string();
    let v = json_of(r).await;
    assert_eq!(v["error"]["innerError"]["request-id"], rid.as_str());
    assert_eq!(
        v["error"]["innerError"]["client-request-id"],
        "0b0b0b0b-1111-4222-8333-444444444444"
    );
    let log = s.request_log();
    let last = log.last().unwrap();
    assert_eq!(last.status, 404);
    assert_eq!(last.request_id, rid);
    // The same over HTTP.
    let v: Value = http()
        .get(format!("{}/_sim/log", s.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v.as_array().unwrap().last().unwrap()["request_id"],
        rid.as_str()
    );
    let v: Value = http()
        .get(format!("{}/_sim/state", s.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 17);
    assert_eq!(v[0]["perUserMfaState"], "disabled");
    let v: Value = http()
        .post(format!("{}/_sim/reset-counters", s.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["reset"], true);
    assert_eq!(s.counters().requests, 0);
}

#[tokio::test]
async fn peak_concurrency_is_counted() {
    let s = start_with(|c| {
        c.faults.latency_min_ms = 200;
        c.faults.latency_max_ms = 200;
    })
    .await;
    let tok = token(&s).await;
    let url = format!("{}/v1.0/users/zoe.lindqvist@northwind.example", s.url());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (url, tok) = (url.clone(), tok.clone());
            tokio::spawn(async move { http().get(url).bearer_auth(tok).send().await.unwrap() })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap().status(), 200);
    }
    assert!(s.counters().peak_concurrency >= 2, "{:?}", s.counters());
}
