"""The one place where mfsha hides secrets: pillar values, command output, exception and event text.

Secrets mfsha handles: heartbeat's `auth_key` (authkeys) and DRBD's `shared-secret`. They reach text in three ways:
a pillar value shown in a validation error (a typo'd key such as `secrte:` is not known to be a secret, so the value
of an unknown key is never shown at all), drbdadm's own messages (a failing step is reported as `Command
'drbdsetup ... --shared-secret=XYZ ...' terminated with exit code N`), and file content (authkeys, the .res file).
Pure Python, no Salt: unit-tested directly.
"""
import difflib
import re

MASK = "******"
# Leaf names of pillar keys whose values are secrets, and words that make any key name look like one.
SECRET_KEYS = ("secret", "auth_key", "password", "passwd", "token", "key")
SECRET_WORDS = ("secret", "pass", "auth", "token", "key", "cred")
# Secrets as drbdadm/drbdsetup, heartbeat's authkeys and DRBD .res files write them.
PATTERNS = (
    re.compile(r"(--shared-secret[= ])(\S+)"),
    re.compile(r"(shared-secret\s+)(\"[^\"]*\"|\S+)"),
    re.compile(r"(^\s*\d+\s+(?:sha1|md5|crc)\s+)(\S+)", re.M),
)


def looks_secret(name):
    """A key name that is, or is close to (a typo of), a secret's name."""
    leaf = str(name).rsplit(":", 1)[-1].lower()
    return any(w in leaf for w in SECRET_WORDS) or bool(difflib.get_close_matches(leaf, SECRET_KEYS, 1, 0.7))


def hidden(value):
    """What a message shows instead of a secret value: its type and length, nothing of its content."""
    if value == "":
        return "''"  # a missing secret: nothing to hide
    size = f"{len(value)} characters" if isinstance(value, (str, bytes)) else type(value).__name__
    return f"<hidden: {size}>"


def text(message, secrets=()):
    """`message` with every known secret carrier masked (PATTERNS) and every value of `secrets` replaced."""
    out = str(message)
    for secret in secrets:
        if secret and len(str(secret)) >= 4:
            out = out.replace(str(secret), MASK)
    for pattern in PATTERNS:
        out = pattern.sub(lambda m: m.group(1) + MASK, out)
    return out
