//! Enabling solution instances after Tray's wait, without holding any record up: each enable
//! is queued in the memo (so a killed run's next run does it) and run in a background task;
//! [`Enabler::finish`] awaits the tasks, then drains the queue, before the run ends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authport_core::{Memo, ProviderError};
use authport_kit::{CallFailure, Effect};
use serde_json::json;
use tokio::task::JoinSet;

use crate::client::GraphqlCall;
use crate::solution_state::{
    InstanceEntry, QueuedEnable, SOLUTION_MEMO, instance_key, queue_end_key, queue_key,
};
use crate::users::{UserRef, Users};
use crate::wire::{UpdateSolutionInstanceData, queries};

/// A background enable that failed is not final: [`Enabler::finish`] tries every queued
/// instance that is not enabled yet once more, and only that attempt counts.
fn background_result(done: Result<Result<(), String>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(())) => {}
        Ok(Err(text)) => tracing::debug!("enable to be retried when the run finishes: {text}"),
        Err(_) => tracing::debug!("an enable task stopped; retried when the run finishes"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The enables of one solution's instances.
#[derive(Debug)]
pub struct Enabler {
    solution_id: String,
    /// Tray's wait between create and enable.
    delay_ms: u64,
    memo: Arc<dyn Memo>,
    users: Arc<Users>,
    /// Serialises the queue's tail.
    queue: Mutex<()>,
    /// Only enables still waiting (finished ones are reaped on every spawn).
    enables: Mutex<JoinSet<Result<(), String>>>,
    /// How many failed, and the first reason.
    failures: Mutex<(u64, Option<String>)>,
}

impl Enabler {
    pub fn new(solution_id: &str, delay_ms: u64, memo: Arc<dyn Memo>, users: Arc<Users>) -> Self {
        Self {
            solution_id: solution_id.to_owned(),
            delay_ms,
            memo,
            users,
            queue: Mutex::new(()),
            enables: Mutex::new(JoinSet::new()),
            failures: Mutex::new((0, None)),
        }
    }

    /// Queues the enable in the memo (so a killed run's next run does it) and starts it in
    /// the background after the wait.
    pub fn enqueue(&self, owner: &str, user_id: &str, instance_id: &str) {
        let solution = self.solution_id.as_str();
        let queued = QueuedEnable {
            owner: owner.to_owned(),
            user_id: user_id.to_owned(),
            instance_id: instance_id.to_owned(),
            created_ms: now_ms(),
        };
        {
            let _queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let tail_key = queue_end_key(solution, "queue.tail");
            let tail = self.read_u64(&tail_key);
            self.memo.put(
                SOLUTION_MEMO,
                &queue_key(solution, tail),
                &serde_json::to_string(&queued).unwrap_or_default(),
            );
            self.memo
                .put(SOLUTION_MEMO, &tail_key, &(tail + 1).to_string());
        }
        let delay = Duration::from_millis(self.delay_ms);
        let users = self.users.clone();
        let memo = self.memo.clone();
        let solution = solution.to_owned();
        let mut tasks = self.enables.lock().unwrap_or_else(|e| e.into_inner());
        // Reap finished ones so the set only holds enables still waiting.
        while let Some(done) = tasks.try_join_next() {
            background_result(done);
        }
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            enable(&users, memo.as_ref(), &solution, &queued).await
        });
    }

    fn note_failure(&self, failure: String) {
        // A count and the first reason: flat however many fail.
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.0 += 1;
        failures.1.get_or_insert(failure);
    }

    fn read_u64(&self, key: &str) -> u64 {
        self.memo
            .get(SOLUTION_MEMO, key)
            .and_then(|text| text.parse().ok())
            .unwrap_or(0)
    }

    /// Awaits this run's enables, then enables whatever the queue still holds (an earlier,
    /// killed run's), each at least the wait after its create. Failures leave the instance
    /// disabled and queued for the next run, and fail this one.
    pub async fn finish(&self) -> Result<(), ProviderError> {
        loop {
            let next = {
                let mut tasks = self.enables.lock().unwrap_or_else(|e| e.into_inner());
                if tasks.is_empty() {
                    break;
                }
                // Taken out so the lock is not held across the await.
                std::mem::take(&mut *tasks)
            };
            let mut next = next;
            while let Some(done) = next.join_next().await {
                background_result(done);
            }
        }
        let sid = self.solution_id.as_str();
        let head_key = queue_end_key(sid, "queue.head");
        let head = self.read_u64(&head_key);
        let tail = self.read_u64(&queue_end_key(sid, "queue.tail"));
        let mut new_head = head;
        let mut contiguous = true;
        for n in head..tail {
            let queued: Option<QueuedEnable> = self
                .memo
                .get(SOLUTION_MEMO, &queue_key(sid, n))
                .and_then(|text| serde_json::from_str(&text).ok());
            let done = match queued {
                None => true,
                Some(queued) => {
                    let wait_until = queued.created_ms.saturating_add(self.delay_ms);
                    let now = now_ms();
                    if wait_until > now {
                        tokio::time::sleep(Duration::from_millis(wait_until - now)).await;
                    }
                    match enable(&self.users, self.memo.as_ref(), sid, &queued).await {
                        Ok(()) => true,
                        Err(text) => {
                            self.note_failure(text);
                            false
                        }
                    }
                }
            };
            contiguous &= done;
            if contiguous {
                new_head = n + 1;
            }
        }
        if new_head != head {
            self.memo
                .put(SOLUTION_MEMO, &head_key, &new_head.to_string());
        }
        let failures =
            std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner()));
        match failures {
            (_, None) => Ok(()),
            (count, Some(first)) => Err(ProviderError::transient(format!(
                "{count} solution instance(s) could not be enabled and stay disabled (the next run enables them); first: {first}"
            ))),
        }
    }
}

/// `updateSolutionInstance(enabled: true)` for a queued instance, unless the memo says it is
/// already enabled or was removed. The error text is for the run's failure message.
async fn enable(
    users: &Users,
    memo: &dyn Memo,
    solution: &str,
    queued: &QueuedEnable,
) -> Result<(), String> {
    let key = instance_key(solution, &queued.owner);
    let entry: Option<InstanceEntry> = memo
        .get(SOLUTION_MEMO, &key)
        .and_then(|text| serde_json::from_str(&text).ok());
    let name = match entry {
        Some(InstanceEntry::Created { id, name, .. }) if id == queued.instance_id => name,
        // Enabled, removed, or replaced since: nothing to do.
        _ => return Ok(()),
    };
    let user = UserRef {
        external_user_id: &queued.owner,
        name: None,
        user_id: (!queued.user_id.is_empty()).then_some(queued.user_id.as_str()),
        secrets: &[],
    };
    let variables = json!({"id": queued.instance_id});
    let enabled: Result<UpdateSolutionInstanceData, CallFailure> = users
        .graphql(
            user,
            GraphqlCall {
                document: queries::ENABLE_SOLUTION_INSTANCE,
                variables: &variables,
                effect: Effect::IdempotentWrite,
                operation: "enable solution instance",
                secrets: &[],
            },
        )
        .await;
    match enabled {
        Ok(_) => {
            let entry = InstanceEntry::Enabled {
                id: queued.instance_id.clone(),
                name,
            };
            memo.put(
                SOLUTION_MEMO,
                &key,
                &serde_json::to_string(&entry).unwrap_or_default(),
            );
            Ok(())
        }
        Err(failure) => Err(format!(
            "instance {} of owner {}: {}",
            queued.instance_id,
            queued.owner,
            failure.error.message()
        )),
    }
}
