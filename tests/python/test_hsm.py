"""The master key kept wrapped by a key in a PKCS#11 HSM (SoftHSM2), never in the clear (issue 6).

Each run makes its own SoftHSM token in a temporary directory (SOFTHSM2_CONF), so nothing global is
touched. Without the module the tests are skipped loudly, except under CI, where they fail:
`scripts/softhsm-setup.sh` installs Debian's softhsm2.

To search the data directory for the master key, the test must know the key, and Citadel never
reveals it: so the test unwraps `master.key.wrapped` itself, through the PKCS#11 C API of the
module (ctypes), as an independent reader of the file format documented in
crates/store/src/seal_pkcs11.rs.
"""

import base64
import ctypes
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import CitadelServer, citadel_binary

MODULE = os.environ.get("CITADEL_TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
TOKEN = "citadel"
PIN = "1234"
SO_PIN = "5678"
KEY_LABEL = "citadel-master-key"
WRAPPED_FILE = "master.key.wrapped"


def require_module():
    if os.path.isfile(MODULE):
        return
    message = f"the PKCS#11 HSM option was NOT TESTED: {MODULE} is missing (run scripts/softhsm-setup.sh)"
    if os.environ.get("CI"):
        pytest.fail("CI is set but " + message)
    print("\n" + "*" * 80 + "\n*** SKIPPED: " + message + "\n" + "*" * 80)
    pytest.skip(message)


@pytest.fixture
def softhsm(monkeypatch):
    """A fresh SoftHSM token in a temporary directory; yields the environment the server needs."""
    require_module()
    scratch = tempfile.mkdtemp(prefix="citadel-softhsm-")
    tokens = os.path.join(scratch, "tokens")
    os.makedirs(tokens)
    conf = os.path.join(scratch, "softhsm2.conf")
    with open(conf, "w") as file:
        file.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    # This process reads the token too (to unwrap the master key independently).
    monkeypatch.setenv("SOFTHSM2_CONF", conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN],
                   check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": conf})
    yield {"SOFTHSM2_CONF": conf, "CITADEL_PKCS11_PIN": PIN, "CITADEL_MASTER_KEY": ""}
    shutil.rmtree(scratch, ignore_errors=True)


HSM_ARGS = ["--pkcs11-module", MODULE, "--pkcs11-token", TOKEN]


def serve_expecting_failure(data_dir, env):
    """Runs `citadel serve` that must refuse to start; returns its standard error."""
    full_env = {**os.environ, **env}
    result = subprocess.run(
        [citadel_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, *HSM_ARGS],
        capture_output=True, text=True, timeout=60, env=full_env)
    assert result.returncode != 0, "the server started: " + result.stdout
    assert "Citadel listening on" not in result.stdout
    return result.stderr


def files_under(directory):
    for root, _dirs, names in os.walk(directory):
        for name in names:
            yield os.path.join(root, name)


def assert_nowhere(directory, needle, what):
    assert needle, what
    for path in files_under(directory):
        with open(path, "rb") as file:
            assert needle not in file.read(), f"{path} contains {what}"


# --- An independent unwrap of master.key.wrapped through the PKCS#11 C API. ---------------------

CK_ULONG = ctypes.c_ulong
CKF_SERIAL_SESSION = 0x4
CKU_USER = 1
CKA_CLASS, CKA_LABEL = 0x0, 0x3
CKO_SECRET_KEY = 0x4
CKM_AES_GCM = 0x1087


class CK_ATTRIBUTE(ctypes.Structure):
    _fields_ = [("type", CK_ULONG), ("pValue", ctypes.c_void_p), ("ulValueLen", CK_ULONG)]


class CK_MECHANISM(ctypes.Structure):
    _fields_ = [("mechanism", CK_ULONG), ("pParameter", ctypes.c_void_p), ("ulParameterLen", CK_ULONG)]


class CK_GCM_PARAMS(ctypes.Structure):
    _fields_ = [("pIv", ctypes.c_void_p), ("ulIvLen", CK_ULONG), ("ulIvBits", CK_ULONG),
                ("pAAD", ctypes.c_void_p), ("ulAADLen", CK_ULONG), ("ulTagBits", CK_ULONG)]


def unwrap_master_key(data_dir):
    """The 32-byte master key, decrypted from master.key.wrapped by the token's wrapping key.

    Layout: version (1) || IV (12) || AES-256-GCM ciphertext (32) || tag (16);
    AAD = b"citadel master.key.wrapped" || version.
    """
    with open(os.path.join(data_dir, WRAPPED_FILE), "rb") as file:
        wrapped = file.read()
    assert len(wrapped) == 61 and wrapped[0] == 1, wrapped
    iv, ciphertext = wrapped[1:13], wrapped[13:]
    aad = b"citadel master.key.wrapped" + wrapped[:1]

    lib = ctypes.CDLL(MODULE)

    def ok(rv, what):
        assert rv == 0, f"{what}: CKR 0x{rv:x}"

    ok(lib.C_Initialize(None), "C_Initialize")
    try:
        count = CK_ULONG()
        ok(lib.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count)), "C_GetSlotList")
        slots = (CK_ULONG * count.value)()
        ok(lib.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count)), "C_GetSlotList")
        slot = None
        for candidate in slots[:count.value]:
            info = ctypes.create_string_buffer(1024)  # CK_TOKEN_INFO starts with the 32-byte label.
            ok(lib.C_GetTokenInfo(CK_ULONG(candidate), info), "C_GetTokenInfo")
            if info.raw[:32].decode().rstrip() == TOKEN:
                slot = candidate
        assert slot is not None, "token not found"
        session = CK_ULONG()
        ok(lib.C_OpenSession(CK_ULONG(slot), CK_ULONG(CKF_SERIAL_SESSION), None, None, ctypes.byref(session)),
           "C_OpenSession")
        ok(lib.C_Login(session, CK_ULONG(CKU_USER), PIN.encode(), CK_ULONG(len(PIN))), "C_Login")

        key_class = CK_ULONG(CKO_SECRET_KEY)
        label = ctypes.create_string_buffer(KEY_LABEL.encode(), len(KEY_LABEL))
        template = (CK_ATTRIBUTE * 2)(
            CK_ATTRIBUTE(CKA_CLASS, ctypes.cast(ctypes.byref(key_class), ctypes.c_void_p), ctypes.sizeof(key_class)),
            CK_ATTRIBUTE(CKA_LABEL, ctypes.cast(label, ctypes.c_void_p), len(KEY_LABEL)))
        ok(lib.C_FindObjectsInit(session, template, CK_ULONG(2)), "C_FindObjectsInit")
        handles, found = (CK_ULONG * 4)(), CK_ULONG()
        ok(lib.C_FindObjects(session, handles, CK_ULONG(4), ctypes.byref(found)), "C_FindObjects")
        ok(lib.C_FindObjectsFinal(session), "C_FindObjectsFinal")
        assert found.value == 1, f"{found.value} wrapping keys"

        iv_buffer = ctypes.create_string_buffer(iv, len(iv))
        aad_buffer = ctypes.create_string_buffer(aad, len(aad))
        params = CK_GCM_PARAMS(ctypes.cast(iv_buffer, ctypes.c_void_p), len(iv), len(iv) * 8,
                               ctypes.cast(aad_buffer, ctypes.c_void_p), len(aad), 128)
        mechanism = CK_MECHANISM(CKM_AES_GCM, ctypes.cast(ctypes.byref(params), ctypes.c_void_p),
                                 ctypes.sizeof(params))
        ok(lib.C_DecryptInit(session, ctypes.byref(mechanism), CK_ULONG(handles[0])), "C_DecryptInit")
        out, out_len = ctypes.create_string_buffer(64), CK_ULONG(64)
        ok(lib.C_Decrypt(session, ciphertext, CK_ULONG(len(ciphertext)), out, ctypes.byref(out_len)), "C_Decrypt")
        ok(lib.C_Logout(session), "C_Logout")
        ok(lib.C_CloseSession(session), "C_CloseSession")
        assert out_len.value == 32
        return out.raw[:32]
    finally:
        lib.C_Finalize(None)


