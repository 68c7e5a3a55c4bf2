"""Two test hosts joined by a real OpenVPN tunnel: network namespaces "office" (the product)
and "site" (an OpenVPN server and a Modbus meter behind it), a veth pair between them.

Everything is the test's own: namespaces with a random suffix, addresses in 10.231.0.0/16 that
exist only inside them, a throwaway CA made with openssl. The VPN is the PROGNOZA kind: TLS
with the server's CA, plus a user name and password checked by the server (an
auth-user-pass-verify script). `site_net` kills every process on both hosts and
deletes the namespaces (their veth and tun devices go with them), whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from energy_pipeline_tests.conftest import REPO, cli_env, missing_external
from energy_pipeline_tests.kit.sites import write_site
from energy_pipeline_tests.netns_support import netns_host, require_netns

OFFICE_IP, SITE_IP = "10.231.0.1", "10.231.0.2"
SERVER_TUN_IP, CLIENT_TUN_IP = "10.231.1.1", "10.231.1.2"
VPN_PORT, MODBUS_PORT = 1194, 5020
USER = "plant-a"


def require_vpn_hosts() -> None:
    """Namespaces (root, `ip`), openvpn, openssl and a tun device; skip on a laptop without
    them, fail in CI."""
    require_netns()
    for program in ("openvpn", "openssl"):
        if not _which(program):
            missing_external(f"{program} not installed")
    if not Path("/dev/net/tun").exists():
        missing_external("no /dev/net/tun for openvpn")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=20)


def _pki(folder: Path) -> None:
    """A CA, a server certificate (serverAuth) and the CA file the client trusts."""
    openssl = _which("openssl") or "openssl"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(
        openssl,
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(folder / "ca.key"),
        "-out",
        str(folder / "ca.crt"),
        "-days",
        "2",
        "-subj",
        "/CN=energy-pipeline-test-ca",
    )
    _run(
        openssl,
        "req",
        *ec,
        "-keyout",
        str(folder / "server.key"),
        "-out",
        str(folder / "server.csr"),
        "-subj",
        "/CN=site-a-vpn",
    )
    (folder / "server.ext").write_text(
        "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyAgreement\n"
    )
    _run(
        openssl,
        "x509",
        "-req",
        "-in",
        str(folder / "server.csr"),
        "-CA",
        str(folder / "ca.crt"),
        "-CAkey",
        str(folder / "ca.key"),
        "-CAcreateserial",
        "-out",
        str(folder / "server.crt"),
        "-days",
        "2",
        "-extfile",
        str(folder / "server.ext"),
    )


@dataclass
class SiteNet:
    folder: Path
    office: str
    site: str
    password: str
    server: subprocess.Popen[bytes] | None = None
    meter: subprocess.Popen[str] | None = None
    procs: list[subprocess.Popen] = field(default_factory=list)

    # -- the site host -------------------------------------------------------------------

    def start_server(self) -> None:
        """The OpenVPN server in the site namespace; returns once its tunnel address exists."""
        log = (self.folder / "server.log").open("ab")
        self.server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.site,
                _which("openvpn") or "openvpn",
                "--cd",
                str(self.folder),
                "--config",
                "server.conf",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(self.server)
        deadline = time.monotonic() + 10
        while SERVER_TUN_IP not in self.ns_output(self.site, "ip", "-4", "addr", "show"):
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"openvpn server did not start: {self.server_log()[-2000:]}")
            time.sleep(0.05)

    def stop_server(self) -> None:
        assert self.server is not None
        self.server.terminate()
        self.server.wait(10)

    def server_log(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")

    def start_meter(self) -> None:
        """The Janitza, listening only on the server's tunnel address."""
        self.meter = subprocess.Popen(
            self.netns(
                self.site,
                sys.executable,
                "-m",
                "energy_pipeline_tests.vpn_modbus_server",
                SERVER_TUN_IP,
                str(MODBUS_PORT),
            ),
            stdout=subprocess.PIPE,
            text=True,
            env=cli_env(),
            cwd=REPO,
        )
        self.procs.append(self.meter)
        assert self.meter.stdout is not None
        assert self.meter.stdout.readline().strip() == "listening"

    # -- the office host -----------------------------------------------------------------

    def netns(self, ns: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def ns_output(self, ns: str, *argv: str) -> str:
        return subprocess.run(
            self.netns(ns, *argv), capture_output=True, text=True, timeout=20, check=False
        ).stdout

    def env(self) -> dict[str, str]:
        return cli_env({"SITE_A_VPN_AUTH_FILE": str(self.folder / "auth.txt")})

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`energy-pipeline ARGS` on the office host."""
        return subprocess.run(
            self.netns(self.office, sys.executable, "-m", "energy_pipeline", *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=REPO,
            check=False,
        )

    def cli_background(self, *args: str, stderr: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self.netns(self.office, sys.executable, "-m", "energy_pipeline", *args),
            stderr=stderr.open("ab"),
            stdout=subprocess.DEVNULL,
            env=self.env(),
            cwd=REPO,
        )
        self.procs.append(proc)
        return proc

    def office_pids(self) -> list[int]:
        out = subprocess.run(
            ["ip", "netns", "pids", self.office],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        return [int(p) for p in out.split()]

    def office_openvpn(self) -> list[int]:
        """openvpn processes running on the office host."""
        found = []
        for pid in self.office_pids():
            with contextlib.suppress(OSError):
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                if Path(os.fsdecode(argv0)).name == "openvpn":
                    found.append(pid)
        return found

    def site_config(self, data_dir: Path, *extra: str, **tunnel: object) -> Path:
        """The office's site file: the Janitza behind tunnel site-a (auto unless told)."""
        vpn = {
            "config": "site-a.ovpn",
            "auth": "${SITE_A_VPN_AUTH_FILE}",
            "auto": True,
            "connect_timeout": 15,
            **tunnel,
        }
        umg1 = {
            "id": "umg1",
            "driver": "modbus",
            "profile": "janitza_umg509pro",
            "interval": 1,
            "vpn": "site-a",
            "connection": {
                "transport": "tcp",
                "host": SERVER_TUN_IP,
                "port": MODBUS_PORT,
                "timeout": 0.5,
                "retries": 0,
            },
        }
        return write_site(
            self.folder,
            [umg1],
            data_dir=data_dir,
            collector={"seal_delay": 1, "backoff_initial": 0.5, "backoff_max": 1},
            extra=f"vpn: {json.dumps({'site-a': vpn})}\n" + "".join(extra),
        )

    def close(self) -> None:
        """Every process on both hosts goes; the namespaces themselves go with `netns_host`."""
        for ns in (self.office, self.site):
            out = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10, check=False
            ).stdout
            for pid in out.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def site_net(folder: Path) -> Iterator[SiteNet]:
    require_vpn_hosts()
    folder.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(3)
    with contextlib.ExitStack() as stack:
        office = stack.enter_context(netns_host("office"))[-1]
        site = stack.enter_context(netns_host("site"))[-1]
        net = SiteNet(folder, office, site, secrets.token_urlsafe(12))
        stack.callback(net.close)  # before the namespaces go
        office_if, site_if = f"epo{tag}", f"eps{tag}"
        _run("ip", "link", "add", office_if, "type", "veth", "peer", "name", site_if)
        _run("ip", "link", "set", office_if, "netns", net.office)
        _run("ip", "link", "set", site_if, "netns", net.site)
        _run("ip", "-n", net.office, "addr", "add", f"{OFFICE_IP}/30", "dev", office_if)
        _run("ip", "-n", net.site, "addr", "add", f"{SITE_IP}/30", "dev", site_if)
        _run("ip", "-n", net.office, "link", "set", office_if, "up")
        _run("ip", "-n", net.site, "link", "set", site_if, "up")
        _write_vpn_files(net)
        net.start_server()
        net.start_meter()
        yield net


