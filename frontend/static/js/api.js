// JSON calls to the backend. Every error the API answers is {"error": code, "detail": text}.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, data?.error ?? "http_error", data?.detail ?? response.statusText);
  }
  return data;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Ask `read` again every `intervalMs` until it returns something truthy or `timeoutMs` passes (then null).
export async function pollUntil(read, { intervalMs = 500, timeoutMs = 30_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const result = await read();
    if (result) return result;
    await sleep(intervalMs);
  }
  return null;
}
