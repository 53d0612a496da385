//! A server on a free loopback port with its own SQLite store, and tokens for it.

#![allow(dead_code)]

pub mod browser;

use std::sync::Arc;
use tribunal_server::{AppState, ServerOptions};
use tribunal_store::Store;

pub struct TestServer {
    pub url: String,
    pub state: Arc<AppState>,
    pub store: Store,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(options: ServerOptions) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        Self::start_with(store, dir, options).await
    }

    /// A server whose default project reads the configuration file `config` (whose folder
    /// the caller keeps for the server's lifetime).
    pub async fn start_for(config: &std::path::Path) -> TestServer {
        Self::start(ServerOptions {
            projects: vec![tribunal_server::ProjectSpec {
                name: "default".into(),
                config: Some(config.to_owned()),
                ..Default::default()
            }],
            ..ServerOptions::default()
        })
        .await
    }

    pub async fn start_with(
        store: Store,
        dir: tempfile::TempDir,
        options: ServerOptions,
    ) -> TestServer {
        let (state, background) = tribunal_server::start(store.clone(), options)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(tribunal_server::serve(
            listener,
            state.clone(),
            background,
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            url,
            state,
            store,
            dir,
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// `n` servers on the database at `url`, each with a store (connections) of its own, as
    /// processes sharing one PostgreSQL database are.
    pub async fn on_database(url: &str, n: usize) -> Vec<TestServer> {
        let mut servers = Vec::with_capacity(n);
        for _ in 0..n {
            let store = Store::open(url).await.unwrap();
            servers.push(
                Self::start_with(
                    store,
                    tempfile::tempdir().unwrap(),
                    ServerOptions::default(),
                )
                .await,
            );
        }
        servers
    }

    pub async fn token(&self, project: &str, role: &str) -> String {
        tribunal_server::auth::create_token(&self.store, project, role, "test")
            .await
            .unwrap()
            .1
    }

    /// Graceful shutdown; waits for the server to finish.
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            d.await.unwrap().unwrap();
        }
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder().no_gzip().build().unwrap()
    }
}

/// A GET or POST (with a JSON body) as `token`: the status and the answer as JSON (a body
/// that is not JSON comes back as a JSON string).
pub async fn call(
    url: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let c = TestServer::client();
    let u = format!("{url}{path}");
    let r = match method {
        "POST" => c.post(u).json(&body.unwrap_or(serde_json::json!({}))),
        _ => c.get(u),
    };
    let r = r.bearer_auth(token).send().await.unwrap();
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        st,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}
