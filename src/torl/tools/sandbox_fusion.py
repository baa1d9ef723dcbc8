"""`SandboxFusionSandbox`: run cells on a SandboxFusion server over HTTP (what ToRL used).

The server's /run_code contract: POST {"code", "language": "python", "run_timeout", ...} ->
{"status": "Success" | "Failed" | "SandboxError", "message", "run_result": {"status":
"Finished" | "TimeLimitExceeded" | "Error", "return_code", "stdout", "stderr", "execution_time"}}.
Limits other than time are the server's own; output is truncated here. No sessions.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from torl.core import ToolResult
from torl.tools.sandbox import Limits, Sandbox, limits_from, truncate_middle


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def parse_run_code(reply: dict[str, Any], limits: Limits, duration_s: float = 0.0) -> ToolResult:
    """Turn a /run_code answer into a `ToolResult`.

    `duration_s` is what the caller waited (the client's wall clock, retries included), not the server's
    `execution_time`, which leaves out its queueing, process start and clean-up."""
    run = reply.get("run_result") or {}
    stdout, stderr = str(run.get("stdout") or ""), str(run.get("stderr") or "")
    output, truncated = truncate_middle(stdout + stderr, limits.max_output)
    res = {"output": output, "truncated": truncated, "duration_s": duration_s}
    if reply.get("status") == "SandboxError" or not run:
        return ToolResult(status="sandbox_error", error=str(reply.get("message") or "SandboxError"), **res)
    if run.get("status") == "TimeLimitExceeded":
        return ToolResult(
            status="timeout", error=f"wall-clock limit ({limits.timeout_s:g} s) exceeded", **res
        )
    code = run.get("return_code")
    if run.get("status") == "Finished" and code in (0, None):
        return ToolResult(status="ok", **res)
    last = _last_line(stderr)
    if last.split(":")[0].endswith("MemoryError"):
        return ToolResult(status="memory", error=f"memory limit exceeded: {last}", **res)
    if isinstance(code, int) and code < 0:
        return ToolResult(status="killed", error=f"killed by signal {-code}", **res)
    return ToolResult(status="error", error=last or f"exited with code {code}", **res)


class SandboxFusionSandbox(Sandbox):
    """A client of a SandboxFusion server (`/run_code`), for users who already run one.

    Args:
        url: the server, e.g. "http://localhost:8080" (the client posts to url + "/run_code").
        timeout_s, max_output, limits: per-cell limits; time is enforced by the server, output here.
        memory_mb: sent as `memory_limit_MB` when given.
        max_concurrency: requests in flight at once (many trajectories share this client).
        retries: retries for connection errors and 5xx answers (with backoff).
        request_timeout_s: HTTP timeout; default the cell's time limit + 10 s.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        max_output: int | None = None,
        *,
        limits: Limits | None = None,
        max_concurrency: int = 64,
        retries: int = 2,
        request_timeout_s: float | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if max_concurrency < 1 or retries < 0:
            raise ValueError("max_concurrency must be >= 1 and retries >= 0")
        self.url = url.rstrip("/") + "/run_code"
        self.limits = limits_from(limits, timeout_s=timeout_s, max_output=max_output)
        self.memory_mb = memory_mb
        self.retries = retries
        self.request_timeout_s = request_timeout_s or self.limits.timeout_s + 10.0
        self.max_concurrency = max_concurrency
        self._sem = asyncio.Semaphore(max_concurrency)
        self._client: Any = None

    async def setup(self) -> None:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                timeout=self.request_timeout_s,
                limits=httpx.Limits(
                    max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
                ),
            )

    async def teardown(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def execute(
        self, code: str, session: str | None = None, *, limits: Limits | None = None
    ) -> ToolResult:
        if not isinstance(code, str):
            return ToolResult.failure("error", f"code must be a str, got {type(code).__name__}")
        if session is not None:
            return ToolResult.failure("error", "SandboxFusionSandbox has no sessions (session must be None)")
        if self._client is None:
            raise RuntimeError("SandboxFusionSandbox is not started (use `async with` or await start())")
        import httpx

        lim = limits or self.limits
        body: dict[str, Any] = {"code": code, "language": "python", "run_timeout": lim.timeout_s}
        if self.memory_mb is not None:
            body["memory_limit_MB"] = self.memory_mb
        start = time.monotonic()  # what the caller waits: from here to the answer
        error = ""
        async with self._sem:
            for attempt in range(self.retries + 1):
                try:
                    r = await self._client.post(self.url, json=body)
                    if r.status_code < 500:
                        r.raise_for_status()
                        return parse_run_code(r.json(), lim, time.monotonic() - start)
                    error = f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.TimeoutException:
                    return ToolResult.failure(
                        "timeout",
                        f"no answer from {self.url} within {self.request_timeout_s:g} s",
                        duration_s=time.monotonic() - start,
                    )
                except (httpx.HTTPError, ValueError) as e:
                    error = f"{type(e).__name__}: {e}"
                if attempt < self.retries:
                    await asyncio.sleep(0.2 * 2**attempt)
        return ToolResult.failure(
            "sandbox_error", f"SandboxFusion request failed: {error}", duration_s=time.monotonic() - start
        )
