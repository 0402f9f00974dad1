//! The runtime registry is bounded: devices that stay offline are forgotten.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_churn_of_one_off_devices_is_forgotten_once_they_stay_offline() {
    const FORGET: Duration = Duration::from_millis(400);
    let app = spawn_app_with(|c| c.forget_offline_after = FORGET).await;
    let online = app.runtime("dev-stays").await;
    for i in 0..50 {
        assert_eq!(app.register_as(Some(RUNTIME_TOKEN), &format!("one-off-{i}")).await.status(), 200);
    }
    let gone = app.runtime("dev-leaves").await;
    let mut sse = app.events("?types=runtime_offline").await;
    gone.close();
    sse.next_of("runtime_offline").await;
    assert_eq!(ids(&app.get_json("/runtimes").await).len(), 52);
    // Forgetting is by age: nothing to await but time.
    tokio::time::sleep(FORGET + Duration::from_millis(100)).await;
    assert_eq!(app.register_as(Some(RUNTIME_TOKEN), "dev-new").await.status(), 200);
    assert_eq!(
        ids(&app.get_json("/runtimes").await),
        ["dev-new", "dev-stays"],
        "offline and never-connected devices are gone"
    );
    drop(online);
}
