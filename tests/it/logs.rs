//! CloudWatch Logs over HTTP: the log shipping agent (`citadel_logs::agent`) against the real
//! binary, checking that lines arrive once, in order, and that a restarted agent resumes from its
//! saved offsets without loss or duplication.
//!
//! Needs `citadel-logs` in the server crate's dependencies (or dev-dependencies) and the Logs
//! service registered in the pipeline.

use crate::harness::{self, Server};
use citadel_logs::AgentCredentials;
use citadel_logs::agent::{AgentConfig, LogsClient, ship_once};
use serde_json::json;
use std::io::Write;

fn credentials() -> AgentCredentials {
    AgentCredentials {
        access_key_id: harness::ROOT_ACCESS_KEY_ID.into(),
        secret_access_key: harness::ROOT_SECRET_ACCESS_KEY.into(),
        session_token: None,
        region: "us-east-1".into(),
    }
}

async fn messages(client: &LogsClient) -> Vec<String> {
    let out = client
        .call(
            "GetLogEvents",
            &json!({"logGroupName": "/agent/it", "logStreamName": "host-1", "startFromHead": true}),
        )
        .await
        .expect("GetLogEvents");
    out["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn agent_ships_each_line_once_across_restarts() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    let config_path = dir.path().join("agent.json");
    std::fs::write(
        &config_path,
        json!([{"file": log, "log_group": "/agent/it", "log_stream": "host-1"}]).to_string(),
    )
    .expect("config");
    std::fs::write(&log, "one\ntwo\nthree-partial").expect("log");

    let client = LogsClient::new(&server.endpoint, credentials()).expect("client");
    let config = AgentConfig::load(&config_path).expect("load");
    assert_eq!(ship_once(&config, &client).await.expect("ship"), 2);
    assert_eq!(messages(&client).await, vec!["one", "two"]);

    // The partial line completes; a "restarted" agent (fresh config and client) resumes.
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).expect("open");
    file.write_all(b"\nfour\n").expect("append");
    drop(file);
    let restarted = AgentConfig::load(&config_path).expect("load");
    let client2 = LogsClient::new(&server.endpoint, credentials()).expect("client");
    assert_eq!(ship_once(&restarted, &client2).await.expect("ship"), 2);
    assert_eq!(
        ship_once(&restarted, &client2).await.expect("ship"),
        0,
        "nothing is sent twice"
    );
    assert_eq!(messages(&client).await, vec!["one", "two", "three-partial", "four"]);

    // A failed delivery saves no offset: with a wrong secret nothing is shipped or recorded.
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).expect("open");
    file.write_all(b"five\n").expect("append");
    drop(file);
    let mut bad = credentials();
    bad.secret_access_key = "wrong".into();
    let bad_client = LogsClient::new(&server.endpoint, bad).expect("client");
    assert!(ship_once(&restarted, &bad_client).await.is_err());
    assert_eq!(ship_once(&restarted, &client2).await.expect("ship"), 1);
    assert_eq!(
        messages(&client).await,
        vec!["one", "two", "three-partial", "four", "five"]
    );
}
