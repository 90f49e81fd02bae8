//! One DevTools websocket: commands answered in order of their ids, events kept until a caller
//! waits for them. Everything waits on a deadline, so a missing answer fails the test with a
//! message instead of hanging it.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{BrowserError, Result};
use crate::protocol::{Incoming, classify, command, is_event};

/// Events nobody waited for are dropped past this many, oldest first (a page's lifecycle sends
/// a handful per navigation; the bound only keeps a long test from growing without end).
const KEPT_EVENTS: usize = 1_000;

#[derive(Debug)]
pub(crate) struct Connection {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    events: VecDeque<Value>,
    pub(crate) timeout: Duration,
}

impl Connection {
    pub(crate) async fn open(address: &str, timeout: Duration) -> Result<Self> {
        let connect = tokio_tungstenite::connect_async(address);
        let (socket, _response) = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| timed_out("the DevTools websocket", timeout))?
            .map_err(|error| BrowserError::WebSocket(Box::new(error)))?;
        Ok(Self {
            socket,
            next_id: 1,
            events: VecDeque::new(),
            timeout,
        })
    }

    /// Sends `method` and waits for its answer; events that arrive meanwhile are kept.
    pub(crate) async fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let text = command(id, session, method, params).to_string();
        self.socket
            .send(Message::text(text))
            .await
            .map_err(|error| BrowserError::WebSocket(Box::new(error)))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.receive(deadline, method).await? {
                Incoming::Answer {
                    id: answered,
                    outcome,
                } if answered == id => {
                    return outcome.map_err(|message| BrowserError::Protocol {
                        method: method.to_owned(),
                        message,
                    });
                }
                Incoming::Event(event) => self.keep(event),
                Incoming::Answer { .. } | Incoming::Other => {}
            }
        }
    }

    /// Forgets the kept `method` events of `session`, so that the next wait sees only a new one.
    pub(crate) fn forget_events(&mut self, session: &str, method: &str) {
        self.events
            .retain(|event| !is_event(event, session, method));
    }

    /// The next `method` event of `session`: a kept one, or the next to arrive before the timeout.
    pub(crate) async fn wait_for_event(&mut self, session: &str, method: &str) -> Result<Value> {
        if let Some(position) = self
            .events
            .iter()
            .position(|event| is_event(event, session, method))
        {
            return Ok(self.events.remove(position).unwrap_or_default());
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Incoming::Event(event) = self.receive(deadline, method).await? {
                if is_event(&event, session, method) {
                    return Ok(event);
                }
                self.keep(event);
            }
        }
    }

    fn keep(&mut self, event: Value) {
        if self.events.len() == KEPT_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// The next JSON message, or a timeout naming what was awaited.
    async fn receive(&mut self, deadline: Instant, waiting_for: &str) -> Result<Incoming> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| timed_out(waiting_for, self.timeout))?;
            let message = match next {
                None => return Err(BrowserError::Closed),
                Some(Err(error)) => return Err(BrowserError::WebSocket(Box::new(error))),
                Some(Ok(message)) => message,
            };
            match message {
                Message::Text(text) => {
                    // Chromium sends only JSON; a line that is not is skipped, not trusted.
                    if let Ok(value) = serde_json::from_str::<Value>(text.as_str()) {
                        return Ok(classify(value));
                    }
                }
                Message::Close(_) => return Err(BrowserError::Closed),
                _ => {}
            }
        }
    }
}

pub(crate) fn timed_out(waiting_for: &str, timeout: Duration) -> BrowserError {
    BrowserError::Timeout {
        waiting_for: waiting_for.to_owned(),
        seconds: timeout.as_secs(),
    }
}
