// The read API, with the bearer token the service may require: on a 401
// the page asks for the token once (one dialog for all waiting calls),
// keeps it in sessionStorage (this tab only) and retries.

const KEY = 'healthscore.api-token';

// NotAvailable: the service has no such endpoint (an older version).
export class NotAvailable extends Error {
  constructor(path) {
    super(`${path} is not available on this service`);
    this.name = 'NotAvailable';
  }
}

// ApiError: the API answered with an error ({"error": "…"}).
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

let asking = null; // the pending token prompt, shared by concurrent calls

function askToken(rejected) {
  if (asking) return asking;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const why = document.getElementById('token-why');
  const cancel = document.getElementById('token-cancel');
  why.textContent = rejected
    ? 'The token was not accepted. Enter the API token of this service (kept in this browser tab only).'
    : 'This service needs an API token to show its data. It is kept in this browser tab only (session storage).';
  input.value = '';
  asking = new Promise((resolve) => {
    const done = (ok) => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      asking = null;
      resolve(ok);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const tok = input.value.trim();
      if (!tok) return;
      sessionStorage.setItem(KEY, tok);
      done(true);
    };
    const onCancel = (e) => {
      e.preventDefault();
      done(false);
    };
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    input.focus();
  });
  return asking;
}

async function body(resp) {
  try {
    return await resp.json();
  } catch {
    return null;
  }
}

// getJSON returns the decoded answer of GET path, or throws NotAvailable
// or ApiError.
export async function getJSON(path) {
  for (;;) {
    const headers = { Accept: 'application/json' };
    const tok = sessionStorage.getItem(KEY);
    if (tok) headers.Authorization = `Bearer ${tok}`;
    const resp = await fetch(path, { headers, cache: 'no-store' });
    const data = await body(resp);
    if (resp.ok) return data;
    const msg = (data && data.error) || `${resp.status} ${resp.statusText}`;
    if (resp.status === 401) {
      if (await askToken(Boolean(tok))) continue;
      throw new ApiError(401, 'An API token is needed to show this data.');
    }
    if (resp.status === 404 && msg.startsWith('no route for ')) throw new NotAvailable(path);
    throw new ApiError(resp.status, msg);
  }
}