# --- The tests. --------------------------------------------------------------------------------

def test_hsm_master_key_survives_restart_and_never_reaches_disk(softhsm):
    server = CitadelServer(*HSM_ARGS, env=softhsm)
    try:
        iam, kms = server.client("iam"), server.client("kms")
        iam.create_user(UserName="hsm-user")
        iam.put_user_policy(UserName="hsm-user", PolicyName="kms", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}))
        access_key = iam.create_access_key(UserName="hsm-user")["AccessKey"]
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        plaintext = os.urandom(32)
        blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
        assert server.stop() == 0

        data_dir = server.data_dir
        assert not os.path.exists(os.path.join(data_dir, "master.key"))
        assert os.path.getsize(os.path.join(data_dir, WRAPPED_FILE)) == 61

        # After a restart the key is unwrapped again: the user's key authenticates, the ciphertext decrypts.
        server.start()
        user_sts = server.client("sts", access_key=access_key["AccessKeyId"], secret=access_key["SecretAccessKey"])
        assert user_sts.get_caller_identity()["Arn"].endswith(":user/hsm-user")
        user_kms = server.client("kms", access_key=access_key["AccessKeyId"], secret=access_key["SecretAccessKey"])
        assert user_kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
        assert server.stop() == 0

        # A wrong PIN, or a missing one, and the server refuses to start.
        stderr = serve_expecting_failure(data_dir, {**softhsm, "CITADEL_PKCS11_PIN": "0000"})
        assert "PIN" in stderr, stderr
        without_pin = {key: value for key, value in os.environ.items() if key != "CITADEL_PKCS11_PIN"}
        result = subprocess.run(
            [citadel_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, *HSM_ARGS],
            capture_output=True, text=True, timeout=60, env={**without_pin, "SOFTHSM2_CONF": softhsm["SOFTHSM2_CONF"]})
        assert result.returncode != 0 and "CITADEL_PKCS11_PIN" in result.stderr, result.stderr

        # Without the HSM option the server refuses the directory rather than make a plaintext key.
        result = subprocess.run(
            [citadel_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            capture_output=True, text=True, timeout=60, env={**os.environ, "CITADEL_MASTER_KEY": ""})
        assert result.returncode != 0 and WRAPPED_FILE in result.stderr, result.stderr
        assert not os.path.exists(os.path.join(data_dir, "master.key"))

        # Nothing in the data directory holds the master key, the secret access key or the KMS plaintext.
        master = unwrap_master_key(data_dir)
        assert len(master) == 32
        for needle, what in [
            (master, "the master key"),
            (base64.b64encode(master), "the master key in base64"),
            (master.hex().encode(), "the master key in hex"),
            (access_key["SecretAccessKey"].encode(), "the secret access key"),
            (plaintext, "the KMS plaintext"),
            (base64.b64encode(plaintext), "the KMS plaintext in base64"),
        ]:
            assert_nowhere(data_dir, needle, what)
    finally:
        server.close()


def test_hsm_option_refuses_a_plaintext_master_key(softhsm):
    data_dir = tempfile.mkdtemp(prefix="citadel-hsm-plain-")
    try:
        path = os.path.join(data_dir, "master.key")
        with open(path, "w") as file:
            file.write(base64.b64encode(os.urandom(32)).decode() + "\n")
        os.chmod(path, 0o600)
        stderr = serve_expecting_failure(data_dir, softhsm)
        assert "master.key" in stderr, stderr
        assert not os.path.exists(os.path.join(data_dir, WRAPPED_FILE))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
