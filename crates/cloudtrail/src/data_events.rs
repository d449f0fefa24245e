//! Which accounts have a trail that may deliver data events, for services that record them.
//!
//! CloudTrail keeps data events (S3 object calls) only for trails whose selectors ask for them. A
//! service asks [`DataEventTrails::records_data_events`] before it writes such an event; the answer
//! comes from the trails table, cached until the table's store generation moves, so a trail created
//! or changed on any node is seen by the next request.

use std::collections::HashSet;
use std::sync::Arc;

use citadel_store::Store;
use parking_lot::RwLock;

use crate::model::{self, TRAILS, TrailConfig};
use crate::selectors::may_select_data_events;

/// The accounts with a trail that may select data events, with the generation they were read at.
struct Snapshot {
    generation: u64,
    accounts: HashSet<String>,
}

/// Answers "does this account log data events?" from the trails table.
pub struct DataEventTrails {
    store: Arc<dyn Store>,
    cached: RwLock<Option<Snapshot>>,
}

impl DataEventTrails {
    /// Reads trails from `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cached: RwLock::new(None),
        }
    }

    /// Whether `account` has a trail whose selectors may select data events. When the trails
    /// cannot be read, it answers `true`: recording an event no trail wants is the safe mistake.
    pub async fn records_data_events(&self, account: &str) -> bool {
        // The generation is read before the table, so a change committed during the scan makes the
        // next call read again rather than trust this snapshot.
        let generation = self.store.generation(TRAILS);
        if let Some(snapshot) = self.cached.read().as_ref()
            && snapshot.generation == generation
        {
            return snapshot.accounts.contains(account);
        }
        let Ok(rows) = self.store.scan(TRAILS, &[], None, usize::MAX, false).await else {
            return true;
        };
        let accounts: HashSet<String> = rows
            .iter()
            .filter_map(|(_, raw)| model::decode::<TrailConfig>(raw))
            .filter(|trail| {
                may_select_data_events(trail.event_selectors.as_ref(), trail.advanced_event_selectors.as_ref())
            })
            .map(|trail| trail.account)
            .collect();
        let wanted = accounts.contains(account);
        *self.cached.write() = Some(Snapshot { generation, accounts });
        wanted
    }
}
