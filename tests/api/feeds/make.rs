//! Making, listing and deleting feeds: who may, what the answers hold, bad
//! input, and the limits.

use serde_json::json;

use super::*;

#[tokio::test]
async fn the_admin_makes_a_feed_whose_url_is_answered_once_and_listed_without_its_secret() {
    let app = spawn_app().await;
    let body = json!({"filter": {"conversation_id": "conv-a", "types": ["turn_finished"]}, "name": "n8n: replies"});
    let feed = make(&app, ADMIN_TOKEN, body).await;
    let id = feed["id"].as_str().unwrap();
    assert!(id.starts_with("fd_") && id.len() == 19, "{feed}");
    let secret = credential(&feed);
    assert!(secret.starts_with(&format!("{id}_")), "{feed}");
    assert_eq!(feed["filter"], json!({"conversation_id": "conv-a", "types": ["turn_finished"]}));
    assert_eq!((feed["owner"].as_str(), feed["expires_at"].as_u64()), (Some("admin"), None), "until deleted");
    assert_eq!(feed["name"], "n8n: replies");
    let listed = app.get_as(Some(ADMIN_TOKEN), "/feeds").await;
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert!(listed[0].get("url").is_none(), "{listed}");
    assert!(!listed.to_string().contains(&secret[id.len()..]), "never the secret again: {listed}");
}

#[tokio::test]
async fn the_client_token_may_not_make_list_or_delete_feeds() {
    let app = spawn_app().await;
    let feed = make(&app, ADMIN_TOKEN, json!({})).await;
    let problems = [
        app.post("/feeds", json!({})).await,
        app.get("/feeds").await,
        app.http
            .delete(app.url(&format!("/feeds/{}", feed["id"].as_str().unwrap())))
            .bearer_auth(CLIENT_TOKEN)
            .send()
            .await
            .unwrap(),
    ];
    for res in problems {
        let problem = assert_problem(res, 403).await;
        assert!(problem["detail"].as_str().unwrap().contains("admin token or an end user's token"), "{problem}");
    }
    assert_eq!(open(&app, &feed, "").await.status(), 200, "not deleted");
}

async fn delete(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.http.delete(app.url(&format!("/feeds/{id}"))).bearer_auth(token).send().await.unwrap()
}

async fn listed(app: &TestApp, token: &str) -> Vec<String> {
    let res = app.get_as(Some(token), "/feeds").await;
    assert_eq!(res.status(), 200);
    let feeds: Value = res.json().await.unwrap();
    feeds.as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn an_end_user_lists_and_deletes_only_their_own_feeds_and_the_admin_everyones() {
    let app = spawn_with_users().await;
    let bob = token("bob", 600, "bob-1", ALL, json!([{"agent_id": "agent-1", "conversation_id": "conv-b"}]));
    let hers = make(&app, &alice(), conv_a()).await;
    assert_eq!(hers["owner"], "user:alice");
    let exp = hers["expires_at"].as_u64().expect("an end user's feed ends with the token");
    assert!((now() + 590..=now() + 600).contains(&exp), "{hers}");
    let his = make(&app, &bob, json!({})).await;
    let admins = make(&app, ADMIN_TOKEN, json!({})).await;
    let id = |f: &Value| f["id"].as_str().unwrap().to_owned();
    assert_eq!(listed(&app, &alice()).await, [id(&hers)]);
    let another_of_hers = token("alice", 60, "alice-2", &["read"], json!([{"agent_id": "x", "conversation_id": "y"}]));
    assert_eq!(listed(&app, &another_of_hers).await, [id(&hers)], "hers, whichever of her tokens asks");
    let mut everyone = listed(&app, ADMIN_TOKEN).await;
    everyone.sort();
    let mut all = vec![id(&hers), id(&his), id(&admins)];
    all.sort();
    assert_eq!(everyone, all);
    assert_problem(delete(&app, &bob, &id(&hers)).await, 404).await;
    assert_problem(delete(&app, &alice(), &id(&admins)).await, 404).await;
    assert_eq!(open(&app, &hers, "").await.status(), 200, "Bob could not delete it");
    assert_eq!(delete(&app, &bob, &id(&his)).await.status(), 204);
    assert_eq!(delete(&app, ADMIN_TOKEN, &id(&hers)).await.status(), 204, "the admin deletes a user's feed");
    assert_eq!(listed(&app, ADMIN_TOKEN).await, [id(&admins)]);
}

#[tokio::test]
async fn bad_bodies_ids_and_feed_urls_get_their_answers() {
    let app = spawn_app().await;
    for body in [
        json!({"filter": {"types": []}}),
        json!({"filter": {"types": ["a,b"]}}),
        json!({"filter": {"types": [" "]}}),
        json!({"filter": {"types": (0..65).map(|i| format!("t{i}")).collect::<Vec<_>>()}}),
        json!({"filter": {"conversation_id": ""}}),
        json!({"filter": {"runtime": "x".repeat(257)}}),
        json!({"filter": {"agent": "agent-1"}}),
        json!({"name": "n".repeat(257)}),
        json!({"url": "https://example.com"}),
    ] {
        let res = app.post_as(Some(ADMIN_TOKEN), "/feeds", body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
    }
    for id in ["nonsense", "fd_0123456789abcdef", "fd_0123456789abcdef_00000000000000000000000000000000"] {
        assert_problem(delete(&app, ADMIN_TOKEN, id).await, 404).await;
    }
    let feed = make(&app, ADMIN_TOKEN, json!({})).await;
    let wrong_secret = format!("{}_{}", feed["id"].as_str().unwrap(), "0".repeat(32));
    for url in ["/events?feed=garbage", "/events?feed=", &format!("/events?feed={wrong_secret}")] {
        let problem = assert_problem(app.http.get(app.url(url)).send().await.unwrap(), 401).await;
        assert!(problem["detail"].as_str().unwrap().contains("feed"), "{url}: {problem}");
    }
    let ticket: Value = app.post("/tickets", json!({})).await.json().await.unwrap();
    let both = open(&app, &feed, &format!("&ticket={}", ticket["ticket"].as_str().unwrap())).await;
    let problem = assert_problem(both, 401).await;
    assert!(problem["detail"].as_str().unwrap().contains("not both"), "{problem}");
    // Beside a header it is ignored, as a ticket is: the header decides.
    let url = app.url(feed["url"].as_str().unwrap());
    assert_problem(app.http.get(&url).bearer_auth("wrong-token-0000000000").send().await.unwrap(), 401).await;
    assert_eq!(app.http.get(&url).bearer_auth(CLIENT_TOKEN).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn feeds_beyond_the_limits_are_refused_with_409_and_none_is_forgotten() {
    let app = spawn_with_users().await;
    let mut hers = Vec::new();
    for _ in 0..10 {
        hers.push(make(&app, &alice(), conv_a()).await);
    }
    let problem = assert_problem(app.post_as(Some(&alice()), "/feeds", conv_a()).await, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("10 feeds"), "{problem}");
    for _ in 10..1000 {
        make(&app, ADMIN_TOKEN, json!({})).await;
    }
    let problem = assert_problem(app.post_as(Some(ADMIN_TOKEN), "/feeds", json!({})).await, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("1000 feeds"), "{problem}");
    assert_eq!(open(&app, &hers[0], "").await.status(), 200, "the oldest still works");
    assert_eq!(delete(&app, &alice(), hers[0]["id"].as_str().unwrap()).await.status(), 204);
    make(&app, ADMIN_TOKEN, json!({})).await;
}
