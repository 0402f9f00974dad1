//! Webhooks in a cluster: not yet available (a later session keeps hooks
//! in Redis); every webhook endpoint says so with a `501` problem.

use serde_json::json;

use crate::harness::{Cluster, admin};

#[tokio::test]
async fn webhooks_answer_501_in_cluster_mode_saying_they_are_not_yet_available() {
    let Some(cluster) = Cluster::start("webhooks_501", 1) else { return };
    let body = json!({"url": "https://hooks.example.com/letta", "events": ["turn.finished"]});
    let res = cluster.at(1).post_as(admin(), "/webhooks", &body).await;
    assert_eq!(res.status(), 501);
    let problem: serde_json::Value = res.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("not yet available in cluster mode"), "{problem}");
}
