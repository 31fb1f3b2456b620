r"""An aiohttp service that generates images and is told by callback when they are done.

The service has two routes: ``GET /generate?prompt=...`` answers with the image, and
``POST /hooks/zimage`` is the :class:`zimage_async.CallbackReceiver` the provider calls
back. Awaiting a generation finishes as soon as the callback arrives (after the task was
fetched from the API, since callbacks are not signed), with slow polling as a fallback.

Offline (no ``ZIMAGE_API_KEY``), it runs against the bundled emulator, asks itself for
three images and prints what it cost in task fetches::

    python examples/webhook_server.py

With the real service, give it the public HTTPS URL under which your TLS proxy forwards
to this process's ``/hooks/zimage``, and it serves until stopped::

    ZIMAGE_API_KEY=... ZIMAGE_CALLBACK_URL=https://example.com/hooks/zimage?token=... \\
        python examples/webhook_server.py --port 8080

It listens on 127.0.0.1 only, for the TLS proxy on the same machine: ``GET /generate``
asks for no credentials, and anyone who can reach it can have billed tasks made. Widen
it with ``--host`` (``--host 0.0.0.0``: every interface) only behind a proxy that
authenticates the callers of ``/generate``. The callback URL is printed without its
query, which holds the token, and a failed generation is answered with a plain 502:
the SDK's error text stays in this process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import aiohttp
from aiohttp import web

import zimage_async
from zimage_async._transport import redact_url  # the SDK's own: a URL without its query
from zimage_async.emulator import Emulator

SESSION = web.AppKey("session", zimage_async.Session)
PROMPTS = ["a lighthouse at dusk", "a red fox in the snow", "a paper boat"]


async def generate(request: web.Request) -> web.Response:
    """``GET /generate?prompt=...``: generate one image and answer with its bytes."""
    prompt = request.query.get("prompt", "a cute cat")
    try:
        result = await request.app[SESSION].generate(prompt)
    except zimage_async.ZImageError as exc:
        # Logged here, not told the caller: an SDK error may name tasks and the service.
        print(f"a generation failed: {type(exc).__name__}", file=sys.stderr)
        raise web.HTTPBadGateway(text="the image could not be generated\n") from exc
    image = result.image
    return web.Response(body=image.data, content_type=image.content_type)


def make_app(receiver: zimage_async.CallbackReceiver) -> web.Application:
    """Build the service: the receiver is one route among the application's own."""
    app = web.Application()
    app.router.add_post("/hooks/zimage", receiver.receive)
    app.router.add_get("/generate", generate)
    return app


async def demo() -> None:
    """Run the service on loopback against the emulator and ask it for a few images."""
    receiver = zimage_async.CallbackReceiver()
    app = make_app(receiver)
    # Bind first: the session must know the callback URL (with its port) before it opens.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # "permissive" lets the emulator call back to loopback; the real service never does.
    async with (
        Emulator(task_duration=1.0, callback_mode="permissive") as emu,
        zimage_async.Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            callbacks=receiver,
            callback_url=f"{base}/hooks/zimage",
        ) as session,
    ):
        app[SESSION] = session
        # No access log: it would write each request line, a callback URL's token included.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            async with aiohttp.ClientSession() as client:

                async def ask(prompt: str) -> int:
                    url = f"{base}/generate"
                    async with client.get(url, params={"prompt": prompt}) as reply:
                        reply.raise_for_status()
                        return len(await reply.read())

                sizes = await asyncio.gather(*(ask(prompt) for prompt in PROMPTS))
        finally:
            await runner.cleanup()
        for prompt, size in zip(PROMPTS, sizes, strict=True):
            print(f"{prompt!r}: {size} bytes")
        print(
            f"{len(sizes)} images, {emu.request_counts['task']} task fetches, "
            f"{receiver.accepted} callbacks received"
        )


async def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve on *host* and *port* (0: any free port) against the real API until interrupted."""
    callback_url = os.environ.get("ZIMAGE_CALLBACK_URL")
    if not callback_url:
        sys.exit("set ZIMAGE_CALLBACK_URL to the public https URL of /hooks/zimage")
    receiver = zimage_async.CallbackReceiver()
    app = make_app(receiver)
    async with zimage_async.Session(callbacks=receiver, callback_url=callback_url) as session:
        app[SESSION] = session
        # No access log: it would write each request line, a callback URL's token included.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            bound_host, bound_port = runner.addresses[0][:2]
            shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
            # The query holds the receiver's token: never printed.
            hidden = "?***" if "?" in callback_url else ""
            print(
                f"serving on http://{shown_host}:{bound_port}/; callbacks expected at "
                f"{redact_url(callback_url)}{hidden}",
                flush=True,
            )
            await asyncio.Event().wait()  # until Ctrl-C
        finally:
            await runner.cleanup()


def _option(name: str, default: str) -> str:
    """Return the value after *name* on the command line, or *default*."""
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def main() -> None:
    """Serve with a key set, else run the offline demo."""
    if os.environ.get("ZIMAGE_API_KEY"):
        asyncio.run(serve(int(_option("--port", "8080")), _option("--host", "127.0.0.1")))
    else:
        asyncio.run(demo())


if __name__ == "__main__":
    main()
