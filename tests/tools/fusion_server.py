"""A small server that implements SandboxFusion's /run_code contract for real, by running the code
in a LocalSandbox. The SandboxFusion client is tested against it (and against canned answers).

Extra routes for failure tests: /flaky/run_code answers 503 twice, then works;
/broken/run_code always answers {"status": "SandboxError"}.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from torl.tools import LocalSandbox


def to_fusion(r) -> dict[str, Any]:
    """A ToolResult as SandboxFusion would report the run (stderr gets the traceback)."""
    stdout, stderr = r.output, ""
    if r.status != "ok" and "Traceback (most recent call last):" in r.output:
        i = r.output.rindex("Traceback (most recent call last):")
        stdout, stderr = r.output[:i], r.output[i:]
    elif r.status != "ok" and r.error:
        stderr = r.error + "\n"
    run_status = {"ok": "Finished", "timeout": "TimeLimitExceeded"}.get(r.status, "Finished")
    code = {"ok": 0, "killed": -9, "timeout": None}.get(r.status, 1)
    return {
        "status": "Success" if r.ok else "Failed",
        "message": "",
        "compile_result": None,
        "run_result": {
            "status": run_status,
            "execution_time": r.duration_s,
            "return_code": code,
            "stdout": stdout,
            "stderr": stderr,
        },
        "executor_pod_name": None,
        "files": {},
    }


def make_app(sandbox: LocalSandbox) -> FastAPI:
    calls = {"flaky": 0}

    @asynccontextmanager
    async def lifespan(app):
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/run_code")
    async def run_code(req: Request):
        body = await req.json()
        if body.get("language") != "python" or not isinstance(body.get("code"), str):
            return JSONResponse({"status": "SandboxError", "message": "bad request"}, status_code=400)
        return to_fusion(await sandbox.execute(body["code"]))

    @app.post("/flaky/run_code")
    async def flaky(req: Request):
        calls["flaky"] += 1
        if calls["flaky"] % 3:
            return JSONResponse({"detail": "overloaded"}, status_code=503)
        return await run_code(req)

    @app.post("/broken/run_code")
    async def broken(req: Request):
        return {"status": "SandboxError", "message": "executor pod crashed", "run_result": None}

    return app


@asynccontextmanager
async def serve(sandbox: LocalSandbox):
    """Run the app on 127.0.0.1 (a free port) in this event loop; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(make_app(sandbox), host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
