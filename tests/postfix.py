"""A throwaway Postfix for tests: Debian's package, its own configuration and queue in a
temporary folder, listening on a loopback port, so a message to a user who does not exist
comes back as a real Postfix DSN.

    postfix.url                   smtp://127.0.0.1:PORT, what `newsletter send --transport` takes
    postfix.unknown_user          an address Postfix takes at SMTP and then bounces (local(8): no such user)
    postfix.returned(n)           the n messages delivered back to DOMAIN, from its Maildir

Mail for the site's domain (`threat-digest.example.org`: the sender, the VERP and unsubscribe
addresses) is delivered into `postfix.maildir`, as a bounce mailbox would be. Nothing leaves
the machine: every other domain is refused by the `error` transport. Needs root (Postfix's
master runs as root and its delivery agents as `nobody`), else the tests that use it skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from .ports import free_port, wait_listening

DOMAIN = "threat-digest.example.org"
DAEMONS = "/usr/lib/postfix/sbin"
SERVICES = """\
{port} inet n  -  n  -  -  smtpd
pickup    unix  n  -  n  60    1  pickup
cleanup   unix  n  -  n  -     0  cleanup
qmgr      unix  n  -  n  300   1  qmgr
rewrite   unix  -  -  n  -     -  trivial-rewrite
bounce    unix  -  -  n  -     0  bounce
defer     unix  -  -  n  -     0  bounce
trace     unix  -  -  n  -     0  bounce
verify    unix  -  -  n  -     1  verify
flush     unix  n  -  n  1000? 0  flush
proxymap  unix  -  -  n  -     -  proxymap
smtp      unix  -  -  n  -     -  smtp
relay     unix  -  -  n  -     -  smtp
showq     unix  n  -  n  -     -  showq
error     unix  -  -  n  -     -  error
retry     unix  -  -  n  -     -  error
discard   unix  -  -  n  -     -  discard
local     unix  -  n  n  -     -  local
virtual   unix  -  n  n  -     -  virtual
anvil     unix  -  -  n  -     1  anvil
scache    unix  -  -  n  -     1  scache
postlog   unix-dgram n  -  n  -  1  postlogd
"""


class Postfix:
    def __init__(self, folder: Path) -> None:
        if os.geteuid() != 0 or not Path(DAEMONS, "master").exists():
            pytest.skip("a throwaway Postfix needs root and Debian's postfix package (.ci/run installs it)")
        self.folder = folder
        self.port = free_port()
        etc, queue, data, self.maildir_base = (folder / name for name in ("etc", "queue", "data", "vmail"))
        for path in (etc, queue, data, self.maildir_base):
            path.mkdir(parents=True)
        for name in ("postfix-files", "dynamicmaps.cf"):
            shutil.copy(f"/etc/postfix/{name}", etc / name)
        for name in ("postfix-files.d", "dynamicmaps.cf.d"):
            if Path(f"/etc/postfix/{name}").is_dir():
                shutil.copytree(f"/etc/postfix/{name}", etc / name)
        nobody = pwd.getpwnam("nobody")
        (etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
config_directory = {etc}
meta_directory = {etc}
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.lost.example.net
mydomain = lost.example.net
myorigin = lost.example.net
mydestination = lost.example.net
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
relayhost =
default_transport = error:mail for other domains does not leave this test
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {self.maildir_base}
virtual_mailbox_maps = static:returned/
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
smtputf8_enable = no
biff = no
delay_warning_time = 0
""")
        (etc / "master.cf").write_text(SERVICES.format(port=f"127.0.0.1:{self.port}"))
        self._run(f"{DAEMONS}/post-install", f"config_directory={etc}", f"meta_directory={etc}", "create-missing")
        shutil.chown(data, "postfix")
        os.chmod(folder, 0o755)
        shutil.chown(self.maildir_base, nobody.pw_uid, nobody.pw_gid)
        self.etc = etc
        self.master = subprocess.Popen([f"{DAEMONS}/master", "-c", str(etc), "-d"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        wait_listening(self.port, self.master, "postfix", lambda: self.log()[-2000:])

    @staticmethod
    def _run(*command: str) -> None:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr or done.stdout}")

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def maildir(self) -> Path:
        """Where mail to DOMAIN arrives (a Maildir: new/, cur/, tmp/)."""
        return self.maildir_base / "returned"

    unknown_user = "nobody-by-this-name@lost.example.net"

    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def returned(self, count: int, timeout: float = 120.0) -> list[Path]:
        """The messages in the Maildir's new/ once there are `count` of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = sorted((self.maildir / "new").glob("*")) if (self.maildir / "new").is_dir() else []
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} messages came back within {timeout} s:\n{self.log()[-3000:]}")
            subprocess.run(["postqueue", "-c", str(self.etc), "-f"], capture_output=True)  # no waiting on the queue timer
            time.sleep(0.2)

    def clear(self) -> None:
        for sub in ("new", "cur"):
            for path in (self.maildir / sub).glob("*") if (self.maildir / sub).is_dir() else []:
                path.unlink()

    def stop(self) -> None:
        self.master.send_signal(signal.SIGTERM)
        try:
            self.master.wait(30)
        except subprocess.TimeoutExpired:
            self.master.kill()


@pytest.fixture(scope="session")
def postfix() -> Iterator[Postfix]:
    folder = Path(tempfile.mkdtemp(prefix="newsletter-postfix-"))
    server = Postfix(folder)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)
