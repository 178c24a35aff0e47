"""How messages leave: the key that signs their links, DKIM, the transport, and one-off messages.

The outbox (usecases/issues.py) and the one-off messages (a test copy, a confirmation) use
the same pieces from here, so every message is signed and sent the same way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from ..compose.message import DkimSigner
from ..delivery.transport import Transport, open_transport
from ..errors import UsageError
from ..inputs.config import Config, Mailbox
from ..inputs.secrets import DKIM_KEY_ENV, SECRET_KEY_ENV

TEST_SUBSCRIPTION = 0  # the unsubscribe link of a test copy stands for no subscription


def tls_only_ok(config: Config) -> bool:
    """Whether TLP:RED copies may leave through the config's transport: only over TLS
    (smtps:// or smtp+starttls://), or into a Maildir on this machine, where nothing is on a wire."""
    endpoint = config.endpoint()
    return endpoint.kind == "file" or endpoint.security != "none"


def signing_key(config: Config) -> tuple[bytes, str | None]:
    """The key for unsubscribe links, and a warning when there is none to use.

    Mail that leaves for real needs the configured key, or its links would not verify.
    A Maildir preview gets a throwaway key, so a fresh checkout can try `send` at once."""
    if config.secrets.signing_key is not None:
        return config.secrets.signing_key, None
    if config.endpoint().kind == "file":
        return secrets.token_bytes(32), (
            f"{SECRET_KEY_ENV} is not set: unsubscribe links in these messages use a throwaway "
            "key and will not work (fine for a preview Maildir)"
        )
    raise UsageError(
        f"set {SECRET_KEY_ENV} before sending: it signs the unsubscribe links "
        "(at least 32 random characters; keep it the same for every run)"
    )


def signer(config: Config) -> DkimSigner | None:
    dkim = config.delivery.dkim
    if dkim is None:
        return None
    if config.secrets.dkim_key is None:
        raise UsageError(f"delivery.dkim is set in {config.path.name} but {DKIM_KEY_ENV} is empty")
    return DkimSigner(dkim.selector, dkim.domain, config.secrets.dkim_key)


def transports(config: Config) -> Callable[[], Transport]:
    """Opens a new transport of the config's kind: one per sending thread."""

    def make() -> Transport:
        return open_transport(config.delivery.transport, config.path.parent, config.secrets.smtp_password)

    return make


def send_single(config: Config, sender: str, to: Mailbox, raw: bytes) -> str:
    """One message outside the outbox (a test copy, a confirmation), signed when DKIM is set up;
    returns the transport's name."""
    sig = signer(config)
    with transports(config)() as transport:
        transport.send(sender, to.address, sig.sign(raw) if sig else raw)
        return transport.name