def _write_vpn_files(net: SiteNet) -> None:
    folder = net.folder
    _pki(folder)
    check = folder / "check-user.sh"
    check.write_text(
        "#!/bin/sh\n"
        f'[ "$(sed -n 1p "$1")" = "{USER}" ] && [ "$(sed -n 2p "$1")" = "{net.password}" ]\n'
    )
    check.chmod(0o700)
    auth = folder / "auth.txt"
    auth.write_text(f"{USER}\n{net.password}\n")
    auth.chmod(0o600)
    (folder / "server.conf").write_text(
        f"dev tun\nproto udp\nport {VPN_PORT}\nlocal {SITE_IP}\n"
        "server 10.231.1.0 255.255.255.0\ntopology subnet\n"
        "ca ca.crt\ncert server.crt\nkey server.key\ndh none\n"
        "verify-client-cert none\nusername-as-common-name\n"
        "script-security 2\nauth-user-pass-verify check-user.sh via-file\n"
        "keepalive 1 2\nverb 3\n"
    )
    (folder / "site-a.ovpn").write_text(
        f"client\ndev tun\nproto udp\nremote {SITE_IP} {VPN_PORT}\nnobind\n"
        "ca ca.crt\nremote-cert-tls server\nauth-user-pass\n"
        "connect-retry 1 1\nverb 3\n"
    )
