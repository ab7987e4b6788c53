// recloop's demo storefront: plain JavaScript against the server's own HTTP API, no build step.
// Every string from the server (titles, categories, item and customer IDs, the model version,
// error messages) reaches the page as text: through el()'s children or textContent, never
// innerHTML or HTML built from strings. The page's Content-Security-Policy (serving/handlers/
// system.cc) runs only this file: no inline script, style or event-handler attribute.
'use strict';

const N = 12;  // recommendations shown
const state = {
  user: null,
  key: sessionStorage.getItem('recloop-api-key') || '',
  shown: [],      // item IDs of the list on screen
  listId: null,   // the recommendation_id of that list: feedback on it is credited to it
  busy: false,
};

const $ = (id) => document.getElementById(id);

// A new element: props become attributes (a literal 'on...' key a listener); children, strings
// or nodes, are appended as they are (a string as a text node, never parsed as HTML).
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// One call of the server's API; throws an Error carrying the server's JSON error message.
async function api(method, path, body) {
  const headers = {};
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = text;
  try { data = JSON.parse(text); } catch (_) { /* /metrics is text */ }
  if (!response.ok) {
    const message = data && data.error ? `${data.error.code}: ${data.error.message}` : text;
    throw new Error(`${method} ${path} answered ${response.status} (${message})`);
  }
  return data;
}

function showError(error) {
  $('error').hidden = !error;
  $('error').textContent = error ? String(error.message || error) : '';
}

function setStatus(text) { $('status').textContent = text; }

const enc = encodeURIComponent;

// ---- recommendations ----------------------------------------------------------------------

function card(item, isNew) {
  const actions = el('div', { class: 'actions' },
    el('button', { type: 'button', dataset: { action: 'view' } }, 'View'),
    el('button', { type: 'button', dataset: { action: 'purchase' } }, 'Buy'),
    el('button', { type: 'button', dataset: { action: 'dislike' } }, 'Dislike'),
    el('select', { 'aria-label': 'rating', dataset: { action: 'rating' } },
      el('option', { value: '' }, 'Rate…'),
      ...[5, 4, 3, 2, 1].map((v) => el('option', { value: String(v) }, '★'.repeat(v)))));
  const categories = (item.categories || []).map((c) => el('span', { class: 'chip' }, c));
  // explain=true: the items of the customer's own history that weigh most in this one's score
  // (positive contributions only), and whether their vector is the trained one or a fold-in.
  const because = (item.because || []).filter((b) => b.contribution > 0)
    .map((b) => b.title || `Item ${b.item}`);
  return el('li', { class: isNew ? 'card new' : 'card', dataset: { item: item.item } },
    el('span', { class: 'title' }, item.title || `Item ${item.item}`),
    el('span', { class: 'meta' }, `#${item.item} · score ${Number(item.score).toFixed(3)}`),
    el('span', {},
      el('span', { class: `chip source-${item.source}`, dataset: { source: item.source } },
        item.source),
      ...categories),
    ...(because.length ? [el('span', { class: 'because', dataset: { vector: item.vector } },
      `Because you liked ${because.slice(0, 2).join(' and ')}` +
      (item.vector === 'fold-in' ? ' (your latest activity)' : ''))] : []),
    actions);
}

async function loadRecommendations() {
  const started = performance.now();
  const data = await api('GET',
    `/v1/users/${enc(state.user)}/recommendations?n=${N}&details=true&explain=true`);
  const ms = performance.now() - started;
  const before = new Set(state.shown);
  const list = $('recommendations');
  list.replaceChildren(...data.items.map((item) =>
    card(item, before.size > 0 && !before.has(item.item))));
  state.shown = data.items.map((item) => item.item);
  state.listId = data.recommendation_id || null;
  $('model-version').textContent = data.model_version;
  list.dataset.version = data.model_version;
  return { data, ms, added: state.shown.filter((id) => !before.has(id)).length };
}

async function loadActivity() {
  const list = $('activity');
  try {
    const data = await api('GET', `/v1/users/${enc(state.user)}/feedback?limit=1000`);
    const recent = data.events.slice(-8).reverse();
    list.replaceChildren(...(recent.length ? recent.map((e) =>
      el('li', {}, `${e.type}${e.value !== undefined ? ` ${e.value}` : ''} · #${e.item}`))
      : [el('li', { class: 'empty' }, 'no feedback yet')]));
  } catch (error) {
    // A server started without --events keeps no feedback: say so instead of failing.
    list.replaceChildren(el('li', { class: 'empty' }, error.message));
  }
}

async function loadSimilar(item, title) {
  const data = await api('GET', `/v1/items/${enc(item)}/similar?n=5&details=true`);
  $('similar-to').textContent = title;
  $('similar').replaceChildren(...data.items.map((s) =>
    el('li', {}, `${s.title || `Item ${s.item}`} (#${s.item})`)));
  $('similar-section').hidden = false;
}

async function selectCustomer(user) {
  state.user = user;
  state.shown = [];
  $('current-customer').textContent = user;
  $('customer-id').value = user;
  showError(null);
  try {
    const { data, ms } = await loadRecommendations();
    const personal = data.items.some((i) => i.source === 'personalized');
    setStatus(`${data.items.length} items for ${user} in ${ms.toFixed(0)} ms` +
      (data.variant ? ` · A/B variant ${data.variant}` : '') +
      (personal ? '' : ' — no history yet: the most popular items'));
    await loadActivity();
  } catch (error) { showError(error); }
}

