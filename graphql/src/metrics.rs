//! Prometheus metrics (`GET /metrics`): requests, their latency, appends, projection lag.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<Labels, Counter>,
    latency: Histogram,
    appends: Counter,
    appended_events: Counter,
    lag: Family<Labels, Gauge>,
    position: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("orgline");
        let requests = Family::<Labels, Counter>::default();
        let latency = Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        let appends = Counter::default();
        let appended_events = Counter::default();
        let lag = Family::<Labels, Gauge>::default();
        let position = Family::<Labels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register("appends", "Appends decided by the API", appends.clone());
        registry.register(
            "appended_events",
            "Events appended by the API",
            appended_events.clone(),
        );
        registry.register(
            "projection_lag_events",
            "Events between the log head and a projection",
            lag.clone(),
        );
        registry.register(
            "projection_position",
            "Last position a projection covers",
            position.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            appends,
            appended_events,
            lag,
            position,
        }
    }
}

impl Metrics {
    pub fn record_request(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("route".into(), route.into()),
                ("status".into(), status.to_string()),
            ])
            .inc();
        self.latency.observe(seconds);
    }

    pub fn record_append(&self, events: usize) {
        if events > 0 {
            self.appends.inc();
            self.appended_events.inc_by(events as u64);
        }
    }

    /// The text exposition, with projection gauges read now.
    pub fn render(&self, projections: &[projections::ProjectionStatus]) -> String {
        for p in projections {
            let l = vec![("projection".to_owned(), p.name.to_owned())];
            self.lag
                .get_or_create(&l)
                .set(i64::try_from(p.lag).unwrap_or(i64::MAX));
            self.position
                .get_or_create(&l)
                .set(i64::try_from(p.position).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = encode(&mut out, &r);
        }
        out
    }
}
