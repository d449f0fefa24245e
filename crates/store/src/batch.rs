//! Write batches: the unit of atomic change.
//!
//! A batch is a list of writes plus a list of preconditions.
//! The store applies all of the writes or none of them, and only if every precondition holds
//! against the state at commit time.
//! This is optimistic concurrency: a service reads without locks, builds a batch whose
//! preconditions say "the things I read are still as I read them", and retries on conflict.
//! Both an embedded engine (checking preconditions inside its single writer) and PostgreSQL
//! (checking them with `SELECT ... FOR UPDATE` inside a transaction) can implement this exactly.

/// One write in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Sets `key` in `table` to `value`, replacing any previous value.
    Put {
        /// The table name.
        table: String,
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Removes `key` from `table`; removing an absent key is not an error.
    Delete {
        /// The table name.
        table: String,
        /// The key.
        key: Vec<u8>,
    },
}

impl WriteOp {
    /// The table this write touches.
    pub fn table(&self) -> &str {
        match self {
            WriteOp::Put { table, .. } | WriteOp::Delete { table, .. } => table,
        }
    }
}

/// What a precondition requires of a key's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The key must not exist.
    Absent,
    /// The key must exist, with any value.
    Present,
    /// The key must exist with exactly this value.
    Value(Vec<u8>),
}

impl Expected {
    /// Whether `current` (the key's value, `None` when absent) satisfies this expectation.
    pub fn holds(&self, current: Option<&[u8]>) -> bool {
        match (self, current) {
            (Expected::Absent, None) => true,
            (Expected::Present, Some(_)) => true,
            (Expected::Value(want), Some(have)) => want.as_slice() == have,
            _ => false,
        }
    }
}

/// A condition on one key that must hold for a batch to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    /// The table name.
    pub table: String,
    /// The key.
    pub key: Vec<u8>,
    /// What the key's value must be.
    pub expected: Expected,
}

/// An atomic set of writes guarded by preconditions.
///
/// Invariant: preconditions are evaluated against the state *before* any write of the same batch,
/// and the writes are applied in the order they were added (a later put of the same key wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
    preconditions: Vec<Precondition>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a write of `value` to `key` in `table`.
    pub fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> &mut Self {
        self.ops.push(WriteOp::Put {
            table: table.to_owned(),
            key: key.to_vec(),
            value: value.to_vec(),
        });
        self
    }

    /// Adds a removal of `key` from `table`.
    pub fn delete(&mut self, table: &str, key: &[u8]) -> &mut Self {
        self.ops.push(WriteOp::Delete {
            table: table.to_owned(),
            key: key.to_vec(),
        });
        self
    }

    /// Requires `key` in `table` to have exactly `value` at commit time, or to be absent when `value`
    /// is `None`.
    /// Passing what a read returned (`current.as_deref()`) makes the batch apply only if that read
    /// is still current.
    pub fn expect(&mut self, table: &str, key: &[u8], value: Option<&[u8]>) -> &mut Self {
        let expected = match value {
            Some(v) => Expected::Value(v.to_vec()),
            None => Expected::Absent,
        };
        self.preconditions.push(Precondition {
            table: table.to_owned(),
            key: key.to_vec(),
            expected,
        });
        self
    }

    /// Requires `key` in `table` to exist (with any value) at commit time.
    pub fn expect_present(&mut self, table: &str, key: &[u8]) -> &mut Self {
        self.preconditions.push(Precondition {
            table: table.to_owned(),
            key: key.to_vec(),
            expected: Expected::Present,
        });
        self
    }

    /// Moves every write and precondition of `other` into this batch.
    pub fn append(&mut self, other: WriteBatch) -> &mut Self {
        self.ops.extend(other.ops);
        self.preconditions.extend(other.preconditions);
        self
    }

    /// Whether the batch has neither writes nor preconditions.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.preconditions.is_empty()
    }

    /// The writes, in application order.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// The preconditions.
    pub fn preconditions(&self) -> &[Precondition] {
        &self.preconditions
    }

    /// Splits the batch into its writes and preconditions (for backends).
    pub fn into_parts(self) -> (Vec<WriteOp>, Vec<Precondition>) {
        (self.ops, self.preconditions)
    }

    /// The distinct tables the batch writes to, in first-write order.
    pub fn tables_written(&self) -> Vec<&str> {
        let mut tables: Vec<&str> = Vec::new();
        for op in &self.ops {
            if !tables.contains(&op.table()) {
                tables.push(op.table());
            }
        }
        tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_table() {
        let cases: &[(Expected, Option<&[u8]>, bool)] = &[
            (Expected::Absent, None, true),
            (Expected::Absent, Some(b"x"), false),
            (Expected::Present, None, false),
            (Expected::Present, Some(b""), true),
            (Expected::Value(b"a".to_vec()), Some(b"a"), true),
            (Expected::Value(b"a".to_vec()), Some(b"b"), false),
            (Expected::Value(b"a".to_vec()), None, false),
        ];
        for (expected, current, want) in cases {
            assert_eq!(expected.holds(*current), *want, "{expected:?} against {current:?}");
        }
    }

    #[test]
    fn builder_keeps_order_and_tables() {
        let mut batch = WriteBatch::new();
        assert!(batch.is_empty());
        batch
            .put("a", b"1", b"x")
            .delete("b", b"2")
            .put("a", b"3", b"y")
            .expect("c", b"4", None);
        assert!(!batch.is_empty());
        assert_eq!(batch.ops().len(), 3);
        assert_eq!(batch.tables_written(), vec!["a", "b"]);
        assert_eq!(batch.preconditions()[0].expected, Expected::Absent);
        let mut other = WriteBatch::new();
        other.expect_present("d", b"5");
        batch.append(other);
        assert_eq!(batch.preconditions().len(), 2);
    }
}
