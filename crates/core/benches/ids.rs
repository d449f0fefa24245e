//! The cost of the identifiers every request takes (a request id and a CloudTrail event id): a UUID
//! from `Random::fill_public` (rand's thread-local ChaCha12 for `OsRandom`) next to the same 16
//! bytes from `Random::fill` (a `getrandom` system call). Run: `cargo bench -p citadel-core --bench ids`.

use citadel_core::random::{IdGen, OsRandom};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;

fn ids(c: &mut Criterion) {
    let ids = IdGen::new(Arc::new(OsRandom));
    c.bench_function("uuid (fill_public)", |b| b.iter(|| black_box(ids.uuid())));
    c.bench_function("16 bytes from fill (getrandom)", |b| {
        b.iter(|| black_box(ids.bytes::<16>()))
    });
}

criterion_group!(benches, ids);
criterion_main!(benches);
