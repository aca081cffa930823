"""A real SMTP server for the email tests (aiosmtpd, installed by scripts/python-env).

Every accepted message is written to --dir as its own file (written whole, then renamed), named
after the arrival order and the recipient. Prints `PORT <n>` once it accepts connections and
runs until killed.

Options: --auth USER:PASSWORD requires a login (AUTH PLAIN/LOGIN, allowed without TLS here);
--reject ADDRESS answers 550 to that recipient (repeatable); --tempfail ADDRESS answers 451 to
that recipient the first time only (repeatable); --cert/--key require STARTTLS with that
certificate; --delay SECONDS waits before accepting each message.
"""

import argparse
import os
import socket
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Handler:
    def __init__(self, args):
        self.dir = args.dir
        self.reject = {a.lower() for a in args.reject}
        self.tempfail = {a.lower() for a in args.tempfail}
        self.delay = args.delay
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address.lower() in self.tempfail:
            self.tempfail.discard(address.lower())
            return "451 4.7.1 <%s>: greylisted, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            time.sleep(self.delay)
        self.count += 1
        name = "%06d-%s.eml" % (self.count, envelope.rcpt_tos[0].replace("/", "_"))
        tmp = os.path.join(self.dir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.dir, name))
        return "250 2.0.0 Ok: queued"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--auth")
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--tempfail", action="append", default=[])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--delay", type=float, default=0.0)
    args = p.parse_args()

    kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            # handled=False: aiosmtpd answers 535 itself (with the default it answers nothing).
            return AuthResult(success=ok, handled=ok)

        kwargs.update(
            authenticator=authenticator, auth_required=True, auth_require_tls=False
        )
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        kwargs.update(require_starttls=True, tls_context=context)

    port = free_port()
    controller = Controller(
        Handler(args), hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs
    )
    controller.start()
    print("PORT %d" % port, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
