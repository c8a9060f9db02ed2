//! The service's own layers as plain services. axum's `from_fn` boxes the rest of the stack for
//! every request; a layer here calls it directly, which costs a cache hit one boxed future the
//! less per layer.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures_util::future::BoxFuture;
use tower::{Layer, Service, ServiceExt};

/// The rest of the stack below a layer.
pub trait Inner:
    Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
}

impl<S> Inner for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Runs the rest of the stack on `request`.
pub async fn run(inner: impl Inner, request: Request) -> Response {
    match inner.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// A layer's work: what it does with a request, given the rest of the stack.
pub trait Middleware: Send + Sync + 'static {
    fn handle<S: Inner>(self: Arc<Self>, request: Request, inner: S)
    -> impl Future<Output = Response> + Send;
}

/// `M` as a tower layer.
pub struct MiddlewareLayer<M>(pub Arc<M>);

impl<M> Clone for MiddlewareLayer<M> {
    fn clone(&self) -> Self {
        MiddlewareLayer(self.0.clone())
    }
}

impl<M, S> Layer<S> for MiddlewareLayer<M> {
    type Service = MiddlewareService<M, S>;

    fn layer(&self, inner: S) -> Self::Service {
        MiddlewareService {
            middleware: self.0.clone(),
            inner,
        }
    }
}

pub struct MiddlewareService<M, S> {
    middleware: Arc<M>,
    inner: S,
}

impl<M, S: Clone> Clone for MiddlewareService<M, S> {
    fn clone(&self) -> Self {
        MiddlewareService {
            middleware: self.middleware.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<M: Middleware, S: Inner> Service<Request> for MiddlewareService<M, S> {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The rest of the stack is made ready when it runs (`run`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (middleware, inner) = (self.middleware.clone(), self.inner.clone());
        Box::pin(async move { Ok(middleware.handle(request, inner).await) })
    }
}
