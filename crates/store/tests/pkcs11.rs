//! Tests of the master key kept wrapped by a key in a PKCS#11 HSM, against SoftHSM2 (Debian's
//! `softhsm2` package; `scripts/softhsm-setup.sh` installs it).
//!
//! Each run creates its own token in a temporary directory, through a SoftHSM configuration file
//! named by `SOFTHSM2_CONF`, so no global state is touched.
//! SoftHSM reads that variable when the module is initialized, and PKCS#11 is initialized once per
//! process, while libtest runs tests as threads of one process and this crate forbids the `unsafe`
//! `std::env::set_var`.
//! So `softhsm_master_key` prepares the token and runs this same test binary again as a child
//! process with `SOFTHSM2_CONF` in its environment, asking it for `child_scenario` only, which does
//! every step in sequence.
//! Run directly (without the child's variable), `child_scenario` does nothing.
//!
//! Without the module the tests say loudly that the HSM option was not tested and pass, so a
//! developer without SoftHSM can still run `cargo test`; under CI (`CI` set) a missing module is a
//! failure, so CI can never skip them silently.
//! The module path is `/usr/lib/softhsm/libsofthsm2.so` unless `CITADEL_TEST_PKCS11_MODULE` says
//! otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation must fail the test"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use citadel_store::seal::MASTER_KEY_FILE;
use citadel_store::seal_pkcs11::{DEFAULT_KEY_LABEL, WRAPPED_LEN, WRAPPED_MASTER_KEY_FILE};
use citadel_store::{MasterKey, MasterKeyError, Pkcs11Config, Pkcs11Error};
use zeroize::Zeroizing;

const MODULE_VARIABLE: &str = "CITADEL_TEST_PKCS11_MODULE";
const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Set only in the child process: the scratch directory holding the token and the data directories.
const CHILD_VARIABLE: &str = "CITADEL_TEST_PKCS11_CHILD_DIR";
const TOKEN: &str = "citadel";
const PIN: &str = "1234";
const SO_PIN: &str = "5678";

/// The PKCS#11 module; `None` (after a loud message) when it is not installed.
///
/// # Panics
/// Under CI, when the module is missing: a skipped HSM test must fail the run there.
fn module() -> Option<PathBuf> {
    let module = PathBuf::from(std::env::var(MODULE_VARIABLE).unwrap_or_else(|_| DEFAULT_MODULE.to_owned()));
    if module.is_file() {
        return Some(module);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but the PKCS#11 module {} is missing: run scripts/softhsm-setup.sh",
        module.display()
    );
    // Written to stderr directly: libtest captures `eprintln!` of passing tests, and this message
    // must be seen.
    let banner = format!(
        "\n{stars}\n*** SKIPPED: the PKCS#11 HSM option was NOT TESTED: {} is missing.\n\
         *** Run: scripts/softhsm-setup.sh (installs Debian's softhsm2)\n{stars}\n",
        module.display(),
        stars = "*".repeat(80)
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), banner.as_bytes());
    None
}

