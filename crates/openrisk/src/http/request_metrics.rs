//! RED metrics for every request: `http_server_request_duration_seconds{method,route,status}`,
//! `http_server_active_requests`, and body sizes where they are known without reading the body.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::http::Response;
use futures_util::future::BoxFuture;
use http_body::Body as _;
use metrics::{Gauge, Histogram};
use tower::Service;

/// The route label of requests that match no route, so that scanners cannot mint series.
pub const UNMATCHED: &str = "unmatched";

/// Buckets (seconds): cache hits take well under a millisecond, misses tens of milliseconds.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets (bytes) for request and response bodies.
pub const SIZE_BUCKETS: [f64; 8] = [
    100.0,
    1_000.0,
    10_000.0,
    100_000.0,
    1_000_000.0,
    10_000_000.0,
    100_000_000.0,
    1e9,
];

/// (method, route, status). Route templates come from the router, a fixed set, so each is leaked
/// once to key the map without an allocation per request.
type Labels<'a> = (&'static str, &'a str, u16);

struct Handles {
    duration: Histogram,
    request_size: Histogram,
    response_size: Histogram,
}

/// One router's handles, taken from the recorder in use when first needed (the application's own).
#[derive(Default)]
struct Registered {
    /// Per label set: the registry lookup builds a key from the labels on every call, which would
    /// cost a cache hit more than the rest of its metrics together.
    handles: RwLock<HashMap<Labels<'static>, Handles>>,
    active: OnceLock<Gauge>,
}

/// The layer. A plain service rather than `axum::middleware::from_fn`, which clones and boxes
/// the whole inner stack on every request, and generic over the response body so that it joins
/// the other layers without a boxing layer of its own.
#[derive(Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    registered: Arc<Registered>,
}

#[derive(Clone, Default)]
pub struct RequestMetricsLayer {
    registered: Arc<Registered>,
}

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics {
            inner,
            registered: self.registered.clone(),
        }
    }
}

impl<S, B> Service<Request> for RequestMetrics<S>
where
    S: Service<Request, Response = Response<B>>,
    S::Future: Send + 'static,
    B: http_body::Body,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<B>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = method_label(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        // A body read through a time-out wrapper does not tell its size: its header does.
        let request_size = request.body().size_hint().exact().or_else(|| {
            request
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        });
        let registered = self.registered.clone();
        let active = Active::enter(&registered);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            drop(active);
            let status = response.status().as_u16();
            let response_size = response.body().size_hint().exact();
            let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
            registered.with_handles((method, route, status), |handles| {
                handles.duration.record(started.elapsed().as_secs_f64());
                if let Some(bytes) = request_size.filter(|&bytes| bytes > 0) {
                    handles.request_size.record(bytes as f64);
                }
                if let Some(bytes) = response_size {
                    handles.response_size.record(bytes as f64);
                }
            });
            Ok(response)
        })
    }
}

impl Registered {
    fn with_handles(&self, labels: Labels<'_>, record: impl FnOnce(&Handles)) {
        {
            let registered = self
                .handles
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(handles) = registered.get(&labels) {
                return record(handles);
            }
        }
        let mut registered = self
            .handles
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(handles) = registered.get(&labels) {
            return record(handles);
        }
        let (method, route, status) = labels;
        let route: &'static str = Box::leak(route.into());
        record(
            registered
                .entry((method, route, status))
                .or_insert(register(labels)),
        );
    }

    fn active(&self) -> &Gauge {
        self.active
            .get_or_init(|| metrics::gauge!("http_server_active_requests"))
    }
}

/// Standard methods by name; any other shares one label value, so clients cannot mint series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    }
}

fn register((method, route, status): Labels<'_>) -> Handles {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    Handles {
        duration: metrics::histogram!("http_server_request_duration_seconds", &labels),
        request_size: metrics::histogram!("http_server_request_body_size_bytes", &labels),
        response_size: metrics::histogram!("http_server_response_body_size_bytes", &labels),
    }
}

/// Counts a request as active until dropped, also when the client goes away mid-request.
struct Active(Gauge);

impl Active {
    fn enter(registered: &Registered) -> Self {
        let gauge = registered.active().clone();
        gauge.increment(1.0);
        Active(gauge)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A recorder shared by everything an application runs (see `telemetry::metrics`).
pub type SharedRecorder = Arc<dyn metrics::Recorder + Send + Sync>;

pin_project_lite::pin_project! {
    /// A future polled with `recorder` in scope: the `metrics` macros inside record into it.
    pub struct InScope<F> {
        recorder: SharedRecorder,
        #[pin]
        future: F,
    }
}

impl<F> InScope<F> {
    pub fn new(recorder: SharedRecorder, future: F) -> Self {
        InScope { recorder, future }
    }
}

impl<F: Future> Future for InScope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        metrics::with_local_recorder(this.recorder.as_ref(), || this.future.poll(cx))
    }
}

/// Serves each request with the application's recorder in scope.
#[derive(Clone)]
pub struct RecorderScopeLayer(pub SharedRecorder);

impl<S> tower::Layer<S> for RecorderScopeLayer {
    type Service = RecorderScope<S>;

    fn layer(&self, inner: S) -> RecorderScope<S> {
        RecorderScope {
            recorder: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct RecorderScope<S> {
    recorder: SharedRecorder,
    inner: S,
}

impl<S: Service<R>, R> Service<R> for RecorderScope<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = InScope<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> InScope<S::Future> {
        let inner = &mut self.inner;
        let future = metrics::with_local_recorder(self.recorder.as_ref(), || inner.call(request));
        InScope::new(self.recorder.clone(), future)
    }
}
