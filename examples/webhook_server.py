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

    ZIMAGE_API_KEY=... ZIMAGE_CALLBACK_URL=https://example.com/hooks/zimage \\
        python examples/webhook_server.py --port 8080
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import aiohttp
from aiohttp import web

import zimage_async
from zimage_async.emulator import Emulator

SESSION = web.AppKey("session", zimage_async.Session)
PROMPTS = ["a lighthouse at dusk", "a red fox in the snow", "a paper boat"]


async def generate(request: web.Request) -> web.Response:
    """``GET /generate?prompt=...``: generate one image and answer with its bytes."""
    prompt = request.query.get("prompt", "a cute cat")
    try:
        result = await request.app[SESSION].generate(prompt)
    except zimage_async.ZImageError as exc:
        raise web.HTTPBadGateway(text=f"{exc}\n") from exc
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


async def serve(port: int) -> None:
    """Serve on *port* against the real API until interrupted."""
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
            await web.TCPSite(runner, "0.0.0.0", port).start()  # noqa: S104 - a server
            print(f"serving on port {port}; callbacks expected at {callback_url}")
            await asyncio.Event().wait()  # until Ctrl-C
        finally:
            await runner.cleanup()


def main() -> None:
    """Serve with a key set, else run the offline demo."""
    if os.environ.get("ZIMAGE_API_KEY"):
        port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 8080
        asyncio.run(serve(port))
    else:
        asyncio.run(demo())


if __name__ == "__main__":
    main()
