//! For tests and benchmarks (feature `testing`): a local HTTP server on a thread of its
//! own, so a model provider's protocol can be played by an axum router.

use std::net::SocketAddr;

/// Serves `app` on a free loopback port from a thread with its own runtime, for the rest of
/// the process, and returns the address.
pub fn serve(app: axum::Router) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test server");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            tx.send(listener.local_addr().expect("a bound address"))
                .expect("the caller waits for the address");
            axum::serve(listener, app)
                .await
                .expect("the test server runs");
        });
    });
    rx.recv().expect("the test server starts")
}
