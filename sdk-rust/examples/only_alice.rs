//! The smallest useful plugin: only user `alice` may connect. `cargo run --example only_alice`
use midge_plugin::{AuthRequest, Authenticator, Decision, Server, Status};

struct OnlyAlice;

impl Authenticator for OnlyAlice {
    async fn authenticate(&self, req: AuthRequest) -> Result<Decision, Status> {
        match req.username.as_deref() {
            Some("alice") => Ok(Decision::allow()),
            _ => Ok(Decision::deny("only alice")),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), midge_plugin::ServeError> {
    let addr = "127.0.0.1:50051".parse().expect("valid address");
    let ctrl_c = async { tokio::signal::ctrl_c().await.expect("signal handler") };
    Server::new("only-alice", "1.0.0")
        .authenticator(OnlyAlice)
        .serve(addr, ctrl_c)
        .await
}
