// Checking a reply in the browser, trusting neither this server nor its word that it checked: the
// page recomputes both hashes from the request and the text, reads the node's key from the
// NodeRegistry contract on the chain, and checks the RSA-PSS signature with WebCrypto
// (app/proxy/verify.py does the same on the server; the canonical form is byte for byte the same).
import { Contract, concat, decodeBase64, getBytes, keccak256, toBeHex, toUtf8Bytes, zeroPadValue } from "ethers";
import { api } from "./api.js";
import { config } from "./config.js";
import { readProvider } from "./wallet.js";

// ---------------------------------------------------------------- canonical request (verify.py)

function canonicalMessage(message) {
  const role = message.role;
  if (role === "system" || role === "developer") return { role: "system", content: message.content ?? null };
  if (role === "user") return { role: "user", content: canonicalUserContent(message.content) };
  if (role === "assistant") {
    const canonical = { role: "assistant", content: message.content || "" };
    if (message.tool_calls?.length) {
      canonical.tool_calls = message.tool_calls.map((call) => ({
        id: call.id ?? "", type: call.type ?? "function",
        function: { name: call.function?.name ?? "", arguments: call.function?.arguments ?? "" },
      }));
    }
    return canonical;
  }
  if (role === "tool") return { role: "tool", content: message.content ?? null, tool_call_id: message.tool_call_id ?? null };
  throw new Error(`unknown message role: ${role}`);
}

function canonicalUserContent(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return String(content);
  return content.map((part) => {
    if (typeof part !== "object" || part === null) return { type: "text", text: String(part) };
    if (part.type === "text") return { type: "text", text: part.text || "" };
    const entry = { type: part.type ?? null };
    const filename = part.file?.filename || part.filename;
    if (filename) entry.filename = filename;
    return entry;
  });
}

// A float as Python's repr writes it (0.0, 0.7): the temperature is always one.
class PyFloat { constructor(value) { this.value = value; } }

function canonicalRequest(body) {
  const canonical = {
    model: body.model,
    messages: body.messages.map(canonicalMessage),
    temperature: new PyFloat(body.temperature ?? 0),
  };
  if (body.max_tokens !== undefined && body.max_tokens !== null) canonical.max_tokens = body.max_tokens;
  for (const optional of ["stop", "tools", "response_format"]) {
    const value = body[optional];
    if (value && !(Array.isArray(value) && !value.length) && !(typeof value === "object" && !Object.keys(value).length)) {
      canonical[optional] = value;
    }
  }
  return canonical;
}

// json.dumps(value, sort_keys=True): ", " and ": " separators, non-ASCII escaped as \uXXXX.
export function pythonJson(value) {
  if (value instanceof PyFloat) return Number.isInteger(value.value) ? `${value.value}.0` : String(value.value);
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") {
    return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  }
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((key) => `${pythonJson(key)}: ${pythonJson(value[key])}`).join(", ")}}`;
}

const bare = (hex) => hex.toLowerCase().replace(/^0x/, "");

// ---------------------------------------------------------------- the node, from the chain

let registryAbi = null;

async function nodeFromRegistry(teeId) {
  registryAbi ??= await api("/abi/NodeRegistry.json");
  const registry = new Contract(config.node_registry_address, registryAbi, readProvider());
  const node = await registry.getNode(teeId);
  return {
    endpoint: node.endpoint, approved: node.approved, enabled: node.enabled,
    registeredAt: new Date(Number(node.registeredAt) * 1000), publicKeyDer: getBytes(node.signingPublicKey),
  };
}

// ---------------------------------------------------------------- the check

// { ok, problem, node, requestHash, outputHash }: `problem` says in words what did not match.
export async function verifyInBrowser(attestation) {
  const requestHash = bare(keccak256(toUtf8Bytes(pythonJson(canonicalRequest(attestation.request_body)))));
  const outputHash = bare(keccak256(toUtf8Bytes(attestation.output)));
  const result = { ok: false, problem: "", node: null, requestHash, outputHash };
  if (requestHash !== bare(attestation.request_hash)) {
    result.problem = "the request this reply answered is not the one that was signed";
    return result;
  }
  if (outputHash !== bare(attestation.output_hash)) {
    result.problem = "the text shown is not the text the node signed";
    return result;
  }
  try {
    result.node = await nodeFromRegistry(attestation.tee_id);
  } catch {
    result.problem = "the node is not in the NodeRegistry contract";
    return result;
  }
  if (bare(keccak256(result.node.publicKeyDer)) !== bare(attestation.tee_id)) {
    result.problem = "the registry's key for this node is not the key that signed";
    return result;
  }
  const key = await crypto.subtle.importKey("spki", result.node.publicKeyDer, { name: "RSA-PSS", hash: "SHA-256" },
    false, ["verify"]);
  const digest = getBytes(keccak256(concat([`0x${requestHash}`, `0x${outputHash}`,
    zeroPadValue(toBeHex(BigInt(attestation.timestamp)), 32)])));
  const valid = await crypto.subtle.verify({ name: "RSA-PSS", saltLength: 32 }, key,
    decodeBase64(attestation.signature), digest);
  if (!valid) result.problem = "the signature does not verify against the node's registered key";
  result.ok = valid;
  return result;
}
