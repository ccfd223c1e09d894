// The page's side of the phone-number flow, through a client whose types are generated
// from the running service's /openapi.json (generated/api.d.ts). The API's address and
// the user's token come in the query string, as a real frontend would get them from its
// configuration and its login.
import createClient from "openapi-fetch";
import type { paths } from "../generated/api";

const query = new URLSearchParams(location.search);
const api = createClient<paths>({ baseUrl: query.get("api") ?? "" });
const headers = { Authorization: `Bearer ${query.get("token") ?? ""}` };
let verificationToken = "";

function show(id: string, text: string): void {
  const element = document.getElementById(id);
  if (element) element.textContent = text;
}

function input(id: string): string {
  return (document.getElementById(id) as HTMLInputElement).value;
}

/** Runs one call and shows its status and body, or why the browser refused to show it. */
async function run(id: string, call: () => Promise<{ response: Response; data?: unknown; error?: unknown }>) {
  try {
    const { response, data, error } = await call();
    const limit = response.headers.get("RateLimit");
    const body = JSON.stringify(data ?? error ?? null);
    show(id, `${response.status} ${body}${limit ? ` ratelimit=${limit}` : ""}`);
  } catch (failure) {
    show(id, `blocked: ${String(failure)}`);
  }
}

document.getElementById("bind")?.addEventListener("click", () =>
  run("bind-answer", async () => {
    const answer = await api.PUT("/v1/me/phone-number", {
      headers: { ...headers, "Idempotency-Key": crypto.randomUUID() },
      body: { phoneNumber: input("phone") },
    });
    verificationToken = answer.data?.verificationToken ?? "";
    return answer;
  }),
);

document.getElementById("verify")?.addEventListener("click", () =>
  run("verify-answer", () =>
    api.POST("/v1/me/phone-number/verification", {
      headers,
      body: { verificationToken, code: input("code") },
    }),
  ),
);

document.getElementById("read")?.addEventListener("click", () =>
  run("read-answer", () => api.GET("/v1/me/phone-number", { headers })),
);

document.getElementById("unbind")?.addEventListener("click", () =>
  run("unbind-answer", () => api.DELETE("/v1/me/phone-number", { headers })),
);
