//! The in-process bus: for `confab serve` (one process holds both services) and tests.

use super::{Bus, BusError, Envelope, Event, LOCAL_CAPACITY, SubscriptionCounts, Topic};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

#[derive(Debug)]
pub struct MemoryBus {
    tx: broadcast::Sender<Arc<Envelope>>,
    // std Mutex: the critical sections never await.
    subscribed: Mutex<SubscriptionCounts>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBus {
    pub fn new() -> MemoryBus {
        let (tx, _) = broadcast::channel(LOCAL_CAPACITY);
        MemoryBus {
            tx,
            subscribed: Mutex::new(SubscriptionCounts::default()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, SubscriptionCounts> {
        self.subscribed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, topic: Topic, event: &Event) -> Result<(), BusError> {
        if self.counts().contains(&topic) {
            // No receiver is not an error: nobody is listening right now.
            let _ = self.tx.send(Arc::new(Envelope {
                topic,
                event: event.clone(),
            }));
        }
        Ok(())
    }

    async fn subscribe(&self, topic: Topic) -> Result<(), BusError> {
        self.counts().add(topic);
        Ok(())
    }

    async fn unsubscribe(&self, topic: Topic) -> Result<(), BusError> {
        self.counts().remove(topic);
        Ok(())
    }

    fn events(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.tx.subscribe()
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RoomId, UserId};

    #[tokio::test]
    async fn delivers_only_subscribed_topics() {
        let bus = MemoryBus::new();
        let mut rx = bus.events();
        let room = Topic::Room(RoomId(1));
        let e = Event::UserDeactivated { user_id: UserId(1) };
        bus.publish(room, &e).await.unwrap();
        bus.subscribe(room).await.unwrap();
        bus.publish(Topic::Room(RoomId(2)), &e).await.unwrap();
        bus.publish(room, &e).await.unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(got.topic, room);
        assert!(rx.try_recv().is_err(), "nothing else was delivered");
        bus.unsubscribe(room).await.unwrap();
        bus.publish(room, &e).await.unwrap();
        assert!(rx.try_recv().is_err());
    }
}
