//! Encrypt + decrypt of 1 KiB at the crypto layer (AES-256-GCM blob with an encryption context).

use citadel_kms::crypto::{self, KeySpec};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;

fn encrypt_decrypt_1k(c: &mut Criterion) {
    let material = crypto::generate_material(KeySpec::SymmetricDefault).unwrap();
    let key_id = [9u8; 16];
    let plaintext = vec![0x5au8; 1024];
    let context: BTreeMap<String, String> = [("purpose".to_string(), "bench".to_string())].into_iter().collect();
    let mut group = c.benchmark_group("kms-crypto");
    group.throughput(Throughput::Bytes(1024));
    group.bench_function("encrypt+decrypt 1KiB", |b| {
        b.iter(|| {
            let blob = crypto::encrypt(&material, &key_id, 0, &plaintext, &context).unwrap();
            let out = crypto::decrypt(&material, &blob, &context).unwrap();
            assert_eq!(out.len(), 1024);
        })
    });
    group.finish();
}

criterion_group!(benches, encrypt_decrypt_1k);
criterion_main!(benches);
