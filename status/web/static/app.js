// Live updates for the status page. The page works without this file; with
// it, newly published updates appear without a reload. It prefers a
// websocket, falls back to Server-Sent Events, then to polling, and always
// tells the server the newest update it has so nothing is missed.
(function () {
  'use strict';
  var body = document.body;
  var live = body.getAttribute('data-live');
  if (!live) { return; }
  var ssePath = body.getAttribute('data-sse');
  var pollPath = body.getAttribute('data-poll');
  var pageSlug = body.getAttribute('data-slug') || '';
  var lastId = parseInt(body.getAttribute('data-last-id') || '0', 10) || 0;
  var statusEl = document.getElementById('live-status');
  var attempt = 0;
  var everOpened = false;
  var failures = 0;

  function announce(text) {
    if (statusEl) { statusEl.textContent = text; }
  }

  function fromHTML(html) {
    var t = document.createElement('template');
    t.innerHTML = html;
    return t.content.firstElementChild;
  }

  function cardId(card) {
    return parseInt(card.getAttribute('data-id') || '0', 10) || 0;
  }

  function place(card, slug) {
    var old = document.getElementById('incident-' + slug);
    if (old) {
      old.parentNode.replaceChild(card, old);
      return true;
    }
    if (pageSlug) { return false; }
    var list = document.getElementById('open-incidents');
    if (!list) { return false; }
    var none = document.getElementById('no-incidents');
    if (none) { none.parentNode.removeChild(none); }
    list.insertBefore(card, list.firstChild);
    return true;
  }

  function updated(msg, card) {
    card.classList.toggle('open', !!msg.open);
    card.classList.add('fresh');
    var banner = document.getElementById('overall');
    if (banner && msg.banner) {
      var nb = fromHTML(msg.banner);
      if (nb) { banner.parentNode.replaceChild(nb, banner); }
    }
    announce('Updated just now: ' + msg.title + ' (' + msg.status + ')');
  }

  // applyCard puts an incident's whole card on the page (catch-up).
  function applyCard(msg) {
    if (pageSlug && msg.slug !== pageSlug) { return; }
    var old = document.getElementById('incident-' + msg.slug);
    if (old && cardId(old) >= msg.id) { return; }
    var card = fromHTML(msg.card);
    if (card && place(card, msg.slug)) { updated(msg, card); }
  }

  // applyUpdate adds one new entry to a card that has everything before it;
  // otherwise it fetches the whole card.
  function applyUpdate(msg) {
    if (pageSlug && msg.slug !== pageSlug) { return; }
    var card = document.getElementById('incident-' + msg.slug);
    if (card && cardId(card) >= msg.id) { return; }
    if (card && cardId(card) === msg.prev) {
      var head = fromHTML(msg.head);
      var entry = fromHTML(msg.entry);
      var oldHead = card.querySelector('header');
      var list = card.querySelector('.timeline');
      if (head && entry && oldHead && list) {
        card.replaceChild(head, oldHead);
        list.insertBefore(entry, list.firstChild);
        card.setAttribute('data-id', String(msg.id));
        updated(msg, card);
        return;
      }
    }
    if (!card && msg.card) {
      applyCard(msg);
      return;
    }
    fetchCards(msg.id - 1);
  }

  function fetchCards(since) {
    if (!pollPath || !window.fetch) { return; }
    window.fetch(url(pollPath, 'id=' + since), { headers: { 'Accept': 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : { messages: [] }; })
      .then(function (d) { (d.messages || []).forEach(applyCard); })
      .catch(function () {});
  }

  function apply(msg) {
    if (!msg || typeof msg.id !== 'number' || msg.id <= lastId) { return; }
    lastId = msg.id;
    body.setAttribute('data-last-id', String(lastId));
    if (msg.type === 'update') {
      applyUpdate(msg);
    } else if (msg.type === 'incident') {
      applyCard(msg);
    }
  }

  function handle(text) {
    var msg;
    try { msg = JSON.parse(text); } catch (e) { return; }
    apply(msg);
  }

  function backoff() {
    // Exponential backoff with full jitter, 0.5 s doubling to 30 s.
    var cap = Math.min(30000, 500 * Math.pow(2, attempt));
    attempt++;
    return cap / 2 + Math.random() * cap / 2;
  }

  function url(path, params) {
    return path + '?' + params;
  }

  function connect() {
    if (!('WebSocket' in window) || (!everOpened && failures >= 3)) { sse(); return; }
    var l = window.location;
    var ws;
    try {
      ws = new WebSocket((l.protocol === 'https:' ? 'wss://' : 'ws://') + l.host + url(live, 'since=' + lastId));
    } catch (e) {
      failures++;
      window.setTimeout(connect, backoff());
      return;
    }
    ws.onopen = function () {
      everOpened = true;
      attempt = 0;
      failures = 0;
      body.setAttribute('data-live-state', 'open');
    };
    ws.onmessage = function (ev) { handle(ev.data); };
    ws.onclose = function () {
      body.setAttribute('data-live-state', 'closed');
      failures++;
      window.setTimeout(connect, backoff());
    };
  }

  function sse() {
    if (!('EventSource' in window) || !ssePath) { poll(); return; }
    var es = new EventSource(url(ssePath, 'since=' + lastId));
    es.onopen = function () { body.setAttribute('data-live-state', 'sse'); };
    es.addEventListener('incident', function (ev) { handle(ev.data); });
  }

  function poll() {
    if (!pollPath || !window.fetch) { return; }
    body.setAttribute('data-live-state', 'poll');
    window.fetch(url(pollPath, 'id=' + lastId), { headers: { 'Accept': 'application/json' } })
      .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.json(); })
      .then(function (d) { (d.messages || []).forEach(apply); attempt = 0; window.setTimeout(poll, 15000); })
      .catch(function () { window.setTimeout(poll, Math.max(15000, backoff())); });
  }

  connect();
}());
