//! Switchable, seeded fault injection for both vendors (filled in by the engine issue).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Which faults to inject, and with which seed.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {}

/// The live fault injector.
#[derive(Debug)]
pub struct Faults {
    plan: std::sync::Mutex<FaultPlan>,
}

impl Faults {
    pub fn new(plan: FaultPlan) -> Arc<Self> {
        Arc::new(Self {
            plan: std::sync::Mutex::new(plan),
        })
    }

    /// Replaces the plan while the server runs.
    pub fn set(&self, plan: FaultPlan) {
        *self.plan.lock().unwrap_or_else(|e| e.into_inner()) = plan;
    }
}

/// The middleware: currently passes every request through.
pub async fn inject(State(_faults): State<Arc<Faults>>, request: Request, next: Next) -> Response {
    next.run(request).await
}
