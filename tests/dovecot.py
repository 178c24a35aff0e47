"""A throwaway Dovecot IMAP server for tests: Debian's dovecot-imapd on a loopback port, TLS
with a certificate from a throwaway CA (`dovecot.cafile`), one mailbox per user, any user
logging in with `dovecot.password`. Skips where Dovecot is not installed or we are not root.

    with imaplib.IMAP4_SSL("127.0.0.1", dovecot.port, ssl_context=...) as imap: ...
    dovecot.url("bounces")        imaps://bounces@127.0.0.1:PORT/INBOX
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from .ports import free_port, wait_listening


class Dovecot:
    password = "imap-s3cret"

    def __init__(self, folder: Path) -> None:
        if os.geteuid() != 0 or shutil.which("dovecot") is None:
            pytest.skip("a throwaway Dovecot needs root and Debian's dovecot-imapd (.ci/run installs it)")
        os.chmod(folder, 0o755)
        ca = trustme.CA()
        certificate = ca.issue_cert("127.0.0.1", "localhost")
        certificate.private_key_pem.write_to_path(folder / "key.pem")
        certificate.cert_chain_pems[0].write_to_path(folder / "cert.pem")
        ca.cert_pem.write_to_path(folder / "ca.pem")
        self.cafile = str(folder / "ca.pem")
        self.port = free_port()
        nobody = pwd.getpwnam("nobody")
        home = folder / "home"
        home.mkdir()
        shutil.chown(home, nobody.pw_uid, nobody.pw_gid)
        self.folder = folder
        (folder / "dovecot.conf").write_text(f"""\
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{folder}/cert.pem
ssl_key = <{folder}/key.pem
auth_mechanisms = plain login
passdb {{
  driver = static
  args = password={self.password}
}}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={home}/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
}}
""")
        self.process = subprocess.Popen(["dovecot", "-c", str(folder / "dovecot.conf"), "-F"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port, self.process, "dovecot")

    def url(self, user: str, folder: str = "INBOX") -> str:
        return f"imaps://{user}@127.0.0.1:{self.port}/{folder}"

    def connect(self, user: str) -> imaplib.IMAP4_SSL:
        context = ssl.create_default_context()
        context.load_verify_locations(self.cafile)
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context)
        imap.login(user, self.password)
        return imap

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    folder = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    server = Dovecot(folder)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)