const VERB = { view: 'Viewed', purchase: 'Bought', dislike: 'Disliked', rating: 'Rated' };

async function feedback(itemCard, type, value) {
  if (state.busy) return;
  state.busy = true;
  const item = itemCard.dataset.item;
  const title = itemCard.querySelector('.title').textContent;
  for (const b of document.querySelectorAll('.card button')) b.disabled = true;
  showError(null);
  try {
    const event = { user: state.user, item, type };
    if (state.listId) event.recommendation_id = state.listId;
    if (value !== undefined) event.value = value;
    const posted = performance.now();
    const answer = await api('POST', '/v1/feedback', [event]);
    if (answer.rejected && answer.rejected.length) throw new Error(answer.rejected[0].error);
    const { ms, added } = await loadRecommendations();
    const total = performance.now() - posted;
    setStatus(`${VERB[type]} “${title}”${value !== undefined ? ` (${value}★)` : ''}: ` +
      `${added} new item${added === 1 ? '' : 's'} in the list; stored and answered in ` +
      `${total.toFixed(0)} ms (list ${ms.toFixed(0)} ms)`);
    if (type === 'view') await loadSimilar(item, title);
    await loadActivity();
    refreshCounters();
  } catch (error) {
    showError(error);
  } finally {
    state.busy = false;
    for (const b of document.querySelectorAll('.card button')) b.disabled = false;
  }
}

$('recommendations').addEventListener('click', (e) => {
  const button = e.target.closest('button[data-action]');
  if (button) feedback(button.closest('.card'), button.dataset.action);
});
$('recommendations').addEventListener('change', (e) => {
  if (e.target.dataset.action === 'rating' && e.target.value) {
    feedback(e.target.closest('.card'), 'rating', Number(e.target.value));
  }
});

// ---- customers ---------------------------------------------------------------------------

async function loadCustomers() {
  const data = await api('GET', '/v1/users?n=50');
  const select = $('customer-select');
  select.replaceChildren(...data.users.map((u) => el('option', { value: u }, u)));
  select.dataset.total = data.total;
  return data.users;
}

$('customer-select').addEventListener('change', (e) => selectCustomer(e.target.value));
$('show-customer').addEventListener('click', () => {
  const id = $('customer-id').value.trim();
  if (id) selectCustomer(id);
});
$('customer-id').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') $('show-customer').click();
});
$('new-customer').addEventListener('click', () => {
  const id = `guest-${crypto.getRandomValues(new Uint32Array(1))[0].toString(36)}`;
  selectCustomer(id);
});
$('api-key').value = state.key;
$('api-key').addEventListener('change', (e) => {
  state.key = e.target.value.trim();
  sessionStorage.setItem('recloop-api-key', state.key);
  start();
});

// ---- live counters from /metrics (Prometheus text format) -----------------------------------

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    // Label values may hold braces (route="/v1/users/{user}/..."): the label set runs to the
    // last '}' of the line.
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[2] || '').matchAll(/(\w+)="([^"]*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

// The upper bound of the histogram bucket holding quantile q ("≤ 5 ms"), or '–' if empty.
function quantile(samples, name, q, match = () => true) {
  const buckets = samples.filter((s) => s.name === `${name}_bucket` && match(s.labels))
    .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), n: s.value }))
    .sort((a, b) => a.le - b.le);
  const total = buckets.length ? buckets[buckets.length - 1].n : 0;
  if (!total) return '–';
  const bucket = buckets.find((b) => b.n >= q * total);
  if (bucket.le === Infinity) return `> ${(buckets[buckets.length - 2].le * 1000).toFixed(0)} ms`;
  const ms = bucket.le * 1000;
  return `≤ ${ms < 1 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
}

async function refreshCounters() {
  try {
    const samples = parseMetrics(await api('GET', '/metrics'));
    const value = (name, labels = {}) => {
      const s = samples.find((x) => x.name === name &&
        Object.entries(labels).every(([k, v]) => x.labels[k] === v));
      return s ? s.value : undefined;
    };
    const accepted = value('recloop_feedback_events_total', { outcome: 'accepted' });
    $('events-accepted').textContent = accepted === undefined ? '–' : accepted.toLocaleString();
    const backlog = value('recloop_feedback_fold_backlog');
    $('fold-backlog').textContent = backlog === undefined ? '–' : backlog;
    const freshness = 'recloop_feedback_freshness_seconds';
    $('freshness').textContent =
      `${quantile(samples, freshness, 0.5)} / ${quantile(samples, freshness, 0.99)}`;
    $('recs-p99').textContent = quantile(samples, 'recloop_http_request_duration_seconds', 0.99,
      (l) => l.route === '/v1/users/{user}/recommendations');
    const info = samples.find((s) => s.name === 'recloop_model_info');
    if (info) $('model-version').textContent = info.labels.version;
  } catch (_) {
    // Counters are a convenience: a failed poll leaves the last values.
  }
}

async function start() {
  showError(null);
  try {
    const users = await loadCustomers();
    const first = new URLSearchParams(location.search).get('user') || users[0];
    if (first) {
      $('customer-select').value = first;
      await selectCustomer(first);
    }
  } catch (error) { showError(error); }
  refreshCounters();
}

setInterval(refreshCounters, 2000);
start();
