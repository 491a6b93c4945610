"""Secrets are masked in one place (_utils/mfsha_redact.py), on real drbdadm output captured with a secret
(test/unit/fixtures/secrets/), in pillar errors (typo'd keys included) and in the drbd module's errors."""
import pathlib
import sys

import pytest

from unit_support import load_salt_module

FIX = pathlib.Path(__file__).parent / "fixtures" / "secrets"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "_utils"))
import mfsha_redact  # noqa: E402

SECRET = "Zq8vN3xKp2LmT7wR"  # the secret in fixtures/secrets/r0.res


@pytest.mark.parametrize("name", ["drbdadm-9-dry-up.txt", "drbdadm-84-dry-up.txt", "r0.res"])
def test_captured_drbd_text_loses_its_secret(name):
    text = (FIX / name).read_text()
    assert SECRET in text  # the capture really carries it
    out = mfsha_redact.text(text)
    assert SECRET not in out and mfsha_redact.MASK in out
    assert out.count("\n") == text.count("\n")  # the rest is left as it was


def test_a_failed_step_as_drbdadm_reports_it():
    line = next(x for x in (FIX / "drbdadm-84-dry-up.txt").read_text().splitlines() if "shared-secret" in x)
    msg = f"Command '{line}' terminated with exit code 10"
    assert SECRET not in mfsha_redact.text(msg)


def test_authkeys_text_and_given_secrets():
    assert mfsha_redact.text("auth 1\n1 sha1 s3cretvalue99\n") == f"auth 1\n1 sha1 {mfsha_redact.MASK}\n"
    assert mfsha_redact.text("value abcdEFGH123 here", ["abcdEFGH123"]) == f"value {mfsha_redact.MASK} here"


@pytest.mark.parametrize("name", ["secret", "secrte", "sercet", "auth_key", "authkey", "auth_kye", "password",
                                  "mfsha:clusters:p:storage:drbd:secrte", "api_token"])
def test_secret_names_and_their_typos(name):
    assert mfsha_redact.looks_secret(name)


@pytest.mark.parametrize("name", ["address", "hostname", "deadtime", "keepalive", "resource", "port", "0"])
def test_plain_names(name):
    assert not mfsha_redact.looks_secret(name)


def test_hidden_shows_no_content():
    assert mfsha_redact.hidden(SECRET) == "<hidden: 16 characters>"


def test_the_drbd_module_masks_a_failed_command():
    line = next(x for x in (FIX / "drbdadm-9-dry-up.txt").read_text().splitlines() if "shared-secret" in x)
    res = {"retcode": 10, "stdout": "", "stderr": f"Command '{line}' terminated with exit code 10"}
    calls = []

    def run_all(cmd, **kw):
        calls.append(kw)
        return res

    drbd = load_salt_module("_modules/drbd.py", salt={"cmd.run_all": run_all})
    with pytest.raises(Exception) as err:
        drbd.adjust("r0")
    assert SECRET not in str(err.value) and "exit code 10" in str(err.value)
    assert calls[0]["output_loglevel"] == "quiet"  # Salt does not log drbdadm's output either
