"""A throwaway PostgreSQL cluster for tests: initdb in a temporary folder, started on a free
loopback port, a fresh database per test. Skips with a clear reason where the server binaries
are missing (.ci/run installs Debian's postgresql)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from .ports import free_port


def server_binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class Cluster:
    def __init__(self, folder: Path, durable: bool = False) -> None:
        initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
        if not (initdb and pg_ctl):
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed here")
        self.folder = folder
        self.data = folder / "data"
        self.pg_ctl = pg_ctl
        # PostgreSQL refuses to run as root: then the cluster runs as the `postgres` user.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(folder, "postgres")
        self.port = free_port()
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not durable:  # tests: no need to survive a power cut
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(pg_ctl, "-D", str(self.data), "-l", str(folder / "server.log"), "-o", options, "-w", "start")
        import psycopg

        self.admin = psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True)

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.as_user, *command], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")

    def database(self) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        name = "t" + uuid.uuid4().hex[:12]
        self.admin.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.admin.close()
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
    cluster = Cluster(folder)
    yield cluster
    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)
