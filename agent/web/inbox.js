// SPDX-License-Identifier: Apache-2.0
//
// The approvals inbox: signs in with an approver token (the session cookie is HttpOnly;
// the CSRF token lives in this page only), polls the pending requests and the history every
// two seconds, and approves or denies through the same JSON API the command line's peers
// use. Everything a request holds is put into the page as text (textContent), never as
// markup: a statement is data written by whoever sent it.
'use strict';

(function () {
  const POLL_MS = 2000;
  let csrf = '';
  let timer = null;
  const cards = new Map();  // request id -> its card, kept across polls (typed reasons stay)

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: {} };
    if (method === 'POST') {
      init.headers['Content-Type'] = 'application/json';
      if (csrf) init.headers['X-CSRF-Token'] = csrf;
      init.body = JSON.stringify(body || {});
    }
    const res = await fetch(path, init);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return { status: res.status, data };
  }

  function show(view) {
    $('login-view').hidden = view !== 'login';
    $('inbox-view').hidden = view !== 'inbox';
    $('whoami').hidden = view !== 'inbox';
  }

  function signedOut(message) {
    csrf = '';
    if (timer) clearInterval(timer);
    timer = null;
    for (const card of cards.values()) card.remove();
    cards.clear();
    $('login-error').textContent = message || '';
    show('login');
  }

  function signedIn(name, token) {
    csrf = token;
    $('me').textContent = name;
    show('inbox');
    refresh();
    if (!timer) timer = setInterval(refresh, POLL_MS);
  }

  function identity(w) {
    const parts = [];
    parts.push(`${w.db_user}@${w.database}`);
    if (w.application_name) parts.push(`application ${w.application_name}`);
    if (w.client_address) {
      parts.push(`from ${w.client_address}` + (w.client_port ? `:${w.client_port}` : ''));
    }
    return parts.join(', ');
  }

  function processLine(w) {
    if (!w.pid) return 'not a local process';
    let s = `pid ${w.pid} ${w.executable || ''}` + (w.command ? ` (${w.command})` : '');
    if (w.uid !== undefined) s += `, uid ${w.uid}${w.user ? ' (' + w.user + ')' : ''}`;
    if (w.login_uid !== undefined) {
      s += `, login uid ${w.login_uid}${w.login_user ? ' (' + w.login_user + ')' : ''}`;
    }
    if (w.unit) s += `, unit ${w.unit}`;
    if (w.container) s += `, container ${w.container}`;
    return s;
  }

  function blastText(b) {
    if (b === undefined || b === null) return null;
    if (typeof b !== 'object') return String(b);
    if (b.rows !== undefined) return `${b.rows} row(s) estimated` + (b.via ? ` (${b.via})` : '');
    if (b.unavailable) return `estimate unavailable: ${b.unavailable}`;
    return JSON.stringify(b);
  }

  function row(dl, label, value, cls) {
    dl.append(el('dt', {}, label), el('dd', cls ? { class: cls } : {}, value));
  }

  function fillDetails(card, r) {
    const dl = card.querySelector('dl');
    dl.replaceChildren();
    row(dl, 'rule', r.rule);
    row(dl, 'operation', r.operation);
    if (Array.isArray(r.tables) && r.tables.length) row(dl, 'tables', r.tables.join(', '));
    if (r.why) row(dl, 'why', r.why);
    const blast = blastText(r.blast_radius);
    if (blast !== null) row(dl, 'blast radius', blast, 'blast');
    row(dl, 'requester', identity(r.who));
    row(dl, 'process', processLine(r.who));
    row(dl, 'fingerprint', r.fingerprint);
    if (r.ran_before !== undefined || r.approved_before !== undefined) {
      const ran = r.ran_before === undefined ? 'not known' : (r.ran_before ? 'yes' : 'no');
      row(dl, 'seen before', `ran this before: ${ran}; approved before: ` +
          `${r.approved_before === undefined ? 'not known' : r.approved_before} time(s)`);
    }
    row(dl, 'approvals', `${r.approved_by.length} of ${r.approvals_needed}` +
        (r.approved_by.length ? ' by ' + r.approved_by.join(', ') : ''));
    row(dl, 'approvers', r.approvers.join(', '));
    row(dl, 'waiting', `${r.waiting_seconds}s (times out in ${r.timeout_in_seconds}s)`);
  }

  function newCard(r) {
    const reason = el('input', { class: 'reason', type: 'text', maxlength: '1000',
                                 placeholder: 'reason (required to deny)' });
    const grant = el('select', { class: 'for', title: 'also let this statement shape from ' +
                                 'this identity run without a request for' },
                     el('option', { value: '' }, 'this statement only'),
                     el('option', { value: '5m' }, 'and for 5 minutes'),
                     el('option', { value: '30m' }, 'and for 30 minutes'),
                     el('option', { value: '2h' }, 'and for 2 hours'));
    const approve = el('button', { type: 'button', class: 'approve' }, 'Approve');
    const deny = el('button', { type: 'button', class: 'deny' }, 'Deny');
    const result = el('p', { class: 'result', role: 'status' });
    const card = el('article', { class: 'request', 'data-id': String(r.id) },
                    el('h3', {}, `Request ${r.id}`),
                    el('pre', { class: 'statement' }, r.statement),
                    el('dl', {}),
                    el('div', { class: 'decide' }, reason, grant, approve, deny),
                    result);
    approve.addEventListener('click', () => decide(card, r.id, 'approve'));
    deny.addEventListener('click', () => decide(card, r.id, 'deny'));
    return card;
  }

  async function decide(card, id, verb) {
    const result = card.querySelector('.result');
    const reason = card.querySelector('.reason').value.trim();
    const body = { reason };
    if (verb === 'deny' && !reason) {
      result.className = 'result error';
      result.textContent = 'A deny needs a reason.';
      return;
    }
    const grant = card.querySelector('.for').value;
    if (verb === 'approve' && grant) body.for = grant;
    for (const b of card.querySelectorAll('button')) b.disabled = true;
    const { status, data } = await api('POST', `/api/requests/${id}/${verb}`, body);
    for (const b of card.querySelectorAll('button')) b.disabled = false;
    if (status === 401) { signedOut('Your session has ended: sign in again.'); return; }
    result.className = status === 200 ? 'result ok' : 'result error';
    result.textContent = data ? (data.message || data.error) : `HTTP ${status}`;
    if (status === 200) $('notice').textContent = data.message;
    refresh();
  }

  function renderPending(list) {
    const seen = new Set();
    for (const r of list) {
      seen.add(r.id);
      let card = cards.get(r.id);
      if (!card) {
        card = newCard(r);
        cards.set(r.id, card);
        $('pending').append(card);
      }
      fillDetails(card, r);
    }
    for (const [id, card] of cards) {
      if (!seen.has(id)) { card.remove(); cards.delete(id); }
    }
    $('pending-count').textContent = String(list.length);
    $('empty').hidden = list.length > 0;
  }

  function renderHistory(list) {
    const body = $('history').querySelector('tbody');
    body.replaceChildren(...list.map((h) => el('tr', { 'data-id': String(h.id), class: h.event },
      el('td', {}, new Date(h.time_unix_ms).toLocaleString()),
      el('td', {}, String(h.id)),
      el('td', { class: 'event' },
         h.event + (h.grant_seconds ? ` (+${h.grant_seconds}s grant)` : '')),
      el('td', {}, h.by),
      el('td', {}, h.channel),
      el('td', {}, h.rule),
      el('td', {}, `${h.db_user}@${h.database}`),
      el('td', { class: 'statement' }, h.statement),
      el('td', { class: 'reason' }, h.reason))));
  }

  async function refresh() {
    try {
      const pending = await api('GET', '/api/requests');
      if (pending.status === 401) { signedOut('Your session has ended: sign in again.'); return; }
      if (pending.status === 200) renderPending(pending.data);
      const history = await api('GET', '/api/history');
      if (history.status === 200) renderHistory(history.data);
    } catch (e) {
      $('notice').textContent = 'The agent does not answer; retrying.';
    }
  }

  async function login(ev) {
    ev.preventDefault();
    const token = $('token').value.trim();
    const { status, data } = await api('POST', '/api/login', { token });
    $('token').value = '';
    if (status === 200) {
      $('login-error').textContent = '';
      signedIn(data.name, data.csrf);
    } else {
      $('login-error').textContent = data && data.error ? `Sign-in refused: ${data.error}` :
        `Sign-in refused (HTTP ${status})`;
    }
  }

  async function logout() {
    await api('POST', '/api/logout', {});
    signedOut('Signed out.');
  }

  async function start() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    const { status, data } = await api('GET', '/api/session');
    if (status === 200) signedIn(data.name, data.csrf); else signedOut('');
  }

  document.addEventListener('DOMContentLoaded', start);
}());
