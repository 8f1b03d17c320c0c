//! Where new tokens come from: an HTTP refresh protocol (OAuth2 or custom), sent by the
//! adapter's own token client, or a closure.

use reauth_core::{RefreshError, RefreshOutcome, RefreshProtocol, RefreshToken, TokenSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future returned by a refresh closure.
pub type RefreshFuture = Pin<Box<dyn Future<Output = Result<TokenSet, RefreshError>> + Send>>;

type RefreshFn = dyn Fn(Option<RefreshToken>) -> RefreshFuture + Send + Sync;

/// A refresh source: a protocol the adapter sends over HTTP, or the application's closure.
#[derive(Clone)]
pub enum Source {
    /// Sent by the adapter's token client.
    Protocol(Arc<dyn RefreshProtocol>),
    /// The application's own refresh.
    Closure(Arc<RefreshFn>),
}

impl Source {
    /// A closure source.
    pub fn closure<F, Fut>(f: F) -> Self
    where
        F: Fn(Option<RefreshToken>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<TokenSet, RefreshError>> + Send + 'static,
    {
        Source::Closure(Arc::new(move |rt| Box::pin(f(rt))))
    }

    /// Whether the protocol needs a refresh token; `None` for a closure (the config says).
    pub fn requires_refresh_token(&self) -> Option<bool> {
        match self {
            Source::Protocol(p) => Some(p.requires_refresh_token()),
            Source::Closure(_) => None,
        }
    }

    /// Runs one refresh: the closure, or `over_http` with the protocol.
    pub async fn refresh<'a, F>(
        &'a self,
        refresh_token: Option<RefreshToken>,
        over_http: impl FnOnce(&'a dyn RefreshProtocol, Option<RefreshToken>) -> F,
    ) -> RefreshOutcome
    where
        F: Future<Output = RefreshOutcome>,
    {
        match self {
            Source::Closure(f) => match f(refresh_token).await {
                Ok(tokens) => RefreshOutcome::Success(tokens),
                Err(e) => RefreshOutcome::Failed(e),
            },
            Source::Protocol(p) => over_http(p.as_ref(), refresh_token).await,
        }
    }
}