/// Runs `softhsm2-util` with the scratch configuration; panics with its output when it fails.
fn softhsm_util(conf: &Path, args: &[&str]) {
    let output = Command::new("softhsm2-util")
        .args(args)
        .env("SOFTHSM2_CONF", conf)
        .output()
        .expect("running softhsm2-util (scripts/softhsm-setup.sh installs it)");
    assert!(
        output.status.success(),
        "softhsm2-util {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes a SoftHSM configuration whose token directory is inside `scratch`.
fn softhsm_conf(scratch: &Path) -> PathBuf {
    let tokens = scratch.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = scratch.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    conf
}

#[test]
fn softhsm_master_key() {
    let Some(_module) = module() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let conf = softhsm_conf(scratch.path());
    softhsm_util(
        &conf,
        &[
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ],
    );
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_scenario", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD_VARIABLE, scratch.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child scenario failed:\n{stdout}\n{stderr}"
    );
}

fn config(module: &Path, token: &str, pin: &str, key_label: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: module.to_path_buf(),
        token_label: token.to_owned(),
        pin: Zeroizing::new(pin.to_owned()),
        key_label: key_label.to_owned(),
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Asserts that no file under `dir` contains `needle`.
fn assert_nowhere(dir: &Path, needle: &[u8], what: &str) {
    for file in files_under(dir) {
        let contents = std::fs::read(&file).unwrap();
        assert!(
            !contents.windows(needle.len()).any(|window| window == needle),
            "{} contains {what}",
            file.display()
        );
    }
}

/// The raw master key bytes, through the base64 export (the only public way to see them).
fn raw(key: &MasterKey) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(key.to_base64().as_str())
        .unwrap()
}

/// The scenario, run only inside the child process that `softhsm_master_key` starts.
#[test]
fn child_scenario() {
    let Some(scratch) = std::env::var_os(CHILD_VARIABLE).map(PathBuf::from) else {
        return;
    };
    let module = module().unwrap();
    let good = config(&module, TOKEN, PIN, DEFAULT_KEY_LABEL);
    let data = scratch.join("data");

    // First start: a key is generated, wrapped, and only the wrapped form is written.
    let first = MasterKey::load_or_create_pkcs11(&data, &good).unwrap();
    let wrapped_path = data.join(WRAPPED_MASTER_KEY_FILE);
    let wrapped = std::fs::read(&wrapped_path).unwrap();
    assert_eq!(wrapped.len(), WRAPPED_LEN);
    assert!(!data.join(MASTER_KEY_FILE).exists());
    let first_bytes = raw(&first);
    assert_ne!(&wrapped[13..45], first_bytes.as_slice());
    // Neither the data directory nor the token's own files hold the key, raw or in base64.
    for dir in [&data, &scratch.join("tokens")] {
        assert_nowhere(dir, &first_bytes, "the raw master key");
        assert_nowhere(dir, first.to_base64().as_bytes(), "the base64 master key");
    }

    // Later starts unwrap the same key, and leave the file alone.
    for _ in 0..2 {
        let again = MasterKey::load_or_create_pkcs11(&data, &good).unwrap();
        assert_eq!(raw(&again), first_bytes);
        let sealed = first.seal(b"sealed before the restart", b"aad");
        assert_eq!(
            again.unseal(&sealed, b"aad").unwrap().as_slice(),
            b"sealed before the restart"
        );
        assert_eq!(std::fs::read(&wrapped_path).unwrap(), wrapped);
    }

    // The wrapping key lives in the token, sensitive and never extractable.
    check_wrapping_key_attributes(&module);

    // A second data directory on the same token gets its own master key under the same wrapping key.
    let other = MasterKey::load_or_create_pkcs11(&scratch.join("other"), &good).unwrap();
    assert_ne!(raw(&other), first_bytes);

    // A wrong PIN, a wrong token or a wrong key label cannot open the data directory.
    let wrong_pin = MasterKey::load_or_create_pkcs11(&data, &config(&module, TOKEN, "0000", DEFAULT_KEY_LABEL));
    assert!(
        matches!(wrong_pin, Err(MasterKeyError::Pkcs11(Pkcs11Error::PinIncorrect { .. }))),
        "{wrong_pin:?}"
    );
    let wrong_token = MasterKey::load_or_create_pkcs11(&data, &config(&module, "absent", PIN, DEFAULT_KEY_LABEL));
    assert!(
        matches!(
            wrong_token,
            Err(MasterKeyError::Pkcs11(Pkcs11Error::TokenNotFound { .. }))
        ),
        "{wrong_token:?}"
    );
    for _ in 0..2 {
        // No wrapping key is created for a data directory that already has a wrapped key.
        let wrong_label = MasterKey::load_or_create_pkcs11(&data, &config(&module, TOKEN, PIN, "another-label"));
        assert!(
            matches!(
                wrong_label,
                Err(MasterKeyError::Pkcs11(Pkcs11Error::WrappingKeyMissing { .. }))
            ),
            "{wrong_label:?}"
        );
    }

    // A wrapped key made under another wrapping key (another label) does not unwrap.
    let elsewhere = scratch.join("elsewhere");
    MasterKey::load_or_create_pkcs11(&elsewhere, &config(&module, TOKEN, PIN, "another-label")).unwrap();
    std::fs::copy(
        elsewhere.join(WRAPPED_MASTER_KEY_FILE),
        scratch.join("other").join(WRAPPED_MASTER_KEY_FILE),
    )
    .unwrap();
    let swapped = MasterKey::load_or_create_pkcs11(&scratch.join("other"), &good);
    assert!(
        matches!(swapped, Err(MasterKeyError::Pkcs11(Pkcs11Error::Unwrap { .. }))),
        "{swapped:?}"
    );

    // A damaged wrapped file fails authentication; a truncated one is refused.
    let damaged = scratch.join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for index in [0, 5, 20, WRAPPED_LEN - 1] {
        let mut tampered = wrapped.clone();
        tampered[index] ^= 1;
        std::fs::write(damaged.join(WRAPPED_MASTER_KEY_FILE), &tampered).unwrap();
        let result = MasterKey::load_or_create_pkcs11(&damaged, &good);
        assert!(
            matches!(
                result,
                Err(MasterKeyError::Pkcs11(
                    Pkcs11Error::Unwrap { .. } | Pkcs11Error::Malformed { .. }
                ))
            ),
            "byte {index}: {result:?}"
        );
    }
    std::fs::write(damaged.join(WRAPPED_MASTER_KEY_FILE), &wrapped[..40]).unwrap();
    let truncated = MasterKey::load_or_create_pkcs11(&damaged, &good);
    assert!(
        matches!(truncated, Err(MasterKeyError::Pkcs11(Pkcs11Error::Malformed { .. }))),
        "{truncated:?}"
    );

    // A plaintext master.key beside the HSM option is refused, and the file-based loader refuses an
    // HSM data directory.
    let plaintext = scratch.join("plaintext");
    MasterKey::load_or_create_file(&plaintext).unwrap();
    let ambiguous = MasterKey::load_or_create_pkcs11(&plaintext, &good);
    assert!(matches!(ambiguous, Err(MasterKeyError::Conflict(_))), "{ambiguous:?}");
    assert!(!plaintext.join(WRAPPED_MASTER_KEY_FILE).exists());
    assert!(matches!(
        MasterKey::load_or_create_file(&data),
        Err(MasterKeyError::Conflict(_))
    ));
    assert!(!data.join(MASTER_KEY_FILE).exists());

    // Removing the token makes the data directory unreadable.
    let conf = PathBuf::from(std::env::var_os("SOFTHSM2_CONF").unwrap());
    softhsm_util(&conf, &["--delete-token", "--token", TOKEN]);
    let removed = MasterKey::load_or_create_pkcs11(&data, &good);
    assert!(
        matches!(removed, Err(MasterKeyError::Pkcs11(Pkcs11Error::TokenNotFound { .. }))),
        "{removed:?}"
    );
    assert_eq!(std::fs::read(&wrapped_path).unwrap(), wrapped);
}

/// Checks, through the module directly, that the wrapping key has the attributes the design needs.
fn check_wrapping_key_attributes(module: &Path) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let context = Pkcs11::new(module).unwrap();
    context
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    {
        let slot = context
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|&slot| context.get_token_info(slot).unwrap().label() == TOKEN)
            .unwrap();
        let session = context.open_ro_session(slot).unwrap();
        session.login(UserType::User, Some(&AuthPin::from(PIN))).unwrap();
        let keys = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(DEFAULT_KEY_LABEL.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(keys.len(), 1, "exactly one wrapping key");
        let attributes = session
            .get_attributes(
                keys[0],
                &[
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::ValueLen,
                ],
            )
            .unwrap();
        for attribute in attributes {
            match attribute {
                Attribute::Token(value)
                | Attribute::Private(value)
                | Attribute::Sensitive(value)
                | Attribute::NeverExtractable(value) => assert!(value, "{attribute:?}"),
                Attribute::Extractable(value) => assert!(!value),
                Attribute::ValueLen(length) => assert_eq!(u64::from(length), 32),
                other => panic!("unexpected {other:?}"),
            }
        }
        // The token refuses to reveal the key's value.
        assert!(
            session
                .get_attributes(keys[0], &[AttributeType::Value])
                .map_or(true, |values| values.is_empty())
        );
    }
    context.finalize().unwrap();
}
