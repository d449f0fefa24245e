//! The KMS service's own share of a request: `authorize` then `execute` of Encrypt (1 KiB), Decrypt
//! (of a 1 KiB ciphertext) and GenerateDataKey (AES_256) on an embedded store, as the pipeline calls
//! them, without the network, SigV4, the policy decision or the audit record (the pipeline's part).

use citadel_core::{Authorized, Call, IdGen, Principal, RequestContext, Service};
use citadel_kms::{Kms, SPEC};
use citadel_store::{MasterKey, RedbStore, Store};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;

const ACCOUNT: &str = "111122223333";

fn call(op: &str, input: Value, principal: &Arc<Principal>) -> Call {
    let op = SPEC.operation(op).unwrap();
    Call {
        ctx: RequestContext {
            request_id: "bench".into(),
            principal: principal.clone(),
            region: "us-east-1".into(),
            source_ip: "127.0.0.1".parse().unwrap(),
            user_agent: "bench".into(),
            secure_transport: false,
            time: OffsetDateTime::now_utc(),
            service: "kms",
            operation: op.name,
        },
        op,
        input,
    }
}

/// Authorize and execute one call; commits the effect's batch when it writes (it does not for
/// these operations unless a rotation is due), as the pipeline would.
async fn run(kms: &Kms, store: &dyn Store, call: &Call) -> Value {
    kms.authorize(call).await.unwrap();
    let effect = kms.execute(call, &Authorized::for_tests()).await.unwrap();
    if !effect.batch.is_empty() {
        store.commit(effect.batch).await.unwrap();
    }
    effect.output
}

fn handlers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("bench.redb")).unwrap());
    let ids = IdGen::new(Arc::new(citadel_core::random::SeededRandom::new(7)));
    let kms = Kms::new(store.clone(), Arc::new(MasterKey::generate()), ids);
    let principal = Arc::new(Principal::root(ACCOUNT, None));
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let created = rt.block_on(run(&kms, store.as_ref(), &call("CreateKey", json!({}), &principal)));
    let key_id = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let plaintext = b64(&[0x5a; 1024]);
    let encrypt = call("Encrypt", json!({"KeyId": key_id, "Plaintext": plaintext}), &principal);
    let blob = rt.block_on(run(&kms, store.as_ref(), &encrypt))["CiphertextBlob"].clone();
    let decrypt = call("Decrypt", json!({"CiphertextBlob": blob}), &principal);
    let data_key = call(
        "GenerateDataKey",
        json!({"KeyId": key_id, "KeySpec": "AES_256"}),
        &principal,
    );

    let mut group = c.benchmark_group("kms-handlers");
    for (name, call) in [
        ("Encrypt 1KiB", &encrypt),
        ("Decrypt 1KiB", &decrypt),
        ("GenerateDataKey", &data_key),
    ] {
        group.bench_function(name, |b| b.iter(|| rt.block_on(run(&kms, store.as_ref(), call))));
    }
    group.finish();
}

criterion_group!(benches, handlers);
criterion_main!(benches);
