//! `test-plugin`: a Midge plugin as a separate process, for end-to-end tests that need a real
//! process (to SIGSTOP it, for example). Built with the `midge-plugin` SDK.
//!
//! ```text
//! test-plugin [--port N] [--verdict allow|deny|ignore]
//! ```
//!
//! Listens on `127.0.0.1:N` (default 0: any free port), prints `listening ADDR` once bound, then
//! one line per call (`auth CLIENT_ID`, `topic ACTION TOPIC`), and answers every
//! authentication and topic check with the verdict (default `allow`), uncached. Stops on
//! SIGTERM or SIGINT.

use std::time::Duration;

use midge_plugin::{
    AuthRequest, Authenticator, Decision, Server, Status, TopicChecker, TopicRequest, Verdict,
};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

struct Fixed(Verdict);

impl Authenticator for Fixed {
    async fn authenticate(&self, req: AuthRequest) -> Result<Decision, Status> {
        println!("auth {}", req.client_id);
        Ok(self.0.clone().into())
    }
}

impl TopicChecker for Fixed {
    async fn check_topic(&self, req: TopicRequest) -> Result<Decision, Status> {
        println!("topic {:?} {}", req.action, req.topic);
        Ok(self.0.clone().into())
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "test-plugin: {problem}\nusage: test-plugin [--port N] [--verdict allow|deny|ignore]"
    );
    std::process::exit(2);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut port = 0u16;
    let mut verdict = Verdict::Allow;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--port" => port = value.parse().unwrap_or_else(|_| usage("bad --port")),
            "--verdict" => {
                verdict = match value.as_str() {
                    "allow" => Verdict::Allow,
                    "deny" => Verdict::Deny("denied by test-plugin".into()),
                    "ignore" => Verdict::Ignore,
                    _ => usage("bad --verdict"),
                }
            }
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| usage(&format!("cannot listen on port {port}: {e}")));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| usage(&format!("no local address: {e}")));
    println!("listening {addr}");
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler");
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    let result = Server::new("test-plugin", "1.0.0")
        .authenticator(Fixed(verdict.clone()))
        .topic_checker(Fixed(verdict))
        .shutdown_grace(Duration::from_millis(500))
        .serve_with_listener(listener, stop)
        .await;
    if let Err(e) = result {
        eprintln!("test-plugin: {e}");
        std::process::exit(1);
    }
}
